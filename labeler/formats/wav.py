"""WAV: the GB record lives in its own RIFF sub-chunk ``AIGC`` (GB 45438 / TC260-PG-202510A).

The chunk goes after every other chunk, so players that stop at ``data`` never see it and no
sample moves. The digest covers the form type and every chunk but ``AIGC``; the RIFF size
field, the only byte that changes when the chunk is added, is left out.
"""

from __future__ import annotations

from ..aigc import single_record
from . import riff
from .base import digest_ranges, record_format, register

SLOT = b"AIGC"


def accept(prefix: bytes) -> bool:
    return prefix[:4] == b"RIFF" and prefix[8:12] == b"WAVE"


def walk(data: bytes) -> tuple[list[riff.Chunk], int]:
    return riff.walk(data, b"WAVE", "WAV")


def read_record(data: bytes) -> str | None:
    chunks, _ = walk(data)
    return single_record(
        [c.payload(data).rstrip(b"\x00").decode("latin-1") for c in chunks if c.fourcc == SLOT]
    )


def write_record(data: bytes, record: str) -> bytes:
    chunks, riff_end = walk(data)
    view = memoryview(data)
    parts: list[bytes | memoryview] = [view[c.start : c.end] for c in chunks if c.fourcc != SLOT]
    parts.append(riff.chunk(SLOT, record.encode("ascii")))
    size = 4 + sum(len(p) for p in parts)
    return b"".join((b"RIFF", size.to_bytes(4, "little"), b"WAVE", *parts, view[riff_end:]))


def content_digest(data: bytes) -> bytes:
    chunks, riff_end = walk(data)
    keep = [(8, 12), *((c.start, c.end) for c in chunks if c.fourcc != SLOT), (riff_end, len(data))]
    return digest_ranges(data, keep)


FORMAT = register(
    record_format(
        "wav",
        "audio/wav",
        (".wav", ".wave"),
        "audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="riff:AIGC",
    )
)
