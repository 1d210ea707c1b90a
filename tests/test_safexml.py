"""Hostile XML in the slots we parse (XMP packets, OOXML parts): bounded, typed, never a crash."""

from __future__ import annotations

import io
import zipfile

import pytest
from conftest import SAMPLES
from hypothesis import given
from hypothesis import strategies as st
from media import make_docx

from labeler import Label, LabelPolicy, label_bytes, label_content, propagate_bytes, verify
from labeler.errors import MalformedFileError
from labeler.formats import detect
from labeler.safexml import MAX_DEPTH, MAX_ELEMENTS, parse
from labeler.verification import Status

RDF = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="">{}</rdf:Description></rdf:RDF></x:xmpmeta>'
)


def _packet(body: bytes) -> bytes:
    return RDF.replace(b"{}", body)


def _png_with(packet: bytes) -> bytes:
    fmt = detect(SAMPLES["png"])
    return fmt.write_xmp(SAMPLES["png"], packet)


def test_depth_and_element_count_are_bounded() -> None:
    parse(b"<a>" * (MAX_DEPTH - 1) + b"</a>" * (MAX_DEPTH - 1), "x")  # at the bound: fine
    with pytest.raises(MalformedFileError, match="deeper than"):
        parse(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1), "x")
    with pytest.raises(MalformedFileError, match="more than"):
        parse(b"<r>" + b"<a/>" * (MAX_ELEMENTS + 1) + b"</r>", "x")
    with pytest.raises(MalformedFileError, match="DOCTYPE"):
        parse(b'<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>', "x")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 10, 20_000])
def test_deeply_nested_xmp_is_a_typed_error_everywhere(depth: int, policy: LabelPolicy) -> None:
    """Used to be a RecursionError from label_bytes / propagate_bytes (the packet's serialiser)."""
    data = _png_with(_packet(b"<a>" * depth + b"</a>" * depth))
    for call in (
        lambda: label_bytes(data, policy, on_existing="replace"),
        lambda: label_content(data, policy, on_existing="replace"),
        lambda: propagate_bytes(data, policy, declared=Label.SUSPECTED),
    ):
        with pytest.raises(MalformedFileError, match="deeper than"):
            call()
    assert verify(data).status is Status.UNREADABLE


def test_xmp_with_too_many_elements_is_refused(policy: LabelPolicy) -> None:
    data = _png_with(_packet(b"<a/>" * (MAX_ELEMENTS + 1)))
    with pytest.raises(MalformedFileError, match="more than"):
        label_bytes(data, policy, on_existing="replace")


def test_deeply_nested_word_document_is_a_typed_error(policy: LabelPolicy) -> None:
    docx = make_docx("x")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            part = zin.read(info)
            if info.filename == "word/document.xml":
                part = part.replace(b"<w:body>", b"<w:body>" + b"<w:p>" * 5000 + b"</w:p>" * 5000)
            zout.writestr(info, part)
    with pytest.raises(MalformedFileError, match="deeper than"):
        label_content(out.getvalue(), policy)


@given(st.text(max_size=60))
def test_escape_and_quoteattr_are_saxutils(text: str) -> None:
    """Our copies (saxutils costs ~80 ms of imports at start-up) write exactly what saxutils writes."""
    from xml.sax import saxutils

    from labeler.safexml import escape, quoteattr

    assert escape(text) == saxutils.escape(text)
    assert quoteattr(text) == saxutils.quoteattr(text)
