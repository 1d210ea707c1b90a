"""Ogg (Vorbis, Opus, Speex, FLAC): the GB record is the comment ``AIGC=<json>``.

In every one of these mappings the comment header is the stream's second packet. mutagen
rewrites it, and with it the header pages, page sequence numbers and checksums. The digest is
therefore taken over packets: every packet of every stream, except that of our stream's packet
1 (the comment header) only its codec prefix, vendor string, every comment but ours (the first
``AIGC=``) and what follows the comments (without padding NULs) are hashed. Of the pages, the
version, flags, granule position, serial and sequence number relative to the stream's first
such page are hashed for every page that a comment edit leaves alone: every page of another
stream, and of ours each page that starts at packet 3 or later (the rewritten pages hold packet
1 and at most a part of packet 2). Checksums are not: they follow from the rest.
"""

from __future__ import annotations

import hashlib
import struct

from ..errors import MalformedFileError, UnsupportedFormatError
from . import tagging
from .base import record_format, register

FIELD = "AIGC"
#: Bytes before the Vorbis comment in the comment header, per codec: hashed as they are (for FLAC
#: only the block type byte; the 3-byte block length follows from the comment).
_PREFIX = {b"\x01vorbis": 7, b"OpusHead": 8, b"Speex   ": 0, b"\x7fFLAC": 4}
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


def _comment_material(packet: bytes, prefix: int) -> bytes:
    parts = [packet[:1] if prefix == 4 else packet[:prefix]]
    parts += tagging.comment_material(packet[prefix:], FIELD)
    return b"\x00comment" + b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def content_digest(data: bytes) -> bytes:
    _opener(data)
    first = data[27 + data[26] : 27 + data[26] + 8]
    prefix = next(n for magic, n in _PREFIX.items() if first.startswith(magic))
    (ours,) = struct.unpack_from("<I", data, 14)  # the stream of the first page: its comment is our slot
    h = hashlib.sha256(b"ogg")
    view = memoryview(data)
    packets: dict[int, int] = {}  # serial -> index of the packet being read
    first_sequence: dict[int, int] = {}
    comment = bytearray()
    pos = 0
    while pos < len(data):
        if pos + 27 > len(data) or data[pos : pos + 4] != b"OggS":
            raise MalformedFileError(f"Ogg page header broken at offset {pos}")
        version, flags, granule, serial, sequence = struct.unpack_from("<BBQII", data, pos + 4)
        nsegs = data[pos + 26]
        body = pos + 27 + nsegs
        lacing = data[pos + 27 : body]
        if body + sum(lacing) > len(data):
            raise MalformedFileError(f"Ogg page at offset {pos} runs past the end of the file")
        index = packets.setdefault(serial, 0)
        if serial != ours or index >= 3:  # a page a comment edit leaves alone (but renumbers)
            relative = (sequence - first_sequence.setdefault(serial, sequence)) & 0xFFFFFFFF
            h.update(b"page" + struct.pack("<BBQII", version, flags, granule, serial, relative))
        for size in lacing:
            in_comment = serial == ours and index == 1
            if in_comment:
                comment += view[body : body + size]
            else:
                h.update(view[body : body + size])
            body += size
            if size < 255:  # end of packet
                if in_comment:
                    h.update(_comment_material(bytes(comment), prefix))
                else:
                    h.update(struct.pack("<IQ", serial, index))
                index += 1
        packets[serial] = index
        pos = body
    if packets.get(ours, 0) < 2:
        raise MalformedFileError("Ogg stream ends before its comment header does")
    return h.digest()


def read_record(data: bytes) -> str | None:
    return tagging.read_comment(data, _opener(data), FIELD)


def write_record(data: bytes, record: str) -> bytes:
    return tagging.write_comment(data, _opener(data), FIELD, record)


def stage(data: bytes) -> bytes:
    return tagging.stage_comment(data, _opener(data), FIELD)


FORMAT = register(
    record_format(
        name="ogg",
        mime_type="audio/ogg",
        mime_aliases=("audio/opus",),
        extensions=(".ogg", ".oga", ".opus", ".spx"),
        kind="audio",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="vorbis-comment:AIGC",
        stage=stage,
    )
)
