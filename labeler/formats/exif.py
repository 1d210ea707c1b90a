"""EXIF UserComment (tag 0x9286): where some producers put the GB record in a JPEG.

EXIF has no key of its own for the record, so it holds the wrapped form ``{"AIGC":{...}}``
(or the flat one) behind an 8-byte character-code header (``ASCII``, ``UNICODE``, ``JIS`` or
undefined). We never write it; we read it, and when we write our label into XMP we blank an
AIGC record found here (same length, so no offset in the TIFF structure moves), because a file
carries one label. A small TIFF walker suffices: IFD0 -> the Exif IFD pointer -> UserComment.
"""

from __future__ import annotations

import struct

__all__ = ["blank_user_comment_record", "read_user_comment_record", "user_comment_span"]

TIFF_START = 6  #: after b"Exif\0\0"
_EXIF_IFD_POINTER, _USER_COMMENT, _UNDEFINED = 0x8769, 0x9286, 7
_MAX_ENTRIES = 1024  #: an IFD with more entries than this is hostile or broken


def _ifd_entry(tiff: bytes, order: str, ifd: int, tag: int) -> tuple[int, int, int] | None:
    """(type, count, value field offset) of ``tag`` in the IFD at ``ifd``, or None."""
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    if count > _MAX_ENTRIES or ifd + 2 + 12 * count > len(tiff):
        return None
    for i in range(count):
        at = ifd + 2 + 12 * i
        entry_tag, kind, n = struct.unpack_from(order + "HHI", tiff, at)
        if entry_tag == tag:
            return kind, n, at + 8
    return None


def user_comment_span(payload: bytes) -> tuple[int, int, str] | None:
    """(start, end, byte order) of the UserComment value within an APP1 Exif ``payload``
    (which starts with ``Exif\\0\\0``), or None if there is none or the structure is broken."""
    tiff = payload[TIFF_START:]
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        return _span(tiff, order)
    except struct.error:  # an offset beyond the segment: broken EXIF holds no record
        return None


def _span(tiff: bytes, order: str) -> tuple[int, int, str] | None:
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    pointer = _ifd_entry(tiff, order, ifd0, _EXIF_IFD_POINTER)
    if pointer is None:
        return None
    (exif_ifd,) = struct.unpack_from(order + "I", tiff, pointer[2])
    entry = _ifd_entry(tiff, order, exif_ifd, _USER_COMMENT)
    if entry is None or entry[0] != _UNDEFINED:
        return None
    _kind, n, field = entry
    start = field if n <= 4 else struct.unpack_from(order + "I", tiff, field)[0]
    if start + n > len(tiff):
        return None
    return TIFF_START + start, TIFF_START + start + n, order


def _decode(raw: bytes, order: str) -> str:
    header, body = raw[:8], raw[8:]
    if header == b"UNICODE\x00":  # UCS-2; a BOM wins, else the TIFF byte order (as exiftool reads it)
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", "replace")
        return body.decode("utf-16-le" if order == "<" else "utf-16-be", "replace")
    if header in (b"ASCII\x00\x00\x00", b"JIS\x00\x00\x00\x00\x00", b"\x00" * 8):
        return body.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")  # no header at all: some writers omit it


def read_user_comment_record(payload: bytes) -> str | None:
    """The AIGC record JSON in the UserComment of an APP1 Exif ``payload``, if it holds one."""
    span = user_comment_span(payload)
    if span is None:
        return None
    start, end, order = span
    text = _decode(payload[start:end], order).strip("\x00 \t\r\n")
    if text.startswith("{") and ('"AIGC"' in text or '"ContentProducer"' in text):
        return text
    return None


def blank_user_comment_record(payload: bytes) -> bytes:
    """``payload`` with an AIGC record in UserComment replaced by NULs (an empty comment of
    undefined character code), same length; any other comment is left as it is."""
    if read_user_comment_record(payload) is None:
        return payload
    span = user_comment_span(payload)
    assert span is not None
    start, end, _ = span
    return payload[:start] + b"\x00" * (end - start) + payload[end:]
