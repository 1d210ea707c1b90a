"""Key sets: which keys a verifier trusts, and for content signed when.

A key is rotated, not replaced: the old key becomes ``retired`` with a validity window that ends
at the rotation, so what it signed before still verifies (and the verdict says the key is
retired), while a record claiming a later time under it does not. A ``revoked`` key (leaked,
misused) is never trusted again, whatever the record claims, and the verdict gives the reason.

The file (``keys.json``, as ``labeler keygen --rotate`` keeps it)::

    {"keys": [{"kid": "...", "alg": "Ed25519", "pk": "<base64url raw key>",
               "status": "active" | "retired" | "revoked",
               "not_before": "2026-01-01T00:00:00Z", "not_after": null,
               "revoked": null, "reason": "", "name": "labeler-20260101"}]}

Pure data: this module reads, writes and judges entries; :class:`labeler.signing.TrustStore`
holds them next to the public keys.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from .errors import SigningKeyError

__all__ = ["KeyRecord", "TrustDecision", "dump_key_set", "judge", "parse_key_set", "retire", "utc"]

KeyState = Literal["active", "retired", "revoked"]
_STATES = ("active", "retired", "revoked")


def utc(moment: _dt.datetime | None = None) -> str:
    """``moment`` (default now) as the ISO 8601 UTC text records carry."""
    return (moment or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> _dt.datetime | None:
    if text is None:
        return None
    moment = _dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.UTC)


@dataclass(frozen=True)
class KeyRecord:
    """One key of a key set and its life: when it may have signed, and whether it still may."""

    kid: str
    alg: str
    pk: str  #: base64url of the raw public key, as records carry it
    status: KeyState = "active"
    not_before: str | None = None  #: signed earlier than this: not by this key
    not_after: str | None = None  #: signed later than this: not by this key (set on retirement)
    revoked: str | None = None
    reason: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.status not in _STATES:
            raise SigningKeyError(f"key {self.kid}: status must be one of {', '.join(_STATES)}")
        for name in ("not_before", "not_after", "revoked"):
            try:
                _time(getattr(self, name))
            except (TypeError, ValueError):
                raise SigningKeyError(f"key {self.kid}: {name} is not an ISO 8601 time") from None


@dataclass(frozen=True)
class TrustDecision:
    """Whether a record's key is trusted for the time it claims. ``problem`` says why not, or
    (trusted) that the key is retired."""

    trusted: bool
    key_status: str  #: active, retired, revoked, outside-window, unknown
    problem: str | None = None


def judge(record: KeyRecord | None, kid: str, signed_at: str | None) -> TrustDecision:
    """The decision for key ``kid`` (``record`` its entry, ``None`` when no key set names it:
    a plain trusted key, active without a window) and a record signed at ``signed_at``."""
    if record is None:
        return TrustDecision(True, "active")
    if record.status == "revoked":
        when = f" on {record.revoked}" if record.revoked else ""
        why = f": {record.reason}" if record.reason else ""
        return TrustDecision(False, "revoked", f"signing key {kid} was revoked{when}{why}")
    start, end = _time(record.not_before), _time(record.not_after)
    if start is not None or end is not None:
        try:
            moment = _time(signed_at or None)
        except ValueError:
            moment = None
        window = f"[{record.not_before or '…'}, {record.not_after or '…'}]"
        if moment is None:
            return TrustDecision(
                False,
                "outside-window",
                f"record has no signing time to check against key {kid}'s window {window}",
            )
        if (start is not None and moment < start) or (end is not None and moment > end):
            return TrustDecision(
                False,
                "outside-window",
                f"signed at {signed_at}, outside key {kid}'s validity window {window}",
            )
    if record.status == "retired":
        since = f" since {record.not_after}" if record.not_after else ""
        return TrustDecision(
            True, "retired", f"signing key {kid} is retired{since}; signed at {signed_at}, within its window"
        )
    return TrustDecision(True, "active")


def parse_key_set(data: bytes) -> list[KeyRecord]:
    """The entries of a ``keys.json``; :class:`SigningKeyError` names what is wrong."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise SigningKeyError("key set is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise SigningKeyError('key set must be an object with a "keys" list')
    out = []
    fields = set(KeyRecord.__dataclass_fields__)
    for number, entry in enumerate(keys):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(n), str) for n in ("kid", "alg", "pk")
        ):
            raise SigningKeyError(f"key set entry {number}: needs string kid, alg and pk")
        unknown = set(entry) - fields
        if unknown:
            raise SigningKeyError(f"key set entry {number}: unknown fields {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {k: v for k, v in entry.items() if v is not None}
        if not all(isinstance(v, str) for v in values.values()):
            raise SigningKeyError(f"key set entry {number}: values must be strings or null")
        out.append(KeyRecord(**values))
    return out


def dump_key_set(records: list[KeyRecord]) -> bytes:
    return (json.dumps({"keys": [asdict(r) for r in records]}, indent=2, ensure_ascii=False) + "\n").encode()


def retire(records: list[KeyRecord], at: str) -> list[KeyRecord]:
    """Every active key retired at ``at``: its window closes, what it signed stays verifiable."""
    return [replace(r, status="retired", not_after=at) if r.status == "active" else r for r in records]
