"""FLAC: the GB record lives in the Vorbis comment block as ``AIGC=<json>``.

mutagen rewrites the comment and padding blocks and keeps every other block byte for byte; the
digest covers those other blocks (STREAMINFO, seek table, pictures...), the audio frames, and
then of the comment block the vendor string and every comment but ours (the first ``AIGC=``),
and any padding that is not zeros. ``stage`` rewrites the block as ``write_record`` will.
"""

from __future__ import annotations

import hashlib
import struct

from ..errors import MalformedFileError
from . import tagging
from .base import record_format, register

FIELD = "AIGC"
PADDING, COMMENT = 1, 4  #: metadata block types a tag edit rewrites


def accept(prefix: bytes) -> bool:
    return prefix[:4] == b"fLaC"


def blocks(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """([(block type, start of body, end of body)], offset of the first audio frame)."""
    if data[:4] != b"fLaC":
        raise MalformedFileError("not a FLAC stream (no fLaC marker)")
    pos, out = 4, []
    while True:
        if pos + 4 > len(data):
            raise MalformedFileError(f"FLAC metadata block header truncated at offset {pos}")
        header = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        end = pos + 4 + size
        if end > len(data):
            raise MalformedFileError(
                f"FLAC metadata block at offset {pos} declares {size} bytes, beyond the file"
            )
        out.append((header & 0x7F, pos + 4, end))
        pos = end
        if header & 0x80:
            return out, pos


def read_record(data: bytes) -> str | None:
    return tagging.read_comment(data, "mutagen.flac.FLAC", FIELD)


def write_record(data: bytes, record: str) -> bytes:
    return tagging.write_comment(data, "mutagen.flac.FLAC", FIELD, record)


def stage(data: bytes) -> bytes:
    return tagging.stage_comment(data, "mutagen.flac.FLAC", FIELD)


def content_digest(data: bytes) -> bytes:
    """Every metadata block but the (first) Vorbis comment and zero padding (what a tag edit
    rewrites or resizes), type byte and body, then the audio frames, then what the comment block
    holds besides our comment and what padding holds besides zeros."""
    found, audio_start = blocks(data)
    if [kind for kind, _, _ in found].count(0) != 1 or found[0][0] != 0:
        raise MalformedFileError("FLAC needs exactly one STREAMINFO block, first")
    h = hashlib.sha256(b"flac")
    view = memoryview(data)
    tags: list[bytes] = []
    comment = next((i for i, (kind, _, _) in enumerate(found) if kind == COMMENT), None)
    for i, (kind, start, end) in enumerate(found):
        if i == comment:
            tags += tagging.comment_material(data[start:end], FIELD)
        elif kind == PADDING:
            if rest := data[start:end].rstrip(b"\x00"):
                tags.append(b"padding:" + rest)
        else:
            h.update(struct.pack(">BI", kind, end - start))
            h.update(view[start:end])
    h.update(view[audio_start:])
    if tags:
        h.update(b"\x00tags")
        for part in tags:
            h.update(struct.pack(">Q", len(part)) + part)
    return h.digest()


FORMAT = register(
    record_format(
        name="flac",
        mime_type="audio/flac",
        mime_aliases=("audio/x-flac",),
        extensions=(".flac",),
        kind="audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="vorbis-comment:AIGC",
        stage=stage,
    )
)
