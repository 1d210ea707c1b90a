"""The Art. 9 audit log: one JSON line per checked file, kept >= 6 months by rotation by size.

Why JSON lines: appends are atomic enough per line (one ``write`` under a lock, ``O_APPEND``),
a crash loses at most the line being written, and every log tool reads them. The log records
what was *checked* (digest, verdict, notice, propagator id), never the content itself.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "read_audit"]


class AuditLog:
    """Append-only JSON-lines log, rotated when it passes ``max_bytes`` (``LOG.1`` … ``LOG.N``,
    oldest highest). Size rotation, not time: a quiet platform must still keep six months."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 64 << 20, backups: int = 20) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict[str, Any]) -> None:
        """Append one entry (``time`` is added, UTC, when missing)."""
        entry = {"time": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **entry}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self.backups}")
        oldest.unlink(missing_ok=True)
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))


def _files(path: Path) -> list[Path]:
    """The log and its rotations, oldest first."""
    rotated = sorted(
        (p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, *([path] if path.exists() else [])]


def read_audit(
    path: str | os.PathLike[str],
    *,
    since: str | None = None,
    until: str | None = None,
    notice: str | None = None,
    status: str | None = None,
    route: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Entries oldest first, filtered (``since``/``until``: ISO 8601 prefixes compared as text,
    which UTC timestamps allow). A torn last line (a crash mid-write) is skipped."""
    for file in _files(Path(path)):
        with file.open(encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                t = str(entry.get("time", ""))
                if (since and t < since) or (until and t > until):
                    continue
                if (notice and entry.get("notice") != notice) or (status and entry.get("status") != status):
                    continue
                if route and entry.get("route") != route:
                    continue
                yield entry
