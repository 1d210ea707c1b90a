"""The demo model server: OpenAI-compatible (chat, Responses, Images, audio speech) and
Anthropic Messages.

A deterministic generator, not a model: the answer depends only on the prompt, in Chinese when
the prompt has Chinese characters, else in English, streamed token by token. Images and
speech are procedural. ``create_app()`` is the bare server (also a realistic upstream in tests);
``labeled_app(policy)`` wraps it in :class:`LabelingMiddleware` with the chat page.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import ToolNotFoundError
from ..middleware import LabelingMiddleware
from ..policy import LabelPolicy
from .images import generate_image
from .speech import FORMATS, synthesize

MODEL = "labeler-demo-model"
_ids = itertools.count(1)


def reply_tokens(prompt: str) -> list[str]:
    """The demo answer to ``prompt``, as stream tokens (words in English, 2 characters in Chinese)."""
    prompt = " ".join(prompt.split())
    if re.search(r"[\u4e00-\u9fff]", prompt):
        text = (
            f"演示模型收到了你的消息：“{prompt[:40]}”。这是一个确定性的示例回答，"
            "用来展示流式输出，以及人工智能生成内容的显式标识和隐式标识。"
        )
        return [text[i : i + 2] for i in range(0, len(text), 2)]
    text = (
        f"The demo model received: “{prompt[:60]}”. This is a deterministic sample answer that "
        "shows streaming output together with visible and machine-readable AI-content labels."
    )
    return re.findall(r"\S+\s*", text)


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _input_text(value: Any) -> str:
    return value if isinstance(value, str) else _last_user_text(value)


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {payload}\n\n".encode()


async def _paced(chunks: Iterator[bytes], delay: float) -> AsyncIterator[bytes]:
    for i, chunk in enumerate(chunks):
        if i and delay:
            await asyncio.sleep(delay)
        yield chunk


def _usage(prompt: str, tokens: list[str]) -> dict[str, int]:
    return {
        "prompt_tokens": len(prompt.split()),
        "completion_tokens": len(tokens),
        "total_tokens": len(prompt.split()) + len(tokens),
    }


def create_app(token_delay: float = 0.03) -> Starlette:
    """The bare demo model server (no labels)."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        prompt = _last_user_text(body.get("messages"))
        tokens = reply_tokens(prompt)
        envelope = {"id": f"chatcmpl-demo{next(_ids)}", "created": int(time.time()), "model": MODEL}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **envelope,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _usage(prompt, tokens),
                }
            )

        def chunks() -> Iterator[bytes]:
            chunk = {**envelope, "object": "chat.completion.chunk"}
            yield _sse(
                {
                    **chunk,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    ],
                }
            )
            for token in tokens:
                yield _sse(
                    {**chunk, "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}
                )
            yield _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            yield _sse("[DONE]")

        return StreamingResponse(_paced(chunks(), token_delay), media_type="text/event-stream")

    async def responses(request: Request) -> Response:
        body = await request.json()
        prompt = _input_text(body.get("input"))
        tokens = reply_tokens(prompt)
        rid, mid, now = f"resp_demo{next(_ids)}", f"msg_demo{next(_ids)}", int(time.time())

        def response(text: str, status: str) -> dict[str, Any]:
            content = (
                [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
            )
            return {
                "id": rid,
                "object": "response",
                "created_at": now,
                "status": status,
                "model": MODEL,
                "output": [
                    {"type": "message", "id": mid, "status": status, "role": "assistant", "content": content}
                ]
                if content
                else [],
                "parallel_tool_calls": False,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": len(prompt.split()),
                    "output_tokens": len(tokens),
                    "total_tokens": len(prompt.split()) + len(tokens),
                }
                if status == "completed"
                else None,
            }

        text = "".join(tokens)
        if not body.get("stream"):
            return JSONResponse(response(text, "completed"))

        def events() -> Iterator[bytes]:
            seq = itertools.count()
            ids = {"item_id": mid, "output_index": 0, "content_index": 0}

            def ev(kind: str, **fields: Any) -> bytes:
                return _sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

            yield ev("response.created", response=response("", "in_progress"))
            yield ev(
                "response.output_item.added",
                output_index=0,
                item={
                    "type": "message",
                    "id": mid,
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                },
            )
            yield ev(
                "response.content_part.added",
                **ids,
                part={"type": "output_text", "text": "", "annotations": []},
            )
            for token in tokens:
                yield ev("response.output_text.delta", **ids, delta=token)
            yield ev("response.output_text.done", **ids, text=text)
            yield ev(
                "response.content_part.done",
                **ids,
                part={"type": "output_text", "text": text, "annotations": []},
            )
            yield ev(
                "response.output_item.done", output_index=0, item=response(text, "completed")["output"][0]
            )
            yield ev("response.completed", response=response(text, "completed"))

        return StreamingResponse(_paced(events(), token_delay), media_type="text/event-stream")

    async def messages(request: Request) -> Response:
        body = await request.json()
        prompt = _last_user_text(body.get("messages"))
        tokens = reply_tokens(prompt)
        mid = f"msg_demo{next(_ids)}"
        usage = {"input_tokens": len(prompt.split()), "output_tokens": len(tokens)}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [{"type": "text", "text": "".join(tokens)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                }
            )

        def events() -> Iterator[bytes]:
            yield _sse(
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": MODEL,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0},
                    },
                },
                "message_start",
            )
            yield _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            )
            for token in tokens:
                yield _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": token},
                    },
                    "content_block_delta",
                )
            yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            yield _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(tokens)},
                },
                "message_delta",
            )
            yield _sse({"type": "message_stop"}, "message_stop")

        return StreamingResponse(_paced(events(), token_delay), media_type="text/event-stream")

    async def images_generate(request: Request) -> Response:
        body = await request.json()
        size = str(body.get("size") or "512x512")
        match = re.fullmatch(r"(\d{2,4})x(\d{2,4})", size)
        if not match or body.get("response_format", "b64_json") != "b64_json":
            return JSONResponse(
                {
                    "error": {
                        "message": "demo supports size WxH and response_format b64_json",
                        "type": "invalid_request_error",
                    }
                },
                status_code=400,
            )
        width, height = min(2048, int(match[1])), min(2048, int(match[2]))
        count = max(1, min(4, int(body.get("n") or 1)))
        prompt = str(body.get("prompt", ""))
        data = [
            {
                "b64_json": base64.b64encode(
                    generate_image(f"{prompt}#{i}", (width, height), "PNG")
                ).decode(),
                "revised_prompt": prompt,
            }
            for i in range(count)
        ]
        return JSONResponse({"created": int(time.time()), "data": data})

    async def image_file(request: Request) -> Response:
        prompt = request.query_params.get("prompt", "demo")
        return Response(generate_image(prompt, (512, 512), "PNG"), media_type="image/png")

    async def speech(request: Request) -> Response:
        body = await request.json()
        fmt = str(body.get("response_format") or "mp3")
        if fmt not in FORMATS:
            return _error(f"demo speech supports response_format {', '.join(FORMATS)}")
        try:
            audio, media_type = await anyio.to_thread.run_sync(synthesize, str(body.get("input", "")), fmt)
        except ToolNotFoundError:
            return _error(f"{fmt} needs ffmpeg on the demo server; ask for response_format wav")
        return Response(audio, media_type=media_type)

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "labeler-demo"}]}
        )

    async def page(request: Request) -> Response:
        return HTMLResponse((resources.files("labeler.demo") / "chat.html").read_text("utf-8"))

    return Starlette(
        routes=[
            Route("/", page),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/images/generations", images_generate, methods=["POST"]),
            Route("/v1/audio/speech", speech, methods=["POST"]),
            Route("/demo/image.png", image_file),
        ]
    )


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=400)


def labeled_app(policy: LabelPolicy, token_delay: float = 0.03, **options: Any) -> LabelingMiddleware:
    """The demo server as a user runs it: wrapped in the labeling middleware."""
    return LabelingMiddleware(create_app(token_delay), policy=policy, **options)
