"""The platform side (issue 17) against its goals, the bare endpoint side by side, one run.

    .venv/bin/python benchmarks/bench_platform.py [--uploads 200] [--seconds 8]

  gate     median latency of a 1 MP JPEG multipart upload to a bare Starlette endpoint and to the
           same endpoint behind UploadGate (goal: the gate adds <= 5%), one client, sequential;
           the gate verifies every upload (labelled, signed JPEGs)
  serve    `labeler serve`'s POST /v1/verify: uploads verified per second with 4 concurrent
           clients (goal: >= 500/s on 2 cores); the clients share the machine's 2 cores
Each server is a separate uvicorn process (one worker) on loopback.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def _policy() -> object:
    from labeler.demo import demo_policy

    return demo_policy()


def bare_app() -> object:
    """The upload endpoint: reads the form, answers the file's size."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def upload(request: Request) -> JSONResponse:
        form = await request.form()
        f = form["file"]
        size = len(await f.read()) if not isinstance(f, str) else 0
        return JSONResponse({"size": size, "notice": request.headers.get("aigc-notice")})

    return Starlette(routes=[Route("/upload", upload, methods=["POST"])])


def gated_app() -> object:
    from labeler.platform.gate import UploadGate
    from labeler.signing import TrustStore

    policy = _policy()
    return UploadGate(bare_app(), trust=TrustStore([policy.signing_key.public_key]))  # type: ignore[attr-defined]


def serve_app() -> object:
    from labeler.platform.serve import create_app
    from labeler.signing import TrustStore

    policy = _policy()
    return create_app(trust=TrustStore([policy.signing_key.public_key]))  # type: ignore[attr-defined]


class Server:
    def __init__(self, factory: str, command: list[str] | None = None) -> None:
        """``factory`` in this file under uvicorn, or ``command`` (``{port}`` filled in)."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{HERE}"}
        argv = [a.replace("{port}", str(self.port)) for a in command] if command else [
            sys.executable, "-m", "uvicorn", f"bench_platform:{factory}", "--factory",
            "--port", str(self.port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{factory} did not start")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _upload(size: tuple[int, int] = (1152, 896)) -> bytes:
    from labeler import label_content

    img = Image.effect_noise(size, 40).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return label_content(buf.getvalue(), _policy(), watermark=False)  # type: ignore[arg-type]


def latency(url: str, data: bytes, uploads: int) -> float:
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(uploads + 10):
            t = time.perf_counter()
            r = client.post(url, files={"file": ("a.jpg", data, "image/jpeg")})
            r.raise_for_status()
            if i >= 10:  # warm-up excluded
                times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and every process below it (workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, total = {pid}, 0.0
    changed = True
    while changed:
        changed = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    for member in tree:
        total += stats.get(member, (0, 0.0))[1]
    return total


def throughput(url: str, data: bytes, seconds: float, clients: int = 4) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                client.post(url, files={"file": ("a.jpg", data, "image/jpeg")}).raise_for_status()
                done[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    args, _ = parser.parse_known_args()  # benchmarks/run passes every bench the same flags
    data = _upload()
    kib = len(data) // 1024
    print(f"## UploadGate: 1 MP JPEG uploads ({kib} KiB, labelled and signed), median of {args.uploads}\n")
    rows = []
    for name, factory in (("bare endpoint", "bare_app"), ("behind UploadGate", "gated_app")):
        with Server(factory) as server:
            rows.append((name, latency(server.url + "/upload", data, args.uploads)))
    print("| endpoint | median latency | vs bare |\n|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} ms | {ms / rows[0][1]:.2f}x |")
    print(f"\n## labeler serve: POST /v1/verify, 4 clients, {args.seconds:.0f} s\n")
    head = "| server | uploads/s (clients share the cores) | server CPU per upload | on 2 cores of its own |"
    print(head)
    print("|---|---|---|---|")

    def row(name: str, server: Server) -> None:
        before = _tree_cpu(server.proc.pid)
        rate = throughput(server.url + "/v1/verify", data, args.seconds)
        cpu = (_tree_cpu(server.proc.pid) - before) / (rate * args.seconds)
        print(f"| {name} | {rate:.0f} | {cpu * 1000:.2f} ms | {2 / cpu:.0f} (goal >= 500) |")

    with Server("serve_app") as server:
        row("labeler serve, 1 worker", server)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pem = Path(tmp) / "producer.pem"
        pem.write_bytes(_policy().signing_key.public_key.to_pem())  # type: ignore[attr-defined]
        command = [sys.executable, "-m", "labeler.cli", "serve", "--port", "{port}", "--workers", "2"]
        with Server("", [*command, "--trust", str(pem)]) as server:
            row("`labeler serve --workers 2`", server)


if __name__ == "__main__":
    main()
