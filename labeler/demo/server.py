"""The demo model server: OpenAI-compatible (chat, Responses, Images, audio speech) and
Anthropic Messages.

A deterministic generator, not a model: the answer depends only on the prompt, in Chinese when
the prompt has Chinese characters, else in English, streamed token by token. Images and
speech are procedural. ``create_app()`` is the bare server (also a realistic upstream in tests);
``labeled_app(policy)`` wraps it in :class:`LabelingMiddleware` with the chat page.

It faces whoever can reach it, so it is strict like the API it imitates: bad JSON or a wrong shape
is a 400 with an OpenAI-style JSON error, a body over ``max_request_body`` a 413 (by its
Content-Length, or counted while a chunked body arrives), and a crash a JSON 500, logged here;
a traceback never reaches the client.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ToolNotFoundError
from ..middleware import LabelingMiddleware
from ..policy import LabelPolicy
from .images import generate_image
from .speech import FORMATS, synthesize

MODEL = "labeler-demo-model"
#: The default request body limit: far above any demo request, far below a memory problem.
MAX_REQUEST_BODY = 1024 * 1024
_ids = itertools.count(1)
logger = logging.getLogger("labeler.demo")


class _BadRequest(Exception):
    """The request is not what the endpoint takes: a 400 (or ``status``) with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _error_response(
    status: int, message: str, path: str = "", headers: Mapping[str, str] | None = None
) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body: dict[str, Any] = {"error": {"message": message, "type": kind}}
    if path.startswith("/v1/messages"):
        body = {"type": "error", **body}  # Anthropic's envelope: the same error inside
    extra = dict(headers or {})
    if status == 413:
        extra["connection"] = "close"  # the rest of the body is unread: don't reuse the connection
    return JSONResponse(body, status_code=status, headers=extra)


async def _json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying why not."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        raise _BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    return body


def _field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str, required: bool = False
) -> Any:
    """``body[name]`` if it is a ``kind`` (never a bool standing in for an int); None if absent."""
    value = body.get(name)
    if value is None:
        if required:
            raise _BadRequest(f"'{name}' is required")
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _BadRequest(f"'{name}' must be {what}")
    return value


def _content_ok(content: Any) -> bool:
    """A message's content: text, absent, or a list of part objects whose text (if any) is text."""
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("text", ""), str) for part in content
    )


def _messages(value: Any, name: str = "messages", role_required: bool = True) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _BadRequest(f"'{name}' must be a non-empty array of message objects")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or (role_required and not isinstance(message.get("role"), str)):
            raise _BadRequest(f"'{name}[{i}]' must be an object with a string 'role'")
        if not _content_ok(message.get("content")):
            raise _BadRequest(f"'{name}[{i}].content' must be a string or an array of content parts")
    return value


def _stream_flag(body: dict[str, Any]) -> bool:
    return bool(_field(body, "stream", bool, "a boolean"))


class _Guard:
    """The demo app's first layer (inside Starlette's own error middleware): the request body
    limit, and a logged JSON 500 instead of a crash while nothing has been sent yet."""

    def __init__(self, app: ASGIApp, max_request_body: int = MAX_REQUEST_BODY) -> None:
        self.app = app
        self.max_request_body = max_request_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = self.max_request_body
        too_big = f"the request body is over the server's limit of {limit} bytes"
        for name, value in scope["headers"]:
            if name.lower() == b"content-length" and value.strip().isdigit() and int(value) > limit:
                await _error_response(413, too_big, path)(scope, receive, send)
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BadRequest(too_big, 413)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if started:
                raise  # mid-response: the server logs it and drops the connection, never a fake ending
            logger.exception("demo server error on %s %s", scope.get("method"), path)
            message = "the demo server failed on this request"
            await _error_response(500, message, path)(scope, receive, send)


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


class DemoModel:
    """The demo model's endpoints (OpenAI chat, Responses, Images, speech; Anthropic Messages),
    each a Starlette endpoint; ``token_delay`` paces streamed tokens like a real model."""

    def __init__(self, token_delay: float = 0.03) -> None:
        self.token_delay = token_delay

    async def chat(self, request: Request) -> Response:
        body = await _json_body(request)
        _field(body, "model", str, "a string")
        prompt = _last_user_text(_messages(body.get("messages")))
        tokens = reply_tokens(prompt)
        envelope = {"id": f"chatcmpl-demo{next(_ids)}", "created": int(time.time()), "model": MODEL}
        if not _stream_flag(body):
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

        return StreamingResponse(_paced(chunks(), self.token_delay), media_type="text/event-stream")

    async def responses(self, request: Request) -> Response:
        body = await _json_body(request)
        _field(body, "model", str, "a string")
        value = _field(body, "input", (str, list), "a string or an array of input items", required=True)
        prompt = value if isinstance(value, str) else _last_user_text(_messages(value, "input", False))
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
        if not _stream_flag(body):
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

        return StreamingResponse(_paced(events(), self.token_delay), media_type="text/event-stream")

    async def messages(self, request: Request) -> Response:
        body = await _json_body(request)
        _field(body, "model", str, "a string")
        _field(body, "max_tokens", int, "an integer")
        prompt = _last_user_text(_messages(body.get("messages")))
        tokens = reply_tokens(prompt)
        mid = f"msg_demo{next(_ids)}"
        usage = {"input_tokens": len(prompt.split()), "output_tokens": len(tokens)}
        if not _stream_flag(body):
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

        return StreamingResponse(_paced(events(), self.token_delay), media_type="text/event-stream")

    async def images_generate(self, request: Request) -> Response:
        body = await _json_body(request)
        prompt = _field(body, "prompt", str, "a string", required=True)
        size = _field(body, "size", str, "a string like 512x512") or "512x512"
        match = re.fullmatch(r"(\d{2,4})x(\d{2,4})", size)
        if not match or (_field(body, "response_format", str, "a string") or "b64_json") != "b64_json":
            raise _BadRequest("demo supports size WxH and response_format b64_json")
        width, height = min(2048, int(match[1])), min(2048, int(match[2]))
        count = max(1, min(4, _field(body, "n", int, "an integer") or 1))
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

    async def image_file(self, request: Request) -> Response:
        prompt = request.query_params.get("prompt", "demo")
        return Response(generate_image(prompt, (512, 512), "PNG"), media_type="image/png")

    async def speech(self, request: Request) -> Response:
        body = await _json_body(request)
        text = _field(body, "input", str, "a string", required=True)
        fmt = _field(body, "response_format", str, "a string") or "mp3"
        if fmt not in FORMATS:
            raise _BadRequest(f"demo speech supports response_format {', '.join(FORMATS)}")
        try:
            audio, media_type = await anyio.to_thread.run_sync(synthesize, text, fmt)
        except ToolNotFoundError:
            raise _BadRequest(f"{fmt} needs ffmpeg on the demo server; ask for response_format wav") from None
        return Response(audio, media_type=media_type)

    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "labeler-demo"}]}
        )

    async def page(self, request: Request) -> Response:
        return HTMLResponse((resources.files("labeler.demo") / "chat.html").read_text("utf-8"))

    async def font(self, request: Request) -> Response:
        """The bundled CJK subset, so the label renders where no CJK font is installed."""
        data = (resources.files("labeler.fonts") / "NotoSansCJKsc-Bold-labeler-subset.otf").read_bytes()
        return Response(data, media_type="font/otf", headers={"cache-control": "max-age=86400"})

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page),
            Route("/font.otf", self.font),
            Route("/v1/models", self.models),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/images/generations", self.images_generate, methods=["POST"]),
            Route("/v1/audio/speech", self.speech, methods=["POST"]),
            Route("/demo/image.png", self.image_file),
        ]


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _BadRequest)
    return _error_response(exc.status, str(exc), request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_response(exc.status_code, exc.detail, request.url.path, exc.headers)


def create_app(token_delay: float = 0.03, *, max_request_body: int = MAX_REQUEST_BODY) -> Starlette:
    """The bare demo model server (no labels); request bodies over ``max_request_body`` bytes are a 413."""
    return Starlette(
        middleware=[Middleware(_Guard, max_request_body=max_request_body)],
        exception_handlers={_BadRequest: _bad_request, HTTPException: _http_error},
        routes=DemoModel(token_delay).routes(),
    )


def labeled_app(
    policy: LabelPolicy,
    token_delay: float = 0.03,
    *,
    max_request_body: int = MAX_REQUEST_BODY,
    **options: Any,
) -> LabelingMiddleware:
    """The demo server as a user runs it: wrapped in the labeling middleware."""
    return LabelingMiddleware(
        create_app(token_delay, max_request_body=max_request_body), policy=policy, **options
    )
