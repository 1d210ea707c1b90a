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


def error_object(message: str) -> dict[str, str]:
    """The error the middleware answers with when it cannot label (JSON body or stream event)."""
    return {"message": message, "type": "labeling_error", "code": "aigc_label_failed"}


def error_event(message: str, newline: bytes = b"\n") -> bytes:
    """A clean end for a stream of no API we know: an ``error`` event."""
    return format_event({"error": error_object(message)}, event="error", newline=newline)


@dataclass
class StreamAdapter:
    """Rewrites one API's stream. ``on_event`` returns the bytes to send in place of an event
    (the event itself, plus inserted label events), or ``None`` for an event it doesn't know.

    ``digest`` covers the text a client assembles from what is *emitted*, in emission order:
    :meth:`texts` reads the same fragments back from a stream, so a verifier can rebuild it."""

    labels: Labels
    digest: Any = field(default_factory=hashlib.sha256)  #: over emitted text, in order
    saw_text: bool = False

    def text(self, fragment: str) -> None:
        # surrogatepass: JSON may carry lone surrogates ("\\ud800"); they are hashed, not refused
        self.digest.update(fragment.encode("utf-8", "surrogatepass"))
        self.saw_text = True

    @staticmethod
    def texts(obj: Any) -> list[str] | None:
        """The text fragments a client shows from one event's JSON data, in order; ``None``
        when the event is not of this API."""
        raise NotImplementedError

    def error_event(self, message: str, newline: bytes) -> bytes:
        """The stream's clean end when labelling fails, as this API reports errors mid-stream."""
        return error_event(message, newline)

    def on_event(self, event: Event) -> list[bytes] | None:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        """Events to emit at the end of the stream (before ``[DONE]``)."""
        return []

    @staticmethod
    def emit(event: Event, obj: dict[str, Any], name: str | None = None) -> bytes:
        return format_event(obj, event=name if name is not None else event.event, newline=event.newline)
