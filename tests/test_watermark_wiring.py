"""The invisible watermark wired in (issue 16): written by label_image / label_content /
``labeler apply`` in the visible label's re-encode, read by ``verify`` after a platform has
re-encoded the picture and stripped every byte of metadata: notice "suspected", the producer
named, the p-value given. Real codecs and the real CLI throughout."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROVIDER_CODE, make_image
from PIL import Image
from watermark.attacks import synthetic_scene

from labeler import LabelPolicy, SigningKey, Status, TrustStore, label_content, label_image, verify
from labeler.explicit.marking import read_mark
from labeler.formats import find_label
from labeler.labeling import label_with_record
from labeler.markkey import MarkKey, WatermarkUnavailableError

ROOT = Path(__file__).resolve().parent.parent


def jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def platform(data: bytes, quality: int = 70) -> bytes:
    """What a platform does to an upload: decode, re-encode at ``quality``, keep no metadata."""
    with Image.open(io.BytesIO(data)) as img:
        return jpeg(img.convert("RGB"), quality)


def h24(text: str, domain: bytes) -> str:
    return hashlib.sha256(domain + text.encode()).digest()[:3].hex()


@pytest.fixture(scope="module")
def picture() -> bytes:
    return jpeg(synthetic_scene(5, (640, 480)))


def test_label_image_then_a_platform_strips_everything_verify_says_suspected(
    picture: bytes, policy: LabelPolicy, trust: TrustStore
) -> None:
    labelled = label_with_record(picture, policy)
    assert labelled.watermark is not None and labelled.watermark.status == "marked"
    assert labelled.watermark.psnr is not None and labelled.watermark.psnr >= 40
    record = labelled[1]
    assert record is not None
    uploaded = platform(labelled[0])
    assert not find_label(uploaded).labelled  # the label and its signature are gone
    key = MarkKey.for_policy(policy)
    assert key is not None
    verdict = verify(uploaded, trust, watermark_keys=[key])
    assert verdict.status is Status.NO_LABEL and verdict.notice == "suspected"
    mark = verdict.to_dict()["watermark"]
    assert mark["detected"] is True and mark["p_value"] <= mark["threshold"] == 1e-6
    assert mark["producer"] == PROVIDER_CODE
    assert mark["key_id"] == labelled.watermark.key_id
    assert mark["produce_id_hash"] == h24(record.ProduceID, b"aigc-wm-produce\0")
    assert any(PROVIDER_CODE in p for p in verdict.problems)
    # without a key nothing is looked for: verify's default result is as before
    assert verify(uploaded, trust).watermark is None and verify(uploaded, trust).notice == "none"


def test_the_labelled_original_still_verifies_and_its_mark_matches_the_record(
    picture: bytes, policy: LabelPolicy, trust: TrustStore
) -> None:
    out = label_image(picture, policy)
    key = MarkKey.for_policy(policy)
    assert key is not None
    verdict = verify(out, trust, watermark_keys=[key], watermark=True)  # always, also under a label
    assert verdict.ok and verdict.notice == "confirmed" and verdict.problems == ()
    assert verdict.watermark is not None and verdict.watermark["matches_record"] is True


def test_watermark_false_draws_the_label_without_the_mark(
    picture: bytes, policy: LabelPolicy, trust: TrustStore
) -> None:
    labelled = label_with_record(picture, policy, watermark=False)
    assert labelled.watermark is not None and labelled.watermark.status == "off"
    key = MarkKey.for_policy(policy)
    assert key is not None
    found = read_mark(platform(labelled[0]), [key])
    assert found["detected"] is False and found["p_value"] > 1e-6
    assert verify(labelled[0], trust).ok


def test_a_picture_too_small_is_labelled_without_the_mark(policy: LabelPolicy, trust: TrustStore) -> None:
    small = jpeg(make_image((120, 90)))
    labelled = label_with_record(small, policy, watermark=True)  # asked for, still no error
    assert labelled.watermark is not None and labelled.watermark.status == "too small"
    assert verify(labelled[0], trust).ok


def test_no_visible_label_no_mark_unless_asked(picture: bytes, policy: LabelPolicy) -> None:
    kept = label_with_record(picture, policy, visible=False)
    assert kept.watermark is None  # implicit label only: no pixel touched
    only_mark = label_with_record(picture, policy, visible=False, watermark=True)
    assert only_mark.watermark is not None and only_mark.watermark.marked


def test_watermark_true_without_a_key_is_a_typed_error(picture: bytes) -> None:
    keyless = LabelPolicy(provider_name="ExampleAI")
    assert label_with_record(picture, keyless).watermark.status == "unavailable"  # type: ignore[union-attr]
    with pytest.raises(WatermarkUnavailableError, match="watermark key"):
        label_content(picture, keyless, watermark=True)


def test_without_the_extra_labelling_works_and_says_so(picture: bytes, tmp_path: Path) -> None:
    """numpy made unimportable in a fresh interpreter: the extra is not installed."""
    (tmp_path / "in.jpg").write_bytes(picture)
    script = """
import sys
sys.modules["numpy"] = None  # import numpy -> ImportError, as without the extra
from labeler import LabelPolicy, SigningKey, verify
from labeler.labeling import label_with_record
from labeler.markkey import MarkKey, WatermarkUnavailableError
policy = LabelPolicy(provider_name="ExampleAI", signing_key=SigningKey.generate())
data = open(sys.argv[1], "rb").read()
out = label_with_record(data, policy)
print(out.watermark.status, verify(out[0]).status.value)
print(verify(data, watermark_keys=[MarkKey.for_policy(policy)]).watermark["reason"])
try:
    label_with_record(data, policy, watermark=True)
except WatermarkUnavailableError as exc:
    print("raised:", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "in.jpg")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "unavailable untrusted"
    assert "watermark detection unavailable" in lines[1] and "extra" in lines[1]
    assert lines[2].startswith("raised: watermark=True") and "'watermark' extra" in lines[2]


def test_key_file_round_trip_and_derivation(policy: LabelPolicy, tmp_path: Path) -> None:
    key = MarkKey.for_policy(policy)
    assert key is not None and key.producer == PROVIDER_CODE
    assert key == MarkKey.for_policy(policy.with_changes())  # derived, so stable
    other = MarkKey.for_policy(policy.with_changes(signing_key=SigningKey.generate()))
    assert other is not None and other.secret != key.secret
    key.to_file(tmp_path / "wm.json")
    assert (tmp_path / "wm.json").stat().st_mode & 0o777 == 0o600
    assert MarkKey.from_file(tmp_path / "wm.json") == key
    assert key.secret.hex() not in repr(key)


# -- the command line ---------------------------------------------------------------------------


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labeler.cli", *map(str, args)],
        cwd=cwd, text=True, capture_output=True, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, picture: bytes) -> tuple[Path, dict[str, str]]:
    assert run("keygen", "--out", "keys", cwd=tmp_path).returncode == 0
    (tmp_path / "labeler.toml").write_text(
        f'[labeler]\nprovider_name = "ExampleAI"\nprovider_code = "{PROVIDER_CODE}"\n'
        'key_file = "keys/labeler.pem"\n',
        encoding="utf-8",
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in/big.jpg").write_bytes(picture)
    (tmp_path / "in/small.png").write_bytes(jpeg(make_image((100, 80))))
    return tmp_path, {"LABELER_CONFIG": str(tmp_path / "labeler.toml")}


def test_cli_apply_marks_then_verify_watermark_names_the_producer(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    applied = run("apply", "in", "--out", "out", "-j", "1", cwd=root, env=env)
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.strip().splitlines()
    assert lines[-2] == "1 labeled without the invisible watermark (too small or flat to watermark)"
    assert lines[-1] == "2 labeled, 0 skipped (already labeled), 0 failed"
    exported = run("keygen", "--watermark", "--out", "keys", cwd=root, env=env)
    assert exported.returncode == 0 and "labeler.watermark.json" in exported.stdout
    (root / "up.jpg").write_bytes(platform((root / "out/big.jpg").read_bytes()))
    # a platform: only the key file, no config
    checked = run("verify", "--json", "--watermark-key", "keys/labeler.watermark.json", "up.jpg", cwd=root)
    assert checked.returncode == 0, checked.stderr
    [verdict] = json.loads(checked.stdout)
    assert verdict["status"] == "no-label" and verdict["notice"] == "suspected"
    assert verdict["watermark"]["producer"] == PROVIDER_CODE and verdict["watermark"]["p_value"] <= 1e-6
    # --watermark with the provider's own config: also under a readable label
    own = run("verify", "--json", "--watermark", "--trust", "keys", "out/big.jpg", cwd=root, env=env)
    [verdict] = json.loads(own.stdout)
    assert verdict["status"] == "verified" and verdict["watermark"]["matches_record"] is True
    # --watermark and nothing to detect with: a clear error, not a silent "none"
    bare = run("verify", "--watermark", "up.jpg", cwd=root, env={"LABELER_CONFIG": ""})
    assert bare.returncode != 0 and "--watermark-key" in bare.stderr


def test_cli_apply_no_watermark(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    applied = run("apply", "in/big.jpg", "--out", "out", "--no-watermark", cwd=root, env=env)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip().splitlines() == ["1 labeled, 0 skipped (already labeled), 0 failed"]
    (root / "up.jpg").write_bytes(platform((root / "out/big.jpg").read_bytes()))
    assert run("keygen", "--watermark", "--out", "keys", cwd=root, env=env).returncode == 0
    checked = run("verify", "--json", "--watermark-key", "keys/labeler.watermark.json", "up.jpg", cwd=root)
    [verdict] = json.loads(checked.stdout)
    assert verdict["notice"] == "none" and verdict["watermark"]["detected"] is False
