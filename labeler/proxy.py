"""An ASGI app that forwards every request to an upstream OpenAI-compatible server.

Wrapped in :class:`LabelingMiddleware` it puts labels in front of a server you can't change
(vLLM, Ollama, llama.cpp, a cloud API). Request bodies and auth headers go upstream untouched,
streamed; responses come back streamed chunk by chunk (never buffered here). The one request
header we change is ``Accept-Encoding: identity``, since a compressed body can't be labelled.
Upstream trouble becomes a clean JSON error: 504 on a timeout, 502 when unreachable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.types import Message, Receive, Scope, Send

__all__ = ["ProxyApp"]

logger = logging.getLogger("labeler.proxy")

#: Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded either way.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "proxy-connection",
}


def _error(status: int, message: str, kind: str) -> tuple[Message, Message]:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class ProxyApp:
    def __init__(
        self,
        upstream: str,
        *,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.upstream = httpx.URL(upstream.rstrip("/"))
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), follow_redirects=False, trust_env=False
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not proxied
        path = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream.copy_with(
            raw_path=self.upstream.raw_path.rstrip(b"/")
            + path
            + (b"?" + scope["query_string"] if scope.get("query_string") else b"")
        )
        headers = [
            (k, v)
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in HOP_BY_HOP and k.lower() != b"accept-encoding"
        ]
        headers.append((b"accept-encoding", b"identity"))

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        request = self.client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            for message in _error(504, f"upstream {self.upstream} timed out", "upstream_timeout"):
                await send(message)
            return
        except httpx.HTTPError as exc:
            for message in _error(
                502, f"upstream {self.upstream} unreachable: {type(exc).__name__}", "upstream_unavailable"
            ):
                await send(message)
            return
        try:
            out_headers = [
                (k, v) for k, v in response.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out_headers}
            )
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:  # upstream died mid-body: end our body cleanly, say why in the log
                logger.warning("upstream closed mid-response: %s", exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
