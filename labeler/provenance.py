"""The signed provenance record carried in ``ReservedCode1`` (and in our XMP namespace).

Compact, JWS-like token: ``aigcl1.<base64url(JSON payload)>.<base64url(signature)>``. Only
``[A-Za-z0-9._-]``, so it obeys the GB 45438 charset rule. The payload binds what the GB record
lacks (provider name, system and version, UTC time, filing numbers: EU AI Act Art. 50 and
California SB 942 ask for these) to the GB fields (Label, ContentProducer, ProduceID) and to a
SHA-256 digest of the content *excluding the label slot*, so verify can recompute it.

The payload embeds the raw public key, so a verifier can tell "valid signature by an unknown
key" (untrusted) from "invalid signature"; trust is decided separately by a :class:`TrustStore`.

Batch-signed form (records signed together, see :mod:`labeler.merkle`):
``aigcm1.<payload>.<base64url(index || audit path)>.<base64url(JSON batch header)>.<signature>``,
where the header names the key, the batch size ``n`` and the Merkle ``root`` over the batch's
payloads, and the signature is over ``aigcm1.<header>``. The payload is the same as above, so
a batch-signed record says exactly what a singly signed one says.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import jsonfast, merkle
from .errors import InvalidRecordError
from .signing import ALGORITHMS, PublicKey, SigningKey, b64url_decode, b64url_encode

if TYPE_CHECKING:  # policy imports would be circular at run time; only the type is needed
    from .policy import LabelPolicy

__all__ = [
    "BATCH_PREFIX",
    "TOKEN_PREFIX",
    "BatchInclusion",
    "PayloadTemplate",
    "Provenance",
    "SignedProvenance",
    "encode_payload",
    "parse_token",
    "provenance_for",
    "sign",
    "sign_for",
    "sign_payloads",
]

TOKEN_PREFIX = "aigcl1"
BATCH_PREFIX = "aigcm1"
MAX_TOKEN_CHARS = 8192
DIGEST_ALGORITHM = "sha256"


_now_cache: tuple[int, str] = (-1, "")


def utc_now(moment: _dt.datetime | None = None) -> str:
    """``moment`` (default: now) in UTC, ISO 8601 with Z: the one time format we sign."""
    global _now_cache
    if moment is None:  # per response: format each second once
        second = int(time.time())
        if _now_cache[0] != second:
            _now_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
        return _now_cache[1]
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Provenance:
    """What the producer asserts about one piece of content."""

    producer: str  #: == AIGC ContentProducer
    produce_id: str  #: == AIGC ProduceID
    label: str  #: == AIGC Label
    provider: str
    system: str
    system_version: str
    created: str  #: UTC, ISO 8601 with Z
    filing_numbers: tuple[str, ...]
    media_format: str
    content_digest: bytes  #: SHA-256 of the content excluding the label slot
    launch_number: str | None = None
    role: str = "producer"  #: "producer" (ReservedCode1) or "propagator" (ReservedCode2)
    subject_id: str | None = None  #: for a propagator: the producer's ProduceID it vouches for

    def to_payload(self, key: PublicKey) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": 1,
            "alg": key.algorithm,
            "kid": key.key_id,
            "pk": b64url_encode(key.raw),
            "lbl": self.label,
            "pc": self.producer,
            "pid": self.produce_id,
            "pv": self.provider,
            "sys": self.system,
            "ver": self.system_version,
            "t": self.created,
            "fn": list(self.filing_numbers),
            "fmt": self.media_format,
            "dg": f"{DIGEST_ALGORITHM}:{b64url_encode(self.content_digest)}",
        }
        if self.launch_number:
            payload["ln"] = self.launch_number
        if self.role != "producer":
            payload["role"] = self.role
        if self.subject_id:
            payload["of"] = self.subject_id
        return payload


@dataclass(frozen=True)
class BatchInclusion:
    """Where a batch-signed record sits: the proof that its payload is under the signed root."""

    leaf_digest: bytes  #: merkle.leaf_hash(payload)
    index: int
    size: int
    path: tuple[bytes, ...]
    root: bytes  #: as the signed batch header states it

    def holds(self) -> bool:
        return merkle.verify_path(self.leaf_digest, self.index, self.size, self.path, self.root)


@dataclass(frozen=True)
class SignedProvenance:
    """A parsed token. ``signature_valid`` is computed, never trusted from the token."""

    provenance: Provenance
    public_key: PublicKey
    key_id: str
    signing_input: bytes  #: what the signature covers (the batch header for batch tokens)
    signature: bytes
    batch: BatchInclusion | None = None  #: for batch-signed tokens

    @property
    def algorithm(self) -> str:
        return self.public_key.algorithm

    @property
    def algorithm_supported(self) -> bool:
        return self.algorithm in ALGORITHMS

    @property
    def key_id_consistent(self) -> bool:
        return self.key_id == self.public_key.key_id

    def signature_valid(self) -> bool:
        return (
            self.algorithm_supported
            and self.key_id_consistent
            and (self.batch is None or self.batch.holds())
            and self.public_key.verify(self.signature, self.signing_input)
        )


def encode_payload(provenance: Provenance, key: PublicKey) -> bytes:
    """The payload bytes a token carries for ``provenance`` under ``key``."""
    return jsonfast.dumps(provenance.to_payload(key))


class PayloadTemplate:
    """Payload bytes for the many records one service signs per second, the constant part
    (key, provider, system, filing numbers) serialised once. ``payload(...)`` equals
    ``encode_payload(provenance_for(policy, ...), key)`` up to key order (tested)."""

    def __init__(self, policy: LabelPolicy, key: PublicKey) -> None:
        constant = provenance_for(
            policy, produce_id="", media_format="", content_digest=bytes(32), created="-"
        ).to_payload(key)
        for name in ("pid", "t", "fmt", "dg"):
            del constant[name]
        self._head = jsonfast.dumps(constant)[:-1] + b',"pid":'

    def payload(self, produce_id: str, media_format: str, content_digest: bytes) -> bytes:
        return b"".join(
            (
                self._head,
                jsonfast.dumps(produce_id),
                b',"t":"',
                utc_now().encode("ascii"),
                b'","fmt":',
                jsonfast.dumps(media_format),
                b',"dg":"sha256:',
                b64url_encode(content_digest).encode("ascii"),
                b'"}',
            )
        )


def sign(provenance: Provenance, key: SigningKey) -> str:
    """The token for ``provenance`` signed by ``key``."""
    return sign_payloads([encode_payload(provenance, key.public_key)], key)[0]


def sign_payloads(payloads: Sequence[bytes], key: SigningKey) -> list[str]:
    """Tokens for ``payloads`` (from :func:`encode_payload` with ``key``), in order.

    One payload: an ordinary token. Several: batch tokens sharing one signature over the
    Merkle root of all of them (split every :data:`merkle.MAX_LEAVES`).
    """
    tokens: list[str] = []
    for start in range(0, len(payloads), merkle.MAX_LEAVES):
        chunk = payloads[start : start + merkle.MAX_LEAVES]
        if len(chunk) == 1:
            signing_input = f"{TOKEN_PREFIX}.{b64url_encode(chunk[0])}"
            tokens.append(f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}")
            continue
        root, paths = merkle.audit_paths([merkle.leaf_hash(p) for p in chunk])
        public = key.public_key
        header = b64url_encode(
            jsonfast.dumps(
                {
                    "v": 1,
                    "alg": public.algorithm,
                    "kid": public.key_id,
                    "pk": b64url_encode(public.raw),
                    "n": len(chunk),
                    "root": b64url_encode(root),
                }
            )
        )
        signed = f"{header}.{b64url_encode(key.sign(f'{BATCH_PREFIX}.{header}'.encode('ascii')))}"
        for index, (payload, path) in enumerate(zip(chunk, paths, strict=True)):
            proof = b64url_encode(index.to_bytes(4, "big") + b"".join(path))
            tokens.append(f"{BATCH_PREFIX}.{b64url_encode(payload)}.{proof}.{signed}")
    return tokens


def provenance_for(
    policy: LabelPolicy,
    *,
    produce_id: str,
    media_format: str,
    content_digest: bytes,
    label: str = "1",
    created: str | None = None,
    role: str = "producer",
    subject_id: str | None = None,
) -> Provenance:
    """What a policy's service asserts about one piece of content."""
    return Provenance(
        producer=policy.producer,
        produce_id=produce_id,
        label=label,
        provider=policy.provider_name,
        system=policy.system_name,
        system_version=policy.system_version,
        created=created or utc_now(),
        filing_numbers=policy.filing_numbers,
        media_format=media_format,
        content_digest=content_digest,
        launch_number=policy.launch_number,
        role=role,
        subject_id=subject_id,
    )


def sign_for(
    policy: LabelPolicy,
    *,
    produce_id: str,
    media_format: str,
    content_digest: bytes,
    label: str = "1",
    created: str | None = None,
    role: str = "producer",
    subject_id: str | None = None,
) -> str:
    """The token a policy's service signs for one piece of content; ``""`` without a key."""
    if policy.signing_key is None:
        return ""
    provenance = provenance_for(
        policy,
        produce_id=produce_id,
        media_format=media_format,
        content_digest=content_digest,
        label=label,
        created=created,
        role=role,
        subject_id=subject_id,
    )
    return sign(provenance, policy.signing_key)


def _str(payload: dict[str, Any], name: str, required: bool = True) -> str:
    value = payload.get(name, "" if not required else None)
    if not isinstance(value, str):
        raise InvalidRecordError(f"provenance field {name!r} missing or not a string")
    return value


def parse_token(token: str) -> SignedProvenance:
    """Parse (not verify) a token; :class:`InvalidRecordError` on any structural problem."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidRecordError("provenance token missing or too long")
    parts = token.split(".")
    if parts[0] == BATCH_PREFIX and len(parts) == 5:
        return _parse_batch_token(parts)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise InvalidRecordError(f"not a {TOKEN_PREFIX} or {BATCH_PREFIX} provenance token")
    _, payload = _decode_json_part(parts[1])
    try:
        signature = b64url_decode(parts[2])
    except ValueError:
        raise InvalidRecordError("provenance signature is not base64url") from None
    provenance, public_key, key_id = _parse_payload(payload)
    return SignedProvenance(
        provenance=provenance,
        public_key=public_key,
        key_id=key_id,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def _decode_json_part(part: str) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = b64url_decode(part)
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRecordError("provenance token is not base64url JSON") from None
    if not isinstance(value, dict) or value.get("v") != 1:
        raise InvalidRecordError("provenance payload is not a version-1 object")
    return raw, value


def _parse_batch_token(parts: list[str]) -> SignedProvenance:
    _, payload_part, proof_part, header_part, signature_part = parts
    payload_bytes, payload = _decode_json_part(payload_part)
    _, header = _decode_json_part(header_part)
    provenance, public_key, key_id = _parse_payload(payload)
    root_text, algorithm, key_text = _str(header, "root"), _str(header, "alg"), _str(header, "pk")
    try:
        proof = b64url_decode(proof_part)
        signature = b64url_decode(signature_part)
        root = b64url_decode(root_text)
        header_key = PublicKey(algorithm, b64url_decode(key_text))
    except ValueError:
        raise InvalidRecordError("batch proof, root, key or signature is not base64url") from None
    size = header.get("n")
    if (
        len(proof) < 4
        or (len(proof) - 4) % merkle.HASH_SIZE
        or len(root) != merkle.HASH_SIZE
        or not isinstance(size, int)
        or isinstance(size, bool)
    ):
        raise InvalidRecordError("malformed batch proof or header")
    if header_key.algorithm != public_key.algorithm or not hmac.compare_digest(
        header_key.raw, public_key.raw
    ):
        raise InvalidRecordError("batch header names another key than the record")
    path = tuple(proof[i : i + merkle.HASH_SIZE] for i in range(4, len(proof), merkle.HASH_SIZE))
    return SignedProvenance(
        provenance=provenance,
        public_key=public_key,
        key_id=key_id,
        signing_input=f"{BATCH_PREFIX}.{header_part}".encode("ascii"),
        signature=signature,
        batch=BatchInclusion(
            leaf_digest=merkle.leaf_hash(payload_bytes),
            index=int.from_bytes(proof[:4], "big"),
            size=size,
            path=path,
            root=root,
        ),
    )


def _parse_payload(payload: dict[str, Any]) -> tuple[Provenance, PublicKey, str]:
    digest_text = _str(payload, "dg")
    algo, _, digest_b64 = digest_text.partition(":")
    filing = payload.get("fn", [])
    if not isinstance(filing, list) or not all(isinstance(n, str) for n in filing):
        raise InvalidRecordError("provenance field 'fn' must be a list of strings")
    try:
        digest = b64url_decode(digest_b64)
        public_raw = b64url_decode(_str(payload, "pk"))
    except ValueError:
        raise InvalidRecordError("provenance digest or key is not base64url") from None
    if algo != DIGEST_ALGORITHM or len(digest) != 32:
        raise InvalidRecordError(f"unsupported content digest {algo!r}")
    launch, role, subject = payload.get("ln"), payload.get("role", "producer"), payload.get("of")
    provenance = Provenance(
        producer=_str(payload, "pc"),
        produce_id=_str(payload, "pid"),
        label=_str(payload, "lbl"),
        provider=_str(payload, "pv", required=False),
        system=_str(payload, "sys", required=False),
        system_version=_str(payload, "ver", required=False),
        created=_str(payload, "t", required=False),
        filing_numbers=tuple(filing),
        media_format=_str(payload, "fmt", required=False),
        content_digest=digest,
        launch_number=launch if isinstance(launch, str) else None,
        role=role if isinstance(role, str) else "?",
        subject_id=subject if isinstance(subject, str) else None,
    )
    return provenance, PublicKey(_str(payload, "alg"), public_raw), _str(payload, "kid")
