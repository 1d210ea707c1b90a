"""Labelling a server-sent-event stream as it passes: bytes in, labelled bytes out, no I/O.

The ASGI and WSGI middleware both feed the stream's bytes in as they arrive and send what comes
out at once: every upstream event leaves the moment it is complete, the API's adapter (chosen by
the first event it recognises) inserts the label events, unknown events pass untouched,
``[DONE]`` stays last, and the signed record of the streamed text follows as an SSE comment.
When the rest of a stream can't be labelled, :class:`Unlabelable` says so with the bytes parsed
but not yet sent, and :meth:`StreamLabeller.abandon` closes what was labelled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .adapters import STREAM_ADAPTERS
from .adapters.base import StreamAdapter, error_event
from .response_labeling import refusal_message
from .sse import Event, EventTooLargeError, SSEParser, format_comment

if TYPE_CHECKING:
    from .response_labeling import ResponseLabeller

__all__ = ["COMMENT_PREFIX", "StreamLabeller", "Unlabelable"]

logger = logging.getLogger("labeler.middleware")  #: one logger for labelling responses

#: the SSE comment that carries the stream's signed record: ``: AIGC {record json}``
COMMENT_PREFIX = "AIGC "


class Unlabelable(Exception):
    """A stream stopped being one we can label (an event too large, an adapter error, signing)."""

    unsent = b""  #: events parsed but not sent: passed on as they came under fail_mode="open"


class StreamLabeller:
    """One stream's labelling state: the parser, the adapter once known, what to send next."""

    def __init__(self, labeller: ResponseLabeller) -> None:
        self.labeller = labeller
        self.parser = SSEParser(labeller.max_event_size)
        self.adapter: StreamAdapter | None = None  #: set by the first event an adapter labels
        self.finished = False  #: the end label and record are out
        self.newline = b"\n"  #: the stream's line ending, from the last event seen
        self.seen_event = False  #: an event (not only comments) has arrived
        self.out: list[bytes] = []  #: bytes to send next

    @property
    def labelled(self) -> bool:
        """The stream is one we label: its headers may claim a label."""
        return self.adapter is not None

    def take(self) -> list[bytes]:
        """What to send now (and forget it)."""
        out, self.out = self.out, []
        return out

    def feed(self, data: bytes) -> None:
        """Parse ``data``; queue what to send. Raises :class:`Unlabelable` with the events parsed
        but not sent in ``unsent``."""
        try:
            events = self.parser.feed(data)
        except EventTooLargeError as exc:
            self._rewrite_all(exc.events)
            raise Unlabelable(str(exc)) from None
        if len(events) == 1 and self.adapter is not None:  # the usual: one event of a known API
            event = events[0]
            if event.data is not None and event.data != "[DONE]":
                self.newline, self.seen_event = event.newline, True
                try:
                    self.label_event(event)
                except Unlabelable as exc:
                    exc.unsent = event.raw
                    raise
                return
        self._rewrite_all(events)

    def end(self) -> None:
        """The stream ended: queue the end label, the record and any unterminated tail."""
        tail = self.parser.flush()
        try:
            self.out += self._finish()
        except Unlabelable as exc:
            exc.unsent = tail
            raise
        self.out.append(tail)

    def abandon(self, closed: bool, reason: str) -> list[bytes]:
        """The rest can't be labelled: what to send to close what was labelled. Closed: the end
        label, the record and the API's own error event. Open: the record only (the headers
        announced it); the caller passes the rest on as it came, after ``parser.flush()``."""
        out = self.take()
        if self.adapter is not None and not self.finished:
            self.finished = True
            try:
                if closed:
                    out += self.adapter.finish()
                out += self.record_comment()
            except Exception as exc:  # an end label or the signature failed too
                logger.warning("no record for the stream: %s", exc)
        if closed:
            message = refusal_message(reason)
            adapter = self.adapter
            out.append((adapter.error_event if adapter else error_event)(message, self.newline))
        return out

    def _rewrite_all(self, events: list[Event]) -> None:
        done = 0
        try:
            for event in events:
                self._rewrite(event)
                done += 1
        except Unlabelable as exc:
            exc.unsent = b"".join(e.raw for e in events[done:])
            raise

    def _rewrite(self, event: Event) -> None:
        self.newline = event.newline
        if event.data is None and event.event is None:  # a comment, a keep-alive: as it came
            self.out.append(event.raw)
            return
        self.seen_event = True
        if event.data == "[DONE]":
            self.out += self._finish()
            self.out.append(event.raw)
            return
        self.label_event(event)

    def label_event(self, event: Event) -> None:
        """Queue ``event`` as the stream's adapter rewrites it (the first event an adapter knows
        chooses the API; before that, events pass as they came). Raises :class:`Unlabelable`
        when the chosen adapter fails: what we would send is no longer what we sign."""
        if self.adapter is not None:
            try:
                result = self.adapter.on_event(event)
            except Exception as exc:
                raise Unlabelable(f"an event could not be labelled: {type(exc).__name__}: {exc}") from exc
            if result is None:
                self.out.append(event.raw)
            else:
                self.out += result
            return
        for adapter_type in STREAM_ADAPTERS:
            candidate = adapter_type(self.labeller.labels)
            try:
                result = candidate.on_event(event)
            except Exception:  # not this API's event after all
                continue
            if result is not None:
                self.adapter = candidate
                self.labeller.stats["labeled"] += 1
                self.out += result
                return
        self.out.append(event.raw)

    def _finish(self) -> list[bytes]:
        if self.finished or self.adapter is None:
            return []
        self.finished = True
        return self.adapter.finish() + self.record_comment()

    def record_comment(self) -> list[bytes]:
        """The signed record of the text sent so far (when the headers announce one)."""
        if self.labeller.policy.signing_key is None or self.adapter is None:
            return []
        try:
            record = self.labeller.record_json(self.adapter.digest.digest(), "text")
        except Exception as exc:
            raise Unlabelable(f"the record could not be signed: {type(exc).__name__}: {exc}") from exc
        return [format_comment(COMMENT_PREFIX + record, self.newline)]
