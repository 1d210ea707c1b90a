"""``apply`` and ``verify`` as a Ray Data pipeline: keys go to workers, bytes never do.

The driver lists keys (fsspec) and hands them, a batch at a time, to Ray tasks (at most one per
worker CPU). Each worker process loads the policy once, from the config its own node mounts (a
signing key never travels in a task argument), then for each key reads the object, labels it
with the local engine's :func:`labeler.batch.label_data` (or verifies it with
:func:`labeler.verification.verify`), and writes the result with :meth:`Store.write` (never half
visible). Rows come back to the driver as they finish: a results table, and a progress bar.

Why a re-run is always safe: an output that exists and carries our label is skipped before its
source is read, and an in-place object that carries one is left as it is; a write is all or
nothing. So killing the driver or a worker loses only the work in flight, and the next run
finishes the rest without labelling anything twice.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..batch import (
    TEXT_SUFFIXES,
    GroupCommit,
    NotRegularFileError,
    Options,
    Task,
    describe_error,
    is_labeled,
    label_data,
    one_line,
)
from ..errors import LabelerError
from .report import COLUMNS
from .storage import Store, require

if TYPE_CHECKING:
    from ..policy import LabelPolicy
    from ..signing import TrustStore

__all__ = ["Job", "connect", "run"]

#: Keys per batch (and per block), as the local engine's group: enough to amortise a task and a
#: sync, few enough that a killed worker loses little and the progress bar moves.
BATCH = 64


@dataclass(frozen=True)
class Job:
    """What every worker is told. Plain, picklable data: no key, no credentials."""

    action: Literal["apply", "verify"]
    source: Store
    out: Store | None = None  #: apply: where outputs go (the same relative keys); None: in place
    config: str | None = None  #: the policy file, at this path on every node
    options: Options = field(default_factory=Options)
    trust: TrustStore | None = None  #: verify: public keys only
    c2pa_anchors: str | None = None
    decode_audio: bool = False


@functools.cache
def _policy(config: str | None, env: tuple[tuple[str, str], ...]) -> LabelPolicy:
    """The policy, loaded once per worker process (Ray reuses them across tasks)."""
    from ..policy import LabelPolicy

    return LabelPolicy.load(config)


def _process_batch(batch: dict[str, Any], job: Job) -> Any:
    """A Ray task: one row per key of ``batch``."""
    pa = require("pyarrow")
    policy = None
    if job.action == "apply":
        policy = _policy(job.config, tuple(sorted(_forwarded_env().items())))
    worker = _Worker(job, policy)
    rows = [worker.one(str(key), bool(there)) for key, there in zip(batch["key"], batch["out"], strict=True)]
    worker.commit(rows)
    return pa.Table.from_pylist(rows, schema=_schema())


class _Worker:
    """Labels or verifies one batch. Outputs on a local disk are committed together through the
    local engine's :class:`GroupCommit` (one sync per batch, not one per file)."""

    def __init__(self, job: Job, policy: LabelPolicy | None) -> None:
        self.job = job
        self.policy = policy
        target = job.out or job.source
        self.group = GroupCommit() if job.action == "apply" and target.local else None
        self.pending: dict[Task, int] = {}  #: row index of each output in the group
        self.count = 0  #: rows so far

    def commit(self, rows: list[dict[str, Any]]) -> None:
        if self.group is None:
            return
        for task, why in self.group.commit().items():
            rows[self.pending[task]].update(status="failed", detail=why)

    def one(self, rel: str, exists: bool = True) -> dict[str, Any]:
        """``exists``: the driver's listing of the outputs has ``rel`` (else it is not read)."""
        job, start = self.job, time.perf_counter()
        self.count += 1
        source = job.source.path(rel)
        row: dict[str, Any] = {"key": job.source.display(source), "verdict": "", "detail": "", "bytes": 0}
        try:
            if job.action == "apply":
                row.update(self._apply(rel, source, exists))
            else:
                row.update(self._verify(rel, source))
        except NotRegularFileError as exc:  # a local FIFO, socket, device: never opened
            row.update(status="ignored" if job.action == "apply" else "unreadable", detail=one_line(exc))
        except Exception as exc:  # one bad object fails alone, whatever raised
            failed = "failed" if job.action == "apply" else "unreadable"
            row.update(status=failed, detail=describe_error(exc))
        row["ms"] = (time.perf_counter() - start) * 1000
        return row

    def _apply(self, rel: str, source: str, exists: bool) -> dict[str, Any]:
        job, name = self.job, rel.rpartition("/")[2]
        assert self.policy is not None
        store, target = (job.out, job.out.path(rel)) if job.out else (job.source, source)
        if job.out is not None and not job.options.relabel and exists:
            earlier = job.out.read_if_exists(target)
            if earlier is not None and is_labeled(name, earlier):  # resumed: the source isn't read
                return {"status": "skipped", "detail": "output exists and is labeled", "bytes": len(earlier)}
        data = job.source.read(source)
        status, out, detail = label_data(name, data, None, self.policy, job.options)
        if out is not None and self.group is not None:
            mode = os.stat(source).st_mode if job.source.local else 0o644
            task = Task(Path(source), Path(target))
            self.group.add(task, out, mode)
            self.pending[task] = self.count - 1
        elif out is not None:
            store.write(target, out)
        return {"status": status, "detail": detail, "bytes": len(data)}

    def _verify(self, rel: str, source: str) -> dict[str, Any]:
        from ..verification import verify, verify_text

        job = self.job
        data = job.source.read(source)
        if "." + rel.rpartition(".")[2].lower() in TEXT_SUFFIXES:
            verdict = verify_text(data.decode("utf-8", "replace"), job.trust)
        else:
            verdict = verify(data, job.trust, c2pa_anchors=job.c2pa_anchors, decode_audio=job.decode_audio)
        detail = "; ".join(one_line(p) for p in verdict.problems)
        return {
            "status": verdict.status.value,
            "verdict": verdict.notice,
            "detail": detail,
            "bytes": len(data),
        }


def _schema() -> Any:
    pa = require("pyarrow")
    return pa.schema([(name, getattr(pa, kind)()) for name, (kind, _) in COLUMNS.items()])


def connect(address: str | None, workers: int | None) -> int:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001``, a GCS address), or start a
    local one with ``workers`` CPUs. Returns the number of tasks to run at once (default: one per
    CPU; more than the CPUs overlaps object-store round trips: each task then asks for a share)."""
    ray = require("ray")
    require("ray.data")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     logging_level="ERROR", log_to_driver=False)  # fmt: skip
    return max(1, workers or int(ray.cluster_resources().get("CPU", 1)))


#: Settings that reach the workers from the driver's environment. Names, paths, switches and
#: endpoints only: credentials (AWS_SECRET_ACCESS_KEY...) and key material never travel with a job.
FORWARDED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


def _forwarded_env() -> dict[str, str]:
    """``LABELER_*`` settings and the S3 endpoint for the workers, which don't share this
    process's environment on a real cluster."""
    return {k: v for k, v in os.environ.items() if k.startswith("LABELER_") or k in FORWARDED}


def _names(store: Store) -> Iterator[str]:
    """The names under ``store``; none when it does not exist yet."""
    try:
        yield from store.names()
    except FileNotFoundError:
        return


def run(
    job: Job,
    *,
    address: str | None = None,
    workers: int | None = None,
    batch_size: int = BATCH,
    on_listed: Callable[[int], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``job``, a batch at a time as workers finish (in no particular order).

    A batch whose worker keeps dying (Ray retries it twice) is run again one key per task, so a
    file that kills its worker (a crash in a C library, the OOM killer) fails alone, as in the
    local engine; a key that kills its worker twice more is a ``failed`` row."""
    keys = list(job.source.names())
    if on_listed is not None:
        on_listed(len(keys))
    if not keys:
        return
    workers = connect(address, workers)
    # One listing of the outputs (a LIST per 1,000 keys on S3) instead of a HEAD per key: a key
    # with no output yet is labelled without looking, one that has one is read and checked.
    done = set(_names(job.out)) if job.out is not None and not job.options.relabel else set()
    items = {job.source.display(job.source.path(k)): {"key": k, "out": k in done} for k in keys}
    for batch, retries in ((batch_size, 2), (1, 1)):
        for rows in _execute(job, list(items.values()), workers, batch, retries):
            for row in rows:
                items.pop(row["key"], None)
            yield rows
        if not items:
            return
    failed = "failed" if job.action == "apply" else "unreadable"
    why = "its worker process died while working on this file (3 times)"
    yield [{"key": k, "status": failed, "verdict": "", "detail": why, "bytes": 0, "ms": 0.0} for k in items]


def _execute(
    job: Job, items: list[dict[str, Any]], workers: int, batch_size: int, retries: int
) -> Iterator[list[dict[str, Any]]]:
    """One Ray Data pass over ``items``; a batch still failing after ``retries`` is left out."""
    ray = require("ray")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI shows one bar for the whole run
    ctx.max_errored_blocks = -1  # a lost batch is left out (and run again by the caller)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    blocks = min(len(items), max(workers, math.ceil(len(items) / batch_size)))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(
        _process_batch,
        fn_kwargs={"job": job},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.TaskPoolStrategy(size=min(workers, blocks)),
        num_cpus=min(1.0, ray.cluster_resources().get("CPU", 1) / workers),
        runtime_env={"env_vars": _forwarded_env()},
        max_retries=retries,
    )
    try:
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield table.to_pylist()
    except ray.exceptions.RayError as exc:
        raise LabelerError(f"the Ray run failed: {one_line(exc, 500)}") from None
