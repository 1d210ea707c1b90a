"""WAV: the GB record lives in its own RIFF sub-chunk ``AIGC`` (GB 45438 / TC260-PG-202510A).

The chunk goes after every other chunk, so players that stop at ``data`` never see it and no
sample moves. The digest covers the form type, every chunk but our ``AIGC`` chunk (the first: a
second one is content), and any trailer with where the RIFF payload ends; the RIFF size field,
the only bytes that change when the chunk is added, is left out.
"""

from __future__ import annotations

from ..aigc import single_record
from . import riff
from .base import digest_ranges, record_format, register, shared_walk, trailer_marker

SLOT = b"AIGC"


def accept(prefix: bytes) -> bool:
    return prefix[:4] == b"RIFF" and prefix[8:12] == b"WAVE"


def walk(data: bytes) -> tuple[list[riff.Chunk], int]:
    return riff.walk(data, b"WAVE", "WAV")


@shared_walk
def _walk(data: bytes) -> tuple[tuple[riff.Chunk, ...], int]:
    """:func:`walk`, shared by reading and digesting (inside ``walk_once``)."""
    chunks, riff_end = walk(data)
    return tuple(chunks), riff_end


def read_record(data: bytes) -> str | None:
    chunks, _ = _walk(data)
    return single_record(
        [c.payload(data).rstrip(b"\x00").decode("latin-1") for c in chunks if c.fourcc == SLOT]
    )


def _assemble(data: bytes, chunks: list[riff.Chunk], riff_end: int, last: bytes = b"") -> bytes:
    """A RIFF/WAVE file of ``chunks`` (copied from ``data``), then ``last``, then the trailer."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = [view[c.start : c.end] for c in chunks]
    parts.append(last)
    size = 4 + sum(len(p) for p in parts)
    return b"".join((b"RIFF", size.to_bytes(4, "little"), b"WAVE", *parts, view[riff_end:]))


def write_record(data: bytes, record: str) -> bytes:
    chunks, riff_end = walk(data)
    kept = [c for c in chunks if c.fourcc != SLOT]
    return _assemble(data, kept, riff_end, riff.chunk(SLOT, record.encode("ascii")))


def stage(data: bytes) -> bytes:
    """Drop ``AIGC`` chunks after the first (write_record would, and the digest binds them)."""
    chunks, riff_end = walk(data)
    slots = [c for c in chunks if c.fourcc == SLOT]
    if len(slots) <= 1:
        return data
    return _assemble(data, [c for c in chunks if c.fourcc != SLOT or c is slots[0]], riff_end)


def content_digest(data: bytes) -> bytes:
    chunks, riff_end = _walk(data)
    ours = next((c for c in chunks if c.fourcc == SLOT), None)
    keep = [(8, 12), *((c.start, c.end) for c in chunks if c is not ours), (riff_end, len(data))]
    return digest_ranges(data, keep, suffix=trailer_marker(riff_end, len(data)))


FORMAT = register(
    record_format(
        name="wav",
        mime_type="audio/wav",
        mime_aliases=("audio/x-wav", "audio/wave", "audio/vnd.wave"),
        extensions=(".wav", ".wave"),
        kind="audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="riff:AIGC",
        stage=stage,
    )
)
