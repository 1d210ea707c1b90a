"""Signature algorithms, keys and the trust store.

Algorithms are looked up by name in a registry, so the record code never names one. Built in:
``Ed25519`` (default), ``ES256`` (ECDSA P-256 + SHA-256, raw ``r||s`` signatures as in JOSE) and,
where OpenSSL 3's libcrypto is present, ``SM2`` (SM3withSM2, as TC260-PG-202511A expects; see
:mod:`labeler.sm2`).

A :class:`SigningKey` is either a private key in this process or a :class:`Signer` held elsewhere
(an HSM, a KMS, a signing service: :mod:`labeler.remote_signer`), so everything that signs takes
the same object. Rotation-aware trust (validity windows, retired and revoked keys) lives in
:mod:`labeler.trust`.

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
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from . import sm2, trust
from .errors import SigningKeyError
from .keyfiles import read_secret_file

__all__ = [
    "ALGORITHMS",
    "PublicKey",
    "SignatureAlgorithm",
    "Signer",
    "SigningKey",
    "TrustStore",
    "b64url_decode",
    "b64url_encode",
    "decide_trust",
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
if sm2.available():
    ALGORITHMS["SM2"] = sm2.Sm2()

#: What ``keygen --alg`` accepts, any case: the registry's names.
ALGORITHM_ALIASES = {"ed25519": "Ed25519", "es256": "ES256", "sm2": "SM2"}


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
        if sm2.is_sm2_pem(pem):
            der = sm2.pem_der(pem)
            assert der is not None
            return cls("SM2", sm2.public_raw_from_spki(der))
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
        elif self.algorithm == "SM2":
            return sm2.to_pem(sm2.public_spki_der(self.raw), "PUBLIC KEY")
        else:
            raise SigningKeyError(f"cannot export {self.algorithm} keys as PEM")
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@runtime_checkable
class Signer(Protocol):
    """A private key held elsewhere (HSM, KMS, a signing service): it signs bytes, and its
    public key is known before the first signature. ``sign`` may block (a network round trip);
    :meth:`SigningKey.sign_async` runs it off the event loop, or calls ``sign_async`` when the
    signer has one."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


class SigningKey:
    """A private key bound to its algorithm, in this process or behind a :class:`Signer`.
    ``repr`` shows only the algorithm and key id."""

    __slots__ = ("_key", "_signer", "algorithm", "public_key")

    def __init__(self, key: object, algorithm: str | None = None) -> None:
        if algorithm is None:
            algorithm = next((n for n, a in ALGORITHMS.items() if a.accepts_private(key)), None)
            if algorithm is None:
                raise SigningKeyError(
                    f"unsupported private key type {type(key).__name__}; use Ed25519, ECDSA P-256 or SM2"
                )
        impl = ALGORITHMS.get(algorithm)
        if impl is None or not impl.accepts_private(key):
            raise SigningKeyError(f"key does not fit algorithm {algorithm!r}")
        self._key = key
        self._signer: Signer | None = None
        self.algorithm = algorithm
        self.public_key = PublicKey(algorithm, impl.public_raw(key))

    @classmethod
    def from_signer(cls, signer: Signer) -> SigningKey:
        """A key whose signatures come from ``signer``; each is checked against the public key
        before use, so a misconfigured KMS fails loudly instead of minting bad records."""
        public = signer.public_key
        if public.algorithm not in ALGORITHMS:
            raise SigningKeyError(f"remote signer uses unknown algorithm {public.algorithm!r}")
        self = cls.__new__(cls)
        self._key, self._signer = None, signer
        self.algorithm, self.public_key = public.algorithm, public
        return self

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    @property
    def remote(self) -> bool:
        """True when signing leaves the process (and may block): sign off the event loop."""
        return self._signer is not None

    def __repr__(self) -> str:
        where = ", remote=True" if self._signer is not None else ""
        return f"SigningKey(algorithm={self.algorithm!r}, key_id={self.key_id!r}{where})"

    def sign(self, data: bytes) -> bytes:
        if self._signer is None:
            return ALGORITHMS[self.algorithm].sign(self._key, data)
        return self._checked(self._signer.sign(data), data)

    async def sign_async(self, data: bytes) -> bytes:
        """:meth:`sign` for event loops: a local key signs inline (microseconds), a remote signer
        via its own ``sign_async`` if it has one, else in a worker thread."""
        signer = self._signer
        if signer is None:
            return self.sign(data)
        native = getattr(signer, "sign_async", None)
        if native is not None:
            return self._checked(await native(data), data)
        import asyncio  # here: asyncio is 15 ms of every `labeler apply` start-up

        return await asyncio.to_thread(self.sign, data)

    def _checked(self, signature: object, data: bytes) -> bytes:
        if not isinstance(signature, bytes) or not self.public_key.verify(signature, data):
            raise SigningKeyError(
                f"remote signer returned a signature that does not verify under key {self.key_id}"
            )
        return signature

    @classmethod
    def generate(cls, algorithm: str = "Ed25519") -> SigningKey:
        impl = ALGORITHMS.get(ALGORITHM_ALIASES.get(algorithm.lower(), algorithm))
        if impl is None:
            raise SigningKeyError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
        return cls(impl.generate(), impl.name)

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> SigningKey:
        if sm2.is_sm2_pem(pem):
            der = sm2.pem_der(pem)
            if password is not None or der is None:
                raise SigningKeyError("encrypted SM2 keys are not supported; store it unencrypted, mode 600")
            return cls(sm2.Sm2PrivateKey.from_der(der), "SM2")
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError):
            # The library's message can echo parts of the input; ours never does.
            raise SigningKeyError("not a readable PEM private key (wrong password or format?)") from None
        return cls(key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], password: bytes | None = None) -> SigningKey:
        """Load a PEM key, refusing files that other users can read (``chmod 600`` them)."""
        pem = read_secret_file(path, "private key file", SigningKeyError)
        return cls.from_pem(pem, password)

    def private_pem(self) -> bytes:
        if self._signer is not None:
            raise SigningKeyError("this key is held by a remote signer; its private part never leaves it")
        if isinstance(self._key, sm2.Sm2PrivateKey):
            return sm2.to_pem(self._key.pkcs8_der(), "PRIVATE KEY")
        assert hasattr(self._key, "private_bytes")
        return self._key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class TrustStore:
    """The public keys whose signatures a verifier accepts as trusted, and, from a key set
    (:mod:`labeler.trust`), when: retired keys within their window, never revoked ones."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self.keys: dict[str, PublicKey] = {}  #: trusted for some time: revoked keys are not here
        self.records: dict[str, trust.KeyRecord] = {}  #: key-set entries by key id
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey, record: trust.KeyRecord | None = None) -> None:
        if record is not None:
            self.records[key.key_id] = record
        known = self.records.get(key.key_id)
        if known is not None and known.status == "revoked":
            self.keys.pop(key.key_id, None)  # revocation wins over a public key file beside it
        else:
            self.keys[key.key_id] = key

    def add_key_set(self, data: bytes) -> None:
        """Add the keys of a ``keys.json``, checking each ``kid`` is its key's own id."""
        for record in trust.parse_key_set(data):
            try:
                key = PublicKey(
                    ALGORITHM_ALIASES.get(record.alg.lower(), record.alg), b64url_decode(record.pk)
                )
            except ValueError:
                raise SigningKeyError(f"key set: key {record.kid}: pk is not base64url") from None
            if key.key_id != record.kid:
                raise SigningKeyError(f"key set: kid {record.kid} is not the id of its key ({key.key_id})")
            self.add(key, record)

    def __len__(self) -> int:
        return len(self.keys)

    def is_trusted(self, key: PublicKey) -> bool:
        """Trusted for some time (not revoked); :meth:`decide` also checks the signing time."""
        known = self.keys.get(key.key_id)
        return (
            known is not None and known.algorithm == key.algorithm and hmac.compare_digest(known.raw, key.raw)
        )

    def decide(self, key: PublicKey, signed_at: str | None) -> trust.TrustDecision:
        """Whether ``key`` is trusted for a record signed at ``signed_at`` (its ``t``)."""
        record = self.records.get(key.key_id)
        if record is not None and record.status == "revoked":  # the id is the key's own hash
            return trust.judge(record, key.key_id, signed_at)
        if not self.is_trusted(key):
            return trust.TrustDecision(
                False, "unknown", f"signing key {key.key_id} is not in the trust store"
            )
        return trust.judge(record, key.key_id, signed_at)

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        on_skip: Callable[[Path, str], None] | None = None,
    ) -> TrustStore:
        """Load PEM public keys and JSON key sets from files, or from a directory: its ``*.pem``
        and its ``keys.json`` (what ``labeler keygen --rotate`` keeps).

        A directory may be the one ``labeler keygen`` writes: its private keys (never opened when
        ``NAME.pub.pem`` sits beside ``NAME.pem``) and its C2PA certificates are passed over. Any
        other file there that can't be read or isn't a public key goes to ``on_skip(path, why)``
        and loading goes on; without ``on_skip`` it raises. A file named directly must be a
        public key or a key set: anything else raises ``SigningKeyError``. A broken key set
        always raises: skipping it could drop a revocation."""
        store = cls()
        for entry in map(Path, paths):
            if not entry.is_dir():
                if entry.suffix == ".json":
                    store.add_key_set(_read_key_set(entry))
                    continue
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
            if (entry / KEY_SET_NAME).exists():
                store.add_key_set(_read_key_set(entry / KEY_SET_NAME))
                found += 1
            if not found and on_skip is not None:
                on_skip(entry, "no public keys in this directory")
        return store


#: The key set ``keygen --rotate`` keeps in a key directory.
KEY_SET_NAME = "keys.json"


def _read_key_set(path: Path) -> bytes:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise SigningKeyError(f"{path}: not a regular file")
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read key set {path}: {exc.strerror}") from None


def decide_trust(store: TrustStore | None, key: PublicKey, signed_at: str | None) -> trust.TrustDecision:
    """:meth:`TrustStore.decide`, and "not in the trust store" without one: the verdict's hook."""
    if store is None:
        return trust.TrustDecision(False, "unknown", f"signing key {key.key_id} is not in the trust store")
    return store.decide(key, signed_at)


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
