"""The fuzz engine: hypothesis drawing structure-aware mutations of real seeds.

Mutations are what break parsers: bit flips, overwritten bytes, interesting integers written
over length fields, insertions, deletions, duplicated spans, truncation; plus raw random
bytes. Hypothesis shrinks any failure to a minimal input, which is saved under
``fuzz/crashes/``. Any exception other than a target's allowed (typed) ones is a failure.
"""

from __future__ import annotations

import hashlib
import struct
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .targets import Target

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF0]
CRASHES = Path(__file__).resolve().parent / "crashes"


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    if not seeds or draw(st.integers(0, 15)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        n = len(data)
        pos = draw(st.integers(0, max(0, n - 1)))
        op = draw(st.integers(0, 7))
        if n == 0 or op == 0:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == 1:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 2:
            data[pos] = draw(st.integers(0, 255))
        elif op == 3:  # an interesting integer over a length field, either endianness
            value = draw(st.sampled_from(INTERESTING))
            fmt = draw(st.sampled_from([">I", "<I", ">H", "<H"]))
            packed = struct.pack(fmt, value & (0xFFFF if "H" in fmt else 0xFFFFFFFF))
            data[pos : pos + len(packed)] = packed
        elif op == 4:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == 5:
            del data[pos:]
        elif op == 6:
            end = min(n, pos + draw(st.integers(1, 64)))
            data[pos:pos] = data[pos:end] * draw(st.integers(1, 4))
        else:
            data[pos : pos + 1] = b""
    return bytes(data)


@dataclass
class Result:
    target: str
    examples: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def fuzz(target: Target, examples: int, max_seconds: float | None = None, base_seed: int = 0) -> Result:
    """Run ``target`` on up to ``examples`` inputs (in batches of fresh seeds) or until
    ``max_seconds``; stop at the first failure, shrunk and saved."""
    result = Result(target.name)
    seeds = target.seeds()
    start = time.perf_counter()
    batch = min(examples, 2000)
    failures: dict[str, bytes] = {}  # "Error at file:line" -> the smallest input seen

    def check(data: bytes) -> None:
        result.examples += 1
        try:
            target.run(data)
        except target.allowed:
            pass
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{type(exc).__name__}: {str(exc)[:120]} at {Path(frame.filename).name}:{frame.lineno}"
            if where not in failures or len(data) < len(failures[where]):
                failures[where] = data
            raise

    round_no = 0
    while result.examples < examples and not result.failures:
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
        test = settings(
            max_examples=min(batch, examples - result.examples),
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )(seed(base_seed * 1_000_003 + round_no)(given(mutated(seeds))(check)))
        round_no += 1
        try:
            test()
        except Exception:  # a target raised what it must not: save each distinct failure's input
            CRASHES.mkdir(exist_ok=True)
            for where, crash in failures.items():
                digest = hashlib.sha256(crash).hexdigest()[:12]
                safe = "".join(
                    c if c.isalnum() or c in "-_." else "-" for c in target.name
                )  # "a/b" is no path
                path = CRASHES / f"{safe}-{digest}.bin"
                path.write_bytes(crash)
                result.failures.append(f"{where} (input: {path.relative_to(CRASHES.parent.parent)})")
    result.seconds = time.perf_counter() - start
    return result
