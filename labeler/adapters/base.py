"""What every response-shape adapter shares: the label texts and the stream text digest."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..policy import LabelPolicy
from ..sse import Event, format_event
from ..text import Position, add_text_label, end_fragment, start_fragment


@dataclass
class Labels:
    """The label texts (one object per middleware, shared by its responses). Streams insert
    ``start``/``end`` as their own deltas; whole JSON bodies get ``apply`` (Markdown-aware,
    idempotent)."""

    policy: LabelPolicy
    position: Position

    @functools.cached_property
    def start(self) -> str:
        return start_fragment(self.policy) if self.position in ("start", "both") else ""

    @functools.cached_property
    def end(self) -> str:
        return end_fragment(self.policy) if self.position in ("end", "both") else ""

    def apply(self, text: str) -> str:
        return add_text_label(text, self.policy, self.position)

    def decorate(self, text: str) -> str:
        """A streamed text as the client assembled it: start + deltas + end."""
        if self.start and not text.startswith(self.start):
            text = self.start + text
        if self.end and not text.endswith(self.end):
            text = text + self.end
        return text


def label_parts(parts: list[dict[str, Any]], labels: Labels) -> None:
    """Label a message made of several text parts: the start label on the first part, the end
    label on the last (one part gets both, per the position)."""
    if len(parts) == 1:
        parts[0]["text"] = labels.apply(parts[0]["text"])
        return
    if parts and labels.position in ("start", "both"):
        parts[0]["text"] = Labels(labels.policy, "start").apply(parts[0]["text"])
    if parts and labels.position in ("end", "both"):
        parts[-1]["text"] = Labels(labels.policy, "end").apply(parts[-1]["text"])


@dataclass
class StreamAdapter:
    """Rewrites one API's stream. ``on_event`` returns the bytes to send in place of an event
    (the event itself, plus inserted label events), or ``None`` for an event it doesn't know."""

    labels: Labels
    digest: Any = field(default_factory=hashlib.sha256)  #: over emitted text, in order
    saw_text: bool = False

    def text(self, fragment: str) -> None:
        self.digest.update(fragment.encode("utf-8"))
        self.saw_text = True

    def on_event(self, event: Event) -> list[bytes] | None:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        """Events to emit at the end of the stream (before ``[DONE]``)."""
        return []

    @staticmethod
    def emit(event: Event, obj: dict[str, Any], name: str | None = None) -> bytes:
        return format_event(obj, event=name if name is not None else event.event, newline=event.newline)
