"""Incremental Server-Sent Events parsing and writing (the WHATWG event-stream format).

The parser is fed body chunks as they arrive and returns each *complete* event at once, with
its raw bytes, so an event we do not rewrite is forwarded byte for byte. Lines may end in
CRLF, LF or CR, and an event may be split anywhere across chunks (even inside a CRLF).
A pending partial event is bounded: a stream that never ends an event cannot eat memory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from . import jsonfast
from .errors import MalformedFileError

__all__ = ["Event", "EventTooLargeError", "SSEParser", "format_comment", "format_event"]

# The blank line that ends an event: a line ending (CRLF, LF or CR) right after another. A CR
# after a CRLF may be the first half of a CRLF: when it is the last byte we have, the parser waits
# for the next one. A CR after an LF or a CR ends the event at once (else a CR-only stream would
# hold every event back until the next arrives); an LF after it is the next event's first byte
# (a stray half line ending: an empty line, which dispatches nothing).
_EVENT_END = re.compile(rb"\r\n(?:\r\n?|\n)|\n[\n\r]|\r\r")
_LINE_END = re.compile(rb"\r\n|\n|\r")
MAX_PENDING = 4 * 1024 * 1024


class EventTooLargeError(MalformedFileError):
    """An event is larger than the parser's bound (ended or not). ``events`` are the complete
    events before it in the same chunk (parsed, not to be lost); ``flush()`` returns the rest."""

    def __init__(self, message: str, events: list[Event]) -> None:
        super().__init__(message)
        self.events = events


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 0.4 us more per event; read-only by use
class Event:
    raw: bytes  #: the event exactly as received, terminating blank line included
    event: str | None
    data: str | None  #: data lines joined with "\n"; None when the event has no data field
    newline: bytes  #: the stream's line ending, for events we insert next to this one

    def json(self) -> Any:
        """The data as JSON, or ``None`` when it is absent or not JSON (e.g. ``[DONE]``)."""
        if self.data is None:
            return None
        try:
            return jsonfast.loads(self.data)
        except (ValueError, RecursionError):
            return None

    @property
    def is_comment_only(self) -> bool:
        return self.event is None and self.data is None


def _parse_fields(block: bytes) -> tuple[str | None, str | None]:
    event: str | None = None
    data: list[str] = []
    for line in _LINE_END.split(block):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"event":
            event = text
        elif name == b"data":
            data.append(text)
    return event, ("\n".join(data) if data else None)


def _event(raw: bytes, end: bytes, lf_only: bool) -> Event:
    """``lf_only``: ``raw`` is known to hold no CR (then one LF before the end means one line)."""
    newline = b"\r\n" if end[:2] == b"\r\n" else end[:1]
    if lf_only and raw.find(b"\n") == len(raw) - 2 and raw.startswith(b"data:"):
        value = raw[6:-2] if raw[5:6] == b" " else raw[5:-2]  # one data line: the usual event
        return Event(raw, None, value.decode("utf-8", "replace"), newline)
    event, data = _parse_fields(raw)
    return Event(raw, event, data, newline)


class SSEParser:
    """Feed bytes, get complete events; ``flush()`` returns what is left at end of stream.

    Work is linear in the bytes fed, however they are chunked: an unfinished event is kept as a
    list of chunks (joined once, when it ends), and each chunk is scanned once, with at most the
    last 3 bytes before it (a line ending split across chunks). ``bytes_examined`` counts the
    bytes scanned and joined, for tests that bound the work."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._chunks: list[bytes] = []  #: the pending, unfinished event
        self._size = 0  #: bytes in ``_chunks``
        self._tail = b""  #: the end of the pending event where an event end may still begin
        self._max = max_pending
        self.bytes_examined = 0

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        size = len(chunk)
        if (  # the usual chunk: one "data:" line and its blank line, no CR, nothing pending
            not self._chunks
            and chunk.find(b"\n") == size - 2
            and chunk.endswith(b"\n\n")
            and chunk.startswith(b"data:")
            and size <= self._max
            and b"\r" not in chunk
        ):
            self.bytes_examined += size
            value = chunk[6:-2] if chunk[5:6] == b" " else chunk[5:-2]
            return [Event(chunk, None, value.decode("utf-8", "replace"), b"\n")]
        tail = self._tail
        window = tail + chunk if tail else chunk
        lead = len(tail)  #: bytes of ``window`` that are already in ``_chunks``
        size = len(window)
        lf_only = b"\r" not in window  # then only "\n\n" ends an event: a plain find, ~5x faster
        search = _EVENT_END.search
        self.bytes_examined += size
        events: list[Event] = []
        start = 0  #: where the next event begins, in ``window``
        waiting = False  #: stopped at a CRLF + CR that the next chunk may turn into CRLF + CRLF
        while True:
            if lf_only:
                found = window.find(b"\n\n", start)
                if found < 0:
                    break
                end, terminator = found + 2, b"\n\n"
            else:
                self.bytes_examined += size - start
                match = search(window, start)
                if match is None:
                    break
                end, terminator = match.end(), match.group()
                if end == size and len(terminator) == 3 and terminator[2] == 13:
                    waiting = True
                    break
            if (self._size + end - lead if self._chunks else end - start) > self._max:
                self._overflow(window[start:] if not self._chunks else chunk)
                raise EventTooLargeError(f"an SSE event of over {self._max} bytes", events)
            if self._chunks:  # the first event of this chunk completes the pending one
                self._chunks.append(chunk[: end - lead])
                raw = b"".join(self._chunks)
                self.bytes_examined += len(raw)
                self._chunks, self._size = [], 0
                events.append(_event(raw, terminator, False))  # earlier chunks may hold a CR
            else:
                events.append(_event(window[start:end], terminator, lf_only))
            start = end
        if start:  # some event ended: what is left of the window starts the next one
            rest = window[start:]
            self._chunks = [rest] if rest else []
            self._size = len(rest)
        else:
            self._chunks.append(chunk)
            self._size += len(chunk)
        # where an event end may still begin: within the last 2 bytes (an end is at most 4 bytes,
        # the first 1 or 2 a line ending), or 3 back when waiting on a CRLF + CR
        keep = min(self._size, 3 if waiting else 2)
        self._tail = window[size - keep :] if keep else b""
        if self._size > self._max:
            raise EventTooLargeError(f"an SSE event exceeded {self._max} bytes without ending", events)
        return events

    def _overflow(self, rest: bytes) -> None:
        """Keep everything from the too-large event on for ``flush()`` (it is passed on as is)."""
        self._chunks.append(rest)
        self._size += len(rest)
        self._tail = b""

    def flush(self) -> bytes:
        """Bytes of an unterminated final event (forwarded as they are)."""
        rest = b"".join(self._chunks)
        self._chunks, self._size, self._tail = [], 0, b""
        return rest


def format_event(
    data: str | dict[str, Any] | list[Any], *, event: str | None = None, newline: bytes = b"\n"
) -> bytes:
    """One event in the stream's line-ending style. JSON data is compact and non-ASCII kept."""
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines = [f"event: {event}".encode()] if event else []
    lines += [b"data: " + line.encode("utf-8") for line in data.split("\n")]
    return newline.join(lines) + newline + newline


def format_comment(text: str, newline: bytes = b"\n") -> bytes:
    """An SSE comment line: every conforming client ignores it (we carry provenance in it)."""
    return b": " + text.replace("\r", " ").replace("\n", " ").encode("utf-8") + newline + newline
