"""labeler.wsgi cost beside the bare Flask app, in one run.

    .venv/bin/python benchmarks/bench_wsgi.py [--requests 5000] [--events 20000]

Rows (in process, the WSGI callable driven directly, best of 5): a Flask chat endpoint answering
canned JSON, bare and wrapped (one Ed25519 signature per response: WSGI has no event loop to
batch in); a Flask SSE endpoint sending chat chunks, bare and wrapped (per-event cost). Then
first-token latency through gunicorn on loopback (gthread), bare and wrapped: the median time
to the first body bytes of a stream whose app sleeps 50 ms before its second token.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ANSWER = "标签让人们知道内容由人工智能生成。" * 8


def make_app(labelled: bool, token_delay: float = 0.0, events: int = 2) -> Any:
    from _apps import policy
    from flask import Flask, Response, jsonify

    from labeler.wsgi import LabelingMiddleware

    app = Flask("bench")
    envelope = {"id": "chatcmpl-1", "created": 1, "model": "bench"}

    @app.route("/v1/chat/completions", methods=["GET", "POST"])
    def chat() -> Any:
        message = {"role": "assistant", "content": ANSWER}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return jsonify({**envelope, "object": "chat.completion", "choices": [choice]})

    chunk = {
        **envelope,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "token "}}],
    }
    event = f"data: {json.dumps(chunk)}\n\n"

    @app.route("/v1/stream", methods=["GET", "POST"])
    def stream() -> Response:
        def body() -> Iterator[str]:
            for i in range(events):
                yield event
                if token_delay and i == 0:
                    time.sleep(token_delay)
            yield "data: [DONE]\n\n"

        return Response(body(), mimetype="text/event-stream")

    if labelled:
        app.wsgi_app = LabelingMiddleware(app.wsgi_app, policy=policy())  # type: ignore[method-assign]
    return app


def drive(app: Any, path: str, n: int) -> float:
    """Seconds for ``n`` requests through the WSGI callable (environ made fresh per request)."""

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
        return None

    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    t0 = time.perf_counter()
    for _ in range(n):
        result = app(dict(base), start_response)
        for _piece in result:
            pass
        getattr(result, "close", lambda: None)()
    return time.perf_counter() - t0


def best(fn: Any, *args: Any, rounds: int = 5) -> float:
    return min(fn(*args) for _ in range(rounds))


def first_token_ms(labelled: bool, requests: int = 20) -> float:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    factory = f"bench_wsgi:gunicorn_app({labelled})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gthread",
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            factory,
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(base + "/v1/chat/completions", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        times = []
        with httpx.Client() as client:
            for _ in range(requests):
                t0 = time.perf_counter()
                with client.stream("POST", base + "/v1/stream") as response:
                    pieces = response.iter_raw()
                    next(pieces)
                    times.append(time.perf_counter() - t0)
                    for _rest in pieces:
                        pass
        return statistics.median(times) * 1000
    finally:
        proc.terminate()
        proc.wait(10)


def gunicorn_app(labelled: bool) -> Any:
    return make_app(labelled, token_delay=0.05, events=3)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    bare, wrapped = make_app(False), make_app(True)
    json_bare = best(drive, bare, "/v1/chat/completions", args.requests) / args.requests * 1e6
    json_wrapped = best(drive, wrapped, "/v1/chat/completions", args.requests) / args.requests * 1e6
    sbare, swrapped = make_app(False, events=args.events), make_app(True, events=args.events)
    sse_bare = best(drive, sbare, "/v1/stream", 1, rounds=3) / args.events * 1e6
    sse_wrapped = best(drive, swrapped, "/v1/stream", 1, rounds=3) / args.events * 1e6
    first_bare, first_wrapped = first_token_ms(False), first_token_ms(True)
    print(f"python {sys.version.split()[0]}; in process best of 5; gunicorn gthread for first token\n")
    print("| what | bare Flask | with labeler.wsgi | added |")
    print("| --- | ---: | ---: | ---: |")
    added_json, added_event = json_wrapped - json_bare, sse_wrapped - sse_bare
    print(
        f"| JSON chat answer (signed) | {json_bare:.1f} us | {json_wrapped:.1f} us | {added_json:+.1f} us |"
    )
    print(
        f"| SSE chat chunk | {sse_bare:.2f} us/event | {sse_wrapped:.2f} us/event | {added_event:+.2f} us |"
    )
    print(
        f"| first token through gunicorn (median) | {first_bare:.2f} ms | {first_wrapped:.2f} ms "
        f"| {first_wrapped - first_bare:+.2f} ms |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
