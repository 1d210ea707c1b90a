"""The middleware judged by real clients: the openai and anthropic SDKs, httpx, uvicorn."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from labeler import LabelPolicy, Status, TrustStore, verify
from labeler.demo.server import create_app
from labeler.middleware import LabelingMiddleware, verify_response, verify_stream

LABEL = "【AI生成】"
pytestmark = pytest.mark.anyio


def wrap(app: object, policy: LabelPolicy, **options: object) -> LabelingMiddleware:
    return LabelingMiddleware(app, policy=policy, **options)  # type: ignore[arg-type]


@pytest.fixture
def demo(policy: LabelPolicy) -> LabelingMiddleware:
    return wrap(create_app(token_delay=0), policy)


def sdk(app: object) -> tuple[openai.AsyncOpenAI, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")  # type: ignore[arg-type]
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://app/v1", http_client=http, max_retries=0
    ), http


# -- OpenAI-shaped responses through the official SDK ---------------------------------------------------


async def test_chat_non_stream_labeled_once_with_signed_headers(
    demo: LabelingMiddleware, trust: TrustStore
) -> None:
    client, http = sdk(demo)
    reply = await client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "你好"}]
    )
    content = reply.parse().choices[0].message.content
    assert content is not None and content.startswith(LABEL) and content.count(LABEL) == 1
    assert reply.headers["ai-generated"] == "true"
    assert (
        reply.headers["aigc-filing-number"]
        == "Beijing-YunQue-20230821, %E7%BD%91%E4%BF%A1%E7%AE%97%E5%A4%87110108823483901230031%E5%8F%B7"
    )
    assert json.loads(reply.headers["aigc"])["ContentProducer"] == demo.policy.producer
    raw = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert int(raw.headers["content-length"]) == len(raw.content)
    assert verify_response(raw.headers, raw.content, trust).status is Status.VERIFIED
    assert verify_response(raw.headers, raw.content.replace(b"demo", b"fake"), trust).status is Status.ALTERED


@pytest.mark.parametrize(
    "position, starts, ends", [("start", True, False), ("end", False, True), ("both", True, True)]
)
async def test_chat_stream_label_positions(
    policy: LabelPolicy, trust: TrustStore, position: str, starts: bool, ends: bool
) -> None:
    client, http = sdk(wrap(create_app(token_delay=0), policy, text_position=position))
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith(LABEL) is starts and text.endswith(LABEL) is ends
    assert text.count(LABEL) == starts + ends
    raw = await http.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello"}], "stream": True}
    )
    events = raw.content.split(b"\n\n")
    assert events[-2] == b"data: [DONE]" and events[-3].startswith(b": AIGC ")  # record just before [DONE]
    assert verify_stream(text, raw.content, trust).status is Status.VERIFIED
    assert verify_stream(text + "x", raw.content, trust).status is Status.ALTERED
    assert raw.headers["aigc-provenance"] == "sse-comment" and "content-length" not in raw.headers


async def test_responses_api_stream_and_not(demo: LabelingMiddleware) -> None:
    client, _ = sdk(demo)
    plain = await client.responses.create(model="m", input="hi")
    assert plain.output_text.startswith(LABEL) and plain.output_text.count(LABEL) == 1
    async with client.responses.stream(model="m", input="stream me") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text  # the final response matches what streamed
    assert final.output_text.startswith(LABEL) and final.output_text.count(LABEL) == 1


async def test_images_b64_json_are_fully_labeled(demo: LabelingMiddleware, trust: TrustStore) -> None:
    client, _ = sdk(demo)
    result = await client.images.generate(prompt="a kite", size="256x256", response_format="b64_json", n=2)
    assert len(result.data) == 2
    for item in result.data:
        assert item.b64_json is not None
        verdict = verify(base64.b64decode(item.b64_json), trust)
        assert verdict.status is Status.VERIFIED and verdict.notice == "confirmed"


@pytest.mark.parametrize("response_format", ["wav", "mp3"])
async def test_audio_speech_through_the_sdk_is_labeled(
    demo: LabelingMiddleware, trust: TrustStore, response_format: str
) -> None:
    """OpenAI ``audio/speech``: the SDK gets bytes with the rhythm label and the signed record."""
    from labeler import ffmpeg

    if response_format != "wav" and not ffmpeg.available():
        pytest.skip("mp3 needs ffmpeg (CI installs it)")
    client, _ = sdk(demo)
    reply = await client.audio.speech.with_raw_response.create(
        model="tts-demo",
        voice="alloy",
        input="你好，世界",
        response_format=response_format,  # type: ignore[arg-type]
    )
    audio = reply.content
    verdict = verify(audio, trust)
    assert verdict.status is Status.VERIFIED
    assert verdict.media_format == response_format and reply.headers["ai-generated"] == "true"
    assert reply.headers["content-type"] == ("audio/wav" if response_format == "wav" else "audio/mpeg")
    if response_format == "wav":
        from labeler.explicit.audio import find_rhythm_label

        assert find_rhythm_label(audio) == "start"


def _anthropic(app: object) -> anthropic.AsyncAnthropic:
    # anthropic 2.x runs on httpx2, a fork of httpx with the same in-process ASGI transport
    import httpx2

    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://app")  # type: ignore[arg-type]
    return anthropic.AsyncAnthropic(api_key="x", base_url="http://app", http_client=http, max_retries=0)


async def test_anthropic_sdk_stream_and_not(demo: LabelingMiddleware) -> None:
    client = _anthropic(demo)
    message = await client.messages.create(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text.startswith(LABEL)  # type: ignore[union-attr]
    async with client.messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text.startswith(LABEL) and final.content[0].text == text  # type: ignore[union-attr]


async def test_anthropic_end_label_goes_into_the_last_text_block(policy: LabelPolicy) -> None:
    client = _anthropic(wrap(create_app(0), policy, text_position="end"))
    async with client.messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        final = await s.get_final_message()
    assert final.content[0].text.endswith(LABEL)  # type: ignore[union-attr]


# -- streams: split events, CRLF, unknown events, timing -----------------------------------------------


def _sse_app(chunks: list[bytes], delay: float = 0.0, produced: list[float] | None = None) -> Starlette:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            if produced is not None:
                produced.append(time.monotonic())
            yield chunk
            await asyncio.sleep(delay)

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])


def _chunk(content: str | None = None, role: bool = False, finish: str | None = None) -> dict[str, object]:
    delta: dict[str, object] = {"content": content} if content is not None else {}
    if role:
        delta["role"] = "assistant"
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def test_split_events_crlf_and_unknown_events(policy: LabelPolicy) -> None:
    nl = "\r\n"
    stream = "".join(
        f"data: {json.dumps(c)}{nl}{nl}" for c in (_chunk("", role=True), _chunk("Hel"), _chunk("lo"))
    )
    stream += f'event: custom.thing{nl}data: {{"keep": true}}{nl}{nl}: a comment{nl}{nl}'
    stream += f"data: {json.dumps(_chunk(finish='stop'))}{nl}{nl}data: [DONE]{nl}{nl}"
    raw = stream.encode()
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # split everywhere, CRLF included
    app = wrap(_sse_app(pieces), policy, text_position="both")
    client, http = sdk(app)
    chunks = [c async for c in await client.chat.completions.create(model="m", messages=[], stream=True)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == LABEL + "\n\nHello\n\n" + LABEL
    body = (await http.post("/v1/chat/completions", json={})).content
    assert b'event: custom.thing\r\ndata: {"keep": true}\r\n\r\n' in body  # untouched, byte for byte
    assert b": a comment\r\n\r\n" in body and body.endswith(b"data: [DONE]\r\n\r\n")
    assert b"\n\n" not in body.replace(b"\r\n", b"")  # every inserted event kept the CRLF style


async def test_first_chunk_with_content_gets_the_label_before_it(policy: LabelPolicy) -> None:
    raw = "".join(f"data: {json.dumps(c)}\n\n" for c in (_chunk("Hi", role=True), _chunk(finish="stop")))
    client, _ = sdk(wrap(_sse_app([raw.encode(), b"data: [DONE]\n\n"]), policy))
    chunks = [c async for c in await client.chat.completions.create(model="m", messages=[], stream=True)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == LABEL + "\n\nHi"


@pytest.mark.slow
def test_no_buffering_each_event_arrives_before_the_next_is_produced(policy: LabelPolicy) -> None:
    events = [
        f"data: {json.dumps(c)}\n\n".encode()
        for c in [_chunk("", role=True)] + [_chunk(f"t{i} ") for i in range(5)] + [_chunk(finish="stop")]
    ]
    events.append(b"data: [DONE]\n\n")
    produced: list[float] = []
    app = wrap(_sse_app(events, delay=0.25, produced=produced), policy)
    with serve(app) as url, httpx.Client(timeout=10) as client:
        started = time.monotonic()
        with client.stream("POST", f"{url}/v1/chat/completions", json={}) as response:
            headers_at = time.monotonic()
            arrivals: list[tuple[float, bytes]] = []
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append((time.monotonic(), line.encode()))
    assert headers_at - started < 0.2  # headers before the first token is even produced + its sleep
    tokens = [(t, line) for t, line in arrivals if b'"t' in line and b"content" in line]
    assert len(tokens) == 5
    # token i (produced as upstream event i + 1) reaches the client before event i + 2 is produced
    for i, (arrived, _) in enumerate(tokens):
        assert arrived < produced[i + 2], (i, arrived - produced[i + 1])


# -- raw images, pass-through, failures ---------------------------------------------------------------------


def _app(response: Response | None = None, path: str = "/x") -> Starlette:
    async def endpoint(request: Request) -> Response:
        assert response is not None
        return response

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return Starlette(routes=[Route(path, endpoint, methods=["GET", "POST"]), WebSocketRoute("/ws", ws)])


def test_raw_image_response_is_labeled(policy: LabelPolicy, trust: TrustStore) -> None:
    from conftest import SAMPLES

    client = TestClient(wrap(_app(Response(SAMPLES["jpeg"], media_type="image/jpeg")), policy))
    response = client.get("/x")
    assert verify(response.content, trust).status is Status.VERIFIED
    assert response.headers["content-length"] == str(len(response.content))
    assert json.loads(response.headers["aigc"])["Label"] == "1"


@pytest.mark.parametrize(
    ("sample", "media_type", "slot"),
    [
        ("wav", "audio/wav", "riff:AIGC"),
        ("mp3", "audio/mpeg", "id3:TXXX:AIGC"),
        ("ogg-opus", "audio/ogg", "vorbis-comment:AIGC"),
        ("mp4", "video/mp4", "mp4:udta/meta/keys:AIGC"),
        ("pdf", "application/pdf", "pdf:Info/AIGC"),
        (
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "ooxml:docProps/custom.xml:AIGC",
        ),
    ],
)
def test_audio_video_and_document_responses_are_labeled(
    policy: LabelPolicy, trust: TrustStore, media: dict[str, bytes], sample: str, media_type: str, slot: str
) -> None:
    if sample not in media:
        pytest.skip("needs ffmpeg to make the sample")
    app = wrap(_app(Response(media[sample], media_type=media_type)), policy)
    response = TestClient(app).get("/x")
    verdict = verify(response.content, trust)
    assert verdict.status is Status.VERIFIED and verdict.label_source == slot
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["ai-generated"] == "true"
    assert json.loads(response.headers["aigc"]) == json.loads(verdict.record.to_json())  # type: ignore[union-attr]
    if sample == "wav":
        from labeler.explicit.audio import find_rhythm_label

        assert verdict.explicit_label and find_rhythm_label(response.content) == "start"
    if sample in ("docx", "pdf"):  # the label paragraph / the page-1 stamp
        assert verdict.explicit_label


def test_media_without_ffmpeg_gets_the_implicit_label_in_auto_mode(
    policy: LabelPolicy, trust: TrustStore, media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "mp3" not in media:
        pytest.skip("needs ffmpeg to make the sample")
    monkeypatch.setenv("LABELER_FFMPEG", "/nonexistent/ffmpeg")
    auto = wrap(_app(Response(media["mp3"], media_type="audio/mpeg")), policy)
    response = TestClient(auto).get("/x")
    assert verify(response.content, trust).status is Status.VERIFIED
    assert response.content.endswith(media["mp3"][-1000:])  # not re-encoded
    assert auto.stats["implicit_only"] == 1
    strict = wrap(_app(Response(media["mp3"], media_type="audio/mpeg")), policy, visible_media=True)
    failed = TestClient(strict).get("/x")
    assert failed.status_code == 500 and "ffmpeg" in failed.json()["error"]["message"]


@pytest.mark.parametrize(
    "response",
    [
        PlainTextResponse("plain text"),
        JSONResponse({"unknown": "shape"}),
        JSONResponse({"error": "nope"}, status_code=400),
        Response(  # compressed and of a type we don't label (gzip JSON is decoded and labelled:
            gzip.compress(b"plain text"),  # tests/test_middleware_streams.py)
            media_type="text/plain",
            headers={"content-encoding": "gzip"},
        ),
    ],
)
def test_responses_we_do_not_label_pass_through_untouched(policy: LabelPolicy, response: Response) -> None:
    original = TestClient(_app(response)).get("/x")
    through = TestClient(wrap(_app(response), policy)).get("/x")
    assert through.status_code == original.status_code and through.content == original.content
    assert "ai-generated" not in through.headers


def test_websocket_and_excluded_paths_untouched(policy: LabelPolicy) -> None:
    body = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
    }
    app = wrap(_app(JSONResponse(body), path="/health"), policy, exclude_paths=["/health"])
    client = TestClient(app)
    assert client.get("/health").json() == body
    with client.websocket_connect("/ws") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"


def test_label_info_endpoint(demo: LabelingMiddleware, policy: LabelPolicy) -> None:
    info = TestClient(demo).get("/.well-known/aigc-label").json()
    assert info["label"] == "AI生成" and info["filing_numbers"] == list(policy.filing_numbers)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_invalid_json_fails_closed_or_open(policy: LabelPolicy, mode: str) -> None:
    bad = Response(b'{"object": "chat.completion", broken', media_type="application/json")
    app = wrap(_app(bad), policy, fail_mode=mode)
    response = TestClient(app).get("/x")
    if mode == "closed":
        assert response.status_code == 500 and response.json()["error"]["type"] == "labeling_error"
        assert app.stats["fail_closed"] == 1
    else:
        assert response.status_code == 200 and response.content == b'{"object": "chat.completion", broken'
        assert app.stats["fail_open"] == 1


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_body_over_the_maximum_is_bounded(policy: LabelPolicy, mode: str) -> None:
    big = b'{"object":"chat.completion","choices":[],"pad":"' + b"x" * 5000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    app = wrap(
        _app(StreamingResponse(chunks(), media_type="application/json")),
        policy,
        fail_mode=mode,
        max_body_size=2000,
    )
    response = TestClient(app).get("/x")
    assert app.stats["too_large"] == 1
    if mode == "open":
        assert response.content == big
    else:
        assert response.status_code == 500 and "exceeds 2000 bytes" in response.json()["error"]["message"]


def test_deeply_nested_json_is_a_clean_failure(policy: LabelPolicy) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = TestClient(wrap(_app(Response(deep, media_type="application/json")), policy)).get("/x")
    assert response.status_code in (200, 500)  # either not ours to label or a clean error; never a crash


# -- records of concurrent responses are signed in batches -------------------------------------------


async def test_concurrent_responses_share_a_signature_and_each_verifies(
    demo: LabelingMiddleware, trust: TrustStore
) -> None:
    _, http = sdk(demo)

    async def ask(i: int) -> httpx.Response:
        return await http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": f"q{i}"}]}
        )

    replies = await asyncio.gather(*(ask(i) for i in range(24)))
    tokens = [json.loads(r.headers["aigc"])["ReservedCode1"] for r in replies]
    assert demo.batcher is not None and demo.batcher.signed == 24 and demo.batcher.batches < 24
    assert any(t.startswith("aigcm1.") for t in tokens)
    for reply in replies:  # each record binds its own body, not another's
        assert verify_response(reply.headers, reply.content, trust).status is Status.VERIFIED
    swapped = verify_response(replies[0].headers, replies[1].content, trust)
    assert swapped.status is Status.ALTERED


def test_batch_signed_responses_under_a_real_server(policy: LabelPolicy, trust: TrustStore) -> None:
    app = wrap(create_app(token_delay=0), policy)

    async def load(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"messages": [{"role": "user", "content": "hi"}]}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(40)))

    with serve(app) as url:
        replies = asyncio.run(load(url))
    assert all(verify_response(r.headers, r.content, trust).status is Status.VERIFIED for r in replies)
    assert app.batcher is not None and app.batcher.signed == 40


async def test_batch_signatures_can_be_turned_off(demo: LabelingMiddleware, policy: LabelPolicy) -> None:
    app = wrap(create_app(token_delay=0), policy, batch_signatures=False)
    _, http = sdk(app)
    body = {"messages": [{"role": "user", "content": "x"}]}
    replies = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(5)))
    assert app.batcher is None
    assert all(json.loads(r.headers["aigc"])["ReservedCode1"].startswith("aigcl1.") for r in replies)


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_a_signing_failure_in_a_batch_fails_each_response_cleanly(
    policy: LabelPolicy, mode: str
) -> None:
    app = wrap(create_app(token_delay=0), policy, fail_mode=mode)
    assert app.batcher is not None

    class Unplugged:  # a hardware key that went away
        public_key = policy.signing_key.public_key if policy.signing_key else None

        def sign(self, data: bytes) -> bytes:
            raise OSError("token unplugged")

    app.batcher.key = Unplugged()  # type: ignore[assignment]
    _, http = sdk(app)
    body = {"messages": [{"role": "user", "content": "x"}]}
    replies = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(4)))
    if mode == "closed":
        assert all(r.status_code == 500 and r.json()["error"]["type"] == "labeling_error" for r in replies)
    else:  # the model's answers, untouched, unlabelled
        assert all(r.status_code == 200 and "aigc" not in r.headers for r in replies)
        assert all(r.json()["object"] == "chat.completion" for r in replies)
    assert app.stats[f"fail_{mode}"] == 4


async def test_a_batch_signed_verdict_says_where_in_its_batch_it_is(
    demo: LabelingMiddleware, trust: TrustStore
) -> None:
    _, http = sdk(demo)
    body = {"messages": [{"role": "user", "content": "x"}]}
    replies = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(3)))
    summaries = [verify_response(r.headers, r.content, trust).to_dict()["provenance"] for r in replies]
    assert sorted(s["batch"]["index"] for s in summaries) == [0, 1, 2]
    assert {s["batch"]["size"] for s in summaries} == {3}


# -- the answer waits for its batch signature outside the app, never behind the app's later work ---


def _chat_answer() -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    }


async def _drive(app: object) -> tuple[list[dict[str, object]], BaseException | None]:
    """One POST through ``app`` in process; the messages it sent, and what it raised."""
    sent: list[dict[str, object]] = []
    requested = False

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [],
        "query_string": b"",
    }
    try:
        await app(scope, receive, send)  # type: ignore[operator]
    except Exception as exc:
        return sent, exc
    return sent, None


async def test_the_answer_goes_out_while_the_app_is_still_busy_after_it(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    """Starlette's background tasks run after the response is sent: the batch wait must not hold
    the signed answer back until the app returns."""
    answered = asyncio.Event()

    async def background() -> None:
        await asyncio.wait_for(answered.wait(), 5)  # times out if the answer waits for the app

    async def chat(request: Request) -> Response:
        from starlette.background import BackgroundTask

        return JSONResponse(_chat_answer(), background=BackgroundTask(background))

    inner = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app = wrap(inner, policy)

    async def watch(app_: object) -> tuple[list[dict[str, object]], BaseException | None]:
        async def send_and_notice(scope: object, receive: object, send: object) -> None:
            async def noticing(message: dict[str, object]) -> None:
                await send(message)  # type: ignore[operator]
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    answered.set()

            await app_(scope, receive, noticing)  # type: ignore[operator]

        return await _drive(send_and_notice)

    sent, error = await watch(app)
    assert error is None
    start, body = sent
    headers = dict(start["headers"])  # type: ignore[arg-type]
    assert verify_response(headers, body["body"], trust).status is Status.VERIFIED  # type: ignore[arg-type]


async def test_an_app_failing_after_its_answer_still_delivers_it(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    async def inner(scope: object, receive: object, send: object) -> None:
        body = json.dumps(_chat_answer()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]
        raise RuntimeError("the app's own bug, after answering")

    sent, error = await _drive(wrap(inner, policy))
    assert isinstance(error, RuntimeError)  # the app's error still reaches the server
    start, body = sent
    assert verify_response(dict(start["headers"]), body["body"], trust).status is Status.VERIFIED  # type: ignore[arg-type]
    assert b"hi" in body["body"]  # type: ignore[operator]


def test_background_work_does_not_delay_the_answer_under_a_real_server(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    import threading

    received, seen = threading.Event(), []

    async def background() -> None:  # waits (up to 10 s) for the client to hold the answer
        seen.append(await asyncio.to_thread(received.wait, 10))

    async def chat(request: Request) -> Response:
        from starlette.background import BackgroundTask

        return JSONResponse(_chat_answer(), background=BackgroundTask(background))

    app = wrap(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]), policy)
    with serve(app) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json={}, timeout=30)
        received.set()
        for _ in range(200):  # the background task notices within its wait
            if seen:
                break
            time.sleep(0.05)
    assert verify_response(reply.headers, reply.content, trust).status is Status.VERIFIED
    assert seen == [True]  # the client had the answer while the background work still ran


async def test_messages_after_an_answer_waiting_for_its_signature_follow_it(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    """HTTP trailers (an ASGI extension) come after the last body: they must not overtake the
    labelled answer that waits for its batch signature."""

    async def inner(scope: object, receive: object, send: object) -> None:
        body = json.dumps(_chat_answer()).encode()
        start = {"type": "http.response.start", "status": 200, "trailers": True}
        await send({**start, "headers": [(b"content-type", b"application/json")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]
        await send({"type": "http.response.trailers", "headers": [(b"x-done", b"1")]})  # type: ignore[operator]

    sent, error = await _drive(wrap(inner, policy))
    assert error is None
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    start, body, _ = sent
    assert verify_response(dict(start["headers"]), body["body"], trust).status is Status.VERIFIED  # type: ignore[arg-type]
