"""A platform checks what users upload (Measures Art. 6) and adds its propagator record.

    python examples/verify_received.py --trust keys/ --as 001191440300708461136T20000 uploads/...

For each file: the notice to show (confirmed / possible / suspected / none), whether the label's
signature holds, whose key it is and whether the content is intact; labelled files then get
the platform's ContentPropagator / PropagateID / ReservedCode2 (written next to the upload).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labeler import LabelerError, LabelPolicy, SigningKey, Status, TrustStore, propagate_bytes, verify

NOTICES = {
    "confirmed": "该内容为人工智能生成 / This content is AI-generated",
    "possible": "该内容可能为人工智能生成 / This content may be AI-generated",
    "suspected": "该内容疑似人工智能生成 / This content is suspected to be AI-generated",
    "none": "",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--trust", action="append", default=[], help="trusted producer public keys")
    parser.add_argument("--as", dest="code", help="the platform's provider code; adds the propagator record")
    args = parser.parse_args()
    trust = TrustStore.from_paths(args.trust)
    platform = (
        LabelPolicy(provider_name="Platform", provider_code=args.code, signing_key=SigningKey.generate())
        if args.code
        else None
    )
    for path in args.files:
        data = path.read_bytes()
        verdict = verify(data, trust)
        print(f"{path}: {verdict.status.value}; show: {NOTICES[verdict.notice] or '(no notice)'}")
        if verdict.problems:
            print("   why: " + "; ".join(verdict.problems))
        if platform is not None and verdict.status is not Status.UNREADABLE and verdict.record is not None:
            try:
                target = path.with_name(path.stem + ".propagated" + path.suffix)
                target.write_bytes(propagate_bytes(data, platform))
                print(f"   propagator record added -> {target}")
            except LabelerError as exc:
                print(f"   not propagated: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
