"""``python -m fuzz [--examples N] [--seconds S] [--jobs J] [TARGET ...]``: run the fuzz targets,
print a table (target, examples, seconds, failures); exit 1 if any target failed."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor

from .engine import Result, fuzz
from .targets import all_targets


def _run(name: str, examples: int, seconds: float | None, seed: int) -> Result:
    target = next(t for t in all_targets() if t.name == name)  # targets hold lambdas: pass names
    return fuzz(target, examples, seconds, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz", description=__doc__)
    parser.add_argument("targets", nargs="*", help="substrings of target names (default: all)")
    parser.add_argument("--examples", type=int, default=100_000, help="per target (default 100,000)")
    parser.add_argument("--seconds", type=float, default=None, help="time limit per target")
    parser.add_argument("--seed", type=int, default=0, help="base seed (runs are reproducible)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="targets fuzzed in parallel processes")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)
    names = [t.name for t in all_targets() if not args.targets or any(s in t.name for s in args.targets)]
    if args.list:
        print("\n".join(names))
        return 0
    failed = total = 0
    print(f"{'target':<26} {'examples':>9} {'seconds':>8}  result", flush=True)
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        jobs = [pool.submit(_run, name, args.examples, args.seconds, args.seed) for name in names]
        for job in jobs:
            result = job.result()
            total += result.examples
            status = "ok" if not result.failures else "FAILED: " + "; ".join(result.failures)
            failed += bool(result.failures)
            print(f"{result.target:<26} {result.examples:>9,} {result.seconds:>8.1f}  {status}", flush=True)
    print(f"{len(names)} targets, {total:,} examples, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
