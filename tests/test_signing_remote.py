"""Remote signers: a key held by a signing service over real HTTP on loopback (the example
service in examples/remote_signer/), used for single, batch and async signatures."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES
from test_provenance import PROV

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify
from labeler.batch_signing import BatchSigner
from labeler.errors import SigningKeyError
from labeler.provenance import BATCH_PREFIX, encode_payload, parse_token, sign
from labeler.remote_signer import HttpSigner, remote_key
from labeler.signing import ALGORITHMS, PublicKey, SigningKey

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t0ken-for-tests"


def _service() -> Any:
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("examples.remote_signer.signing_service")


@pytest.fixture(scope="module", params=["Ed25519", "SM2"] if "SM2" in ALGORITHMS else ["Ed25519"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, SigningKey]]:
    """A signing service on loopback holding a fresh key: (its /sign URL, the key)."""
    held = SigningKey.generate(request.param)
    server = _service().make_server(held, token=TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/sign", held
    server.shutdown()
    server.server_close()


def test_labels_signed_remotely_verify(served: tuple[str, SigningKey], policy: LabelPolicy) -> None:
    url, held = served
    key = remote_key(url, held.public_key.to_pem(), token=TOKEN)
    assert key.remote and key.key_id == held.key_id
    assert TOKEN not in repr(HttpSigner(url, held.public_key, token=TOKEN))
    labelled = label_bytes(SAMPLES["png"], dataclasses.replace(policy, signing_key=key))
    verdict = verify(labelled, TrustStore([held.public_key]))
    assert verdict.status is Status.VERIFIED
    with pytest.raises(SigningKeyError, match="remote signer"):
        key.private_pem()


def test_batch_and_async_signing_through_the_service(served: tuple[str, SigningKey]) -> None:
    url, held = served
    key = SigningKey.from_signer(HttpSigner(url, held.public_key, token=TOKEN))
    batcher = BatchSigner(key)

    async def main() -> tuple[list[str], list[bytes]]:
        tokens = await asyncio.gather(
            *(
                batcher.sign(encode_payload(dataclasses.replace(PROV, produce_id=f"p{i}"), key.public_key))
                for i in range(16)
            )
        )
        signatures = await asyncio.gather(*(key.sign_async(b"m%d" % i) for i in range(8)))  # threads
        return list(tokens), list(signatures)

    tokens, signatures = asyncio.run(main())
    assert batcher.batches == 1  # one round trip to the service for 16 records
    assert all(t.startswith(BATCH_PREFIX) and parse_token(t).signature_valid() for t in tokens)
    assert all(held.public_key.verify(s, b"m%d" % i) for i, s in enumerate(signatures))


def test_a_native_async_signer_is_awaited() -> None:
    held = SigningKey.generate()

    class AsyncOnly:
        public_key = held.public_key

        def sign(self, data: bytes) -> bytes:
            raise AssertionError("the async path must not block")

        async def sign_async(self, data: bytes) -> bytes:
            await asyncio.sleep(0)
            return held.sign(data)

    key = SigningKey.from_signer(AsyncOnly())
    assert held.public_key.verify(asyncio.run(key.sign_async(b"x")), b"x")


def test_service_refusals_and_a_wrong_pinned_key_fail_loudly(served: tuple[str, SigningKey]) -> None:
    url, held = served
    with pytest.raises(SigningKeyError, match="answered 401"):
        remote_key(url, held.public_key.to_pem(), token="wrong").sign(b"x")
    other = SigningKey.generate(held.algorithm).public_key
    with pytest.raises(SigningKeyError, match="does not verify"):
        sign(PROV, SigningKey.from_signer(HttpSigner(url, other, token=TOKEN)))
    with pytest.raises(SigningKeyError, match="unreachable"):
        HttpSigner("http://127.0.0.1:9/sign", held.public_key).sign(b"x")
    with pytest.raises(SigningKeyError, match="plain http"):
        HttpSigner("http://kms.example.com/sign", held.public_key, token="x")


def test_the_example_client_labels_through_the_service(
    served: tuple[str, SigningKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, held = served
    (tmp_path / "pub.pem").write_bytes(held.public_key.to_pem())
    (tmp_path / "in.png").write_bytes(SAMPLES["png"])
    monkeypatch.setenv("SIGNER_TOKEN", TOKEN)
    _service()
    client = importlib.import_module("examples.remote_signer.label_with_remote_key")
    status = client.main(url, str(tmp_path / "pub.pem"), str(tmp_path / "in.png"), str(tmp_path / "out.png"))
    assert status == "verified"
    import urllib.request

    with urllib.request.urlopen(url.replace("/sign", "/public-key")) as answer:
        assert PublicKey.from_pem(answer.read()) == held.public_key


def test_batch_signing_with_a_remote_key_never_blocks_the_event_loop() -> None:
    """A KMS that takes 300 ms per signature: the middleware's batch signer signs in a thread,
    so the loop keeps serving (a ticker keeps ticking) while the round trip is under way."""
    import time

    held = SigningKey.generate()

    class SlowKms:
        public_key = held.public_key

        def sign(self, data: bytes) -> bytes:
            time.sleep(0.3)  # a round trip to the KMS, synchronous as most SDKs are
            return held.sign(data)

    key = SigningKey.from_signer(SlowKms())
    batcher = BatchSigner(key)

    async def main() -> tuple[list[str], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        payloads = [
            encode_payload(dataclasses.replace(PROV, produce_id=f"r{i}"), key.public_key) for i in range(4)
        ]
        tokens = await asyncio.gather(*(batcher.sign(p) for p in payloads))
        tick.cancel()
        return list(tokens), ticks

    tokens, ticks = asyncio.run(main())
    assert batcher.batches == 1 and all(parse_token(t).signature_valid() for t in tokens)
    assert ticks >= 10  # the loop ran on during the 300 ms signature (blocked, it would be 0-1)
