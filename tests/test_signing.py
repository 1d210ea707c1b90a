from __future__ import annotations

import os
from pathlib import Path

import pytest

from labeler.errors import SigningKeyError
from labeler.signing import (
    ALGORITHMS,
    PublicKey,
    SigningKey,
    TrustStore,
    b64url_decode,
    b64url_encode,
)


@pytest.mark.parametrize("algorithm, raw_len", [("Ed25519", 32), ("ES256", 33)])
def test_sign_and_verify(algorithm: str, raw_len: int) -> None:
    key = SigningKey.generate(algorithm)
    sig = key.sign(b"data")
    assert len(sig) == 64 and len(key.public_key.raw) == raw_len
    assert key.public_key.verify(sig, b"data")
    assert not key.public_key.verify(sig, b"datA")
    assert not key.public_key.verify(sig[:-1], b"data")
    assert not SigningKey.generate(algorithm).public_key.verify(sig, b"data")


def test_algorithm_confusion_is_refused() -> None:
    ed, ec = SigningKey.generate("Ed25519"), SigningKey.generate("ES256")
    sig = ed.sign(b"m")
    assert not PublicKey("ES256", ed.public_key.raw).verify(sig, b"m")
    assert not PublicKey("none", ed.public_key.raw).verify(b"", b"m")
    assert not PublicKey("Ed25519", ec.public_key.raw).verify(ec.sign(b"m"), b"m")
    assert "none" not in ALGORITHMS


def test_key_id_is_derived_from_the_key() -> None:
    key = SigningKey.generate()
    assert key.key_id == key.public_key.key_id and len(key.key_id) == 16
    assert SigningKey.generate().key_id != key.key_id


def test_repr_never_shows_key_material() -> None:
    key = SigningKey.generate()
    pem = key.private_pem().decode()
    body = "".join(pem.splitlines()[1:-1])
    assert body not in repr(key) and "PRIVATE" not in repr(key)
    assert repr(key) == f"SigningKey(algorithm='Ed25519', key_id='{key.key_id}')"


@pytest.mark.parametrize("algorithm", ["Ed25519", "ES256"])
def test_pem_round_trip(algorithm: str, tmp_path: Path) -> None:
    key = SigningKey.generate(algorithm)
    path = tmp_path / "k.pem"
    path.write_bytes(key.private_pem())
    path.chmod(0o600)
    loaded = SigningKey.from_file(path)
    assert loaded.public_key == key.public_key
    assert PublicKey.from_pem(key.public_key.to_pem()) == key.public_key


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_group_readable_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(SigningKey.generate().private_pem())
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        SigningKey.from_file(path)


def test_garbage_pem_error_does_not_echo_input() -> None:
    secret = b"-----BEGIN PRIVATE KEY-----\nTOPSECRETxxxx\n-----END PRIVATE KEY-----\n"
    with pytest.raises(SigningKeyError) as info:
        SigningKey.from_pem(secret)
    assert "TOPSECRET" not in str(info.value)


def test_unsupported_key_type() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    with pytest.raises(SigningKeyError, match="unsupported private key type"):
        SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(SigningKeyError, match="unknown algorithm"):
        SigningKey.generate("HS256")


def test_trust_store(tmp_path: Path) -> None:
    a, b = SigningKey.generate(), SigningKey.generate("ES256")
    (tmp_path / "a.pem").write_bytes(a.public_key.to_pem())
    (tmp_path / "b.pem").write_bytes(b.public_key.to_pem())
    store = TrustStore.from_paths([tmp_path])
    assert len(store) == 2 and store.is_trusted(a.public_key) and store.is_trusted(b.public_key)
    assert not store.is_trusted(SigningKey.generate().public_key)
    assert not TrustStore().is_trusted(a.public_key)


def test_b64url_is_strict() -> None:
    assert b64url_decode(b64url_encode(b"\xfb\xff")) == b"\xfb\xff"
    for bad in ("+/==", "ab=", "a", "ab!c", "é"):
        with pytest.raises(ValueError):
            b64url_decode(bad)
