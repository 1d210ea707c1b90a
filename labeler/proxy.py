"""An ASGI app that forwards every request to an upstream OpenAI-compatible server.

Wrapped in :class:`LabelingMiddleware` it puts labels in front of a server you can't change
(vLLM, Ollama, llama.cpp, a cloud API). Request bodies and auth headers go upstream untouched,
streamed with their Content-Length (a chunked body is buffered, bounded, to get one: many model
servers refuse chunked uploads); responses come back streamed chunk by chunk (never buffered
here). We ask for ``Accept-Encoding: identity``, since a compressed body can't be labelled.
Upstream trouble becomes a clean JSON error: 504 on a timeout, 502 when unreachable.

A request never leaves the upstream's base path: the path is normalised (RFC 3986
remove_dot_segments) and anything that would climb above it, or that another server could read
differently (encoded slashes or backslashes, ``//``, double encoding, ``..;``), is refused with a
400 before anything is sent. Hop-by-hop headers (RFC 9110 7.6.1) are dropped both ways, and the
``X-Forwarded-*`` headers are ours, not the client's.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterable
from urllib.parse import quote, unquote_to_bytes

import httpx
from starlette.types import Message, Receive, Scope, Send

from .errors import LabelerError

__all__ = ["PathRefusedError", "ProxyApp", "normalise_path"]

logger = logging.getLogger("labeler.proxy")

#: Hop-by-hop headers (RFC 9110 7.6.1, plus the non-standard Proxy-Connection) never cross the
#: proxy, in either direction; nor does any header the Connection header names.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Request headers we set ourselves: Host and the body framing from the upstream URL and the body,
#: Accept-Encoding as identity, Expect because the ASGI server already answered it.
_REPLACED = frozenset({b"host", b"content-length", b"accept-encoding", b"expect"})
#: Claims about earlier hops: a client could forge them, so they pass only with ``trust_forwarded``.
_FORWARDED = frozenset(
    {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"forwarded", b"x-real-ip"}
)

#: RFC 3986 pchar (unreserved, sub-delims, ":" "@", pct-encoded) and "/": all a path may hold.
_PATH_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@%/")
_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(rb"[A-Za-z0-9.\-_:\[\]]{1,255}")


class PathRefusedError(LabelerError, ValueError):
    """A request path the proxy will not forward: it leaves the base path or reads two ways."""


def normalise_path(raw: bytes) -> bytes:
    """``raw`` (a request path as sent, still percent-encoded) with its dot segments removed.

    RFC 3986 5.2.4 remove_dot_segments, with ``%2E`` counted as ``.`` (6.2.2.2). Raises
    :class:`PathRefusedError` when a ``..`` would climb above the root (the RFC would silently
    clamp it; a naive join upstream would not), and when the path is ambiguous: servers disagree
    on ``%2F``, ``\\``/``%5C``, empty segments, ``%25`` (decoded twice), ``..;`` (Tomcat),
    ``..%20`` and ``...`` (Windows), fullwidth dots (NFKC) and overlong UTF-8 (``%C0%AE``).
    Every other byte, escapes included, is kept as sent.
    """
    if not raw.startswith(b"/"):
        raise PathRefusedError("the request target must be an absolute path")
    stray = set(raw) - _PATH_BYTES
    if stray:
        raise PathRefusedError(f"byte {min(stray):#04x} is not allowed in a path")
    if _ESCAPE.search(raw):
        raise PathRefusedError("a '%' that does not start a percent-escape")
    decoded = unquote_to_bytes(raw)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefusedError("percent-escapes that do not decode to UTF-8") from None
    escaped = set(unquote_to_bytes(b"".join(re.findall(rb"%[0-9A-Fa-f]{2}", raw))))
    if escaped & set(b"/\\%") or any(b < 0x20 or b == 0x7F for b in escaped):
        raise PathRefusedError("an encoded '/', '\\', '%' or control character in the path")
    segments = raw.split(b"/")[1:]
    out: list[bytes] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if not segment and not last:
            raise PathRefusedError("an empty path segment ('//')")
        name = unquote_to_bytes(segment).decode("utf-8")
        folded = unicodedata.normalize("NFKC", name)
        if "/" in folded or "\\" in folded:
            raise PathRefusedError("a path segment that folds into '/' or '\\'")
        if name not in (".", "..") and folded.split(";", 1)[0].strip(". ") == "" and folded:
            raise PathRefusedError(f"an ambiguous dot segment {segment.decode()!r}")
        if name == "..":
            if not out:
                raise PathRefusedError("the path climbs above the upstream's base path")
            out.pop()
        elif name != ".":
            out.append(segment)
            continue
        if last:
            out.append(b"")  # "/a/b/.." is "/a/": the trailing slash stays (RFC 3986 5.2.4)
    return b"/" + b"/".join(out)


def _error(status: int, message: str, kind: str) -> tuple[Message, Message]:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class _Refused(Exception):
    """This request gets a 4xx JSON error from the proxy itself and never goes upstream."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for k, v in headers if k.lower() == name]


def end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without the hop-by-hop ones: the fixed list and any the Connection header names."""
    headers = list(headers)
    named = {t.strip().lower() for v in _values(headers, b"connection") for t in v.split(b",")}
    drop = HOP_BY_HOP | named
    return [(k, v) for k, v in headers if k.lower() not in drop]


#: The pool towards the upstream lets an idle connection go after 1 s. Servers close idle
#: keep-alive connections after a few seconds (uvicorn, so vLLM: 5 s); a pooled connection kept
#: as long as that is reused just as the server closes it, and the request dies with a reset: a
#: false 502. Clocks on both sides start at different moments, so our expiry must be well below.
UPSTREAM_POOL = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=1.0)


class ProxyApp:
    def __init__(
        self,
        upstream: str,
        *,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        trust_forwarded: bool = False,
        max_chunked_body: int = 32 * 1024 * 1024,
    ) -> None:
        """``trust_forwarded``: a proxy you run sits in front, so keep its X-Forwarded-* and
        Forwarded headers (we append to X-Forwarded-For). ``max_chunked_body``: a chunked request
        body is buffered to send it with a Content-Length; above this many bytes it is a 413."""
        self.upstream = httpx.URL(upstream.rstrip("/"))
        self.trust_forwarded = trust_forwarded
        self.max_chunked_body = max_chunked_body
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=UPSTREAM_POOL,
            follow_redirects=False,
            trust_env=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not proxied
        try:
            url = self._url(scope)
            headers, content = await self._request(scope, receive)
        except _Refused as exc:
            for message in _error(exc.status, str(exc), "invalid_request_error"):
                await send(message)
            return
        request = self.client.build_request(scope["method"], url, headers=headers, content=content)
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
            out_headers = end_to_end(response.headers.raw)
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

    def _url(self, scope: Scope) -> httpx.URL:
        """The upstream URL: its base path plus the request's normalised path, and the query as sent."""
        raw = scope.get("raw_path") or quote(scope["path"], safe="/!$&'()*+,;=:@").encode("ascii")
        try:
            path = normalise_path(raw)
        except PathRefusedError as exc:
            raise _Refused(400, f"request path refused: {exc}") from None
        query: bytes = scope.get("query_string", b"")
        if any(b < 0x21 or b > 0x7E or b == 0x23 for b in query):
            raise _Refused(400, "request query refused: a byte outside printable ASCII, or '#'")
        return self.upstream.copy_with(
            raw_path=self.upstream.raw_path.rstrip(b"/") + path + (b"?" + query if query else b"")
        )

    async def _request(
        self, scope: Scope, receive: Receive
    ) -> tuple[list[tuple[bytes, bytes]], AsyncIterator[bytes] | bytes | None]:
        """The headers and body to send: framed by a Content-Length, never chunked, none on GET/HEAD."""
        sent: list[tuple[bytes, bytes]] = list(scope["headers"])
        lengths = {v.strip() for v in _values(sent, b"content-length")}
        chunked = bool(_values(sent, b"transfer-encoding"))
        drop = _REPLACED | ({b"x-forwarded-for"} if self.trust_forwarded else _FORWARDED)
        headers = [(k, v) for k, v in end_to_end(sent) if k.lower() not in drop]
        headers += self._forwarded(scope, sent)
        headers.append((b"accept-encoding", b"identity"))
        content: AsyncIterator[bytes] | bytes | None = None
        if scope["method"] in ("GET", "HEAD"):
            return headers, None  # a body there has no meaning (RFC 9110 9.3.1); many servers choke on one
        if lengths and chunked:
            raise _Refused(400, "both Content-Length and Transfer-Encoding: a request smuggling shape")
        if lengths:
            if len(lengths) > 1 or not lengths.pop().isdigit():
                raise _Refused(400, "an invalid Content-Length")
            length = int(_values(sent, b"content-length")[0])
            headers.append((b"content-length", str(length).encode()))
            content = self._stream(receive, length) if length else None
        else:  # chunked (or a server without framing headers): buffer it, bounded, to send a length
            body = await self._buffer(receive)
            if body or chunked:
                headers.append((b"content-length", str(len(body)).encode()))
                content = body
        return headers, content

    def _forwarded(self, scope: Scope, sent: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Our X-Forwarded-For/Host/Proto; with ``trust_forwarded``, the earlier hops' are kept."""
        client = scope.get("client")
        ours: list[tuple[bytes, bytes]] = []
        earlier = b", ".join(_values(sent, b"x-forwarded-for")) if self.trust_forwarded else b""
        if client:
            ip = str(client[0]).encode("ascii", "replace")
            ours.append((b"x-forwarded-for", earlier + b", " + ip if earlier else ip))
        elif earlier:
            ours.append((b"x-forwarded-for", earlier))
        hosts = _values(sent, b"host")
        keep_host = self.trust_forwarded and _values(sent, b"x-forwarded-host")
        if hosts and not keep_host and _HOST.fullmatch(hosts[0]):
            ours.append((b"x-forwarded-host", hosts[0]))
        if not (self.trust_forwarded and _values(sent, b"x-forwarded-proto")):
            ours.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode("ascii", "replace")))
        return ours

    @staticmethod
    async def _stream(receive: Receive, length: int) -> AsyncIterator[bytes]:
        left = length
        while left > 0:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk: bytes = message.get("body", b"")[:left]
            left -= len(chunk)
            yield chunk
            if not message.get("more_body", False):
                return

    async def _buffer(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_chunked_body:
                raise _Refused(413, f"a chunked request body over {self.max_chunked_body} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
