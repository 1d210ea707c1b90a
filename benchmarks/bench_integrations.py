"""Integrations' cost beside the bare route of the same tool, in one run. One function per
section; ``--only NAME`` runs one.

    .venv/bin/python benchmarks/bench_integrations.py [--only litellm|gradio|wsgi] [--requests 200]

gradio and wsgi are their own scripts (benchmarks/bench_gradio.py, bench_wsgi.py), run here in
the same run; their docstrings say what they measure.

litellm: two LiteLLM proxies in their own processes (the same config, one without the
``guardrails:`` block), before one stand-in upstream (examples/litellm/upstream.py, uvicorn, its
own process), all on 127.0.0.1; the openai SDK as client, requests alternating between the
two. Rows: non-streamed chat latency (median), a 2,000-token stream (total time, per event),
time to the first token with 300 ms model time before it (median), and the guardrail's hooks
called in-process (no HTTP noise) on a chat answer and on 20,000 stream chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "litellm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not start")


@contextmanager
def _process(args: list[str], env: dict[str, str], probe: str) -> Iterator[None]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(probe, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# -- LiteLLM -------------------------------------------------------------------------------------------


def _litellm_hooks_in_process(events: int = 20_000, responses: int = 2_000) -> tuple[float, float, float]:
    """(us per chat answer through the success + headers hooks, us per stream chunk through the
    iterator hook beyond a pass-through of the same chunks, us added to the first token)."""
    from litellm.types.utils import ModelResponse, ModelResponseStream

    from labeler import LabelPolicy, SigningKey
    from labeler.integrations.litellm import LabelingGuardrail

    guard = LabelingGuardrail(
        policy=LabelPolicy(provider_name="ExampleAI", signing_key=SigningKey.generate())
    )
    answer = "A typical chat answer of a few sentences, about as long as a real completion. " * 6

    async def answers() -> float:
        start = time.perf_counter()
        for _ in range(responses):
            data: dict[str, object] = {}
            response = ModelResponse(
                id="c",
                model="m",
                choices=[
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
            )
            await guard.async_post_call_success_hook(data, None, response)
            await guard.async_post_call_response_headers_hook(data, None, response)
        return (time.perf_counter() - start) / responses

    def chunks(n: int = events) -> list[ModelResponseStream]:
        out = [ModelResponseStream(id="c", model="m", choices=[{"index": 0, "delta": {"role": "assistant"}}])]
        out += [
            ModelResponseStream(id="c", model="m", choices=[{"index": 0, "delta": {"content": " token"}}])
            for _ in range(n)
        ]
        return out

    async def stream(labelled: bool) -> float:
        items = chunks()

        async def source():  # type: ignore[no-untyped-def]
            for item in items:
                yield item

        start = time.perf_counter()
        if labelled:
            async for _ in guard.async_post_call_streaming_iterator_hook(None, source(), {"model": "m"}):
                pass
        else:
            async for _ in source():
                pass
        return time.perf_counter() - start

    async def first_token(labelled: bool) -> float:
        """Seconds from the stream's start to the first upstream token leaving the hook (a fresh
        stream each time: the label chunk and the adapter's choice are in it)."""
        items = chunks(1)

        async def source():  # type: ignore[no-untyped-def]
            for item in items:
                yield item

        start = time.perf_counter()
        hooked = guard.async_post_call_streaming_iterator_hook(None, source(), {"model": "m"})
        async for item in hooked if labelled else source():
            if item is items[1]:
                elapsed = time.perf_counter() - start
                break
        if labelled:
            await hooked.aclose()
        return elapsed

    async def run() -> tuple[float, float, float]:
        await answers()  # warm-up
        per_answer = min([await answers() for _ in range(3)])
        added = min([await stream(True) - await stream(False) for _ in range(3)])
        firsts = [await first_token(True) - await first_token(False) for _ in range(2000)]
        return per_answer * 1e6, added / events * 1e6, statistics.median(firsts) * 1e6

    return asyncio.run(run())


def bench_litellm(args: argparse.Namespace) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price list on import
    import openai

    requests: int = args.requests

    if not (Path(sys.executable).with_name("litellm")).exists():
        print("litellm: not installed (pip install 'aigc-labeler[litellm]'): skipped")
        return
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        from labeler import SigningKey

        (work / "labeler.pem").write_bytes(SigningKey.generate().private_pem())
        (work / "labeler.pem").chmod(0o600)
        (work / "labeler.toml").write_text(
            '[labeler]\nprovider_name = "ExampleAI"\nkey_file = "labeler.pem"\n'
        )
        config = (EXAMPLE / "config.yaml").read_text()
        (work / "bare.yaml").write_text(config.split("\nguardrails:")[0] + "\n")
        (work / "noop_guardrail.py").write_text(NOOP_GUARDRAIL)
        (work / "noop.yaml").write_text(
            config.replace("labeler.integrations.litellm.LabelingGuardrail", "noop_guardrail.NoopGuardrail")
        )
        up_port = _free_port()
        master = "sk-bench-" + secrets.token_hex(12)
        env = {
            **os.environ,
            "LABELER_CONFIG": str(work / "labeler.toml"),
            "UPSTREAM_API_BASE": f"http://127.0.0.1:{up_port}/v1",
            "LITELLM_MASTER_KEY": master,
            "LITELLM_LOG": "ERROR",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start-up
        }
        stack.enter_context(
            _process(
                [
                    str(bin_dir / "uvicorn"),
                    "--app-dir",
                    str(EXAMPLE),
                    "upstream:app",
                    "--log-level",
                    "warning",
                    "--port",
                    str(up_port),
                ],
                env,
                f"http://127.0.0.1:{up_port}/",
            )
        )
        clients: dict[str, openai.OpenAI] = {}
        for name, cfg in (
            ("bare", work / "bare.yaml"),
            ("noop", work / "noop.yaml"),
            ("labelled", EXAMPLE / "config.yaml"),
        ):
            port = _free_port()
            command = [
                str(bin_dir / "litellm"),
                "--config",
                str(cfg),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            stack.enter_context(_process(command, env, f"http://127.0.0.1:{port}/health/liveliness"))
            clients[name] = openai.OpenAI(
                api_key=master,
                base_url=f"http://127.0.0.1:{port}/v1",
                # a pooled connection idle past uvicorn's keep-alive may be closed as it is reused
                max_retries=2,
            )

        def chat(client: openai.OpenAI) -> float:
            start = time.perf_counter()
            client.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "hi"}])
            return time.perf_counter() - start

        def stream(client: openai.OpenAI, prompt: str) -> tuple[float, float]:
            """(seconds to the first upstream token, seconds to the end)."""
            start = time.perf_counter()
            first = 0.0
            for chunk in client.chat.completions.create(
                model="chat-model", messages=[{"role": "user", "content": prompt}], stream=True
            ):
                content = chunk.choices[0].delta.content if chunk.choices else None
                if not first and content and not content.startswith("【"):
                    first = time.perf_counter() - start
            return first, time.perf_counter() - start

        def alternate(measure: Callable[[openai.OpenAI], float], rounds: int) -> dict[str, list[float]]:
            out: dict[str, list[float]] = {name: [] for name in clients}
            for name in out:  # warm-up
                for _ in range(3):
                    measure(clients[name])
            for _ in range(rounds):
                for name in out:
                    out[name].append(measure(clients[name]))
            return out

        latency = alternate(chat, requests)
        long = alternate(lambda c: stream(c, "tokens:2000")[1], args.streams)
        ttft = alternate(lambda c: stream(c, "slow tokens:1")[0], 30)
    per_answer_us, per_event_us, first_us = _litellm_hooks_in_process()

    print("LiteLLM proxy (one process each, 127.0.0.1), openai SDK client, medians; the no-op guardrail")
    print("overrides the streaming iterator hook with a pass-through: what any streaming guardrail costs")
    print("| what | bare LiteLLM | no-op guardrail | LabelingGuardrail | added by labelling (vs bare) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = (
        (f"chat answer, latency ({requests} requests)", latency, 1.0, "ms"),
        (f"2,000-token stream, time per event ({args.streams} streams)", long, 1000 / 2000, "us/event"),
        ("first token after 300 ms model time (30 streams)", ttft, 1.0, "ms"),
    )
    for what, samples, scale, unit in rows:
        b, n, lab = (_median_ms(samples[k]) * scale for k in ("bare", "noop", "labelled"))
        print(
            f"| {what} | {b:.2f} {unit} | {n:.2f} {unit} | {lab:.2f} {unit} | "
            f"{lab - n:+.2f} {unit} ({lab - b:+.2f}) |"
        )
    print("\nThe hooks in-process (no HTTP): ")
    print(f"| success + headers hooks, one chat answer (signed record) | {per_answer_us:.0f} us |")
    print(f"| streaming iterator hook, per chunk beyond a pass-through | {per_event_us:.1f} us/event |")
    print(f"| streaming iterator hook, added to the first token (median of 2,000) | {first_us:.0f} us |")


#: one function per section, given the parsed arguments
NOOP_GUARDRAIL = """
from litellm.integrations.custom_guardrail import CustomGuardrail


class NoopGuardrail(CustomGuardrail):
    async def async_post_call_success_hook(self, data, user_api_key_dict, response):
        return None

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict, response, request_data):
        async for item in response:
            yield item
"""


def _script(name: str) -> Callable[[argparse.Namespace], None]:
    """A section that is its own script (same machine, same run): benchmarks/``name``."""

    def run(args: argparse.Namespace) -> None:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / name)], check=True)

    return run


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "litellm": bench_litellm,
    "gradio": _script("bench_gradio.py"),  # label_app beside the bare Gradio app
    "wsgi": _script("bench_wsgi.py"),  # labeler.wsgi beside the bare Flask app
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--requests", type=int, default=200, help="litellm: non-streamed requests per proxy")
    parser.add_argument("--streams", type=int, default=20, help="litellm: 2,000-token streams per proxy")
    args = parser.parse_args()
    for name in args.only or sorted(SECTIONS):
        print(f"== {name}")
        SECTIONS[name](args)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
