from __future__ import annotations

import asyncio
import dataclasses

import pytest
from test_provenance import PROV

from labeler.batch_signing import BatchSigner
from labeler.provenance import BATCH_PREFIX, TOKEN_PREFIX, encode_payload, parse_token
from labeler.signing import SigningKey


def _payload(key: SigningKey, i: int) -> bytes:
    return encode_payload(dataclasses.replace(PROV, produce_id=f"p{i}"), key.public_key)


def test_requests_of_one_loop_turn_share_a_signature() -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key)

    async def main() -> list[str]:
        return await asyncio.gather(*(signer.sign(_payload(key, i)) for i in range(20)))

    tokens = asyncio.run(main())
    assert signer.batches == 1 and signer.signed == 20
    for i, token in enumerate(tokens):  # each waiter got the token for its own payload
        signed = parse_token(token)
        assert token.startswith(BATCH_PREFIX) and signed.signature_valid()
        assert signed.provenance.produce_id == f"p{i}"


def test_a_lone_request_is_not_delayed_into_a_batch() -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key)

    async def main() -> list[str]:
        return [await signer.sign(_payload(key, i)) for i in range(3)]  # one after another

    tokens = asyncio.run(main())
    assert signer.batches == 3
    assert all(t.startswith(TOKEN_PREFIX + ".") and parse_token(t).signature_valid() for t in tokens)


def test_cancelled_waiters_are_left_out() -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key)

    async def main() -> str:
        gone = asyncio.ensure_future(signer.sign(_payload(key, 0)))
        kept = asyncio.ensure_future(signer.sign(_payload(key, 1)))
        await asyncio.sleep(0)  # both are waiting now
        gone.cancel()
        return await kept

    token = asyncio.run(main())
    assert signer.signed == 1 and parse_token(token).provenance.produce_id == "p1"


def test_a_failing_key_fails_every_waiter_cleanly() -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key)

    class Broken(RuntimeError):
        pass

    def explode(data: bytes) -> bytes:
        raise Broken("hardware token unplugged")

    signer.key = _KeyWith(key, explode)  # type: ignore[assignment]

    async def main() -> list[object]:
        return await asyncio.gather(
            *(signer.sign(_payload(key, i)) for i in range(3)), return_exceptions=True
        )

    assert all(isinstance(r, Broken) for r in asyncio.run(main()))


class _KeyWith:
    """A signing key whose ``sign`` is replaced, for failure tests."""

    def __init__(self, key: SigningKey, sign: object) -> None:
        self.public_key = key.public_key
        self.sign = sign


def test_each_event_loop_batches_on_its_own() -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key)

    async def main(offset: int) -> list[str]:
        return await asyncio.gather(*(signer.sign(_payload(key, offset + i)) for i in range(4)))

    first, second = asyncio.run(main(0)), asyncio.run(main(10))
    assert signer.batches == 2
    assert [parse_token(t).provenance.produce_id for t in first + second] == [
        "p0", "p1", "p2", "p3", "p10", "p11", "p12", "p13"
    ]  # fmt: skip
    assert "SigningKey" in repr(signer) and "PRIVATE" not in repr(signer)


@pytest.mark.parametrize("n", [2, 64, 300])
def test_batches_of_many_sizes_verify(n: int) -> None:
    key = SigningKey.generate("ES256")
    signer = BatchSigner(key)

    async def main() -> list[str]:
        return await asyncio.gather(*(signer.sign(_payload(key, i)) for i in range(n)))

    assert all(parse_token(t).signature_valid() for t in asyncio.run(main()))
