"""The proxy between a real client and a real upstream, both on loopback uvicorn servers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from labeler import LabelPolicy
from labeler.demo.server import create_app
from labeler.middleware import LabelingMiddleware
from labeler.proxy import PathRefusedError, ProxyApp, normalise_path

LABEL = "【AI生成】"


def proxy_for(upstream: str, policy: LabelPolicy, **kw: Any) -> LabelingMiddleware:
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


# -- hardening: the path never leaves the upstream base, hop-by-hop hygiene, body framing ----------


class Recorder:
    """A raw ASGI upstream that records each request as it arrived (raw path, headers, body framing)."""

    def __init__(self, response_headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
        self.seen: list[dict[str, object]] = []
        self.response_headers = list(response_headers)

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        body = b""
        for _ in range(100_000):
            message = await receive()  # type: ignore[operator]
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: list[tuple[str, str]] = [
            (k.decode("latin-1").lower(), v.decode("latin-1"))
            for k, v in scope["headers"]  # type: ignore[attr-defined]
        ]
        self.seen.append(
            {"method": scope["method"], "raw_path": scope["raw_path"], "query": scope["query_string"]}
            | {"headers": headers, "body": body}
        )
        payload = b'{"ok": true}'
        start_headers = [(b"content-type", b"application/json"), *self.response_headers]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": payload})  # type: ignore[operator]

    def header(self, name: str, index: int = -1) -> list[str]:
        return [v for k, v in self.seen[index]["headers"] if k == name]  # type: ignore[attr-defined]


def raw_exchange(
    base: str,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]] = [],  # noqa: B006 - never mutated
    chunks: list[bytes] = [],  # noqa: B006
) -> tuple[int, dict[str, str], bytes]:
    """One request written with h11 on a raw socket: the target goes on the wire byte for byte."""
    import h11

    host, port = httpx.URL(base).host, httpx.URL(base).port
    assert port is not None
    conn = h11.Connection(h11.CLIENT)
    out = conn.send(
        h11.Request(method=method, target=target, headers=[(b"host", f"{host}:{port}".encode()), *headers])
    )
    assert out is not None
    for chunk in chunks:
        out += conn.send(h11.Data(data=chunk)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    status, response_headers, body = 0, {}, b""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(out)
        for _ in range(10_000):  # bounded: a response is a few events
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    return status, response_headers, body


ESCAPES = [
    b"/../secret",
    b"/v1/../../secret",
    b"/v1/models/../../../secret",
    b"/%2e%2e/secret",
    b"/%2E%2E/secret",
    b"/.%2e/secret",
    b"/%2e./secret",
    b"/v1/../..",
]
AMBIGUOUS = [
    b"/v1/..%2fsecret",
    b"/v1/%2F..%2Fsecret",
    b"/v1/a%2fb",
    b"//evil.example/secret",
    b"/v1//models",
    b"/v1\\..\\secret",
    b"/v1/%5c..%5csecret",
    b"/v1/%5C",
    b"/v1/..;/secret",
    b"/v1/.;x/secret",
    b"/%252e%252e/secret",
    b"/v1/%25",
    b"/%c0%ae%c0%ae/secret",
    b"/v1/%00",
    b"/v1/%zz",
    b"/v1/...",
    b"/v1/..%20/secret",
    b"/v1/%EF%BC%8E%EF%BC%8E/secret",  # fullwidth dots: NFKC folds them to ..
    b"/v1/a%EF%BC%8Fb",  # fullwidth solidus
    b"/v1/a|b",
]


@pytest.mark.slow
@pytest.mark.parametrize("target", ESCAPES + AMBIGUOUS, ids=lambda t: t.decode("latin-1"))
def test_hostile_paths_are_refused_before_forwarding(policy: LabelPolicy, target: bytes) -> None:
    recorder = Recorder()
    with serve(recorder) as upstream, serve(proxy_for(f"{upstream}/base", policy)) as proxy:
        status, headers, body = raw_exchange(proxy, b"GET", target)
    assert recorder.seen == []  # nothing left the proxy
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        (b"/v1/./models", b"/base/v1/models"),
        (b"/v1/x/../models", b"/base/v1/models"),
        (b"/v1/x/%2E%2e/models?limit=2", b"/base/v1/models"),
        (b"/v1/models/", b"/base/v1/models/"),
        (b"/v1/x/..", b"/base/v1/"),
        (b"/v1/..", b"/base/"),
        (b"/v1/files/file-a%20b:c@d", b"/base/v1/files/file-a%20b:c@d"),  # other escapes untouched
        (b"/v1/file%2ejson", b"/base/v1/file%2ejson"),
        (b"/", b"/base/"),
    ],
)
def test_dot_segments_inside_the_base_are_removed(
    policy: LabelPolicy, target: bytes, forwarded: bytes
) -> None:
    recorder = Recorder()
    with serve(recorder) as upstream, serve(proxy_for(f"{upstream}/base/", policy)) as proxy:
        status, _, _ = raw_exchange(proxy, b"GET", target)
    assert status == 200
    assert recorder.seen[0]["raw_path"] == forwarded
    assert recorder.seen[0]["query"] == (b"limit=2" if b"?" in target else b"")


HOSTILE_HEADERS = [
    (b"connection", b"close, X-Secret-Hop"),
    (b"x-secret-hop", b"must not reach the upstream"),
    (b"keep-alive", b"timeout=5"),
    (b"proxy-connection", b"keep-alive"),
    (b"te", b"trailers"),
    (b"trailer", b"x-checksum"),
    (b"upgrade", b"h2c"),
    (b"proxy-authorization", b"Basic cHJveHk6c2VjcmV0"),
    (b"x-forwarded-for", b"6.6.6.6"),
    (b"x-forwarded-host", b"evil.example"),
    (b"x-forwarded-proto", b"https"),
    (b"forwarded", b"for=6.6.6.6"),
    (b"x-real-ip", b"6.6.6.6"),
    (b"authorization", b"Bearer sk-secret"),
    (b"x-end-to-end", b"kept"),
]


@pytest.mark.slow
def test_hop_by_hop_and_forwarded_headers_on_the_request(policy: LabelPolicy) -> None:
    recorder = Recorder()
    # uvicorn's own proxy_headers would already have believed the client's X-Forwarded-For
    with serve(recorder) as upstream, serve(proxy_for(upstream, policy), proxy_headers=False) as proxy:
        status, _, _ = raw_exchange(proxy, b"GET", b"/v1/models", HOSTILE_HEADERS)
        netloc = proxy.removeprefix("http://")
    assert status == 200
    names = {name for name, _ in recorder.seen[0]["headers"]}  # type: ignore[attr-defined]
    for dropped in (
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "forwarded",
        "x-real-ip",
        "transfer-encoding",
    ):
        assert dropped not in names, dropped
    assert recorder.header("connection") in ([], ["keep-alive"])  # httpx's own, never the client's
    assert recorder.header("x-forwarded-for") == ["127.0.0.1"]
    assert recorder.header("x-forwarded-host") == [netloc]
    assert recorder.header("x-forwarded-proto") == ["http"]
    assert recorder.header("host") == [upstream.removeprefix("http://")]
    assert recorder.header("authorization") == ["Bearer sk-secret"]
    assert recorder.header("x-end-to-end") == ["kept"]


@pytest.mark.slow
def test_trusted_forwarded_headers_are_appended_to(policy: LabelPolicy) -> None:
    recorder = Recorder()
    extra = (b"x-forwarded-for", b"10.0.0.1")
    with serve(recorder) as upstream:
        trusting = proxy_for(upstream, policy, trust_forwarded=True)
        with serve(trusting, proxy_headers=False) as proxy:
            raw_exchange(proxy, b"GET", b"/v1/models", [*HOSTILE_HEADERS, extra])
    assert recorder.header("x-forwarded-for") == ["6.6.6.6, 10.0.0.1, 127.0.0.1"]
    assert recorder.header("x-forwarded-host") == ["evil.example"]  # what the trusted front proxy saw
    assert recorder.header("x-forwarded-proto") == ["https"]
    assert recorder.header("forwarded") == ["for=6.6.6.6"]
    assert "x-secret-hop" not in {n for n, _ in recorder.seen[0]["headers"]}  # type: ignore[attr-defined]


@pytest.mark.slow
def test_hop_by_hop_headers_on_the_response(policy: LabelPolicy) -> None:
    recorder = Recorder(
        [
            (b"connection", b"X-Upstream-Hop"),
            (b"x-upstream-hop", b"must not reach the client"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-authenticate", b"Basic realm=upstream"),
            (b"proxy-connection", b"keep-alive"),
            (b"upgrade", b"h2c"),
            (b"trailer", b"x-checksum"),
            (b"x-end-to-end", b"kept"),
        ]
    )
    with serve(recorder) as upstream, serve(proxy_for(upstream, policy)) as proxy:
        status, headers, body = raw_exchange(proxy, b"GET", b"/v1/models")
    assert status == 200 and json.loads(body) == {"ok": True}
    for dropped in (
        "x-upstream-hop",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "upgrade",
        "trailer",
    ):
        assert dropped not in headers, dropped
    assert headers["x-end-to-end"] == "kept"


@pytest.mark.slow
@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_no_body_is_forwarded_on_get_or_head(policy: LabelPolicy, method: bytes, framing: str) -> None:
    recorder = Recorder()
    if framing == "chunked":
        headers, chunks = [(b"transfer-encoding", b"chunked")], [b"hel", b"lo"]
    else:
        headers, chunks = [(b"content-length", b"5")], [b"hello"]
    with serve(recorder) as upstream, serve(ProxyApp(upstream)) as proxy:  # the proxy alone
        status, _, _ = raw_exchange(proxy, method, b"/v1/models", headers, chunks)
    assert status == 200
    assert recorder.seen[0]["body"] == b""
    names = {name for name, _ in recorder.seen[0]["headers"]}  # type: ignore[attr-defined]
    assert "transfer-encoding" not in names and "content-length" not in names


@pytest.mark.slow
def test_a_chunked_request_body_goes_upstream_with_a_content_length(policy: LabelPolicy) -> None:
    recorder = Recorder()
    chunks = [b'{"messages": ', b'[{"role": "user", ', b'"content": "hi"}]}']
    with serve(recorder) as upstream, serve(proxy_for(upstream, policy)) as proxy:
        status, _, _ = raw_exchange(
            proxy, b"POST", b"/v1/chat/completions", [(b"transfer-encoding", b"chunked")], chunks
        )
        assert status == 200
        assert recorder.header("transfer-encoding") == []
        assert recorder.header("content-length") == [str(len(b"".join(chunks)))]
        assert recorder.seen[0]["body"] == b"".join(chunks)
        # a declared length streams through with that same length, never re-framed as chunked
        status, _, _ = raw_exchange(proxy, b"POST", b"/v1/x", [(b"content-length", b"3")], [b"abc"])
        assert status == 200 and recorder.header("content-length") == ["3"]
        assert recorder.header("transfer-encoding") == [] and recorder.seen[-1]["body"] == b"abc"


@pytest.mark.slow
def test_a_chunked_request_body_over_the_limit_is_refused(policy: LabelPolicy) -> None:
    recorder = Recorder()
    chunked = [(b"transfer-encoding", b"chunked")]
    with serve(recorder) as upstream, serve(proxy_for(upstream, policy, max_chunked_body=1000)) as proxy:
        status, _, body = raw_exchange(proxy, b"POST", b"/v1/x", chunked, [b"x" * 600, b"y" * 600])
    assert status == 413 and json.loads(body)["error"]["type"] == "invalid_request_error"
    assert recorder.seen == []


# -- the path rule on its own: fast, and a property against the most lenient upstream imaginable --------


@pytest.mark.parametrize("target", ESCAPES + AMBIGUOUS, ids=lambda t: t.decode("latin-1"))
def test_normalise_path_refuses(target: bytes) -> None:
    with pytest.raises(PathRefusedError):
        normalise_path(target)


@pytest.mark.parametrize("target", [b"", b"*", b"v1/models", b"http://evil.example/x", "/v1/é".encode()])
def test_normalise_path_wants_an_ascii_absolute_path(target: bytes) -> None:
    with pytest.raises(PathRefusedError):
        normalise_path(target)


def _lenient_depth(path: str) -> int:
    """How far above the base a careless upstream ends up: it decodes again and again, folds NFKC,
    reads ``\\`` as ``/``, drops ``;params`` and trailing spaces, and reads ``...`` as ``..``."""
    import unicodedata
    from urllib.parse import unquote

    for _ in range(3):
        path = unquote(path)
    depth = lowest = 0
    for segment in unicodedata.normalize("NFKC", path).replace("\\", "/").split("/")[1:]:
        core = segment.split(";")[0].rstrip(" ")
        if len(core) >= 2 and set(core) == {"."}:
            depth -= 1
        elif core not in ("", "."):
            depth += 1
        lowest = min(lowest, depth)
    return lowest


PIECES = [
    "/",
    "a",
    ".",
    "..",
    "2e",
    "%252e",
    "%252F",
    "%255c",
    "%2e",
    "%2E",
    "%2f",
    "%5C",
    "\\",
    ";",
    "%25",
    "%20",
    "%EF%BC%8E",
    "%c0%ae",
    "%",
]


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(PIECES), max_size=10))
def test_normalised_paths_never_climb_above_the_base(pieces: list[str]) -> None:
    raw = ("/" + "".join(pieces)).encode()
    try:
        path = normalise_path(raw)
    except PathRefusedError:
        return
    assert path.startswith(b"/") and b"//" not in path
    assert _lenient_depth(path.decode()) == 0
    assert normalise_path(path) == path  # already normal


@contextlib.contextmanager
def cli_server(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``labeler ARGS --port P`` in a subprocess, as a user runs it; stopped (by its pid) after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labeler.cli", *args, "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: until it listens, it dies, or 30 s
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("trust", [False, True])
def test_the_cli_proxy_sets_x_forwarded_for_itself(trust: bool) -> None:
    """uvicorn believes X-Forwarded-For from loopback by default; `labeler proxy` must not."""
    recorder = Recorder()
    env = {"LABELER_PROVIDER_NAME": "ExampleAI", "LABELER_CONFIG": ""}
    with serve(recorder) as upstream:
        flags = ["--trust-forwarded"] if trust else []
        with cli_server("proxy", "--upstream", upstream, *flags, env=env) as proxy:
            spoofed = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-proto", b"https")]
            status, _, _ = raw_exchange(proxy, b"GET", b"/v1/models", spoofed)
            status_escape, _, _ = raw_exchange(proxy, b"GET", b"/v1/%2e%2e/%2e%2e/secret")
    assert status == 200 and status_escape == 400 and len(recorder.seen) == 1
    assert recorder.header("x-forwarded-for") == (["6.6.6.6, 127.0.0.1"] if trust else ["127.0.0.1"])
    assert recorder.header("x-forwarded-proto") == (["https"] if trust else ["http"])


class _LateStream:
    """An upstream connection whose next write is 0.3 s late (a proxy short of CPU) once armed."""

    late = False

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def write(self, *args: Any, **kwargs: Any) -> None:
        if _LateStream.late:
            _LateStream.late = False
            await asyncio.sleep(0.3)
        await self._stream.write(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@pytest.mark.slow
def test_the_pool_lets_idle_upstream_connections_go_before_the_upstream_closes_them() -> None:
    """An upstream (uvicorn, so vLLM) closes idle keep-alive connections after a few seconds; a
    pooled connection reused just then dies with a reset, and the proxy answered a false 502.
    Forced: upstream keep-alive 2 s, the next request 1.8 s later and written 0.3 s late. Our pool
    drops connections idle for 1 s, so it opens a new one."""
    import httpcore

    class LateBackend(httpcore.AsyncNetworkBackend):
        def __init__(self) -> None:
            self._backend = httpcore.AnyIOBackend()

        async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
            return _LateStream(await self._backend.connect_tcp(*args, **kwargs))

        async def sleep(self, seconds: float) -> None:
            await self._backend.sleep(seconds)

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def go(base: str) -> list[int]:
        proxy = ProxyApp(base)
        proxy.client._transport._pool._network_backend = LateBackend()  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://p") as c:
            first = await c.post("/v1/x", content=b"1")
            await asyncio.sleep(1.8)  # idle 1.8 s of the upstream's 2 s
            _LateStream.late = True  # ... and the request written 0.3 s late: past the 2 s
            second = await c.post("/v1/x", content=b"2")
        return [first.status_code, second.status_code]

    with serve(upstream, timeout_keep_alive=2) as base:
        assert asyncio.run(go(base)) == [200, 200]
