"""A demo service identity. Obviously not real: province "Demo", no provider code."""

from __future__ import annotations

from ..policy import LabelPolicy
from ..signing import SigningKey

DEMO_FILING_NUMBER = "Demo-LabelerDemoModel-20250901"


def demo_policy(key: SigningKey | None = None) -> LabelPolicy:
    return LabelPolicy(
        provider_name="LabelerDemo",
        filing_numbers=(DEMO_FILING_NUMBER,),
        system_name="labeler-demo-model",
        system_version="0.1",
        signing_key=key or SigningKey.generate(),
    )
