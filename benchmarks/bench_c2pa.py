"""C2PA cost: our path (no thumbnail) vs plain c2pa-python defaults, same 1 MP JPEG, one run.

    .venv/bin/python benchmarks/bench_c2pa.py [--runs 30]

Rows: time per image (best of 5 medians) and bytes added to the file.
  labeler GB label only         label_bytes(): XMP + Ed25519 provenance (the anchor we add C2PA to)
  labeler C2PA (no thumbnail)   add_content_credentials() on the GB-labelled image
  c2pa-python defaults          Builder with SDK default settings (thumbnail on), same manifest
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import c2pa
from bench_implicit import median_ms, sample_images

from labeler import LabelPolicy, SigningKey, label_bytes
from labeler.content_credentials import C2paConfig, add_content_credentials, make_test_ca, manifest_for


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    data = sample_images()["jpeg"]
    policy = LabelPolicy(
        provider_name="ExampleAI",
        filing_numbers=("Beijing-YunQue-20230821",),
        signing_key=SigningKey.generate(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_test_ca(Path(tmp))
        config = C2paConfig.from_files(paths["chain"], paths["key"])
        labeled = label_bytes(data, policy)

        def defaults() -> bytes:
            signer = config.signer()
            out = io.BytesIO()
            c2pa.Builder(manifest_for(policy, None)).sign(signer, "image/jpeg", io.BytesIO(labeled), out)
            signer.close()
            return out.getvalue()

        rows = {
            "labeler GB label only": (
                median_ms(lambda: label_bytes(data, policy), args.runs),
                len(labeled) - len(data),
            ),
            "labeler C2PA (no thumbnail)": (
                median_ms(lambda: add_content_credentials(labeled, policy, config), args.runs),
                len(add_content_credentials(labeled, policy, config)) - len(labeled),
            ),
            "c2pa-python defaults (thumbnail)": (
                median_ms(defaults, args.runs),
                len(defaults()) - len(labeled),
            ),
        }
    ours = rows["labeler C2PA (no thumbnail)"][0]
    versions = f"python {sys.version.split()[0]}; c2pa-python {c2pa.sdk_version()}"
    print(f"{versions}; 1024x1024 JPEG ({len(data) // 1024} KiB)\n")
    print("| what | ms / image | vs our C2PA | bytes added |")
    print("| --- | ---: | ---: | ---: |")
    for name, (ms, added) in rows.items():
        print(f"| {name} | {ms:.2f} | {ms / ours:.2f}x | {added:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
