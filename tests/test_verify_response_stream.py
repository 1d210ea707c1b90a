"""``verify_response`` / ``verify_stream`` (issue 13g): one record or a malformed label, the raw
stream alone is enough, and any garbage in gives a verdict, never an exception."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from labeler import LabelPolicy, Status, TrustStore
from labeler.adapters import stream_text
from labeler.demo.server import create_app
from labeler.middleware import LabelingMiddleware, verify_response, verify_stream

LABEL = "【AI生成】"


def wrap(app: object, policy: LabelPolicy, **options: object) -> LabelingMiddleware:
    return LabelingMiddleware(app, policy=policy, **options)  # type: ignore[arg-type]


def demo_stream(policy: LabelPolicy, path: str, body: dict[str, object], position: str = "both") -> bytes:
    client = TestClient(wrap(create_app(token_delay=0), policy, text_position=position))
    return client.post(path, json=body).content


CHAT = ("/v1/chat/completions", {"messages": [{"role": "user", "content": "你好"}], "stream": True})
RESPONSES = ("/v1/responses", {"input": "stream me", "stream": True})
MESSAGES = (
    "/v1/messages",
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "stream": True},
)


# -- one record, or a malformed label ----------------------------------------------------------------


def test_two_aigc_comments_are_a_malformed_label(policy: LabelPolicy, trust: TrustStore) -> None:
    raw = demo_stream(policy, *CHAT)
    assert verify_stream(raw, trust=trust).status is Status.VERIFIED
    comment = next(line for line in raw.split(b"\n\n") if line.startswith(b": AIGC "))
    doubled = raw.replace(comment, comment + b"\n\n" + comment)
    verdict = verify_stream(doubled, trust=trust)
    assert verdict.status is Status.MALFORMED_LABEL and "2 AIGC comments" in verdict.problems[0]
    other = demo_stream(policy, *CHAT).split(b": AIGC ")[1].split(b"\n")[0]  # another record
    assert verify_stream(raw + b": AIGC " + other + b"\n\n", trust=trust).status is Status.MALFORMED_LABEL


def test_two_aigc_headers_are_a_malformed_label_however_the_headers_come(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    app = wrap(create_app(token_delay=0), policy)
    reply = TestClient(app).post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
    )
    value = reply.headers["aigc"]
    assert verify_response(reply.headers, reply.content, trust).status is Status.VERIFIED
    pairs = [("content-type", "application/json"), ("AIGC", value), ("aigc", value)]
    for headers in (
        httpx.Headers(pairs),
        Headers(raw=[(k.lower().encode(), v.encode()) for k, v in pairs]),
        pairs,
        [(k.encode(), v.encode()) for k, v in pairs],
        {"AIGC": value, "aigc": value},
        {"aigc": f"{value}, {value}"},  # what a client that joins duplicate headers hands over
    ):
        verdict = verify_response(headers, reply.content, trust)  # type: ignore[arg-type]
        assert verdict.status is Status.MALFORMED_LABEL, headers
        assert "AIGC header" in verdict.problems[0]


def test_no_record_is_no_label_not_an_exception(policy: LabelPolicy) -> None:
    assert verify_response({"content-type": "application/json"}, b"{}").status is Status.NO_LABEL
    assert verify_stream(b"data: {}\n\n").status is Status.NO_LABEL
    assert verify_stream("text", b"data: {}\n\n").status is Status.NO_LABEL
    assert verify_response({"aigc": "{not json"}, b"{}").status is Status.MALFORMED_LABEL
    assert verify_stream(b": AIGC {not json\n\n").status is Status.MALFORMED_LABEL


# -- the raw stream alone --------------------------------------------------------------------------------


@pytest.mark.parametrize("api", [CHAT, RESPONSES, MESSAGES], ids=["chat", "responses", "anthropic"])
@pytest.mark.parametrize("position", ["start", "end", "both"])
def test_the_raw_stream_alone_verifies(
    policy: LabelPolicy, trust: TrustStore, api: tuple[str, dict[str, object]], position: str
) -> None:
    raw = demo_stream(policy, *api, position=position)
    text = stream_text(raw)
    assert text.startswith(LABEL) is (position != "end") and text.endswith(LABEL) is (position != "start")
    assert verify_stream(raw, trust=trust).status is Status.VERIFIED
    assert verify_stream(None, raw, trust).status is Status.VERIFIED
    assert verify_stream(text, raw, trust).status is Status.VERIFIED
    token = "演示" if api is CHAT else "deterministic"
    forged = raw.replace(token.encode(), "篡改".encode() if api is CHAT else b"falsified")
    assert forged != raw and verify_stream(forged, trust=trust).status is Status.ALTERED


def _chat_chunk(content: str | None, finish: str | None = None, role: bool = False) -> bytes:
    delta: dict[str, object] = {} if content is None else {"content": content}
    if role:
        delta["role"] = "assistant"
    obj = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    obj["choices"][0]["finish_reason"] = finish  # type: ignore[index]
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def _serving(chunks: list[bytes]) -> Starlette:
    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])


def test_text_and_finish_in_one_chunk_keep_the_end_label_last(policy: LabelPolicy, trust: TrustStore) -> None:
    """The end label went out before the chunk that carried both the last text and the finish:
    the client saw it mid-text and the record signed another order."""
    upstream = [_chat_chunk("Hello", role=True), _chat_chunk(" world", finish="stop"), b"data: [DONE]\n\n"]
    raw = TestClient(wrap(_serving(upstream), policy, text_position="end")).post("/v1/chat/completions")
    text = stream_text(raw.content)
    assert text == "Hello world" + text[len("Hello world") :] and text.endswith(LABEL)
    assert verify_stream(raw.content, trust=trust).status is Status.VERIFIED
    finish = [
        json.loads(line[6:]) for line in raw.content.split(b"\n\n") if b'"finish_reason": "stop"' in line
    ]
    assert finish == [] or all(not c["choices"][0]["delta"] for c in finish)


@settings(max_examples=40)
@example(tokens=["a", "b"], finish_with_text=True, role_alone=False, position="end", step=200)
@given(
    tokens=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8),
    finish_with_text=st.booleans(),
    role_alone=st.booleans(),
    position=st.sampled_from(["start", "end", "both"]),
    step=st.integers(1, 200),
)
def test_any_chat_stream_through_the_middleware_verifies_from_its_raw_bytes(
    policy: LabelPolicy,
    trust: TrustStore,
    tokens: list[str],
    finish_with_text: bool,
    role_alone: bool,
    position: str,
    step: int,
) -> None:
    first, *rest = tokens
    chunks = (
        [_chat_chunk(None, role=True), _chat_chunk(first)] if role_alone else [_chat_chunk(first, role=True)]
    )
    chunks += [_chat_chunk(t) for t in rest[:-1]] if finish_with_text else [_chat_chunk(t) for t in rest]
    chunks.append(_chat_chunk(rest[-1] if finish_with_text and rest else None, finish="stop"))
    body = b"".join(chunks) + b"data: [DONE]\n\n"
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    raw = (
        TestClient(wrap(_serving(pieces), policy, text_position=position))
        .post("/v1/chat/completions")
        .content
    )
    text = stream_text(raw)
    assert text.replace(LABEL + "\n\n", "").replace("\n\n" + LABEL, "") == "".join(tokens)
    assert verify_stream(raw, trust=trust).status is Status.VERIFIED


# -- never raises on content -------------------------------------------------------------------------------


@given(blob=st.binary(max_size=600), text=st.text(max_size=40))
def test_garbage_in_gives_a_verdict(blob: bytes, text: str) -> None:
    for verdict in (
        verify_stream(blob),
        verify_stream(text, blob),
        verify_stream(b": AIGC " + blob),
        verify_response({"aigc": blob.decode("latin-1")}, blob),
        verify_response([(b"AIGC", blob)], b""),
        verify_response({"aigc": text}, blob),
    ):
        assert verdict.status in Status
