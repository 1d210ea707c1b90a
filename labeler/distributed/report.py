"""The results table of a distributed run: one row per key, JSONL or Parquet by the suffix.

Why streamed: a run over millions of keys must not hold its results in memory, and a run that
is killed must leave a readable table behind. Rows are written as they come back; the table
appears at its path only when the run ends (temporary + rename), so a reader never sees a
half-written Parquet footer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .storage import require

__all__ = ["COLUMNS", "ReportWriter"]

#: column: (type in Parquet, meaning)
COLUMNS = {
    "key": ("string", "the object, as the user named it (s3://bucket/in/a.jpg)"),
    "status": ("string", "labeled, skipped, failed; verify: the verdict's status"),
    "verdict": ("string", "verify: confirmed, possible, suspected, none (the notice); apply: empty"),
    "detail": ("string", "why it was skipped or failed; verify: the problems, '; '-joined"),
    "bytes": ("int64", "size of the object read"),
    "ms": ("float64", "time spent on this key in its worker: read, label or verify, write"),
}


class ReportWriter:
    """``with ReportWriter(path) as report: report.add(rows)``: ``.parquet`` or ``.jsonl``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.parquet = self.path.suffix.lower() in (".parquet", ".pq")
        if not self.parquet and self.path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
            from ..errors import LabelerError

            raise LabelerError(f"--report {path}: name it .parquet or .jsonl")
        self.rows = 0
        self._tmp = ""
        self._fh: IO[bytes] | None = None
        self._writer: Any = None

    def __enter__(self) -> ReportWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        self._fh = os.fdopen(fd, "wb")
        if self.parquet:
            pa, pq = require("pyarrow"), require("pyarrow.parquet")
            self._schema = pa.schema([(name, getattr(pa, kind)()) for name, (kind, _) in COLUMNS.items()])
            self._writer = pq.ParquetWriter(self._fh, self._schema)
        return self

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [{name: row.get(name) for name in COLUMNS} for row in rows]
        if not rows:
            return
        self.rows += len(rows)
        if self._writer is not None:
            pa = require("pyarrow")
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        else:
            assert self._fh is not None
            self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._fh is not None
        if self._writer is not None:
            self._writer.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)  # also after an error: the rows so far are worth keeping


def read_report(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a report (tests, tools)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        rows: list[dict[str, Any]] = require("pyarrow.parquet").read_table(path).to_pylist()
        return rows
    return [json.loads(line) for line in path.read_text().splitlines() if line]
