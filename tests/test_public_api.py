"""The public API is what ``__all__`` says, and every name in it exists (as httpx tests it)."""

import labeler


def test_all_names_exist_and_are_sorted() -> None:
    for name in labeler.__all__:
        assert hasattr(labeler, name), name
    assert sorted(labeler.__all__, key=str.lower) == sorted(labeler.__all__, key=str.lower)


def test_every_error_is_a_labeler_error() -> None:
    errors = [getattr(labeler, n) for n in labeler.__all__ if n.endswith("Error")]
    assert len(errors) >= 8
    assert all(issubclass(e, labeler.LabelerError) for e in errors)
