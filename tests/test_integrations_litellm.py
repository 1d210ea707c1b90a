"""LabelingGuardrail in a real LiteLLM proxy (its own process, configured by
examples/litellm/config.yaml) routing to a stand-in OpenAI-compatible upstream on loopback
uvicorn; the openai SDK (and httpx, for the raw stream) as the client. Plus the hooks called
directly, for what a running proxy can't show quickly (tampering, failure modes)."""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("litellm")

import openai
from servers import serve

from labeler import LabelPolicy, SigningKey, Status, TrustStore
from labeler.cli import main as labeler_cli
from labeler.integrations.litellm import LabelingGuardrail, verify_completion
from labeler.text import start_fragment
from labeler.verification import verify_stream

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "litellm"
ANSWER = "Labels make AI content easy to recognise."


def _upstream_app() -> Any:
    spec = importlib.util.spec_from_file_location("litellm_example_upstream", EXAMPLE / "upstream.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    def __init__(self, url: str, master_key: str, key: SigningKey, workdir: Path) -> None:
        self.url = url
        self.master_key = master_key
        self.key = key
        self.trust = TrustStore([key.public_key])
        self.workdir = workdir
        self.openai = openai.OpenAI(api_key=master_key, base_url=url + "/v1", max_retries=0, timeout=30)
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {master_key}"}, timeout=30)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The example config, as documented: LABELER_CONFIG names the labeler TOML."""
    work = tmp_path_factory.mktemp("litellm")
    key = SigningKey.generate()
    (work / "labeler.pem").write_bytes(key.private_pem())
    (work / "labeler.pem").chmod(0o600)
    (work / "labeler.toml").write_text(
        '[labeler]\nprovider_name = "ExampleAI"\nfiling_numbers = ["Beijing-YunQue-20230821"]\n'
        'key_file = "labeler.pem"\n'
    )
    master_key = "sk-test-" + secrets.token_hex(16)
    with serve(_upstream_app()) as upstream:
        port = _free_port()
        env = {
            **os.environ,
            "LABELER_CONFIG": str(work / "labeler.toml"),
            "UPSTREAM_API_BASE": upstream + "/v1",
            "LITELLM_MASTER_KEY": master_key,
            "LITELLM_LOG": "ERROR",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start-up
        }
        litellm_cli = Path(sys.executable).with_name("litellm")
        log = (work / "proxy.log").open("wb")
        process = subprocess.Popen(
            [
                str(litellm_cli),
                "--config",
                str(EXAMPLE / "config.yaml"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise RuntimeError("litellm exited:\n" + (work / "proxy.log").read_text()[-3000:])
                try:
                    if httpx.get(url + "/health/liveliness", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("litellm did not start:\n" + (work / "proxy.log").read_text()[-3000:])
                time.sleep(0.25)
            yield Proxy(url, master_key, key, work)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()


LABEL = start_fragment(LabelPolicy(provider_name="x"))  # the default start label: 【AI生成】 + blank line


def _chat(messages_text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "chat-model", "messages": [{"role": "user", "content": messages_text}], **extra}


# -- through a real proxy --------------------------------------------------------------------------


@pytest.mark.slow
def test_chat_completion_labelled_and_signed(proxy: Proxy) -> None:
    raw = proxy.openai.chat.completions.with_raw_response.create(
        model="chat-model", messages=[{"role": "user", "content": "hi"}]
    )
    content = raw.parse().choices[0].message.content
    assert content is not None and content.startswith("【AI生成】") and content.endswith(ANSWER)
    assert raw.headers["ai-generated"] == "true"
    assert raw.headers["aigc-filing-number"] == "Beijing-YunQue-20230821"
    verdict = verify_completion(raw.headers, raw.http_response.content, proxy.trust)
    assert verdict.status is Status.VERIFIED, verdict.problems


@pytest.mark.slow
def test_chat_stream_label_first_record_last_nothing_held(proxy: Proxy) -> None:
    """The upstream waits 0.3 s between tokens: each reaches the client as it is made."""
    for _ in proxy.openai.chat.completions.create(  # warm-up: LiteLLM's first stream is slow to start
        model="chat-model", messages=[{"role": "user", "content": "tokens:1"}], stream=True
    ):
        pass
    started = time.monotonic()
    seen: list[tuple[float, str]] = []
    stream = proxy.openai.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "slow tokens:4"}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen.append((time.monotonic() - started, chunk.choices[0].delta.content))
    ended = time.monotonic() - started
    texts = [t for _, t in seen]
    assert texts[0] == LABEL  # the label is its own chunk, first
    assert texts[1:] == ["Labels", " make", " AI", " content"]  # the upstream's chunks, unchanged
    first_token = seen[1][0]
    assert ended - first_token > 0.6  # the first token came ~0.9 s before the stream ended
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen[1:])]
    assert all(gap > 0.15 for gap in gaps), gaps  # one by one, as the upstream sent them

    with proxy.http.stream("POST", "/v1/chat/completions", json=_chat("tokens:5", stream=True)) as reply:
        assert reply.headers["aigc-provenance"] == "sse-comment"
        raw = b"".join(reply.iter_bytes())
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert raw.count(b"\n: AIGC ") == 1
    verdict = verify_stream(raw, trust=proxy.trust)
    assert verdict.status is Status.VERIFIED, verdict.problems


@pytest.mark.slow
def test_responses_api(proxy: Proxy) -> None:
    raw = proxy.openai.responses.with_raw_response.create(model="chat-model", input="hi")
    assert raw.parse().output_text.startswith("【AI生成】")
    verdict = verify_completion(raw.headers, raw.http_response.content, proxy.trust)
    assert verdict.status is Status.VERIFIED, verdict.problems

    deltas = [
        e.delta
        for e in proxy.openai.responses.create(model="chat-model", input="hi", stream=True)
        if e.type == "response.output_text.delta"
    ]
    assert deltas[0] == LABEL and "".join(deltas[1:]) == ANSWER
    with proxy.http.stream(
        "POST", "/v1/responses", json={"model": "chat-model", "input": "hi", "stream": True}
    ) as reply:
        raw_stream = b"".join(reply.iter_bytes())
    assert verify_stream(raw_stream, trust=proxy.trust).status is Status.VERIFIED


@pytest.mark.slow
def test_anthropic_messages(proxy: Proxy) -> None:
    body = {"model": "chat-model", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    reply = proxy.http.post("/v1/messages", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"][0]["text"].startswith("【AI生成】")
    assert verify_completion(reply.headers, reply.content, proxy.trust).status is Status.VERIFIED

    with proxy.http.stream("POST", "/v1/messages", json={**body, "stream": True}) as streamed:
        raw = b"".join(streamed.iter_bytes())
    assert b'"text_delta","text":"' + LABEL.encode().replace(b"\n", b"\\n") in raw.replace(b" ", b"")
    verdict = verify_stream(raw, trust=proxy.trust)
    assert verdict.status is Status.VERIFIED, verdict.problems

    import anthropic  # the SDK skips the record comment; the label is the first text it shows

    client = anthropic.Anthropic(api_key=proxy.master_key, base_url=proxy.url, max_retries=0)
    with client.messages.stream(**body) as events:
        texts = list(events.text_stream)
    assert texts[0] == LABEL and "".join(texts[1:]) == ANSWER


@pytest.mark.slow
def test_image_generation_labelled_in_the_image(proxy: Proxy, capsys: pytest.CaptureFixture[str]) -> None:
    raw = proxy.openai.images.with_raw_response.generate(model="image-model", prompt="a lighthouse")
    assert raw.headers["ai-generated"] == "true"
    b64 = raw.parse().data[0].b64_json  # type: ignore[index]
    assert b64 is not None
    image = proxy.workdir / "generated.png"
    image.write_bytes(base64.b64decode(b64))
    public = proxy.workdir / "labeler.pub.pem"
    public.write_bytes(proxy.key.public_key.to_pem())
    code = labeler_cli(["verify", "--trust", str(public), "--require", "verified", str(image)])
    assert code == 0, capsys.readouterr().out


@pytest.mark.slow
def test_unlabelled_routes_pass(proxy: Proxy) -> None:
    reply = proxy.http.get("/v1/models")
    assert reply.status_code == 200 and "ai-generated" not in reply.headers


# -- the hooks, called directly ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def guard() -> LabelingGuardrail:
    return LabelingGuardrail(policy=LabelPolicy(provider_name="ExampleAI", signing_key=SigningKey.generate()))


def _model_response() -> Any:
    from litellm.types.utils import ModelResponse

    return ModelResponse(
        id="c1",
        model="m",
        choices=[{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
    )


async def _chunks(words: list[str]) -> AsyncIterator[Any]:
    from litellm.types.utils import ModelResponseStream

    yield ModelResponseStream(id="c1", model="m", choices=[{"index": 0, "delta": {"role": "assistant"}}])
    for word in words:
        yield ModelResponseStream(id="c1", model="m", choices=[{"index": 0, "delta": {"content": word}}])
    yield ModelResponseStream(
        id="c1", model="m", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]
    )


@pytest.mark.anyio
async def test_tampered_answer_fails_verification(guard: LabelingGuardrail) -> None:
    data: dict[str, Any] = {}
    response = await guard.async_post_call_success_hook(data, None, _model_response())
    headers = await guard.async_post_call_response_headers_hook(data, None, response)
    assert headers is not None
    body = response.model_dump()
    trust = TrustStore([guard.policy.signing_key.public_key])  # type: ignore[union-attr]
    assert verify_completion(headers, body, trust).status is Status.VERIFIED
    body["choices"][0]["message"]["content"] = body["choices"][0]["message"]["content"].replace(
        "easy", "hard"
    )
    assert verify_completion(headers, body, trust).status is Status.ALTERED
    assert verify_completion({}, body, trust).status is Status.NO_LABEL


@pytest.mark.anyio
async def test_stream_objects_pass_as_they_are(guard: LabelingGuardrail) -> None:
    """The upstream's chunk objects go on untouched (LiteLLM serialises them); the label and the
    record are inserted as SSE bytes, which LiteLLM relays verbatim."""
    upstream = [c async for c in _chunks(["a", "b"])]

    async def replay() -> AsyncIterator[Any]:
        for c in upstream:
            yield c

    out = [c async for c in guard.async_post_call_streaming_iterator_hook(None, replay(), {"model": "m"})]
    objects = [c for c in out if not isinstance(c, bytes)]
    assert all(a is b for a, b in zip(objects, upstream, strict=True))
    inserted = [c for c in out if isinstance(c, bytes)]
    assert inserted[0].startswith(b"data: ")
    assert json.loads(inserted[0][6:])["choices"][0]["delta"]["content"] == LABEL
    assert inserted[-1].startswith(b": AIGC ") and out[-1] is inserted[-1]


@pytest.mark.anyio
async def test_failure_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = LabelPolicy(provider_name="ExampleAI", signing_key=SigningKey.generate())
    closed = LabelingGuardrail(policy=policy)
    opened = LabelingGuardrail(policy=policy, fail_mode="open")
    for g in (closed, opened):

        def broken(*args: Any) -> str:
            raise OSError("signing service down")

        monkeypatch.setattr(g.labeller, "record_json", broken)
    out = [c async for c in closed.async_post_call_streaming_iterator_hook(None, _chunks(["a"]), {})]
    error = json.loads(out[-1].removeprefix(b"data: "))["error"]  # the chat API's own error event
    assert "could not be labelled" in error["message"] and "signing service down" in error["message"]
    assert closed.stats["fail_closed"] == 1
    out = [c async for c in opened.async_post_call_streaming_iterator_hook(None, _chunks(["a"]), {})]
    assert not any(isinstance(c, bytes) and (b": AIGC" in c or b'"error"' in c) for c in out)
    assert opened.stats["fail_open"] == 1
    with pytest.raises(ValueError, match="fail_mode"):
        LabelingGuardrail(policy=policy, fail_mode="sometimes")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_closed_stream_failure_ends_with_the_record_of_what_was_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the middleware: what was labelled gets its record, then the API's own error event, and
    the stream stops; the chunk that could not be labelled and the rest are not sent."""
    from labeler.adapters.openai_chat import ChatStream

    policy = LabelPolicy(provider_name="ExampleAI", signing_key=SigningKey.generate())
    guard = LabelingGuardrail(policy=policy)
    on_event = ChatStream.on_event

    def failing(self: ChatStream, event: Any) -> Any:
        if "boom" in json.dumps(event.json()):
            raise ValueError("cannot label this chunk")
        return on_event(self, event)

    monkeypatch.setattr(ChatStream, "on_event", failing)
    chunks = _chunks(["a", "boom", "b"])
    out = [c async for c in guard.async_post_call_streaming_iterator_hook(None, chunks, {})]
    texts = [c.choices[0].delta.content for c in out if not isinstance(c, bytes)]
    assert texts == [None, "a"]  # the role chunk, then "a": not "boom", nothing after
    record, error = out[-1].split(b"\n\n")[:2]
    assert record.startswith(b": AIGC ")
    assert "cannot label this chunk" in json.loads(error.removeprefix(b"data: "))["error"]["message"]
    assert guard.stats["fail_closed"] == 1


def test_built_by_litellm_from_its_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM's own loader builds the guardrail from a config entry: ``labeler_config`` and the
    labeler options come through ``litellm_params`` (with every LiteLLM default beside them)."""
    import litellm
    from litellm.proxy.guardrails.guardrail_registry import InMemoryGuardrailHandler
    from litellm.types.guardrails import LitellmParams

    (tmp_path / "labeler.toml").write_text('[labeler]\nprovider_name = "ConfiguredAI"\n')
    monkeypatch.setattr(litellm, "callbacks", [])
    params = LitellmParams(
        guardrail="labeler.integrations.litellm.LabelingGuardrail",
        mode="post_call",
        default_on=True,
        labeler_config=str(tmp_path / "labeler.toml"),  # type: ignore[call-arg]
        text_position="both",  # type: ignore[call-arg]
    )
    guard = InMemoryGuardrailHandler().initialize_custom_guardrail(
        guardrail={"guardrail_name": "aigc-label", "litellm_params": params},  # type: ignore[typeddict-item]
        guardrail_type="labeler.integrations.litellm.LabelingGuardrail",
        litellm_params=params,
        config_file_path=str(tmp_path / "config.yaml"),
    )
    assert isinstance(guard, LabelingGuardrail)
    assert guard.policy.provider_name == "ConfiguredAI"
    assert guard.labels.position == "both" and guard.default_on is True


def _timed(texts: Iterator[str]) -> list[tuple[float, str]]:
    started = time.monotonic()
    return [(time.monotonic() - started, t) for t in texts if t]


@pytest.mark.slow
@pytest.mark.parametrize("api", ["responses", "messages"])
def test_responses_and_messages_streams_not_held(proxy: Proxy, api: str) -> None:
    """``/v1/responses`` and ``/v1/messages`` streams too: the label first, then each upstream
    token as it is made (0.3 s apart), none held back for the next."""
    import anthropic

    claude = anthropic.Anthropic(api_key=proxy.master_key, base_url=proxy.url, max_retries=0)

    def texts(prompt: str) -> Iterator[str]:
        if api == "responses":
            for event in proxy.openai.responses.create(model="chat-model", input=prompt, stream=True):
                if event.type == "response.output_text.delta":
                    yield event.delta
        else:
            messages = [{"role": "user", "content": prompt}]
            with claude.messages.stream(model="chat-model", max_tokens=64, messages=messages) as events:  # type: ignore[arg-type]
                yield from events.text_stream

    list(texts("tokens:1"))  # warm-up
    seen = _timed(texts("slow tokens:3"))
    assert [t for _, t in seen] == [LABEL, "Labels", " make", " AI"]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen[1:])]
    assert all(gap > 0.15 for gap in gaps), gaps
