"""Containers that carry the GB record in their own slot: WAV, MP3, FLAC, Ogg, MP4/MOV, PDF,
DOCX. Real files (tests/media.py); independent readers: mutagen, ffprobe, exiftool, stdlib."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import wave
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import FFMPEG, change_docx_text, decodes, ffprobe_tags, make_docx, needs_ffmpeg

from labeler import LabelPolicy, Status, TrustStore, label_bytes, propagate_bytes, verify
from labeler.errors import LabelerError, MalformedFileError, UnsupportedFormatError
from labeler.formats import detect, docx, mp4, pdf

NAMES = [
    "wav", "wav-stereo-24bit", "mp3", "mp3-id3v1", "flac", "ogg-vorbis", "ogg-opus",
    "mp4", "mp4-faststart", "mp4-with-mdta-keys", "mov", "pdf", "docx",
]  # fmt: skip
RECORD_A = '{"AIGC":{"Label":"1","ContentProducer":"a"}}'
RECORD_B = '{"AIGC":{"Label":"3","ContentProducer":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}}'
SLOWER = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=NAMES)
def medium(request: pytest.FixtureRequest, media: dict[str, bytes]) -> tuple[str, bytes]:
    if request.param not in media:
        pytest.skip("needs ffmpeg to make this sample (CI installs it)")
    return request.param, media[request.param]


def _content_offset(data: bytes) -> int:
    """An offset inside the media payload proper (samples, frames, page content)."""
    fmt = detect(data)
    if fmt.name == "mp4":
        top = mp4.boxes(data, 0, len(data), top=True)
        mdat = next(b for b in top if b.type == b"mdat")
        return (mdat.body + mdat.end) // 2
    if fmt.name == "pdf":
        return data.index(b"stream") + 20
    return len(data) * 2 // 3


def _changed(data: bytes) -> bytes:
    """``data`` with its content (not its label) changed, still a well-formed file."""
    if detect(data).name == "docx":
        return change_docx_text(data)
    out = bytearray(data)
    out[_content_offset(data)] ^= 0x01
    return bytes(out)


def test_detected_as_a_record_slot_format(medium: tuple[str, bytes]) -> None:
    fmt = detect(medium[1])
    assert fmt.write_record is not None and fmt.kind in ("audio", "video", "document")
    assert fmt.read_fallback(medium[1]) is None


def test_label_then_verify(medium: tuple[str, bytes], policy: LabelPolicy, trust: TrustStore) -> None:
    _, data = medium
    out = label_bytes(data, policy)
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED, verdict.problems
    assert verdict.label_source == detect(data).record_slot
    assert verdict.record is not None and verdict.record.ContentProducer == policy.producer
    assert verdict.filing_numbers == policy.filing_numbers


def test_write_read_replace_keeps_one_slot(medium: tuple[str, bytes]) -> None:
    fmt = detect(medium[1])
    assert fmt.write_record is not None
    once = fmt.write_record(fmt.stage(medium[1]), RECORD_A)
    assert fmt.read_fallback(once) == RECORD_A
    twice = fmt.write_record(fmt.stage(once), RECORD_B)
    assert fmt.read_fallback(twice) == RECORD_B
    assert RECORD_A.encode() not in twice.replace(b"\x00", b"") or fmt.name == "pdf"  # PDF keeps history


def test_digest_ignores_the_slot(medium: tuple[str, bytes]) -> None:
    fmt = detect(medium[1])
    assert fmt.write_record is not None
    staged = fmt.stage(medium[1])
    base = fmt.content_digest(staged)
    labeled = fmt.write_record(staged, RECORD_A)
    assert fmt.content_digest(labeled) == base
    if fmt.name != "pdf":  # a PDF relabel appends a revision over the labelled one
        assert fmt.content_digest(fmt.write_record(fmt.stage(labeled), RECORD_B)) == base


def test_a_byte_changed_in_the_content_reads_as_altered(
    medium: tuple[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    changed = _changed(label_bytes(medium[1], policy))
    assert verify(changed, trust).status is Status.ALTERED


def test_label_copied_onto_other_content_reads_as_altered(
    medium: tuple[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    _, data = medium
    fmt = detect(data)
    assert fmt.write_record is not None
    stolen = fmt.read_fallback(label_bytes(data, policy))
    assert stolen is not None
    forged = fmt.write_record(fmt.stage(_changed(data)), stolen)
    assert verify(forged, trust).status is Status.ALTERED


def test_platform_propagation_keeps_the_producer_signature(
    medium: tuple[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    out = propagate_bytes(label_bytes(medium[1], policy), policy)
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED, verdict.problems
    assert verdict.propagation is not None and verdict.propagation["status"] == "verified"


@SLOWER
@given(cut=st.integers(0, 1 << 20), flip=st.integers(0, 1 << 20), bits=st.integers(1, 255))
def test_truncated_or_corrupt_input_raises_only_typed_errors(
    medium: tuple[str, bytes], cut: int, flip: int, bits: int
) -> None:
    _, data = medium
    fmt = detect(data)
    assert fmt.write_record is not None
    broken = bytearray(data[: max(1, cut % (len(data) + 1))])
    broken[flip % len(broken)] ^= bits
    for op in (fmt.read_fallback, fmt.content_digest, fmt.stage, lambda d: fmt.write_record(d, RECORD_A)):
        with contextlib.suppress(LabelerError):
            op(bytes(broken))
    assert isinstance(verify(bytes(broken)).status, Status)


# -- independent readers ----------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("name", ["mp3", "flac", "ogg-vorbis", "ogg-opus"])
def test_mutagen_reads_the_tag(name: str, media: dict[str, bytes], policy: LabelPolicy) -> None:
    import mutagen

    if name not in media:
        pytest.skip("needs ffmpeg")
    out = label_bytes(media[name], policy)
    tags = mutagen.File(io.BytesIO(out)).tags  # type: ignore[no-untyped-call]
    value = tags.getall("TXXX:AIGC")[0].text[0] if name.startswith("mp3") else tags["AIGC"][0]
    assert json.loads(value)["ContentProducer"] == policy.producer


@pytest.mark.interop
@needs_ffmpeg
@pytest.mark.parametrize(
    "name", ["mp3", "mp3-id3v1", "flac", "ogg-vorbis", "ogg-opus", "mp4", "mp4-faststart", "mov"]
)
def test_ffprobe_reads_the_tag_and_ffmpeg_decodes_every_frame(
    name: str, media: dict[str, bytes], policy: LabelPolicy, tmp_path: Path
) -> None:
    path = tmp_path / f"labeled.{'mov' if name == 'mov' else name.split('-')[0]}"
    path.write_bytes(label_bytes(media[name], policy))
    assert json.loads(ffprobe_tags(path)["AIGC"])["Label"] == "1"
    assert decodes(path)


@pytest.mark.interop
@needs_ffmpeg
@pytest.mark.parametrize("name", ["mp4", "mp4-faststart", "mp4-with-mdta-keys"])
def test_mp4_packets_are_untouched(
    name: str, media: dict[str, bytes], policy: LabelPolicy, tmp_path: Path
) -> None:
    """Every compressed packet is bit-identical: the chunk offsets were moved with the data."""
    assert FFMPEG is not None

    def packet_hashes(data: bytes) -> list[str]:
        src = tmp_path / "x.mp4"
        src.write_bytes(data)
        run = subprocess.run(
            [FFMPEG, "-v", "error", "-i", str(src), "-map", "0", "-c", "copy", "-f", "framemd5", "-"],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        return [line for line in run.stdout.splitlines() if not line.startswith("#")]

    assert packet_hashes(label_bytes(media[name], policy)) == packet_hashes(media[name])


@pytest.mark.interop
@needs_ffmpeg
def test_mp4_keeps_other_metadata_keys(media: dict[str, bytes], policy: LabelPolicy, tmp_path: Path) -> None:
    path = tmp_path / "k.mp4"
    path.write_bytes(label_bytes(media["mp4-with-mdta-keys"], policy))
    tags = ffprobe_tags(path)
    assert tags["studio"] == "demo" and "AIGC" in tags


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed (CI installs it)")
@pytest.mark.parametrize("name", ["mp3", "flac", "ogg-vorbis", "mp4", "pdf", "docx"])
def test_exiftool_reads_the_record(
    name: str, media: dict[str, bytes], policy: LabelPolicy, tmp_path: Path
) -> None:
    if name not in media:
        pytest.skip("needs ffmpeg")
    path = tmp_path / f"labeled.{name.split('-')[0]}"
    path.write_bytes(label_bytes(media[name], policy))
    tags = ["-AIGC", "-Aigc", "-UserDefinedText"]
    run = subprocess.run(
        ["exiftool", "-j", "-a", *tags, str(path)], capture_output=True, check=True, text=True
    )
    (info,) = json.loads(run.stdout)
    value = info.get("AIGC") or info.get("Aigc") or info.get("UserDefinedText", "")
    assert json.loads(str(value).removeprefix("(AIGC) "))["ContentProducer"] == policy.producer


# -- per-format specifics ---------------------------------------------------------------------


def test_wav_samples_are_untouched_and_the_chunk_is_last(
    media: dict[str, bytes], policy: LabelPolicy
) -> None:
    out = label_bytes(media["wav-stereo-24bit"], policy)
    with wave.open(io.BytesIO(out)) as a, wave.open(io.BytesIO(media["wav-stereo-24bit"])) as b:
        assert a.getparams() == b.getparams()
        assert a.readframes(a.getnframes()) == b.readframes(b.getnframes())
    assert out.startswith(b"RIFF") and int.from_bytes(out[4:8], "little") == len(out) - 8
    assert out[len(media["wav-stereo-24bit"]) : len(media["wav-stereo-24bit"]) + 4] == b"AIGC"


def test_wav_riff_size_beyond_file_is_malformed(media: dict[str, bytes]) -> None:
    data = bytearray(media["wav"])
    data[4:8] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(MalformedFileError, match="does not fit"):
        detect(bytes(data)).content_digest(bytes(data))


def test_pdf_original_bytes_are_a_prefix(media: dict[str, bytes], policy: LabelPolicy) -> None:
    out = label_bytes(media["pdf"], policy)
    assert out.startswith(media["pdf"])
    assert pdf.label_free_end(out) == len(pdf.stage(media["pdf"]))


def test_pdf_revision_that_changes_more_than_info_is_digested(
    media: dict[str, bytes], policy: LabelPolicy
) -> None:
    import pypdf

    out = label_bytes(media["pdf"], policy)
    writer = pypdf.PdfWriter(io.BytesIO(out), incremental=True)
    writer.add_blank_page(10, 10)
    writer.add_metadata({"/AIGC": "still here"})
    buf = io.BytesIO()
    writer.write(buf)
    assert pdf.label_free_end(buf.getvalue()) > len(media["pdf"])


def test_docx_keeps_existing_custom_properties() -> None:
    custom = (
        f'<?xml version="1.0" encoding="UTF-8"?><Properties xmlns="{docx.NS_PROPS}" xmlns:vt="{docx.NS_VT}">'
        f'<property fmtid="{docx.FMTID}" pid="2" name="Client">'
        "<vt:lpwstr>ACME &amp; Co</vt:lpwstr></property>"
        "</Properties>"
    )
    out = docx.write_record(make_docx(custom=custom), RECORD_A)
    with zipfile.ZipFile(io.BytesIO(out)) as z:
        xml = z.read(docx.CUSTOM).decode()
        types = z.read(docx.TYPES).decode()
    assert 'name="Client"' in xml and "ACME &amp; Co" in xml and 'pid="3" name="AIGC"' in xml
    assert types.count("/docProps/custom.xml") == 1
    assert docx.read_record(out) == RECORD_A


def test_docx_with_a_doctype_is_refused() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><Properties>&a;</Properties>'
    with pytest.raises(MalformedFileError, match="DOCTYPE"):
        docx.read_record(make_docx(custom=bomb))


def test_zip_that_is_not_office_is_unsupported() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(UnsupportedFormatError, match="Office Open XML"):
        docx.read_record(buf.getvalue())


def test_zip_declaring_huge_members_is_refused() -> None:
    data = bytearray(make_docx())
    # patch the central directory's uncompressed size of the first member to 4 GiB - 1
    cd = data.rindex(b"PK\x01\x02")
    first = data.index(b"PK\x01\x02")
    assert cd >= first
    data[first + 24 : first + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    with pytest.raises(MalformedFileError, match="too large"):
        docx.read_record(bytes(data))


# -- regressions found by fuzz/run ------------------------------------------------------------


def test_docx_with_a_corrupt_deflate_stream_is_malformed() -> None:
    data = bytearray(make_docx("x" * 2000))
    start = data.index(b"word/document.xml") + len("word/document.xml")
    data[start + 10 : start + 20] = b"\xff" * 10  # inside the compressed member
    with pytest.raises(MalformedFileError):
        docx.content_digest(bytes(data))


def test_label_that_reads_on_a_broken_container_is_unreadable_not_a_crash(
    media: dict[str, bytes], policy: LabelPolicy
) -> None:
    out = label_bytes(media["pdf"], policy)
    broken = out.replace(b"/Prev ", b"/Prev 9", 1)  # the label still reads, the revisions don't chain
    verdict = verify(broken)
    assert verdict.status in (Status.UNREADABLE, Status.ALTERED, Status.UNTRUSTED)
    assert verdict.status is not Status.VERIFIED


def test_mp4_nested_box_of_size_zero_is_malformed(media: dict[str, bytes]) -> None:
    if "mp4" not in media:
        pytest.skip("needs ffmpeg")
    data = bytearray(media["mp4"])
    _, moov = mp4._moov(bytes(data))
    first = mp4.boxes(bytes(data), moov.body, moov.end)[0]
    data[first.start : first.start + 4] = b"\x00\x00\x00\x00"
    with pytest.raises(MalformedFileError, match="size 0 inside a container"):
        mp4.write_record(bytes(data), RECORD_A)


def test_docx_zip_bomb_is_streamed_not_held_in_memory() -> None:
    import tracemalloc

    buf = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_docx()), "r") as src,
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z,
    ):
        for info in src.infolist():
            z.writestr(info, src.read(info))
        with z.open("word/media/bomb.bin", "w") as dst:  # 96 MiB of zeros, ~100 KB compressed
            for _ in range(96):
                dst.write(bytes(1 << 20))
    bomb = buf.getvalue()
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        out = docx.write_record(bomb, RECORD_A)
        docx.content_digest(out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"peak {peak / 1e6:.0f} MB"
    assert docx.read_record(out) == RECORD_A


def test_zip_declaring_an_unsupported_version_is_malformed() -> None:
    """Found by fuzz/run: zipfile raises NotImplementedError for 'zip file version 25.5'."""
    data = bytearray(make_docx())
    cd = data.index(b"PK\x01\x02")
    data[cd + 6] = 0xFF  # version needed to extract
    with pytest.raises(MalformedFileError):
        docx.read_record(bytes(data))


def test_zip_member_with_an_unknown_compression_method_is_malformed() -> None:
    """Found by fuzz/run: writing it back raised NotImplementedError."""
    data = bytearray(make_docx())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # local header and central directory entry
        at = data.index(header)
        offset = 8 if header == b"PK\x03\x04" else 10
        data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    with pytest.raises(MalformedFileError):
        docx.write_record(bytes(data), RECORD_A)


def test_zip_with_duplicate_member_names_is_refused() -> None:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(io.BytesIO(make_docx())) as src:
            for info in src.infolist():
                z.writestr(info, src.read(info))
        z.writestr("word/document.xml", "<w:document/>")  # a second, different document part
    with pytest.raises(MalformedFileError, match="duplicate"):
        docx.content_digest(buf.getvalue())


def test_mp4_orphan_ilst_items_do_not_shadow_our_key(media: dict[str, bytes], policy: LabelPolicy) -> None:
    """Found by fuzz/run: an ilst item whose index names no key came to shadow ours."""
    if "mp4" not in media:
        pytest.skip("needs ffmpeg")
    labeled = label_bytes(media["mp4"], policy)
    orphan = mp4.box((2).to_bytes(4, "big"), mp4.box(b"data", b"\x00\x00\x00\x01\x00\x00\x00\x00stale"))
    data = bytearray(labeled)
    at = data.index(b"ilst", data.index(b"mdtaAIGC")) - 4  # our mdta meta's ilst, not iTunes' one
    size = int.from_bytes(data[at : at + 4], "big")
    data[at + 8 : at + 8] = orphan  # first item in ilst
    data[at : at + 4] = (size + len(orphan)).to_bytes(4, "big")
    for box_name in (b"meta", b"udta", b"moov"):  # grow the parents too
        parent = data.rfind(box_name, 0, at) - 4
        data[parent : parent + 4] = (int.from_bytes(data[parent : parent + 4], "big") + len(orphan)).to_bytes(
            4, "big"
        )
    rewritten = mp4.write_record(bytes(data), RECORD_A)
    assert mp4.read_record(rewritten) == RECORD_A


def test_pdf_with_a_long_classic_xref_table(policy: LabelPolicy, trust: TrustStore) -> None:
    """Thousands of objects put the trailer far beyond the xref keyword: still found."""
    from media import make_pdf

    big = make_pdf(1200)  # Pillow writes a classic xref table, 3 objects a page
    assert big.rindex(b"trailer") - big.rindex(b"\nxref") > 1 << 16
    out = label_bytes(big, policy)
    assert verify(out, trust).status is Status.VERIFIED
    assert pdf.label_free_end(out) == len(pdf.stage(big))


def test_pdf_whose_update_would_not_read_back_is_refused() -> None:
    """Found by fuzz/run (the input is kept in fuzz_found/): a damaged cross-reference made
    pypdf write an update whose Info was unreachable; writing now checks it reads back."""
    data = (Path(__file__).parent / "fuzz_found/pdf_unreachable_info.bin").read_bytes()
    with pytest.raises(MalformedFileError, match="would not read back"):
        pdf.write_record(data, RECORD_A)


@pytest.mark.parametrize("name", ["pdf_xref_stream_bad_deflate", "pdf_xref_stream_bad_zlib_header"])
def test_pdf_revision_with_a_broken_xref_stream_is_content(name: str, policy: LabelPolicy) -> None:
    """Found by fuzz/run (inputs in fuzz_found/): a last revision whose cross-reference stream does
    not inflate made the digest raise zlib.error; it is simply not our label revision."""
    data = (Path(__file__).parent / f"fuzz_found/{name}.bin").read_bytes()
    for op in (pdf.FORMAT.content_digest, pdf.FORMAT.stage):
        with contextlib.suppress(LabelerError):
            op(data)
    assert verify(data).status is not Status.VERIFIED  # a verdict, never an exception
