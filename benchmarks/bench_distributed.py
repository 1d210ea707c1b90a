"""The Ray engine beside the local one, in the same run: labels per second on 1 MP JPEGs.

    .venv/bin/python benchmarks/bench_distributed.py [--files 2000] [--runs 3] [--s3-files 200]

Rows (median of ``--runs``, each to a fresh output): the local engine behind ``labeler apply -j
2`` (``label_files``, 2 worker processes), the Ray engine with 1 and with 2 workers on a local
2-CPU cluster (started once, warmed up: a cluster is started once per night, not per run), all
on ``--files`` distinct 1 MP q90 JPEGs, implicit label + Ed25519 signature, no visible label.
Then the S3 path: the same Ray run over ``--s3-files`` objects in moto's S3 server on loopback,
beside the same number of local files, as a cost per file. Goals (issue 18): Ray 2 workers
>= 1.7x Ray 1 worker, and >= 0.8x the local engine with 2 processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_images(where: Path, n: int) -> None:
    where.mkdir(parents=True)
    for i in range(n):
        img = Image.effect_noise((1000, 1000), 40 + i % 30).convert("RGB")
        img.save(where / f"img{i:05d}.jpg", quality=90)


def median_time(run: Callable[[], int], runs: int, fresh: Callable[[], None], expect: int) -> float:
    times = []
    for _ in range(runs):
        fresh()
        start = time.perf_counter()
        labelled = run()
        times.append(time.perf_counter() - start)
        assert labelled == expect, f"labelled {labelled} of {expect}"
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--s3-files", type=int, default=200)
    args = parser.parse_args()
    try:
        import ray
        from moto.server import ThreadedMotoServer
    except ImportError:
        print("needs the extras: pip install -e '.[ray,s3]' moto[server]")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        src, out = work / "in", work / "out"
        make_images(src, args.files)
        subprocess.run(
            [sys.executable, "-m", "labeler.cli", "keygen", "--out", str(work), "--name", "key"],
            check=True,
            capture_output=True,
        )
        os.environ.update(
            LABELER_PROVIDER_NAME="BenchAI",
            LABELER_PROVIDER_CODE="001191440300708461136T1XGW3",
            LABELER_KEY_FILE=str(work / "key.pem"),
            LABELER_WATERMARK="off",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        from labeler.batch import Options, label_files, plan
        from labeler.distributed.ray_engine import Job, run
        from labeler.distributed.storage import Store

        options = Options(visible=False)
        started = time.perf_counter()
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False
        )
        print(f"(local Ray cluster, 2 CPUs, started in {time.perf_counter() - started:.1f} s: not counted)")

        def fresh() -> None:
            shutil.rmtree(out, ignore_errors=True)

        def local(jobs: int) -> int:
            return label_files(plan([src], out), config=None, options=options, jobs=jobs).labeled

        def on_ray(workers: int, source: Store, target: Store) -> Callable[[], int]:
            def go() -> int:
                job = Job("apply", source, target, options=options)
                rows = [row for batch in run(job, workers=workers) for row in batch]
                return sum(row["status"] == "labeled" for row in rows)

            return go

        ray_local = lambda n: on_ray(n, Store(str(src)), Store(str(out)))  # noqa: E731
        median_time(ray_local(2), 1, fresh, args.files)  # warm-up: worker processes import labeler
        rows: list[tuple[str, float]] = []

        def row(name: str, seconds: float, files: int) -> float:
            rows.append((name, seconds))
            print(f"{name:<48} {seconds:8.3f} s  {files / seconds:8.1f} files/s", flush=True)
            return seconds

        n = args.files
        local2 = row(
            "local engine (labeler apply -j 2)", median_time(lambda: local(2), args.runs, fresh, n), n
        )
        local1 = row(
            "local engine (labeler apply -j 1)", median_time(lambda: local(1), args.runs, fresh, n), n
        )
        ray1 = row("ray engine, 1 worker", median_time(ray_local(1), args.runs, fresh, n), n)
        ray2 = row("ray engine, 2 workers", median_time(ray_local(2), args.runs, fresh, n), n)

        # the S3 path: moto's server on loopback (a Python process on these same 2 cores)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            endpoint = {"endpoint_url": f"http://127.0.0.1:{port}"}
            bucket = Store("s3://bench", endpoint)
            bucket.fs.mkdir("bench")
            names = sorted(p.name for p in src.iterdir())[: args.s3_files]
            for name in names:
                bucket.write(f"bench/in/{name}", (src / name).read_bytes())
            few = work / "few"
            few.mkdir()
            for name in names:
                shutil.copy(src / name, few / name)
            m = len(names)
            s3_out = Store("s3://bench/out", endpoint)

            def fresh_s3() -> None:
                fresh()
                if bucket.fs.exists("bench/out"):
                    bucket.fs.rm("bench/out", recursive=True)
                bucket.fs.invalidate_cache()

            s3 = row(
                f"ray engine, 2 workers, S3 (moto) {m} objects",
                median_time(on_ray(2, Store("s3://bench/in", endpoint), s3_out), args.runs, fresh_s3, m),
                m,
            )
            disk = row(
                f"ray engine, 2 workers, local {m} files",
                median_time(on_ray(2, Store(str(few)), Store(str(out))), args.runs, fresh, m),
                m,
            )
        finally:
            server.stop()
        print()
        print(f"local -j 2 vs -j 1:                 {local1 / local2:5.2f}x")
        print(f"ray 2 workers vs 1 worker:          {ray1 / ray2:5.2f}x   (goal >= 1.7x)")
        print(f"ray 2 workers vs local -j 2:        {local2 / ray2:5.2f}x   (goal >= 0.8x)")
        print(f"per file, S3 (moto) vs local files: {s3 / m * 1000:6.1f} ms vs {disk / m * 1000:6.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
