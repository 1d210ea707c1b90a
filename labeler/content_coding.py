"""Content-Encoding a labeller can undo: gzip and deflate, decoded in bounded pieces.

A labelled body must be decoded to be read; a compressed bomb must not take memory, so the
inflater hands out pieces of at most 64 KiB and stops at a total limit. Shared by the ASGI and
WSGI middleware (transport-free: bytes in, bytes out).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from .errors import MalformedFileError

__all__ = ["DecodedTooLargeError", "Inflater", "content_coding"]


def content_coding(value: str) -> str | None:
    """The coding of a Content-Encoding value that we can undo: "identity", "gzip" or "deflate";
    None for anything else (br, zstd, compress, codings stacked)."""
    codings = [c.strip().lower() for c in value.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    return None


class DecodedTooLargeError(MalformedFileError):
    """A compressed body decodes to more than the middleware buffers."""


class Inflater:
    """gzip / deflate, undone in pieces of at most ``PIECE`` bytes, at most ``limit`` in all
    (None: no total, for streams, which are sent on piece by piece): a bomb can't take memory."""

    PIECE = 64 * 1024

    def __init__(self, coding: str, limit: int | None) -> None:
        self.coding = coding
        self.limit = limit
        self.size = 0
        self.ended = False  #: the compressed stream is complete; what follows is ignored (as gzip(1))
        self._head = b""  #: deflate: the first 2 bytes tell zlib-wrapped (as RFC 9110 says) from raw
        self._d: Any = zlib.decompressobj(31) if coding == "gzip" else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.ended or not data:
            return
        if self._d is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._d = zlib.decompressobj(15 if wrapped else -15)
        d = self._d
        while True:
            try:
                out = d.decompress(data, self.PIECE)
            except zlib.error as exc:
                raise MalformedFileError(f"the {self.coding} body does not decode: {exc}") from None
            if out:
                self.size += len(out)
                if self.limit is not None and self.size > self.limit:
                    raise DecodedTooLargeError(f"the {self.coding} body decodes to over {self.limit} bytes")
                yield out
            rest = d.unconsumed_tail
            if d.eof:
                more = d.unused_data
                if self.coding == "gzip" and more[:2] == b"\x1f\x8b":  # the next gzip member
                    self._d = d = zlib.decompressobj(31)
                    data = more
                    continue
                self.ended = True
                return
            if not rest and len(out) < self.PIECE:
                return  # all input used, nothing held back
            if not out and rest == data:
                raise MalformedFileError(f"the {self.coding} body does not decode")  # no progress
            data = rest

    def finish(self) -> None:
        if not self.ended:
            raise MalformedFileError(f"the {self.coding} body ends before its end")
