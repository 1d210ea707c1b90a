"""Implicit labelling speed vs the anchors, on the same 1024x1024 JPEG and PNG, in one run.

    .venv/bin/python benchmarks/bench_implicit.py [--files 200]

Rows (per image; best of 5 medians, or total / N for "batch" rows):
  labeler in memory     label_bytes(): GB record + IPTC + Ed25519-signed provenance, bytes -> bytes
  labeler unsigned      the same without SHA-256 of the content and signature: the work exiftool does
  labeler file->file    read, label, atomic-free write to another directory (what exiftool does)
  exiftool (batched)    one exiftool process writing XMP-TC260:AIGC + DigitalSourceType into a
                        directory of N copies (-overwrite_original); its fastest mode; total / N
  file copy             shutil.copyfile: the floor for any file->file tool
  Pillow re-encode      decode + encode: what labelling would cost if it touched pixels
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from labeler import LabelPolicy, SigningKey, label_bytes
from labeler.xmp import EXIFTOOL_CONFIG


def sample_images() -> dict[str, bytes]:
    """A 1 MP picture with gradients, shapes and grain, so codecs do real work."""
    from labeler.demo import generate_image

    base = Image.open(io.BytesIO(generate_image("benchmark", fmt="PNG"))).convert("RGB")
    grain = Image.effect_noise((1024, 1024), 24).convert("RGB")
    img = Image.blend(base, grain, 0.15)
    out = {}
    for fmt, params in (("JPEG", {"quality": 90}), ("PNG", {})):
        buf = io.BytesIO()
        img.save(buf, fmt, **params)
        out[fmt.lower()] = buf.getvalue()
    return out


def median_ms(fn: Callable[[], object], runs: int, rounds: int = 5) -> float:
    """Best of ``rounds`` medians: the least noisy figure on a shared machine (as timeit does)."""
    fn()  # warm up
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(max(1, runs // rounds)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
    return min(medians) * 1000


def bench(name: str, data: bytes, policy: LabelPolicy, files: int, runs: int) -> dict[str, float]:
    ext = ".jpg" if name == "jpeg" else ".png"
    results: dict[str, float] = {}
    results["labeler in memory"] = median_ms(lambda: label_bytes(data, policy), runs)
    unsigned = policy.with_changes(signing_key=None)
    results["labeler unsigned (exiftool's work)"] = median_ms(lambda: label_bytes(data, unsigned), runs)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "src"), Path(tmp, "dst")
        src.mkdir()
        dst.mkdir()
        paths = [src / f"img{i:04d}{ext}" for i in range(files)]
        for p in paths:
            p.write_bytes(data)

        def label_files() -> None:
            for p in paths:
                (dst / p.name).write_bytes(label_bytes(p.read_bytes(), policy))

        t0 = time.perf_counter()
        label_files()
        results["labeler file->file (batch)"] = (time.perf_counter() - t0) * 1000 / files

        def copy_files() -> None:
            for p in paths:
                shutil.copyfile(p, dst / p.name)

        t0 = time.perf_counter()
        copy_files()
        results["file copy (batch)"] = (time.perf_counter() - t0) * 1000 / files

        if shutil.which("exiftool"):
            config = Path(tmp, "tc260.config")
            config.write_text(EXIFTOOL_CONFIG)
            record = '{"Label":"1","ContentProducer":"ExampleAI","ProduceID":"x"}'
            dst2 = Path(tmp, "exif")
            shutil.copytree(src, dst2)
            t0 = time.perf_counter()
            subprocess.run(
                [
                    "exiftool",
                    "-config",
                    str(config),
                    "-q",
                    "-overwrite_original",
                    f"-XMP-TC260:AIGC={record}",
                    "-XMP-iptcExt:DigitalSourceType=http://cv.iptc.org/newscodes/digitalsourcetype/"
                    "trainedAlgorithmicMedia",
                    str(dst2),
                ],
                check=True,
            )
            results["exiftool (batched, one process)"] = (time.perf_counter() - t0) * 1000 / files

    def reencode() -> None:
        with Image.open(io.BytesIO(data)) as img:
            buf = io.BytesIO()
            img.save(buf, img.format, **({"quality": 90} if name == "jpeg" else {}))

    results["Pillow decode+encode"] = median_ms(reencode, max(5, runs // 10))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200, help="files per batch row")
    parser.add_argument("--runs", type=int, default=300, help="runs per median row")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    policy = LabelPolicy(
        provider_name="ExampleAI",
        filing_numbers=("Beijing-YunQue-20230821",),
        system_name="YunQue",
        system_version="2.1",
        signing_key=SigningKey.generate(),
    )
    report = {}
    for name, data in sample_images().items():
        report[name] = {"bytes": len(data), **bench(name, data, policy, args.files, args.runs)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"python {sys.version.split()[0]}, {args.files} files per batch row, {args.runs} runs per median row"
    )
    print()
    for name, rows in report.items():
        ours = rows["labeler in memory"]
        print(f"1024x1024 {name.upper()} ({rows['bytes'] / 1024:.0f} KiB)")
        print(f"| {'what':34} | {'ms / image':>10} | {'vs labeler in memory':>20} |")
        print(f"|{'-' * 36}|{'-' * 12}:|{'-' * 21}:|")
        for row, ms in rows.items():
            if row != "bytes":
                print(f"| {row:34} | {ms:10.3f} | {ms / ours:19.1f}x |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
