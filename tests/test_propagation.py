from __future__ import annotations

import pytest
from conftest import SAMPLES

from labeler import Label, LabelPolicy, SigningKey, Status, TrustStore, label_bytes, verify
from labeler.propagation import NoLabelError, propagate_bytes

PLATFORM_CODE = "001191440300708461136T20000"  # position 23 = 2: propagation


@pytest.fixture(scope="module")
def platform() -> LabelPolicy:
    return LabelPolicy(
        provider_name="ExamplePlatform", provider_code=PLATFORM_CODE, signing_key=SigningKey.generate()
    )


@pytest.mark.parametrize("name", ["jpeg", "png", "webp-lossy", "gif"])
def test_propagation_keeps_the_producer_signature_valid(
    name: str, policy: LabelPolicy, platform: LabelPolicy, trust: TrustStore
) -> None:
    produced = label_bytes(SAMPLES[name], policy)
    shared = propagate_bytes(produced, platform, propagate_id="p1")
    both = TrustStore([*trust.keys.values(), platform.signing_key.public_key])  # type: ignore[union-attr]
    verdict = verify(shared, both)
    assert verdict.status is Status.VERIFIED, verdict.problems
    record = verdict.record
    assert record is not None
    assert (record.ContentProducer, record.ContentPropagator, record.PropagateID) == (
        policy.producer,
        PLATFORM_CODE,
        "p1",
    )
    assert verdict.propagation is not None and verdict.propagation["status"] == "verified"
    assert verify(shared, trust).propagation["status"] == "untrusted"  # type: ignore[index]


def test_unlabelled_content_needs_the_platforms_word(platform: LabelPolicy) -> None:
    with pytest.raises(NoLabelError):
        propagate_bytes(SAMPLES["png"], platform)
    with pytest.raises(NoLabelError, match="confirm"):
        propagate_bytes(SAMPLES["png"], platform, declared=Label.GENERATED)
    declared = verify(propagate_bytes(SAMPLES["png"], platform, declared=Label.POSSIBLY))
    assert declared.notice == "possible" and declared.status is Status.UNSIGNED
    assert declared.propagation is not None and declared.propagation["signature_valid"] is True
    assert verify(propagate_bytes(SAMPLES["jpeg"], platform, declared="3")).notice == "suspected"


def test_propagator_fields_tampered_are_reported(policy: LabelPolicy, platform: LabelPolicy) -> None:
    shared = propagate_bytes(label_bytes(SAMPLES["jpeg"], policy), platform, propagate_id="p1")
    forged = shared.replace(b'"PropagateID":"p1"', b'"PropagateID":"p2"')
    assert verify(forged).propagation["status"] == "label-mismatch"  # type: ignore[index]
