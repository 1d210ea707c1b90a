"""Explicit labels inside documents: a Word document's first paragraph, a PDF's first page.

GB 45438 asks generated text to carry a text prompt at its start, end or a suitable middle, and
a file that is downloaded or exported to carry the label itself.

* Word: the bracketed label (``【AI生成】``), bold, as the first paragraph of the body, where
  every reader sees it first. The rest of ``word/document.xml`` stays byte for byte as it was
  (the paragraph is spliced in, not re-serialised), and so does every other part.
* PDF: the picture label of :mod:`labeler.visible` (same plate, font and geometry as on images:
  text >= 5% of the page's shortest side, at the style's corner) stamped on page 1, as an
  incremental update: the original bytes stay a prefix of the file. The stamp's image carries
  ``/AIGCLabel true`` so the label can be found again without rendering the page.

Adding either twice changes nothing. Spreadsheets and presentations have no such place; they
keep the implicit label only.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ..errors import LabelerError, MalformedFileError, UnsupportedFormatError
from ..formats import docx, pdf
from ..safexml import escape
from ..text import find_text_labels
from .image import draw_label
from .styles import VisibleStyle

__all__ = ["WORD_MAIN_TYPES", "add_docx_label", "add_pdf_label", "find_docx_label", "find_pdf_label"]

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


# -- PDF --------------------------------------------------------------------------------------------

MARKER = "/AIGCLabel"
#: Pixels of the stamp's longest page side: sharp text at any page size, bounded memory.
_CANVAS_PX = 2400


def find_pdf_label(data: bytes) -> bool:
    """Whether page 1 of a PDF carries our stamped label (found by its image's marker)."""
    reader = pdf.reader(data)
    try:
        if not reader.pages:
            return False
        xobjects = reader.pages[0].get("/Resources", {}).get("/XObject", {})
        return any(ref.get_object().get(MARKER) is not None for ref in xobjects.values())
    except Exception as exc:  # pypdf raises many kinds on hostile input
        raise MalformedFileError(f"PDF page 1 is unreadable: {exc}") from exc


def _stamp(width_pt: float, height_pt: float, text: str, style: VisibleStyle, second: str | None) -> Any:
    """(pypdf page holding the label plate, its left and bottom offset in points)."""
    from PIL import Image

    pypdf = pdf.pypdf_module()
    scale = min(4.0, _CANVAS_PX / max(width_pt, height_pt))  # pixels per point
    canvas = Image.new("L", (max(1, round(width_pt * scale)), max(1, round(height_pt * scale))), 255)
    box = draw_label(canvas, text, style, second)
    out = io.BytesIO()
    canvas.crop(box.plate).save(out, "PDF", resolution=72 * scale, quality=95)
    page = pypdf.PdfReader(out).pages[0]
    for ref in page["/Resources"]["/XObject"].values():
        ref.get_object()[pypdf.generic.NameObject(MARKER)] = pypdf.generic.BooleanObject(True)
    return page, box.plate[0] / scale, height_pt - box.plate[3] / scale


def add_pdf_label(data: bytes, text: str, style: VisibleStyle, second: str | None = None) -> bytes:
    """``data`` with the label stamped on page 1, appended as an incremental update; unchanged
    if page 1 already has it. Raises MalformedFileError for PDFs pypdf can't update."""
    if find_pdf_label(data):
        return data
    pypdf = pdf.pypdf_module()
    data = pdf.stage(data)
    try:
        writer = pypdf.PdfWriter(io.BytesIO(data), incremental=True)
        if not writer.pages:
            raise MalformedFileError("PDF has no pages")
        page = writer.pages[0]
        if page.rotation % 360:
            page.transfer_rotation_to_content()  # label the page as it is shown
        left, bottom, right, top = (float(v) for v in page.cropbox)
        stamp, dx, dy = _stamp(right - left, top - bottom, text, style, second)
        page.merge_transformed_page(
            stamp, pypdf.Transformation().translate(left + dx, bottom + dy), over=True
        )
        out = io.BytesIO()
        writer.write(out)
    except LabelerError:  # ours, typed already (e.g. a page too small for a legible label)
        raise
    except Exception as exc:  # pypdf raises many kinds on hostile input
        raise MalformedFileError(f"PDF could not be labelled: {exc}") from exc
    result = out.getvalue()
    if not result.startswith(data) or not find_pdf_label(result):
        raise MalformedFileError("PDF structure is inconsistent: the label would not read back")
    return result
