"""OpenAI Chat Completions: ``choices[].message.content`` and ``chat.completion.chunk`` streams
(also legacy ``text_completion`` ``choices[].text``)."""

from __future__ import annotations

from typing import Any

from ..sse import Event, format_event
from .base import Labels, StreamAdapter, error_object, label_parts


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
        self.started: set[int] = set()
        self.ended: set[int] = set()
        self.last: Event | None = None
        self._last_obj: dict[str, Any] = {}

    @property
    def envelope(self) -> dict[str, Any]:
        """The identity fields of the last chunk, for the chunks we insert (made when needed)."""
        obj = self._last_obj
        return {k: obj[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in obj}

    @staticmethod
    def texts(obj: Any) -> list[str] | None:
        if not isinstance(obj, dict) or obj.get("object") != "chat.completion.chunk":
            return None
        out = []
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                out.append(delta["content"])
        return out

    def error_event(self, message: str, newline: bytes) -> bytes:
        return format_event({"error": error_object(message)}, newline=newline)  # as OpenAI streams do

    def _chunk(self, index: Any, text: str, template: Event) -> bytes:
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
        self.last, self._last_obj = event, obj
        # the usual event: one choice, a text delta, no finish, its start label already sent
        choices = obj.get("choices")
        if type(choices) is list and len(choices) == 1:
            choice = choices[0]
            if type(choice) is dict and not choice.get("finish_reason"):
                delta = choice.get("delta")
                if type(delta) is dict and (not self.labels.start or choice.get("index", 0) in self.started):
                    content = delta.get("content")
                    if type(content) is str and content:
                        self.text(content)
                    return [event.raw]
        before: list[Any] = []  #: choices whose start label goes before the event (it has text)
        after: list[Any] = []  #: ... after it (a role-only delta opens the message)
        ends: list[dict[str, Any]] = []  #: choices this event finishes: the end label goes first
        contents: list[str] = []
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            opens = isinstance(delta, dict) and ("role" in delta or bool(content))
            if self.labels.start and index not in self.started and opens:
                self.started.add(index)
                (before if content else after).append(index)
            if isinstance(content, str) and content:
                contents.append(content)
            if self.labels.end and choice.get("finish_reason") and index not in self.ended:
                self.ended.add(index)
                ends.append(choice)
        # emission order is digest order: start labels, the event's text, late start labels, end labels
        out = [self._chunk(i, self.labels.start, event) for i in before]
        for content in contents:
            self.text(content)
        if not ends:
            return [*out, event.raw, *(self._chunk(i, self.labels.start, event) for i in after)]
        if not contents and not after:  # the usual finish chunk: end label, then the finish
            return [*out, *(self._chunk(c.get("index", 0), self.labels.end, event) for c in ends), event.raw]
        # text and finish_reason in one event: the text, then the end label, then the finish
        ending = {id(c) for c in ends}
        unfinished = [{**c, "finish_reason": None} if id(c) in ending else c for c in obj["choices"]]
        out.append(self.emit(event, {**obj, "choices": unfinished}))
        out += [self._chunk(i, self.labels.start, event) for i in after]
        out += [self._chunk(c.get("index", 0), self.labels.end, event) for c in ends]
        finish = [
            {"index": c.get("index", 0), "delta": {}, "finish_reason": c["finish_reason"]} for c in ends
        ]
        return [*out, self.emit(event, {**self.envelope, "choices": finish})]

    def finish(self) -> list[bytes]:
        if not self.labels.end or self.last is None:
            return []
        return [self._chunk(i, self.labels.end, self.last) for i in sorted(self.started - self.ended)]
