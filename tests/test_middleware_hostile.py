"""Release gate for the middleware: hostile bodies, lying headers, upstreams that die, clients
that leave, and a bounded load (benchmarks/load_middleware.py; CI runs it at 10,000 requests)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from conftest import SAMPLES
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from labeler import LabelPolicy, Status, TrustStore, verify
from labeler.middleware import LabelingMiddleware

CHUNK = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}


def _serving(body: bytes, media_type: str) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type=media_type)

    return Starlette(routes=[Route("/x", endpoint)])


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_non_utf8_json_body(policy: LabelPolicy, mode: str) -> None:
    body = b'{"object":"chat.completion","choices":[{"message":{"content":"\xff\xfe"}}]}'
    app = LabelingMiddleware(_serving(body, "application/json"), policy=policy, fail_mode=mode)  # type: ignore[arg-type]
    response = TestClient(app).get("/x")
    if mode == "closed":
        assert response.status_code == 500 and response.json()["error"]["code"] == "aigc_label_failed"
    else:
        assert response.status_code == 200 and response.content == body  # untouched, counted
        assert app.stats["fail_open"] == 1


def test_content_type_that_lies_about_an_image(policy: LabelPolicy) -> None:
    """JSON sent as image/png: labelling fails cleanly (fail-closed 500), never a broken image."""
    app = LabelingMiddleware(_serving(b'{"not": "a png"}', "image/png"), policy=policy)
    response = TestClient(app).get("/x")
    assert response.status_code == 500 and "unsupported content" in response.json()["error"]["message"]


def test_image_sent_as_octet_stream_passes_untouched(policy: LabelPolicy) -> None:
    app = LabelingMiddleware(_serving(SAMPLES["png"], "application/octet-stream"), policy=policy)
    response = TestClient(app).get("/x")
    assert response.content == SAMPLES["png"] and "ai-generated" not in response.headers


def test_zero_length_and_truncated_media(policy: LabelPolicy) -> None:
    for body in (b"", SAMPLES["jpeg"][:50], b"RIFF\x00\x00\x00\x00WAVE"):
        app = LabelingMiddleware(_serving(body, "image/jpeg"), policy=policy)
        response = TestClient(app).get("/x")
        assert response.status_code == 500 and response.json()["error"]["type"] == "labeling_error"


def test_decompression_bomb_is_refused_by_pillows_guard(policy: LabelPolicy, trust: TrustStore) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (16_000, 16_000)).save(buf, "PNG")  # 256 MP of zeros: a ~250 KB file
    app = LabelingMiddleware(_serving(buf.getvalue(), "image/png"), policy=policy)
    response = TestClient(app).get("/x")
    assert response.status_code == 500 and "decompression bomb" in response.json()["error"]["message"].lower()
    assert Image.MAX_IMAGE_PIXELS is not None  # the guard is on


def _stream_app(events: int, finish: str) -> Starlette:
    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(events):
                yield f"data: {json.dumps(CHUNK)}\n\n".encode()
                await asyncio.sleep(0.01)
            if finish == "raise":
                raise RuntimeError("upstream died mid-stream")
            if finish == "partial":
                yield b'data: {"id":"c","object":"chat.completion.chunk","cho'  # cut inside an event

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])


def test_stream_that_ends_without_done_or_mid_event(policy: LabelPolicy) -> None:
    app = LabelingMiddleware(_stream_app(3, "partial"), policy=policy, text_position="both")
    response = TestClient(app).post("/v1/chat/completions", json={})
    text = response.text
    assert response.status_code == 200
    assert text.count("【AI生成】") == 2  # start and end labels, though the upstream never said [DONE]
    assert ': AIGC {"Label"' in text  # the signed record still closes the stream


def test_upstream_dying_mid_stream_over_real_http(policy: LabelPolicy) -> None:
    """The server logs the app's error and closes the connection; the client got what was
    forwarded so far (headers, label, events); the next request is served normally."""
    from starlette.routing import Mount

    both = Starlette(routes=[Mount("/die", _stream_app(2, "raise")), Mount("/ok", _stream_app(2, "done"))])
    app = LabelingMiddleware(both, policy=policy)
    with serve(app) as base:
        got = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", f"{base}/die/v1/chat/completions", json={}) as r,
        ):
            assert r.headers["ai-generated"] == "true"
            got.extend(r.iter_lines())
        assert any("【AI生成】" in line for line in got)
        after = httpx.post(f"{base}/ok/v1/chat/completions", json={})
        assert after.status_code == 200 and after.text.count("【AI生成】") == 1


def test_client_hanging_up_mid_stream_leaves_no_task_behind(policy: LabelPolicy) -> None:
    from labeler.demo.server import create_app

    wrapped = LabelingMiddleware(create_app(token_delay=0.02), policy=policy)
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        loops.append(asyncio.get_running_loop())
        await wrapped(scope, receive, send)

    with serve(app) as base:
        httpx.get(f"{base}/v1/models")
        loop = loops[0]
        idle = asyncio.run_coroutine_threadsafe(_count_tasks(), loop).result(5)
        for _ in range(5):
            with httpx.stream(
                "POST", f"{base}/v1/chat/completions", json={"messages": [], "stream": True}
            ) as r:
                next(r.iter_lines())  # one line, then hang up
        asyncio.run_coroutine_threadsafe(asyncio.sleep(1.0), loop).result(5)  # streams notice and end
        after = asyncio.run_coroutine_threadsafe(_count_tasks(), loop).result(5)
    assert after <= idle, f"{after - idle} tasks still alive after every client left"


async def _count_tasks() -> int:
    return len([t for t in asyncio.all_tasks() if not t.done()])


@pytest.mark.slow
def test_bounded_load_holds(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks/load_middleware.py"
    run = subprocess.run(
        [sys.executable, str(script), "--requests", "1000", "--concurrency", "50"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "errors: 0" in run.stdout and "(leaked 0)" in run.stdout


def test_verdict_on_what_the_middleware_sent_back(policy: LabelPolicy, trust: TrustStore) -> None:
    app = LabelingMiddleware(_serving(SAMPLES["webp-lossy"], "image/webp"), policy=policy)
    assert verify(TestClient(app).get("/x").content, trust).status is Status.VERIFIED


@pytest.mark.anyio
async def test_a_burst_of_media_is_labelled_by_a_bounded_number_of_threads(
    policy: LabelPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    import labeler.labeling

    running, peak, lock = 0, 0, threading.Lock()
    real = labeler.labeling.label_content

    def tracked(*args: object, **kwargs: object) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        try:
            return real(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(labeler.labeling, "label_content", tracked)
    app = LabelingMiddleware(_serving(SAMPLES["png"], "image/png"), policy=policy)
    app.media_workers = 2
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        replies = await asyncio.gather(*(client.get("/x") for _ in range(8)))
    assert all(r.status_code == 200 and r.headers["ai-generated"] == "true" for r in replies)
    assert peak == 2  # never more than media_workers at once, and they do run side by side
