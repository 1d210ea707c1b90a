"""labeler.wsgi.LabelingMiddleware: WSGI apps labelled as the ASGI middleware labels them.

In process through Werkzeug's test client and a bare PEP 3333 driver (the app's iterable is
always closed), then the Flask example under a real gunicorn on loopback, read by the openai SDK
and httpx: JSON answers, token streams that stay streams, and pictures that verify."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import SAMPLES

from labeler import LabelPolicy, SigningKey, Status, TrustStore, verify
from labeler.verification import verify_response, verify_stream
from labeler.wsgi import LabelingMiddleware

werkzeug_test = pytest.importorskip("werkzeug.test")

ROOT = Path(__file__).resolve().parent.parent
LABEL = "【AI生成】"
Start = Callable[..., Any]

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "你好。"}, "finish_reason": "stop"}],
}


def chunk(text: str) -> bytes:
    obj = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    obj["choices"] = [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


class Body:
    """An app iterable that records whether the server (here: the middleware) closed it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def app_for(body: Iterable[bytes], content_type: str, status: str = "200 OK", **headers: str) -> Any:
    def app(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        start_response(status, [("Content-Type", content_type), *headers.items()])
        return body

    return app


def call(
    app: Any, method: str = "POST", path: str = "/v1/chat/completions"
) -> tuple[str, dict[str, str], bytes]:
    """Drive ``app`` as a WSGI server does: start_response, iterate, close."""
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
        got["status"], got["headers"] = status, headers
        return lambda data: None

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": None}
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    headers = {k.lower(): v for k, v in got["headers"]}
    return got["status"], headers, body


def test_json_answer_labelled_with_a_record_that_verifies(policy: LabelPolicy, trust: TrustStore) -> None:
    body = Body([json.dumps(CHAT).encode()])
    status, headers, out = call(LabelingMiddleware(app_for(body, "application/json"), policy))
    assert status == "200 OK" and body.closed
    assert json.loads(out)["choices"][0]["message"]["content"] == LABEL + "你好。"
    assert headers["content-length"] == str(len(out)) and headers["ai-generated"] == "true"
    assert verify_response(headers, out, trust).status is Status.VERIFIED
    assert verify_response(headers, out.replace("你好".encode(), b"hi"), trust).status is Status.ALTERED


def test_what_is_not_labelled_is_the_apps_own_iterable(policy: LabelPolicy) -> None:
    body = Body([b"<p>hi</p>"])
    middleware = LabelingMiddleware(app_for(body, "text/html"), policy)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    assert middleware(environ, lambda *a: None) is body  # type: ignore[arg-type]
    not_ours = Body([json.dumps({"hello": "world"}).encode()])
    status, headers, out = call(LabelingMiddleware(app_for(not_ours, "application/json"), policy))
    assert out == b'{"hello": "world"}' and "ai-generated" not in headers and not_ours.closed
    error = Body([json.dumps(CHAT).encode()])
    status, headers, out = call(
        LabelingMiddleware(app_for(error, "application/json", "404 Not Found"), policy)
    )
    assert status == "404 Not Found" and LABEL.encode() not in out


def test_a_lazy_generator_app_and_legacy_write(policy: LabelPolicy, trust: TrustStore) -> None:
    def lazy(environ: dict[str, Any], start_response: Start) -> Iterator[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/json")])
        raw = json.dumps(CHAT).encode()
        write(raw[:10])  # PEP 3333's legacy write(): sent before the iterable
        yield raw[10:]

    _status, headers, out = call(LabelingMiddleware(lazy, policy))
    assert json.loads(out)["choices"][0]["message"]["content"].startswith(LABEL)
    assert verify_response(headers, out, trust).status is Status.VERIFIED


def test_stream_labelled_event_by_event(policy: LabelPolicy, trust: TrustStore) -> None:
    sent: list[str] = []

    def tokens() -> Iterator[bytes]:
        for text in ("你", "好"):
            sent.append(text)
            yield chunk(text)
        yield b"data: [DONE]\n\n"

    middleware = LabelingMiddleware(app_for(tokens(), "text/event-stream"), policy)
    got: dict[str, Any] = {}
    result = middleware(
        {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/chat/completions"},
        lambda status, headers, exc_info=None: got.update(headers=dict(headers)),  # type: ignore[arg-type]
    )
    pieces = iter(result)
    first = next(pieces)
    assert sent == ["你"]  # the first event left before the app made the second: not buffered
    assert got["headers"]["ai-generated"] == "true" and got["headers"]["aigc-provenance"] == "sse-comment"
    assert LABEL.encode() in first and "你".encode() in first
    raw = first + b"".join(pieces)
    assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b": AIGC ") == 1
    assert verify_stream(None, raw, trust).status is Status.VERIFIED


def test_gzip_json_is_decoded_and_labelled(policy: LabelPolicy, trust: TrustStore) -> None:
    packed = gzip.compress(json.dumps(CHAT).encode())
    app = app_for([packed[:20], packed[20:]], "application/json", **{"Content-Encoding": "gzip"})
    _status, headers, out = call(LabelingMiddleware(app, policy))
    assert "content-encoding" not in headers and json.loads(out)["choices"][0]["message"][
        "content"
    ].startswith(LABEL)
    assert verify_response(headers, out, trust).status is Status.VERIFIED


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_failures_follow_fail_mode(policy: LabelPolicy, mode: str) -> None:
    broken = Body([b'{"object": "chat.completion", "choices": [', b"oops"])
    middleware = LabelingMiddleware(app_for(broken, "application/json"), policy, fail_mode=mode)  # type: ignore[arg-type]
    status, headers, out = call(middleware)
    assert broken.closed and middleware.stats[f"fail_{mode}"] == 1 and "ai-generated" not in headers
    if mode == "closed":
        assert status.startswith("500") and json.loads(out)["error"]["code"] == "aigc_label_failed"
    else:
        assert status == "200 OK" and out == b'{"object": "chat.completion", "choices": [oops'


def test_too_large_is_refused_without_reading_the_rest(policy: LabelPolicy) -> None:
    read: list[int] = []

    def endless() -> Iterator[bytes]:
        for i in range(1000):
            read.append(i)
            yield b" " * 1024

    middleware = LabelingMiddleware(app_for(endless(), "application/json"), policy, max_body_size=4096)
    status, _, _ = call(middleware)
    assert status.startswith("500") and len(read) == 5 and middleware.stats["too_large"] == 1


def test_stream_that_breaks_ends_with_the_apis_error_event(policy: LabelPolicy, trust: TrustStore) -> None:
    huge = chunk("x" * 5000)
    app = app_for([chunk("你"), huge, chunk("好")], "text/event-stream")
    status, headers, raw = call(LabelingMiddleware(app, policy, max_event_size=1024))
    assert status == "200 OK" and headers["ai-generated"] == "true"
    assert raw.count(b": AIGC ") == 1 and b"aigc_label_failed" in raw and "好".encode() not in raw
    opened = LabelingMiddleware(
        app_for([chunk("你"), huge, chunk("好")], "text/event-stream"),
        policy,
        max_event_size=1024,
        fail_mode="open",
    )
    _, _, raw = call(opened)
    assert huge in raw and "好".encode() in raw and opened.stats["fail_open"] == 1


def test_picture_labelled_visible_implicit_signed(policy: LabelPolicy, trust: TrustStore) -> None:
    app = app_for([SAMPLES["png"]], "image/png")
    _status, headers, out = call(LabelingMiddleware(app, policy))
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED and headers["content-length"] == str(len(out))
    assert headers["ai-generated"] == "true" and json.loads(headers["aigc"])["Label"] == "1"


def test_info_path_head_and_excluded_paths(policy: LabelPolicy) -> None:
    body = Body([json.dumps(CHAT).encode()])
    middleware = LabelingMiddleware(app_for(body, "application/json"), policy, exclude_paths=["/raw"])
    _status, _headers, out = call(middleware, "GET", "/.well-known/aigc-label")
    assert json.loads(out)["filing_numbers"] == list(policy.filing_numbers)
    assert LABEL.encode() not in call(middleware, "POST", "/raw/x")[2]
    assert LABEL.encode() not in call(middleware, "HEAD")[2]


def test_flask_through_werkzeug_test_client(policy: LabelPolicy, trust: TrustStore) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("t")

    @app.post("/v1/chat/completions")
    def chat() -> Any:
        return flask.jsonify(CHAT)

    app.wsgi_app = LabelingMiddleware(app.wsgi_app, policy)  # type: ignore[method-assign]
    response = werkzeug_test.Client(app).post("/v1/chat/completions", json={})
    assert response.json["choices"][0]["message"]["content"].startswith(LABEL)  # type: ignore[index]
    assert verify_response(response.headers.items(), response.data, trust).status is Status.VERIFIED


# -- the Flask example under a real WSGI server (gunicorn) on loopback -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gunicorn(module: str, env: dict[str, str]) -> Iterator[str]:
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask")
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "--threads",
        "4",
        "-b",
        f"127.0.0.1:{port}",
        module,
    ]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/.well-known/aigc-label", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn did not start: {proc.stderr.read() if proc.stderr else ''}"
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def flask_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TrustStore]]:
    key = SigningKey.generate()
    key_file = tmp_path_factory.mktemp("keys") / "labeler.pem"
    key_file.write_bytes(key.private_pem())
    key_file.chmod(0o600)
    env = {"LABELER_PROVIDER_NAME": "ExampleAI", "LABELER_KEY_FILE": str(key_file), "PYTHONPATH": str(ROOT)}
    with gunicorn("examples.flask_chatbot:app", env) as base:
        yield base, TrustStore([key.public_key])


@pytest.mark.slow
def test_flask_example_under_gunicorn_with_the_openai_sdk(flask_server: tuple[str, TrustStore]) -> None:
    base, trust = flask_server
    client = openai.OpenAI(api_key="x", base_url=base + "/v1", max_retries=0)
    reply = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.parse().choices[0].message.content.startswith(LABEL)  # type: ignore[union-attr]
    raw = httpx.post(base + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert verify_response(raw.headers.items(), raw.content, trust).status is Status.VERIFIED
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith(LABEL) and text.count(LABEL) == 1 and "helpful answer" in text
    picture = httpx.get(base + "/picture.png")
    assert verify(picture.content, trust).status is Status.VERIFIED


@pytest.mark.slow
def test_flask_stream_under_gunicorn_is_not_buffered(flask_server: tuple[str, TrustStore]) -> None:
    """The first token reaches the client while the app still sleeps between later tokens."""
    base, trust = flask_server
    request = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    arrivals: list[float] = []
    raw = b""
    with httpx.stream("POST", base + "/v1/chat/completions", json=request, timeout=10) as response:
        assert response.headers["ai-generated"] == "true"
        for data in response.iter_raw():
            arrivals.append(time.monotonic())
            raw += data
    assert len(arrivals) >= 5  # one piece per token, not one lump
    assert arrivals[-1] - arrivals[0] > 0.1  # tokens 20 ms apart arrived spread out, as sent
    assert verify_stream(None, raw, trust).status is Status.VERIFIED
