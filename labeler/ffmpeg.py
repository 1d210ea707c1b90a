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

__all__ = ["available", "probe", "run"]

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
