"""Apps for bench_middleware.py, importable by `uvicorn --factory` in a separate process."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from labeler import LabelPolicy, SigningKey
from labeler.middleware import LabelingMiddleware

ANSWER = (
    "This is a typical chat answer of a few sentences. It explains something briefly, gives an example, "
    "and ends with a short summary so that the body is about as large as a real completion. "
) * 3


def bare() -> Starlette:
    async def chat(request: Request) -> Response:
        await request.body()
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


def policy() -> LabelPolicy:
    return LabelPolicy(
        provider_name="ExampleAI",
        filing_numbers=("Beijing-YunQue-20230821",),
        signing_key=SigningKey.generate(),
    )


def wrapped() -> LabelingMiddleware:
    return LabelingMiddleware(bare(), policy=policy())
