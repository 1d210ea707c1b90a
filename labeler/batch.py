"""Label many files: plan, label in worker processes, write atomically, resume, summarise.

Safety rules, in order of importance:

1. An original is never half-written: every write goes to a temp file in the target's own
   directory, is fsynced, then renamed over the target (atomic on POSIX).
2. Running twice never labels twice: a file that already carries a label (or whose ``--out``
   copy does) is skipped, so a run killed with ``kill -9`` is resumed by running it again.
3. One bad file never stops the batch: each failure is reported with a one-line reason.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import LabelerError
from .formats import detect
from .labeling import has_label, label_content
from .policy import LabelPolicy
from .text import (
    Position,
    add_text_label,
    find_text_labels,
    label_markdown,
    mark_text,
    markdown_record,
    read_text_mark,
)

__all__ = ["Options", "Outcome", "Summary", "Task", "plan", "run", "write_atomic"]

TEXT_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown"}
_TEMP_MARK = ".labeler-tmp-"


@dataclass(frozen=True)
class Task:
    source: Path
    target: Path


@dataclass(frozen=True)
class Options:
    visible: bool = True
    relabel: bool = False
    text_position: Position = "start"
    c2pa_cert: str | None = None  #: PEM chain; with c2pa_key, images also get C2PA credentials
    c2pa_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    task: Task
    status: Literal["labeled", "skipped", "failed"]
    detail: str = ""


@dataclass
class Summary:
    labeled: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        if outcome.status == "failed":
            self.failures.append(outcome)

    def __str__(self) -> str:
        return f"{self.labeled} labeled, {self.skipped} skipped (already labeled), {self.failed} failed"


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file beside ``path`` + fsync + rename: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TEMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") and _TEMP_MARK in name:  # debris of a killed run: ours to remove
                Path(dirpath, name).unlink(missing_ok=True)
            elif not name.startswith("."):
                yield Path(dirpath, name)


def plan(paths: Iterable[str | Path], out: Path | None) -> list[Task]:
    """One task per file under ``paths``; targets mirror the tree under ``out`` (or in place)."""
    tasks = []
    for root in map(Path, paths):
        if root.is_dir():
            for file in _walk(root):
                tasks.append(Task(file, out / file.relative_to(root) if out else file))
        else:
            tasks.append(Task(root, out / root.name if out else root))
    return tasks


def _already_labeled(data: bytes, kind: str) -> bool:
    if kind == "media":
        try:
            return has_label(data)
        except LabelerError:
            return False  # a broken file is not labelled; labelling it will say why it fails
    text = data.decode("utf-8", "replace")
    if kind == "markdown":
        return markdown_record(text) is not None
    try:
        return read_text_mark(text) is not None or any(find_text_labels(text))
    except LabelerError:
        return True


def _kind(path: Path, data: bytes) -> str:
    kind = TEXT_SUFFIXES.get(path.suffix.lower())
    if kind:
        return kind
    detect(data)  # raises UnsupportedFormatError with the list of formats
    return "media"  # pictures, audio, video, documents: labeling.label_content decides


def label_one(task: Task, policy: LabelPolicy, options: Options) -> Outcome:
    """Label one file. Never raises for a bad file: the outcome says what happened."""
    try:
        data = task.source.read_bytes()
        kind = _kind(task.source, data)
        resumable = task.target != task.source and task.target.exists() and not options.relabel
        if resumable and _already_labeled(task.target.read_bytes(), kind):
            return Outcome(task, "skipped", "output exists and is labeled")
        if not options.relabel and _already_labeled(data, kind):
            return Outcome(task, "skipped", "already labeled")
        if kind == "media":
            c2pa = None
            if options.c2pa_cert and options.c2pa_key:
                from .content_credentials import C2paConfig

                c2pa = C2paConfig.from_files(options.c2pa_cert, options.c2pa_key)
            out = label_content(data, policy, visible=options.visible, on_existing="replace", c2pa=c2pa)
        else:
            text = data.decode("utf-8")
            if kind == "markdown":
                out_text = label_markdown(
                    text, policy, visible=options.text_position if options.visible else None
                )
            else:
                out_text = add_text_label(text, policy, options.text_position) if options.visible else text
                if policy.signing_key is not None:
                    out_text = mark_text(out_text, policy)
            out = out_text.encode("utf-8")
        task.target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(task.target, out)
        return Outcome(task, "labeled")
    except UnicodeDecodeError:
        return Outcome(task, "failed", "text file is not UTF-8")
    except (LabelerError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Outcome(task, "failed", reason)


# -- worker processes ----------------------------------------------------------------------------

_WORKER: tuple[LabelPolicy, Options] | None = None


def _init_worker(config: str | None, options: Options) -> None:
    global _WORKER
    _WORKER = (LabelPolicy.load(config), options)  # keys are not picklable: each worker loads its own


def _work(task: Task) -> Outcome:
    assert _WORKER is not None
    return label_one(task, *_WORKER)


def run(
    tasks: list[Task],
    *,
    config: str | None,
    options: Options,
    jobs: int = 1,
    progress: Callable[[Outcome], None] | None = None,
) -> Summary:
    """Label ``tasks`` with ``jobs`` worker processes (1: in this process)."""
    summary = Summary()
    if jobs <= 1 or len(tasks) <= 1:
        policy = LabelPolicy.load(config)
        outcomes: Iterable[Outcome] = (label_one(t, policy, options) for t in tasks)
        for outcome in outcomes:
            summary.add(outcome)
            if progress:
                progress(outcome)
        return summary
    LabelPolicy.load(config)  # a bad config fails here, once, not in every worker
    ctx = multiprocessing.get_context("spawn" if os.name != "posix" else "fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(config, options)) as pool:
        for outcome in pool.imap_unordered(_work, tasks, chunksize=max(1, min(64, len(tasks) // (jobs * 8)))):
            summary.add(outcome)
            if progress:
                progress(outcome)
    return summary
