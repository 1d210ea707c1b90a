"""Apps for bench_middleware.py, importable by `uvicorn --factory` in a separate process."""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labeler import LabelPolicy, SigningKey, jsonfast
from labeler.middleware import LabelingMiddleware

ANSWER = (
    "This is a typical chat answer of a few sentences. It explains something briefly, gives an example, "
    "and ends with a short summary so that the body is about as large as a real completion. "
) * 3


def bare(model_seconds: float = 0.0) -> Starlette:
    """The chat endpoint: a canned answer, after ``model_seconds`` of (awaited) model time."""

    async def chat(request: Request) -> Response:
        await request.body()
        if model_seconds:
            await asyncio.sleep(model_seconds)
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "bench",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 120, "total_tokens": 130},
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def policy(signed: bool = True) -> LabelPolicy:
    return LabelPolicy(
        provider_name="ExampleAI",
        filing_numbers=("Beijing-YunQue-20230821",),
        signing_key=SigningKey.generate() if signed else None,
    )


def wrapped() -> LabelingMiddleware:
    return LabelingMiddleware(bare(), policy=policy())


# The endpoint behind a model that answers in 5 ms or 50 ms (awaited, as a server awaits its
# model); real chat completions take hundreds to thousands of milliseconds.


def bare_model_5ms() -> Starlette:
    return bare(0.005)


def wrapped_model_5ms() -> LabelingMiddleware:
    return LabelingMiddleware(bare(0.005), policy=policy())


def bare_model_50ms() -> Starlette:
    return bare(0.05)


def wrapped_model_50ms() -> LabelingMiddleware:
    return LabelingMiddleware(bare(0.05), policy=policy())


def wrapped_single_signatures() -> LabelingMiddleware:
    return LabelingMiddleware(bare(), policy=policy(), batch_signatures=False)


def wrapped_unsigned() -> LabelingMiddleware:
    return LabelingMiddleware(bare(), policy=policy(signed=False))


def passthrough() -> ASGIApp:
    """The floor of any pure-ASGI middleware: wraps ``send`` and does nothing else."""
    app = bare()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_send(message: Message) -> None:
            await send(message)

        await app(scope, receive, wrapped_send)

    return middleware


def minimal_rewrite() -> ASGIApp:
    """The floor of any middleware that labels the JSON body: parse it, prepend the label to the
    content, serialise it (orjson), fix Content-Length, add one header. No record, no checks."""
    app = bare()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            obj, encode = jsonfast.parse(message["body"])
            for choice in obj["choices"]:
                choice["message"]["content"] = "【AI生成】\n\n" + choice["message"]["content"]
            body = encode(obj)
            headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            headers += [(b"content-length", str(len(body)).encode()), (b"ai-generated", b"true")]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, rewriting_send)

    return middleware


def load_target() -> object:
    """The demo model server, labelled, as load_middleware.py drives it, plus ``GET /_debug``
    (outside the middleware): live asyncio tasks, resident memory, the middleware's counters."""
    import asyncio
    import gc
    import json

    from labeler.demo.server import labeled_app

    labeled = labeled_app(policy(), token_delay=0.002)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] == "/_debug":
            gc.collect()
            with open("/proc/self/status") as status:
                rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            body = json.dumps(
                {"tasks": len(asyncio.all_tasks()), "rss_kb": rss_kb, "stats": dict(labeled.stats)}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await labeled(scope, receive, send)

    return app


# -- the proxy: an upstream streaming chat chunks, and ProxyApp before it (bench_proxy.py) --------


def stream_upstream() -> Starlette:
    """An OpenAI-compatible upstream that streams ``?n=`` one-token chat chunks, as fast as it can."""
    import json as _json

    from starlette.responses import StreamingResponse

    def chunk(text: str) -> bytes:
        obj = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "bench",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
        return f"data: {_json.dumps(obj)}\n\n".encode()

    async def chat(request: Request) -> Response:
        await request.body()
        n = int(request.query_params.get("n", "500"))

        async def events():  # type: ignore[no-untyped-def]
            for _ in range(n):
                yield chunk("token ")
                await asyncio.sleep(0)  # one event per write, as a model server emits them
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def proxy_bare() -> ASGIApp:
    """ProxyApp forwarding to $BENCH_UPSTREAM, no labelling: the bare forwarding path."""
    import os

    from labeler.proxy import ProxyApp

    return ProxyApp(os.environ["BENCH_UPSTREAM"])


def proxy_labelled() -> LabelingMiddleware:
    """``labeler proxy``: LabelingMiddleware around ProxyApp."""
    return LabelingMiddleware(proxy_bare(), policy=policy())
