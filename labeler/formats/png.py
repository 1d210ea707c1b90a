"""PNG: the label lives in an ``iTXt`` chunk with keyword ``XML:com.adobe.xmp``.

It is inserted before the first ``IDAT`` (so streaming readers meet it before the pixels);
image chunks are copied untouched. A ``tEXt``/``iTXt``/``zTXt`` chunk keyed ``AIGC``, which some
tools write (wrapped or flat), is read too, and dropped when we write our label (one per file).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from ..aigc import single_record
from ..errors import MalformedFileError
from .base import C2PA, ContainerFormat, Excluded, complement, digest_ranges, register, shared_walk, splice

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
#: Bound on decompressed text chunks we read (zTXt/iTXt): a zip bomb stops here.
MAX_TEXT = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    type: bytes
    start: int  #: offset of the length field
    end: int  #: offset just past the CRC

    def data(self, buf: bytes) -> bytes:
        return buf[self.start + 8 : self.end - 4]


def accept(prefix: bytes) -> bool:
    return prefix[:8] == SIGNATURE


def chunks(data: bytes) -> list[Chunk]:
    """Every chunk up to and including IEND. Raises on truncation or a missing IEND."""
    if not accept(data[:8]):
        raise MalformedFileError("not a PNG (bad signature)")
    out: list[Chunk] = []
    pos, size = 8, len(data)
    while True:
        if pos + 12 > size:
            raise MalformedFileError(f"PNG truncated at offset {pos} (no IEND)")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > size:
            raise MalformedFileError(
                f"PNG chunk {ctype!r} at offset {pos} declares {length} bytes, beyond the file"
            )
        out.append(Chunk(ctype, pos, end))
        pos = end
        if ctype == b"IEND":
            return out


def _text_chunk(chunk: Chunk, data: bytes) -> tuple[bytes, str] | None:
    """(keyword, text) of a tEXt/zTXt/iTXt chunk, or ``None`` if it is not one or is broken."""
    body = chunk.data(data)
    keyword, sep, rest = body.partition(b"\x00")
    if not sep:
        return None
    try:
        if chunk.type == b"tEXt":
            return keyword, rest.decode("latin-1")
        if chunk.type == b"zTXt":
            return keyword, _inflate(rest[1:]).decode("latin-1")
        if chunk.type == b"iTXt":
            fields = rest[2:].split(b"\x00", 2)  # language tag, translated keyword, text
            if len(rest) < 2 or len(fields) < 3:
                return None
            text = fields[2]
            return keyword, (_inflate(text) if rest[0] else text).decode("utf-8")
    except (zlib.error, UnicodeDecodeError, MalformedFileError):
        return None
    return None


def _inflate(raw: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(raw, MAX_TEXT)
    if d.unconsumed_tail:
        raise MalformedFileError(f"PNG text chunk inflates beyond {MAX_TEXT} bytes")
    return out


def _is_xmp(chunk: Chunk, data: bytes) -> bool:
    return chunk.type == b"iTXt" and data.startswith(XMP_KEYWORD + b"\x00", chunk.start + 8)


class _Walk(NamedTuple):
    """What reading, digesting and C2PA checks need of the chunks, found in one pass."""

    xmp: Chunk | None  #: our slot: the first XMP chunk
    aigc: tuple[Chunk, ...]  #: text chunks keyed ``AIGC``
    c2pa: tuple[Chunk, ...]  #: C2PA stores (``caBX``)


@shared_walk
def _walk(data: bytes) -> _Walk:
    all_chunks = chunks(data)
    return _Walk(
        xmp=next((c for c in all_chunks if _is_xmp(c, data)), None),
        aigc=tuple(c for c in all_chunks if _is_aigc_text(c, data)),
        c2pa=tuple(c for c in all_chunks if c.type == b"caBX"),
    )


def read_xmp(data: bytes) -> bytes | None:
    chunk = _walk(data).xmp
    if chunk is None:
        return None
    parsed = _text_chunk(chunk, data)
    if parsed is None:
        raise MalformedFileError("PNG XMP iTXt chunk is broken")
    return parsed[1].encode("utf-8")


def _make_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def write_xmp(data: bytes, packet: bytes) -> bytes:
    """Replace the XMP chunk (dropping duplicates) or insert one before the first IDAT."""
    all_chunks = chunks(data)
    new = _make_chunk(b"iTXt", XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet)
    xmp = [(c.start, c.end) for c in all_chunks if _is_xmp(c, data)]
    if xmp:
        return splice(data, xmp, new)
    at = next(c.start for c in all_chunks if c.type in (b"IDAT", b"IEND"))
    return splice(data, [(at, at)], new)


def content_digest(data: bytes) -> bytes:
    """SHA-256 of everything but our XMP chunk and a C2PA store (``caBX``), which binds us. A
    second XMP chunk is content."""
    found = _walk(data)
    spans = sorted((c.start, c.end) for c in ((found.xmp,) if found.xmp else ()) + found.c2pa)
    return digest_ranges(data, complement(spans, len(data)))


def excluded(data: bytes) -> tuple[Excluded, ...]:
    return tuple(Excluded(C2PA, c.start, c.end) for c in _walk(data).c2pa)


def holds_c2pa(data: bytes) -> bool:
    return any(data.find(b"c2pa", c.start, c.end) >= 0 for c in _walk(data).c2pa)


def _is_aigc_text(chunk: Chunk, data: bytes) -> bool:
    return chunk.type in (b"tEXt", b"zTXt", b"iTXt") and data.startswith(b"AIGC\x00", chunk.start + 8)


def read_fallback(data: bytes) -> str | None:
    """The record in ``tEXt``/``zTXt``/``iTXt`` chunks keyed ``AIGC`` (TC260-PG-20259A's
    example), if any; two chunks holding different records raise InvalidRecordError."""
    texts = [parsed[1] for c in _walk(data).aigc if (parsed := _text_chunk(c, data))]
    return single_record(texts)


def stage(data: bytes) -> bytes:
    """Before our label goes into XMP: drop ``AIGC`` text chunks (one label per file) and XMP
    chunks after the first (write_xmp would, and the digest binds them)."""
    all_chunks = chunks(data)
    spans = [(c.start, c.end) for c in all_chunks if _is_aigc_text(c, data)]
    spans += [(c.start, c.end) for c in all_chunks if _is_xmp(c, data)][1:]
    return splice(data, sorted(spans), b"") if spans else data


FORMAT = register(
    ContainerFormat(
        name="png",
        mime_type="image/png",
        extensions=(".png",),
        accept=accept,
        read_xmp=read_xmp,
        write_xmp=write_xmp,
        content_digest=content_digest,
        read_fallback=read_fallback,
        stage=stage,
        record_slot="png:tEXt/AIGC",
        excluded=excluded,
        holds_c2pa=holds_c2pa,
    )
)
