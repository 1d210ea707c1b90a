"""MP3: the GB record lives in an ID3v2 ``TXXX`` frame with description ``AIGC``.

mutagen writes the ID3v2 tag; the digest covers the MPEG audio between the ID3v2 tag and an
ID3v1 trailer, which is exactly what a tag edit leaves alone.
"""

from __future__ import annotations

from typing import Any

from ..aigc import single_record
from ..errors import MalformedFileError
from . import tagging
from .base import digest_ranges, record_format, register

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


def write_record(data: bytes, record: str) -> bytes:
    if data[:3] != b"ID3":  # an empty tag first, so mutagen has one to edit
        data = b"ID3\x04\x00\x00\x00\x00\x00\x00" + data

    def change(tags: Any) -> dict[str, Any]:
        from mutagen.id3 import TXXX, Encoding

        frame = TXXX(encoding=Encoding.LATIN1, desc=DESCRIPTION, text=[record])  # type: ignore[no-untyped-call]
        tags.setall(f"TXXX:{DESCRIPTION}", [frame])
        return {"v1": 1, "v2_version": 3 if tags.version[:2] == (2, 3) else 4}

    return tagging.edit(data, "mutagen.id3.ID3", change)


def content_digest(data: bytes) -> bytes:
    return digest_ranges(data, [_audio_range(data)], prefix=b"mp3")


FORMAT = register(
    record_format(
        "mp3",
        "audio/mpeg",
        (".mp3",),
        "audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="id3:TXXX:AIGC",
    )
)
