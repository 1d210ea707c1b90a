"""labeler.integrations.gradio beside the bare Gradio app, one run.

  .venv/bin/python benchmarks/bench_gradio.py [--tokens 400] [--rounds 40]

event    what the wrapper adds per streamed event, in process: a ChatInterface chat function
         yielding the cumulative answer (--tokens yields, English and Chinese), and a
         gr.Chatbot function yielding the whole history (10 earlier turns), bare vs wrapped
picture  one 512x512 picture returned as a PIL image: Gradio's own encode into its cache
         (bare) vs the same plus the label (visible + implicit + signature, the watermark on)
first    first-token latency through a real launched app (ChatInterface, /chat over Gradio's
         queue/SSE protocol, raw httpx), the bare app and the labelled app side by side,
         rounds alternated; and the time to the last event
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import gradio as gr  # noqa: E402
import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from labeler.demo import demo_policy  # noqa: E402
from labeler.integrations.gradio import GradioLabeler, label_app  # noqa: E402


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_events(tokens: int) -> None:
    labeler = GradioLabeler(demo_policy())
    print(f"-- per streamed event ({tokens} events; best of 5)")
    print(f"{'stream':<34}{'bare µs/event':>14}{'labelled µs/event':>19}{'added µs':>10}")
    for name, word in (("ChatInterface fn, English", "word "), ("ChatInterface fn, Chinese", "中文词语")):

        def chat(message: str, history: list[Any], word: str = word) -> Iterator[str]:
            text = ""
            for _ in range(tokens):
                text += word
                yield text

        wrapped = labeler.wrap(chat, labeler._chat_response_labeller([]))
        bare = best(lambda chat=chat: sum(1 for _ in chat("q", [])))  # type: ignore[misc]
        labelled = best(lambda wrapped=wrapped: sum(1 for _ in wrapped("q", [])))  # type: ignore[misc]
        print(f"{name:<34}{bare / tokens * 1e6:>14.2f}{labelled / tokens * 1e6:>19.2f}"
              f"{(labelled - bare) / tokens * 1e6:>10.2f}")  # fmt: skip

    answer = labeler.label_text("an earlier answer " * 40, "whole")
    earlier: list[dict[str, str]] = []
    for i in range(10):
        earlier += [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": answer}]

    def respond(message: str, history: list[Any]) -> Iterator[list[Any]]:
        text = ""
        for _ in range(tokens):
            text += "word "
            yield [*earlier, {"role": "user", "content": message}, {"role": "assistant", "content": text}]

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot()
        box = gr.Textbox()
        box.submit(respond, [box, chatbot], chatbot)
    label_app(demo, demo_policy(), banner=False)
    wrapped = next(iter(demo.fns.values())).fn
    bare = best(lambda: sum(1 for _ in respond("q", [])))
    labelled = best(lambda: sum(1 for _ in wrapped("q", [])))
    print(f"{'gr.Chatbot history (10 turns)':<34}{bare / tokens * 1e6:>14.2f}{labelled / tokens * 1e6:>19.2f}"
          f"{(labelled - bare) / tokens * 1e6:>10.2f}")  # fmt: skip
    events = list(respond("q", []))
    own = best(lambda: [chatbot.postprocess(h) for h in events])
    print(
        f"   anchor: Gradio's own Chatbot.postprocess of the same events: {own / tokens * 1e6:.2f} µs/event"
    )


def bench_picture() -> None:
    from gradio import image_utils

    labeler = GradioLabeler(demo_policy())
    picture = Image.effect_mandelbrot((512, 512), (-2, -1.5, 1, 1.5), 100).convert("RGB")
    cache = labeler.cache_dir or "/tmp/gradio"
    print("-- one 512x512 picture from a function (best of 5)")
    print(f"{'format':<10}{'bare ms':>10}{'labelled ms':>14}{'added ms':>10}")
    for fmt in ("png", "webp"):
        bare = best(lambda fmt=fmt: image_utils.save_image(picture, cache, fmt))  # type: ignore[misc]
        labelled = best(lambda fmt=fmt: labeler.label_image(picture, fmt))  # type: ignore[misc]
        print(f"{fmt:<10}{bare * 1e3:>10.1f}{labelled * 1e3:>14.1f}{(labelled - bare) * 1e3:>10.1f}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chat(message: str, history: list[Any]) -> Iterator[str]:
    """A model whose first token is ready at once, then 20 more 5 ms apart."""
    text = "First"
    yield text
    for _ in range(20):
        time.sleep(0.005)
        text += " token"
        yield text


def one_request(http: httpx.Client, url: str, fn_index: int) -> tuple[float, float]:
    """(seconds to the first streamed output, seconds to completion) for one /chat call."""
    session = uuid.uuid4().hex
    t0 = time.perf_counter()
    first = None
    join = {"data": ["hi", []], "fn_index": fn_index, "session_hash": session, "event_data": None,
            "trigger_id": None}  # fmt: skip
    http.post(f"{url}/gradio_api/queue/join", json=join).raise_for_status()
    with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_generating" and first is None:
                first = time.perf_counter() - t0
            if msg.get("msg") == "process_completed":
                return first or 0.0, time.perf_counter() - t0
    raise RuntimeError("stream ended early")


def bench_first_token(rounds: int) -> None:
    apps = {"bare": gr.ChatInterface(chat), "labelled": label_app(gr.ChatInterface(chat), demo_policy())}
    urls, indexes = {}, {}
    for name, demo in apps.items():
        port = free_port()
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        urls[name] = f"http://127.0.0.1:{port}"
        indexes[name] = next(i for i, f in demo.fns.items() if f.api_name == "chat")
    firsts: dict[str, list[float]] = {n: [] for n in apps}
    totals: dict[str, list[float]] = {n: [] for n in apps}
    try:
        with httpx.Client(timeout=30) as http:
            for name in apps:  # warm up
                one_request(http, urls[name], indexes[name])
            for i in range(rounds):
                for name in ("bare", "labelled") if i % 2 else ("labelled", "bare"):
                    first, total = one_request(http, urls[name], indexes[name])
                    firsts[name].append(first)
                    totals[name].append(total)
    finally:
        for demo in apps.values():
            demo.close()
    print(f"-- first token through a launched app ({rounds} rounds each, alternated; ms)")
    print(f"{'app':<10}{'first median':>14}{'first p90':>11}{'last median':>13}")
    for name in apps:
        f, t = sorted(firsts[name]), sorted(totals[name])
        print(f"{name:<10}{statistics.median(f) * 1e3:>14.2f}{f[int(len(f) * 0.9)] * 1e3:>11.2f}"
              f"{statistics.median(t) * 1e3:>13.2f}")  # fmt: skip
    pairs = sorted(a - b for a, b in zip(firsts["labelled"], firsts["bare"], strict=True))
    q1, q3 = pairs[len(pairs) // 4], pairs[3 * len(pairs) // 4]
    print(f"labelled - bare, first token, paired rounds: median {statistics.median(pairs) * 1e3:+.2f} ms "
          f"(interquartile {q1 * 1e3:+.2f} .. {q3 * 1e3:+.2f} ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    bench_events(args.tokens)
    print()
    bench_picture()
    print()
    bench_first_token(args.rounds)


if __name__ == "__main__":
    main()
