"""``verified`` means every byte outside our own label slot is bound by the signature (issue 13).

Each attack takes a file labelled by ``label_bytes`` and adds bytes where a loose digest would not
look: a second (foreign) XMP packet, megabytes of segments / chunks / boxes / frames / revisions,
a junk C2PA-typed container, a moved container boundary. None of them may read ``VERIFIED``.
The digest of a normally labelled file (one slot, no C2PA) is what it always was.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Callable

import pytest
from conftest import EXISTING_XMP, SAMPLES

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify
from labeler.formats import detect, docx, gif, jpeg, mp4, pdf, png, riff, webp

MB = 1 << 20
C2PA_UUID = b"c2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def jumbf_claiming_c2pa(junk: bytes) -> bytes:
    """A JUMBF superbox whose description says "C2PA manifest store", followed by junk."""
    jumd = _box(b"jumd", C2PA_UUID + b"\x03c2pa\x00")
    return _box(b"jumb", jumd + junk)


# -- JPEG ---------------------------------------------------------------------------------------


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", 2 + len(payload)) + payload


def jpeg_insert(data: bytes, *segments: bytes) -> bytes:
    """``segments`` added just before the first scan (after our XMP segment)."""
    at = jpeg.segments(data)[-1].end
    return data[:at] + b"".join(segments) + data[at:]


def jpeg_xmp(packet: bytes) -> bytes:
    return jpeg_segment(jpeg.APP1, jpeg.XMP_HEADER + packet)


def jpeg_app11(box: bytes, instance: int = 0x0999) -> bytes:
    return jpeg_segment(jpeg.APP11, b"JP" + struct.pack(">HI", instance, 1) + box)


# -- PNG, WebP, GIF, WAV ------------------------------------------------------------------------


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_insert(data: bytes, *chunks: bytes) -> bytes:
    at = png.chunks(data)[-1].start  # before IEND
    return data[:at] + b"".join(chunks) + data[at:]


def png_xmp(packet: bytes) -> bytes:
    return png_chunk(b"iTXt", png.XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet)


def riff_append(data: bytes, *chunks: bytes) -> bytes:
    """``chunks`` added at the end of the RIFF payload (sizes fixed), before any trailer."""
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    extra = b"".join(chunks)
    size = (riff_end - 8 + len(extra)).to_bytes(4, "little")
    return data[:4] + size + data[8:riff_end] + extra + data[riff_end:]


def absorb_trailer(data: bytes) -> bytes:
    """The RIFF size grown over the bytes after it: the same bytes, now read as chunks."""
    return data[:4] + (len(data) - 8).to_bytes(4, "little") + data[8:]


def gif_insert(data: bytes, block: bytes) -> bytes:
    at = gif.blocks(data)[1][-1].start  # before the trailer
    return data[:at] + block + data[at:]


def gif_xmp(packet: bytes) -> bytes:
    return b"\x21\xff\x0b" + gif.XMP_APP_ID + packet + gif.MAGIC_TRAILER


def gif_comment(text: bytes) -> bytes:
    blocks = b"".join(bytes([len(text[i : i + 255])]) + text[i : i + 255] for i in range(0, len(text), 255))
    return b"\x21\xfe" + blocks + b"\x00"


# -- audio --------------------------------------------------------------------------------------


def _syncsafe(n: int) -> bytes:
    return bytes((n >> s) & 0x7F for s in (21, 14, 7, 0))


def id3_insert(data: bytes, raw: bytes) -> bytes:
    """``raw`` (frames or padding) added at the end of the ID3v2 tag, its size grown to match."""
    assert data[:3] == b"ID3" and not data[5] & 0x50  # no extended header, no footer
    size = 0
    for b in data[6:10]:
        size = (size << 7) | b
    end = 10 + size
    return data[:6] + _syncsafe(size + len(raw)) + data[10:end] + raw + data[end:]


def id3_frame(fid: bytes, body: bytes, version: int = 4) -> bytes:
    size = _syncsafe(len(body)) if version == 4 else struct.pack(">I", len(body))
    return fid + size + b"\x00\x00" + body


def id3_frames_then(data: bytes, frames: bytes) -> bytes:
    """``frames`` placed right after the header (before padding), the tag size grown to match."""
    size = 0
    for b in data[6:10]:
        size = (size << 7) | b
    return data[:6] + _syncsafe(size + len(frames)) + data[10:10] + frames + data[10:]


def flac_insert_block(data: bytes, kind: int, body: bytes) -> bytes:
    """A metadata block of ``kind`` inserted right after STREAMINFO (never the last block)."""
    at = 4 + 4 + int.from_bytes(data[5:8], "big")
    return data[:at] + bytes([kind]) + len(body).to_bytes(3, "big") + body + data[at:]


def mutagen_edit(data: bytes, opener: str, change: Callable[[object], None]) -> bytes:
    import importlib

    module, _, name = opener.rpartition(".")
    buf = io.BytesIO(data)
    obj = getattr(importlib.import_module(module), name)(buf)
    change(obj)
    buf.seek(0)
    obj.save(buf)
    return buf.getvalue()


def add_vorbis_comment(opener: str, key: str, value: str) -> Callable[[bytes], bytes]:
    def attack(data: bytes) -> bytes:
        def change(audio: object) -> None:
            audio.tags[key] = [value]  # type: ignore[attr-defined]

        return mutagen_edit(data, opener, change)

    return attack


def set_vendor(opener: str, vendor: str) -> Callable[[bytes], bytes]:
    def attack(data: bytes) -> bytes:
        def change(audio: object) -> None:
            audio.tags.vendor = vendor  # type: ignore[attr-defined]

        return mutagen_edit(data, opener, change)

    return attack


def ogg_move_granule(data: bytes) -> bytes:
    """One audio page's granule position changed (CRC recomputed): the timing, not the samples."""
    from mutagen.ogg import OggPage

    buf, pages = io.BytesIO(data), []
    while buf.tell() < len(data):
        pages.append(OggPage(buf))
    target = pages[-1]  # an audio page, past the header packets
    assert target.position > 0 and not target.continued
    target.position += 4800
    return b"".join(p.write() for p in pages)


# -- MP4 ----------------------------------------------------------------------------------------


def mp4_grow(data: bytes, at: int, extra: bytes, parents: list[mp4.Box]) -> bytes:
    """``extra`` inserted at ``at`` with every parent box's 32-bit size grown (moov is last)."""
    out = bytearray(data[:at] + extra + data[at:])
    for box in parents:
        (size,) = struct.unpack_from(">I", out, box.start)
        assert size > 1
        struct.pack_into(">I", out, box.start, size + len(extra))
    return bytes(out)


def mp4_meta(data: bytes) -> tuple[mp4.Box, mp4.Box, mp4.Box, list[mp4.Box]]:
    found = mp4._find(data)
    assert found is not None
    moov, meta, udta = found
    assert udta is not None
    top = mp4.boxes(data, 0, len(data), top=True)
    assert top[-1].type == b"moov"  # appended boxes move no sample
    return moov, udta, meta, mp4._meta_children(data, meta)[1]


def mp4_orphan_item(data: bytes) -> bytes:
    moov, udta, meta, kids = mp4_meta(data)
    ilst = next(k for k in kids if k.type == b"ilst")
    item = mp4.box((99).to_bytes(4, "big"), mp4.box(b"data", b"\x00\x00\x00\x01\x00\x00\x00\x00" + b"J" * MB))
    return mp4_grow(data, ilst.end, item, [moov, udta, meta, ilst])


def mp4_second_ilst(data: bytes) -> bytes:
    moov, udta, meta, kids = mp4_meta(data)
    ilst = next(k for k in kids if k.type == b"ilst")
    item = mp4.box((99).to_bytes(4, "big"), mp4.box(b"data", b"\x00\x00\x00\x01\x00\x00\x00\x00" + b"J" * MB))
    return mp4_grow(data, ilst.end, mp4.box(b"ilst", item), [moov, udta, meta])


def mp4_top_box(kind: bytes, payload: bytes) -> Callable[[bytes], bytes]:
    return lambda data: data + mp4.box(kind, payload)


# -- PDF ----------------------------------------------------------------------------------------


def pdf_comment_in_label_revision(data: bytes) -> bytes:
    at = data.rindex(b"startxref")
    return data[:at] + b"%" + b"J" * MB + b"\n" + data[at:]


def pdf_junk_in_xref_dict(data: bytes) -> bytes:
    at = data.rindex(b"/Type /XRef")
    return data[:at] + b"/Junk (" + b"J" * 60000 + b") " + data[at:]


def pdf_second_label_revision(data: bytes) -> bytes:
    """Another Info-only revision on top, carrying the same record and a megabyte of junk."""
    import pypdf

    record = pdf.read_record(data)
    writer = pypdf.PdfWriter(io.BytesIO(data), incremental=True)
    writer.add_metadata({"/AIGC": record, "/Junk": "J" * MB})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- DOCX ---------------------------------------------------------------------------------------


def docx_member_edit(name: str, change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def attack(data: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            old = z.read(name)
        return docx.rewrite_members(data, {name: change(old)})

    return attack


def docx_custom_property(raw: bytes) -> bytes:
    junk = f'<property fmtid="{docx.FMTID}" pid="99" name="Junk"><vt:lpwstr>{"J" * MB}</vt:lpwstr></property>'
    at = raw.index(b"<property")
    return raw[:at] + junk.encode() + raw[at:]


def docx_archive_comment(data: bytes) -> bytes:
    assert data[-22:-18] == b"PK\x05\x06" and data[-2:] == b"\x00\x00"
    comment = b"J" * 60000
    return data[:-2] + struct.pack("<H", len(comment)) + comment


def docx_junk_before_directory(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        start = z.start_dir
    junk = b"J" * MB
    out = bytearray(data[:start] + junk + data[start:])
    (offset,) = struct.unpack_from("<I", out, len(out) - 6)
    struct.pack_into("<I", out, len(out) - 6, offset + len(junk))
    return bytes(out)


def docx_member_extra(data: bytes) -> bytes:
    """A 60 KB extra field on word/document.xml (local header and central directory)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if info.filename == "word/document.xml":
                info.extra = struct.pack("<HH", 0xCAFE, 60000) + b"J" * 60000
            zout.writestr(info, zin.read(info))
    return out.getvalue()


# -- the matrix ---------------------------------------------------------------------------------

FOREIGN = EXISTING_XMP
BIG_PACKET = EXISTING_XMP.replace(b"Jane Doe", b"J" * 60000)
JUNK = b"J" * MB

#: (sample, attack) -> what the attacker does to the labelled file. All read VERIFIED before #13
#: unless marked "bound already" (kept so they stay bound).
ATTACKS: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    ("jpeg", "second XMP segment (foreign packet)"): lambda d: jpeg_insert(d, jpeg_xmp(FOREIGN)),
    ("jpeg-exif-icc-xmp", "second XMP segment (foreign packet)"): lambda d: jpeg_insert(d, jpeg_xmp(FOREIGN)),
    ("jpeg", "a megabyte in 18 more XMP segments"): lambda d: jpeg_insert(d, *[jpeg_xmp(BIG_PACKET)] * 18),
    ("jpeg", "a megabyte of APP2-APP15 (bound already)"): lambda d: jpeg_insert(
        d, *[jpeg_segment(m, b"J" * 65000) for m in range(0xE2, 0xF0) for _ in range(2)]
    ),
    ("jpeg", "junk APP11 JUMBF claiming C2PA"): lambda d: jpeg_insert(
        d, jpeg_app11(jumbf_claiming_c2pa(b"J" * 60000))
    ),
    ("jpeg", "junk APP11 JUMBF not claiming C2PA"): lambda d: jpeg_insert(d, jpeg_app11(b"J" * 60000)),
    ("png", "second XMP iTXt (foreign packet)"): lambda d: png_insert(d, png_xmp(FOREIGN)),
    ("png-xmp", "second XMP iTXt (foreign packet)"): lambda d: png_insert(d, png_xmp(FOREIGN)),
    ("png", "a megabyte in a second XMP iTXt"): lambda d: png_insert(d, png_xmp(FOREIGN + b" " * MB)),
    ("png", "a megabyte of ancillary chunks (bound already)"): lambda d: png_insert(
        d, png_chunk(b"juNK", JUNK)
    ),
    ("png", "junk caBX chunk"): lambda d: png_insert(d, png_chunk(b"caBX", jumbf_claiming_c2pa(JUNK))),
    ("png", "junk caBX chunk, not even JUMBF"): lambda d: png_insert(d, png_chunk(b"caBX", JUNK)),
    ("webp-lossy", "second XMP chunk (foreign packet)"): lambda d: riff_append(
        d, riff.chunk(b"XMP ", FOREIGN)
    ),
    ("webp-xmp", "second XMP chunk (foreign packet)"): lambda d: riff_append(d, riff.chunk(b"XMP ", FOREIGN)),
    ("webp-lossy", "a megabyte in a second XMP chunk"): lambda d: riff_append(d, riff.chunk(b"XMP ", JUNK)),
    ("webp-lossy", "a megabyte in an unknown chunk (bound already)"): lambda d: riff_append(
        d, riff.chunk(b"JUNK", JUNK)
    ),
    ("webp-lossy", "junk C2PA chunk"): lambda d: riff_append(
        d, riff.chunk(b"C2PA", jumbf_claiming_c2pa(JUNK))
    ),
    ("gif", "second XMP extension (foreign packet)"): lambda d: gif_insert(d, gif_xmp(FOREIGN)),
    ("gif-animated", "a megabyte in a second XMP extension"): lambda d: gif_insert(d, gif_xmp(JUNK)),
    ("gif", "a megabyte of comment extensions (bound already)"): lambda d: gif_insert(d, gif_comment(JUNK)),
}

MEDIA_ATTACKS: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    ("wav", "second AIGC chunk, same record, a megabyte of NULs"): lambda d: riff_append(
        d,
        riff.chunk(b"AIGC", detect(d).read_fallback(d).encode() + b"\x00" * MB),  # type: ignore[union-attr]
    ),
    ("wav", "a megabyte in a LIST chunk (bound already)"): lambda d: riff_append(
        d, riff.chunk(b"LIST", JUNK)
    ),
    ("mp3", "a megabyte APIC frame in the ID3v2 tag"): lambda d: id3_frames_then(
        d, id3_frame(b"APIC", b"\x00image/png\x00\x03\x00" + JUNK)
    ),
    ("mp3", "second TXXX:AIGC frame, same record"): lambda d: id3_frames_then(
        d,
        id3_frame(b"TXXX", b"\x00AIGC\x00" + detect(d).read_fallback(d).encode()),  # type: ignore[union-attr]
    ),
    ("mp3", "a megabyte after the ID3v2 padding"): lambda d: id3_insert(d, b"\x00" * 10 + JUNK),
    ("mp3", "TSSE frame edited"): lambda d: d.replace(b"Lavf", b"Evil", 1),
    ("mp3-id3v1", "ID3v1 title edited"): lambda d: d[:-125] + b"Evil" + d[-121:],
    ("mp3", "a megabyte between the audio frames (bound already)"): lambda d: (
        d[: len(d) // 2] + JUNK + d[len(d) // 2 :]
    ),
    ("flac", "a megabyte Vorbis comment"): add_vorbis_comment("mutagen.flac.FLAC", "junk", "J" * MB),
    ("flac", "a megabyte vendor string"): set_vendor("mutagen.flac.FLAC", "J" * MB),
    ("flac", "a megabyte in a PADDING block"): lambda d: flac_insert_block(d, 1, JUNK),
    ("flac", "a megabyte APPLICATION block (bound already)"): lambda d: flac_insert_block(
        d, 2, b"JUNK" + JUNK
    ),
    ("ogg-vorbis", "a megabyte Vorbis comment"): add_vorbis_comment(
        "mutagen.oggvorbis.OggVorbis", "junk", "J" * MB
    ),
    ("ogg-vorbis", "a megabyte vendor string"): set_vendor("mutagen.oggvorbis.OggVorbis", "J" * MB),
    ("ogg-opus", "a megabyte Opus comment"): add_vorbis_comment("mutagen.oggopus.OggOpus", "junk", "J" * MB),
    ("ogg-vorbis", "a granule position moved"): ogg_move_granule,
    ("ogg-opus", "a granule position moved"): ogg_move_granule,
    ("mp4", "a megabyte ilst item naming no key"): mp4_orphan_item,
    ("mp4", "a megabyte in a second ilst box"): mp4_second_ilst,
    ("mp4", "a megabyte top-level free box (bound already)"): mp4_top_box(b"free", JUNK),
    ("mp4", "a junk C2PA uuid box (bound already)"): mp4_top_box(
        b"uuid", bytes.fromhex("d8fec3d61b0e483c92975828877ec481") + JUNK
    ),
    ("pdf", "a megabyte comment in the label revision"): pdf_comment_in_label_revision,
    ("pdf", "a 60 KB key in the label revision's xref dictionary"): pdf_junk_in_xref_dict,
    ("pdf", "second label-only revision, a megabyte Info key"): pdf_second_label_revision,
    ("docx", "a megabyte custom property"): docx_member_edit(docx.CUSTOM, docx_custom_property),
    ("docx", "a megabyte XML comment in [Content_Types].xml"): docx_member_edit(
        docx.TYPES, lambda raw: raw.replace(b"</Types>", b"<!--" + JUNK + b"--></Types>")
    ),
    ("docx", "a relationship added to _rels/.rels"): docx_member_edit(
        docx.RELS,
        lambda raw: raw.replace(
            b"</Relationships>",
            b'<Relationship Id="rIdEvil" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships/hyperlink" Target="https://evil.example/" TargetMode="External"/>'
            b"</Relationships>",
        ),
    ),
    ("docx", "a ZIP archive comment"): docx_archive_comment,
    ("docx", "a megabyte between the members and the central directory"): docx_junk_before_directory,
    ("docx", "a 60 KB extra field on a member"): docx_member_extra,
}


def _check(labelled: bytes, attacked: bytes, trust: TrustStore) -> None:
    assert verify(labelled, trust).status is Status.VERIFIED
    assert attacked != labelled
    verdict = verify(attacked, trust)
    assert verdict.status is not Status.VERIFIED, verdict.problems
    assert not verdict.ok


@pytest.mark.parametrize(("name", "attack"), list(ATTACKS), ids=[f"{n}: {a}" for n, a in ATTACKS])
def test_image_attack_is_not_verified(name: str, attack: str, policy: LabelPolicy, trust: TrustStore) -> None:
    labelled = label_bytes(SAMPLES[name], policy)
    _check(labelled, ATTACKS[name, attack](labelled), trust)


@pytest.mark.parametrize(("name", "attack"), list(MEDIA_ATTACKS), ids=[f"{n}: {a}" for n, a in MEDIA_ATTACKS])
def test_media_attack_is_not_verified(
    name: str, attack: str, media: dict[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    if name not in media:
        pytest.skip("needs ffmpeg to make this sample")
    labelled = label_bytes(media[name], policy)
    _check(labelled, MEDIA_ATTACKS[name, attack](labelled), trust)


@pytest.mark.parametrize("name", ["webp-lossy", "wav"])
def test_moving_the_riff_boundary_over_a_trailer_is_not_verified(
    name: str, media: dict[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    """Bytes after the RIFF payload are digested; so is where the payload ends."""
    original = SAMPLES.get(name) or media[name]
    labelled = label_bytes(original + riff.chunk(b"JUNK", b"trailer!"), policy)
    _check(labelled, absorb_trailer(labelled), trust)


# -- C2PA: excluded only when it validates for this file -------------------------------------


@pytest.fixture(scope="module")
def c2pa_config(tmp_path_factory: pytest.TempPathFactory) -> object:
    pytest.importorskip("c2pa", reason="the c2pa extra is not installed")
    from labeler.content_credentials import C2paConfig, make_test_ca

    ca = make_test_ca(tmp_path_factory.mktemp("c2pa"))
    return C2paConfig.from_files(ca["chain"], ca["key"])


C2PA_JUNK: dict[str, Callable[[bytes], bytes]] = {
    "jpeg": lambda d: jpeg_insert(d, jpeg_app11(jumbf_claiming_c2pa(b"J" * 60000), instance=0x0777)),
    "png": lambda d: png_insert(d, png_chunk(b"caBX", jumbf_claiming_c2pa(JUNK))),
    "webp-lossy": lambda d: riff_append(d, riff.chunk(b"C2PA", jumbf_claiming_c2pa(JUNK))),
}


@pytest.mark.parametrize("name", sorted(C2PA_JUNK))
def test_junk_c2pa_container_beside_a_valid_store_is_not_verified(
    name: str, policy: LabelPolicy, trust: TrustStore, c2pa_config: object
) -> None:
    from labeler.content_credentials import C2paConfig
    from labeler.labeling import label_image

    assert isinstance(c2pa_config, C2paConfig)
    labelled = label_image(SAMPLES[name], policy, visible=False, c2pa=c2pa_config)
    verdict = verify(labelled, trust)
    assert verdict.status is Status.VERIFIED and verdict.c2pa is not None
    assert verdict.c2pa["state"] == "Valid"
    _check(labelled, C2PA_JUNK[name](labelled), trust)


@pytest.mark.parametrize("name", sorted(C2PA_JUNK))
def test_junk_c2pa_container_alone_says_what_is_unbound(
    name: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    attacked = C2PA_JUNK[name](label_bytes(SAMPLES[name], policy))
    verdict = verify(attacked, trust)
    assert verdict.status is Status.ALTERED and verdict.content_intact is False
    assert verdict.signature_valid and verdict.key_trusted
    assert any(
        "bytes of unvalidated C2PA-typed data the signature does not bind" in p for p in verdict.problems
    )


def test_a_c2pa_store_is_not_vouched_for_without_c2pa_python(
    policy: LabelPolicy, trust: TrustStore, c2pa_config: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our digest skips the store because C2PA binds it; nobody checked that here, so no VERIFIED."""
    from labeler import content_credentials
    from labeler.content_credentials import C2paConfig, C2paError
    from labeler.labeling import label_image

    assert isinstance(c2pa_config, C2paConfig)
    labelled = label_image(SAMPLES["jpeg"], policy, visible=False, c2pa=c2pa_config)

    def missing() -> None:
        raise C2paError("C2PA needs c2pa-python")

    monkeypatch.setattr(content_credentials, "_c2pa", missing)
    verdict = verify(labelled, trust)
    assert verdict.c2pa is None
    assert verdict.status is Status.ALTERED and verdict.content_intact is False
    assert any("unvalidated C2PA-typed data" in p for p in verdict.problems)


def test_a_broken_c2pa_store_is_not_verified(
    policy: LabelPolicy, trust: TrustStore, c2pa_config: object
) -> None:
    from labeler.content_credentials import C2paConfig
    from labeler.labeling import label_image

    assert isinstance(c2pa_config, C2paConfig)
    labelled = bytearray(label_image(SAMPLES["png"], policy, visible=False, c2pa=c2pa_config))
    cabx = next(c for c in png.chunks(bytes(labelled)) if c.type == b"caBX")
    at = cabx.end - 40  # inside the store's signature; the chunk CRC fixed so the PNG stays valid
    labelled[at] ^= 0x01
    body = bytes(labelled[cabx.start + 4 : cabx.end - 4])
    labelled[cabx.end - 4 : cabx.end] = struct.pack(">I", zlib.crc32(body))
    verdict = verify(bytes(labelled), trust)
    assert verdict.c2pa is not None and verdict.c2pa["state"] == "Invalid"
    assert verdict.status is Status.ALTERED


# -- labels made before #13 keep verifying -----------------------------------------------------


def _old_rule_digest(data: bytes, original: bytes) -> bytes:
    """The digest as it was before #13 (every XMP-typed and C2PA-typed slot skipped, and so on),
    for the formats whose normal case must not change."""
    fmt = detect(data)

    def without(spans: list[tuple[int, int]]) -> bytes:
        h, pos = hashlib.sha256(), 0
        for start, end in sorted(spans):
            h.update(data[pos:start])
            pos = end
        h.update(data[pos:])
        return h.digest()

    if fmt.name == "jpeg":
        return without([(s.start, s.end) for s in jpeg.segments(data) if s.is_xmp(data) or s.is_jumbf(data)])
    if fmt.name == "png":
        return without(
            [(c.start, c.end) for c in png.chunks(data) if png._is_xmp(c, data) or c.type == b"caBX"]
        )
    if fmt.name == "gif":
        return without([(b.start, b.end) for b in gif.blocks(data)[1] if gif._is_xmp(b, data)])
    if fmt.name == "webp":
        chunks, riff_end = webp.walk(data)
        h, flag = hashlib.sha256(), b""
        parts = []
        for c in chunks:
            if c.fourcc in (b"XMP ", b"C2PA"):
                continue
            if c.fourcc == b"VP8X":
                flag = bytes([data[c.start + 8] & ~webp.XMP_FLAG & 0xFF])
                parts += [data[c.start : c.start + 8], data[c.start + 9 : c.end]]
            else:
                parts.append(data[c.start : c.end])
        h = hashlib.sha256(flag + b"".join(parts) + data[riff_end:])
        return h.digest()
    if fmt.name == "wav":
        chunks, riff_end = riff.walk(data, b"WAVE", "WAV")
        kept = b"".join(data[c.start : c.end] for c in chunks if c.fourcc != b"AIGC")
        return hashlib.sha256(data[8:12] + kept + data[riff_end:]).digest()
    if fmt.name == "mp4":
        moov, new = mp4._rewrite(data, None)
        return hashlib.sha256(data[: moov.start] + new + data[moov.end :]).digest()
    if fmt.name == "pdf":
        return hashlib.sha256(pdf.stage(original)).digest()
    raise AssertionError(fmt.name)


UNCHANGED = [
    *sorted(SAMPLES),
    "wav",
    "wav-stereo-24bit",
    "mp4",
    "mp4-faststart",
    "mp4-with-mdta-keys",
    "mov",
    "pdf",
]


@pytest.mark.parametrize("name", UNCHANGED)
def test_digest_of_a_normally_labelled_file_is_unchanged(
    name: str, media: dict[str, bytes], policy: LabelPolicy
) -> None:
    original = SAMPLES.get(name) or media.get(name)
    if original is None:
        pytest.skip("needs ffmpeg to make this sample")
    labelled = label_bytes(original, policy)
    assert detect(labelled).content_digest(labelled) == _old_rule_digest(labelled, original)


def test_unvalidated_c2pa_data_also_fails_the_platform_check(policy: LabelPolicy, trust: TrustStore) -> None:
    from labeler import propagate_bytes

    propagated = propagate_bytes(label_bytes(SAMPLES["png"], policy), policy)
    assert verify(propagated, trust).propagation["status"] == "verified"  # type: ignore[index]
    verdict = verify(C2PA_JUNK["png"](propagated), trust)
    assert verdict.status is Status.ALTERED
    assert verdict.propagation is not None
    assert verdict.propagation["status"] == "altered" and verdict.propagation["content_intact"] is False


def test_an_altered_tag_label_names_the_0_1_rule(
    policy: LabelPolicy, trust: TrustStore, media: dict[str, bytes]
) -> None:
    """A tag-format label that no longer matches says why a label made by 0.1 would too."""
    if "flac" not in media:
        pytest.skip("needs ffmpeg to make the sample")
    labelled = label_bytes(media["flac"], policy)
    changed = bytearray(labelled)
    changed[len(changed) * 2 // 3] ^= 1
    verdict = verify(bytes(changed), trust)
    assert verdict.status is Status.ALTERED and "labeler 0.1" in verdict.problems[-1]
