"""The ``labeler`` command line: keygen, apply, verify, inspect, demo.

I/O lives here, at the edge: files are read whole, labelled by the pure core, and written
atomically (temp file + rename), so an original is never left half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import LabelerError
from .labeling import label_bytes
from .policy import LabelPolicy
from .signing import SigningKey, TrustStore
from .verification import Status, Verdict, verify

__all__ = ["main"]


def _policy(args: argparse.Namespace) -> LabelPolicy:
    return LabelPolicy.load(args.config)


def _trust(args: argparse.Namespace) -> TrustStore:
    paths = list(args.trust or [])
    if not paths and os.environ.get("LABELER_TRUST"):
        paths = os.environ["LABELER_TRUST"].split(os.pathsep)
    return TrustStore.from_paths(paths)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory + rename: readers see old or new, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def _files(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        else:
            out.append(p)
    return out


def cmd_keygen(args: argparse.Namespace) -> int:
    key = SigningKey.generate(args.algorithm)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{args.name}.pem", out / f"{args.name}.pub.pem"
    if private.exists() and not args.force:
        raise LabelerError(f"{private} exists; pass --force to overwrite")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_pem())
    os.chmod(private, 0o600)
    public.write_bytes(key.public_key.to_pem())
    print(f"algorithm: {key.algorithm}\nkey id:    {key.key_id}")
    print(f"private:   {private} (mode 600)\npublic:    {public}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if not args.in_place and not args.out:
        raise LabelerError("say where results go: --out DIR or --in-place")
    counts = {"labeled": 0, "skipped": 0, "failed": 0}
    for path in _files(args.paths):
        try:
            data = path.read_bytes()
            out = label_bytes(data, policy, on_existing="replace" if args.relabel else "keep")
            if out is data:
                counts["skipped"] += 1
                status = "skipped (already labeled)"
            else:
                target = path if args.in_place else Path(args.out) / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, out)
                counts["labeled"] += 1
                status = f"labeled -> {target}"
        except (LabelerError, OSError) as exc:
            counts["failed"] += 1
            status = f"FAILED: {exc}"
        print(f"{path}: {status}")
    print(", ".join(f"{n} {k}" for k, n in counts.items()))
    return 1 if counts["failed"] else 0


def _verdict_line(path: Path, verdict: Verdict) -> str:
    flags = f"sig={verdict.signature_valid} trusted={verdict.key_trusted} intact={verdict.content_intact}"
    filing = ",".join(verdict.filing_numbers) or "-"
    why = f"  ({'; '.join(verdict.problems)})" if verdict.problems else ""
    return f"{path}: {verdict.status.value} notice={verdict.notice} {flags} filing={filing}{why}"


def cmd_verify(args: argparse.Namespace) -> int:
    trust = _trust(args)
    required = Status(args.require) if args.require else None
    order = list(Status)
    results, failed = [], False
    for path in _files(args.paths):
        try:
            verdict = verify(path.read_bytes(), trust)
        except OSError as exc:
            verdict = Verdict(Status.UNREADABLE, problems=(f"cannot read: {exc.strerror}",))
        if required is not None and order.index(verdict.status) > order.index(required):
            failed = True
        results.append((path, verdict))
        if not args.json:
            print(_verdict_line(path, verdict))
    if args.json:
        print(json.dumps([{"path": str(p), **v.to_dict()} for p, v in results], ensure_ascii=False, indent=2))
    return 1 if failed else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .formats import detect
    from .xmp import read_label

    data = Path(args.file).read_bytes()
    fmt = detect(data)
    packet = fmt.read_xmp(data)
    info = {
        "format": fmt.name,
        "xmp": read_label(packet).__dict__ if packet and read_label(packet) else None,
        "verdict": verify(data, _trust(args)).to_dict(),
    }
    print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.walkthrough import run

    return run(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labeler", description="Label AI-generated content (GB 45438-2025)."
    )
    parser.add_argument("--version", action="version", version=f"labeler {__version__}")
    parser.add_argument("--config", help="TOML policy file (default: $LABELER_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="create a signing key pair (PEM) and print its key id")
    p.add_argument("--algorithm", default="Ed25519", choices=["Ed25519", "ES256"])
    p.add_argument("--out", default="keys", help="directory for NAME.pem and NAME.pub.pem")
    p.add_argument("--name", default="labeler")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("apply", help="write implicit labels + signed provenance into files")
    p.add_argument("paths", nargs="+")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="write labelled copies here")
    where.add_argument("--in-place", action="store_true", help="replace the originals atomically")
    p.add_argument("--relabel", action="store_true", help="replace existing AIGC labels")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("verify", help="check labels, signatures, integrity and trust")
    p.add_argument("paths", nargs="+")
    p.add_argument("--trust", action="append", help="trusted public key PEM file or directory (repeatable)")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--require",
        choices=[s.value for s in Status],
        help="exit 1 when any file is worse than this status (e.g. verified, untrusted)",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="show all label data of one file as JSON")
    p.add_argument("file")
    p.add_argument("--trust", action="append")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("demo", help="label a generated image and verify it, step by step")
    p.add_argument("--out", default="demo-output")
    p.set_defaults(func=cmd_demo)
    return parser


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
