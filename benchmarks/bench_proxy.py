"""`labeler proxy` CPU per streamed event beside the bare forwarding path, in one run.

    .venv/bin/python benchmarks/bench_proxy.py [--streams 40] [--events 500]

An upstream (uvicorn, its own process) streams chat completions of ``--events`` one-token chunks,
one event per write. Before it, in a second uvicorn process, either ProxyApp alone (the bare
forwarding path) or ProxyApp inside LabelingMiddleware (what `labeler proxy` runs). The client
reads ``--streams`` streams one after another; we read the proxy process's own CPU time
(utime + stime from /proc) before and after, so the figure is the proxy's CPU per event, not
the client's or the upstream's. Best of 3 rounds, alternating.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _uvicorn(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", f"_apps:{factory}", "--factory", "--port", str(port)]
    command += ["--log-level", "warning", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    proc = subprocess.Popen(command, cwd=HERE, env={**os.environ, **env})
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{factory} did not start")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def cpu_per_event(factory: str, upstream: str, streams: int, events: int) -> tuple[float, int]:
    """(proxy CPU us per event, events seen by the client per stream)."""
    port = _free_port()
    proc = _uvicorn(factory, port, {"BENCH_UPSTREAM": upstream})
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions?n={events}"
        body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.Client(timeout=30) as client:
            for _ in range(3):  # warm up: imports, connection pools
                client.post(url, json=body).read()
            before = _cpu_seconds(proc.pid)
            seen = 0
            for _ in range(streams):
                with client.stream("POST", url, json=body) as response:
                    for line in response.iter_lines():
                        seen += line.startswith("data: ")
            used = _cpu_seconds(proc.pid) - before
        return used / (streams * events) * 1e6, seen // streams
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    up_port = _free_port()
    upstream = _uvicorn("stream_upstream", up_port, {})
    try:
        base = f"http://127.0.0.1:{up_port}"
        best = {"proxy_bare": float("inf"), "proxy_labelled": float("inf")}
        seen = {}
        for _ in range(3):
            for factory in best:
                cost, seen[factory] = cpu_per_event(factory, base, args.streams, args.events)
                best[factory] = min(best[factory], cost)
    finally:
        upstream.terminate()
        upstream.wait(10)
    bare, ours = best["proxy_bare"], best["proxy_labelled"]
    print(
        f"python {sys.version.split()[0]}; uvicorn (uvloop, httptools); "
        f"{args.streams} streams x {args.events} events\n"
    )
    print("| proxy process CPU per streamed event | us/event | vs bare forwarding |")
    print("| --- | ---: | ---: |")
    print(f"| ProxyApp alone (bare forwarding) | {bare:.1f} | 1.00x |")
    print(f"| `labeler proxy` (LabelingMiddleware + ProxyApp) | {ours:.1f} | {ours / bare:.2f}x |")
    print(f"\nevents per stream seen by the client: {seen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
