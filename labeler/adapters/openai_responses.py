"""OpenAI Responses API: ``output[].content[]`` of type ``output_text``, and its event stream
(``response.output_text.delta`` ... ``response.completed``)."""

from __future__ import annotations

from typing import Any

from ..sse import Event, format_event
from .base import Labels, StreamAdapter, label_parts


def _text_parts(response: dict[str, Any]) -> list[dict[str, Any]]:
    parts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if (
                    isinstance(part, dict)
                    and part.get("type") == "output_text"
                    and isinstance(part.get("text"), str)
                ):
                    parts.append(part)
    return parts


def label_json(obj: dict[str, Any], labels: Labels) -> bool:
    if obj.get("object") != "response":
        return False
    label_parts(_text_parts(obj), labels)
    return True


class ResponsesStream(StreamAdapter):
    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.started = False
        self.named = True  #: the stream names its events (``event: response...``), as OpenAI's does

    @staticmethod
    def texts(obj: Any) -> list[str] | None:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(kind, str) or not kind.startswith("response."):
            return None
        assert isinstance(obj, dict)
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            return [obj["delta"]]
        return []

    def error_event(self, message: str, newline: bytes) -> bytes:
        obj = {"type": "error", "code": "aigc_label_failed", "message": message, "param": None}
        return format_event(obj, event="error" if self.named else None, newline=newline)

    def on_event(self, event: Event) -> list[bytes] | None:
        obj = event.json()
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(kind, str) or not kind.startswith("response."):
            return None
        assert isinstance(obj, dict)
        self.named = event.event is not None
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            out = []
            if self.labels.start and not self.started:
                self.started = True
                self.text(self.labels.start)
                out.append(self.emit(event, {**obj, "delta": self.labels.start}))
            self.text(obj["delta"])
            return [*out, event.raw]
        if kind == "response.output_text.done" and isinstance(obj.get("text"), str):
            out = []
            if self.labels.end:
                self.text(self.labels.end)
                delta = {k: v for k, v in obj.items() if k not in ("text", "logprobs")}
                out.append(
                    self.emit(
                        event,
                        {**delta, "type": "response.output_text.delta", "delta": self.labels.end},
                        "response.output_text.delta" if event.event else None,
                    )
                )
            return [*out, self.emit(event, {**obj, "text": self.labels.decorate(obj["text"])})]
        if kind == "response.content_part.done" and isinstance(obj.get("part"), dict):
            part = obj["part"]
            if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                return [
                    self.emit(event, {**obj, "part": {**part, "text": self.labels.decorate(part["text"])}})
                ]
        if kind == "response.output_item.done" and isinstance(obj.get("item"), dict):
            item = obj["item"]
            for part in _text_parts({"output": [item]}):
                part["text"] = self.labels.decorate(part["text"])
            return [self.emit(event, obj)]
        if kind in ("response.completed", "response.incomplete") and isinstance(obj.get("response"), dict):
            for part in _text_parts(obj["response"]):
                part["text"] = self.labels.decorate(part["text"])
            return [self.emit(event, obj)]
        return [event.raw]
