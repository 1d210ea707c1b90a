"""The command line, run as a user runs it: a subprocess on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES, pixels


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labeler.cli", *map(str, args)],
        cwd=cwd,
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    assert run("keygen", "--out", "keys", cwd=tmp_path).returncode == 0
    (tmp_path / "labeler.toml").write_text(
        '[labeler]\nprovider_name = "ExampleAI"\nfiling_numbers = ["Beijing-YunQue-20230821"]\n'
        'key_file = "keys/labeler.pem"\n',
        encoding="utf-8",
    )
    inbox = tmp_path / "in"
    inbox.mkdir()
    for sample, filename in (("jpeg", "jpeg.jpg"), ("png", "png.png"), ("webp-lossy", "webp.webp")):
        (inbox / filename).write_bytes(SAMPLES[sample])
    (inbox / "notes.txt").write_text("not an image")
    return tmp_path, {"LABELER_CONFIG": str(tmp_path / "labeler.toml")}


def test_keygen_writes_private_key_with_mode_600(tmp_path: Path) -> None:
    result = run("keygen", "--out", "k", "--algorithm", "ES256", cwd=tmp_path)
    assert result.returncode == 0 and "key id:" in result.stdout
    assert (tmp_path / "k/labeler.pem").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in result.stdout
    again = run("keygen", "--out", "k", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_apply_then_verify_round_trip(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    result = run("apply", "in", "--out", "out", cwd=root, env=env)
    assert result.returncode == 1  # notes.txt failed, the rest labelled
    assert "3 labeled, 0 skipped, 1 failed" in result.stdout
    assert "unsupported content" in result.stdout
    for name in ("jpeg.jpg", "png.png", "webp.webp"):
        assert pixels((root / "out" / name).read_bytes()) == pixels((root / "in" / name).read_bytes())

    verified = run("verify", "--trust", "keys/labeler.pub.pem", "--json", "out", cwd=root)
    assert verified.returncode == 0
    report = json.loads(verified.stdout)
    assert [r["status"] for r in report] == ["verified"] * 3
    assert report[0]["filing_numbers"] == ["Beijing-YunQue-20230821"]

    untrusted = run("verify", "out", "--require", "verified", cwd=root)
    assert untrusted.returncode == 1 and "untrusted" in untrusted.stdout
    assert run("verify", "out", "--require", "untrusted", cwd=root).returncode == 0


def test_apply_in_place_is_idempotent(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    first = run("apply", "in/jpeg.jpg", "in/png.png", "--in-place", cwd=root, env=env)
    assert "2 labeled" in first.stdout
    labeled = (root / "in/jpeg.jpg").read_bytes()
    second = run("apply", "in/jpeg.jpg", "in/png.png", "--in-place", cwd=root, env=env)
    assert "0 labeled, 2 skipped" in second.stdout and second.returncode == 0
    assert (root / "in/jpeg.jpg").read_bytes() == labeled
    assert not [p for p in (root / "in").iterdir() if p.name.endswith(".tmp")]


def test_inspect_shows_record_and_verdict(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    run("apply", "in/png.png", "--out", "out", cwd=root, env=env)
    info = json.loads(run("inspect", "out/png.png", cwd=root).stdout)
    assert info["format"] == "png" and info["verdict"]["record"]["ContentProducer"] == "ExampleAI"
    assert info["xmp"]["provider"] == "ExampleAI"


def test_bad_config_is_a_clean_error_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[labeler]\nprovider_name = "A"\nfiling_numbers = ["nope"]\n')
    (tmp_path / "a.png").write_bytes(SAMPLES["png"])
    result = run("--config", "bad.toml", "apply", "a.png", "--in-place", cwd=tmp_path)
    assert result.returncode == 2
    assert "filing number 'nope'" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "a.png").read_bytes() == SAMPLES["png"]


def test_demo_runs_and_verifies(tmp_path: Path) -> None:
    result = run("demo", "--out", "d", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "verify: verified" in result.stdout and "changed: altered" in result.stdout
