"""Verify speed, in process and as a whole `labeler verify` process, beside its anchors, in one run.

    .venv/bin/python benchmarks/bench_verify.py [--files 200] [--cli-files 500] [--runs 5]

Every file is a distinct 1 MP picture (gradients, shapes, fresh grain each), labelled in
memory with label_bytes() (GB record + IPTC + Ed25519-signed provenance, no visible label);
verified against a trust store holding the signing key, so every verdict must be "verified".

Rows (in process: per file, the median over ``--runs`` passes over all files, files in memory):
  sha256 of the file        hashlib.sha256(data): the floor, every byte has to be hashed once
  Ed25519 verify alone      the one signature check a verdict needs (cryptography, raw key)
  verify() JPEG / PNG       labeler.verify(data, trust): the whole verdict
  CLI -j 1 / -j 2           `labeler verify DIR` (table output to /dev/null) over ``--cli-files``
                            q90 JPEGs; whole process, start-up included; median of ``--runs``;
                            also its CPU time (process + workers), which a busy machine does not inflate
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's labeler, also for the CLI processes

from labeler import LabelPolicy, SigningKey, TrustStore, label_bytes  # noqa: E402
from labeler.verification import Status, verify  # noqa: E402

#: What the `labeler` console script runs, with this checkout first on the path.
LABELER = [sys.executable, "-c", "import sys; from labeler.cli import main; sys.exit(main())"]


def pictures(n: int, fmt: str) -> list[bytes]:
    """``n`` distinct 1024x1024 pictures: one base scene, fresh grain for each (q90 for JPEG)."""
    from labeler.demo import generate_image

    base = Image.open(io.BytesIO(generate_image("benchmark", fmt="PNG"))).convert("RGB")
    out = []
    for _ in range(n):
        img = Image.blend(base, Image.effect_noise((1024, 1024), 24).convert("RGB"), 0.15)
        buf = io.BytesIO()
        img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append(buf.getvalue())
    return out


def per_file_ms(fn: Callable[[bytes], object], files: Sequence[bytes], runs: int) -> float:
    """Median over ``runs`` passes of (pass time / files): distinct files, so no cache flatters it."""
    for data in files[:3]:
        fn(data)  # warm up
    passes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for data in files:
            fn(data)
        passes.append((time.perf_counter() - t0) / len(files))
    return statistics.median(passes) * 1000


def cli_seconds(args: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of the process and its workers): on a shared
    machine the CPU figure says what the wall figure would be with the cores to ourselves."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run([*LABELER, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"labeler {' '.join(args)} exited {done.returncode}: {done.stderr.decode()}")
    return statistics.median(times), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200, help="distinct JPEGs in memory (PNG: a quarter)")
    parser.add_argument("--cli-files", type=int, default=500, help="JPEG files the CLI rows verify")
    parser.add_argument("--runs", type=int, default=5, help="passes / processes per row (median)")
    args = parser.parse_args()

    key = SigningKey.generate()
    policy = LabelPolicy(
        provider_name="ExampleAI", filing_numbers=("Beijing-YunQue-20230821",), signing_key=key
    )
    trust = TrustStore([key.public_key])
    jpegs = [label_bytes(d, policy) for d in pictures(max(args.files, args.cli_files), "JPEG")]
    pngs = [label_bytes(d, policy) for d in pictures(max(1, args.files // 4), "PNG")]
    for data in (jpegs[0], pngs[0]):
        assert verify(data, trust).status is Status.VERIFIED, verify(data, trust)

    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PublicKey.from_public_bytes(key.public_key.raw)
    messages = [f"aigcl1.{i:0200d}".encode() for i in range(64)]
    signatures = [(m, key.sign(m)) for m in messages]

    def ed25519_alone(_: bytes) -> None:
        message, signature = signatures[len(_) % 64]
        public.verify(signature, message)

    rows: list[tuple[str, float]] = []
    in_memory = jpegs[: args.files]
    for name, fn, files in (
        ("sha256 of the file (floor), JPEG", lambda d: hashlib.sha256(d).digest(), in_memory),
        ("Ed25519 verify alone", ed25519_alone, in_memory),
        ("verify() JPEG", lambda d: verify(d, trust), in_memory),
        ("sha256 of the file (floor), PNG", lambda d: hashlib.sha256(d).digest(), pngs),
        ("verify() PNG", lambda d: verify(d, trust), pngs),
    ):
        rows.append((name, per_file_ms(fn, files, args.runs)))
        print(f"{name:<36} {rows[-1][1]:8.3f} ms/file {1000 / rows[-1][1]:9,.0f} files/s", flush=True)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    help_text = subprocess.run([*LABELER, "verify", "--help"], capture_output=True, text=True, env=env).stdout
    has_jobs = "--jobs" in help_text
    cli: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        (work / "trusted.pub.pem").write_bytes(key.public_key.to_pem())
        src = work / "in"
        src.mkdir()
        for i, data in enumerate(jpegs[: args.cli_files]):
            (src / f"img{i:05d}.jpg").write_bytes(data)
        common = ["verify", str(src), "--trust", str(work / "trusted.pub.pem"), "--require", "verified"]
        for jobs in (1, 2) if has_jobs else (0,):
            name = f"CLI verify -j {jobs}" if jobs else "CLI verify (no -j option)"
            seconds, cpu = cli_seconds([*common, *(["-j", str(jobs)] if jobs else [])], args.runs, env)
            cli.append((name, seconds, cpu))
            print(
                f"{name:<36} {seconds:8.3f} s {args.cli_files / seconds:9,.0f} files/s (CPU {cpu:.3f} s)",
                flush=True,
            )
        startup = cli_seconds(["--help"], args.runs, env)[0]

    jpeg_kib = statistics.mean(len(d) for d in in_memory) / 1024
    png_kib = statistics.mean(len(d) for d in pngs) / 1024
    print()
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} cores; {len(in_memory)} distinct q90 JPEGs")
    print(f"({jpeg_kib:.0f} KiB), {len(pngs)} PNGs ({png_kib:.0f} KiB), 1024x1024; medians of {args.runs}")
    print()
    print("| what | ms / file | files / s | CPU ms / file |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} | {1000 / ms:,.0f} | |")
    for name, seconds, cpu in cli:
        print(
            f"| {name}, {args.cli_files} files, whole process | {seconds * 1000 / args.cli_files:.3f} | "
            f"{args.cli_files / seconds:,.0f} | {cpu * 1000 / args.cli_files:.3f} |"
        )
    print(f"| `labeler --help` (start-up) | {startup * 1000:.0f} ms once | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
