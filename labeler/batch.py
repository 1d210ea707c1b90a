"""Label many files: plan, label in worker processes, write atomically, resume, summarise.

Safety rules, in order of importance:

1. An original is never half-written: every write goes to a temp file in the target's own
   directory, is fsynced, then renamed over the target (atomic on POSIX). With
   ``Options(fsync=False)`` a signed ``--out`` copy of a medium is renamed unsynced (as ``cp``):
   a killed process still leaves it whole, a power loss may tear it, and the next run finds a
   torn copy by its signature (rule 2) and labels it again. Originals and text are always synced.
2. Running twice never labels twice: a file that already carries a label (or whose ``--out``
   copy does, whole: a signed copy whose signature no longer binds its bytes is redone) is
   skipped, so a run killed with ``kill -9``, or cut by a power loss, is resumed by running it again.
3. One bad file never stops the batch: each failure is reported with a one-line reason, whatever
   a parser raised (``RecursionError``, ``MemoryError``, ``zlib.error``... not only our errors).
4. Only regular files are opened: FIFOs, sockets and devices are listed as skipped (a FIFO would
   block the batch forever), and so are symbolic links unless ``follow_symlinks``.
5. An output keeps its source's permission bits.
"""

from __future__ import annotations

import functools
import glob
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .aigc import Label
from .errors import LabelerError
from .formats import detect
from .labeling import OnExisting, has_label, label_content
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

if TYPE_CHECKING:
    from .content_credentials import C2paConfig
    from .explicit.marking import MarkOutcome

__all__ = [
    "GroupCommit",
    "NotRegularFileError",
    "Options",
    "Outcome",
    "Summary",
    "Task",
    "Work",
    "describe_error",
    "in_workers",
    "is_labeled",
    "label_data",
    "label_files",
    "label_many",
    "label_one",
    "one_line",
    "plan",
    "propagate_one",
    "read_regular",
    "write_atomic",
]

T = TypeVar("T")
R = TypeVar("R")

TEXT_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown"}
_TEMP_MARK = ".labeler-tmp-"
#: Files labelled and committed together (one sync): big enough to amortise the sync, small
#: enough that a progress bar moves and a killed run loses little.
_GROUP = 64


_FOLLOW_HINT = "symbolic link (pass --follow-symlinks to follow it)"
#: setuid/setgid are not "permission bits" worth copying onto a labelled picture
_KEPT_MODE_BITS = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)


class NotRegularFileError(LabelerError):
    """The path is a FIFO, socket, device, directory or (when not following) a symbolic link."""


@dataclass(frozen=True)
class Task:
    source: Path
    target: Path
    skip: str = ""  #: why the source is passed over without being opened (a link, a FIFO...)
    error: str = ""  #: why it failed before it could be opened (an unlistable directory)
    follow_symlinks: bool = False  #: read ``source`` through a symbolic link


@dataclass(frozen=True)
class Options:
    visible: bool = True
    relabel: bool = False
    text_position: Position = "start"
    c2pa_cert: str | None = None  #: PEM chain; with c2pa_key, images also get C2PA credentials
    c2pa_key: str | None = None
    #: sync outputs to disk before renaming them; False: only signed ``--out`` copies of media
    #: skip it (a torn one is found by its signature and redone); originals and text always sync
    fsync: bool = True


@dataclass(frozen=True)
class Outcome:
    task: Task
    #: "skipped": already labelled; "ignored": never opened (a link or not a regular file)
    status: Literal["labeled", "skipped", "failed", "ignored"]
    detail: str = ""


@dataclass
class Summary:
    labeled: int = 0
    skipped: int = 0
    failed: int = 0
    ignored: int = 0
    unmarked: int = 0  #: labelled, but too small or flat for the invisible watermark
    failures: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.unmarked += outcome.detail.endswith("to watermark")
        if outcome.status == "failed":
            self.failures.append(outcome)

    def __str__(self) -> str:
        text = f"{self.labeled} labeled, {self.skipped} skipped (already labeled), {self.failed} failed"
        return text + (f", {self.ignored} skipped (links, special files)" if self.ignored else "")


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one printable line: a message or a file name can't break the one-line report."""
    flat = " ".join(str(text).split())
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """One line for whatever a parser raised: our errors say what is wrong, others say what they are."""
    if isinstance(exc, UnicodeDecodeError):
        return "text file is not UTF-8"
    if isinstance(exc, LabelerError):
        return one_line(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror)
    name = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        name = f"{type(exc).__module__}.{name}"
    if isinstance(exc, MemoryError):
        return f"out of memory ({name})"
    if isinstance(exc, RecursionError):
        return f"structure nested too deeply ({name})"
    message = one_line(exc)
    return f"unexpected {name}" + (f": {message}" if message else "")


def _special(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return f"not a regular file ({what})"
    return "not a regular file"


def read_regular(path: Path, *, follow_symlinks: bool = False) -> tuple[bytes, os.stat_result]:
    """The bytes and status of the regular file ``path``. Anything else raises
    ``NotRegularFileError`` before it is opened: a FIFO would block forever, a device has no end.
    The file is checked again once open, so swapping it for a FIFO or a link in between gains nothing."""
    before = os.stat(path) if follow_symlinks else os.lstat(path)
    if stat.S_ISLNK(before.st_mode):
        raise NotRegularFileError(_FOLLOW_HINT)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFileError(_special(before.st_mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise NotRegularFileError("changed while being opened")
        return _read_all(fd, st.st_size), st
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    """The rest of ``fd``, ``size`` bytes expected: read into one buffer of that size, then to
    the end (a file that grew, or a file system that reads short)."""
    data = os.read(fd, size + 1)
    if not data:
        return data
    parts = [data]
    while chunk := os.read(fd, max(1 << 16, size + 1 - sum(map(len, parts)))):
        parts.append(chunk)
    return b"".join(parts)  # one part: that part itself, not a copy


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Temp file beside ``path`` + fsync + rename: readers see the old file or the new one.

    ``mode``: permission bits for the result (a batch passes its source's); by default those
    of the file being replaced. ``mkstemp`` alone would leave every output ``0600``."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TEMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None and path.exists():
            mode = path.stat().st_mode
        if mode is not None:
            os.chmod(tmp, mode & _KEPT_MODE_BITS)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entries(root: Path, follow: bool) -> Iterator[tuple[Path, str, str]]:
    """Every file under the directory ``root``, in order, with why it is skipped and why it fails
    ("" and "": label it)."""
    # Links to directories are walked only when following, each real directory once (no loops).
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(directory) as it:
                found = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield directory, "", f"cannot list directory: {exc.strerror}"
            continue
        subdirs = []
        for entry in found:
            path = Path(entry.path)
            if entry.name.startswith("."):
                if _is_debris(entry):
                    path.unlink(missing_ok=True)  # debris of a killed run: ours to remove
                continue
            if entry.is_symlink() and not follow:
                yield path, _FOLLOW_HINT, ""
            elif entry.is_dir(follow_symlinks=follow):
                subdirs.append(path)
            elif entry.is_file(follow_symlinks=follow):  # from the listing: no stat per file
                yield path, "", ""
            else:
                yield path, _why_not(path, follow), ""
        stack.extend(reversed(subdirs))


def _is_debris(entry: os.DirEntry[str]) -> bool:
    return entry.name.startswith(".") and _TEMP_MARK in entry.name and entry.is_file(follow_symlinks=False)


def _clear_debris(directories: Iterable[Path]) -> None:
    """Remove the temporaries a killed run left in output directories (in place, walking the
    tree removes them)."""
    for directory in directories:
        try:
            with os.scandir(directory) as it:
                debris = [entry.path for entry in it if _is_debris(entry)]
        except OSError:  # not there yet: nothing to clear
            continue
        for path in debris:
            Path(path).unlink(missing_ok=True)


def _why_not(path: Path, follow: bool) -> str:
    """Why ``path`` is skipped, or "" to open it: a regular file, or one that can't be looked at
    (a dangling link among them: reading it then says why it fails)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return ""
    if stat.S_ISLNK(st.st_mode):
        return _FOLLOW_HINT
    return "" if stat.S_ISREG(st.st_mode) else _special(st.st_mode)


def plan(paths: Iterable[str | Path], out: Path | None, *, follow_symlinks: bool = False) -> list[Task]:
    """One task per file under ``paths``; targets mirror the tree under ``out`` (or in place).

    No file is opened here (a killed run's temporaries in output directories are removed).
    Links (unless ``follow_symlinks``), FIFOs, sockets and devices
    become tasks with a ``skip`` reason. In place, a followed link's target is the file it names,
    and a file reached twice (by a link and by its own name) is labelled once."""
    tasks: list[Task] = []
    claimed: dict[Path, Path] = {}

    def add(source: Path, target: Path, skip: str, error: str = "") -> None:
        if not skip and not error and out is None:
            real = Path(os.path.realpath(source))
            target = real if follow_symlinks else target
            if real in claimed:
                skip = f"same file as {claimed[real]}"
            claimed.setdefault(real, source)
        tasks.append(Task(source, target, skip, error, follow_symlinks))

    for root in map(Path, paths):
        is_link = root.is_symlink()
        if root.is_dir() and (follow_symlinks or not is_link):
            for file, skip, error in _entries(root, follow_symlinks):
                add(file, out / file.relative_to(root) if out else file, skip, error)
        else:
            add(root, out / root.name if out else root, _why_not(root, follow_symlinks))
    if out is not None:
        _clear_debris({task.target.parent for task in tasks if not task.skip and not task.error})
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


def is_labeled(name: str, data: bytes) -> bool:
    """Whether the file ``name`` (its suffix says if it is text) with ``data`` already carries
    our label: the check behind "an output that exists and is labelled is skipped"."""
    try:
        return _already_labeled(data, _kind(Path(name), data))
    except LabelerError:
        return False  # not a format we label: it can't be our output


def _kind(path: Path, data: bytes) -> str:
    kind = TEXT_SUFFIXES.get(path.suffix.lower())
    if kind:
        return kind
    detect(data)  # raises UnsupportedFormatError with the list of formats
    return "media"  # pictures, audio, video, documents: labeling.label_content decides


def _existing_output(target: Path) -> bytes | None:
    """The bytes of an earlier run's output, None if there is none; never reads through a link."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise LabelerError(f"output {target} exists and is not a regular file")
    return read_regular(target)[0]


@functools.cache
def _c2pa_config(cert: str | None, key: str | None) -> C2paConfig | None:
    """The C2PA signer, read once per process (not once per file)."""
    if not (cert and key):
        return None
    from .content_credentials import C2paConfig

    return C2paConfig.from_files(cert, key)


def label_one(task: Task, policy: LabelPolicy, options: Options) -> Outcome:
    """Label one file. Never raises for a bad file (whatever a parser raised): the outcome says
    what happened, in one line."""
    return label_many([task], policy, options)[0]


def label_many(tasks: Sequence[Task], policy: LabelPolicy, options: Options) -> list[Outcome]:
    """Label ``tasks`` and commit their outputs together (:class:`GroupCommit`): one outcome per
    task, in order. Never raises for a bad file."""
    group = GroupCommit()
    outcomes = [_label_to_group(task, policy, options, group) for task in tasks]
    failed = group.commit()
    return [Outcome(o.task, "failed", failed[o.task]) if o.task in failed else o for o in outcomes]


def _label_to_group(task: Task, policy: LabelPolicy, options: Options, group: GroupCommit) -> Outcome:
    if task.skip or task.error:
        return Outcome(task, "ignored" if task.skip else "failed", task.skip or task.error)
    try:
        data, st = read_regular(task.source, follow_symlinks=task.follow_symlinks)
        earlier = None
        if task.target != task.source and not options.relabel:
            earlier = _existing_output(task.target)
        status, out, detail = label_data(task.source.name, data, earlier, policy, options)
        if out is not None:
            group.add(task, out, st.st_mode, durable=_must_sync(task, policy, options))
        return Outcome(task, status, detail)
    except NotRegularFileError as exc:  # it changed since it was planned
        return Outcome(task, "ignored", one_line(exc))
    except Exception as exc:  # one bad file fails alone, whatever a third-party parser raised
        return Outcome(task, "failed", describe_error(exc))


def _must_sync(task: Task, policy: LabelPolicy, options: Options) -> bool:
    """Whether ``task``'s output must be on disk before its rename: always for an original
    (in place) and for what a rerun could not tell torn from whole (text, unsigned labels)."""
    checkable = policy.signing_key is not None and task.target.suffix.lower() not in TEXT_SUFFIXES
    return options.fsync or task.target == task.source or not checkable


#: What an earlier run's output can't be if it was written whole: redo it. A torn file reads
#: as one of these (cut in the label, in the content or empty); an edited one as ALTERED.
_TORN = frozenset({"altered", "unreadable", "no-label", "malformed-label"})


def _whole_output(data: bytes, kind: str) -> bool:
    """Whether an earlier run's labelled output is whole: a signed medium's signature binds its
    bytes, so a copy torn by a power loss (renamed unsynced) fails it. Text and unsigned labels
    can't tell, and are never renamed unsynced (:func:`_must_sync`)."""
    if kind != "media":
        return True
    from .verification import verify

    return verify(data, watermark=False).status.value not in _TORN


def label_data(
    name: str, data: bytes, earlier: bytes | None, policy: LabelPolicy, options: Options
) -> tuple[Literal["labeled", "skipped"], bytes | None, str]:
    """What ``apply`` does to one file's bytes, wherever they are stored (a disk here, an object
    store in :mod:`labeler.distributed`): ``("labeled", output, detail)``, or ``("skipped", None,
    why)`` when the file, or ``earlier`` (the bytes already at its target), carries a label.
    ``name`` says whether it is text (by suffix). Raises for a bad file; callers list it alone."""
    kind = _kind(Path(name), data)
    detail = ""
    if (
        earlier is not None
        and not options.relabel
        and _already_labeled(earlier, kind)
        and _whole_output(earlier, kind)
    ):
        return "skipped", None, "output exists and is labeled"
    if kind == "media":
        c2pa = _c2pa_config(options.c2pa_cert, options.c2pa_key)
        on_existing: OnExisting = "replace" if options.relabel else "keep"
        marks: list[MarkOutcome] = []
        out = label_content(
            data, policy, visible=options.visible, on_existing=on_existing, c2pa=c2pa,
            on_watermark=marks.append,
        )  # fmt: skip
        detail = next((f"{m.status} to watermark" for m in marks if m.refused), "")
        if out is data:  # kept: it carries a label already
            return "skipped", None, "already labeled"
    else:
        if not options.relabel and _already_labeled(data, kind):
            return "skipped", None, "already labeled"
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
    return "labeled", out, detail


class GroupCommit:
    """Atomic, durable writes of many files at the cost of few syncs.

    Each output is written to a temporary beside its target; ``commit()`` makes all of them
    durable together (one ``syncfs`` per file system where Linux offers it, else an ``fsync``
    each), renames each over its target and then syncs each directory once. Whenever the process
    dies, every target is either as it was or completely labelled, never half-written; the
    temporaries of a killed run are removed by the next run that walks their directory.
    An output added with ``durable=False`` is renamed without a sync: whole after a kill (the
    page cache outlives the process), possibly torn after a power loss."""

    def __init__(self) -> None:
        self._pending: list[tuple[Task, Path, int, bool]] = []  # (task, temporary, fd, durable)

    def add(self, task: Task, data: bytes, mode: int, *, durable: bool = True) -> None:
        target = task.target
        try:
            tmp, fd = _create_temp(target)
        except FileNotFoundError:  # its directory is not there yet (asked once, not per file)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp, fd = _create_temp(target)
        try:
            os.fchmod(fd, mode & _KEPT_MODE_BITS)  # the source's bits; mkstemp alone gives 0600
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable and _START_WRITEBACK is not None:  # the disk starts now, not at the sync
                os.posix_fadvise(fd, 0, 0, _START_WRITEBACK)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        self._pending.append((task, tmp, fd, durable))

    def commit(self) -> dict[Task, str]:
        """Sync, rename, sync directories. Returns why each task whose write failed failed."""
        failed: dict[Task, str] = {}
        pending, self._pending = self._pending, []
        try:
            _sync_all([fd for _, _, fd, durable in pending if durable])
        except OSError as exc:  # nothing was renamed: every original is as it was
            for task, tmp, _, _ in pending:
                failed[task] = f"cannot write: {exc.strerror or exc}"
                tmp.unlink(missing_ok=True)
            return failed
        finally:
            for _, _, fd, _ in pending:
                os.close(fd)
        directories: set[Path] = set()
        for task, tmp, _, durable in pending:
            try:
                os.replace(tmp, task.target)
                if durable:
                    directories.add(task.target.parent)
            except OSError as exc:
                failed[task] = f"cannot write: {exc.strerror or exc}"
                tmp.unlink(missing_ok=True)
        for directory in directories:
            _fsync_directory(directory)
        return failed


_temp_count = 0
#: Linux starts writing a file's dirty pages back on POSIX_FADV_DONTNEED (and drops them once
#: clean); elsewhere the hint may drop nothing and start nothing, so it is not given.
_START_WRITEBACK = os.POSIX_FADV_DONTNEED if sys.platform.startswith("linux") else None


def _create_temp(target: Path) -> tuple[Path, int]:
    """A new temporary beside ``target``, named so the next run recognises it as debris."""
    global _temp_count
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        _temp_count += 1
        tmp = target.parent / f".{target.name}{_TEMP_MARK}{os.getpid()}-{_temp_count}"
        try:
            return tmp, os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f".{target.name}{_TEMP_MARK}", dir=target.parent)
    return Path(name), fd


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """Linux ``syncfs(2)``: one call makes every file written on that file system durable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def _sync_all(fds: list[int]) -> None:
    syncfs = _syncfs()
    if syncfs is None or len(fds) < 2:
        for fd in fds:
            os.fsync(fd)
        return
    by_device: dict[int, int] = {}
    for fd in fds:
        by_device.setdefault(os.fstat(fd).st_dev, fd)
    for fd in by_device.values():
        if syncfs(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


def _fsync_directory(directory: Path) -> None:
    """The renames themselves durable; a file system that can't sync a directory just says so."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def propagate_one(task: Task, policy: LabelPolicy, declared: Label | None = None) -> Outcome:
    """Add the platform's propagator fields to one file; like ``label_one`` it never raises for a
    bad file. ``detail`` is the notice a platform shows, e.g. ``show notice: confirmed (Label 1)``."""
    if task.skip or task.error:
        return Outcome(task, "ignored" if task.skip else "failed", task.skip or task.error)
    try:
        from . import propagation
        from .verification import verify

        data, st = read_regular(task.source, follow_symlinks=task.follow_symlinks)
        out = propagation.propagate_bytes(data, policy, declared=declared)
        task.target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(task.target, out, st.st_mode)
        verdict = verify(out)
        label = f" (Label {verdict.record.Label.value})" if verdict.record else ""
        return Outcome(task, "labeled", f"show notice: {verdict.notice}{label}")
    except NotRegularFileError as exc:
        return Outcome(task, "ignored", one_line(exc))
    except Exception as exc:  # one bad file fails alone, whatever a third-party parser raised
        return Outcome(task, "failed", describe_error(exc))


# -- worker processes ----------------------------------------------------------------------------

_WORKER: tuple[LabelPolicy, Options] | None = None


def _init_worker(config: str | None, options: Options) -> None:
    global _WORKER
    _WORKER = (LabelPolicy.load(config), options)  # keys are not picklable: each worker loads its own


def label_files(
    tasks: list[Task],
    *,
    config: str | None,
    options: Options,
    jobs: int = 1,
    progress: Callable[[Outcome], None] | None = None,
) -> Summary:
    """Label ``tasks`` with ``jobs`` worker processes (1: in this process)."""
    summary = Summary()
    for task in tasks:  # never opened, so never sent to a worker
        if task.skip:
            summary.add(outcome := Outcome(task, "ignored", task.skip))
            if progress:
                progress(outcome)
    tasks = [task for task in tasks if not task.skip]
    if jobs <= 1 or len(tasks) <= 1:
        policy = LabelPolicy.load(config)
        for i in range(0, len(tasks), _GROUP):
            for outcome in label_many(tasks[i : i + _GROUP], policy, options):
                summary.add(outcome)
                if progress:
                    progress(outcome)
        return summary
    LabelPolicy.load(config)  # a bad config fails here, once, not in every worker
    size = max(1, min(_GROUP, len(tasks) // (jobs * 8)))
    chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    work = Work(_init_worker, (config, options), _label_unit, _died_labelling, _remove_debris, "labelling")
    for outcome in in_workers(chunks, jobs, work):
        summary.add(outcome)
        if progress:
            progress(outcome)
    return summary


def _label_unit(unit: list[Task]) -> list[Outcome]:
    assert _WORKER is not None
    return label_many(unit, *_WORKER)


def _died_labelling(task: Task) -> Outcome:
    return Outcome(task, "failed", "worker process died while labelling this file")


@dataclass(frozen=True)
class Work(Generic[T, R]):
    """What :func:`in_workers` runs: ``init(*initargs)`` once in each worker process, then
    ``run(unit)`` for each unit of items, one result per item, in order (``run`` goes to the
    workers by name: a module-level function). In this process: ``lost(unit)`` after the worker
    holding ``unit`` died, ``died(item)`` for an item whose worker died with it alone."""

    init: Callable[..., None]
    initargs: tuple[Any, ...]
    run: Callable[[list[T]], list[R]]
    died: Callable[[T], R]
    lost: Callable[[list[T]], None] = lambda unit: None
    doing: str = "working"  #: for the error when workers die before finishing anything


_STARTED: Any = None  #: in a worker: where it says which unit it has started (a SimpleQueue)


def _init_unit_worker(started: Any, init: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    global _STARTED
    _STARTED = started
    init(*initargs)


def _work_unit(run: Callable[[list[T]], list[R]], uid: int, unit: list[T]) -> list[R]:
    _STARTED.put(uid)
    return run(unit)


def in_workers(chunks: list[list[T]], jobs: int, work: Work[T, R]) -> Iterator[R]:
    """The results of ``chunks`` run in ``jobs`` processes (forked where the OS can), as units
    finish, even when a worker dies outright (a crash in a C library, the out-of-memory
    killer), which breaks the whole pool.

    Each worker says which unit (a chunk of items) it starts. After a break, units that never
    started run again as they were; started ones are split into single items; a single item
    whose worker died is run again alone, and if its worker dies again it gets ``work.died``
    while the batch goes on. Every round finishes or shrinks some unit, so the batch never
    hangs and never loops."""
    import multiprocessing  # here, as the pool: `-j 1` starts without them
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn" if os.name != "posix" else "fork")
    todo, suspects = chunks, list[list[T]]()
    while todo or suspects:
        alone = not todo
        units = [suspects.pop()] if alone else todo
        started = ctx.SimpleQueue()
        lost: list[int] = []
        with ProcessPoolExecutor(
            1 if alone else jobs,
            mp_context=ctx,
            initializer=_init_unit_worker,
            initargs=(started, work.init, work.initargs),
        ) as pool:
            futures = {pool.submit(_work_unit, work.run, uid, unit): uid for uid, unit in enumerate(units)}
            for future in _as_completed(futures):
                try:
                    yield from future.result()
                except BrokenProcessPool:
                    lost.append(futures[future])
        began = set()
        while not started.empty():
            began.add(started.get())
        if lost and not began & set(lost):
            raise LabelerError(f"worker processes die before {work.doing} anything (see their output)")
        todo = []
        for uid in lost:
            unit = units[uid]
            work.lost(unit)  # e.g. temporaries of the worker that died; this pool is gone
            if alone:
                yield work.died(unit[0])
            elif uid not in began:
                todo.append(unit)
            elif len(unit) > 1:
                todo.extend([item] for item in unit)
            else:
                suspects.append(unit)


def _remove_debris(tasks: Iterable[Task]) -> None:
    for task in tasks:
        for debris in task.target.parent.glob(f".{glob.escape(task.target.name)}{_TEMP_MARK}*"):
            debris.unlink(missing_ok=True)


def _as_completed(futures: Iterable[Future[list[R]]]) -> Iterator[Future[list[R]]]:
    from concurrent.futures import as_completed

    return as_completed(list(futures))
