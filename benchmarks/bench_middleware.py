"""Middleware cost: req/s of a bare Starlette chat endpoint vs the same wrapped, and the
cost per SSE event, in one run.

    .venv/bin/python benchmarks/bench_middleware.py [--seconds 8] [--connections 32]

HTTP rows: uvicorn (one worker, uvloop + httptools) in its own process on 127.0.0.1, loaded by
`wrk` (Debian package `wrk`) with a bounded run: N connections for S seconds, POSTing a chat
request; the better of two alternating rounds per app. Between the bare endpoint and
LabelingMiddleware sit two floors: a pure-ASGI wrapper that does nothing, and the least any
body-labelling middleware must do (parse, prepend the label, serialise with orjson, fix
Content-Length). Then LabelingMiddleware without a key, with one signature per response, and
as shipped (records of one event-loop turn signed together, Merkle batch). The last rows give
the endpoint 5 ms and 50 ms of awaited model time (real completions take far longer): with a
fixed number of connections every microsecond of CPU also queues the other requests, so the
ratio climbs back to the bare endpoint only as model time grows.
SSE rows: in-process; 20,000 chat.completion.chunk events through the middleware vs through an
unlabelled pass-through of the same stream; per-event cost = difference / events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labeler import jsonfast

HERE = Path(__file__).resolve().parent
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Explain labels briefly."}]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests_per_second(factory: str, seconds: int, connections: int) -> float:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"_apps:{factory}",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
        ],
        cwd=HERE,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        subprocess.run(["wrk", "-t1", "-c8", "-d1s", "-s", script.name, url], capture_output=True, check=True)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError(f"errors under load:\n{out}")
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert match, out
        return float(match.group(1))
    finally:
        server.terminate()
        server.wait(10)


async def _request(asgi, body: bytes = b"", **scope: object) -> None:  # type: ignore[no-untyped-def]
    """One POST /v1/chat/completions through ``asgi`` in process: the request once, then a
    receive that waits as a server does until the client goes away; sends go nowhere."""
    requested = False

    async def receive():  # type: ignore[no-untyped-def]
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()

    async def send(message):  # type: ignore[no-untyped-def]
        return None

    base = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [],
        "query_string": b"",
    }
    await asgi({**base, **scope}, receive, send)


def sse_event_cost(events: int = 20_000) -> tuple[float, float]:
    sys.path.insert(0, str(HERE))
    from _apps import policy
    from starlette.responses import StreamingResponse

    from labeler.middleware import LabelingMiddleware

    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench",
        "choices": [{"index": 0, "delta": {"content": "token "}, "finish_reason": None}],
    }
    event = f"data: {json.dumps(chunk)}\n\n".encode()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        async def body():  # type: ignore[no-untyped-def]
            for _ in range(events):
                yield event
            yield b"data: [DONE]\n\n"

        await StreamingResponse(body(), media_type=scope["media_type"])(scope, receive, send)

    async def drive(asgi, media_type: str) -> float:  # type: ignore[no-untyped-def]
        t0 = time.process_time()  # CPU, not wall: steadier on a shared machine
        await _request(asgi, media_type=media_type)
        return time.process_time() - t0

    middleware = LabelingMiddleware(app, policy=policy())
    best_labeled, best_plain = float("inf"), float("inf")
    for _ in range(3):
        best_labeled = min(best_labeled, asyncio.run(drive(middleware, "text/event-stream")))
        best_plain = min(
            best_plain, asyncio.run(drive(middleware, "text/plain"))
        )  # same path, passed through
    return best_labeled / events * 1e6, (best_labeled - best_plain) / events * 1e6


def json_response_cost(requests: int = 8000, concurrency: int = 32) -> dict[str, float]:
    """In-process CPU per JSON chat response (us), ``concurrency`` requests per event-loop turn
    (as a busy server has them, so batch signing batches), on uvloop as uvicorn runs; best of 5."""
    sys.path.insert(0, str(HERE))
    import uvloop
    from _apps import bare, minimal_rewrite, passthrough, policy

    from labeler.middleware import LabelingMiddleware

    body, headers = BODY.encode(), [(b"content-type", b"application/json")]

    def one(asgi):  # type: ignore[no-untyped-def]
        return _request(asgi, body, headers=headers)

    async def drive(asgi) -> float:  # type: ignore[no-untyped-def]
        t0 = time.process_time()
        for _ in range(requests // concurrency):
            await asyncio.gather(*(one(asgi) for _ in range(concurrency)))
        return (time.process_time() - t0) / requests * 1e6

    apps = {
        "bare": bare(),
        "floor: pure-ASGI wrapper that does nothing": passthrough(),
        "floor: parse, prepend label, serialise, fix length": minimal_rewrite(),
        "LabelingMiddleware, no key": LabelingMiddleware(bare(), policy=policy(signed=False)),
        "LabelingMiddleware as shipped (batch-signed records)": LabelingMiddleware(bare(), policy=policy()),
    }
    cost = dict.fromkeys(apps, float("inf"))
    for _ in range(5):
        for name, app in apps.items():
            cost[name] = min(cost[name], uvloop.run(drive(app)))
    return cost


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--in-process", action="store_true", help="only the in-process CPU rows (no wrk)")
    parser.add_argument("--rounds", type=int, default=2, help="wrk rounds per row (best of)")
    parser.add_argument(
        "--only", choices=["model"], help="model: only the rows behind a 5 ms / 50 ms model (no in-process)"
    )
    args = parser.parse_args()
    if args.only == "model":
        return _wrk_rows(args, [f for f in ROWS if "_model_" in f])
    cpu = json_response_cost()
    print("| in process: CPU per JSON chat response | us | added to bare |")
    print("| --- | ---: | ---: |")
    for name, us in cpu.items():
        print(f"| {name} | {us:.1f} | {us - cpu['bare']:+.1f} |")
    total_us, added_us = sse_event_cost()
    print(f"| SSE chat chunk through the middleware | {total_us:.1f} us/event | +{added_us:.1f} us/event |\n")
    if args.in_process:
        return 0
    return _wrk_rows(args, list(ROWS))


def _wrk_rows(args: argparse.Namespace, rows: list[str]) -> int:
    """The whole-server rows: each a uvicorn process under wrk, rows alternated, best of rounds."""
    if not shutil.which("wrk"):
        print("needs wrk: apt-get install wrk", file=sys.stderr)
        return 1
    rates = dict.fromkeys(rows, 0.0)
    for _ in range(args.rounds):
        for factory in rates:
            rates[factory] = max(rates[factory], requests_per_second(factory, args.seconds, args.connections))
    print(
        f"python {sys.version.split()[0]}; uvicorn 1 worker (uvloop, httptools); wrk -c{args.connections} "
        f"-d{args.seconds}s; best of {args.rounds} rounds; orjson {'on' if jsonfast.FAST else 'off'}\n"
    )
    print("| what | req/s | vs bare | added per response |")
    print("| --- | ---: | ---: | ---: |")
    for factory in rows:
        label = ROWS[factory]
        bare = rates[factory.replace("wrapped_model", "bare_model") if "_model_" in factory else "bare"]
        added = "-" if factory.startswith("bare") else f"{(1 / rates[factory] - 1 / bare) * 1e6:.0f} us"
        print(f"| {label} | {rates[factory]:,.0f} | {rates[factory] / bare:.0%} | {added} |")
    return 0


ROWS = {
    "bare": "bare Starlette chat endpoint",
    "passthrough": "floor: pure-ASGI wrapper that does nothing",
    "minimal_rewrite": "floor: parse, prepend label, serialise, fix length",
    "wrapped_unsigned": "LabelingMiddleware, no key (label + unsigned record)",
    "wrapped_single_signatures": "LabelingMiddleware, one signature per response",
    "wrapped": "LabelingMiddleware as shipped (batch-signed records)",
    "bare_model_5ms": "bare endpoint behind a 5 ms model",
    "wrapped_model_5ms": "same, LabelingMiddleware as shipped",
    "bare_model_50ms": "bare endpoint behind a 50 ms model",
    "wrapped_model_50ms": "same, LabelingMiddleware as shipped",
}


if __name__ == "__main__":
    sys.exit(main())
