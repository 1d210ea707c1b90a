"""Hold a bounded loopback load on the labelled demo server and check it stays healthy.

    .venv/bin/python benchmarks/load_middleware.py [--requests 10000] [--concurrency 50]

uvicorn serves the demo model wrapped in LabelingMiddleware in its own process; an httpx client
keeps ``--concurrency`` requests in flight: streamed chat (SSE), JSON chat, streamed Responses,
image generations, and clients that hang up mid-stream. Every answer is checked (status 200,
the label present exactly once, ``[DONE]`` last). At the end the server must be back to its
idle number of asyncio tasks, and its resident memory flat after warm-up. Exit 1 otherwise.

The client lets a pooled connection go after 1 s idle, well before uvicorn closes it (5 s, its
default). With both at 5 s (httpx's and uvicorn's defaults) a request now and then went out on a
connection the server was closing that moment, and failed with ``ReadError`` (issue 13).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
LABEL = "【AI生成】"
#: uvicorn's keep-alive timeout (its default, as ``labeler serve`` runs): idle connections close after it.
SERVER_KEEP_ALIVE = 5
MIX = ["chat-stream"] * 10 + ["chat-json"] * 5 + ["responses-stream"] * 3 + ["image"] + ["hang-up"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_limits(concurrency: int, server_keep_alive: float = SERVER_KEEP_ALIVE) -> httpx.Limits:
    """The client's pool: it must give up an idle connection *before* the server closes it.

    The server starts its idle clock when it has written a response, the client when it has
    read it and taken the connection out of the pool again; a starved client lags by hundreds of
    milliseconds. Equal timeouts leave a connection that looks alive to the client for that lag
    after the server closed it; a request written into it dies (reset: ``ReadError``). An expiry
    of a fifth of the server's timeout leaves the rest (4 s of 5) for that lag.
    """
    return httpx.Limits(
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        keepalive_expiry=server_keep_alive / 5,
    )


def describe(exc: BaseException) -> str:
    """The exception and the OS error under it: httpx's ``ReadError`` alone has an empty message."""
    chain = [exc]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 5:
        chain.append(inner)
    return " <- ".join(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__ for e in chain)


async def one(client: httpx.AsyncClient, kind: str, i: int) -> None:
    messages = [{"role": "user", "content": f"question {i}: 你好" if i % 2 else f"question {i}"}]
    if kind == "chat-json":
        r = await client.post("/v1/chat/completions", json={"model": "m", "messages": messages})
        r.raise_for_status()
        text = r.json()["choices"][0]["message"]["content"]
        assert text.count(LABEL) == 1 and r.headers["ai-generated"] == "true", text
    elif kind == "image":
        r = await client.post("/v1/images/generations", json={"prompt": f"p{i}", "size": "64x64"})
        r.raise_for_status()
        assert len(r.json()["data"]) == 1
    else:
        path, body = (
            ("/v1/responses", {"model": "m", "input": messages[0]["content"], "stream": True})
            if kind == "responses-stream"
            else ("/v1/chat/completions", {"model": "m", "messages": messages, "stream": True})
        )
        async with client.stream("POST", path, json=body) as r:
            r.raise_for_status()
            lines = []
            async for line in r.aiter_lines():
                lines.append(line)
                if kind == "hang-up" and len(lines) >= 4:
                    return  # the client goes away mid-stream; the server must clean up
        data = [ln[6:] for ln in lines if ln.startswith("data: ")]
        if kind == "chat-stream":
            assert data[-1] == "[DONE]", data[-3:]
            text = "".join(
                (json.loads(d)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for d in data[:-1]
            )
        else:
            text = json.loads(data[-1])["response"]["output"][0]["content"][0]["text"]
        assert text.count(LABEL) == 1, text[:80]
        assert any(ln.startswith(": AIGC ") for ln in lines), "signed record comment missing"


async def drive(base: str, requests: int, concurrency: int) -> dict[str, object]:
    limits = client_limits(concurrency)
    errors: list[str] = []
    done = 0
    samples: list[dict[str, int]] = []
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def debug() -> dict[str, int]:
            info = (await client.get("/_debug")).json()
            return {"tasks": info["tasks"], "rss_kb": info["rss_kb"]}

        await asyncio.sleep(0.2)
        idle = await debug()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    await one(client, MIX[i % len(MIX)], i)
                except Exception as exc:  # every failure is reported
                    errors.append(f"{MIX[i % len(MIX)]} #{i}: {describe(exc)}"[:300])
                done += 1
                if done % max(1, requests // 10) == 0:
                    samples.append(await debug())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.5)  # let the server finish closing hung-up streams
        end = await debug()
    return {"idle": idle, "samples": samples, "end": end, "errors": errors, "seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "_apps:load_target", "--factory", "--port", str(port),
         "--timeout-keep-alive", str(SERVER_KEEP_ALIVE), "--log-level", "error", "--no-access-log"],
        cwd=HERE,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        result = asyncio.run(drive(f"http://127.0.0.1:{port}", args.requests, args.concurrency))
    finally:
        server.terminate()
        server.wait(10)
    idle, end, samples = result["idle"], result["end"], result["samples"]
    errors: list[str] = result["errors"]  # type: ignore[assignment]
    assert isinstance(idle, dict) and isinstance(end, dict) and isinstance(samples, list)
    warm = samples[0]["rss_kb"] if samples else idle["rss_kb"]
    peak = max([s["rss_kb"] for s in samples] + [end["rss_kb"]])
    growth_kb = end["rss_kb"] - warm
    leaked = end["tasks"] - idle["tasks"]
    rate = args.requests / float(result["seconds"])  # type: ignore[arg-type]
    print(
        f"requests {args.requests:,} with {args.concurrency} in flight in {result['seconds']:.1f} s "
        f"({rate:,.0f} req/s); mix per 20: 10 chat streams, 5 chat JSON, 3 Responses streams, "
        "1 image, 1 client hanging up mid-stream"
    )
    print(f"errors: {len(errors)}")
    for line in errors[:10]:
        print("  ", line)
    print(f"asyncio tasks: idle {idle['tasks']}, after the load {end['tasks']} (leaked {leaked})")
    print(
        f"server RSS: idle {idle['rss_kb'] / 1024:.1f} MB, after the first 10% {warm / 1024:.1f} MB, "
        f"peak {peak / 1024:.1f} MB, end {end['rss_kb'] / 1024:.1f} MB "
        f"(growth after warm-up {growth_kb / 1024:+.1f} MB)"
    )
    ok = not errors and leaked <= 0 and growth_kb < 16 * 1024
    print("result:", "held" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
