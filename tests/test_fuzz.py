"""The short CI run of every fuzz target (``bash fuzz/run`` is the long one): a few hundred
structure-aware mutations each, derandomised; any untyped exception is a failure."""

from __future__ import annotations

import pytest

from fuzz.engine import fuzz
from fuzz.targets import all_targets

EXAMPLES = 400


@pytest.mark.parametrize("target", all_targets(), ids=lambda t: t.name)
def test_target_survives_mutations(target: object) -> None:
    from fuzz.targets import Target

    assert isinstance(target, Target)
    if not target.seeds():
        pytest.skip("no seeds for this format here (needs ffmpeg)")
    result = fuzz(target, EXAMPLES)
    assert result.failures == []
    assert result.examples == EXAMPLES
