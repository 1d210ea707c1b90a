"""The demo server judged by real clients on loopback uvicorn: bad input is a 400 with an
OpenAI-style JSON error, big bodies a 413, crashes a JSON 500 (logged, never a traceback)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from servers import serve

from labeler import LabelPolicy
from labeler.demo import server as demo_server
from labeler.demo.server import labeled_app

pytestmark = pytest.mark.slow
LIMIT = 64 * 1024

ENDPOINTS = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/images/generations",
    "/v1/audio/speech",
]
NOT_JSON = [b"", b"{not json", b'{"messages": [', b"\xff\xfe\x00garbage", b"[" * 30_000 + b"]" * 30_000]
NOT_AN_OBJECT = [b"[]", b'"text"', b"42", b"null", b"true"]
WRONG_SHAPES = {
    "/v1/chat/completions": [
        {},
        {"messages": "hi"},
        {"messages": []},
        {"messages": ["hi"]},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        {"messages": [{"role": "user", "content": ["part"]}]},
        {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
        {"messages": [{"role": "user", "content": "hi"}], "model": 7},
    ],
    "/v1/responses": [
        {},
        {"input": 5},
        {"input": [5]},
        {"input": [{"role": "user", "content": {"text": "x"}}]},
        {"input": "hi", "stream": 1},
    ],
    "/v1/messages": [
        {"max_tokens": 64},
        {"messages": {"role": "user"}, "max_tokens": 64},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}], "max_tokens": 64},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "64"},
    ],
    "/v1/images/generations": [
        {},
        {"prompt": 5},
        {"prompt": "kite", "n": "2"},
        {"prompt": "kite", "n": True},
        {"prompt": "kite", "n": 1.5},
        {"prompt": "kite", "size": 512},
        {"prompt": "kite", "size": "huge"},
        {"prompt": "kite", "response_format": "url"},
    ],
    "/v1/audio/speech": [
        {},
        {"input": ["hi"]},
        {"input": "hi", "response_format": 3},
        {"input": "hi", "response_format": "aiff"},
    ],
}


@pytest.fixture(scope="module")
def url(policy: LabelPolicy) -> Iterator[str]:
    """The demo as `labeler demo` runs it: wrapped in the labeling middleware."""
    with serve(labeled_app(policy, token_delay=0, max_request_body=LIMIT)) as base:
        yield base


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert "Traceback" not in response.text
    return dict(error)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("body", NOT_JSON + NOT_AN_OBJECT, ids=lambda b: repr(b[:12]))
def test_bad_json_is_a_400(url: str, path: str, body: bytes) -> None:
    response = httpx.post(url + path, content=body, headers={"content-type": "application/json"})
    assert_json_error(response, 400)


@pytest.mark.parametrize(
    ("path", "body"),
    [(path, body) for path, bodies in WRONG_SHAPES.items() for body in bodies],
    ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:60],
)
def test_wrong_shapes_are_a_400(url: str, path: str, body: dict[str, Any]) -> None:
    assert_json_error(httpx.post(url + path, json=body), 400)


def test_anthropic_errors_have_the_anthropic_envelope(url: str) -> None:
    response = httpx.post(url + "/v1/messages", json={"messages": 5})
    assert_json_error(response, 400)
    assert response.json()["type"] == "error"


def test_the_openai_sdk_gets_a_bad_request_error(url: str) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{url}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": 5}])  # type: ignore[misc, list-item]
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="kite", size="huge")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts", voice="alloy", input="hi", response_format="aiff")  # type: ignore[arg-type]
    # and the good requests still work through the same SDK
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_the_anthropic_sdk_gets_a_bad_request_error(url: str) -> None:
    client = anthropic.Anthropic(api_key="x", base_url=url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="m", max_tokens=64, messages=[{"role": "user", "content": 5}])  # type: ignore[list-item, misc]
    assert caught.value.status_code == 400


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_declared_length_over_the_limit_is_a_413(url: str, path: str) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "x" * LIMIT}], "input": "x"}).encode()
    assert_json_error(httpx.post(url + path, content=body), 413)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_chunked_body_over_the_limit_is_a_413(url: str, path: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(2 * LIMIT // 1024):  # bounded: twice the limit
            yield b"x" * 1024
        yield b'"}]}'

    response = httpx.post(url + path, content=chunks())  # an iterator: httpx sends it chunked
    assert_json_error(response, 413)


def test_a_get_declaring_a_big_body_is_a_413(url: str) -> None:
    assert_json_error(httpx.request("GET", url + "/v1/models", content=b"x" * (LIMIT + 1)), 413)


def test_a_body_at_the_limit_is_served(url: str) -> None:
    head = b'{"messages": [{"role": "user", "content": "'
    tail = b'"}]}'
    body = head + b"x" * (LIMIT - len(head) - len(tail)) + tail
    assert len(body) == LIMIT
    response = httpx.post(url + "/v1/chat/completions", content=body)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def test_unknown_paths_and_methods_are_json_errors(url: str) -> None:
    assert_json_error(httpx.get(url + "/v1/nope"), 404)
    response = httpx.get(url + "/v1/chat/completions")
    assert_json_error(response, 405)
    assert "POST" in response.headers["allow"]


def test_a_crash_is_a_json_500_and_logged_not_a_traceback(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("secret internal state /etc/labeler/key.pem")

    monkeypatch.setattr(demo_server, "generate_image", broken)  # a bug in the model
    caplog.set_level(logging.ERROR, logger="labeler.demo")
    response = httpx.post(url + "/v1/images/generations", json={"prompt": "kite"})
    error = assert_json_error(response, 500)
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert error["message"] == "the demo server failed on this request"
    logged = [r for r in caplog.records if r.name == "labeler.demo"]
    assert logged and logged[0].exc_info and "secret internal state" in str(logged[0].exc_info[1])
    # the server still serves
    assert httpx.post(
        url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
    ).is_success


def test_labeler_demo_takes_a_body_limit() -> None:
    from test_proxy import cli_server

    with cli_server("demo", "--max-request-body", "100", env={"LABELER_CONFIG": ""}) as base:
        small = httpx.post(
            base + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert small.status_code == 200 and small.headers["ai-generated"] == "true"
        big = {"messages": [{"role": "user", "content": "x" * 100}]}
        assert_json_error(httpx.post(base + "/v1/chat/completions", json=big), 413)
