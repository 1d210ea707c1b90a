"""A stand-in OpenAI-compatible model server for the LiteLLM example, tests and benchmark:
Chat Completions, Responses and Images, streamed or not, with canned answers.

    uvicorn --app-dir examples/litellm upstream:app --port 9100

The user's last message steers it: ``slow`` anywhere makes each streamed token wait 0.3 s (the
time a real model takes between tokens); ``tokens:N`` streams N tokens."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = ["Labels", " make", " AI", " content", " easy", " to", " recognise", "."]
SLOW_SECONDS = 0.3


def _last_user_text(body: dict[str, Any]) -> str:
    if isinstance(body.get("input"), str):
        return str(body["input"])
    for message in reversed(body.get("messages") or body.get("input") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _plan(body: dict[str, Any]) -> tuple[list[str], float]:
    text = _last_user_text(body)
    found = re.search(r"tokens:(\d+)", text)
    words = [WORDS[i % len(WORDS)] for i in range(int(found.group(1)))] if found else WORDS
    return words, SLOW_SECONDS if "slow" in text else 0.0


def _sse(obj: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(obj) + "\n\n").encode()


async def chat(request: Request) -> Response:
    body = await request.json()
    words, pause = _plan(body)
    base = {"id": "chatcmpl-up", "created": int(time.time()), "model": body.get("model", "upstream")}
    if not body.get("stream"):
        return JSONResponse(
            {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 5,
                    "completion_tokens": len(words),
                    "total_tokens": 5 + len(words),
                },
            }
        )

    async def events() -> AsyncIterator[bytes]:
        chunk = {**base, "object": "chat.completion.chunk"}
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for word in words:
            if pause:
                await asyncio.sleep(pause)
            yield _sse(
                {**chunk, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            )
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _response(body: dict[str, Any], text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {
        "id": "resp_up",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body.get("model", "upstream"),
        "output": [
            {"type": "message", "id": "msg_up", "status": status, "role": "assistant", "content": content}
        ]
        if status == "completed"
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {"input_tokens": 5, "output_tokens": 8, "total_tokens": 13},
    }


async def responses(request: Request) -> Response:
    body = await request.json()
    words, pause = _plan(body)
    text = "".join(words)
    if not body.get("stream"):
        return JSONResponse(_response(body, text, "completed"))

    async def events() -> AsyncIterator[bytes]:
        seq = iter(range(1000))
        item = {
            "type": "message",
            "id": "msg_up",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_up", "output_index": 0, "content_index": 0}
        created = _response(body, "", "in_progress")
        yield _sse(
            {"type": "response.created", "response": created, "sequence_number": next(seq)},
            "response.created",
        )
        yield _sse(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": item,
                "sequence_number": next(seq),
            },
            "response.output_item.added",
        )
        yield _sse(
            {"type": "response.content_part.added", **where, "part": part, "sequence_number": next(seq)},
            "response.content_part.added",
        )
        for word in words:
            if pause:
                await asyncio.sleep(pause)
            yield _sse(
                {"type": "response.output_text.delta", **where, "delta": word, "sequence_number": next(seq)},
                "response.output_text.delta",
            )
        yield _sse(
            {"type": "response.output_text.done", **where, "text": text, "sequence_number": next(seq)},
            "response.output_text.done",
        )
        done_part = {**part, "text": text}
        yield _sse(
            {"type": "response.content_part.done", **where, "part": done_part, "sequence_number": next(seq)},
            "response.content_part.done",
        )
        done_item = {**item, "status": "completed", "content": [done_part]}
        yield _sse(
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": done_item,
                "sequence_number": next(seq),
            },
            "response.output_item.done",
        )
        yield _sse(
            {
                "type": "response.completed",
                "response": _response(body, text, "completed"),
                "sequence_number": next(seq),
            },
            "response.completed",
        )

    return StreamingResponse(events(), media_type="text/event-stream")


def _png() -> str:
    img = Image.new("RGB", (96, 64), (40, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def image_generations(request: Request) -> Response:
    await request.json()
    return JSONResponse({"created": int(time.time()), "data": [{"b64_json": _png()}]})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/images/generations", image_generations, methods=["POST"]),
    ]
)
