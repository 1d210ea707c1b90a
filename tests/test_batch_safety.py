"""Release gate: ``labeler apply --in-place`` on 1,000 files, killed with SIGKILL at random
points, then re-run. Every file must be, at every moment, either the original or correctly
labelled exactly once, never damaged or double-labelled; the re-run finishes the job.

``LABELER_KILLTEST_FILES`` / ``LABELER_KILLTEST_KILLS`` scale it up (defaults 1000 / 6).

Also: one bad file fails alone, with one line, whatever it raised (``apply`` and ``propagate``).
"""

from __future__ import annotations

import os
import random
import re
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, encode, make_image
from media import sine_wav

from labeler import SigningKey, Status, TrustStore, verify
from labeler.cli import main
from labeler.verification import verify_text

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


# -- one bad file fails alone --------------------------------------------------------------------

PLATFORM = "001191440300708461136T20000"


def _png_with_xmp(png: bytes, xmp: str) -> bytes:
    """``png`` with an XMP iTXt chunk right after IHDR."""
    data = b"XML:com.adobe.xmp\0\0\0\0\0" + xmp.encode()
    chunk = struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))
    return png[:33] + chunk + png[33:]


def _deep_xmp_png() -> bytes:
    """A real picture whose XMP nests 50,000 elements deep: enough to exhaust Python's stack in any
    recursive tree walk (it did, in the XMP writer: RecursionError, not a LabelerError)."""
    deep = "<a>" * 50_000 + "</a>" * 50_000
    return _png_with_xmp(
        SAMPLES["png"],
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"<rdf:Description>{deep}</rdf:Description></rdf:RDF></x:xmpmeta>",
    )


def _good_tree(root: Path, n: int = 3) -> dict[str, bytes]:
    files = {f"good{i}.png": encode(make_image((32, 24), seed=10 + i), "PNG") for i in range(n)}
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def _key_env(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "key.pem"
    key.write_bytes(SigningKey.generate().private_pem())
    key.chmod(0o600)
    return {"LABELER_PROVIDER_NAME": "ExampleAI", "LABELER_KEY_FILE": str(key)}


def _failure_lines(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if name in line]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_file_that_breaks_a_real_parser_fails_alone(tmp_path: Path, jobs: str) -> None:
    env = {**os.environ, **_key_env(tmp_path)}
    good = _good_tree(tmp_path / "in")
    (tmp_path / "in/deep.png").write_bytes(_deep_xmp_png())
    cli = [sys.executable, "-m", "labeler.cli"]
    result = subprocess.run(
        [*cli, "apply", "in", "--out", "out", "--jobs", jobs],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for name in good:
        assert verify((tmp_path / "out" / name).read_bytes()).status is Status.UNTRUSTED, name
    deep = _failure_lines(result.stderr, "deep.png")
    if result.returncode == 1:  # the parser's error, as one line
        assert len(deep) == 1 and "failed" in deep[0]
        assert result.stdout.strip().endswith(f"{len(good)} labeled, 0 skipped (already labeled), 1 failed")
    else:  # or a parser that copes: then it is simply labelled
        assert result.returncode == 0 and deep == [] and (tmp_path / "out/deep.png").is_file()

    propagated = subprocess.run(
        [*cli, "propagate", *(f"out/{n}" for n in good), "in/deep.png", "--as", PLATFORM, "--declared",
         "--out", "prop"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in propagated.stderr, propagated.stderr[-2000:]
    for name in good:
        assert (tmp_path / "prop" / name).is_file(), name
    deep = _failure_lines(propagated.stderr, "deep.png")
    assert propagated.returncode in (0, 1) and len(deep) == propagated.returncode


def _with_one_bad_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    function: str,
    fail: Callable[[], None],
    bad_name: str = "bad.png",
    good: int = 3,
) -> dict[str, bytes]:
    """A tree of good pictures plus ``bad_name``, for which ``module.function`` calls ``fail()``
    (forked workers inherit the patch); returns the good files."""
    for name, value in _key_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    files = _good_tree(tmp_path / "in", n=good)
    bad = encode(make_image((32, 24), seed=99), "PNG")
    (tmp_path / "in" / bad_name).write_bytes(bad)
    real = getattr(module, function)

    def patched(data: bytes, *args: object, **kwargs: object) -> bytes:
        if data == bad:
            fail()
        return real(data, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(module, function, patched)
    monkeypatch.chdir(tmp_path)
    return files


def _raise(exc: BaseException) -> Callable[[], None]:
    def fail() -> None:
        raise exc

    return fail


class _Boom(Exception):
    """Stands for anything a third-party library may raise that is none of ours."""


RAISED = [
    RecursionError("maximum recursion depth exceeded"),
    MemoryError(),
    ValueError("cannot reshape array"),
    zlib.error("Error -3 while decompressing data: invalid distance too far back"),
    KeyError("IHDR"),
    _Boom("line one\nline two"),  # a message of several lines still makes one line
]


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_anything_raised_for_one_file_fails_that_file_alone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    jobs: str,
) -> None:
    import labeler.batch

    good = _with_one_bad_file(tmp_path, monkeypatch, labeler.batch, "label_content", _raise(exc))
    code = main(["apply", "in", "--out", "out", "--jobs", jobs])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.strip().endswith(f"{len(good)} labeled, 0 skipped (already labeled), 1 failed")
    assert [line for line in err.splitlines() if line.strip()] == _failure_lines(err, "bad.png")
    (line,) = _failure_lines(err, "bad.png")
    assert "failed" in line and type(exc).__name__ in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(good)


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_anything_raised_while_propagating_one_file_fails_that_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BaseException
) -> None:
    import labeler.propagation

    good = _with_one_bad_file(tmp_path, monkeypatch, labeler.propagation, "propagate_bytes", _raise(exc))
    code = main(["propagate", "in", "--as", PLATFORM, "--declared", "--out", "out"])
    out, err = capsys.readouterr()
    assert code == 1
    assert [line for line in err.splitlines() if line.strip()] == _failure_lines(err, "bad.png")
    (line,) = _failure_lines(err, "bad.png")
    assert type(exc).__name__ in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(good)
    assert out.count("propagated") == len(good)


def test_a_file_that_kills_its_worker_fails_alone_and_the_batch_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash in a C library or the OOM killer takes the whole worker process down; the pool
    used to wait for its lost file forever. Now that file fails alone and the rest are labelled."""
    import labeler.batch

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would

    good = _with_one_bad_file(tmp_path, monkeypatch, labeler.batch, "label_content", kill, "killer.png", 12)
    code = main(["apply", "in", "--out", "out", "--jobs", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    # Files the broken pool had already committed are found labelled when their chunk runs again.
    labelled, skipped = map(int, re.findall(r"(\d+) labeled, (\d+) skipped", out)[-1])
    assert labelled + skipped == len(good) and out.strip().endswith(", 1 failed")
    (line,) = _failure_lines(err, "killer.png")
    assert "worker process died" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(good)
    for name in good:  # each labelled exactly once, never twice
        data = (tmp_path / "out" / name).read_bytes()
        assert data.count(b"<TC260:AIGC>") == 1 and verify(data).status is Status.UNTRUSTED, name
