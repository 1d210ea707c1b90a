"""The record the ecosystem reads (GB 45438 Annex E, SPEC.md §2): one flat object of seven fields
in every slot that has its own AIGC key, judged by outside readers; and what other producers
write, built here the way they write it, read by us."""

from __future__ import annotations

import importlib
import io
import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import piexif
import pytest
from conftest import SAMPLES, encode, make_image
from media import make_docx, needs_ffmpeg, sine_wav
from PIL import PngImagePlugin

from labeler import LabelPolicy, Status, TrustStore, label_bytes, propagate_bytes, verify
from labeler.aigc import FIELD_ORDER, AigcRecord
from labeler.formats import detect, find_label, jpeg
from labeler.formats.exif import read_user_comment_record
from labeler.xmp import EXIFTOOL_CONFIG, NS_TC260, XmpLabel, read_label, write_label

PRODUCER = "001191110102MACQD9K64010000"  # as seen in real producer files
FLAT = (
    f'{{"Label":"1","ContentProducer":"{PRODUCER}","ProduceID":"7d9f2c1e",'
    f'"ReservedCode1":"","ContentPropagator":"{PRODUCER}","PropagateID":"7d9f2c1e","ReservedCode2":""}}'
)
WRAPPED = '{"AIGC":{"Label":"2","ContentProducer":"001191440300708461136T1XGW3","ProduceID":"w1"}}'
IMAGE_EXT = {"jpeg": ".jpg", "png": ".png", "webp-lossy": ".webp", "gif": ".gif"}


def judge(module: str) -> ModuleType:
    """An outside reader: skipped where it isn't installed, but required in CI (setup installs it)."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} not installed (scripts/setup.sh installs it)")


def packet(body: str, prefix: str = "TC260") -> bytes:
    """An XMP packet as another producer writes it by hand (no toolkit)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:{prefix}="{NS_TC260}">{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def attr_packet(value: str) -> bytes:
    escaped = value.replace("&", "&amp;").replace('"', "&quot;")
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:TC260="{NS_TC260}" TC260:AIGC="{escaped}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()


def user_comment(text: str, charset: str = "ascii", byte_order: str = "<") -> bytes:
    if charset == "unicode":
        body = b"UNICODE\x00" + text.encode("utf-16-le" if byte_order == "<" else "utf-16-be")
    else:
        body = b"ASCII\x00\x00\x00" + text.encode()
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: body}})
    if byte_order == ">":  # piexif writes big-endian ("MM"); that is the case we want
        assert exif[6:8] == b"MM"
    return exif


def jpeg_with_exif(exif: bytes) -> bytes:
    return encode(make_image(), "JPEG", exif=exif)


def png_text(kind: str, keyword: str, value: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    if kind == "tEXt":
        info.add_text(keyword, value)
    elif kind == "zTXt":
        info.add_text(keyword, value, zip=True)
    else:
        info.add_itxt(keyword, value)
    return encode(make_image(), "PNG", pnginfo=info)


def wav_with_chunks(*records: str) -> bytes:
    data = sine_wav()
    for record in records:
        body = record.encode()
        data += b"AIGC" + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) % 2)
    return data[:4] + struct.pack("<I", len(data) - 8) + data[8:]


def _mutagen_mp3(record: str) -> bytes:
    from mutagen.id3 import ID3, TXXX

    tags = ID3()
    tags.add(TXXX(encoding=3, desc="AIGC", text=[record]))
    buf = io.BytesIO()
    tags.save(buf)
    return buf.getvalue() + b"\xff\xfb\x90\x64" + b"\x00" * 413  # one silent MPEG-1 L3 frame


def _pypdf_pdf(record: str) -> bytes:
    from media import make_pdf
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf())))
    writer.add_metadata({"/AIGC": record})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


CUSTOM_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
    'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
    '<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="2" name="AIGC">'
    "<vt:lpwstr>{}</vt:lpwstr></property></Properties>"
)


def _webp(xmp: bytes) -> bytes:
    fmt = detect(SAMPLES["webp-lossy"])
    return fmt.write_xmp(fmt.stage(SAMPLES["webp-lossy"]), xmp)


#: Third-party-style files: name -> (bytes, the Label they carry). Built the way others write.
CORPUS: dict[str, Callable[[], bytes]] = {
    "jpeg-xmp-flat-element": lambda: jpeg.write_xmp(
        SAMPLES["jpeg"], packet(f"<TC260:AIGC>{FLAT}</TC260:AIGC>")
    ),
    "jpeg-xmp-flat-attribute": lambda: jpeg.write_xmp(SAMPLES["jpeg"], attr_packet(FLAT)),
    "png-xmp-lowercase-prefix": lambda: detect(SAMPLES["png"]).write_xmp(
        SAMPLES["png"], packet(f"<tc260:AIGC>{FLAT}</tc260:AIGC>", prefix="tc260")
    ),
    "webp-xmp-wrapped": lambda: detect(SAMPLES["webp-lossy"]).write_xmp(
        detect(SAMPLES["webp-lossy"]).stage(SAMPLES["webp-lossy"]),
        packet(f"<TC260:AIGC>{WRAPPED}</TC260:AIGC>"),
    ),
    "jpeg-exif-ascii-wrapped": lambda: jpeg_with_exif(user_comment(WRAPPED)),
    "jpeg-exif-ascii-flat": lambda: jpeg_with_exif(user_comment(FLAT)),
    "jpeg-exif-unicode-big-endian": lambda: jpeg_with_exif(user_comment(WRAPPED, "unicode", ">")),
    "png-text-wrapped": lambda: png_text("tEXt", "AIGC", WRAPPED),
    "png-ztxt-flat": lambda: png_text("zTXt", "AIGC", FLAT),
    "png-itxt-flat": lambda: png_text("iTXt", "AIGC", FLAT),
    "wav-chunk-flat": lambda: wav_with_chunks(FLAT),
    "mp3-txxx-flat": lambda: _mutagen_mp3(FLAT),
    "pdf-info-flat": lambda: _pypdf_pdf(FLAT),
    "docx-custom-flat": lambda: make_docx(custom=CUSTOM_XML.format(FLAT)),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_third_party_files_read_as_labelled(name: str, tmp_path: Path) -> None:
    data = CORPUS[name]()
    expected = AigcRecord.from_json(WRAPPED if "wrapped" in name or "unicode" in name else FLAT)
    verdict = verify(data)
    assert verdict.status is Status.UNSIGNED, verdict.problems
    assert verdict.record == expected
    assert verdict.notice == expected.Label.notice
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    shown = subprocess.run(
        [sys.executable, "-m", "labeler.cli", "inspect", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["verdict"]["record"] == expected.as_dict()


def test_exif_user_comment_unicode_in_the_tiff_byte_order() -> None:
    little = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8)
    # IFD0: one entry, the Exif IFD pointer -> IFD at 26; Exif IFD: UserComment -> value at 44
    text = WRAPPED.encode("utf-16-le")
    value = b"UNICODE\x00" + text
    little += struct.pack("<HHHII", 1, 0x8769, 4, 1, 26) + struct.pack("<I", 0)
    little += struct.pack("<HHHII", 1, 0x9286, 7, len(value), 44) + struct.pack("<I", 0)
    little += value
    assert read_user_comment_record(little) == WRAPPED


@pytest.mark.parametrize(
    "make",
    [
        lambda a, b: jpeg.write_xmp(jpeg_with_exif(user_comment(b)), packet(f"<TC260:AIGC>{a}</TC260:AIGC>")),
        lambda a, b: detect(SAMPLES["png"]).write_xmp(
            png_text("tEXt", "AIGC", b), packet(f"<TC260:AIGC>{a}</TC260:AIGC>")
        ),
        lambda a, b: jpeg.write_xmp(
            SAMPLES["jpeg"],
            packet(
                f"<TC260:AIGC>{a}</TC260:AIGC></rdf:Description><rdf:Description rdf:about=''>"
                f"<TC260:AIGC xmlns:TC260='{NS_TC260}'>{b}</TC260:AIGC>"
            ),
        ),
        lambda a, b: wav_with_chunks(a, b),
        lambda a, b: encode(make_image(), "PNG", pnginfo=_two_texts(a, b)),
    ],
    ids=["xmp+exif", "xmp+png-text", "two-xmp-descriptions", "two-wav-chunks", "two-png-texts"],
)
def test_two_different_records_are_a_malformed_label(make: Callable[[str, str], bytes]) -> None:
    other = FLAT.replace("7d9f2c1e", "0000ffff")
    verdict = verify(make(FLAT, other))
    assert verdict.status is Status.MALFORMED_LABEL
    assert "one label per file" in verdict.problems[-1]
    same = verify(make(FLAT, AigcRecord.from_json(FLAT).to_json(wrapped=True)))  # one record, twice
    assert same.status is Status.UNSIGNED and same.record == AigcRecord.from_json(FLAT)


def _two_texts(a: str, b: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", a)
    info.add_text("AIGC", b, zip=True)
    return info


@pytest.mark.parametrize("name", ["jpeg-exif-ascii-wrapped", "png-text-wrapped", "png-ztxt-flat"])
def test_relabel_and_propagate_leave_one_flat_record(
    name: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    data = CORPUS[name]()
    relabelled = label_bytes(data, policy, on_existing="replace")
    found = find_label(relabelled)
    assert found.source == "xmp" and found.format.read_fallback(relabelled) is None
    assert list(json.loads(found.record or "")) == list(FIELD_ORDER)
    assert verify(relabelled, trust).status is Status.VERIFIED
    propagated = propagate_bytes(data, policy)
    found = find_label(propagated)
    assert found.format.read_fallback(propagated) is None
    record = json.loads(found.record or "")
    assert list(record) == list(FIELD_ORDER) and record["ContentPropagator"] == policy.producer
    verdict = verify(propagated, trust)
    assert verdict.propagation is not None and verdict.propagation["status"] == "verified"


def test_files_labelled_before_the_flat_record_keep_verifying(
    policy: LabelPolicy, trust: TrustStore, media: dict[str, bytes]
) -> None:
    """Version 0.1 wrote ``{"AIGC":{...}}``; the digest leaves the slot out, so they still verify."""
    for name in ("jpeg", "png", "webp-lossy", "gif"):
        labelled = label_bytes(SAMPLES[name], policy)
        fmt = detect(labelled)
        xmp = read_label(fmt.read_xmp(labelled) or b"")
        assert xmp is not None
        old = AigcRecord.from_json(xmp.aigc).to_json(wrapped=True)
        legacy = fmt.write_xmp(labelled, write_label(XmpLabel(**{**xmp.__dict__, "aigc": old})))
        assert b'{"AIGC":{' in legacy
        assert verify(legacy, trust).status is Status.VERIFIED, name
    labelled = label_bytes(media["wav"], policy)
    fmt = detect(labelled)
    legacy = fmt.write_record(
        labelled, AigcRecord.from_json(fmt.read_fallback(labelled) or "").to_json(wrapped=True)
    )  # type: ignore[misc]
    assert verify(legacy, trust).status is Status.VERIFIED


# -- outside judges ----------------------------------------------------------------------------


def _labelled_files(tmp_path: Path, policy: LabelPolicy, media: dict[str, bytes]) -> dict[str, Path]:
    out = {}
    for name, ext in IMAGE_EXT.items():
        out[name] = tmp_path / f"{name}{ext}"
        out[name].write_bytes(label_bytes(SAMPLES[name], policy))
    for name, ext in {
        "wav": ".wav",
        "mp3": ".mp3",
        "flac": ".flac",
        "ogg-vorbis": ".ogg",
        "mp4": ".mp4",
    }.items():
        if name in media:
            out[name] = tmp_path / f"{name}{ext}"
            out[name].write_bytes(label_bytes(media[name], policy))
    return out


def _assert_flat(value: object, policy: LabelPolicy) -> None:
    assert isinstance(value, dict), value
    assert list(value) == list(FIELD_ORDER), value  # seven fields at the top level, Annex E order
    assert all(isinstance(v, str) for v in value.values())
    assert value["Label"] == "1" and value["ContentProducer"] == policy.producer


@pytest.mark.interop
def test_exempi_reads_seven_fields_at_the_top_level(
    tmp_path: Path, policy: LabelPolicy, media: dict[str, bytes]
) -> None:
    """python-xmp-toolkit over Debian's libexempi8: the TC260 guides' reference reader."""
    libxmp = judge("libxmp")
    for name in IMAGE_EXT:
        path = _labelled_files(tmp_path, policy, media)[name]
        files = libxmp.XMPFiles(file_path=str(path))
        try:
            xmp = files.get_xmp()
            assert xmp is not None, name
            _assert_flat(json.loads(xmp.get_property(NS_TC260, "AIGC")), policy)
        finally:
            files.close_file()


@pytest.mark.interop
def test_remove_ai_watermarks_reads_the_fields(
    tmp_path: Path, policy: LabelPolicy, media: dict[str, bytes]
) -> None:
    """remove-ai-watermarks' ``metadata.aigc_label``: images, MP4 and audio tags."""
    metadata = judge("remove_ai_watermarks.metadata")
    files = _labelled_files(tmp_path, policy, media)
    assert {"jpeg", "png", "webp-lossy", "gif", "wav"} <= set(files)
    for name, path in files.items():
        fields = metadata.aigc_label(path)
        assert fields is not None, name
        assert "AIGC" not in fields, (name, fields)  # the old nested form read as one key "AIGC"
        assert fields["Label"] == "1" and fields["ContentProducer"] == policy.producer, name
        assert fields["ProduceID"] == verify(path.read_bytes()).record.ProduceID  # type: ignore[union-attr]


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed (CI installs it)")
def test_exiftool_writes_flat_with_our_config_and_we_read_it(tmp_path: Path) -> None:
    """exiftool with the TC260 config (labeler.xmp.EXIFTOOL_CONFIG) writes, flat or wrapped, what we read."""
    config = tmp_path / "tc260.config"
    config.write_text(EXIFTOOL_CONFIG)
    for (name, ext), record in itertools.product(IMAGE_EXT.items(), (FLAT, WRAPPED)):
        path = tmp_path / f"x{ext}"
        path.write_bytes(SAMPLES[name])
        subprocess.run(
            [
                "exiftool",
                "-config",
                str(config),
                "-q",
                "-overwrite_original",
                f"-XMP-TC260:AIGC={record}",
                str(path),
            ],
            check=True,
        )
        verdict = verify(path.read_bytes())
        assert verdict.status is Status.UNSIGNED and verdict.record == AigcRecord.from_json(record), name


@needs_ffmpeg
def test_ffmpeg_written_mp4_key_reads(tmp_path: Path, media: dict[str, bytes]) -> None:
    """An MP4 whose AIGC key another producer wrote with ffmpeg (-movflags use_metadata_tags)."""
    src = tmp_path / "in.mp4"
    src.write_bytes(media["mp4"])
    out = tmp_path / "out.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-movflags", "use_metadata_tags",
         "-metadata", f"AIGC={FLAT}", str(out)],
        check=True,
    )  # fmt: skip
    verdict = verify(out.read_bytes())
    assert verdict.status is Status.UNSIGNED and verdict.record == AigcRecord.from_json(FLAT)
