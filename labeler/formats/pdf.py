"""PDF: the GB record is the document Info entry ``/AIGC``, written as an incremental update.

The original bytes are kept as they are and one revision is appended holding only the new Info
dictionary (and its cross-reference), which is how PDF itself expects edits to be made. The
digest covers everything before that one label revision, if the last revision is exactly that:
the Info object (with ``/AIGC``), a cross-reference listing only it, the trailer, ``startxref``
and ``%%EOF``, nothing else (no comments, no other objects, no unknown trailer keys). Any other
revision, an earlier label revision included, is content. ``stage`` takes trailing label
revisions off before a new one is written, so a file carries one. pypdf (extra ``media``)
writes the revision and reads the Info dictionary.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zlib
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
    """Where our label revision begins (``len(data)`` if the last revision is not one)."""
    match = _STARTXREF.search(data[-1024:])
    if match is None:
        raise MalformedFileError("PDF has no startxref / %%EOF at its end")
    offset = int(match.group(1))
    keys = _xref_dict(data, offset)
    if b"Prev" not in keys or b"Info" not in keys:
        return len(data)
    start = _revision_end(data, keys[b"Prev"])
    if not start < len(data):
        raise MalformedFileError("PDF /Prev does not point before its own revision")
    return start if _is_label_revision(data, start, offset, keys[b"Info"]) else len(data)


def stage(data: bytes) -> bytes:
    """Take trailing label revisions off (one label per file, and the digest binds all but the
    last one), then end the file with an EOL after %%EOF so the new revision starts a line."""
    for _ in range(MAX_REVISIONS):
        end = label_free_end(data)
        if end == len(data):
            break
        data = data[:end]
    return data + b"\n" if data.endswith(b"%%EOF") else data


def content_digest(data: bytes) -> bytes:
    return hashlib.sha256(memoryview(data)[: label_free_end(data)]).digest()


# -- what a label revision is, exactly ---------------------------------------------------------

_WS = b" \t\r\n\f\x00"
_OBJ_HEAD = re.compile(rb"(\d{1,10})[ \t\r\n\f\x00]+(\d{1,5})[ \t\r\n\f\x00]+obj")
_XREF_ENTRY = re.compile(rb"\d{10} \d{5} [fn](?: \r| \n|\r\n)")
_SUBSECTION = re.compile(rb"(\d{1,10}) (\d{1,10})[ \t]*(?:\r\n|\r|\n)")
_TAIL = re.compile(rb"startxref[ \t\r\n\f\x00]+(\d{1,20})[ \t\r\n\f\x00]+%%EOF[ \t\r\n\f\x00]*\Z")
_TRAILER_KEYS = {b"Type", b"Size", b"Root", b"Info", b"Prev", b"ID", b"Index", b"W", b"Filter"}
_TRAILER_KEYS |= {b"DecodeParms", b"Length", b"Columns", b"Predictor"}
_MAX_STRING = 256  #: longest string a trailer holds (a file ID is 16 bytes, hex: 32)
_DELIMITERS = b"()<>[]{}/%" + _WS


def _skip_ws(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _WS:
        pos += 1
    return pos


def _literal_end(data: bytes, pos: int) -> int:
    """End of the literal string opening at ``pos`` (balanced parentheses, backslash escapes)."""
    depth = 0
    while pos < len(data):
        c = data[pos]
        if c == 0x5C:  # backslash: the next byte is escaped
            pos += 2
            continue
        depth += {0x28: 1, 0x29: -1}.get(c, 0)
        pos += 1
        if depth == 0:
            return pos
    raise ValueError("unterminated string")


def _dict_end(data: bytes, pos: int) -> int:
    """End of the dictionary opening at ``pos``, any content (the Info dictionary: our slot)."""
    depth = 0
    while pos < len(data):
        if data.startswith(b"<<", pos):
            depth, pos = depth + 1, pos + 2
        elif data.startswith(b">>", pos):
            depth, pos = depth - 1, pos + 2
            if depth == 0:
                return pos
        elif data[pos] == 0x28:
            pos = _literal_end(data, pos)
        elif data[pos] == 0x3C:
            end = data.find(b">", pos)
            pos = end + 1 if end > 0 else len(data)
        elif data[pos] == 0x25:  # a comment runs to the end of the line
            ends = [i for i in (data.find(b"\r", pos), data.find(b"\n", pos)) if i >= 0]
            pos = min(ends) if ends else len(data)
        else:
            pos += 1
    raise ValueError("unterminated dictionary")


def _tokens(data: bytes, pos: int) -> tuple[list[bytes], int]:
    """The tokens of a trailer / xref-stream dictionary opening at ``pos``, and its end. Only
    names, numbers, references, arrays, short strings and one nested dictionary level: a
    trailer has nothing else to say, so anything else (a comment, a long string) is refused."""
    if not data.startswith(b"<<", pos):
        raise ValueError("dictionary expected")
    out: list[bytes] = []
    depth = 0
    while pos < len(data) and len(out) < 256:
        pos = _skip_ws(data, pos)
        if data.startswith(b"<<", pos) or data.startswith(b">>", pos):
            depth += 1 if data[pos] == 0x3C else -1
            out.append(data[pos : pos + 2])
            pos += 2
            if depth == 0:
                return out, pos
            if depth > 2:
                raise ValueError("nested too deeply")
            continue
        c = data[pos : pos + 1]
        if c in (b"[", b"]"):
            end = pos + 1
        elif c == b"(":
            end = _literal_end(data, pos)
        elif c == b"<":
            end = data.find(b">", pos) + 1
            if end <= 0 or not re.fullmatch(rb"<[0-9A-Fa-f \t\r\n]*>", data[pos:end]):
                raise ValueError("bad hex string")
        elif c == b"/" or c.isalnum() or c in (b"-", b"+", b"."):
            end = pos + 1
            while end < len(data) and data[end] not in _DELIMITERS:
                end += 1
        else:
            raise ValueError(f"unexpected {c!r} in a trailer")
        if end - pos > _MAX_STRING:
            raise ValueError("token too long for a trailer")
        out.append(data[pos:end])
        pos = end
    raise ValueError("unterminated or overlong trailer")


def _trailer(tokens: list[bytes]) -> dict[bytes, list[bytes]]:
    """Key -> value tokens of a dictionary's top level (``tokens`` from :func:`_tokens`); only
    keys a trailer may carry, names only /XRef and /FlateDecode."""
    out: dict[bytes, list[bytes]] = {}
    body, i = tokens[1:-1], 0
    while i < len(body):
        key = body[i]
        if not key.startswith(b"/") or key[1:] not in _TRAILER_KEYS:
            raise ValueError(f"{key[:20]!r} is not a trailer key")
        i += 1
        if i >= len(body):
            raise ValueError("trailer key without a value")
        start, depth = i, 0
        while True:  # one value: a bracketed run, "n g R", or a single token
            token = body[i]
            depth += 1 if token in (b"[", b"<<") else -1 if token in (b"]", b">>") else 0
            if token.startswith(b"/") and token[1:] not in _TRAILER_KEYS | {b"XRef", b"FlateDecode"}:
                raise ValueError(f"{token[:20]!r} is not a trailer value")
            i += 1
            if depth == 0 or i >= len(body):
                break
        if (
            i - start == 1
            and body[start].isdigit()
            and len(body) > i + 1
            and body[i].isdigit()
            and body[i + 1] == b"R"
        ):
            i += 2  # an indirect reference
        out[key[1:]] = body[start:i]
    return out


def _ints(values: list[bytes]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


def _xref_stream_ok(data: bytes, pos: int, keys: dict[bytes, list[bytes]], objects: set[int]) -> int:
    """End of the xref stream whose dictionary ended at ``pos``, once its entries are checked to
    list ``objects`` only, in exactly the bytes they need."""
    if keys.get(b"Type") != [b"/XRef"]:
        raise ValueError("not an xref stream")
    (length,) = _ints(keys.get(b"Length", []))[:1] or [-1]
    widths, index = _ints(keys.get(b"W", [])), _ints(keys.get(b"Index", []))
    if length < 0 or len(widths) != 3 or len(index) % 2 or not index:
        raise ValueError("xref stream without Length, W or Index")
    listed = {
        n for first, count in zip(index[::2], index[1::2], strict=True) for n in range(first, first + count)
    }
    if not listed <= objects or len(listed) > 2:
        raise ValueError("xref stream lists other objects")
    pos = _skip_ws(data, pos)
    match = re.compile(rb"stream(?:\r\n|\n)").match(data, pos)
    if match is None:
        raise ValueError("stream keyword expected")
    body = data[match.end() : match.end() + length]
    after = re.compile(rb"(?:\r\n|\r|\n)?endstream[ \t\r\n\f\x00]+endobj").match(data, match.end() + length)
    if len(body) != length or after is None:
        raise ValueError("xref stream length is wrong")
    row = sum(widths) + (1 if _ints(keys.get(b"Predictor", [])) else 0)
    if keys.get(b"Filter") == [b"/FlateDecode"]:
        inflate = zlib.decompressobj()
        try:
            raw = inflate.decompress(body, row * len(listed) + 1)
        except zlib.error:  # a broken stream is not our label's cross-reference (found by fuzz/run)
            raise ValueError("xref stream does not inflate") from None
        if not inflate.eof or inflate.unused_data or inflate.unconsumed_tail:
            raise ValueError("xref stream holds more than its entries")
    elif b"Filter" in keys:
        raise ValueError("xref stream filter not accepted")
    else:
        raw = body
    if len(raw) != row * len(listed):
        raise ValueError("xref stream holds more than its entries")
    return after.end()


def _is_label_revision(data: bytes, start: int, xref_offset: int, info: int) -> bool:
    """Whether ``data[start:]`` is exactly one label revision: the Info object ``info`` holding
    ``/AIGC``, a cross-reference section (table or stream) at ``xref_offset`` listing nothing
    but it, the trailer, startxref and %%EOF; whitespace between them and nothing else."""
    try:
        head = _OBJ_HEAD.match(data, _skip_ws(data, start))
        if head is None or int(head.group(1)) != info:
            return False
        pos = _skip_ws(data, head.end())
        if not data.startswith(b"<<", pos):
            return False
        end = _dict_end(data, pos)
        if b"/AIGC" not in data[pos:end]:
            return False
        pos = _skip_ws(data, end)
        if not data.startswith(b"endobj", pos):
            return False
        pos = _skip_ws(data, pos + 6)
        if pos != xref_offset:
            return False
        if data.startswith(b"xref", pos):
            pos = _skip_ws(data, pos + 4)
            listed: set[int] = set()
            while (sub := _SUBSECTION.match(data, pos)) is not None and len(listed) <= 2:
                first, count = int(sub.group(1)), int(sub.group(2))
                pos = sub.end()
                for n in range(first, first + min(count, 3)):
                    entry = _XREF_ENTRY.match(data, pos)
                    if entry is None:
                        return False
                    listed.add(n)
                    pos = entry.end()
            if not listed <= {0, info} or not data.startswith(b"trailer", pos):
                return False
            tokens, pos = _tokens(data, _skip_ws(data, pos + 7))
            keys = _trailer(tokens)
        else:
            xref = _OBJ_HEAD.match(data, pos)
            if xref is None:
                return False
            tokens, pos = _tokens(data, _skip_ws(data, xref.end()))
            keys = _trailer(tokens)
            pos = _xref_stream_ok(data, pos, keys, {info, int(xref.group(1))})
        if _ints(keys.get(b"Info", []))[:1] != [info] or not _ints(keys.get(b"Prev", [])):
            return False
        tail = _TAIL.match(data, _skip_ws(data, pos))
        return tail is not None and int(tail.group(1)) == xref_offset
    except (ValueError, RecursionError):
        return False


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
        name="pdf",
        mime_type="application/pdf",
        extensions=(".pdf",),
        kind="document",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="pdf:Info/AIGC",
        stage=stage,
    )
)
