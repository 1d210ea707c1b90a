"""The proxy between a real client and a real upstream, both on loopback uvicorn servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from labeler import LabelPolicy
from labeler.demo.server import create_app
from labeler.middleware import LabelingMiddleware
from labeler.proxy import ProxyApp

LABEL = "【AI生成】"


def proxy_for(upstream: str, policy: LabelPolicy, **kw: float) -> LabelingMiddleware:
    return LabelingMiddleware(ProxyApp(upstream, **kw), policy=policy)


@pytest.mark.slow
def test_openai_sdk_through_proxy_to_a_real_upstream(policy: LabelPolicy) -> None:
    with serve(create_app(token_delay=0.005)) as upstream, serve(proxy_for(upstream, policy)) as proxy:
        client = openai.OpenAI(api_key="sk-test", base_url=f"{proxy}/v1", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content.startswith(LABEL)  # type: ignore[union-attr]
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.startswith(LABEL) and text.count(LABEL) == 1
        assert client.responses.create(model="m", input="x").output_text.startswith(LABEL)
        assert client.models.list().data[0].id == "labeler-demo-model"  # unlabelled shapes pass through


def _echo_app() -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "authorization": request.headers.get("authorization"),
                "accept_encoding": request.headers.get("accept-encoding"),
                "sha256": hashlib.sha256(body).hexdigest(),
                "query": request.url.query,
            }
        )

    async def dies(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": "a"}}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0.05)
            raise RuntimeError("upstream crashed mid-stream")

        return StreamingResponse(body(), media_type="text/event-stream")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/dies", dies, methods=["POST"]),
            Route("/slow", slow),
        ]
    )


@pytest.mark.slow
def test_request_body_and_auth_forwarded_untouched(policy: LabelPolicy) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 100_000}]}).encode()
    with serve(_echo_app()) as upstream, serve(proxy_for(upstream, policy)) as proxy:
        echoed = httpx.post(
            f"{proxy}/echo?a=1&b=%20",
            content=body,
            headers={"authorization": "Bearer sk-secret", "content-type": "application/json"},
        ).json()
    assert echoed == {
        "authorization": "Bearer sk-secret",
        "accept_encoding": "identity",
        "sha256": hashlib.sha256(body).hexdigest(),
        "query": "a=1&b=%20",
    }


@pytest.mark.slow
def test_upstream_failures_become_clean_errors(policy: LabelPolicy) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens here any more
    with serve(proxy_for(dead, policy)) as proxy:
        response = httpx.get(f"{proxy}/v1/models")
        assert response.status_code == 502 and response.json()["error"]["type"] == "upstream_unavailable"
    with serve(_echo_app()) as upstream, serve(proxy_for(upstream, policy, timeout=0.3)) as proxy:
        response = httpx.get(f"{proxy}/slow", timeout=10)
        assert response.status_code == 504 and response.json()["error"]["type"] == "upstream_timeout"
        with httpx.stream("POST", f"{proxy}/dies", timeout=10) as stream:
            received = b"".join(stream.iter_raw())
        assert received.startswith(b"data: {") and stream.status_code == 200  # ended cleanly, no hang
