"""Signing and verifying per algorithm, and whole verdicts on signed 1 MP JPEGs, in one run.

    .venv/bin/python benchmarks/bench_signing.py [--files 200] [--runs 5] [--n 2000]

One process, one core. Rows, each the median of ``--runs`` passes:
  sign / verify             one signature over a 600-byte signing input (a token's payload),
                            per registered algorithm (Ed25519, ES256, SM2 through libcrypto)
  batch of 32 tokens        sign_payloads() for 32 records: one signature over a Merkle root
  verify() JPEG             labeler.verify(data, trust) on ``--files`` distinct 1 MP q90 JPEGs
                            (files in memory) labelled with a key of that algorithm: every
                            verdict must be "verified"
  sha256 of the file        the anchor: every verdict hashes the file once
  gmssl / tongsuopy SM2     other SM2 implementations, when importable (not dependencies)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_verify import pictures  # noqa: E402
from labeler import LabelPolicy, SigningKey, TrustStore, label_bytes  # noqa: E402
from labeler.provenance import encode_payload, sign_payloads  # noqa: E402
from labeler.signing import ALGORITHMS  # noqa: E402
from labeler.verification import Status, verify  # noqa: E402

MESSAGE = b"aigcl1." + b"x" * 593


def rate(fn: Callable[[], object], n: int, runs: int) -> float:
    """Calls per second: the median over ``runs`` passes of ``n`` calls."""
    fn()
    passes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        passes.append(n / (time.perf_counter() - t0))
    return statistics.median(passes)


def files_per_second(fn: Callable[[bytes], object], files: list[bytes], runs: int) -> float:
    passes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for data in files:
            fn(data)
        passes.append(len(files) / (time.perf_counter() - t0))
    return statistics.median(passes)


def policy(key: SigningKey) -> LabelPolicy:
    return LabelPolicy(
        provider_name="示例智能科技有限公司",
        provider_code="001191440300708461136T1XGW3",
        filing_numbers=("Beijing-YunQue-20230821",),
        system_name="YunQue",
        system_version="2.1",
        signing_key=key,
    )


def other_sm2(n: int, runs: int) -> list[tuple[str, float, float]]:
    rows = []
    try:
        from gmssl import sm2 as gm  # type: ignore[import-not-found]

        d = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
        signer = gm.CryptSM2(
            private_key=d, public_key=gm.CryptSM2(d, "")._kg(int(d, 16), gm.default_ecc_table["g"])
        )
        sig = signer.sign_with_sm3(MESSAGE)
        few = max(n // 100, 10)
        rows.append(("gmssl (pure Python)", rate(lambda: signer.sign_with_sm3(MESSAGE), few, runs),
                     rate(lambda: signer.verify_with_sm3(sig, MESSAGE), few, runs)))  # fmt: skip
    except ImportError:
        pass
    try:
        from tongsuopy.crypto import hashes  # type: ignore[import-not-found]
        from tongsuopy.crypto.asymciphers import ec  # type: ignore[import-not-found]

        key = ec.generate_private_key(ec.SM2())
        algo = ec.ECDSA(hashes.SM3())
        sig = key.sign(MESSAGE, algo)
        pub = key.public_key()
        rows.append(("tongsuopy (Tongsuo, C)", rate(lambda: key.sign(MESSAGE, algo), n, runs),
                     rate(lambda: pub.verify(sig, MESSAGE, algo), n, runs)))  # fmt: skip
    except ImportError:
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="signatures per pass")
    args, _ = parser.parse_known_args()
    print(f"one core; {args.runs} passes, median; {args.files} distinct 1 MP q90 JPEGs in memory")
    print(f"{'row':44} {'per second':>12} {'µs each':>9}")

    def row(name: str, per_second: float) -> None:
        print(f"{name:44} {per_second:12,.0f} {1e6 / per_second:9.1f}")

    jpegs = pictures(args.files, "JPEG")
    row(
        "sha256 of the file (anchor)",
        files_per_second(lambda d: hashlib.sha256(d).digest(), jpegs, args.runs),
    )
    for name in ALGORITHMS:
        key = SigningKey.generate(name)
        sig = key.sign(MESSAGE)
        row(f"{name}: sign", rate(lambda k=key: k.sign(MESSAGE), args.n, args.runs))
        row(f"{name}: verify", rate(lambda k=key, s=sig: k.public_key.verify(s, MESSAGE), args.n, args.runs))
        payloads = [encode_payload_for(key, i) for i in range(32)]
        batches = rate(lambda k=key, p=payloads: sign_payloads(p, k), max(args.n // 32, 10), args.runs)
        row(f"{name}: batch of 32 tokens (tokens/s)", batches * 32)
        labelled = [label_bytes(data, policy(key)) for data in jpegs]
        trust = TrustStore([key.public_key])
        assert all(verify(d, trust).status is Status.VERIFIED for d in labelled[:5])
        row(
            f"{name}: verify() 1 MP JPEG (files/s)",
            files_per_second(lambda d, t=trust: verify(d, t), labelled, args.runs),
        )
    for name, signs, verifies in other_sm2(args.n, args.runs):
        row(f"{name}: sign", signs)
        row(f"{name}: verify", verifies)


def encode_payload_for(key: SigningKey, i: int) -> bytes:
    from labeler.provenance import provenance_for

    prov = provenance_for(policy(key), produce_id=f"p{i:030d}", media_format="jpeg", content_digest=bytes(32))
    return encode_payload(dataclasses.replace(prov), key.public_key)


if __name__ == "__main__":
    main()
