"""``labeler apply --no-fsync``: what is synced, and that a rerun finds a torn output and redoes it.

Without a sync, a killed process still leaves each output whole (the page cache outlives it); a
power loss can leave an output torn or empty. These tests cut outputs as a power loss could and
check that the next run labels them again, once, and skips whole ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLES, encode, make_image

import labeler.batch
from labeler import Status, verify
from labeler.batch import GroupCommit, Options, Task, label_files, plan
from labeler.policy import LabelPolicy


def _cli(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labeler.cli", *map(str, args)],
        cwd=cwd,
        text=True,
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
    )


def _signed_env(root: Path) -> dict[str, str]:
    assert _cli("keygen", "--out", "keys", cwd=root, env={}).returncode == 0
    return {"LABELER_PROVIDER_NAME": "ExampleAI", "LABELER_KEY_FILE": str(root / "keys/labeler.pem")}


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files each sync covered, and ``dir:NAME`` for each directory synced."""
    calls: list[str] = []

    def sync_all(fds: list[int]) -> None:
        calls.extend(
            os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[1].split(".labeler-tmp-")[0] for fd in fds
        )

    monkeypatch.setattr(labeler.batch, "_sync_all", sync_all)
    monkeypatch.setattr(labeler.batch, "_fsync_directory", lambda d: calls.append(f"dir:{d.name}"))
    return calls


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds by /proc")
def test_group_commit_syncs_only_what_is_added_durable(tmp_path: Path, synced: list[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    group = GroupCommit()
    group.add(Task(tmp_path / "x", tmp_path / "a/fast.jpg"), b"fast", 0o644, durable=False)
    group.add(Task(tmp_path / "x", tmp_path / "b/safe.jpg"), b"safe", 0o640, durable=True)
    assert group.commit() == {}
    assert synced == [".safe.jpg", "dir:b"]
    assert (tmp_path / "a/fast.jpg").read_bytes() == b"fast"
    assert (tmp_path / "b/safe.jpg").read_bytes() == b"safe"
    assert (tmp_path / "a/fast.jpg").stat().st_mode & 0o7777 == 0o644
    assert (tmp_path / "b/safe.jpg").stat().st_mode & 0o7777 == 0o640
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "fast.jpg", "safe.jpg"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds by /proc")
def test_no_fsync_skips_the_sync_of_signed_media_copies_only(
    tmp_path: Path, policy: LabelPolicy, monkeypatch: pytest.MonkeyPatch, synced: list[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.jpg").write_bytes(SAMPLES["jpeg"])
    (tmp_path / "in/b.txt").write_text("The answer is 42.\n", encoding="utf-8")
    monkeypatch.setattr(LabelPolicy, "load", classmethod(lambda cls, path=None, env=None: policy))
    tasks = plan([tmp_path / "in"], tmp_path / "out")
    summary = label_files(tasks, config=None, options=Options(visible=False, fsync=False))
    assert (summary.labeled, summary.failed) == (2, 0)
    assert synced == [".b.txt", "dir:out"]  # text can't show it is torn: always synced
    synced.clear()
    for path in (tmp_path / "out").iterdir():
        path.unlink()
    label_files(tasks, config=None, options=Options(visible=False))
    assert sorted(synced) == [".a.jpg", ".b.txt", "dir:out"]  # the default syncs everything


def test_a_torn_output_is_labelled_again_and_a_whole_one_skipped(tmp_path: Path) -> None:
    env = _signed_env(tmp_path)
    (tmp_path / "in").mkdir()
    names = ("whole.jpg", "half.jpg", "empty.jpg", "cut.png", "edited.jpg")
    for name in names:
        (tmp_path / "in" / name).write_bytes(SAMPLES["png" if name.endswith(".png") else "jpeg"])
    first = _cli("apply", "in", "--out", "out", "--no-fsync", cwd=tmp_path, env=env)
    assert first.returncode == 0 and "5 labeled" in first.stdout, first.stderr
    out = tmp_path / "out"
    labelled = {name: (out / name).read_bytes() for name in names}
    (out / "half.jpg").write_bytes(labelled["half.jpg"][: len(labelled["half.jpg"]) // 2])
    (out / "empty.jpg").write_bytes(b"")
    (out / "cut.png").write_bytes(labelled["cut.png"][:-20])
    edited = bytearray(labelled["edited.jpg"])
    edited[-40] ^= 0xFF  # a block of content lost as a power loss can lose it, length kept
    (out / "edited.jpg").write_bytes(bytes(edited))
    second = _cli("apply", "in", "--out", "out", "--no-fsync", "-v", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "4 labeled, 1 skipped" in second.stdout
    assert "whole.jpg: skipped: output exists and is labeled" in second.stdout
    assert (out / "whole.jpg").read_bytes() == labelled["whole.jpg"]
    for name in names:
        data = (out / name).read_bytes()
        assert verify(data).status is Status.UNTRUSTED, name
        assert data.count(b"<TC260:AIGC>") == 1, name


def test_no_fsync_is_refused_in_place(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(SAMPLES["jpeg"])
    result = _cli("apply", "a.jpg", "--in-place", "--no-fsync", cwd=tmp_path, env=_signed_env(tmp_path))
    assert result.returncode == 2 and "--no-fsync goes with --out" in result.stderr
    assert (tmp_path / "a.jpg").read_bytes() == SAMPLES["jpeg"]


def test_apply_help_says_what_no_fsync_risks(tmp_path: Path) -> None:
    text = " ".join(_cli("apply", "--help", cwd=tmp_path, env={}).stdout.split())
    assert "power loss can leave a copy torn or empty until the next run" in text


@pytest.mark.parametrize("fsync", ["--fsync", "--no-fsync"])
def test_kill_9_mid_run_then_resume_out(tmp_path: Path, fsync: str) -> None:
    """Killed mid-run, with or without syncs: each output is absent or whole and labelled once;
    the rerun finishes the rest, keeps permission bits and leaves no debris."""
    env = _signed_env(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(150):
        path = src / f"{i:03d}.jpg"
        path.write_bytes(encode(make_image((200, 150), seed=i), "JPEG", quality=90))
        path.chmod(0o640 if i % 2 else 0o604)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "labeler.cli", "apply", "in", "--out", "out", "-j", "2", fsync, "-v"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for _ in range(20):  # kill after some progress, not after some time: a slow machine still kills mid-run
        if b"labeled" in proc.stdout.readline():
            break
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [p for p in out.rglob("*") if not p.name.startswith(".")]
    assert 0 < len(done) < 150, "the kill did not land mid-run"
    for path in done:
        assert verify(path.read_bytes()).status is Status.UNTRUSTED, path
    resumed = _cli("apply", "in", "--out", "out", fsync, cwd=tmp_path, env=env)
    assert resumed.returncode == 0 and f"{150 - len(done)} labeled, {len(done)} skipped" in resumed.stdout
    assert sorted(p.name for p in out.iterdir()) == [f"{i:03d}.jpg" for i in range(150)]  # no debris
    for i in range(150):
        data = (out / f"{i:03d}.jpg").read_bytes()
        assert verify(data).status is Status.UNTRUSTED and data.count(b"<TC260:AIGC>") == 1
        assert (out / f"{i:03d}.jpg").stat().st_mode & 0o7777 == (0o640 if i % 2 else 0o604)
