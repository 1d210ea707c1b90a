"""A FastAPI chatbot made compliant with one line.

    LABELER_CONFIG=examples/labeler.toml uvicorn examples.fastapi_chatbot:app

Any OpenAI client can talk to it; every answer leaves with a visible label, the AIGC headers
and a signed record. `GET /.well-known/aigc-label` tells the UI what to show persistently.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from pydantic import BaseModel

from labeler import LabelPolicy
from labeler.middleware import LabelingMiddleware

app = FastAPI(title="My chatbot")
app.add_middleware(LabelingMiddleware, policy=LabelPolicy.load())  # <- the one line


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str
    messages: list[Message]


def my_model(prompt: str) -> str:
    """Stands in for your real model."""
    return f"You asked: {prompt}. Here is a helpful answer."


@app.post("/v1/chat/completions")
def chat(request: ChatRequest) -> dict[str, object]:
    answer = my_model(request.messages[-1].content)
    return {
        "id": "chatcmpl-example",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        ],
    }
