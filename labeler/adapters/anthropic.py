"""Anthropic Messages: ``content[]`` text blocks, and the ``content_block_delta`` stream."""

from __future__ import annotations

from typing import Any

from ..sse import Event, format_event
from .base import Labels, StreamAdapter, label_parts

_EVENTS = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
}


def label_json(obj: dict[str, Any], labels: Labels) -> bool:
    if obj.get("type") != "message" or obj.get("role") != "assistant":
        return False
    blocks = [
        b
        for b in obj.get("content") or []
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    label_parts(blocks, labels)
    return True


class AnthropicStream(StreamAdapter):
    """The end label goes into the last text block: a text block's ``content_block_stop`` is
    held until the next event shows whether another block follows (content is never held)."""

    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.started = False
        self.text_blocks: set[int] = set()
        self.held: tuple[Event, int] | None = None

    @staticmethod
    def texts(obj: Any) -> list[str] | None:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in _EVENTS:
            return None
        assert isinstance(obj, dict)
        if kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                return [block["text"]]
        elif kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                return [delta["text"]] if isinstance(delta.get("text"), str) else []
        return []

    def error_event(self, message: str, newline: bytes) -> bytes:
        obj = {"type": "error", "error": {"type": "api_error", "message": message}}
        return format_event(obj, event="error", newline=newline)  # as the Messages API does

    def _delta(self, template: Event, index: int, text: str) -> bytes:
        self.text(text)
        obj = {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}
        return self.emit(template, obj, "content_block_delta")

    def _release(self, with_end_label: bool) -> list[bytes]:
        if self.held is None:
            return []
        event, index = self.held
        self.held = None
        return [self._delta(event, index, self.labels.end), event.raw] if with_end_label else [event.raw]

    def on_event(self, event: Event) -> list[bytes] | None:
        obj = event.json()
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in _EVENTS:
            return None
        assert isinstance(obj, dict)
        out: list[bytes] = []
        if kind == "content_block_start":
            out += self._release(False)
            block = obj.get("content_block") or {}
            out.append(event.raw)
            if isinstance(block, dict) and block.get("type") == "text":
                index = obj.get("index", 0)
                self.text_blocks.add(index)
                if isinstance(block.get("text"), str) and block["text"]:
                    self.text(block["text"])
                if self.labels.start and not self.started:
                    self.started = True
                    out.append(self._delta(event, index, self.labels.start))
            return out
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            if (
                isinstance(delta, dict)
                and delta.get("type") == "text_delta"
                and isinstance(delta.get("text"), str)
            ):
                self.text(delta["text"])
            return [event.raw]
        if kind == "content_block_stop" and obj.get("index") in self.text_blocks and self.labels.end:
            out += self._release(False)
            self.held = (event, obj["index"])
            return out
        if kind in ("message_delta", "message_stop"):
            return [*self._release(True), event.raw]
        return [event.raw]

    def finish(self) -> list[bytes]:
        return self._release(True)
