"""JPEG: the label lives in an APP1 XMP segment; pixels (the scan data) are never touched.

The walker reads marker segments up to the first SOS; everything from SOS on (entropy-coded
data, further scans, EOI, any trailer) is opaque content that the digest covers byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import LabelTooLargeError, MalformedFileError
from . import exif
from .base import (
    C2PA,
    ContainerFormat,
    Excluded,
    claims_c2pa_store,
    complement,
    digest_ranges,
    register,
    shared_walk,
    splice,
)

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_HEADER = b"Exif\x00\x00"
APP0, APP1, APP11, SOS, EOI = 0xE0, 0xE1, 0xEB, 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
MAX_XMP = 0xFFFF - 2 - len(XMP_HEADER)


@dataclass(frozen=True, slots=True)
class Segment:
    marker: int
    start: int  #: offset of the 0xFF
    end: int  #: offset just past the segment

    def payload(self, data: bytes) -> bytes:
        return data[self.start + 4 : self.end]

    def is_xmp(self, data: bytes) -> bool:
        return self.marker == APP1 and data.startswith(XMP_HEADER, self.start + 4)

    def is_jumbf(self, data: bytes) -> bool:
        """APP11 "JP" (JPEG XT / JUMBF): where C2PA stores its manifest."""
        return self.marker == APP11 and data.startswith(b"JP", self.start + 4)

    def jumbf_instance(self, data: bytes) -> int:
        """The JPEG XT box instance number (En) that groups a JUMBF box's segments."""
        return int.from_bytes(data[self.start + 6 : self.start + 8], "big")

    def starts_c2pa_store(self, data: bytes) -> bool:
        """The first segment (Z = 1) of a JUMBF box described as a C2PA manifest store."""
        return (
            self.is_jumbf(data)
            and data[self.start + 8 : self.start + 12] == b"\x00\x00\x00\x01"
            and claims_c2pa_store(data[self.start + 12 : self.start + 60])
        )

    def is_exif(self, data: bytes) -> bool:
        return self.marker == APP1 and data.startswith(EXIF_HEADER, self.start + 4)


def accept(prefix: bytes) -> bool:
    return prefix[:3] == b"\xff\xd8\xff"


def segments(data: bytes) -> list[Segment]:
    """The marker segments before the first scan. Raises on truncation or a bad marker."""
    if not accept(data[:3]):
        raise MalformedFileError("not a JPEG (no SOI marker)")
    out: list[Segment] = []
    pos, size = 2, len(data)
    while True:
        if pos + 2 > size:
            raise MalformedFileError(f"JPEG truncated at offset {pos} (no SOS before end)")
        if data[pos] != 0xFF:
            raise MalformedFileError(f"JPEG marker expected at offset {pos}, found 0x{data[pos]:02X}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (SOS, EOI):
            return out
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > size:
            raise MalformedFileError(f"JPEG truncated in segment header at offset {pos}")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            raise MalformedFileError(
                f"JPEG segment 0x{marker:02X} at offset {pos} declares {length} bytes, beyond the file"
            )
        out.append(Segment(marker, pos, end))
        pos = end


class _Walk(NamedTuple):
    """What reading, digesting and C2PA checks need of the segments, found in one pass."""

    xmp: Segment | None  #: our slot: the first XMP segment
    exif: Segment | None  #: the first Exif segment
    #: the APP11 segments of the JUMBF boxes that describe themselves as C2PA manifest stores
    c2pa: tuple[Segment, ...]
    names_c2pa: bool  #: an APP11 JUMBF segment holds the bytes ``c2pa``


@shared_walk
def _walk(data: bytes) -> _Walk:
    segs = segments(data)
    jumbf = [s for s in segs if s.is_jumbf(data)]
    stores = {s.jumbf_instance(data) for s in jumbf if s.starts_c2pa_store(data)}
    return _Walk(
        xmp=next((s for s in segs if s.is_xmp(data)), None),
        exif=next((s for s in segs if s.is_exif(data)), None),
        c2pa=tuple(s for s in jumbf if s.jumbf_instance(data) in stores),
        names_c2pa=any(data.find(b"c2pa", s.start, s.end) >= 0 for s in jumbf),
    )


def read_xmp(data: bytes) -> bytes | None:
    seg = _walk(data).xmp
    return seg.payload(data)[len(XMP_HEADER) :] if seg is not None else None


def write_xmp(data: bytes, packet: bytes) -> bytes:
    """Replace the first XMP segment (dropping any duplicates) or insert one after JFIF/Exif."""
    if len(packet) > MAX_XMP:
        raise LabelTooLargeError(f"XMP packet of {len(packet)} bytes exceeds JPEG's {MAX_XMP}")
    segs = segments(data)
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_HEADER) + len(packet)) + XMP_HEADER + packet
    xmp = [(s.start, s.end) for s in segs if s.is_xmp(data)]
    if xmp:
        return splice(data, xmp, segment)
    insert_at = 2
    for seg in segs:
        if seg.marker == APP0 or seg.is_exif(data):
            insert_at = seg.end
        else:
            break
    return splice(data, [(insert_at, insert_at)], segment)


def content_digest(data: bytes) -> bytes:
    """SHA-256 of everything but our XMP slot and a C2PA manifest store: C2PA is embedded after
    our label and binds it, as it binds everything except its own store. A second XMP segment,
    any other APPn and any other JUMBF are content."""
    found = _walk(data)
    spans = sorted((s.start, s.end) for s in ((found.xmp,) if found.xmp else ()) + found.c2pa)
    return digest_ranges(data, complement(spans, len(data)))


def excluded(data: bytes) -> tuple[Excluded, ...]:
    return tuple(Excluded(C2PA, s.start, s.end) for s in _walk(data).c2pa)


def holds_c2pa(data: bytes) -> bool:
    return _walk(data).names_c2pa


def read_fallback(data: bytes) -> str | None:
    """An AIGC record that another tool put in EXIF UserComment (0x9286), if any."""
    seg = _walk(data).exif
    return exif.read_user_comment_record(data[seg.start + 4 : seg.end]) if seg is not None else None


def stage(data: bytes) -> bytes:
    """Before our label goes into XMP: drop XMP segments after the first (write_xmp would, and
    the digest binds them) and blank an AIGC record in EXIF UserComment (one label per file;
    same length, so nothing else moves). Files without either come back as they are."""
    segs = segments(data)
    extra = [(s.start, s.end) for s in segs if s.is_xmp(data)][1:]
    if extra:
        return stage(splice(data, extra, b""))
    for seg in segs:
        if seg.is_exif(data):
            payload = data[seg.start + 4 : seg.end]
            blanked = exif.blank_user_comment_record(payload)
            if blanked is not payload:
                return splice(data, [(seg.start + 4, seg.end)], blanked)
            break
    return data


FORMAT = register(
    ContainerFormat(
        name="jpeg",
        mime_type="image/jpeg",
        extensions=(".jpg", ".jpeg", ".jpe", ".jfif"),
        accept=accept,
        read_xmp=read_xmp,
        write_xmp=write_xmp,
        content_digest=content_digest,
        read_fallback=read_fallback,
        stage=stage,
        record_slot="exif:UserComment",
        excluded=excluded,
        holds_c2pa=holds_c2pa,
    )
)
