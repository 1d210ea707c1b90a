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


def test_import_labeler_and_the_cli_stay_cheap() -> None:
    """`import labeler` (metadata-only users) and `labeler --help` pull in neither Pillow nor
    cryptography: each public name is imported on first use."""
    import subprocess
    import sys

    code = (
        "import sys, labeler, labeler.cli; labeler.cli.build_parser();"
        "print(sorted(m for m in ('PIL', 'cryptography', 'labeler.explicit.image', 'labeler.verification')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert labeler.label_bytes.__module__ == "labeler.labeling"  # resolved on first use


def test_cli_status_choices_are_the_verdict_statuses() -> None:
    from labeler.cli import STATUSES

    assert list(STATUSES) == [s.value for s in labeler.Status]
