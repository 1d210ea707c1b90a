"""Explicit labels inside documents: the label as the first paragraph of a Word document.

GB 45438 asks generated text to carry a text prompt at its start, end or a suitable middle, and
a file that is downloaded or exported to carry the label itself. For a Word document that is a
paragraph: the bracketed label (``【AI生成】``), bold, before the first paragraph of the body,
where every reader sees it first. The rest of ``word/document.xml`` stays byte for byte as it
was (the paragraph is spliced in, not re-serialised), and so does every other part. Adding it
twice changes nothing. Spreadsheets and presentations have no such place; they keep the implicit
label only.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from .errors import MalformedFileError, UnsupportedFormatError
from .formats import docx
from .text import find_text_labels

__all__ = ["WORD_MAIN_TYPES", "add_docx_label", "find_docx_label"]

NS_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
#: Content types of a Word document's main part (plain, macro-enabled, templates).
WORD_MAIN_TYPES = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
)
_W = f"{{{NS_W}}}"
_XMLNS = re.compile(rb'xmlns(?::([\w.-]+))?\s*=\s*["\']([^"\']*)["\']')


def _main_document(data: bytes) -> tuple[str, bytes]:
    """(member name, raw XML) of the Word main part; UnsupportedFormatError for XLSX/PPTX."""
    with docx.open_package(data) as zf:
        part = docx.main_part(zf, WORD_MAIN_TYPES)
        if part is None:
            raise UnsupportedFormatError("not a Word document (no main document part)")
        return part, docx.read_member(zf, part, docx.MAX_XML)


def _first_paragraph_is_label(raw: bytes, part: str) -> bool:
    root = docx.parse_xml(raw, part)
    body = root.find(f"{_W}body")
    if root.tag != f"{_W}document" or body is None:
        raise MalformedFileError(f"{part} is not a WordprocessingML document with a body")
    first = next(iter(body), None)
    if first is None or first.tag != f"{_W}p":
        return False
    text = "".join(t.text or "" for t in first.iter(f"{_W}t"))
    return find_text_labels(text)[0]


def find_docx_label(data: bytes) -> bool:
    """Whether a Word document opens with a label paragraph (ours or any GB-worded one)."""
    part, raw = _main_document(data)
    return _first_paragraph_is_label(raw, part)


def _prefix(raw: bytes, part: str) -> str:
    """The prefix the document binds to the WordprocessingML namespace (``"w:"`` in practice)."""
    root_tag = re.search(rb"<(?![?!])[^>]*>", raw)
    declared = _XMLNS.findall(root_tag[0] if root_tag else b"")
    for name, uri in declared:
        if uri.decode("utf-8", "replace") == NS_W:
            return name.decode("ascii") + ":" if name else ""
    raise MalformedFileError(f"{part} does not declare the WordprocessingML namespace on its root")


def add_docx_label(data: bytes, marker: str) -> bytes:
    """``data`` with ``marker`` (e.g. ``text.label_marker(policy)``) as its first paragraph;
    unchanged if it already opens with a label. Raises UnsupportedFormatError for packages that
    are not Word documents and MalformedFileError for broken ones."""
    part, raw = _main_document(data)
    if _first_paragraph_is_label(raw, part):
        return data
    w = _prefix(raw, part)
    body = re.search(rb"<" + re.escape(w.encode()) + rb"body(\s[^>]*?)?(/?)>", raw)
    if body is None:
        raise MalformedFileError(f"{part} has no body element")
    paragraph = (
        f"<{w}p><{w}r><{w}rPr><{w}b/></{w}rPr>"
        f'<{w}t xml:space="preserve">{escape(marker)}</{w}t></{w}r></{w}p>'
    ).encode()
    if body.group(2):  # <w:body/>: an empty body gets a start and an end tag
        opened = body.group(0)[:-2] + b">"
        new = raw[: body.start()] + opened + paragraph + f"</{w}body>".encode() + raw[body.end() :]
    else:
        new = raw[: body.end()] + paragraph + raw[body.end() :]
    if not _first_paragraph_is_label(new, part):  # the splice must read back as we meant it
        raise MalformedFileError(f"{part}: the label paragraph did not read back")
    return docx.rewrite_members(data, {part: new})
