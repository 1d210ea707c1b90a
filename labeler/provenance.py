"""The signed provenance record carried in ``ReservedCode1`` (and in our XMP namespace).

Compact, JWS-like token: ``aigcl1.<base64url(JSON payload)>.<base64url(signature)>``. Only
``[A-Za-z0-9._-]``, so it obeys the GB 45438 charset rule. The payload binds what the GB record
lacks (provider name, system and version, UTC time, filing numbers: EU AI Act Art. 50 and
California SB 942 ask for these) to the GB fields (Label, ContentProducer, ProduceID) and to a
SHA-256 digest of the content *excluding the label slot*, so verify can recompute it.

The payload embeds the raw public key, so a verifier can tell "valid signature by an unknown
key" (untrusted) from "invalid signature"; trust is decided separately by a :class:`TrustStore`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidRecordError
from .signing import ALGORITHMS, PublicKey, SigningKey, b64url_decode, b64url_encode

if TYPE_CHECKING:  # policy imports would be circular at run time; only the type is needed
    from .policy import LabelPolicy

__all__ = ["TOKEN_PREFIX", "Provenance", "SignedProvenance", "parse_token", "sign", "sign_for"]

TOKEN_PREFIX = "aigcl1"
MAX_TOKEN_CHARS = 8192
DIGEST_ALGORITHM = "sha256"


def utc_now(moment: _dt.datetime | None = None) -> str:
    """``moment`` (default: now) in UTC, ISO 8601 with Z: the one time format we sign."""
    return (moment or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
class SignedProvenance:
    """A parsed token. ``signature_valid`` is computed, never trusted from the token."""

    provenance: Provenance
    public_key: PublicKey
    key_id: str
    signing_input: bytes
    signature: bytes

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
            and self.public_key.verify(self.signature, self.signing_input)
        )


def sign(provenance: Provenance, key: SigningKey) -> str:
    """The token for ``provenance`` signed by ``key``."""
    payload = json.dumps(
        provenance.to_payload(key.public_key), separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    signing_input = f"{TOKEN_PREFIX}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


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
    return sign(
        Provenance(
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
        ),
        policy.signing_key,
    )


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
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise InvalidRecordError(f"not a {TOKEN_PREFIX} provenance token")
    try:
        payload_bytes = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
        payload = json.loads(payload_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRecordError("provenance token is not base64url JSON") from None
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise InvalidRecordError("provenance payload is not a version-1 object")
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
    return SignedProvenance(
        provenance=provenance,
        public_key=PublicKey(_str(payload, "alg"), public_raw),
        key_id=_str(payload, "kid"),
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )
