"""A Gradio chat + picture app made compliant with one call.

    LABELER_CONFIG=examples/labeler.toml python examples/gradio_chat.py

Every streamed answer shows the label once, from its first token; every picture is served with
the visible label, the implicit label and the signature; the page shows the label, provider and
filing numbers above the chat the whole time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
from PIL import Image, ImageDraw

from labeler import LabelPolicy
from labeler.integrations.gradio import label_app

TOKEN_DELAY = float(os.environ.get("EXAMPLE_TOKEN_DELAY", "0.05"))
ANSWER = "Hello! I am a demo model. This answer streams in word by word, and it carries its label."


def chat(message: str, history: list[Any]) -> Iterator[str]:
    """Stands in for your real model: yields the answer so far, as Gradio chat functions do."""
    text = ""
    for word in ANSWER.split(" "):
        text += ("" if not text else " ") + word
        time.sleep(TOKEN_DELAY)
        yield text


def draw(prompt: str) -> Image.Image:
    """Stands in for your image model."""
    picture = Image.new("RGB", (384, 256))
    pen = ImageDraw.Draw(picture)
    for x in range(384):
        pen.line([(x, 0), (x, 255)], fill=(x * 255 // 383, 96, 255 - x * 255 // 383))
    pen.text((16, 16), (prompt or "a picture")[:40], fill="white")
    return picture


with gr.Blocks(title="A labelled Gradio app") as demo:
    gr.ChatInterface(chat)
    with gr.Row():
        prompt = gr.Textbox(label="Picture prompt", elem_id="picture-prompt", scale=4)
        button = gr.Button("Draw", elem_id="draw", scale=1)
    picture = gr.Image(label="Picture", format="png", elem_id="picture")
    button.click(draw, prompt, picture, api_name="draw")

label_app(demo, LabelPolicy.load())  # <- the one line

if __name__ == "__main__":
    demo.launch()
