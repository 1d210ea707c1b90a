"""WebP: the label lives in a RIFF ``XMP `` chunk, announced by the VP8X header's XMP flag.

A simple (VP8 / VP8L) file is converted to the extended layout by prepending a VP8X chunk with
the canvas size read from the bitstream header; the image chunk itself is copied untouched.
The digest covers every chunk but our ``XMP `` chunk (the first) and a ``C2PA`` store, with the
VP8X XMP flag masked, plus any trailer and where the RIFF payload ends.
"""

from __future__ import annotations

import struct

from ..errors import MalformedFileError
from . import riff
from .base import C2PA, ContainerFormat, Excluded, digest_ranges, register, shared_walk, trailer_marker
from .riff import Chunk

XMP_FLAG = 0x04
ALPHA_FLAG = 0x10
#: Chunks the extended format orders before XMP; unknown chunks go after it.
_KNOWN = {b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L", b"EXIF"}


def accept(prefix: bytes) -> bool:
    return prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP"


def walk(data: bytes) -> tuple[list[Chunk], int]:
    """(chunks, end of the RIFF payload). Raises on truncation or overlong sizes."""
    chunks, riff_end = riff.walk(data, b"WEBP", "WebP")
    if (riff_end - 8) % 2:
        raise MalformedFileError(f"WebP RIFF size {riff_end - 8} is odd")
    return chunks, riff_end


@shared_walk
def _walk(data: bytes) -> tuple[tuple[Chunk, ...], int]:
    """:func:`walk`, shared by reading, digesting and C2PA checks (inside ``walk_once``)."""
    chunks, riff_end = walk(data)
    return tuple(chunks), riff_end


def read_xmp(data: bytes) -> bytes | None:
    chunks, _ = _walk(data)
    return next((c.payload(data) for c in chunks if c.fourcc == b"XMP "), None)


def _vp8x_for(chunk: Chunk, data: bytes) -> bytes:
    """A VP8X chunk (XMP flag set) describing the canvas of a simple-format image chunk."""
    body = chunk.payload(data)
    flags = XMP_FLAG
    width: int
    height: int
    if chunk.fourcc == b"VP8 ":
        if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
            raise MalformedFileError("WebP VP8 bitstream header is broken")
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", body, 6))
    elif chunk.fourcc == b"VP8L":
        if len(body) < 5 or body[0] != 0x2F:
            raise MalformedFileError("WebP VP8L bitstream header is broken")
        (bits,) = struct.unpack_from("<I", body, 1)
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if bits >> 28 & 1:
            flags |= ALPHA_FLAG
    else:
        raise MalformedFileError(f"simple WebP starts with {chunk.fourcc!r}, not VP8/VP8L/VP8X")
    if width == 0 or height == 0:
        raise MalformedFileError("WebP canvas has a zero dimension")
    payload = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"VP8X" + struct.pack("<I", 10) + payload


def write_xmp(data: bytes, packet: bytes) -> bytes:
    chunks, riff_end = walk(data)
    new = riff.chunk(b"XMP ", packet)
    view = memoryview(data)  # slices of a view are not copies; the final join copies once
    parts: list[bytes | memoryview] = []
    if chunks[0].fourcc == b"VP8X":
        head = chunks[0]
        if head.end - head.start < 18:
            raise MalformedFileError("WebP VP8X chunk is too short")
        flags = data[head.start + 8] | XMP_FLAG
        parts.append(data[head.start : head.start + 8] + bytes([flags]) + data[head.start + 9 : head.end])
        rest = chunks[1:]
    else:
        parts.append(_vp8x_for(chunks[0], data))
        rest = chunks
    inserted = False
    for chunk in rest:
        if chunk.fourcc == b"XMP ":
            if not inserted:
                parts.append(new)
                inserted = True
            continue
        if not inserted and chunk.fourcc not in _KNOWN:
            parts.append(new)
            inserted = True
        parts.append(view[chunk.start : chunk.end])
    if not inserted:
        parts.append(new)
    size = 4 + sum(len(p) for p in parts)
    return b"".join((b"RIFF", struct.pack("<I", size), b"WEBP", *parts, view[riff_end:]))


def stage(data: bytes) -> bytes:
    """The extended layout with the XMP flag set and one XMP chunk (the first packet kept), so
    adding the slot changes nothing digested."""
    chunks, _ = walk(data)
    xmp = [c for c in chunks if c.fourcc == b"XMP "]
    if chunks[0].fourcc == b"VP8X" and data[chunks[0].start + 8] & XMP_FLAG and len(xmp) <= 1:
        return data
    return write_xmp(data, xmp[0].payload(data) if xmp else b"")


def excluded(data: bytes) -> tuple[Excluded, ...]:
    return tuple(Excluded(C2PA, c.start, c.end) for c in _walk(data)[0] if c.fourcc == b"C2PA")


def holds_c2pa(data: bytes) -> bool:
    return any(c.fourcc == b"C2PA" and data.find(b"c2pa", c.start, c.end) >= 0 for c in _walk(data)[0])


def content_digest(data: bytes) -> bytes:
    chunks, riff_end = _walk(data)
    ours = next((c for c in chunks if c.fourcc == b"XMP "), None)  # the one read_xmp reads
    keep: list[tuple[int, int]] = []
    masked = b""
    for chunk in chunks:
        if chunk is ours or chunk.fourcc == b"C2PA":  # our slot; a C2PA store (it binds us in turn)
            continue
        if chunk.fourcc == b"VP8X" and chunk.end - chunk.start > 8:
            masked = bytes([data[chunk.start + 8] & ~XMP_FLAG & 0xFF])
            keep += [(chunk.start, chunk.start + 8), (chunk.start + 9, chunk.end)]
        else:
            keep.append((chunk.start, chunk.end))
    keep.append((riff_end, len(data)))
    # The masked flag byte is hashed first so the digest still depends on the other flags.
    return digest_ranges(data, keep, prefix=masked, suffix=trailer_marker(riff_end, len(data)))


FORMAT = register(
    ContainerFormat(
        name="webp",
        mime_type="image/webp",
        extensions=(".webp",),
        accept=accept,
        read_xmp=read_xmp,
        write_xmp=write_xmp,
        content_digest=content_digest,
        stage=stage,
        excluded=excluded,
        holds_c2pa=holds_c2pa,
    )
)
