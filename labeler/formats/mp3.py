"""MP3: the GB record lives in an ID3v2 ``TXXX`` frame with description ``AIGC``.

mutagen writes the ID3v2 tag. The digest covers the MPEG audio between the ID3v2 tag and an
ID3v1 trailer, and then (when there is any) the rest of the tags: every ID3v2 frame but ours
(the first ``TXXX:AIGC``), raw and in order, padding that is not zeros, and the ID3v1 tag. The
tag's size and its zero padding, which a tag edit changes, are left out. ``stage`` rewrites the
tag as ``write_record`` will (mutagen's frame order and encodings), without our frame.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from ..aigc import single_record
from ..errors import MalformedFileError
from . import tagging
from .base import record_format, register

DESCRIPTION = "AIGC"


def accept(prefix: bytes) -> bool:
    if prefix[:3] == b"ID3":
        return len(prefix) > 3 and prefix[3] in (2, 3, 4)
    # a bare MPEG-1/2 audio frame: sync, a valid layer, not the reserved bitrate/sample rate
    return (
        len(prefix) >= 3
        and prefix[0] == 0xFF
        and prefix[1] & 0xE0 == 0xE0
        and prefix[1] & 0x06 != 0
        and (prefix[2] & 0xF0 != 0xF0 and prefix[2] & 0x0C != 0x0C)
    )


def id3v2_end(data: bytes) -> int:
    """Offset just past the leading ID3v2 tag (0 if there is none)."""
    if data[:3] != b"ID3":
        return 0
    if len(data) < 10:
        raise MalformedFileError("ID3v2 header truncated")
    size_bytes = data[6:10]
    if any(b & 0x80 for b in size_bytes):
        raise MalformedFileError("ID3v2 size is not syncsafe")
    size = 0
    for b in size_bytes:
        size = (size << 7) | b
    end = 10 + size + (10 if data[5] & 0x10 else 0)
    if end > len(data):
        raise MalformedFileError(f"ID3v2 tag declares {size} bytes, beyond the file")
    return end


def _syncsafe(raw: bytes) -> int:
    value = 0
    for b in raw:
        value = (value << 7) | (b & 0x7F)
    return value


def _is_our_frame(frame: bytes) -> bool:
    """A ``TXXX`` frame (10-byte header, no frame flags) whose description is ``AIGC``."""
    if frame[:4] != b"TXXX" or frame[8:10] != b"\x00\x00" or len(frame) < 11:
        return False
    encoding, body = frame[10], frame[11:]
    if encoding in (0, 3):
        return body.split(b"\x00", 1)[0] == DESCRIPTION.encode()
    if encoding in (1, 2):
        desc = next((body[:i] for i in range(0, len(body) - 1, 2) if body[i : i + 2] == b"\x00\x00"), b"")
        return desc.decode("utf-16" if encoding == 1 else "utf-16-be", "replace") == DESCRIPTION
    return False


def _tag_material(data: bytes) -> list[bytes]:
    """What of the tags the digest binds besides the audio (see the module docstring)."""
    parts: list[bytes] = []
    end = id3v2_end(data)
    if end:
        version, flags = data[3], data[5]
        body_end = end - (10 if flags & 0x10 else 0)  # a footer repeats the header: bound as is
        if version not in (3, 4) or flags & 0xC0:  # unsynchronised or extended: not our form
            return [data[3:6], data[10:end]]  # all of it, our frame included
        pos, ours = 10, False
        while pos + 10 <= body_end and data[pos : pos + 4] != b"\x00\x00\x00\x00":
            raw = data[pos + 4 : pos + 8]
            stop = pos + 10 + (_syncsafe(raw) if version == 4 else int.from_bytes(raw, "big"))
            if stop > body_end:
                raise MalformedFileError(f"ID3v2 frame at offset {pos} runs past the tag")
            frame = data[pos:stop]
            if not ours and _is_our_frame(frame):
                ours = True
            else:
                parts.append(frame)
            pos = stop
        padding = data[pos:body_end].rstrip(b"\x00")
        if padding:
            parts.append(b"padding:" + padding)
        if parts:
            parts.insert(0, data[3:6])
        if body_end < end:
            parts.append(data[body_end:end])
    if len(data) - end >= 128 and data[-128:-125] == b"TAG":
        parts.append(data[-128:])
    return parts


def _audio_range(data: bytes) -> tuple[int, int]:
    start, end = id3v2_end(data), len(data)
    if end - start >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    return start, end


def read_record(data: bytes) -> str | None:
    if data[:3] != b"ID3":
        return None

    def get(tags: Any) -> list[str]:
        return [str(text) for frame in tags.getall(f"TXXX:{DESCRIPTION}") for text in frame.text]

    return single_record(tagging.read(data, "mutagen.id3.ID3", get))


def _edit(data: bytes, record: str | None) -> bytes:
    """The tag rewritten by mutagen with our frame removed, then (given ``record``) set."""
    if data[:3] != b"ID3":  # an empty tag first, so mutagen has one to edit
        data = b"ID3\x04\x00\x00\x00\x00\x00\x00" + data

    def change(tags: Any) -> dict[str, Any]:
        from mutagen.id3 import TXXX, Encoding

        tags.delall(f"TXXX:{DESCRIPTION}")
        if record is not None:
            frame = TXXX(encoding=Encoding.LATIN1, desc=DESCRIPTION, text=[record])  # type: ignore[no-untyped-call]
            tags.setall(f"TXXX:{DESCRIPTION}", [frame])
        return {"v1": 1, "v2_version": 3 if tags.version[:2] == (2, 3) else 4}

    return tagging.edit(data, "mutagen.id3.ID3", change)


def write_record(data: bytes, record: str) -> bytes:
    return _edit(data, record)


def stage(data: bytes) -> bytes:
    """The tags as write_record will leave them, without our frame: mutagen writes frames in
    its own order and encodings and fills ID3v1 from them, and the digest binds the frames."""
    if data[:3] != b"ID3" and not (len(data) >= 128 and data[-128:-125] == b"TAG"):
        return data  # no tags: write_record adds one holding only our frame
    return _edit(data, None)


def content_digest(data: bytes) -> bytes:
    h = hashlib.sha256(b"mp3")
    start, end = _audio_range(data)
    h.update(memoryview(data)[start:end])
    parts = _tag_material(data)
    if parts:  # nothing but our frame: the digest as it was before the tags were bound
        h.update(b"\x00id3")
        for part in parts:
            h.update(struct.pack(">Q", len(part)))
            h.update(part)
    return h.digest()


FORMAT = register(
    record_format(
        name="mp3",
        mime_type="audio/mpeg",
        mime_aliases=("audio/mp3",),
        extensions=(".mp3",),
        kind="audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="id3:TXXX:AIGC",
        stage=stage,
    )
)
