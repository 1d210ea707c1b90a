"""Release gate for keys: private keys are read only from owner-only files, never appear in
logs, reprs, errors or command output, and secret-dependent comparisons are constant-time."""

from __future__ import annotations

import hmac
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES
from media import sine_wav
from starlette.responses import Response
from starlette.testclient import TestClient

from labeler import LabelPolicy, SigningKey, TrustStore, verify
from labeler.errors import SigningKeyError
from labeler.labeling import label_content
from labeler.middleware import LabelingMiddleware


def _secret_parts(key: SigningKey) -> list[str]:
    """Pieces of the private key that must never be shown: PEM body lines and the raw scalar."""
    pem = key.private_pem().decode()
    lines = pem.splitlines()[1:-1]
    return [*lines, "PRIVATE KEY"]


def _assert_clean(text: str, key: SigningKey) -> None:
    for part in _secret_parts(key):
        assert part not in text


def test_policy_repr_and_errors_never_show_the_key(policy: LabelPolicy) -> None:
    assert policy.signing_key is not None
    _assert_clean(repr(policy), policy.signing_key)
    _assert_clean(str(policy), policy.signing_key)


def test_labeling_and_middleware_logs_carry_no_key_material(
    policy: LabelPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    assert policy.signing_key is not None
    caplog.set_level(logging.DEBUG)
    label_content(SAMPLES["jpeg"], policy)
    label_content(sine_wav(0.1), policy)
    app = LabelingMiddleware(
        Response(b"{broken", media_type="application/json"), policy=policy, fail_mode="open"
    )
    TestClient(app).get("/")
    assert caplog.records, "the fail-open path logs a warning"
    _assert_clean(caplog.text, policy.signing_key)


def test_cli_output_never_shows_the_key(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "labeler.cli"]
    keygen = subprocess.run([*cli, "keygen", "--out", "keys"], cwd=tmp_path, capture_output=True, text=True)
    key = SigningKey.from_file(tmp_path / "keys/labeler.pem")
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.jpg").write_bytes(SAMPLES["jpeg"])
    (tmp_path / "in/broken.jpg").write_bytes(SAMPLES["jpeg"][:100])
    env = {
        **os.environ,
        "LABELER_PROVIDER_NAME": "ExampleAI",
        "LABELER_KEY_FILE": str(tmp_path / "keys/labeler.pem"),
    }
    runs = [
        keygen,
        subprocess.run(
            [*cli, "apply", "in", "--out", "out", "-v"], cwd=tmp_path, env=env, capture_output=True, text=True
        ),
        subprocess.run([*cli, "inspect", "out/a.jpg"], cwd=tmp_path, env=env, capture_output=True, text=True),
    ]
    (tmp_path / "keys/labeler.pem").chmod(0o644)
    runs.append(
        subprocess.run(
            [*cli, "apply", "in", "--out", "o2"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
    )
    assert "chmod 600" in runs[-1].stderr and runs[-1].returncode == 2
    for run in runs:
        _assert_clean(run.stdout + run.stderr, key)


def test_key_readable_or_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(SigningKey.generate().private_pem())
    for mode in (0o604, 0o640, 0o660, 0o602, 0o620):
        path.chmod(mode)
        with pytest.raises(SigningKeyError, match="chmod 600"):
            SigningKey.from_file(path)
    path.chmod(0o400)  # owner-only, even read-only, is fine
    assert SigningKey.from_file(path).key_id


def test_digest_and_trust_comparisons_are_constant_time(
    policy: LabelPolicy, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content digests and trusted keys are compared with hmac.compare_digest, never ==."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify(label_content(SAMPLES["png"], policy), trust).ok
    assert (32, 32) in calls  # the SHA-256 content digest, and the 32-byte Ed25519 public key
    assert len(calls) >= 2


@pytest.mark.parametrize("which", ["labeler.pem", "labeler.pub.pem"])
@pytest.mark.parametrize("force", [False, True])
def test_keygen_never_writes_through_a_symlink(tmp_path: Path, which: str, force: bool) -> None:
    """A link planted at the key path (or its .pub path) would make keygen overwrite the file it
    names, e.g. a shell profile: refused, with or without --force, and nothing is written."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / which).symlink_to(victim)
    cli = [sys.executable, "-m", "labeler.cli", "keygen", "--out", "keys", *(["--force"] if force else [])]
    result = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in keys.iterdir()) == [which]  # not half a key pair either
    dangling = tmp_path / "nowhere"
    (keys / which).unlink()
    (keys / which).symlink_to(dangling)  # a dangling link would create the file it names
    result = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and not dangling.exists()


def test_keygen_c2pa_never_writes_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/labeler-c2pa.key").symlink_to(victim)
    cli = [sys.executable, "-m", "labeler.cli", "keygen", "--c2pa", "--out", "keys"]
    result = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


def test_keygen_force_replaces_a_regular_key(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "labeler.cli", "keygen", "--out", "keys"]
    assert subprocess.run(cli, cwd=tmp_path, capture_output=True).returncode == 0
    first = (tmp_path / "keys/labeler.pub.pem").read_bytes()
    assert subprocess.run([*cli, "--force"], cwd=tmp_path, capture_output=True).returncode == 0
    assert (tmp_path / "keys/labeler.pub.pem").read_bytes() != first
    assert (tmp_path / "keys/labeler.pem").stat().st_mode & 0o777 == 0o600
    assert (
        SigningKey.from_file(tmp_path / "keys/labeler.pem").public_key.to_pem()
        == (tmp_path / "keys/labeler.pub.pem").read_bytes()
    )
