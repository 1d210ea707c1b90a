"""What each format's digest leaves out: exactly one slot of ours, plus C2PA stores it reports
(issue 13). The attacks themselves are in tests/test_digest_binding.py."""

from __future__ import annotations

import io
import zipfile

import pytest
from conftest import EXISTING_XMP, SAMPLES
from test_digest_binding import (
    gif_insert,
    gif_xmp,
    jpeg_app11,
    jpeg_insert,
    jpeg_segment,
    jpeg_xmp,
    jumbf_claiming_c2pa,
    png_chunk,
    png_insert,
    png_xmp,
    riff_append,
)

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify
from labeler.formats import detect, jpeg, pdf, riff
from labeler.formats.base import C2PA, claims_c2pa_store

SECOND_SLOT = {
    "jpeg": lambda d: jpeg_insert(d, jpeg_xmp(EXISTING_XMP)),
    "png": lambda d: png_insert(d, png_xmp(EXISTING_XMP)),
    "webp-xmp": lambda d: riff_append(d, riff.chunk(b"XMP ", EXISTING_XMP.replace(b"Jane", b"John"))),
    "webp-lossy": lambda d: riff_append(d, riff.chunk(b"XMP ", EXISTING_XMP), riff.chunk(b"XMP ", b"x")),
    "gif": lambda d: gif_insert(d, gif_xmp(EXISTING_XMP)),
}


@pytest.mark.parametrize("name", sorted(SECOND_SLOT))
def test_stage_keeps_the_first_slot_and_drops_the_others(name: str) -> None:
    data = SECOND_SLOT[name](SAMPLES[name])
    fmt = detect(data)
    staged = fmt.stage(data)
    assert fmt.read_xmp(staged) == fmt.read_xmp(data)  # the packet read_xmp reads is kept
    assert fmt.stage(staged) == staged
    assert fmt.content_digest(fmt.write_xmp(staged, b"<x/>")) == fmt.content_digest(staged)


@pytest.mark.parametrize("name", sorted(SECOND_SLOT))
def test_a_file_with_two_slots_labels_into_one_and_verifies(
    name: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    out = label_bytes(SECOND_SLOT[name](SAMPLES[name]), policy)
    assert verify(out, trust).status is Status.VERIFIED
    assert out.count(b"http://www.tc260.org.cn/ns/AIGC/1.0/") >= 1
    assert detect(out).stage(out) == out  # one slot left: nothing to drop


def test_a_second_wav_chunk_is_dropped_when_labelling(
    media: dict[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    data = riff_append(media["wav"], riff.chunk(b"AIGC", b"{}"), riff.chunk(b"AIGC", b"{}"))
    staged = detect(data).stage(data)
    assert staged.count(b"AIGC") == 1 and int.from_bytes(staged[4:8], "little") == len(staged) - 8
    assert verify(label_bytes(data, policy, on_existing="replace"), trust).status is Status.VERIFIED


def test_formats_report_c2pa_stores_and_nothing_else() -> None:
    store = jumbf_claiming_c2pa(b"manifest")
    cases = {
        "jpeg": jpeg_insert(SAMPLES["jpeg"], jpeg_app11(store)),
        "png": png_insert(SAMPLES["png"], png_chunk(b"caBX", store)),
        "webp-lossy": riff_append(SAMPLES["webp-lossy"], riff.chunk(b"C2PA", store)),
    }
    for name, data in cases.items():
        fmt = detect(data)
        (excluded,) = fmt.excluded(data)
        assert excluded.claim == C2PA and store in data[excluded.start : excluded.end], name
        assert fmt.excluded(SAMPLES[name]) == ()
    # a JUMBF box that does not say it is a C2PA store is content, not excluded
    other = jpeg_insert(SAMPLES["jpeg"], jpeg_app11(b"\x00\x00\x00\x10jumb\x00\x00\x00\x08jumd"))
    assert detect(other).excluded(other) == ()
    assert detect(other).content_digest(other) != detect(other).content_digest(SAMPLES["jpeg"])


def test_a_c2pa_store_in_several_jpeg_segments_is_one_store() -> None:
    store = jumbf_claiming_c2pa(b"m" * 100)
    first = jpeg_app11(store, instance=7)
    # a continuation (Z = 2) of box instance 7 repeats the box header (JPEG XT)
    second = jpeg_segment(jpeg.APP11, b"JP\x00\x07\x00\x00\x00\x02" + store[:8] + b"n" * 50)
    data = jpeg_insert(SAMPLES["jpeg"], first, second)
    assert [e.size for e in detect(data).excluded(data)] == [len(first), len(second)]


def test_claims_c2pa_store() -> None:
    assert claims_c2pa_store(jumbf_claiming_c2pa(b""))
    big = b"\x00\x00\x00\x01jumb" + (40).to_bytes(8, "big") + jumbf_claiming_c2pa(b"")[8:]
    assert claims_c2pa_store(big)
    assert not claims_c2pa_store(b"\x00\x00\x00\x10jumb\x00\x00\x00\x08jumd")
    assert not claims_c2pa_store(b"")


# -- PDF: what a label revision is, exactly ----------------------------------------------------


def _classic_label_revision(original: bytes, info: int, prev: int, extra: bytes = b"") -> bytes:
    """A label revision written with a classic cross-reference table, as older tools do."""
    base = original if original.endswith(b"\n") else original + b"\n"
    obj = f"{info} 0 obj\n<< /Producer (x) /AIGC (rec) >>\nendobj\n".encode()
    xref_at = len(base) + len(obj)
    table = f"xref\n{info} 1\n{len(base):010d} 00000 n \n".encode()
    trailer = f"trailer\n<< /Size {info + 1} /Root 1 0 R /Info {info} 0 R /Prev {prev} >>\n".encode()
    return base + obj + table + trailer + extra + f"startxref\n{xref_at}\n%%EOF\n".encode()


def _pdf_facts(data: bytes) -> tuple[int, int]:
    """(the trailer's /Info object number, startxref) of a PDF made by Pillow."""
    import re

    match = re.search(rb"/Info (\d+) 0 R", data)
    tail = re.search(rb"startxref\s+(\d+)", data[-64:])
    assert match and tail
    return int(match.group(1)), int(tail.group(1))


def test_a_classic_table_label_revision_is_our_slot(media: dict[str, bytes]) -> None:
    original = media["pdf"]
    info, prev = _pdf_facts(original)
    labelled = _classic_label_revision(original, info, prev)
    assert pdf.label_free_end(labelled) == len(original) + (0 if original.endswith(b"\n") else 1)
    assert pdf.read_record(labelled) == "rec"


@pytest.mark.parametrize(
    "extra",
    [b"% a comment\n", b"12 0 obj\n<< >>\nendobj\n", b"trailer\n<< /Junk 1 >>\n"],
    ids=["comment", "another object", "second trailer"],
)
def test_a_label_revision_with_anything_else_is_content(media: dict[str, bytes], extra: bytes) -> None:
    original = media["pdf"]
    info, prev = _pdf_facts(original)
    labelled = _classic_label_revision(original, info, prev, extra)
    assert pdf.label_free_end(labelled) == len(labelled)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"/Index [", b"/Foo 1 /Index ["),  # a key a trailer does not have
        (b"/Index [", b"/ID [(" + b"x" * 300 + b")] /Index ["),  # a long string
        (b"/Type /XRef", b"/Type /XRef % hidden\n"),  # a comment
    ],
    ids=["unknown key", "long string", "comment"],
)
def test_an_xref_stream_dictionary_says_nothing_else(
    media: dict[str, bytes], policy: LabelPolicy, old: bytes, new: bytes
) -> None:
    labelled = label_bytes(media["pdf"], policy)
    start = pdf.label_free_end(labelled)
    assert start < len(labelled)
    at = labelled.rindex(old)
    assert pdf.label_free_end(labelled[:at] + new + labelled[at + len(old) :]) == len(labelled) + len(
        new
    ) - len(old)


def test_an_xref_stream_with_bytes_after_its_entries_is_content(
    media: dict[str, bytes], policy: LabelPolicy
) -> None:
    import re
    import zlib

    labelled = label_bytes(media["pdf"], policy)
    match = re.search(rb"/Length (\d+)\n>>\nstream\n", labelled[pdf.label_free_end(labelled) :])
    assert match is not None
    start = pdf.label_free_end(labelled) + match.end()
    body = labelled[start : start + int(match.group(1))]
    longer = zlib.compress(zlib.decompress(body) + b"hidden")
    forged = (
        labelled[: start - len(match.group(0))]
        + match.group(0).replace(match.group(1), str(len(longer)).encode())
        + longer
        + labelled[start + len(body) :]
    )
    assert pdf.label_free_end(forged) == len(forged)


def test_stage_takes_label_revisions_off(media: dict[str, bytes], policy: LabelPolicy) -> None:
    once = label_bytes(media["pdf"], policy)
    twice = pdf.write_record(once, "{}")  # a second label revision on top
    assert pdf.stage(twice) == pdf.stage(media["pdf"])
    assert pdf.stage(once) == pdf.stage(media["pdf"])


def test_docx_other_custom_properties_are_bound(policy: LabelPolicy) -> None:
    from media import make_docx

    from labeler.formats import docx

    custom = (
        f'<?xml version="1.0"?><Properties xmlns="{docx.NS_PROPS}" xmlns:vt="{docx.NS_VT}">'
        f'<property fmtid="{docx.FMTID}" pid="2" name="Dept"><vt:lpwstr>R&amp;D</vt:lpwstr></property>'
        "</Properties>"
    )
    original = make_docx(custom=custom)  # once: members made a second apart carry other zip times
    labelled = label_bytes(original, policy)
    fmt = detect(labelled)
    assert fmt.content_digest(labelled) == fmt.content_digest(fmt.stage(original))
    with zipfile.ZipFile(io.BytesIO(labelled)) as z:
        raw = z.read(docx.CUSTOM)
    edited = docx.rewrite_members(labelled, {docx.CUSTOM: raw.replace(b"R&amp;D", b"Sales")})
    assert fmt.content_digest(edited) != fmt.content_digest(labelled)
