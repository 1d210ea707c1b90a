"""The tamper suite: each attack gets its own verdict, and none reads as verified."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import pytest
from conftest import SAMPLES, encode, make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from labeler import (
    AigcRecord,
    LabelPolicy,
    SigningKey,
    Status,
    TrustStore,
    label_bytes,
    verify,
)
from labeler.formats import detect
from labeler.signing import b64url_encode
from labeler.verification import Verdict
from labeler.xmp import XmpLabel, read_label, write_label


def _edit_label(data: bytes, edit_record=None, edit_token=None) -> bytes:  # type: ignore[no-untyped-def]
    """Rewrite the label in place as an attacker with a text editor would."""
    fmt = detect(data)
    xmp = read_label(fmt.read_xmp(data) or b"")
    assert xmp is not None
    record = AigcRecord.from_json(xmp.aigc)
    if edit_token is not None:
        record = record.with_fields(ReservedCode1=edit_token(record.ReservedCode1))
    if edit_record is not None:
        record = edit_record(record)
    new = XmpLabel(aigc=record.to_json(), provenance=record.ReservedCode1)
    return fmt.write_xmp(data, write_label(new))


def _edit_payload(token: str, **changes: object) -> str:
    head, payload, sig = token.split(".")
    obj = json.loads(base64.urlsafe_b64decode(payload + "=="))
    obj.update(changes)
    return ".".join((head, b64url_encode(json.dumps(obj).encode()), sig))


@pytest.fixture
def labeled(sample: tuple[str, bytes], policy: LabelPolicy) -> bytes:
    return label_bytes(sample[1], policy, on_existing="replace")


def test_fresh_label_verifies_with_all_flags(labeled: bytes, trust: TrustStore, policy: LabelPolicy) -> None:
    verdict = verify(labeled, trust)
    assert verdict.status is Status.VERIFIED and verdict.ok, verdict.problems
    assert verdict.problems == ()
    assert (verdict.signature_valid, verdict.key_trusted, verdict.content_intact) == (True, True, True)
    assert verdict.notice == "confirmed" and verdict.filing_numbers == policy.filing_numbers
    assert json.loads(json.dumps(verdict.to_dict()))["status"] == "verified"


def test_without_trust_store_it_is_untrusted(labeled: bytes) -> None:
    verdict = verify(labeled)
    assert verdict.status is Status.UNTRUSTED and verdict.signature_valid and verdict.content_intact
    assert verdict.key_trusted is False


def test_wrong_key_in_trust_store_is_untrusted(labeled: bytes) -> None:
    assert verify(labeled, TrustStore([SigningKey.generate().public_key])).status is Status.UNTRUSTED


def _image_data_offset(data: bytes) -> int:
    """Middle of the larger stretch outside the XMP slot: scan/IDAT/VP8 data in our samples."""
    packet = detect(data).read_xmp(data) or b""
    start = data.find(packet)
    before, after = (0, start - 64), (start + len(packet) + 16, len(data) - 16)
    lo, hi = max(before, after, key=lambda r: r[1] - r[0])
    return (lo + hi) // 2


def test_one_byte_change_in_the_image_data_is_altered(labeled: bytes, trust: TrustStore) -> None:
    tampered = bytearray(labeled)
    tampered[_image_data_offset(labeled)] ^= 0x01
    verdict = verify(bytes(tampered), trust)
    assert verdict.status is Status.ALTERED, verdict.problems
    assert verdict.content_intact is False and verdict.signature_valid is True


def test_one_pixel_changed_and_label_moved_is_altered(policy: LabelPolicy, trust: TrustStore) -> None:
    img = make_image()
    original = label_bytes(encode(img, "PNG"), policy)
    img.putpixel((3, 3), (0, 0, 0))
    repainted = detect(original).write_xmp(encode(img, "PNG"), detect(original).read_xmp(original) or b"")
    verdict = verify(repainted, trust)
    assert verdict.status is Status.ALTERED and verdict.content_intact is False


def test_label_copied_onto_identical_content_stays_valid(policy: LabelPolicy, trust: TrustStore) -> None:
    # webp-lossy and webp-xmp hold the same bitstream: the signature binds content, not a file name
    donor = label_bytes(SAMPLES["webp-lossy"], policy)
    fmt = detect(donor)
    assert verify(fmt.write_xmp(SAMPLES["webp-xmp"], fmt.read_xmp(donor) or b""), trust).ok


@pytest.mark.parametrize(
    "src, dst", [("jpeg", "jpeg-progressive"), ("png", "png-rgba"), ("webp-lossy", "webp-lossless-alpha")]
)
def test_label_copied_onto_another_image_is_altered(
    src: str, dst: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    donor = label_bytes(SAMPLES[src], policy)
    fmt = detect(donor)
    forged = fmt.write_xmp(SAMPLES[dst], fmt.read_xmp(donor) or b"")
    verdict = verify(forged, trust)
    assert verdict.status is Status.ALTERED
    assert "label copied" in " ".join(verdict.problems)


def test_label_field_edited_1_to_3_is_a_mismatch(labeled: bytes, trust: TrustStore) -> None:
    forged = _edit_label(labeled, edit_record=lambda r: r.with_fields(Label="3"))
    verdict = verify(forged, trust)
    assert verdict.status is Status.LABEL_MISMATCH and verdict.notice == "suspected"
    assert "Label" in verdict.problems[-1]


def test_producer_or_produce_id_edited_is_a_mismatch(labeled: bytes, trust: TrustStore) -> None:
    for edit in ({"ContentProducer": "001191440300708461136T1AAAA"}, {"ProduceID": "replayed"}):
        forged = _edit_label(labeled, edit_record=lambda r, e=edit: r.with_fields(**e))
        assert verify(forged, trust).status is Status.LABEL_MISMATCH


def test_signed_filing_number_edited_is_a_bad_signature(labeled: bytes, trust: TrustStore) -> None:
    forged = _edit_label(labeled, edit_token=lambda t: _edit_payload(t, fn=["Shanghai-Fake-20240101"]))
    verdict = verify(forged, trust)
    assert verdict.status is Status.BAD_SIGNATURE and verdict.filing_numbers == ("Shanghai-Fake-20240101",)
    assert not verdict.ok


def test_readable_filing_number_edit_does_not_change_the_signed_one(
    labeled: bytes, trust: TrustStore, policy: LabelPolicy
) -> None:
    fmt = detect(labeled)
    packet = (fmt.read_xmp(labeled) or b"").replace(b"Beijing-YunQue", b"Beijing-Forged")
    verdict = verify(fmt.write_xmp(labeled, packet), trust)
    assert verdict.filing_numbers == policy.filing_numbers  # the signed ones, never the readable copy
    assert verdict.status is Status.LABEL_MISMATCH and "filing_numbers" in verdict.problems[-1]


def test_truncated_signature(labeled: bytes, trust: TrustStore) -> None:
    assert verify(_edit_label(labeled, edit_token=lambda t: t[:-6]), trust).status is Status.BAD_SIGNATURE
    assert verify(_edit_label(labeled, edit_token=lambda t: t[:-1]), trust).status is Status.UNSIGNED


def test_algorithm_none_and_key_substitution(labeled: bytes, trust: TrustStore) -> None:
    none = _edit_label(labeled, edit_token=lambda t: _edit_payload(t, alg="none"))
    assert verify(none, trust).status is Status.BAD_SIGNATURE
    assert "not accepted" in verify(none, trust).problems[0]
    other = SigningKey.generate()
    swapped = _edit_label(
        labeled, edit_token=lambda t: _edit_payload(t, pk=b64url_encode(other.public_key.raw))
    )
    assert verify(swapped, trust).status is Status.BAD_SIGNATURE


def test_resigned_by_an_unknown_key_is_untrusted(
    sample: tuple[str, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    forger = policy.with_changes(signing_key=SigningKey.generate("ES256"))
    verdict = verify(label_bytes(sample[1], forger, on_existing="replace"), trust)
    assert verdict.status is Status.UNTRUSTED and verdict.signature_valid


def test_unsigned_and_foreign_records(policy: LabelPolicy) -> None:
    unsigned = label_bytes(SAMPLES["jpeg"], policy.with_changes(signing_key=None))
    assert verify(unsigned).status is Status.UNSIGNED and verify(unsigned).notice == "confirmed"
    foreign = _edit_label(unsigned, edit_record=lambda r: r.with_fields(ReservedCode1="sm3:abcdef"))
    verdict = verify(foreign)
    assert verdict.status is Status.UNSIGNED and "not verifiable" in verdict.problems[-1]


def test_malformed_label_and_no_label_and_unreadable(policy: LabelPolicy) -> None:
    fmt = detect(SAMPLES["png"])
    broken = fmt.write_xmp(SAMPLES["png"], write_label(XmpLabel(aigc='{"AIGC":{"Label":"9"}}')))
    assert verify(broken).status is Status.MALFORMED_LABEL
    assert verify(SAMPLES["png"]).status is Status.NO_LABEL and verify(SAMPLES["png"]).notice == "none"
    for junk in (b"", b"GIF89a", SAMPLES["jpeg"][:100]):
        verdict = verify(junk)
        assert verdict.status is Status.UNREADABLE and verdict.problems


def test_label_from_png_text_fallback_is_read() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", '{"AIGC":{"Label":"2","ContentProducer":"X","ProduceID":"1"}}')
    verdict = verify(encode(make_image(), "PNG", pnginfo=info))
    assert (
        verdict.status is Status.UNSIGNED
        and verdict.label_source == "png:tEXt/AIGC"
        and verdict.notice == "possible"
    )


def test_jpeg_exif_usercomment_fallback_is_read() -> None:
    import piexif

    comment = b"ASCII\x00\x00\x00" + b'{"AIGC":{"Label":"1","ContentProducer":"X","ProduceID":"9"}}'
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    verdict = verify(encode(make_image(), "JPEG", exif=exif))
    assert verdict.record is not None and verdict.record.ProduceID == "9"


def test_labeled_output_still_decodes_everywhere(labeled: bytes) -> None:
    with Image.open(io.BytesIO(labeled)) as img:
        img.load()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(SAMPLES)), pos=st.integers(0, 10**6), xor=st.integers(1, 255))
def test_no_mutation_of_a_labeled_file_verifies_or_crashes(
    name: str, pos: int, xor: int, policy: LabelPolicy, trust: TrustStore
) -> None:
    labeled = _LABELED.setdefault(name, label_bytes(SAMPLES[name], policy, on_existing="replace"))
    tampered = bytearray(labeled)
    tampered[pos % len(tampered)] ^= xor
    verdict = verify(bytes(tampered), trust)  # must not raise
    if verdict.status is Status.VERIFIED:
        # only a change inside the XMP slot's free text may keep it valid: the signed bytes are intact
        fmt = detect(bytes(tampered))
        assert fmt.content_digest(bytes(tampered)) == fmt.content_digest(labeled)


_LABELED: dict[str, bytes] = {}


@given(st.binary(max_size=300))
def test_verify_never_raises_on_random_bytes(blob: bytes) -> None:
    for prefix in (b"", b"\xff\xd8\xff\xe1", b"\x89PNG\r\n\x1a\n", b"RIFF\x20\x00\x00\x00WEBP"):
        assert verify(prefix + blob).status in (
            Status.UNREADABLE,
            Status.NO_LABEL,
            Status.MALFORMED_LABEL,
            Status.UNSIGNED,
        )


@pytest.mark.parametrize(
    "field, forged",
    [
        ("provider", "腾讯"),
        ("system", "GPT-9"),
        ("system_version", "9.9"),
        ("created", "2020-01-01T00:00:00Z"),
        ("filing_numbers", "Beijing-Forged-20200101"),
        ("provenance", "aigcl1.forged.copy"),
    ],
)
def test_unsigned_readable_copies_that_disagree_are_reported(
    field: str, forged: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    """Our XMP namespace repeats the signed facts for people and exiftool; a forged copy must not
    ride along with a valid signature as if it were checked."""
    labeled = label_bytes(SAMPLES["jpeg"], policy)
    fmt = detect(labeled)
    xmp = read_label(fmt.read_xmp(labeled) or b"")
    assert xmp is not None and verify(labeled, trust).status is Status.VERIFIED
    forged_file = fmt.write_xmp(labeled, write_label(dataclasses.replace(xmp, **{field: forged})))
    verdict = verify(forged_file, trust)
    assert verdict.status is Status.LABEL_MISMATCH
    assert verdict.signature_valid and verdict.content_intact
    assert f"unsigned XMP fields differ from the signed record: {field}" in verdict.problems[-1]


def test_unsigned_propagator_fields_are_reported(policy: LabelPolicy, trust: TrustStore) -> None:
    labeled = label_bytes(SAMPLES["png"], policy)
    claimed = _edit_label(labeled, edit_record=lambda r: r.with_fields(ContentPropagator="PlatformX"))
    verdict = verify(claimed, trust)
    assert verdict.propagation is not None and verdict.propagation["status"] == "unsigned"
    assert "propagator fields are not signed" in verdict.problems[-1]
    assert verify(labeled, trust).propagation is None  # first write: propagator == producer, no claim


def test_a_bad_signature_shows_its_provenance_as_a_claim(labeled: bytes, trust: TrustStore) -> None:
    forged = _edit_label(labeled, edit_token=lambda t: _edit_payload(t, pv="Forged Inc"))
    out = verify(forged, trust).to_dict()
    assert out["status"] == "bad-signature" and "provenance" not in out
    assert out["claimed_provenance"]["provider"] == "Forged Inc"


def test_a_detected_watermark_alone_makes_the_notice_suspected() -> None:
    """Measures Art. 6 case 3: no record, but a trace; never more than "suspected"."""
    bare = Verdict(Status.NO_LABEL, "jpeg")
    assert bare.notice == "none" and bare.to_dict()["watermark"] is None
    missed = dataclasses.replace(bare, watermark={"detected": False, "p_value": 0.4})
    assert missed.notice == "none"
    found = dataclasses.replace(bare, watermark={"detected": True, "p_value": 1e-30})
    assert found.notice == "suspected" and not found.ok and found.to_dict()["watermark"]["p_value"] == 1e-30


def test_verify_skips_the_watermark_when_asked_not_to(policy: LabelPolicy) -> None:
    from labeler.markkey import MarkKey

    key = MarkKey.for_policy(policy)
    assert key is not None
    assert verify(SAMPLES["png"], watermark_keys=[key], watermark=False).watermark is None
    unmarked = verify(SAMPLES["jpeg"], watermark_keys=[key])  # no label: looked for, not found
    assert unmarked.watermark is not None and unmarked.watermark["detected"] is False
    assert unmarked.notice == "none" and unmarked.status is Status.NO_LABEL
