"""OpenAI Chat Completions: ``choices[].message.content`` and ``chat.completion.chunk`` streams
(also legacy ``text_completion`` ``choices[].text``)."""

from __future__ import annotations

from typing import Any

from ..sse import Event
from .base import Labels, StreamAdapter, label_parts


def label_json(obj: dict[str, Any], labels: Labels) -> bool:
    if obj.get("object") not in ("chat.completion", "text_completion"):
        return False
    for choice in obj.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            choice["text"] = labels.apply(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = labels.apply(content)
            elif isinstance(content, list):
                label_parts(
                    [p for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)], labels
                )
    return True


class ChatStream(StreamAdapter):
    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.envelope: dict[str, Any] = {}
        self.started: set[int] = set()
        self.ended: set[int] = set()
        self.last: Event | None = None

    def _chunk(self, index: int, text: str, template: Event) -> bytes:
        self.text(text)
        obj = {
            **self.envelope,
            "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}],
        }
        return self.emit(template, obj)

    def on_event(self, event: Event) -> list[bytes] | None:
        obj = event.json()
        if not isinstance(obj, dict) or obj.get("object") != "chat.completion.chunk":
            return None
        self.last = event
        self.envelope = {
            k: obj[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in obj
        }
        before: list[bytes] = []
        after: list[bytes] = []
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            opens = isinstance(delta, dict) and ("role" in delta or bool(content))
            if self.labels.start and index not in self.started and opens:
                self.started.add(index)
                if content:  # the first chunk already carries text: the label goes first
                    before.append(self._chunk(index, self.labels.start, event))
                    self.text(content)
                    content = None
                else:
                    after.append(self._chunk(index, self.labels.start, event))
            if isinstance(content, str):
                self.text(content)
            if self.labels.end and choice.get("finish_reason") and index not in self.ended:
                self.ended.add(index)
                before.append(self._chunk(index, self.labels.end, event))
        return [*before, event.raw, *after]

    def finish(self) -> list[bytes]:
        if not self.labels.end or self.last is None:
            return []
        return [self._chunk(i, self.labels.end, self.last) for i in sorted(self.started - self.ended)]
