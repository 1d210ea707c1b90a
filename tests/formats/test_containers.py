"""Behaviour every container format must share: round trip, no re-encode, digest invariance."""

from __future__ import annotations

import contextlib
import struct

import pytest
from conftest import SAMPLES, pixels
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.errors import LabelerError, MalformedFileError, UnsupportedFormatError
from labeler.formats import detect, formats, jpeg, png, webp

PACKET_A = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>A</x:xmpmeta>"
PACKET_B = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>B is longer, odd length!</x:xmpmeta>"


def test_registry_has_the_image_formats() -> None:
    assert {f.name for f in formats()} >= {"gif", "jpeg", "png", "webp"}


def test_detect_rejects_unknown_bytes() -> None:
    with pytest.raises(
        UnsupportedFormatError, match="supported: docx, flac, gif, jpeg, mp3, mp4, ogg, pdf, png, wav, webp"
    ):
        detect(b"BM6\x00\x00\x00....")


def test_write_then_read_returns_the_packet(sample: tuple[str, bytes]) -> None:
    _name, data = sample
    fmt = detect(data)
    out = fmt.write_xmp(data, PACKET_B)
    assert fmt.read_xmp(out) == PACKET_B
    assert fmt.read_xmp(fmt.write_xmp(out, PACKET_A)) == PACKET_A


def test_pixels_are_byte_identical(sample: tuple[str, bytes]) -> None:
    _, data = sample
    assert pixels(detect(data).write_xmp(data, PACKET_B)) == pixels(data)


def test_replacing_never_duplicates_the_slot(sample: tuple[str, bytes]) -> None:
    _, data = sample
    fmt = detect(data)
    once = fmt.write_xmp(data, PACKET_A)
    twice = fmt.write_xmp(fmt.write_xmp(once, PACKET_B), PACKET_A)
    assert twice == once
    assert twice.count(PACKET_A) == 1


def test_digest_ignores_the_slot_only(sample: tuple[str, bytes]) -> None:
    _, data = sample
    fmt = detect(data)
    a, b = fmt.write_xmp(data, PACKET_A), fmt.write_xmp(data, PACKET_B)
    assert fmt.content_digest(a) == fmt.content_digest(b)
    assert fmt.content_digest(a + b"x") != fmt.content_digest(a)  # appended trailer counts


def test_digest_of_jpeg_and_png_equals_plain_hash_when_no_prior_xmp() -> None:
    import hashlib

    for name in ("jpeg", "png"):
        data = SAMPLES[name]
        labeled = detect(data).write_xmp(data, PACKET_A)
        assert detect(data).content_digest(labeled) == hashlib.sha256(data).digest()


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_digest_invariance_property(name: str, a: bytes, b: bytes) -> None:
    data = SAMPLES[name]
    fmt = detect(data)
    assert fmt.content_digest(fmt.write_xmp(data, a)) == fmt.content_digest(fmt.write_xmp(data, b))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), packet=st.binary(max_size=300))
def test_staged_digest_is_final_property(name: str, packet: bytes) -> None:
    fmt = detect(SAMPLES[name])
    staged = fmt.stage(SAMPLES[name])
    assert fmt.content_digest(fmt.write_xmp(staged, packet)) == fmt.content_digest(staged)
    assert fmt.stage(staged) == staged


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_any_byte_change_outside_the_slot_changes_the_digest(name: str, data: st.DataObject) -> None:
    labeled = detect(SAMPLES[name]).write_xmp(SAMPLES[name], PACKET_A)
    fmt = detect(labeled)
    slot = labeled.find(PACKET_A)
    pos = data.draw(
        st.integers(0, len(labeled) - 1).filter(lambda p: not slot - 64 <= p < slot + len(PACKET_A) + 4)
    )
    tampered = bytearray(labeled)
    tampered[pos] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(MalformedFileError):  # a broken structure is also a detection
        assert fmt.content_digest(bytes(tampered)) != fmt.content_digest(labeled)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), cut=st.integers(0, 10_000), flip=st.integers(0, 10_000))
def test_truncated_or_corrupt_input_raises_only_typed_errors(name: str, cut: int, flip: int) -> None:
    data = bytearray(SAMPLES[name][: max(1, cut % len(SAMPLES[name]))])
    data[flip % len(data)] ^= 0xA5
    fmt = detect(SAMPLES[name])
    for op in (fmt.read_xmp, fmt.content_digest, fmt.read_fallback, lambda d: fmt.write_xmp(d, PACKET_A)):
        with contextlib.suppress(LabelerError):
            op(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_typed_errors(blob: bytes) -> None:
    for fmt in formats():
        for prefix in (
            b"",
            b"\xff\xd8\xff",
            png.SIGNATURE,
            b"RIFF\x10\x00\x00\x00WEBP",
            b"GIF89a\x01\x00\x01\x00",
        ):
            try:
                fmt.read_xmp(prefix + blob)
                fmt.content_digest(prefix + blob)
                fmt.write_xmp(prefix + blob, PACKET_A)
            except LabelerError:
                pass


# -- per-format specifics -----------------------------------------------------------------------


def test_jpeg_keeps_exif_icc_and_other_xmp_properties_in_order() -> None:
    data = SAMPLES["jpeg-exif-icc-xmp"]
    out = jpeg.write_xmp(data, PACKET_A)
    before = [(s.marker, s.payload(data)) for s in jpeg.segments(data) if not s.is_xmp(data)]
    after = [(s.marker, s.payload(out)) for s in jpeg.segments(out) if not s.is_xmp(out)]
    assert before == after
    assert [s.is_xmp(out) for s in jpeg.segments(out)].count(True) == 1


def test_jpeg_xmp_is_inserted_after_jfif_and_exif() -> None:
    data = SAMPLES["jpeg"]
    segs = jpeg.segments(jpeg.write_xmp(data, PACKET_A))
    assert segs[0].marker == jpeg.APP0
    assert segs[1].is_xmp(jpeg.write_xmp(data, PACKET_A))


def test_jpeg_oversized_packet_is_a_typed_error() -> None:
    from labeler.errors import LabelTooLargeError

    with pytest.raises(LabelTooLargeError):
        jpeg.write_xmp(SAMPLES["jpeg"], b"x" * 70_000)


def test_jpeg_segment_beyond_file_is_malformed() -> None:
    data = b"\xff\xd8\xff\xe1" + struct.pack(">H", 60000) + b"Exif\x00\x00"
    with pytest.raises(MalformedFileError, match="beyond the file"):
        jpeg.segments(data)


def test_png_chunk_crcs_are_correct() -> None:
    import zlib

    out = png.write_xmp(SAMPLES["png-rgba"], PACKET_B)
    for chunk in png.chunks(out):
        body = out[chunk.start + 4 : chunk.end - 4]
        assert struct.unpack(">I", out[chunk.end - 4 : chunk.end])[0] == zlib.crc32(body)


def test_png_xmp_goes_before_first_idat() -> None:
    out = png.write_xmp(SAMPLES["png"], PACKET_A)
    types = [c.type for c in png.chunks(out)]
    assert types.index(b"iTXt") < types.index(b"IDAT")


def test_png_reads_tEXt_AIGC_fallback() -> None:
    from conftest import encode, make_image
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", '{"Label":"1","ContentProducer":"X","ProduceID":"1"}')
    data = encode(make_image(), "PNG", pnginfo=info)
    assert png.read_fallback(data) == '{"Label":"1","ContentProducer":"X","ProduceID":"1"}'


def test_png_compressed_text_bomb_is_bounded() -> None:
    import zlib

    bomb = zlib.compress(b"A" * (png.MAX_TEXT + 10))
    chunk = png._make_chunk(b"zTXt", b"AIGC\x00\x00" + bomb)
    data = SAMPLES["png"]
    at = png.chunks(data)[1].start
    assert png.read_fallback(data[:at] + chunk + data[at:]) is None


@pytest.mark.parametrize("name", ["webp-lossy", "webp-lossless-alpha"])
def test_simple_webp_becomes_extended_with_right_canvas_and_flags(name: str) -> None:
    import io

    from PIL import Image

    data = SAMPLES[name]
    out = webp.write_xmp(data, PACKET_B)
    chunks, riff_end = webp.walk(out)
    assert riff_end == len(out)
    assert [c.fourcc for c in chunks] == [b"VP8X", webp.walk(data)[0][0].fourcc, b"XMP "]
    vp8x = chunks[0].payload(out)
    flags = vp8x[0]
    assert flags & webp.XMP_FLAG
    assert bool(flags & webp.ALPHA_FLAG) == (name == "webp-lossless-alpha")
    width = int.from_bytes(vp8x[4:7], "little") + 1
    height = int.from_bytes(vp8x[7:10], "little") + 1
    assert (width, height) == Image.open(io.BytesIO(data)).size
    assert Image.open(io.BytesIO(out)).info.get("xmp") == PACKET_B


def test_webp_extended_keeps_icc_exif_and_sets_only_the_xmp_flag() -> None:
    data = SAMPLES["webp-extended-icc-exif"]
    out = webp.write_xmp(data, PACKET_A)
    before, after = webp.walk(data)[0], webp.walk(out)[0]
    assert after[0].payload(out)[0] == before[0].payload(data)[0] | webp.XMP_FLAG
    assert [c.fourcc for c in after] == [c.fourcc for c in before] + [b"XMP "]


def test_webp_riff_size_beyond_file_is_malformed() -> None:
    data = bytearray(SAMPLES["webp-lossy"])
    data[4:8] = struct.pack("<I", len(data) + 100)
    with pytest.raises(MalformedFileError, match="RIFF size"):
        webp.walk(bytes(data))
