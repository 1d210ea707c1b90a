"""Label a file with a key held by a signing service, then verify it.

    python examples/remote_signer/label_with_remote_key.py http://127.0.0.1:8900/sign \
        keys/labeler.pub.pem picture.png labelled.png

The public key is pinned from a file; every signature the service returns is checked against it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from labeler import LabelPolicy, TrustStore, label_bytes, verify
from labeler.remote_signer import remote_key


def main(url: str, public_pem: str, source: str, target: str) -> str:
    key = remote_key(url, Path(public_pem).read_bytes(), token=os.environ.get("SIGNER_TOKEN"))
    policy = LabelPolicy(
        provider_name="示例智能科技有限公司",
        provider_code="001191440300708461136T1XGW3",
        filing_numbers=("Beijing-YunQue-20240101",),
        system_name="YunQue",
        system_version="2.1",
        signing_key=key,
    )
    Path(target).write_bytes(label_bytes(Path(source).read_bytes(), policy))
    verdict = verify(Path(target).read_bytes(), TrustStore([key.public_key]))
    print(f"{target}: {verdict.status} (key {key.key_id}, signed remotely)")
    return str(verdict.status)


if __name__ == "__main__":
    main(*sys.argv[1:5])
