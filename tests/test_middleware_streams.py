"""Streams never lie (issue 13d): a response the middleware cannot label fails per ``fail_mode``,
and no header claims a label, or announces a provenance comment, that does not come."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from labeler import LabelPolicy, Status, TrustStore
from labeler.aigc import AigcRecord
from labeler.middleware import LabelingMiddleware, verify_response, verify_stream

LABEL = "【AI生成】"
CLAIMS = ("ai-generated", "aigc", "aigc-label", "aigc-filing-number", "aigc-provenance")
pytestmark = pytest.mark.anyio


def wrap(app: object, policy: LabelPolicy, **options: object) -> LabelingMiddleware:
    return LabelingMiddleware(app, policy=policy, **options)  # type: ignore[arg-type]


def serving(chunks: list[bytes], media_type: str, headers: dict[str, str] | None = None) -> Starlette:
    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type=media_type, headers=headers)

    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["GET", "POST"])])


def chunk(content: str | None = None, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict[str, object] = {"content": content} if content is not None else {}
    if role:
        delta["role"] = "assistant"
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(obj)}\n\n".encode()


def claims(headers: httpx.Headers) -> list[str]:
    return [name for name in CLAIMS if name in headers]


def chat_stream(*contents: str) -> list[bytes]:
    return [chunk(role=True), *(chunk(c) for c in contents), chunk(finish="stop"), b"data: [DONE]\n\n"]


BIG = b"data: " + json.dumps({"object": "chat.completion.chunk", "pad": "x" * 3000}).encode() + b"\n\n"


# -- an SSE event over the size bound -----------------------------------------------------------------


def test_event_over_the_bound_first_fails_closed_before_the_headers(policy: LabelPolicy) -> None:
    app = wrap(serving([BIG, *chat_stream("hi")], "text/event-stream"), policy, max_event_size=1024)
    response = TestClient(app).post("/v1/chat/completions")
    assert response.status_code == 500 and response.json()["error"]["code"] == "aigc_label_failed"
    assert claims(response.headers) == [] and app.stats["fail_closed"] == 1


def test_event_over_the_bound_first_fails_open_unlabelled_and_unmarked(policy: LabelPolicy) -> None:
    upstream = [BIG, *chat_stream("hi")]
    app = wrap(serving(upstream, "text/event-stream"), policy, max_event_size=1024, fail_mode="open")
    response = TestClient(app).post("/v1/chat/completions")
    assert response.status_code == 200 and response.content == b"".join(upstream)  # as it came
    assert claims(response.headers) == [] and app.stats["fail_open"] == 1


async def test_event_over_the_bound_mid_stream_ends_with_an_error_event_in_the_dialect(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    """Closed: what was labelled so far, its signed record (announced by the headers), then the
    API's own error event; nothing of the unlabelled rest."""
    upstream = [*chat_stream("Hel", "lo")[:3], BIG, chunk("secret"), b"data: [DONE]\n\n"]
    app = wrap(serving(upstream, "text/event-stream"), policy, max_event_size=1024)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    raw = await http.post("/v1/chat/completions")
    assert raw.headers["ai-generated"] == "true" and raw.headers["aigc-provenance"] == "sse-comment"
    assert b"secret" not in raw.content and b'"pad"' not in raw.content
    assert raw.content.count(b": AIGC ") == 1
    last = raw.content.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert json.loads(last.removeprefix(b"data: "))["error"]["code"] == "aigc_label_failed"
    assert verify_stream(LABEL + "\n\nHello", raw.content, trust).status is Status.VERIFIED
    client = openai.AsyncOpenAI(api_key="k", base_url="http://app/v1", http_client=http, max_retries=0)
    text = ""
    with pytest.raises(openai.APIError, match="could not be labelled"):
        async for c in await client.chat.completions.create(model="m", messages=[], stream=True):
            text += (c.choices[0].delta.content or "") if c.choices else ""
    assert text.startswith(LABEL) and "secret" not in text


def test_event_over_the_bound_mid_stream_open_passes_the_rest_unmarked(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    """Open: the record binds what was labelled (it comes, as the headers said); the rest passes
    byte for byte, with no end label pretending to close it."""
    upstream = [*chat_stream("Hel", "lo")[:3], BIG, chunk("rest"), chunk(finish="stop"), b"data: [DONE]\n\n"]
    app = wrap(
        serving(upstream, "text/event-stream"),
        policy,
        max_event_size=1024,
        fail_mode="open",
        text_position="both",
    )
    raw = TestClient(app).post("/v1/chat/completions").content
    comment_at = raw.index(b": AIGC ")
    assert raw.endswith(b"".join(upstream[3:])) and raw.index(BIG) > comment_at
    assert raw.count(LABEL.encode()) == 1 and app.stats["fail_open"] == 1
    assert verify_stream(LABEL + "\n\nHello", raw[: raw.index(BIG)], trust).status is Status.VERIFIED
    assert verify_stream(raw, trust=trust).status is Status.ALTERED  # the whole is not what was signed


# -- headers claim only what comes ----------------------------------------------------------------------


def test_a_stream_of_no_known_api_claims_nothing(policy: LabelPolicy) -> None:
    upstream = [b": hello\n\n", b'event: tick\ndata: {"n": 1}\n\n', b'event: tick\ndata: {"n": 2}\n\n']
    response = TestClient(wrap(serving(upstream, "text/event-stream"), policy)).get("/v1/chat/completions")
    assert response.content == b"".join(upstream) and claims(response.headers) == []


def test_without_a_signing_key_no_provenance_comment_is_announced(policy: LabelPolicy) -> None:
    unsigned = LabelPolicy(provider_name="X", provider_code=policy.provider_code, signing_key=None)
    app = wrap(serving(chat_stream("hi"), "text/event-stream"), unsigned)
    response = TestClient(app).post("/v1/chat/completions")
    assert response.headers["ai-generated"] == "true" and "aigc-provenance" not in response.headers
    assert b": AIGC" not in response.content and LABEL in response.text


def test_the_comment_comes_when_announced_even_without_text(policy: LabelPolicy, trust: TrustStore) -> None:
    """A stream the adapter knows but that carries no text (a tool call): announced, so it comes."""
    tool = chunk(role=True).replace(b'"role"', b'"tool_calls": [], "role"')
    app = wrap(serving([tool, chunk(finish="tool_calls"), b"data: [DONE]\n\n"], "text/event-stream"), policy)
    response = TestClient(app).post("/v1/chat/completions")
    assert response.headers["aigc-provenance"] == "sse-comment"
    assert response.content.count(b": AIGC ") == 1
    assert verify_stream(response.content, trust=trust).status is Status.VERIFIED


def test_headers_wait_for_the_first_event_but_comments_before_it_are_kept(policy: LabelPolicy) -> None:
    upstream = [b": keep-alive\n\n", *chat_stream("hi")]
    response = TestClient(wrap(serving(upstream, "text/event-stream"), policy)).post("/v1/chat/completions")
    assert response.content.startswith(b": keep-alive\n\n") and response.headers["ai-generated"] == "true"


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_an_adapter_failure_mid_stream_is_a_labelling_failure(policy: LabelPolicy, mode: str) -> None:
    weird = chunk("x").replace(b'"index": 0', b'"index": [0]')  # unhashable: the adapter raises
    upstream = [*chat_stream("a")[:2], weird, chunk("after"), b"data: [DONE]\n\n"]
    app = wrap(serving(upstream, "text/event-stream"), policy, fail_mode=mode)
    raw = TestClient(app).post("/v1/chat/completions").content
    assert raw.count(b": AIGC ") == 1 and app.stats[f"fail_{mode}"] == 1
    if mode == "closed":
        assert b"after" not in raw and b"aigc_label_failed" in raw
    else:
        assert raw.endswith(b"".join(upstream[2:]))


# -- Content-Encoding ---------------------------------------------------------------------------------


CHAT = json.dumps(
    {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
    }
).encode()


def _deflate(data: bytes, raw: bool) -> bytes:
    c = zlib.compressobj(wbits=-15 if raw else 15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(CHAT)),
        ("gzip", gzip.compress(CHAT[:20]) + gzip.compress(CHAT[20:])),  # two members
        ("deflate", _deflate(CHAT, raw=False)),
        ("deflate", _deflate(CHAT, raw=True)),
    ],
    ids=["gzip", "gzip-2-members", "deflate-zlib", "deflate-raw"],
)
def test_gzip_and_deflate_json_are_decoded_and_labelled(
    policy: LabelPolicy, trust: TrustStore, coding: str, body: bytes
) -> None:
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    app = wrap(serving(pieces, "application/json", {"content-encoding": coding}), policy)
    response = TestClient(app).post("/v1/chat/completions")
    content = response.json()["choices"][0]["message"]["content"]
    assert content.startswith(LABEL) and content.endswith("hello") and content.count(LABEL) == 1
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    assert verify_response(response.headers, response.content, trust).status is Status.VERIFIED


def test_gzip_stream_is_decoded_and_labelled(policy: LabelPolicy, trust: TrustStore) -> None:
    packed = gzip.compress(b"".join(chat_stream("Hel", "lo")))
    pieces = [packed[i : i + 5] for i in range(0, len(packed), 5)]
    app = wrap(serving(pieces, "text/event-stream", {"content-encoding": "gzip"}), policy)
    response = TestClient(app).post("/v1/chat/completions")
    assert "content-encoding" not in response.headers and response.headers["ai-generated"] == "true"
    assert verify_stream(response.content, trust=trust).status is Status.VERIFIED
    assert verify_stream(LABEL + "\n\nHello", response.content, trust).status is Status.VERIFIED


@pytest.mark.parametrize("media_type", ["application/json", "text/event-stream", "image/png"])
@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, br", "compress"], ids=lambda c: c.replace(", ", "+"))
def test_an_encoding_we_do_not_decode_is_refused_before_the_headers(
    policy: LabelPolicy, media_type: str, coding: str
) -> None:
    body = b"\x0b\x02\x80opaque"
    app = wrap(serving([body], media_type, {"content-encoding": coding}), policy)
    response = TestClient(app).post("/v1/chat/completions")
    assert response.status_code == 500 and response.json()["error"]["code"] == "aigc_label_failed"
    assert claims(response.headers) == []
    opened = wrap(serving([body], media_type, {"content-encoding": coding}), policy, fail_mode="open")
    with TestClient(opened).stream("POST", "/v1/chat/completions") as passed:  # raw: no client decoding
        assert passed.status_code == 200 and passed.headers["content-encoding"] == coding
        assert b"".join(passed.iter_raw()) == body
    assert claims(passed.headers) == [] and opened.stats["passed_encoded"] == 1


def test_compressed_text_we_never_label_passes_untouched_in_either_mode(policy: LabelPolicy) -> None:
    body = gzip.compress(b"plain")
    for mode in ("closed", "open"):
        app = wrap(serving([body], "text/plain", {"content-encoding": "br"}), policy, fail_mode=mode)
        with TestClient(app).stream("POST", "/v1/chat/completions") as response:
            assert response.status_code == 200 and b"".join(response.iter_raw()) == body
        assert claims(response.headers) == []


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_truncated_or_corrupt_gzip_body_fails_per_mode(policy: LabelPolicy, mode: str) -> None:
    for body in (gzip.compress(CHAT)[:-12], b"\x1f\x8b\x08\x00garbage-not-deflate"):
        app = wrap(serving([body], "application/json", {"content-encoding": "gzip"}), policy, fail_mode=mode)
        client = TestClient(app)
        if mode == "closed":
            response = client.post("/v1/chat/completions")
            assert response.status_code == 500 and claims(response.headers) == []
        else:  # the original, as the app sent it (the client's decoder meets the broken gzip)
            with client.stream("POST", "/v1/chat/completions") as response:
                assert response.headers["content-encoding"] == "gzip" and claims(response.headers) == []
                assert b"".join(response.iter_raw()) == body


def test_a_gzip_bomb_is_refused_within_bounded_memory(policy: LabelPolicy) -> None:
    """100 MiB of zeros in ~100 KB of gzip: decoding stops at max_body_size, memory stays small."""
    bomb = gzip.compress(b'{"object":"chat.completion","pad":"' + bytes(100 << 20), compresslevel=9)
    app = wrap(
        serving([bomb], "application/json", {"content-encoding": "gzip"}), policy, max_body_size=1 << 20
    )
    tracemalloc.start()
    try:
        response = TestClient(app).post("/v1/chat/completions")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 500 and "exceeds" in response.json()["error"]["message"]
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"
    assert app.stats["too_large"] == 1


async def test_a_gzip_bomb_stream_is_decoded_piece_by_piece(policy: LabelPolicy) -> None:
    """A stream has no total bound, but each decoded piece has: memory stays far below the
    decoded size (driven in-process: a test client would hold the whole body)."""
    events = b"".join(chat_stream(*["x" * 200] * 10_000))  # ~3 MB of events in ~50 KB of gzip
    app = wrap(serving([gzip.compress(events, 9)], "text/event-stream", {"content-encoding": "gzip"}), policy)
    sent, asked = 0, asyncio.Event()

    async def receive() -> dict[str, object]:
        if asked.is_set():  # the request once, then no disconnect until the response is done
            await asyncio.Event().wait()
        asked.set()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal sent
        sent += len(message.get("body", b""))  # type: ignore[arg-type]

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    tracemalloc.start()
    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent > len(events) and peak < len(events) // 4, f"peak {peak >> 10} KiB, {len(events) >> 10} KiB"


# -- verdicts on what the middleware sends ---------------------------------------------------------------


def test_expected_record_shape_is_whatever_aigcrecord_writes(policy: LabelPolicy) -> None:
    app = wrap(serving([CHAT], "application/json"), policy)
    header = TestClient(app).post("/v1/chat/completions").headers["aigc"]
    record = AigcRecord.from_json(header)
    assert record.ContentProducer == policy.producer and record.Label.value == "1"


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_signing_failure_at_the_end_of_a_stream_fails_per_mode(
    policy: LabelPolicy, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record can't be signed (a hardware key unplugged): closed ends the stream with the
    API's error event instead of the record; open lets [DONE] through, with no record."""

    def unplugged(payloads: object, key: object) -> list[str]:
        raise OSError("token unplugged")

    monkeypatch.setattr("labeler.response_labeling.sign_payloads", unplugged)
    app = wrap(serving(chat_stream("hi"), "text/event-stream"), policy, fail_mode=mode)
    raw = TestClient(app).post("/v1/chat/completions").content
    assert b": AIGC" not in raw and LABEL.encode() in raw and app.stats[f"fail_{mode}"] == 1
    if mode == "closed":
        assert b"[DONE]" not in raw and b"token unplugged" in raw.rsplit(b"\n\n", 2)[-2]
    else:
        assert raw.endswith(b"data: [DONE]\n\n") and b"aigc_label_failed" not in raw
