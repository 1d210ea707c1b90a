"""Middleware edges found through the proxy: HEAD answers and paths that only match
``include_paths`` / ``exclude_paths`` once normalised."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from labeler import LabelPolicy
from labeler.middleware import LabelingMiddleware

ANSWER = {
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
}


def test_a_head_answer_passes_without_a_500_or_a_label_claim(policy: LabelPolicy) -> None:
    """HEAD through the proxy to a JSON endpoint was a 500 in closed mode (empty body, JSON error)."""

    async def models(request: Request) -> Response:
        return JSONResponse(ANSWER)

    app = LabelingMiddleware(Starlette(routes=[Route("/v1/models", models, methods=["GET"])]), policy=policy)
    reply = TestClient(app).head("/v1/models")
    assert reply.status_code == 200 and reply.content == b""
    assert "aigc" not in reply.headers and "ai-generated" not in reply.headers


async def _chat_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers any path with a chat completion, as an app whose router normalises paths would."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(ANSWER).encode()})


async def _labelled(app: LabelingMiddleware, path: str) -> bool:
    """Whether the answer to ``path``, as a server hands it over (not normalised), is labelled."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "headers": []}
    await app(scope, receive, send)
    return any(k == b"aigc" for k, _ in sent[0]["headers"])


@pytest.mark.parametrize("path", ["/x/../v1/chat", "//v1//chat", "/v1/./chat", "/v1/chat/../../v1/chat"])
def test_include_and_exclude_paths_judge_the_normalised_path(path: str, policy: LabelPolicy) -> None:
    """A path an app routes to /v1/... can't slip past include_paths=["/v1"] unlabelled, nor
    dodge an excluded prefix by a detour."""
    included = LabelingMiddleware(_chat_app, policy=policy, include_paths=["/v1"])
    assert asyncio.run(_labelled(included, path))
    excluded = LabelingMiddleware(_chat_app, policy=policy, exclude_paths=["/v1/chat"])
    assert not asyncio.run(_labelled(excluded, path))
