"""The RIFF chunk walker shared by WebP and WAV: one pass, bounded by the declared sizes."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import MalformedFileError

__all__ = ["Chunk", "chunk", "walk"]


@dataclass(frozen=True, slots=True)
class Chunk:
    fourcc: bytes
    start: int  #: offset of the FourCC
    end: int  #: offset just past the payload and its pad byte

    def payload(self, data: bytes) -> bytes:
        size: int = struct.unpack_from("<I", data, self.start + 4)[0]
        return data[self.start + 8 : self.start + 8 + size]


def walk(data: bytes, form: bytes, name: str) -> tuple[list[Chunk], int]:
    """(chunks, end of the RIFF payload) of a ``RIFF <form>`` file. Raises
    :class:`MalformedFileError` on a wrong header, truncation or sizes that overrun the file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != form:
        raise MalformedFileError(f"not a {name} (no RIFF/{form.decode()} header)")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    riff_end = 8 + riff_size
    if riff_end > len(data):
        raise MalformedFileError(f"{name} RIFF size {riff_size} does not fit a {len(data)}-byte file")
    out: list[Chunk] = []
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise MalformedFileError(f"{name} chunk header truncated at offset {pos}")
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + size + (size & 1)
        if end > riff_end + (size & 1):  # a missing final pad byte is tolerated
            raise MalformedFileError(
                f"{name} chunk {fourcc!r} at offset {pos} declares {size} bytes, beyond RIFF"
            )
        out.append(Chunk(fourcc, pos, min(end, riff_end)))
        pos = end
    if not out:
        raise MalformedFileError(f"{name} has no chunks")
    return out, riff_end


def chunk(fourcc: bytes, payload: bytes) -> bytes:
    """One serialized chunk, pad byte included."""
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")
