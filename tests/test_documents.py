"""Explicit labels inside documents: the Word label paragraph, read back with ElementTree and
checked to leave every other byte of the package's content as it was; the PDF stamp, rendered by
poppler and measured on the pixels."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from media import DOCUMENT_XML, change_docx_text, make_docx, make_pdf
from PIL import Image, ImageChops, ImageStat
from pypdf import PdfReader, PdfWriter
from pypdf.generic import RectangleObject

from labeler import LabelPolicy, Status, TrustStore, label_content, verify
from labeler.errors import MalformedFileError, UnsupportedFormatError
from labeler.explicit.documents import add_docx_label, add_pdf_label, find_docx_label, find_pdf_label
from labeler.explicit.image import VisibleStyle
from labeler.text import label_marker

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _paragraphs(data: bytes) -> list[str]:
    import xml.etree.ElementTree as ET

    body = ET.fromstring(_members(data)["word/document.xml"]).find(f"{{{W}}}body")
    assert body is not None
    return ["".join(t.text or "" for t in p.iter(f"{{{W}}}t")) for p in body.findall(f"{{{W}}}p")]


def _spreadsheet() -> bytes:
    """A package whose main part is declared a spreadsheet (as in an XLSX)."""
    types = _members(make_docx())["[Content_Types].xml"].decode()
    return _package(DOCUMENT_XML, types.replace("wordprocessingml.document", "spreadsheetml.sheet"))


def _package(document_xml: str, types: str | None = None) -> bytes:
    original = _members(make_docx())
    original["word/document.xml"] = document_xml.encode()
    if types is not None:
        original["[Content_Types].xml"] = types.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in original.items():
            z.writestr(name, content)
    return buf.getvalue()


def test_the_label_opens_the_document_and_nothing_else_changes() -> None:
    original = make_docx("季度报告正文")
    labelled = add_docx_label(original, "【AI生成】")
    assert _paragraphs(labelled) == ["【AI生成】", "季度报告正文"]
    before, after = _members(original), _members(labelled)
    assert list(before) == list(after)  # same members, same order
    assert {k: v for k, v in before.items() if k != "word/document.xml"} == {
        k: v for k, v in after.items() if k != "word/document.xml"
    }
    paragraph = (
        b'<w:p><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">'
        + "【AI生成】".encode()
        + b"</w:t></w:r></w:p>"
    )
    assert after["word/document.xml"] == before["word/document.xml"].replace(
        b"<w:body>", b"<w:body>" + paragraph
    )  # spliced in: the rest of the XML is byte for byte the same
    assert find_docx_label(labelled) and not find_docx_label(original)


def test_twice_is_once_and_a_label_written_by_hand_counts() -> None:
    once = add_docx_label(make_docx(), "[AI-generated]")
    assert add_docx_label(once, "[AI-generated]") == once
    by_hand = make_docx("【人工智能生成】")
    assert find_docx_label(by_hand) and add_docx_label(by_hand, "【AI生成】") == by_hand


@pytest.mark.parametrize(
    "document",
    [
        DOCUMENT_XML.replace("w:", "wx:").replace("xmlns:w=", "xmlns:wx="),  # another prefix
        DOCUMENT_XML.replace("<w:", "<").replace("</w:", "</").replace("xmlns:w=", "xmlns="),  # default
        DOCUMENT_XML.replace("<w:body>", "<w:body >").format(text="x"),
        '<?xml version="1.0"?><!-- made by hand --><w:document xmlns:w="' + W + '"><w:body/></w:document>',
        '<w:document xmlns:w="' + W + '"><w:body></w:body></w:document>',
    ],
)
def test_namespace_prefixes_and_empty_bodies(document: str) -> None:
    labelled = add_docx_label(_package(document.replace("{text}", "正文")), "【AI生成】")
    assert _paragraphs(labelled)[0] == "【AI生成】" and find_docx_label(labelled)


def test_spreadsheets_and_broken_documents() -> None:
    xlsx = _spreadsheet()
    with pytest.raises(UnsupportedFormatError):
        add_docx_label(xlsx, "【AI生成】")
    for bad in (
        '<w:document xmlns:w="' + W + '"/>',  # no body
        '<!DOCTYPE x [<!ENTITY a "b">]><w:document xmlns:w="' + W + '"><w:body/></w:document>',
        "<document><body/></document>",  # not WordprocessingML
    ):
        with pytest.raises(MalformedFileError):
            add_docx_label(_package(bad), "【AI生成】")


def test_label_content_signs_the_labelled_document(policy: LabelPolicy, trust: TrustStore) -> None:
    out = label_content(make_docx(), policy)
    assert _paragraphs(out)[0] == label_marker(policy)
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED and verdict.explicit_label
    assert verify(change_docx_text(out), trust).status is Status.ALTERED
    assert label_content(out, policy, on_existing="keep") == out
    implicit_only = label_content(make_docx(), policy, visible=False)
    assert not verify(implicit_only, trust).explicit_label and len(_paragraphs(implicit_only)) == 1


def test_spreadsheets_keep_the_implicit_label_only(policy: LabelPolicy, trust: TrustStore) -> None:
    xlsx = _spreadsheet()
    out = label_content(xlsx, policy)
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED and not verdict.explicit_label
    assert _members(out)["word/document.xml"] == _members(xlsx)["word/document.xml"]


# -- PDF: the label stamped on page 1 ------------------------------------------------------------


def _render(data: bytes, tmp_path: Path) -> Image.Image:
    """Page 1 as poppler (pdftoppm, Debian poppler-utils) renders it, at 2 px per point."""
    (tmp_path / "in.pdf").write_bytes(data)
    subprocess.run(
        ["pdftoppm", "-r", "144", "-f", "1", "-l", "1", "-png", "in.pdf", "page"], cwd=tmp_path, check=True
    )
    (page,) = tmp_path.glob("page*.png")
    img = Image.open(page).convert("L")
    img.load()
    page.unlink()
    return img


def _ink_height(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Height of the label text's ink in the box: the bright pixels on the dark plate."""
    bright = img.crop(box).point(lambda v: 255 if v > 200 else 0).getbbox()
    assert bright is not None
    return bright[3] - bright[1]


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs pdftoppm (apt-get install poppler-utils)")
def test_pdf_label_is_on_page_one_where_a_reader_sees_it(tmp_path: Path) -> None:
    original = make_pdf(pages=2, size=(595, 842))  # A4 in points
    labelled = add_pdf_label(original, "AI生成", VisibleStyle())
    assert labelled.startswith(original)  # an incremental update: the original is a prefix
    assert find_pdf_label(labelled) and not find_pdf_label(original)
    before, after = _render(original, tmp_path), _render(labelled, tmp_path)
    assert before.size == after.size == (1190, 1684)
    changed = ImageChops.difference(before, after).getbbox()
    assert changed is not None
    left, top, right, bottom = changed
    assert right >= after.width - 40 and bottom >= after.height - 40  # the bottom-right corner
    assert right - left < after.width / 2 and bottom - top < after.height / 4  # and only there
    plate = ImageStat.Stat(after.crop(changed)).median[0]
    assert plate < 120  # a dark plate on the white page
    ink = _ink_height(after, changed)
    assert ink >= 0.05 * after.width  # text height >= 5% of the shortest side (GB 45438 geometry)
    page_two_before = PdfReader(io.BytesIO(original)).pages[1].get_contents().get_data()
    assert PdfReader(io.BytesIO(labelled)).pages[1].get_contents().get_data() == page_two_before


def test_pdf_label_twice_is_once_and_survives_odd_pages() -> None:
    once = add_pdf_label(make_pdf(), "AI生成", VisibleStyle())
    assert add_pdf_label(once, "AI生成", VisibleStyle()) == once
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(size=(300, 200)))))
    writer.pages[0].rotate(90)
    writer.pages[0].cropbox = RectangleObject([20, 10, 280, 190])
    odd = io.BytesIO()
    writer.write(odd)
    labelled = add_pdf_label(odd.getvalue(), "AI生成", VisibleStyle(placement="top-left"))
    page = PdfReader(io.BytesIO(labelled)).pages[0]
    assert find_pdf_label(labelled) and page.rotation == 0  # labelled as it is shown


def test_broken_pdfs_are_a_clean_error() -> None:
    for bad in (
        b"%PDF-1.7\n%%EOF\n",
        make_pdf()[:-200],
        b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF",
    ):
        with pytest.raises(MalformedFileError):
            add_pdf_label(bad, "AI生成", VisibleStyle())


def test_label_content_stamps_and_signs_pdfs(policy: LabelPolicy, trust: TrustStore) -> None:
    original = make_pdf()
    out = label_content(original, policy)
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED and verdict.explicit_label and out.startswith(original)
    assert label_content(original, policy, visible=False).startswith(original)
    assert not verify(label_content(original, policy, visible=False), trust).explicit_label


def test_a_page_too_narrow_for_the_label_says_so() -> None:
    from labeler.errors import LabelTooLargeError

    with pytest.raises(LabelTooLargeError):  # typed as what it is, not as a broken PDF
        add_pdf_label(make_pdf(size=(2, 600)), "由人工智能生成的内容", VisibleStyle())
