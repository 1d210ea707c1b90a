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

from .errors import MalformedFileError

__all__ = ["Event", "SSEParser", "format_event"]

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")  # a blank line, in any line-end style
MAX_PENDING = 4 * 1024 * 1024


@dataclass(frozen=True)
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
            return json.loads(self.data)
        except ValueError:
            return None

    @property
    def is_comment_only(self) -> bool:
        return self.event is None and self.data is None


def _parse_fields(block: bytes) -> tuple[str | None, str | None]:
    event: str | None = None
    data: list[str] = []
    for line in re.split(rb"\r\n|\n|\r", block):
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


class SSEParser:
    """Feed bytes, get complete events; ``flush()`` returns what is left at end of stream."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._buffer = b""
        self._max = max_pending

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events = []
        start = 0
        while True:
            # No alternative can match half of a CRLF ("\r\n\r" waits for its "\n"), so an event
            # is never cut short by a chunk boundary.
            match = _EVENT_END.search(self._buffer, start)
            if match is None:
                break
            raw = self._buffer[start : match.end()]
            block = self._buffer[start : match.start()]
            newline = b"\r\n" if b"\r\n" in match.group() else match.group()[:1]
            event, data = _parse_fields(block)
            events.append(Event(raw, event, data, newline))
            start = match.end()
        self._buffer = self._buffer[start:]
        if len(self._buffer) > self._max:
            raise MalformedFileError(f"an SSE event exceeded {self._max} bytes without ending")
        return events

    def flush(self) -> bytes:
        """Bytes of an unterminated final event (forwarded as they are)."""
        rest, self._buffer = self._buffer, b""
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
