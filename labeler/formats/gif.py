"""GIF: the label lives in an Application Extension "XMP DataXMP" (XMP spec part 3).

The packet is stored raw (not in sub-blocks) and followed by a 258-byte "magic trailer" (0x01,
0xFF down to 0x00, then the block terminator), so a reader that walks it as sub-blocks lands in
the ramp and reaches the terminator. Our walker relies on exactly that, and the digest covers
everything but that extension (the first one: a second XMP extension is content).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import MalformedFileError
from .base import ContainerFormat, complement, digest_ranges, register, shared_walk, splice

XMP_APP_ID = b"XMP DataXMP"
MAGIC_TRAILER = bytes([0x01, *range(0xFF, -1, -1), 0x00])
assert len(MAGIC_TRAILER) == 258


@dataclass(frozen=True, slots=True)
class Block:
    kind: int  #: 0x21 extension, 0x2C image, 0x3B trailer
    label: int  #: extension label (0xFF application, 0xF9 graphic control...), 0 otherwise
    start: int
    end: int


def accept(prefix: bytes) -> bool:
    return prefix[:6] in (b"GIF87a", b"GIF89a")


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    size = len(data)
    while True:
        if pos >= size:
            raise MalformedFileError("GIF truncated inside a block")
        n = data[pos]
        pos += 1 + n
        if n == 0:
            return pos


def blocks(data: bytes) -> tuple[int, list[Block]]:
    """(offset of the first block, blocks up to and including the trailer)."""
    if not accept(data[:6]) or len(data) < 13:
        raise MalformedFileError("not a GIF (bad header)")
    packed = data[10]
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    first, out, size = pos, [], len(data)
    while True:
        if pos >= size:
            raise MalformedFileError("GIF truncated (no trailer)")
        kind, start = data[pos], pos
        if kind == 0x3B:
            out.append(Block(kind, 0, start, pos + 1))
            return first, out
        if kind == 0x21:
            if pos + 2 > size:
                raise MalformedFileError("GIF truncated in an extension")
            label = data[pos + 1]
            pos = _skip_sub_blocks(data, pos + 2)
        elif kind == 0x2C:
            if pos + 10 > size:
                raise MalformedFileError("GIF truncated in an image descriptor")
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW min code size
            label = 0
            pos = _skip_sub_blocks(data, pos)
        else:
            raise MalformedFileError(f"GIF block 0x{kind:02X} at offset {pos} is unknown")
        out.append(Block(kind, label, start, pos))


def _is_xmp(block: Block, data: bytes) -> bool:
    return block.label == 0xFF and data.startswith(b"\x0b" + XMP_APP_ID, block.start + 2)


@shared_walk
def _our_slot(data: bytes) -> Block | None:
    """The first XMP extension: our slot, the one read_xmp reads (one walk inside walk_once)."""
    return next((b for b in blocks(data)[1] if _is_xmp(b, data)), None)


def read_xmp(data: bytes) -> bytes | None:
    block = _our_slot(data)
    if block is None:
        return None
    body = data[block.start + 14 : block.end]
    if not body.endswith(MAGIC_TRAILER):
        raise MalformedFileError("GIF XMP extension lacks the magic trailer")
    return body[: -len(MAGIC_TRAILER)]


def write_xmp(data: bytes, packet: bytes) -> bytes:
    """Replace the XMP extension (dropping duplicates) or add one just before the trailer."""
    if b"\x00" in packet:
        raise MalformedFileError("an XMP packet for GIF must not contain NUL bytes")
    _, all_blocks = blocks(data)
    new = b"\x21\xff\x0b" + XMP_APP_ID + packet + MAGIC_TRAILER
    xmp = [(b.start, b.end) for b in all_blocks if _is_xmp(b, data)]
    if not xmp:
        xmp = [(all_blocks[-1].start, all_blocks[-1].start)]
    return splice(data, xmp, new)


def content_digest(data: bytes) -> bytes:
    ours = _our_slot(data)
    return digest_ranges(data, complement([(ours.start, ours.end)] if ours else [], len(data)))


def stage(data: bytes) -> bytes:
    """Drop XMP extensions after the first (write_xmp would, and the digest binds them)."""
    extra = [(b.start, b.end) for b in blocks(data)[1] if _is_xmp(b, data)][1:]
    return splice(data, extra, b"") if extra else data


def size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack_from("<HH", data, 6)
    return width, height


FORMAT = register(
    ContainerFormat(
        name="gif",
        mime_type="image/gif",
        extensions=(".gif",),
        accept=accept,
        read_xmp=read_xmp,
        write_xmp=write_xmp,
        content_digest=content_digest,
        stage=stage,
    )
)
