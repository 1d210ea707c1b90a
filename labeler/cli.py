"""The ``labeler`` command line: apply, verify, propagate, inspect, keygen, demo.

Errors print one line and no traceback; exit codes: 0 ok, 1 some file failed, could not be read
(or fell below ``--require``), 2 bad usage or configuration. Links, FIFOs, sockets and devices
are listed as skipped, never opened (links are followed by ``--follow-symlinks``, and by ``verify``).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import LabelerError

if TYPE_CHECKING:  # imported where used: `labeler --help` must start in well under 0.1 s
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    from .batch import Outcome, Task
    from .markkey import MarkKey
    from .policy import LabelPolicy
    from .signing import TrustStore
    from .verification import Verdict

#: How long `labeler demo` / `labeler proxy` keep an idle client connection open.
KEEP_ALIVE_SECONDS = 65

#: Status values for --require, from best to worst (tests/test_cli.py checks them against Status)
STATUSES = (
    "verified", "untrusted", "altered", "label-mismatch", "bad-signature", "unsigned",
    "malformed-label", "no-label", "unreadable",
)  # fmt: skip

__all__ = ["main"]


def _warn(text: str) -> None:
    print(f"labeler: {text}", file=sys.stderr)


def _trust(args: argparse.Namespace) -> TrustStore:
    """Keys from ``--trust`` (or ``$LABELER_TRUST``): files, or directories such as the one
    ``keygen`` writes; what a directory holds that can't be used is named on stderr."""
    from .signing import TrustStore

    paths = list(args.trust or [])
    if not paths and os.environ.get("LABELER_TRUST"):
        paths = os.environ["LABELER_TRUST"].split(os.pathsep)
    return TrustStore.from_paths(
        paths, on_skip=lambda path, why: _warn(f"warning: trust: skipped {_show(path)}: {why}")
    )


def _show(path: Path) -> str:
    """A file name on one line: a newline in a name can't forge or split a report line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


class _Unreadable(LabelerError):
    """The file can't be read (missing, no permission...): verify names it and exits 1."""


@dataclasses.dataclass(frozen=True)
class _HowToVerify:
    """What ``verify`` was asked, for every file (and every worker process: plain data)."""

    trust: TrustStore
    c2pa_anchors: str | None = None
    decode_audio: bool = False  #: listen for the rhythm in MP3/FLAC/Ogg (ffmpeg)
    decode_pictures: bool = False  #: look for the visible label drawn on pictures
    marks: _Marks = ((), False)


def _verify_path(path: Path, how: _HowToVerify) -> Verdict:
    """The verdict on one file. Raises ``NotRegularFileError`` (skip it) and ``_Unreadable``."""
    from .batch import TEXT_SUFFIXES, read_regular
    from .verification import verify

    try:
        data, _ = read_regular(path, follow_symlinks=True)
    except OSError as exc:
        raise _Unreadable(f"cannot read: {exc.strerror or exc}") from None
    if path.suffix.lower() in TEXT_SUFFIXES:
        from .verification import verify_text

        return verify_text(data.decode("utf-8", "replace"), how.trust)
    keys, always = how.marks
    return verify(
        data, how.trust, c2pa_anchors=how.c2pa_anchors, decode_audio=how.decode_audio,
        decode_pictures=how.decode_pictures, watermark_keys=keys, watermark=True if always else None,
    )  # fmt: skip


# -- commands --------------------------------------------------------------------------------------


def _refuse_links(paths: Sequence[Path], force: bool) -> None:
    """Before any key is written: a link at a key path would make us write the file it names
    (with --force too); an existing file needs --force."""
    for path in paths:
        if path.is_symlink():
            raise LabelerError(f"{path} is a symbolic link; refusing to write a key through it")
        if path.exists() and not force:
            raise LabelerError(f"{path} exists; pass --force to overwrite")
        if path.exists() and not stat.S_ISREG(path.lstat().st_mode):
            raise LabelerError(f"{path} exists and is not a regular file")


def _write_key_file(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Create ``path`` with ``mode`` without following a link that appeared since we looked."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= os.O_TRUNC if force else os.O_EXCL
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LabelerError(f"{path} is a symbolic link; refusing to write a key through it") from None
        raise
    with os.fdopen(fd, "wb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LabelerError(f"{path} is not a regular file")
        os.fchmod(fd, mode)
        fh.write(data)


def cmd_keygen(args: argparse.Namespace) -> int:
    from .signing import SigningKey

    out = Path(args.out)
    if args.c2pa:
        from .content_credentials import make_test_ca

        names = (f"{args.name}-c2pa-ca.pem", f"{args.name}-c2pa-chain.pem", f"{args.name}-c2pa.key")
        _refuse_links([out / name for name in names], force=True)  # make_test_ca overwrites
        paths = make_test_ca(out, args.name)
        print(f"C2PA test CA:      {paths['ca']} (give to verifiers: --c2pa-trust)")
        print(f"C2PA signer chain: {paths['chain']}\nC2PA signer key:   {paths['key']} (mode 600)")
        print("for tests and demos only: production needs a certificate from a C2PA-recognised CA")
        return 0
    if args.revoke:
        return _revoke_key(out, args.revoke, args.reason)
    if args.watermark:  # the configured policy's watermark key, for platforms that detect
        from .markkey import MarkKey
        from .policy import LabelPolicy

        mark = MarkKey.for_policy(LabelPolicy.load(args.config))
        if mark is None:
            raise LabelerError("no watermark key: the config needs key_file or watermark_key_file")
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{args.name}.watermark.json"
        _refuse_links([path], args.force)
        _write_key_file(path, (mark.to_json() + "\n").encode(), 0o600, args.force)
        print(f"watermark key: {path} (mode 600; give it to verifiers: --watermark-key)")
        return 0
    private, public = out / f"{args.name}.pem", out / f"{args.name}.pub.pem"
    algorithm = args.algorithm or "Ed25519"
    if args.rotate and args.algorithm is None and public.exists():  # rotate within the algorithm
        from .signing import PublicKey

        algorithm = PublicKey.from_pem(public.read_bytes()).algorithm
    key = SigningKey.generate(algorithm)
    out.mkdir(parents=True, exist_ok=True)
    if args.rotate:
        return _rotate_key(out, args.name, key, args.grace)
    _refuse_links([private, public], args.force)
    _write_key_file(private, key.private_pem(), 0o600, args.force)
    _write_key_file(public, key.public_key.to_pem(), 0o644, args.force)
    print(f"algorithm: {key.algorithm}\nkey id:    {key.key_id}")
    print(f"private:   {private} (mode 600)\npublic:    {public}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from .batch import Options, label_files, plan

    if not args.in_place and not args.out:
        raise LabelerError("say where results go: --out DIR or --in-place")
    _check_engine(args)
    out = Path(args.out) if args.out else None
    tasks = [] if args.engine == "ray" else plan(args.paths, out, follow_symlinks=args.follow_symlinks)
    if bool(args.c2pa_cert) != bool(args.c2pa_key):
        raise LabelerError("C2PA needs both --c2pa-cert and --c2pa-key")
    if not args.fsync and args.in_place:
        raise LabelerError(
            "--no-fsync goes with --out: in place, each original is synced before it is replaced"
        )
    if args.max_pixels is not None:  # env wins over the TOML, and reaches the worker processes
        os.environ["LABELER_MAX_PIXELS"] = str(args.max_pixels)
    if args.watermark is not None:  # as --max-pixels: the policy the workers load says it
        os.environ["LABELER_WATERMARK"] = "on" if args.watermark else "off"
    if args.watermark:
        from .explicit.marking import wing

        if wing() is None:
            raise LabelerError("--watermark needs the 'watermark' extra (numpy, scipy)")
    options = Options(
        visible=args.visible,
        relabel=args.relabel,
        text_position=args.text_position,
        c2pa_cert=args.c2pa_cert,
        c2pa_key=args.c2pa_key,
        fsync=args.fsync,
    )
    if args.engine == "ray":  # the scale-out wing: any fsspec URL, on a Ray cluster
        from .distributed import commands

        return commands.apply(args, options)
    _keep_freed_memory()
    show_bar = args.progress if args.progress is not None else sys.stderr.isatty()
    with _progress_bar(len(tasks), show_bar) as bar:

        def progress(outcome: Outcome) -> None:
            bar.update(1)
            if args.verbose or outcome.status in ("failed", "ignored"):
                status = "skipped" if outcome.status == "ignored" else outcome.status
                line = f"{_show(outcome.task.source)}: {status}" + (
                    f": {outcome.detail}" if outcome.detail else ""
                )
                to_stdout = outcome.status in ("labeled", "skipped")
                bar.write(line, file=sys.stdout if to_stdout else sys.stderr)

        summary = label_files(tasks, config=args.config, options=options, jobs=args.jobs, progress=progress)
    if summary.unmarked:  # its own line: the summary stays the last
        print(f"{summary.unmarked} labeled without the invisible watermark (too small or flat to watermark)")
    print(summary)
    return 1 if summary.failed else 0


def _keep_freed_memory() -> None:
    """glibc gives each freed buffer of a few hundred KiB back to the kernel, so every file's
    buffers are faulted in afresh (~4 us a page on a VM: a third of a batch's CPU). Keep freed
    memory for the next file instead; this process is ours and ends with the batch, and forked
    workers inherit the setting."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: buffers up to 32 MiB come from the reusable heap
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: and the heap keeps up to 256 MiB freed


class _NoBar:
    """What ``apply`` needs of a tqdm bar when none is shown: tqdm is not imported for it."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None

    def write(self, line: str, file: Any) -> None:
        print(line, file=file)


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


#: One file's result in ``verify``: (its verdict as ``Verdict.to_dict()``, or None when it is
#: skipped; the line for stderr, or ""; whether it counts as unreadable). Plain data: it crosses
#: from worker processes.
_Checked = tuple["dict[str, Any] | None", str, bool]
#: verify's watermark keys, and whether to look for the mark also under a readable label
_Marks = tuple[tuple["MarkKey", ...], bool]

#: in a worker: what cmd_verify was given
_VERIFYING: _HowToVerify | None = None


def _check(task: Task, how: _HowToVerify) -> _Checked:
    """``verify``'s result for one planned file. Never raises for a bad file."""
    from .batch import NotRegularFileError, describe_error
    from .verification import Status, Verdict

    name = _show(task.source)
    if task.skip or task.error:  # a FIFO, socket, device; or a directory it can't list
        return (
            None,
            f"{name}: skipped: {task.skip}" if task.skip else f"{name}: {task.error}",
            bool(task.error),
        )
    try:
        verdict = _verify_path(task.source, how)
    except NotRegularFileError as exc:  # it became one since plan() looked
        return None, f"{name}: skipped: {exc}", False
    except Exception as exc:  # _Unreadable, or anything a parser raised: this file alone
        why = str(exc) if isinstance(exc, _Unreadable) else describe_error(exc)
        return Verdict(Status.UNREADABLE, problems=(why,)).to_dict(), f"{name}: {why}", True
    return verdict.to_dict(), "", False


def _init_verify_worker(how: _HowToVerify) -> None:
    global _VERIFYING
    _VERIFYING = how


def _verify_unit(unit: list[tuple[int, Task]]) -> list[tuple[int, _Checked]]:
    assert _VERIFYING is not None
    return [(i, _check(task, _VERIFYING)) for i, task in unit]


def _died_verifying(item: tuple[int, Task]) -> tuple[int, _Checked]:
    from .verification import Status, Verdict

    why = "worker process died while verifying this file"
    return item[0], (
        Verdict(Status.UNREADABLE, problems=(why,)).to_dict(),
        f"{_show(item[1].source)}: {why}",
        True,
    )


def _checked_in_order(tasks: list[Task], how: _HowToVerify, jobs: int) -> Iterator[tuple[Task, _Checked]]:
    """Each task's result, in the order of ``tasks``, whatever order ``jobs`` workers finish in."""
    from .batch import Work, in_workers

    todo = [(i, task) for i, task in enumerate(tasks) if not (task.skip or task.error)]
    jobs = min(jobs, len(todo) // _FILES_PER_WORKER)
    if jobs <= 1:
        for task in tasks:
            yield task, _check(task, how)
        return
    size = max(1, min(_VERIFY_UNIT, len(todo) // (jobs * 8)))
    units = [todo[i : i + size] for i in range(0, len(todo), size)]
    work = Work(_init_verify_worker, (how,), _verify_unit, _died_verifying)
    done: dict[int, _Checked] = {}
    at = 0
    for i, checked in in_workers(units, jobs, work):
        done[i] = checked
        while at < len(tasks) and (at in done or tasks[at].skip or tasks[at].error):
            yield (
                tasks[at],
                done.pop(at) if at in done else _check(tasks[at], how),
            )
            at += 1
    for task in tasks[at:]:  # skipped ones after the last file
        yield task, _check(task, how)


#: Files a verify worker is sent at a time (fewer for small batches: each worker gets ~8 units).
_VERIFY_UNIT = 64
#: Fewest files worth a worker: starting one costs ~10 ms, about what it saves on 30 pictures.
_FILES_PER_WORKER = 32


def _watermark_keys(args: argparse.Namespace) -> _Marks:
    """``--watermark-key`` files, else (with ``--watermark``) the configured policy's key."""
    from .markkey import MarkKey

    keys = tuple(MarkKey.from_file(path) for path in args.watermark_key or ())
    if args.watermark and not keys and (args.config or os.environ.get("LABELER_CONFIG")):
        from .policy import LabelPolicy

        own = MarkKey.for_policy(LabelPolicy.load(args.config))
        keys = (own,) if own is not None else ()
    if args.watermark and not keys:
        raise LabelerError("--watermark needs --watermark-key FILE (or --config with a key_file)")
    if keys:
        from .explicit.marking import wing

        if wing() is None:
            raise LabelerError("watermark detection needs the 'watermark' extra (numpy, scipy)")
    return keys, bool(args.watermark)


def cmd_verify(args: argparse.Namespace) -> int:
    from .batch import plan
    from .verification import Status

    trust = _trust(args)
    order = list(Status)
    required = Status(args.require) if args.require else None
    anchors = Path(args.c2pa_trust).read_text() if args.c2pa_trust else None
    marks = _watermark_keys(args)
    _check_engine(args)
    if args.engine == "ray":
        if marks[0]:
            raise LabelerError("--engine ray does not look for watermarks yet")
        from .distributed import commands

        return commands.verify(args, trust, anchors, list(STATUSES), args.require)
    tasks = plan(args.paths, None, follow_symlinks=True)  # reading through a link is harmless
    results: list[tuple[Path, dict[str, Any]]] = []
    unreadable = 0
    how = _HowToVerify(trust, anchors, args.decode_audio, args.decode_pictures, marks)
    for task, (verdict, line, failed_read) in _checked_in_order(tasks, how, args.jobs):
        unreadable += failed_read
        if line:
            print(line, file=sys.stderr)
        if verdict is not None:
            results.append((task.source, verdict))
    failed = bool(unreadable) or (
        required is not None
        and any(order.index(Status(v["status"])) > order.index(required) for _, v in results)
    )
    if args.json:
        print(json.dumps([{"path": str(p), **v} for p, v in results], ensure_ascii=False, indent=2))
        return 1 if failed else 0

    def flag(value: bool | None) -> str:
        return "-" if value is None else "yes" if value else "NO"

    if not results:
        return 1 if failed else 0
    rows = [("FILE", "STATUS", "NOTICE", "SIGNATURE", "TRUSTED", "INTACT", "C2PA", "FILING NUMBER", "WHY")]
    for path, v in results:
        rows.append(
            (
                _show(path),
                v["status"],
                v["notice"],
                flag(v["signature_valid"]),
                flag(v["key_trusted"]),
                flag(v["content_intact"]),
                str(v["c2pa"].get("state")) if v["c2pa"] else "-",
                ",".join(v["filing_numbers"]) or "-",
                "; ".join(v["problems"]),
            )
        )
    print(_table(rows))
    return 1 if failed else 0


def cmd_propagate(args: argparse.Namespace) -> int:
    from .aigc import Label
    from .batch import plan, propagate_one
    from .identifiers import validate_provider_code
    from .policy import LabelPolicy

    code = validate_provider_code(args.as_code)
    if code.role != "propagation":
        _warn(f"warning: {code} is a generation code (position 23 is not 2)")
    policy = LabelPolicy.load(args.config).with_changes(provider_code=code)
    declared = Label.POSSIBLY if args.declared else Label.SUSPECTED if args.suspected else None
    failed = 0
    out = Path(args.out) if args.out else None
    for task in plan(args.paths, out, follow_symlinks=args.follow_symlinks):
        outcome = propagate_one(task, policy, declared)
        if outcome.status == "labeled":
            print(f"{_show(task.source)}: propagated; {outcome.detail}")
        elif outcome.status == "ignored":
            print(f"{_show(task.source)}: skipped: {outcome.detail}", file=sys.stderr)
        else:
            failed += 1
            print(f"{_show(task.source)}: FAILED: {outcome.detail}", file=sys.stderr)
    return 1 if failed else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .batch import TEXT_SUFFIXES, read_regular

    path = Path(args.file)
    data, _ = read_regular(path, follow_symlinks=True)
    info: dict[str, object] = {"file": str(path)}
    if path.suffix.lower() not in TEXT_SUFFIXES:
        from .formats import find_label

        found = find_label(data)
        xmp = {k: v for k, v in found.xmp.__dict__.items() if k != "aigc_values"} if found.xmp else None
        info.update(format=found.format.name, kind=found.format.kind)
        # What the file says, as written: none of it is checked. _Checked facts are only those in
        # verdict.provenance (signed and valid) and verdict.record once the verdict says so.
        stored: dict[str, object] = {"source": found.source, "record": found.record, "xmp": xmp}
        if found.problem:
            stored["problem"] = found.problem
        info["as_stored_unverified"] = stored
    info["verdict"] = _verify_path(path, _HowToVerify(_trust(args))).to_dict()
    print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def _serve_policy(args: argparse.Namespace) -> LabelPolicy:
    from .policy import LabelPolicy

    if args.config or os.environ.get("LABELER_CONFIG") or os.environ.get("LABELER_PROVIDER_NAME"):
        return LabelPolicy.load(args.config)
    from .demo import demo_policy

    return demo_policy()


def _serve(app: object, host: str, port: int, banner: str, workers: int = 1) -> int:
    """Serve ``app`` (with ``workers`` > 1: an import string of an app factory, one per process)."""
    try:
        import uvicorn
    except ImportError:
        raise LabelerError("serving needs uvicorn: pip install 'aigc-labeler[server]'") from None
    print(banner, flush=True)
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from loopback clients.
    # timeout_keep_alive above our clients' pools (the openai SDK's httpx keeps idle connections
    # 5 s, uvicorn's default closes them at 5 s too): equal timeouts race, a reused connection dies.
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        workers=workers if workers > 1 else None,
        factory=workers > 1,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.walkthrough:
        from .demo.walkthrough import run_walkthrough as walkthrough

        return walkthrough(Path(args.out))
    from .demo.server import labeled_app

    policy = _serve_policy(args)
    app = labeled_app(policy, text_position=args.text_position, max_request_body=args.max_request_body)
    key = policy.signing_key.key_id if policy.signing_key else "none (unsigned)"
    banner = (
        f"labeler demo: chat page http://{args.host}:{args.port}/  "
        f"OpenAI-compatible API http://{args.host}:{args.port}/v1  (signing key {key}; Ctrl-C stops)"
    )
    return _serve(app, args.host, args.port, banner)


def cmd_proxy(args: argparse.Namespace) -> int:
    from .middleware import LabelingMiddleware
    from .policy import LabelPolicy
    from .proxy import ProxyApp

    policy = LabelPolicy.load(args.config)
    app = LabelingMiddleware(
        ProxyApp(args.upstream, timeout=args.timeout, trust_forwarded=args.trust_forwarded),
        policy=policy,
        text_position=args.text_position,
        fail_mode=args.fail_mode,
    )
    banner = (
        f"labeler proxy: http://{args.host}:{args.port} -> {args.upstream} (labels by {policy.provider_name})"
    )
    return _serve(app, args.host, args.port, banner)


# -- parser ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labeler", description="Label AI-generated content (GB 45438-2025)."
    )
    parser.add_argument("--version", action="version", version=f"labeler {__version__}")
    parser.add_argument("--config", help="TOML policy file (default: $LABELER_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_apply(sub)
    _add_verify(sub)
    _add_propagate(sub)
    _add_inspect(sub)
    _add_keygen(sub)
    _add_check(sub)
    _add_audit(sub)
    _add_serve(sub)
    _add_demo(sub)
    _add_proxy(sub)
    return parser


def _add_apply(sub: Subparsers) -> None:
    p = sub.add_parser("apply", help="label files and directories (visible + implicit + signature)")
    p.add_argument("paths", nargs="+")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="write labelled copies here, mirroring the input tree")
    where.add_argument("--in-place", action="store_true", help="replace the originals atomically")
    p.add_argument(
        "--visible",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the explicit label too (default: yes): drawn on pictures, prepended to text, "
        "rhythm tones on audio, the opening 2 s of video (compressed audio and video need ffmpeg)",
    )
    p.add_argument(
        "--jobs", "-j", type=int, help="worker processes (default: cores; --engine ray: the cluster's CPUs)"
    )
    p.add_argument("--relabel", action="store_true", help="label files even if they already carry a label")
    p.add_argument("--text-position", choices=["start", "end", "both"], default="start")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="one line per file")
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="label the files symbolic links name (default: list links as skipped); in place, "
        "that writes the linked file",
    )
    p.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sync outputs to disk before renaming them into place (default: yes). --no-fsync, "
        "with --out only: signed copies of media are renamed unsynced, as cp and rsync do; a "
        "killed run still never leaves a half-written file, but a power loss can leave a copy "
        "torn or empty until the next run, which finds it by its signature and labels it again. "
        "Text, unsigned labels and originals (--in-place) are always synced",
    )
    p.add_argument("--c2pa-cert", help="PEM certificate chain (leaf first): also embed C2PA credentials")
    p.add_argument("--c2pa-key", help="PEM private key of the C2PA signer certificate")
    p.add_argument("--max-pixels", type=int, help="decode budget: frames x width x height (default 1e8)")
    p.add_argument(
        "--watermark",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the invisible watermark on pictures, with their visible label (default: the config's, on)",
    )
    _add_engine(p)
    p.set_defaults(func=cmd_apply)


def _check_engine(args: argparse.Namespace) -> None:
    """The local engine refuses the Ray engine's options, and its ``-j`` defaults to the cores."""
    if args.engine == "local":
        if args.address or args.report or args.endpoint_url:
            raise LabelerError("--address, --report and --endpoint-url go with --engine ray")
        args.jobs = args.jobs or os.cpu_count() or 1


def _add_engine(p: argparse.ArgumentParser) -> None:
    """``--engine ray`` and its options: docs/distributed.md."""
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: processes on this machine; ray: a Ray cluster, paths may be any fsspec URL "
        "(s3://, oss://, gs://...); needs pip install 'aigc-labeler[ray,s3]'",
    )
    p.add_argument(
        "--address", help="--engine ray: the cluster (auto, ray://HOST:10001; default: start a local one)"
    )
    p.add_argument("--report", help="--engine ray: the results table, .parquet or .jsonl (a row per file)")
    p.add_argument(
        "--endpoint-url",
        help="--engine ray: the S3-compatible endpoint (MinIO, OSS, COS...); or AWS_ENDPOINT_URL",
    )


def _add_verify(sub: Subparsers) -> None:
    p = sub.add_parser("verify", help="check labels, signatures, integrity, trust, filing numbers")
    p.add_argument("paths", nargs="+")
    p.add_argument("--trust", action="append", help="trusted public key PEM file or directory (repeatable)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--c2pa-trust", help="PEM root certificates that make C2PA credentials 'Trusted'")
    p.add_argument(
        "--decode-audio",
        action="store_true",
        help="also listen for the rhythm label in MP3/FLAC/Ogg (decodes with ffmpeg)",
    )
    p.add_argument(
        "--decode-pictures",
        action="store_true",
        help="also look for the visible label drawn on pictures (decodes the pixels)",
    )
    p.add_argument(
        "--require",
        choices=STATUSES,
        help="exit 1 when any file is worse than this status (e.g. verified, untrusted)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        help="worker processes (default: cores; one per 32 files at most); output in file order either way",
    )
    p.add_argument(
        "--watermark",
        action="store_true",
        help="look for the invisible watermark on every picture (default: only with no readable label)",
    )
    p.add_argument(
        "--watermark-key",
        action="append",
        metavar="FILE",
        help="a watermark key file (keygen --watermark writes one; repeatable): pictures with no "
        "readable label are checked for the mark",
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="--engine ray: progress bar"
    )
    _add_engine(p)
    p.set_defaults(func=cmd_verify)


def cmd_check(args: argparse.Namespace) -> int:
    from . import __version__
    from .platform import check

    trust = _trust(args) if args.trust else None
    if args.before is not None or args.after is not None:
        if args.before is None or args.after is None or args.paths:
            print("labeler check: --before and --after go together, without other files", file=sys.stderr)
            return 2
        before, after = check.check_files([args.before, args.after], trust)
        reports = [before, check.compare(before, after)]
    else:
        if not args.paths:
            print("labeler check: give files, or --before A --after B", file=sys.stderr)
            return 2
        reports = check.check_files(args.paths, trust)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
    elif args.format == "sarif":
        print(json.dumps(check.to_sarif(reports, __version__), ensure_ascii=False, indent=2))
    else:
        print(check.to_text(reports))
    return check.exit_code(reports)


def _add_check(sub: Subparsers) -> None:
    p = sub.add_parser(
        "check", help="lint files for CI: marks present, GB 45438 rules broken, marks a step lost (SARIF)"
    )
    p.add_argument("paths", nargs="*")
    p.add_argument("--before", help="the file before a pipeline step (with --after): what did it lose?")
    p.add_argument("--after", help="the same file after the step")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--trust", action="append", help="trusted public key PEM file or directory (repeatable)")
    p.set_defaults(func=cmd_check)


def cmd_audit(args: argparse.Namespace) -> int:
    from .platform.audit import read_audit

    count = 0
    for entry in read_audit(
        args.log, since=args.since, until=args.until, notice=args.notice, status=args.status, route=args.route
    ):
        count += 1
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
        else:
            digest, name = str(entry.get("digest", ""))[:16], entry.get("filename") or ""
            print(
                f"{entry.get('time', '')}  {entry.get('route', '')}  {entry.get('status', ''):<12} "
                f"{entry.get('notice', ''):<10} {digest}  {name}"
            )
    if not args.json:
        print(f"{count} entries")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .platform.serve import create_app
    from .policy import LabelPolicy

    trust = _trust(args) if args.trust else None
    propagator = LabelPolicy.load(args.config) if args.config or os.environ.get("LABELER_CONFIG") else None
    roles = "verify" + (f" + propagate as {propagator.provider_code}" if propagator else "")
    banner = f"labeler serve: http://{args.host}:{args.port} ({roles}, {args.workers} worker(s))"
    if args.workers > 1:  # each worker process builds the app from the environment it inherits
        if args.trust:
            os.environ["LABELER_TRUST"] = os.pathsep.join(str(Path(p).resolve()) for p in args.trust)
        if args.config:
            os.environ["LABELER_CONFIG"] = str(Path(args.config).resolve())
        os.environ["LABELER_SERVE_MAX_BODY"] = str(args.max_body)
        return _serve(
            "labeler.platform.serve:app_from_environment", args.host, args.port, banner, args.workers
        )
    app = create_app(trust=trust, propagator=propagator, max_body=args.max_body)
    return _serve(app, args.host, args.port, banner)


def _add_serve(sub: Subparsers) -> None:
    p = sub.add_parser(
        "serve", help="verification service: POST /v1/verify, /v1/propagate, and a drop-a-file page"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--trust", action="append", help="trusted public key PEM file or directory (repeatable)")
    p.add_argument("--max-body", type=int, default=64 << 20, help="bytes per upload (default 64 MiB)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes (verifying is CPU-bound: one per core)"
    )
    p.set_defaults(func=cmd_serve)


def _add_audit(sub: Subparsers) -> None:
    p = sub.add_parser("audit", help="read the upload gate's audit log (Measures Art. 9), filtered")
    p.add_argument("log", help="the log file (its rotations LOG.1 ... are read too, oldest first)")
    p.add_argument("--since", help="ISO 8601 UTC time (or a prefix: 2026-11)")
    p.add_argument("--until", help="ISO 8601 UTC time (or a prefix)")
    p.add_argument("--notice", choices=("confirmed", "possible", "suspected", "none"))
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--route")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_audit)


def _add_propagate(sub: Subparsers) -> None:
    p = sub.add_parser("propagate", help="platform role: add propagator fields and sign ReservedCode2")
    p.add_argument("paths", nargs="+")
    p.add_argument("--as", dest="as_code", required=True, help="the platform's 27-char provider code")
    said = p.add_mutually_exclusive_group()
    said.add_argument(
        "--declared", action="store_true", help="unlabelled content the uploader declared AI (Label 2)"
    )
    said.add_argument("--suspected", action="store_true", help="unlabelled content with AI traces (Label 3)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out")
    where.add_argument("--in-place", action="store_true")
    p.add_argument("--follow-symlinks", action="store_true", help="as for apply")
    p.set_defaults(func=cmd_propagate)


def _add_inspect(sub: Subparsers) -> None:
    p = sub.add_parser("inspect", help="show all label data of one file as JSON")
    p.add_argument("file")
    p.add_argument("--trust", action="append")
    p.set_defaults(func=cmd_inspect)


def _add_keygen(sub: Subparsers) -> None:
    p = sub.add_parser("keygen", help="create a signing key pair (PEM) and print its key id")
    p.add_argument(
        "--algorithm",
        "--alg",
        default=None,
        type=lambda name: {"ed25519": "Ed25519", "es256": "ES256", "sm2": "SM2"}.get(name.lower(), name),
        choices=["Ed25519", "ES256", "SM2"],
        help="default Ed25519 (--rotate: the old key's); SM2: SM3withSM2, needs OpenSSL 3's libcrypto",
    )
    p.add_argument("--out", default="keys", help="directory for NAME.pem and NAME.pub.pem")
    p.add_argument("--name", default="labeler")
    p.add_argument("--force", action="store_true")
    p.add_argument("--c2pa", action="store_true", help="instead: a local test CA + C2PA signer certificate")
    p.add_argument(
        "--rotate",
        action="store_true",
        help="new NAME key; the old one retired in OUT/keys.json, still verifiable",
    )
    p.add_argument("--grace", type=float, default=3600.0, help="--rotate: seconds the old key may still sign")
    p.add_argument(
        "--revoke",
        metavar="KID",
        help="instead: mark key KID revoked in OUT/keys.json (write --revoke=KID: an id may begin with '-')",
    )
    p.add_argument("--reason", default="", help="--revoke: why (verifiers show it)")
    p.add_argument(
        "--watermark",
        action="store_true",
        help="instead: write the config's watermark key, NAME.watermark.json",
    )
    p.set_defaults(func=cmd_keygen)


def _rotate_key(out: Path, name: str, key: Any, grace: float) -> int:
    """``keygen --rotate``: the new key takes NAME.pem, the old pair moves to NAME-KID*.pem, and
    ``keys.json`` retires the old key with a window ending ``grace`` seconds from now."""
    import datetime as dt

    from . import trust
    from .signing import KEY_SET_NAME, PublicKey, b64url_encode

    private, public, key_set = out / f"{name}.pem", out / f"{name}.pub.pem", out / KEY_SET_NAME
    records = trust.parse_key_set(key_set.read_bytes()) if key_set.exists() else []
    old = PublicKey.from_pem(public.read_bytes()) if public.exists() else None
    if old is not None and old.key_id not in {r.kid for r in records}:
        records.append(trust.KeyRecord(old.key_id, old.algorithm, b64url_encode(old.raw), name=name))
    now = dt.datetime.now(dt.UTC)
    records = trust.retire(records, trust.utc(now + dt.timedelta(seconds=grace)))
    kept = [out / f"{name}-{old.key_id}.pem", out / f"{name}-{old.key_id}.pub.pem"] if old else []
    _refuse_links([private, public, key_set, *kept], force=True)
    if old is not None:
        _refuse_links(kept, force=False)
        if private.exists():
            private.rename(kept[0])
        public.rename(kept[1])
    pub = key.public_key
    records.append(trust.KeyRecord(pub.key_id, pub.algorithm, b64url_encode(pub.raw), name=name))
    _write_key_file(private, key.private_pem(), 0o600, force=False)
    _write_key_file(public, pub.to_pem(), 0o644, force=False)
    staged = out / f".{KEY_SET_NAME}.new"
    _write_key_file(staged, trust.dump_key_set(records), 0o644, force=True)
    staged.replace(key_set)
    print(f"algorithm: {key.algorithm}\nkey id:    {key.key_id} (active)\nprivate:   {private} (mode 600)")
    print(f"public:    {public}\nkey set:   {key_set} (give to verifiers: --trust {out})")
    if old is not None:
        ends = next(r.not_after for r in records if r.kid == old.key_id)
        print(f"retired:   {old.key_id} (window ends {ends}); its private key is at {kept[0]}:")
        print("           destroy it once no signer uses it")
    return 0


def _revoke_key(out: Path, kid: str, reason: str) -> int:
    """``keygen --revoke KID``: never trust the key again, with the reason verifiers will see."""
    from . import trust
    from .signing import KEY_SET_NAME

    key_set = out / KEY_SET_NAME
    if not key_set.exists():
        raise LabelerError(f"{key_set} does not exist: revocation needs the key set keygen --rotate keeps")
    records = trust.parse_key_set(key_set.read_bytes())
    if kid not in {r.kid for r in records}:
        raise LabelerError(f"no key {kid} in {key_set}")
    records = [
        dataclasses.replace(r, status="revoked", revoked=trust.utc(), reason=reason) if r.kid == kid else r
        for r in records
    ]
    _refuse_links([key_set], force=True)
    staged = out / f".{KEY_SET_NAME}.new"
    _write_key_file(staged, trust.dump_key_set(records), 0o644, force=True)
    staged.replace(key_set)
    print(f"revoked:   {kid} in {key_set}: verifiers that use it now call its records untrusted")
    return 0


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run the demo chat server (a demo model wrapped in the middleware)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--text-position", choices=["start", "end", "both"], default="start")
    p.add_argument(
        "--walkthrough", action="store_true", help="instead: label, verify and tamper with one image"
    )
    p.add_argument("--out", default="demo-output", help="where --walkthrough writes its files")
    p.add_argument("--max-request-body", type=int, default=1024 * 1024, help="bytes; larger bodies get a 413")
    p.set_defaults(func=cmd_demo)


def _add_proxy(sub: Subparsers) -> None:
    p = sub.add_parser("proxy", help="label the answers of any OpenAI-compatible server")
    p.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:11434 (Ollama), http://vllm:8000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--timeout", type=float, default=300.0, help="upstream read timeout, seconds")
    p.add_argument("--text-position", choices=["start", "end", "both"], default="start")
    p.add_argument("--fail-mode", choices=["closed", "open"], default="closed")
    p.add_argument(
        "--trust-forwarded",
        action="store_true",
        help="keep a front proxy's X-Forwarded-* (and append to them)",
    )
    p.set_defaults(func=cmd_proxy)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabelerError as exc:
        print(f"labeler: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"labeler: error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
