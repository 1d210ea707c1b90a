from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import SAMPLES, pixels

from labeler import AigcRecord, AlreadyLabeledError, Label, LabelPolicy, label_bytes
from labeler.formats import detect
from labeler.provenance import parse_token
from labeler.xmp import DIGITAL_SOURCE_TYPE_AI, read_label


def _label_of(data: bytes) -> tuple[AigcRecord, object]:
    fmt = detect(data)
    xmp = read_label(fmt.read_xmp(data) or b"")
    assert xmp is not None
    return AigcRecord.from_json(xmp.aigc), xmp


def test_label_carries_record_iptc_and_readable_provenance(
    sample: tuple[str, bytes], policy: LabelPolicy
) -> None:
    _name, data = sample
    out = label_bytes(data, policy, on_existing="replace")
    record, xmp = _label_of(out)
    assert record.Label is Label.GENERATED
    assert record.ContentProducer == record.ContentPropagator == policy.producer
    assert record.ProduceID == record.PropagateID and len(record.ProduceID) == 32
    assert xmp.digital_source_type == DIGITAL_SOURCE_TYPE_AI
    assert xmp.provenance == record.ReservedCode1
    assert (xmp.provider, xmp.system, xmp.system_version) == (policy.provider_name, "YunQue", "2.1")
    assert xmp.filing_numbers == "; ".join(policy.filing_numbers)
    assert pixels(out) == pixels(data)


def test_signed_fields_bind_record_digest_and_time(policy: LabelPolicy) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    out = label_bytes(SAMPLES["jpeg"], policy, produce_id="fixedid", created=when, label="3")
    record, _ = _label_of(out)
    p = parse_token(record.ReservedCode1).provenance
    assert (p.produce_id, p.label, p.producer, p.created) == (
        "fixedid",
        "3",
        policy.producer,
        "2026-01-01T19:04:05Z",
    )
    assert p.filing_numbers == policy.filing_numbers and p.media_format == "jpeg"
    assert p.content_digest == detect(out).content_digest(out)


def test_each_label_gets_a_new_produce_id(policy: LabelPolicy) -> None:
    ids = {_label_of(label_bytes(SAMPLES["png"], policy))[0].ProduceID for _ in range(20)}
    assert len(ids) == 20


def test_existing_label_is_not_silently_replaced(policy: LabelPolicy) -> None:
    once = label_bytes(SAMPLES["webp-lossy"], policy)
    with pytest.raises(AlreadyLabeledError):
        label_bytes(once, policy)
    assert label_bytes(once, policy, on_existing="keep") is once
    twice = label_bytes(once, policy, on_existing="replace")
    assert detect(twice).read_xmp(twice).count(b"<TC260:AIGC>") == 1


def test_existing_fallback_label_counts_as_labelled(policy: LabelPolicy) -> None:
    from conftest import encode, make_image
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", json.dumps({"Label": "1", "ContentProducer": "X", "ProduceID": "1"}))
    with pytest.raises(AlreadyLabeledError):
        label_bytes(encode(make_image(), "PNG", pnginfo=info), policy)


def test_unsigned_policy_writes_record_without_reserved_code(policy: LabelPolicy) -> None:
    out = label_bytes(SAMPLES["jpeg"], policy.with_changes(signing_key=None))
    record, xmp = _label_of(out)
    assert record.ReservedCode1 == "" and xmp.provenance is None


def test_nothing_but_a_labeler_error_escapes(monkeypatch: pytest.MonkeyPatch, policy: LabelPolicy) -> None:
    """A parser failing in a way nobody anticipated still leaves as a LabelerError (the cause
    chained), from every public entry point that takes content."""
    import dataclasses

    from labeler import Label, label_content, propagate_bytes
    from labeler.errors import UnexpectedParserError
    from labeler.formats import base, png

    def broken(data: bytes) -> bytes:
        raise ZeroDivisionError("a parser bug")

    monkeypatch.setitem(base._REGISTRY, "png", dataclasses.replace(png.FORMAT, content_digest=broken))
    for call in (
        lambda: label_bytes(SAMPLES["png"], policy),
        lambda: label_content(SAMPLES["png"], policy),
        lambda: propagate_bytes(SAMPLES["png"], policy, declared=Label.SUSPECTED),
    ):
        with pytest.raises(UnexpectedParserError, match="ZeroDivisionError") as info:
            call()
        assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_label_with_record_is_still_a_pair_and_says_what_happened_to_the_watermark(
    policy: LabelPolicy,
) -> None:
    """Callers unpack ``data, record``; the watermark's outcome rides along (and survives
    pickling to and from worker processes)."""
    import pickle

    from labeler.labeling import Labelled, label_with_record

    small = label_with_record(SAMPLES["png"], policy)
    data, record = small
    assert isinstance(small, tuple) and len(small) == 2 and record is not None
    assert small.watermark is not None and small.watermark.status == "too small"
    again = pickle.loads(pickle.dumps(small))
    assert (
        isinstance(again, Labelled) and tuple(again) == (data, record) and again.watermark == small.watermark
    )
    assert label_with_record(SAMPLES["png"], policy, visible=False).watermark is None
