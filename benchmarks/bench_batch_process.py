"""Whole-process batch speed: `labeler apply` / `labeler verify` as a user runs them, beside the
anchors in the same run (exiftool writing the same tag file to file, cp -r, cp -r + sha256sum).

    .venv/bin/python benchmarks/bench_batch_process.py [--files 500] [--runs 5]

Each row is the median wall time of ``--runs`` whole processes over ``--files`` distinct 1 MP
q90 JPEGs (implicit label + Ed25519 signature, no visible label), output to a fresh directory.
The floor a signed label cannot beat is "cp -r + sha256sum": every byte read, hashed and written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
LABELER = [str(ROOT / ".venv/bin/labeler")] if (ROOT / ".venv/bin/labeler").exists() else ["labeler"]
FLAT = '{"Label":"1","ContentProducer":"001191440300708461136T1XGW3","ProduceID":"x"}'


def make_images(where: Path, n: int) -> None:
    where.mkdir(parents=True)
    for i in range(n):
        img = Image.effect_noise((1000, 1000), 40 + i % 30).convert("RGB")
        img.save(where / f"img{i:05d}.jpg", quality=90)


def wall(cmd: list[str] | str, runs: int, fresh: Path | None, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        src, out = work / "in", work / "out"
        make_images(src, args.files)
        key = work / "key.pem"
        subprocess.run(
            [*LABELER, "keygen", "--out", str(work), "--name", "key"], check=True, capture_output=True
        )
        env = {
            **os.environ,
            "LABELER_PROVIDER_NAME": "BenchAI",
            "LABELER_PROVIDER_CODE": "001191440300708461136T1XGW3",
            "LABELER_KEY_FILE": str(key),
        }
        config = work / "tc260.config"
        sys.path.insert(0, str(ROOT))
        from labeler.xmp import EXIFTOOL_CONFIG

        config.write_text(EXIFTOOL_CONFIG)
        rows: list[tuple[str, float]] = []

        def row(name: str, cmd: list[str] | str, fresh: Path | None = out) -> float:
            seconds = wall(cmd, args.runs, fresh, env)
            rows.append((name, seconds))
            print(f"{name:<44} {seconds:8.3f} s", flush=True)
            return seconds

        a = [*LABELER, "apply", str(src), "--out", str(out), "--no-visible"]
        j1 = row("labeler apply --no-visible -j 1", [*a, "-j", "1"])
        j2 = row("labeler apply --no-visible -j 2", [*a, "-j", "2"])
        labelled = work / "labelled"
        subprocess.run(
            [*a[:4], str(labelled), "--no-visible", "-j", "2"], check=True, env=env, capture_output=True
        )
        verify = row("labeler verify (whole process)", [*LABELER, "verify", str(labelled), "--json"], None)
        exif = None
        if shutil.which("exiftool"):
            exif = row(
                "exiftool -o OUT/ (same XMP tag, file to file)",
                [
                    "exiftool",
                    "-config",
                    str(config),
                    "-q",
                    "-o",
                    f"{out}/",
                    f"-XMP-TC260:AIGC={FLAT}",
                    str(src),
                ],
            )
        cp = row("cp -r", f"cp -r '{src}' '{out}'")
        floor = row(
            "cp -r + sha256sum of every file", f"cp -r '{src}' '{out}' && sha256sum '{src}'/* >/dev/null"
        )
        help_ = row("labeler --help (start-up)", [*LABELER, "--help"], None)
        bare = row("python -c pass", [sys.executable, "-c", "pass"], None)
        print()
        print(f"-j 2 vs -j 1:                 {j1 / j2:5.2f}x")
        if exif:
            print(f"apply -j 2 vs exiftool -o:    {exif / j2:5.2f}x faster")
        print(f"apply -j 2 vs cp -r:          {j2 / cp:5.2f}x the time")
        print(f"apply -j 2 vs cp+sha256 floor: {j2 / floor:5.2f}x the time")
        print(f"verify: {args.files / verify:,.0f} files/s whole process (incl. start-up)")
        print(f"start-up: {help_:.3f} s (bare python {bare:.3f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
