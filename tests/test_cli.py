"""The command line, run as a user runs it: a subprocess on real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, pixels

from labeler import Status, TrustStore, verify
from labeler.text import strip_text_mark
from labeler.verification import verify_text

FILES = (
    ("jpeg", "a/photo.jpg"),
    ("png", "a/b/pic.png"),
    ("webp-lossy", "c.webp"),
    ("gif-animated", "anim.gif"),
)


def run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labeler.cli", *map(str, args)],
        cwd=cwd,
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    assert run("keygen", "--out", "keys", cwd=tmp_path).returncode == 0
    (tmp_path / "labeler.toml").write_text(
        '[labeler]\nprovider_name = "ExampleAI"\nfiling_numbers = ["Beijing-YunQue-20230821"]\n'
        'key_file = "keys/labeler.pem"\n',
        encoding="utf-8",
    )
    for sample, rel in FILES:
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_bytes(SAMPLES[sample])
    (tmp_path / "in/answer.txt").write_text("The answer is 42.\n", encoding="utf-8")
    (tmp_path / "in/report.md").write_text("# Report\n\nAll good.\n", encoding="utf-8")
    (tmp_path / "in/blob.bin").write_bytes(b"\x00\x01 not an image")
    return tmp_path, {"LABELER_CONFIG": str(tmp_path / "labeler.toml")}


def _trust(root: Path) -> TrustStore:
    return TrustStore.from_paths([root / "keys/labeler.pub.pem"])


def test_keygen_writes_private_key_with_mode_600(tmp_path: Path) -> None:
    result = run("keygen", "--out", "k", "--algorithm", "ES256", cwd=tmp_path)
    assert result.returncode == 0 and "key id:" in result.stdout
    assert (tmp_path / "k/labeler.pem").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in result.stdout
    again = run("keygen", "--out", "k", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_apply_tree_then_verify(setup: tuple[Path, dict[str, str]], jobs: str) -> None:
    root, env = setup
    result = run("apply", "in", "--out", "out", "--jobs", jobs, cwd=root, env=env)
    assert result.returncode == 1  # blob.bin failed, the rest labelled
    assert result.stdout.strip().endswith("6 labeled, 0 skipped (already labeled), 1 failed")
    assert "blob.bin" in result.stderr and "unsupported content" in result.stderr
    assert "Traceback" not in result.stderr
    trust = _trust(root)
    for sample, rel in FILES:
        out = (root / "out" / rel).read_bytes()
        assert verify(out, trust).status is Status.VERIFIED
        assert pixels(out) != pixels(SAMPLES[sample])  # the visible label is drawn
    assert verify_text((root / "out/answer.txt").read_text("utf-8"), trust).ok
    assert verify_text((root / "out/report.md").read_text("utf-8"), trust).ok
    answer = (root / "out/answer.txt").read_text("utf-8")
    assert strip_text_mark(answer) == "【AI生成】The answer is 42.\n"  # the mark itself is invisible

    table = run("verify", "--trust", "keys/labeler.pub.pem", "out", cwd=root)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["FILE", "STATUS", "NOTICE", "SIGNATURE"]
    assert sum("verified" in line for line in lines) == 6
    report = json.loads(
        run("verify", "--trust", "keys/labeler.pub.pem", "--json", "out/c.webp", cwd=root).stdout
    )
    assert report[0]["status"] == "verified" and report[0]["filing_numbers"] == ["Beijing-YunQue-20230821"]
    assert (
        run("verify", "out", "--require", "verified", cwd=root).returncode == 1
    )  # untrusted without --trust
    assert run("verify", "out", "--require", "untrusted", cwd=root).returncode == 0


def test_no_visible_keeps_pixels(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    run("apply", "in/a", "--out", "out", "--no-visible", cwd=root, env=env)
    assert pixels((root / "out/photo.jpg").read_bytes()) == pixels(SAMPLES["jpeg"])


def test_in_place_is_idempotent_and_leaves_no_temp_files(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    first = run("apply", "in", "--in-place", cwd=root, env=env)
    assert "6 labeled" in first.stdout
    snapshot = {p: p.read_bytes() for p in (root / "in").rglob("*") if p.is_file()}
    second = run("apply", "in", "--in-place", cwd=root, env=env)
    assert "0 labeled, 6 skipped" in second.stdout
    assert {p: p.read_bytes() for p in (root / "in").rglob("*") if p.is_file()} == snapshot
    assert not [p for p in (root / "in").rglob("*") if "labeler-tmp" in p.name]


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume(tmp_path: Path) -> None:
    """Kill the batch hard at several points; every file ends up original or labelled, once."""
    assert run("keygen", "--out", "keys", cwd=tmp_path).returncode == 0
    env = {"LABELER_PROVIDER_NAME": "ExampleAI", "LABELER_KEY_FILE": str(tmp_path / "keys/labeler.pem")}
    from conftest import encode, make_image

    big = encode(make_image((256, 256), seed=7), "PNG")
    files = tmp_path / "batch"
    files.mkdir()
    for i in range(120):
        (files / f"{i:03d}.png").write_bytes(big)
    for delay in (0.6, 0.9, 1.2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "labeler.cli", "apply", str(files), "--in-place", "--jobs", "2"],
            cwd=tmp_path,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for path in files.iterdir():
            if path.suffix == ".png":
                data = path.read_bytes()
                assert data == big or verify(data).status is Status.UNTRUSTED, path
    resumed = run("apply", str(files), "--in-place", cwd=tmp_path, env=env)
    assert resumed.returncode == 0 and " 0 failed" in resumed.stdout
    trust = TrustStore.from_paths([tmp_path / "keys/labeler.pub.pem"])
    for path in files.iterdir():
        data = path.read_bytes()
        assert verify(data, trust).status is Status.VERIFIED
        assert data.count(b"<TC260:AIGC>") == 1
    assert sorted(p.name for p in files.iterdir()) == [f"{i:03d}.png" for i in range(120)]  # debris removed


def test_propagate(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    run("apply", "in/c.webp", "--out", "out", cwd=root, env=env)
    result = run(
        "propagate", "out/c.webp", "--as", "001191440300708461136T20000", "--in-place", cwd=root, env=env
    )
    assert result.returncode == 0 and "show notice: confirmed" in result.stdout
    verdict = verify((root / "out/c.webp").read_bytes(), _trust(root))
    assert verdict.status is Status.VERIFIED and verdict.propagation is not None
    assert verdict.record is not None and verdict.record.ContentPropagator == "001191440300708461136T20000"
    unlabeled = run(
        "propagate", "in/a/photo.jpg", "--as", "001191440300708461136T20000", "--out", "p", cwd=root, env=env
    )
    assert unlabeled.returncode == 1 and "declared" in unlabeled.stderr
    declared = run(
        "propagate",
        "in/a/photo.jpg",
        "--as",
        "001191440300708461136T20000",
        "--out",
        "p",
        "--declared",
        cwd=root,
        env=env,
    )
    assert "show notice: possible" in declared.stdout


def test_inspect_shows_record_and_verdict(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    run("apply", "in/a/b/pic.png", "--out", "out", cwd=root, env=env)
    info = json.loads(run("inspect", "out/pic.png", cwd=root).stdout)
    assert info["format"] == "png" and info["verdict"]["record"]["ContentProducer"] == "ExampleAI"
    assert info["as_stored_unverified"]["xmp"]["provider"] == "ExampleAI"
    assert "xmp" not in info and "provenance" in info["verdict"]  # checked facts live in the verdict


def test_inspect_never_presents_unchecked_facts_as_checked(setup: tuple[Path, dict[str, str]]) -> None:
    """A label whose signature fails shows its provenance as a claim, not as provenance."""
    root, env = setup
    run("apply", "in/a/b/pic.png", "--out", "out", cwd=root, env=env)
    path = root / "out/pic.png"
    data = path.read_bytes()
    at = data.index(b"aigcl1.") + 40  # inside the signed payload: the signature no longer holds
    path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    verdict = json.loads(run("inspect", "out/pic.png", cwd=root).stdout)["verdict"]
    assert verdict["status"] in ("bad-signature", "unsigned") and "provenance" not in verdict


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_reads_cli_output(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    run("apply", "in", "--out", "out", cwd=root, env=env)
    images = [root / "out" / rel for _, rel in FILES]
    report = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-G1", "-XMP-TC260:all", "-XMP-iptcExt:all", *map(str, images)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert len(report) == 4
    for info in report:
        assert json.loads(info["XMP-TC260:Aigc"])["ContentProducer"] == "ExampleAI"
        assert info["XMP-iptcExt:DigitalSourceType"].endswith("trainedAlgorithmicMedia")


def test_bad_config_is_a_clean_error_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[labeler]\nprovider_name = "A"\nfiling_numbers = ["nope"]\n')
    (tmp_path / "a.png").write_bytes(SAMPLES["png"])
    result = run("--config", "bad.toml", "apply", "a.png", "--in-place", cwd=tmp_path)
    assert result.returncode == 2
    assert "filing number 'nope'" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "a.png").read_bytes() == SAMPLES["png"]


def test_progress_bar_when_asked(setup: tuple[Path, dict[str, str]]) -> None:
    root, env = setup
    result = run("apply", "in/a", "--out", "out", "--progress", "--jobs", "1", cwd=root, env=env)
    assert "2/2" in result.stderr and "file" in result.stderr


def test_demo_runs_and_verifies(tmp_path: Path) -> None:
    result = run("demo", "--walkthrough", "--out", "d", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "verify: verified" in result.stdout and "changed: altered" in result.stdout


@pytest.mark.slow
def test_apply_and_verify_audio_video_documents(tmp_path: Path, media: dict[str, bytes]) -> None:
    """One batch over every non-image kind: explicit labels where the medium has one, the
    record in each format's own slot, then ``verify`` says verified for all of them."""
    assert run("keygen", "--out", "keys", cwd=tmp_path).returncode == 0
    (tmp_path / "labeler.toml").write_text(
        '[labeler]\nprovider_name = "ExampleAI"\nkey_file = "keys/labeler.pem"\n'
        '[labeler.audio]\nfrequency = 1200\nposition = "both"\n',
        encoding="utf-8",
    )
    names = {"wav": "speech.wav", "pdf": "report.pdf", "docx": "letter.docx"}
    if "mp3" in media:
        names.update({"mp3": "song.mp3", "flac": "take.flac", "mp4": "clip.mp4"})
    for sample, name in names.items():
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(media[sample])
    env = {"LABELER_CONFIG": str(tmp_path / "labeler.toml")}
    result = run("apply", "in", "--in-place", "--jobs", "2", cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"{len(names)} labeled, 0 skipped (already labeled), 0 failed")
    report = json.loads(run("verify", "--trust", "keys/labeler.pub.pem", "--json", "in", cwd=tmp_path).stdout)
    assert {Path(r["path"]).name: r["status"] for r in report} == dict.fromkeys(names.values(), "verified")
    wav = next(r for r in report if r["path"].endswith(".wav"))
    assert wav["label_source"] == "riff:AIGC" and wav["notice"] == "confirmed"
    letter = next(r for r in report if r["path"].endswith(".docx"))
    assert letter["explicit_label"]  # the label paragraph opens the document
    from labeler.explicit.audio import RhythmStyle, find_rhythm_label

    assert find_rhythm_label((tmp_path / "in/speech.wav").read_bytes(), RhythmStyle(frequency=1200)) == "both"
    again = run("apply", "in", "--in-place", cwd=tmp_path, env=env)
    assert again.stdout.strip().endswith(f"0 labeled, {len(names)} skipped (already labeled), 0 failed")
    inspect = json.loads(run("inspect", "in/report.pdf", cwd=tmp_path).stdout)
    stored = inspect["as_stored_unverified"]
    assert inspect["kind"] == "document" and json.loads(stored["record"])["Label"] == "1"
    assert stored["source"] == "pdf:Info/AIGC"


@pytest.mark.slow
def test_verify_decode_audio_hears_the_rhythm(tmp_path: Path, media: dict[str, bytes]) -> None:
    if "mp3" not in media:
        pytest.skip("needs ffmpeg to make the sample")
    from labeler.explicit.audio import add_rhythm_label_to

    (tmp_path / "voice.mp3").write_bytes(add_rhythm_label_to(media["mp3"], "mp3"))  # no record
    plain = json.loads(run("verify", "--json", "voice.mp3", cwd=tmp_path).stdout)[0]
    heard = json.loads(run("verify", "--json", "--decode-audio", "voice.mp3", cwd=tmp_path).stdout)[0]
    assert plain["notice"] == "none" and heard["notice"] == "suspected" and heard["explicit_label"]


# -- hardening (issue 13): bad paths, trust directories, modes, special files, links ---------------


def _signed_env(root: Path) -> dict[str, str]:
    assert run("keygen", "--out", "keys", cwd=root).returncode == 0
    return {"LABELER_PROVIDER_NAME": "ExampleAI", "LABELER_KEY_FILE": str(root / "keys/labeler.pem")}


def _lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_verify_missing_file_exits_1_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(SAMPLES["png"])
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    for extra in ([], ["--json"]):
        result = run("verify", *extra, "ok.png", "missing.png", "dangling.png", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert len(_lines(result.stderr, "missing.png")) == 1
        assert len(_lines(result.stderr, "dangling.png")) == 1
        assert "ok.png" not in result.stderr
    ok = run("verify", "ok.png", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stderr == ""


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads mode-000 files")
def test_verify_unreadable_file_exits_1_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(SAMPLES["png"])
    (tmp_path / "secret.png").chmod(0)
    result = run("verify", "secret.png", cwd=tmp_path)
    assert result.returncode == 1 and len(_lines(result.stderr, "secret.png")) == 1


def _deny_reading(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The OS refuses to open files called ``name``, however the code under test opens them."""
    real_open, real_read = os.open, Path.read_bytes

    def deny_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int | None) -> int:
        if Path(path).name == name:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def deny_read(self: Path) -> bytes:
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(os, "open", deny_open)
    monkeypatch.setattr(Path, "read_bytes", deny_read)


def test_verify_unreadable_file_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same as above where the tests run as root (who reads mode-000 files): the OS says no."""
    from labeler.cli import main

    (tmp_path / "a.png").write_bytes(SAMPLES["png"])
    (tmp_path / "secret.png").write_bytes(SAMPLES["png"])
    _deny_reading(monkeypatch, "secret.png")
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "a.png", "secret.png"]) == 1
    err = capsys.readouterr().err
    assert len(_lines(err, "secret.png")) == 1 and "Permission denied" in err and "a.png" not in err


def test_trust_directory_written_by_keygen(tmp_path: Path) -> None:
    env = _signed_env(tmp_path)
    assert (
        run("keygen", "--out", "keys", "--name", "second", "--algorithm", "ES256", cwd=tmp_path).returncode
        == 0
    )
    assert run("keygen", "--c2pa", "--out", "keys", cwd=tmp_path).returncode == 0  # certificates, a .key
    (tmp_path / "keys/junk.pem").write_text("not a key\n")
    (tmp_path / "in.png").write_bytes(SAMPLES["png"])
    assert run("apply", "in.png", "--out", "out", cwd=tmp_path, env=env).returncode == 0
    result = run("verify", "--trust", "keys", "--require", "verified", "out/in.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    assert _lines(result.stderr, "junk.pem") and len(result.stderr.splitlines()) == 1  # named, once
    assert "labeler.pem" not in result.stderr and "PRIVATE" not in result.stdout + result.stderr
    via_env = run(
        "verify", "--require", "verified", "out/in.png", cwd=tmp_path, env={"LABELER_TRUST": "keys"}
    )
    assert via_env.returncode == 0, via_env.stderr
    private = run("verify", "--trust", "keys/labeler.pem", "out/in.png", cwd=tmp_path)
    assert private.returncode == 2 and "private key" in private.stderr  # named explicitly: refused


def test_trust_directory_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labeler import SigningKey

    key = SigningKey.generate()
    (tmp_path / "a.pub.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "b.pub.pem").write_bytes(SigningKey.generate().public_key.to_pem())
    os.mkfifo(tmp_path / "fifo.pem")  # never opened: would block
    _deny_reading(monkeypatch, "b.pub.pem")
    skipped: list[tuple[Path, str]] = []
    store = TrustStore.from_paths([tmp_path], on_skip=lambda p, why: skipped.append((p, why)))
    assert len(store) == 1 and store.is_trusted(key.public_key)
    assert {p.name for p, _ in skipped} == {"b.pub.pem", "fifo.pem"}
    assert any("Permission denied" in why for _, why in skipped)


def test_outputs_keep_the_source_permission_bits(tmp_path: Path) -> None:
    env = _signed_env(tmp_path)
    (tmp_path / "in").mkdir()
    files = {"a.png": (SAMPLES["png"], 0o644), "b.jpg": (SAMPLES["jpeg"], 0o640), "c.txt": (b"hi\n", 0o664)}
    for name, (data, mode) in files.items():
        (tmp_path / "in" / name).write_bytes(data)
        (tmp_path / "in" / name).chmod(mode)
    result = run("apply", "in", "--out", "out", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    for name, (_, mode) in files.items():
        assert (tmp_path / "out" / name).stat().st_mode & 0o7777 == mode, name
    code = "001191440300708461136T20000"
    result = run("propagate", "out", "--as", code, "--out", "prop", cwd=tmp_path, env=env)
    assert "a.png: propagated" in result.stdout, result.stderr
    assert (tmp_path / "prop/a.png").stat().st_mode & 0o7777 == 0o644
    assert (tmp_path / "prop/b.jpg").stat().st_mode & 0o7777 == 0o640


def _special_files(root: Path) -> None:
    import socket

    os.mkfifo(root / "pipe.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.png"))
    sock.close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifos_sockets_and_devices_are_skipped_never_opened(tmp_path: Path) -> None:
    env = _signed_env(tmp_path)
    tree = tmp_path / "in"
    tree.mkdir()
    (tree / "a.png").write_bytes(SAMPLES["png"])
    _special_files(tree)
    (tree / "null.png").symlink_to("/dev/null")  # a device, reached only with --follow-symlinks
    code = "001191440300708461136T20000"
    commands = [
        ("apply", "in", "--out", "out"),
        ("apply", "in", "--out", "out2", "--follow-symlinks", "--jobs", "2"),
        ("apply", "in/pipe.png", "in/sock.png", "--in-place"),
        ("verify", "in"),
        ("propagate", "in", "--as", code, "--declared", "--out", "prop", "--follow-symlinks"),
    ]
    for command in commands:
        result = run(*command, cwd=tmp_path, env=env, timeout=60)  # a FIFO read would block forever
        assert "Traceback" not in result.stderr, command
        assert result.returncode == 0, (command, result.stderr)
        for name in ("pipe.png", "sock.png"):
            line = _lines(result.stderr, name)
            assert len(line) == 1 and "skipped" in line[0], (command, result.stderr)
        if "--follow-symlinks" in command or command[0] == "verify":
            assert "device" in "".join(_lines(result.stderr, "null.png")), (command, result.stderr)
    assert not (tmp_path / "out/pipe.png").exists() and (tmp_path / "out/a.png").is_file()
    summary = run("apply", "in", "--out", "out3", cwd=tmp_path, env=env).stdout
    assert summary.strip().endswith(
        "1 labeled, 0 skipped (already labeled), 0 failed, 3 skipped (links, special files)"
    )


def test_symlinks_are_not_followed_unless_asked(tmp_path: Path) -> None:
    env = _signed_env(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(SAMPLES["png"])
    tree = tmp_path / "in"
    tree.mkdir()
    (tree / "own.png").write_bytes(SAMPLES["png"])
    (tree / "link.png").symlink_to(outside / "secret.png")
    (tree / "linkdir").symlink_to(outside)

    result = run("apply", "in", "--out", "out", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["own.png"]
    for name in ("link.png", "linkdir"):
        line = _lines(result.stderr, name)
        assert len(line) == 1 and "skipped" in line[0] and "--follow-symlinks" in line[0], result.stderr

    result = run("apply", "in", "in/link.png", "--in-place", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tree / "link.png").is_symlink() and (outside / "secret.png").read_bytes() == SAMPLES["png"]
    assert verify((tree / "own.png").read_bytes()).status is Status.UNTRUSTED  # the regular file: labelled

    code = "001191440300708461136T20000"
    result = run("propagate", "in/link.png", "--as", code, "--declared", "--in-place", cwd=tmp_path, env=env)
    assert result.returncode == 0 and "skipped" in result.stderr
    assert (outside / "secret.png").read_bytes() == SAMPLES["png"]

    followed = run("apply", "in", "--out", "fout", "--follow-symlinks", cwd=tmp_path, env=env)
    assert followed.returncode == 0, followed.stderr
    assert "1 skipped (already labeled)" in followed.stdout  # own.png, labelled in place above
    for rel in ("link.png", "linkdir/secret.png"):
        out = tmp_path / "fout" / rel
        assert not out.is_symlink() and verify(out.read_bytes()).status is Status.UNTRUSTED, rel
    assert (outside / "secret.png").read_bytes() == SAMPLES["png"]  # --out never writes the source

    in_place = run("apply", "in", "--in-place", "--follow-symlinks", "-v", cwd=tmp_path, env=env)
    assert in_place.returncode == 0, in_place.stderr
    assert (tree / "link.png").is_symlink()  # the link stays a link; the file it names is labelled, once
    assert verify((outside / "secret.png").read_bytes()).status is Status.UNTRUSTED
    assert (outside / "secret.png").read_bytes().count(b"<TC260:AIGC>") == 1


# -- verify --jobs --------------------------------------------------------------------------------


def _verify_tree(root: Path) -> list[str]:
    """Labelled (so trusted), unlabelled, altered, broken, unsupported and text files, a FIFO and
    a dangling link, in a tree: every kind of line verify prints. Returns the names in plan order."""
    from labeler import LabelPolicy, SigningKey, label_bytes

    key = SigningKey.generate()
    (root / "keys").mkdir(parents=True)
    (root / "keys/k.pub.pem").write_bytes(key.public_key.to_pem())
    policy = LabelPolicy(provider_name="ExampleAI", signing_key=key)
    tree = root / "in"
    (tree / "sub").mkdir(parents=True)
    for i in range(70):  # enough for two workers, several units each
        sample = ("jpeg", "png", "webp-lossy", "gif")[i % 4]
        (tree / ("sub" if i % 3 else "") / f"f{i:02d}.{sample[:4]}").write_bytes(
            label_bytes(SAMPLES[sample], policy)
        )
    altered = bytearray(label_bytes(SAMPLES["png"], policy))
    altered[-20] ^= 1  # compressed pixels: the container reads, the digest does not match
    (tree / "altered.png").write_bytes(bytes(altered))
    (tree / "plain.png").write_bytes(SAMPLES["png"])
    (tree / "broken.png").write_bytes(SAMPLES["png"][:-30])
    (tree / "blob.bin").write_bytes(b"\x00\x01 not an image")
    (tree / "note.txt").write_text("The answer is 42.\n", encoding="utf-8")
    (tree / "gone.png").symlink_to(root / "nowhere.png")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tree / "pipe.png")
    from labeler.batch import plan

    return [str(task.source.relative_to(root)) for task in plan([tree], None, follow_symlinks=True)]


def test_verify_jobs_gives_the_same_output_in_the_same_order(tmp_path: Path) -> None:
    """Worker processes change nothing a user sees: table, JSON, stderr and exit code are those
    of one process, files in the order they were planned."""
    names = _verify_tree(tmp_path)
    for extra in ([], ["--json"], ["--require", "untrusted"]):
        runs = {
            jobs: run("verify", "in", "--trust", "keys", *extra, *jobs, cwd=tmp_path, timeout=120)
            for jobs in ((), ("-j", "1"), ("--jobs", "2"), ("-j", "3"))
        }
        one = runs["-j", "1"]
        assert one.returncode == 1, one.stderr  # a dangling link can't be read
        assert "Traceback" not in one.stderr
        for jobs, result in runs.items():
            assert (result.returncode, result.stdout, result.stderr) == (
                one.returncode,
                one.stdout,
                one.stderr,
            ), jobs
        if extra == ["--json"]:
            report = json.loads(one.stdout)
            listed = [entry["path"] for entry in report]
            assert listed == [n for n in names if not n.endswith("pipe.png")]
            statuses = {Path(e["path"]).name: e["status"] for e in report}
            assert statuses["altered.png"] == "altered" and statuses["plain.png"] == "no-label"
            assert statuses["broken.png"] == statuses["blob.bin"] == statuses["gone.png"] == "unreadable"
            assert [s for n, s in statuses.items() if n.startswith("f")] == ["verified"] * 70
        else:
            rows = [line.split()[0] for line in one.stdout.splitlines()[1:]]
            assert rows == [n for n in names if not n.endswith("pipe.png")]
        stderr_names = [line.split(":")[0] for line in one.stderr.splitlines()]
        assert stderr_names == [n for n in names if n.endswith(("gone.png", "pipe.png"))]


def test_verify_file_that_kills_its_worker_is_unreadable_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash in a C library takes a worker down: that file reads as unreadable, in its place,
    and every other file is verified (apply's worker machinery)."""
    import labeler.cli
    from labeler.cli import main

    names = _verify_tree(tmp_path)
    this = os.getpid()
    real = labeler.cli._verify_path

    def verify_path(path: Path, *args: Any) -> Any:
        if path.name == "f08.jpeg":
            assert os.getpid() != this, "verified in the main process, not in a worker"
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *args)

    monkeypatch.setattr(labeler.cli, "_verify_path", verify_path)  # forked workers inherit it
    monkeypatch.chdir(tmp_path)
    code = main(["verify", "in", "--trust", "keys", "--json", "-j", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    report = json.loads(out)
    assert [e["path"] for e in report] == [n for n in names if not n.endswith("pipe.png")]
    (killed,) = [e for e in report if e["path"].endswith("f08.jpeg")]
    assert killed["status"] == "unreadable"
    assert killed["problems"] == ["worker process died while verifying this file"]
    assert [e["status"] for e in report if Path(e["path"]).name.startswith("f")].count("verified") == 69
    assert len(_lines(err, "f08.jpeg")) == 1
