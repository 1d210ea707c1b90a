"""PDF: the GB record is the document Info entry ``/AIGC``, written as an incremental update.

The original bytes are kept as they are and one revision is appended holding only the new Info
dictionary (and its cross-reference), which is how PDF itself expects edits to be made. The
digest covers everything before the trailing run of such label-only revisions; a later revision
that changes anything else is digested too, so an edit after labelling reads as altered.
pypdf (extra ``media``) writes the revision and reads the Info dictionary.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from typing import Any

from ..errors import MalformedFileError, UnsupportedFormatError
from .base import record_format, register

KEY = "/AIGC"
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s*%%EOF\s*$")
_DICT_KEYS = re.compile(rb"/(Prev|Info)\s+(\d+)(?:\s+\d+\s+R)?")
_OBJ = re.compile(rb"(?:^|[\r\n\s])(\d+)\s+\d+\s+obj\b")
MAX_REVISIONS = 64
DICT_WINDOW = 1 << 16  #: a trailer / xref-stream dictionary is read from at most this many bytes
# pypdf logs its repairs of odd files as warnings; a library shouldn't print them unasked.
logging.getLogger("pypdf").addHandler(logging.NullHandler())


def accept(prefix: bytes) -> bool:
    return prefix[:5] == b"%PDF-"


def pypdf_module() -> Any:
    try:
        import pypdf
    except ImportError:
        raise UnsupportedFormatError("PDF labels need pypdf: pip install 'aigc-labeler[media]'") from None
    return pypdf


def _xref_dict(data: bytes, offset: int) -> dict[bytes, int]:
    """/Prev and /Info of the trailer (classic table) or xref stream dictionary at ``offset``."""
    if not 0 <= offset < len(data):
        raise MalformedFileError(f"PDF startxref {offset} points outside the file")
    if data.startswith(b"xref", offset):  # a table of any length, then "trailer << ... >>"
        at = data.find(b"trailer", offset)
        if at < 0:
            raise MalformedFileError("PDF xref table without a trailer")
        end = data.find(b"startxref", at, at + DICT_WINDOW)
        head = data[at : end if end > 0 else at + DICT_WINDOW]
    else:  # an xref stream object: its dictionary comes before the "stream" keyword
        end = data.find(b"stream", offset, offset + DICT_WINDOW)
        head = data[offset : end if end > 0 else offset + DICT_WINDOW]
    return {key: int(value) for key, value in _DICT_KEYS.findall(head)}


def _revision_end(data: bytes, xref_offset: int) -> int:
    """End of the revision whose cross-reference starts at ``xref_offset``: past its %%EOF line."""
    at = data.find(b"%%EOF", xref_offset)
    if at < 0:
        raise MalformedFileError("PDF revision without %%EOF")
    end = at + 5
    while end < len(data) and data[end] in b"\r\n \t":
        end += 1
    return end


def label_free_end(data: bytes) -> int:
    """Offset where the trailing label-only revisions begin (``len(data)`` if there are none)."""
    match = _STARTXREF.search(data[-1024:])
    if match is None:
        raise MalformedFileError("PDF has no startxref / %%EOF at its end")
    boundary, offset = len(data), int(match.group(1))
    for _ in range(MAX_REVISIONS):
        keys = _xref_dict(data, offset)
        if b"Prev" not in keys or b"Info" not in keys:
            break
        start = _revision_end(data, keys[b"Prev"])
        if not start < boundary:
            raise MalformedFileError("PDF /Prev does not point before its own revision")
        revision = data[start:boundary]
        objects = {int(n) for n in _OBJ.findall(revision)}
        xref_object = {int(n) for n in _OBJ.findall(data[offset : offset + 32])}
        if b"/AIGC" not in revision or not objects <= {keys[b"Info"], *xref_object}:
            break  # a revision that changes more than the Info dictionary is content
        boundary, offset = start, keys[b"Prev"]
    return boundary


def stage(data: bytes) -> bytes:
    """End the file with an EOL after %%EOF, so the appended revision starts on its own line."""
    return data + b"\n" if data.endswith(b"%%EOF") else data


def content_digest(data: bytes) -> bytes:
    return hashlib.sha256(memoryview(data)[: label_free_end(data)]).digest()


def reader(data: bytes) -> Any:
    pypdf = pypdf_module()
    try:
        return pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises many kinds on hostile input
        raise MalformedFileError(f"PDF is unreadable: {exc}") from exc


def read_record(data: bytes) -> str | None:
    try:
        info = reader(data).metadata
        value = info.get(KEY) if info is not None else None
    except MalformedFileError:
        raise
    except Exception as exc:
        raise MalformedFileError(f"PDF Info dictionary is unreadable: {exc}") from exc
    return None if value is None else str(value)


def write_record(data: bytes, record: str) -> bytes:
    pypdf = pypdf_module()
    data = stage(data)
    try:
        writer = pypdf.PdfWriter(io.BytesIO(data), incremental=True)
        writer.add_metadata({KEY: record})
        out = io.BytesIO()
        writer.write(out)
    except Exception as exc:
        raise MalformedFileError(f"PDF could not be updated: {exc}") from exc
    result = out.getvalue()
    if not result.startswith(data):  # the incremental promise: the original is a prefix
        raise MalformedFileError("PDF writer did not append an incremental update")
    if read_record(result) != record:  # a broken cross-reference can make the update unreachable
        raise MalformedFileError("PDF structure is inconsistent: the label would not read back")
    return result


FORMAT = register(
    record_format(
        "pdf",
        "application/pdf",
        (".pdf",),
        "document",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="pdf:Info/AIGC",
        stage=stage,
    )
)
