"""The GB 45438-2025 Annex E implicit-label record.

Seven string fields in one flat JSON object. Values are limited to a printable-ASCII subset
(0x21, 0x23-0x5B, 0x5D-0x7E: no space, quote or backslash), which is why provider *codes*
rather than names go in ``ContentProducer``.

Every slot with a key of its own (XMP ``TC260:AIGC``, the WAV ``AIGC`` chunk, ``TXXX:AIGC``,
our ``AIGC`` header...) holds the flat object: that is what the TC260 guides' reference code
writes, what real producer files carry and what strict verifiers accept. The wrapped form
``{"AIGC":{...}}`` is only for a slot without a key (EXIF UserComment, a PNG text chunk). We read
both, because both occur in real files (and our versions before 0.2 wrote the wrapped form).
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from . import jsonfast
from .errors import InvalidRecordError

__all__ = ["FIELD_ORDER", "AigcRecord", "Label", "check_charset", "new_produce_id", "single_record"]

#: Field names in the order Annex E lists them; serialisation keeps this order.
FIELD_ORDER = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)

#: Annex E's characters: printable ASCII (0x21-0x7E) but double quote and backslash
_ALLOWED_BYTES = bytes(c for c in range(0x21, 0x7F) if c not in (0x22, 0x5C))
#: A record is tiny by design; anything far larger is hostile or broken.
MAX_RECORD_CHARS = 16_384


class Label(enum.StrEnum):
    """The ``Label`` field: how sure the labeller is that the content is AI-generated."""

    GENERATED = "1"  #: is AI-generated (the producer's own label; Measures Art. 6 case 1)
    POSSIBLY = "2"  #: possibly AI-generated (uploader declared it; case 2)
    SUSPECTED = "3"  #: suspected AI-generated (traces detected; case 3)

    @property
    def notice(self) -> str:
        """The Art. 6 notice level a platform shows for this label."""
        return {"1": "confirmed", "2": "possible", "3": "suspected"}[self.value]


def check_charset(name: str, value: str) -> str:
    """Return ``value`` if it obeys the Annex E character rule, else raise with the culprit."""
    if not isinstance(value, str):
        raise InvalidRecordError(f"AIGC field {name} must be a string, got {type(value).__name__}")
    if not _allowed(value):
        bad = next(c for c in value if not _allowed(c))
        raise InvalidRecordError(
            f"AIGC field {name} contains {bad!r} (U+{ord(bad):04X}); GB 45438 allows only "
            "printable ASCII without space, double quote or backslash"
        )
    return value


def _allowed(value: str) -> bool:
    """Every character printable ASCII but space, double quote and backslash: one
    ``bytes.translate`` (a token is 1,000 characters; a regex over them cost more than writing
    the record)."""
    return value.isascii() and not value.encode("ascii").translate(None, _ALLOWED_BYTES)


class _RandomHex:
    """CSPRNG output (``os.urandom``) as hex, drawn 4 KiB at a time: one system call per 400
    ProduceIDs instead of one each (it was the costliest step of a JSON response's record).
    Thread-safe; a forked child starts afresh, so parent and child never share ids."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._hex, self._pos = "", 0

    def take(self, chars: int) -> str:
        with self._lock:
            pos = self._pos
            if pos + chars > len(self._hex):
                self._hex, pos = os.urandom(4096).hex(), 0
            self._pos = pos + chars
            return self._hex[pos : pos + chars]


_random_hex = _RandomHex()


def new_produce_id() -> str:
    """A unique, time-sortable content id: 48-bit ms timestamp + 80 random bits, as 32 hex."""
    return f"{time.time_ns() // 1_000_000:012x}{_random_hex.take(20)}"


_Label = Label  # the field below is named ``Label`` as in Annex E; this alias keeps the type visible


@dataclass(frozen=True)
class AigcRecord:
    """One Annex E record. Construct it and it is valid; parse it and it is valid or raises."""

    Label: _Label
    ContentProducer: str
    ProduceID: str
    ReservedCode1: str = ""
    ContentPropagator: str = ""
    PropagateID: str = ""
    ReservedCode2: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "Label", Label(self.Label))
        except ValueError:
            raise InvalidRecordError(f"AIGC Label must be '1', '2' or '3', got {self.Label!r}") from None
        values = [getattr(self, name) for name in FIELD_ORDER[1:]]
        if not all(isinstance(v, str) for v in values) or not _allowed("".join(values)):
            for name, value in zip(FIELD_ORDER[1:], values, strict=True):
                check_charset(name, value)  # raises, naming the field and the culprit
        if not self.ContentProducer:
            raise InvalidRecordError("AIGC ContentProducer must not be empty")
        if not self.ProduceID:
            raise InvalidRecordError("AIGC ProduceID must not be empty")

    @classmethod
    def first_write(
        cls,
        producer: str,
        produce_id: str,
        reserved_code1: str = "",
        label: _Label = _Label.GENERATED,
    ) -> AigcRecord:
        """A producer's record; on first write the propagator fields equal the producer's."""
        return cls(label, producer, produce_id, reserved_code1, producer, produce_id, "")

    @staticmethod
    def first_write_json(producer: str, produce_id: str, reserved_code1: str = "") -> str:
        """``first_write(producer, produce_id, reserved_code1).to_json()`` for values already
        known valid (a policy's producer, our produce ids and tokens), without the dataclass:
        the middleware's per-response path."""
        fields = (producer, produce_id, reserved_code1)
        if not producer or not produce_id or not _allowed("".join(fields)):
            return AigcRecord.first_write(*fields).to_json()  # raises, naming the culprit
        return (
            f'{{"Label":"1","ContentProducer":"{producer}","ProduceID":"{produce_id}",'
            f'"ReservedCode1":"{reserved_code1}","ContentPropagator":"{producer}",'
            f'"PropagateID":"{produce_id}","ReservedCode2":""}}'
        )

    def with_fields(self, **changes: str) -> AigcRecord:
        """A copy with some fields changed (re-validated)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in FIELD_ORDER}
        values["Label"] = self.Label.value
        return values

    def to_json(self, *, wrapped: bool = False) -> str:
        """Compact JSON in Annex E field order: the flat object every keyed slot holds;
        ``wrapped=True`` gives ``{"AIGC":{...}}`` for a slot without a key of its own."""
        body: dict[str, Any] = self.as_dict()
        return jsonfast.dumps({"AIGC": body} if wrapped else body).decode("ascii")

    @classmethod
    def from_json(cls, text: str | bytes) -> AigcRecord:
        """Parse the wrapped or the bare form. Raises :class:`InvalidRecordError` on anything else."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRecordError(f"AIGC record is not UTF-8: {exc}") from None
        if len(text) > MAX_RECORD_CHARS:
            raise InvalidRecordError(f"AIGC record too long ({len(text)} chars)")
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidRecordError(f"AIGC record is not valid JSON: {exc}") from None
        if isinstance(obj, dict) and set(obj) == {"AIGC"}:
            obj = obj["AIGC"]
        if not isinstance(obj, dict):
            raise InvalidRecordError("AIGC record must be a JSON object")
        missing = [k for k in ("Label", "ContentProducer", "ProduceID") if k not in obj]
        if missing:
            raise InvalidRecordError(f"AIGC record lacks {', '.join(missing)}")
        values = {}
        for name in FIELD_ORDER:
            value = obj.get(name, "")
            if not isinstance(value, str):
                raise InvalidRecordError(f"AIGC field {name} must be a string")
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]


def single_record(values: list[str]) -> str | None:
    """The one record among the AIGC values found in one file, or ``None`` if there are none.

    GB 45438 allows one label per file: the same record in two slots (say flat in XMP and
    wrapped in EXIF UserComment) is one label, but two *different* records are a malformed label,
    never "first wins". Raises :class:`InvalidRecordError` naming the conflict."""
    distinct = list(dict.fromkeys(v.strip() for v in values))
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    records = {AigcRecord.from_json(v) for v in distinct}  # an unparsable one raises here
    if len(records) > 1:
        raise InvalidRecordError(
            f"{len(records)} different AIGC records in one file; GB 45438 allows one label per file"
        )
    return distinct[0]
