"""Signature algorithms, keys and the trust store.

Algorithms are looked up by name in a registry so that SM2 (SM3withSM2, as TC260-PG-202511A
describes) can be added without touching the record code. Built in: ``Ed25519`` (default) and
``ES256`` (ECDSA P-256 + SHA-256, raw ``r||s`` signatures as in JOSE).

Private keys never appear in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import SigningKeyError

__all__ = [
    "ALGORITHMS",
    "PublicKey",
    "SignatureAlgorithm",
    "SigningKey",
    "TrustStore",
    "b64url_decode",
    "b64url_encode",
    "register_algorithm",
]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url; raises ``ValueError`` on anything else (no silent skipping)."""
    if not isinstance(text, str) or _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignatureAlgorithm(Protocol):
    """What an algorithm plug-in provides. Keys are opaque objects of the plug-in's choosing."""

    name: str

    def generate(self) -> object: ...
    def accepts_private(self, key: object) -> bool: ...
    def public_raw(self, private: object) -> bytes: ...
    def sign(self, private: object, data: bytes) -> bytes: ...
    def verify(self, public_raw: bytes, signature: bytes, data: bytes) -> bool: ...


class _Ed25519:
    name = "Ed25519"

    def generate(self) -> object:
        return ed25519.Ed25519PrivateKey.generate()

    def accepts_private(self, key: object) -> bool:
        return isinstance(key, ed25519.Ed25519PrivateKey)

    def public_raw(self, private: object) -> bytes:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, private: object, data: bytes) -> bytes:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        return private.sign(data)

    def verify(self, public_raw: bytes, signature: bytes, data: bytes) -> bool:
        if len(public_raw) != 32 or len(signature) != 64:
            return False
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


class _ES256:
    name = "ES256"

    def generate(self) -> object:
        return ec.generate_private_key(ec.SECP256R1())

    def accepts_private(self, key: object) -> bool:
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)

    def public_raw(self, private: object) -> bytes:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )

    def sign(self, private: object, data: bytes) -> bytes:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, public_raw: bytes, signature: bytes, data: bytes) -> bool:
        if len(public_raw) != 33 or len(signature) != 64:
            return False
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_raw)
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


#: Name -> algorithm. Only names in here are ever verified; "none" and friends never are.
ALGORITHMS: dict[str, SignatureAlgorithm] = {"Ed25519": _Ed25519(), "ES256": _ES256()}


def register_algorithm(algorithm: SignatureAlgorithm) -> None:
    """Add a signature algorithm (e.g. SM2) to the registry under ``algorithm.name``."""
    ALGORITHMS[algorithm.name] = algorithm


def _key_id(algorithm: str, public_raw: bytes) -> str:
    return b64url_encode(hashlib.sha256(algorithm.encode() + b":" + public_raw).digest()[:12])


@dataclass(frozen=True)
class PublicKey:
    """A public key as (algorithm name, raw bytes): what a provenance record carries."""

    algorithm: str
    raw: bytes

    @functools.cached_property
    def key_id(self) -> str:
        """16-char id derived from the key itself, so it can't be claimed for another key."""
        return _key_id(self.algorithm, self.raw)

    def verify(self, signature: bytes, data: bytes) -> bool:
        algorithm = ALGORITHMS.get(self.algorithm)
        return algorithm is not None and algorithm.verify(self.raw, signature, data)

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            raise SigningKeyError("not a PEM public key") from None
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(
                "Ed25519", key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            )
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(
                "ES256",
                key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint),
            )
        raise SigningKeyError(f"unsupported public key type {type(key).__name__}")

    def to_pem(self) -> bytes:
        if self.algorithm == "Ed25519":
            key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey = (
                ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
            )
        elif self.algorithm == "ES256":
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.raw)
        else:
            raise SigningKeyError(f"cannot export {self.algorithm} keys as PEM")
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class SigningKey:
    """A private key bound to its algorithm. ``repr`` shows only the algorithm and key id."""

    __slots__ = ("_key", "algorithm", "public_key")

    def __init__(self, key: object, algorithm: str | None = None) -> None:
        if algorithm is None:
            algorithm = next((n for n, a in ALGORITHMS.items() if a.accepts_private(key)), None)
            if algorithm is None:
                raise SigningKeyError(
                    f"unsupported private key type {type(key).__name__}; use Ed25519 or ECDSA P-256"
                )
        impl = ALGORITHMS.get(algorithm)
        if impl is None or not impl.accepts_private(key):
            raise SigningKeyError(f"key does not fit algorithm {algorithm!r}")
        self._key = key
        self.algorithm = algorithm
        self.public_key = PublicKey(algorithm, impl.public_raw(key))

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def __repr__(self) -> str:
        return f"SigningKey(algorithm={self.algorithm!r}, key_id={self.key_id!r})"

    def sign(self, data: bytes) -> bytes:
        return ALGORITHMS[self.algorithm].sign(self._key, data)

    @classmethod
    def generate(cls, algorithm: str = "Ed25519") -> SigningKey:
        impl = ALGORITHMS.get(algorithm)
        if impl is None:
            raise SigningKeyError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
        return cls(impl.generate(), algorithm)

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError):
            # The library's message can echo parts of the input; ours never does.
            raise SigningKeyError("not a readable PEM private key (wrong password or format?)") from None
        return cls(key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], password: bytes | None = None) -> SigningKey:
        """Load a PEM key, refusing files that other users can read (``chmod 600`` them)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SigningKeyError(
                    f"private key file {path} is accessible to other users "
                    f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
                )
            pem = path.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"cannot read private key file {path}: {exc.strerror}") from None
        return cls.from_pem(pem, password)

    def private_pem(self) -> bytes:
        assert hasattr(self._key, "private_bytes")
        return self._key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class TrustStore:
    """The public keys whose signatures a verifier accepts as trusted."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self.keys: dict[str, PublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey) -> None:
        self.keys[key.key_id] = key

    def __len__(self) -> int:
        return len(self.keys)

    def is_trusted(self, key: PublicKey) -> bool:
        known = self.keys.get(key.key_id)
        return (
            known is not None and known.algorithm == key.algorithm and hmac.compare_digest(known.raw, key.raw)
        )

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        on_skip: Callable[[Path, str], None] | None = None,
    ) -> TrustStore:
        """Load PEM public keys from files, or from every ``*.pem`` in a directory.

        A directory may be the one ``labeler keygen`` writes: its private keys (never opened when
        ``NAME.pub.pem`` sits beside ``NAME.pem``) and its C2PA certificates are passed over. Any
        other file there that can't be read or isn't a public key goes to ``on_skip(path, why)``
        and loading goes on; without ``on_skip`` it raises. A file named directly must be a
        public key: anything else raises ``SigningKeyError``."""
        store = cls()
        for entry in map(Path, paths):
            if not entry.is_dir():
                key, why, _ = _load_public_key(entry)
                if key is None:
                    raise SigningKeyError(f"{entry}: {why}")
                store.add(key)
                continue
            found = 0
            for file in sorted(entry.glob("*.pem")):
                if not file.name.endswith(".pub.pem") and file.with_suffix(".pub.pem").exists():
                    continue  # keygen's NAME.pem: a private key, not even read
                key, why, expected = _load_public_key(file)
                if key is not None:
                    store.add(key)
                    found += 1
                elif not expected:
                    if on_skip is None:
                        raise SigningKeyError(f"{file}: {why}")
                    on_skip(file, why)
            if not found and on_skip is not None:
                on_skip(entry, "no public keys in this directory")
        return store


def _load_public_key(path: Path) -> tuple[PublicKey | None, str, bool]:
    """``(key, "", False)``, or ``(None, why not, expected)``: ``expected`` for what a key
    directory normally holds besides public keys (private keys, certificates)."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):  # a FIFO would block forever
            return None, "not a regular file", False
        pem = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read public key: {exc.strerror}", False
    if b"PRIVATE KEY-----" in pem:
        return None, "a private key: trust its public key (NAME.pub.pem) instead", True
    if b"-----BEGIN CERTIFICATE-----" in pem and b"PUBLIC KEY-----" not in pem:
        return None, "a certificate, not a public key (C2PA trust anchors go to --c2pa-trust)", True
    try:
        return PublicKey.from_pem(pem), "", False
    except SigningKeyError as exc:
        return None, str(exc), False
