"""Full labelling cost vs a bare re-encode, and batch scaling, in one run.

    .venv/bin/python benchmarks/bench_full_label.py [--files 500]

Rows:
  Pillow decode+encode      open + load + save(quality="keep"): the floor of any visible label
  labeler full label        label_image(watermark=False): visible label + implicit label + Ed25519 signature
  ... + invisible watermark label_image() as shipped: the mark (on by default, its key derived from the
                            signing key) rides the visible label's re-encode
  batch, 1 worker / 2       `labeler apply` engine (batch.label_files) over N 1 MP JPEGs, file -> file
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from bench_implicit import median_ms, sample_images
from PIL import Image

from labeler import SigningKey
from labeler.batch import Options, label_files, plan
from labeler.labeling import label_image
from labeler.policy import LabelPolicy


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    data = sample_images()["jpeg"]

    def reencode() -> bytes:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality="keep", subsampling="keep")
            return buf.getvalue()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = SigningKey.generate()
        (root / "k.pem").write_bytes(key.private_pem())
        (root / "k.pem").chmod(0o600)
        (root / "c.toml").write_text(
            f'[labeler]\nprovider_name = "ExampleAI"\nkey_file = "{root / "k.pem"}"\n'
        )
        policy = LabelPolicy.load(root / "c.toml", env={})

        bare = median_ms(reencode, args.runs)
        full = median_ms(lambda: label_image(data, policy, watermark=False), args.runs)
        marked = median_ms(lambda: label_image(data, policy), args.runs)

        src = root / "src"
        src.mkdir()
        for i in range(args.files):
            (src / f"{i:04d}.jpg").write_bytes(data)
        batch = {}
        for jobs in (1, 2):
            out = root / f"out{jobs}"
            t0 = time.perf_counter()
            summary = label_files(plan([src], out), config=str(root / "c.toml"), options=Options(), jobs=jobs)
            batch[jobs] = time.perf_counter() - t0
            assert summary.labeled == args.files, summary

    size = f"{len(data) / 1024:.0f} KiB"
    print(f"python {sys.version.split()[0]}; 1024x1024 JPEG ({size}); {args.files} files per batch\n")
    print("| what | ms / image | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| Pillow decode+encode (quality=keep) | {bare:.2f} | 1.00x |")
    print(f"| labeler full label (visible + implicit + signature) | {full:.2f} | {full / bare:.2f}x |")
    print(f"| ... + invisible watermark (as shipped) | {marked:.2f} | {marked / bare:.2f}x |")
    print(f"| batch `labeler apply`, 1 worker | {batch[1] * 1000 / args.files:.2f} | 1.00x |")
    print(
        f"| batch `labeler apply`, 2 workers | {batch[2] * 1000 / args.files:.2f} | "
        f"speed-up {batch[1] / batch[2]:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
