"""``labeler apply|verify --engine ray``: the CLI's side of the wing (the CLI is its only door).

Why here and not in cli.py: everything that needs Ray, fsspec or pyarrow stays in the wing, so
``labeler --help`` and the local engine start without the extras. The output keeps the local
engine's shape: failures on stderr one line each, then the same summary line, exit codes 0/1/2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..batch import Options, Summary, one_line
from ..errors import LabelerError
from .ray_engine import Job, run
from .report import ReportWriter
from .storage import Store

if TYPE_CHECKING:
    from ..signing import TrustStore

__all__ = ["apply", "verify"]


def storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """What reaches every worker to open the store: an endpoint, never a credential (those come
    from each worker's environment: AWS_* variables, an instance or pod role)."""
    return {"endpoint_url": args.endpoint_url} if getattr(args, "endpoint_url", None) else {}


def _rows(jobs: list[Job], args: argparse.Namespace, bar: Any) -> Iterator[dict[str, Any]]:
    def listed(count: int) -> None:
        bar.total = (bar.total or 0) + count
        bar.refresh()

    for job in jobs:
        for rows in run(job, address=args.address, workers=args.jobs, on_listed=listed):
            yield from rows


@contextlib.contextmanager
def _reporting(args: argparse.Namespace) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    if not args.report:
        yield lambda rows: None
        return
    with ReportWriter(args.report) as report:
        yield report.add


def _progress(args: argparse.Namespace) -> Any:
    from tqdm import tqdm

    show = args.progress if getattr(args, "progress", None) is not None else sys.stderr.isatty()
    return tqdm(total=0, unit="file", disable=not show, file=sys.stderr, dynamic_ncols=True)


def apply(args: argparse.Namespace, options: Options) -> int:
    """Label every object under each path, outputs under ``--out`` (or in place)."""
    opts = storage_options(args)
    out = Store(args.out, opts) if args.out else None
    jobs = [Job("apply", Store(path, opts), out, args.config, options) for path in args.paths]
    summary = Summary()
    with _progress(args) as bar, _reporting(args) as report:
        pending: list[dict[str, Any]] = []
        for row in _rows(jobs, args, bar):
            bar.update(1)
            status = row["status"]
            setattr(summary, status, getattr(summary, status) + 1)
            summary.unmarked += row["detail"].endswith("to watermark")
            if args.verbose or status in ("failed", "ignored"):
                shown = "skipped" if status == "ignored" else status
                line = f"{one_line(row['key'], 1000)}: {shown}" + (
                    f": {row['detail']}" if row["detail"] else ""
                )
                bar.write(line, file=sys.stdout if status in ("labeled", "skipped") else sys.stderr)
            pending.append(row)
            if len(pending) >= 1024:
                report(pending)
                pending = []
        report(pending)
    if summary.unmarked:
        print(f"{summary.unmarked} labeled without the invisible watermark (too small or flat to watermark)")
    print(summary)
    return 1 if summary.failed else 0


def verify(
    args: argparse.Namespace,
    trust: TrustStore,
    anchors: str | None,
    statuses: list[str],
    required: str | None,
) -> int:
    """Verify every object under each path: counts by status, unreadable ones named on stderr,
    every verdict in ``--report``. Exit 1 when one is unreadable or below ``--require``."""
    if args.json:
        raise LabelerError(
            "--engine ray writes its verdicts with --report PATH (.parquet or .jsonl), not --json"
        )
    opts = storage_options(args)
    jobs = [
        Job("verify", Store(path, opts), trust=trust, c2pa_anchors=anchors, decode_audio=args.decode_audio)
        for path in args.paths
    ]
    counts: Counter[str] = Counter()
    with _progress(args) as bar, _reporting(args) as report:
        pending: list[dict[str, Any]] = []
        for row in _rows(jobs, args, bar):
            bar.update(1)
            counts[row["status"]] += 1
            if row["status"] == "unreadable":
                bar.write(f"{one_line(row['key'], 1000)}: {row['detail']}", file=sys.stderr)
            pending.append(row)
            if len(pending) >= 1024:
                report(pending)
                pending = []
        report(pending)
    print(", ".join(f"{counts[s]} {s}" for s in statuses if counts[s]) or "no files")
    worst = max((statuses.index(s) for s in counts), default=0)
    below = required is not None and worst > statuses.index(required)
    return 1 if counts["unreadable"] or below else 0
