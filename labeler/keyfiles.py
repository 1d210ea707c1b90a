"""Secret files (signing keys, watermark keys) are read only when no other user can read them.

Why one place: a key readable by the group or the world is a leaked key waiting to happen; every
kind of secret file is refused the same way, with the same remedy in the message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import LabelerError

__all__ = ["read_secret_file"]


def read_secret_file(path: str | os.PathLike[str], what: str, error: type[LabelerError]) -> bytes:
    """The bytes of ``path``; raises ``error`` (naming ``what``) when it is accessible to other
    users or can't be read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            where = f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
            raise error(f"{what} {path} is accessible to other users {where}")
        return path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
