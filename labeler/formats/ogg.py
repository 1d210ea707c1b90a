"""Ogg (Vorbis, Opus, Speex, FLAC): the GB record is the comment ``AIGC=<json>``.

In every one of these mappings the comment header is the stream's second packet. mutagen
rewrites it, and with it the header pages, page sequence numbers and checksums. The digest is
therefore taken over packets, not pages: every packet of every stream except packet 1.
"""

from __future__ import annotations

import hashlib
import struct

from ..errors import MalformedFileError, UnsupportedFormatError
from . import tagging
from .base import record_format, register

FIELD = "AIGC"
_CODECS = {
    b"\x01vorbis": "mutagen.oggvorbis.OggVorbis",
    b"OpusHead": "mutagen.oggopus.OggOpus",
    b"Speex   ": "mutagen.oggspeex.OggSpeex",
    b"\x7fFLAC": "mutagen.oggflac.OggFLAC",
}


def accept(prefix: bytes) -> bool:
    return prefix[:4] == b"OggS"


def _opener(data: bytes) -> str:
    if len(data) < 28 or data[:4] != b"OggS":
        raise MalformedFileError("not an Ogg stream (no OggS page)")
    first = data[27 + data[26] : 27 + data[26] + 8]
    for magic, opener in _CODECS.items():
        if first.startswith(magic):
            return opener
    raise UnsupportedFormatError(f"Ogg stream with codec header {first!r}: only Vorbis, Opus, Speex and FLAC")


def content_digest(data: bytes) -> bytes:
    _opener(data)
    h = hashlib.sha256(b"ogg")
    view = memoryview(data)
    packets: dict[int, int] = {}  # serial -> index of the packet being read
    pos = 0
    while pos < len(data):
        if pos + 27 > len(data) or data[pos : pos + 4] != b"OggS":
            raise MalformedFileError(f"Ogg page header broken at offset {pos}")
        (serial,) = struct.unpack_from("<I", data, pos + 14)
        nsegs = data[pos + 26]
        body = pos + 27 + nsegs
        lacing = data[pos + 27 : body]
        if body + sum(lacing) > len(data):
            raise MalformedFileError(f"Ogg page at offset {pos} runs past the end of the file")
        index = packets.setdefault(serial, 0)
        for size in lacing:
            if index != 1:
                h.update(view[body : body + size])
            body += size
            if size < 255:  # end of packet
                if index != 1:
                    h.update(struct.pack("<IQ", serial, index))
                index += 1
        packets[serial] = index
        pos = body
    return h.digest()


def read_record(data: bytes) -> str | None:
    return tagging.read_comment(data, _opener(data), FIELD)


def write_record(data: bytes, record: str) -> bytes:
    return tagging.write_comment(data, _opener(data), FIELD, record)


FORMAT = register(
    record_format(
        "ogg",
        "audio/ogg",
        (".ogg", ".oga", ".opus", ".spx"),
        "audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="vorbis-comment:AIGC",
    )
)
