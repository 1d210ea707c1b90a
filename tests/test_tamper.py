"""The tamper matrix: every attack of the release gate against every medium we label.

Each attack gets its own, right verdict, the same for pictures, audio, video and documents,
and none reads as ``VERIFIED``. (Per-format details live in test_verification.py and
formats/test_record_slots.py; text in test_text.py.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from conftest import EXISTING_XMP, SAMPLES
from media import change_docx_text
from test_digest_binding import (
    add_vorbis_comment,
    docx_custom_property,
    docx_member_edit,
    gif_insert,
    gif_xmp,
    id3_frame,
    id3_frames_then,
    jpeg_insert,
    jpeg_xmp,
    mp4_orphan_item,
    pdf_comment_in_label_revision,
    png_insert,
    png_xmp,
    riff_append,
)

from labeler import AigcRecord, LabelPolicy, SigningKey, Status, TrustStore, label_bytes, verify
from labeler.errors import LabelerError
from labeler.formats import detect, docx, riff
from labeler.signing import b64url_encode
from labeler.xmp import XmpLabel, read_label, write_label

MEDIA = ["jpeg", "png", "webp-lossy", "gif", "wav", "mp3", "flac", "ogg-vorbis", "mp4", "pdf", "docx"]


def read_record(data: bytes) -> AigcRecord:
    fmt = detect(data)
    packet = fmt.read_xmp(data)
    xmp = read_label(packet) if packet else None
    raw = xmp.aigc if xmp is not None else fmt.read_fallback(data)
    assert raw is not None
    return AigcRecord.from_json(raw)


def write_record(data: bytes, record_json: str, token: str | None = None) -> bytes:
    """Put ``record_json`` where the label lives, as an attacker with a hex editor would."""
    fmt = detect(data)
    if fmt.write_record is not None:
        return fmt.write_record(data, record_json)
    return fmt.write_xmp(data, write_label(XmpLabel(aigc=record_json, provenance=token)))


def edit(data: bytes, change: Callable[[AigcRecord], AigcRecord]) -> bytes:
    record = change(read_record(data))
    return write_record(data, record.to_json(), record.ReservedCode1)


def edit_token(data: bytes, change: Callable[[str], str]) -> bytes:
    return edit(data, lambda r: r.with_fields(ReservedCode1=change(r.ReservedCode1)))


def payload(token: str, **changes: object) -> str:
    head, body, sig = token.split(".")
    obj = json.loads(base64.urlsafe_b64decode(body + "=="))
    obj.update(changes)
    return ".".join((head, b64url_encode(json.dumps(obj).encode()), sig))


def flip_outside_label(data: bytes) -> bytes:
    """One byte changed where the content is (the digest sees it), the file still readable."""
    fmt = detect(data)
    if fmt.name == "docx":  # any flipped byte breaks a CRC (unreadable): change a word instead
        return change_docx_text(data)
    before = fmt.content_digest(data)
    for step in range(len(data) // 2):
        for pos in (len(data) // 2 + step, len(data) // 2 - step):
            out = bytearray(data)
            out[pos] ^= 0x01
            try:
                if fmt.content_digest(bytes(out)) != before and read_record(bytes(out)) == read_record(data):
                    return bytes(out)
            except (LabelerError, AssertionError):
                continue
    raise AssertionError("no content byte found")


@pytest.fixture(params=MEDIA)
def original(request: pytest.FixtureRequest, media: dict[str, bytes]) -> bytes:
    name = request.param
    if name in SAMPLES:
        return SAMPLES[name]
    if name not in media:
        pytest.skip("needs ffmpeg to make this sample")
    return media[name]


#: Foreign bytes put where a digest that skipped more than our one slot would not look.
HIDDEN: dict[str, Callable[[bytes], bytes]] = {
    "jpeg": lambda d: jpeg_insert(d, jpeg_xmp(EXISTING_XMP)),
    "png": lambda d: png_insert(d, png_xmp(EXISTING_XMP)),
    "webp": lambda d: riff_append(d, riff.chunk(b"XMP ", EXISTING_XMP)),
    "gif": lambda d: gif_insert(d, gif_xmp(EXISTING_XMP)),
    "wav": lambda d: riff_append(d, riff.chunk(b"AIGC", read_record(d).to_json().encode() + b"\x00" * 999)),
    "mp3": lambda d: id3_frames_then(d, id3_frame(b"PRIV", b"hidden\x00" + b"x" * 999)),
    "flac": add_vorbis_comment("mutagen.flac.FLAC", "hidden", "x" * 999),
    "ogg": add_vorbis_comment("mutagen.oggvorbis.OggVorbis", "hidden", "x" * 999),
    "mp4": mp4_orphan_item,
    "pdf": pdf_comment_in_label_revision,
    "docx": docx_member_edit(docx.CUSTOM, docx_custom_property),
}

ATTACKS: dict[str, tuple[Status, Callable[[bytes, bytes, LabelPolicy], bytes]]] = {
    "one byte changed outside the label": (Status.ALTERED, lambda lab, orig, p: flip_outside_label(lab)),
    "label copied onto other content": (
        Status.ALTERED,
        lambda lab, orig, p: write_record(
            detect(orig).stage(flip_outside_label(label_bytes(orig, p, on_existing="replace"))),
            read_record(lab).to_json(),
            read_record(lab).ReservedCode1,
        ),
    ),
    "re-signed by an unknown key": (
        Status.UNTRUSTED,
        lambda lab, orig, p: label_bytes(
            orig, p.with_changes(signing_key=SigningKey.generate()), on_existing="replace"
        ),
    ),
    "Label field edited 1 -> 3": (
        Status.LABEL_MISMATCH,
        lambda lab, orig, p: edit(lab, lambda r: r.with_fields(Label="3")),
    ),
    "ProduceID replayed from another label": (
        Status.LABEL_MISMATCH,
        lambda lab, orig, p: edit(
            lab,
            lambda r: r.with_fields(
                ProduceID=read_record(label_bytes(orig, p, on_existing="replace")).ProduceID
            ),
        ),
    ),
    "producer edited": (
        Status.LABEL_MISMATCH,
        lambda lab, orig, p: edit(
            lab, lambda r: r.with_fields(ContentProducer="001191440300708461136T1AAAA")
        ),
    ),
    "signed filing number edited": (
        Status.BAD_SIGNATURE,
        lambda lab, orig, p: edit_token(lab, lambda t: payload(t, fn=["Shanghai-Fake-20240101"])),
    ),
    "signature truncated": (Status.BAD_SIGNATURE, lambda lab, orig, p: edit_token(lab, lambda t: t[:-6])),
    'algorithm "none"': (
        Status.BAD_SIGNATURE,
        lambda lab, orig, p: edit_token(lab, lambda t: payload(t, alg="none")),
    ),
    "wrong key type (ES256 claimed, Ed25519 key)": (
        Status.BAD_SIGNATURE,
        lambda lab, orig, p: edit_token(lab, lambda t: payload(t, alg="ES256")),
    ),
    "signature removed": (
        Status.UNSIGNED,
        lambda lab, orig, p: edit(lab, lambda r: r.with_fields(ReservedCode1="")),
    ),
    "record not JSON": (Status.MALFORMED_LABEL, lambda lab, orig, p: write_record(lab, "{AIGC:")),
    "foreign bytes hidden beside the label": (
        Status.ALTERED,
        lambda lab, orig, p: HIDDEN[detect(lab).name](lab),
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_gets_its_verdict(
    original: bytes, attack: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    labeled = label_bytes(original, policy, on_existing="replace")
    assert verify(labeled, trust).status is Status.VERIFIED
    expected, forge = ATTACKS[attack]
    verdict = verify(forge(labeled, original, policy), trust)
    assert verdict.status is expected, verdict.problems
    assert not verdict.ok


def test_the_attacks_map_to_six_distinct_verdicts() -> None:
    verdicts = {expected for expected, _ in ATTACKS.values()}
    assert len(verdicts) == 6 and Status.VERIFIED not in verdicts
