"""ffmpeg at the edge: the one place we run it, for work that needs a media encoder (drawing a
label into video frames, re-encoding compressed audio around a rhythm label).

Found as ``$LABELER_FFMPEG`` or ``ffmpeg`` on PATH (Debian: ``apt-get install ffmpeg``);
when it is missing the caller gets a :class:`ToolNotFoundError` that says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .errors import MalformedFileError, ToolNotFoundError

__all__ = ["available", "failure", "popen", "probe", "run"]

TIMEOUT = 1800.0


def _tool(name: str) -> str:
    override = os.environ.get(f"LABELER_{name.upper()}")
    found = shutil.which(override or name)
    if not found:
        raise ToolNotFoundError(
            f"this needs {name} (Debian/Ubuntu: apt-get install ffmpeg; or set LABELER_{name.upper()})"
        )
    return found


def available() -> bool:
    """Whether both ffmpeg and ffprobe can be run."""
    return all(shutil.which(os.environ.get(f"LABELER_{n.upper()}") or n) for n in ("ffmpeg", "ffprobe"))


def run(*args: str | Path, cwd: Path | None = None) -> None:
    """Run ffmpeg quietly; its own error message becomes a :class:`MalformedFileError`."""
    cmd = [_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", *map(str, args)]
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise MalformedFileError(f"ffmpeg took longer than {TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MalformedFileError(f"ffmpeg failed: {message[-1] if message else done.returncode}")


def popen(*args: str | Path, log: Path, read: bool = False, write: bool = False) -> subprocess.Popen[bytes]:
    """ffmpeg with raw frames through a pipe: its stdout to ``read``, its stdin to ``write``,
    run in ``log``'s directory. Its messages go to ``log`` (a pipe left unread could fill and
    stall it); the caller waits for it and, on a failure, raises :func:`failure`."""
    cmd = [_tool("ffmpeg"), "-v", "error", "-y", *map(str, args)]
    if not write:
        cmd.insert(1, "-nostdin")
    with open(log, "wb") as messages:  # the child keeps its own copy
        return subprocess.Popen(
            cmd,
            cwd=log.parent,
            stdin=subprocess.PIPE if write else subprocess.DEVNULL,
            stdout=subprocess.PIPE if read else subprocess.DEVNULL,
            stderr=messages,
        )


def failure(process: subprocess.Popen[bytes], log: Path) -> MalformedFileError:
    """The error for an ffmpeg started by :func:`popen` with ``log`` that exited non-zero."""
    lines = log.read_text("utf-8", "replace").strip().splitlines()
    return MalformedFileError(f"ffmpeg failed: {lines[-1] if lines else process.returncode}")


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON description of the streams and container of ``path``."""
    cmd = [_tool("ffprobe"), "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise MalformedFileError("ffprobe timed out") from None
    if done.returncode != 0:
        raise MalformedFileError(
            f"ffprobe cannot read the media: {done.stderr.decode('utf-8', 'replace').strip()[:200]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result
