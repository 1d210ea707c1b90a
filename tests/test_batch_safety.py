"""Release gate: ``labeler apply --in-place`` on 1,000 files, killed with SIGKILL at random
points, then re-run. Every file must be, at every moment, either the original or correctly
labelled exactly once, never damaged or double-labelled; the re-run finishes the job.

``LABELER_KILLTEST_FILES`` / ``LABELER_KILLTEST_KILLS`` scale it up (defaults 1000 / 6).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import encode, make_image
from media import sine_wav

from labeler import Status, TrustStore, verify
from labeler.text import verify_text

FILES = int(os.environ.get("LABELER_KILLTEST_FILES", "1000"))
KILLS = int(os.environ.get("LABELER_KILLTEST_KILLS", "6"))


def _originals() -> dict[str, bytes]:
    kinds = {
        ".jpg": encode(make_image((96, 64), seed=1), "JPEG", quality=85),
        ".png": encode(make_image((96, 64), seed=2), "PNG"),
        ".wav": sine_wav(0.2, rate=8000),
        ".md": b"# Report\n\nAll good.\n",
        ".txt": b"The answer is 42.\n",
    }
    weights = {".jpg": 0.4, ".png": 0.3, ".wav": 0.2, ".md": 0.05, ".txt": 0.05}
    out: dict[str, bytes] = {}
    for suffix, share in weights.items():
        for i in range(round(FILES * share)):
            out[f"d{i % 10}/f{len(out):04d}{suffix}"] = kinds[suffix]
    return out


def _labelled_once(name: str, data: bytes, trust: TrustStore) -> bool:
    if name.endswith((".md", ".txt")):
        text = data.decode("utf-8")
        return verify_text(text, trust).ok and text.count("AI生成") == 1
    single = data.count(b"<TC260:AIGC>") if not name.endswith(".wav") else data.count(b'{"Label":')
    return single == 1 and verify(data, trust).status is Status.VERIFIED


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "labeler.cli"]
    assert (
        subprocess.run([*cli, "keygen", "--out", "keys"], cwd=tmp_path, capture_output=True).returncode == 0
    )
    env = {
        **os.environ,
        "LABELER_PROVIDER_NAME": "ExampleAI",
        "LABELER_KEY_FILE": str(tmp_path / "keys/labeler.pem"),
    }
    trust = TrustStore.from_paths([tmp_path / "keys/labeler.pub.pem"])
    originals = _originals()
    root = tmp_path / "batch"
    for name, data in originals.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)

    def check_every_file() -> tuple[int, int]:
        done = untouched = 0
        for name, original in originals.items():
            data = (root / name).read_bytes()
            if data == original:
                untouched += 1
            else:
                assert _labelled_once(name, data, trust), f"{name} is neither original nor labelled once"
                done += 1
        return done, untouched

    rng = random.Random(20251122)
    history = []
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [*cli, "apply", str(root), "--in-place", "--jobs", "2", "--verbose"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # kill after a random amount of *progress*, not time, so a slow machine still kills mid-run
        wanted = rng.randint(1, max(1, len(originals) // 8))
        assert proc.stdout is not None
        labelled_now = 0
        for line in proc.stdout:
            labelled_now += line.rstrip().endswith(b": labeled")
            if labelled_now >= wanted:
                break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        history.append(check_every_file())
    assert history[-1][0] > 0, "the killed runs made no progress at all"
    rerun = subprocess.run(
        [*cli, "apply", str(root), "--in-place", "--jobs", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert check_every_file() == (len(originals), 0)
    leftovers = [
        p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in originals
    ]
    assert leftovers == [], "temp files of killed runs must be gone"
    again = subprocess.run(
        [*cli, "apply", str(root), "--in-place"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert f"0 labeled, {len(originals)} skipped" in again.stdout
    print(f"\n{len(originals)} files, {KILLS} kills; labelled after each kill: {[d for d, _ in history]}")
