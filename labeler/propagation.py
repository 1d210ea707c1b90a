"""The platform's role (Measures Art. 6): add propagator fields to content it distributes.

A platform fills ``ContentPropagator`` / ``PropagateID`` and signs ``ReservedCode2`` over the
same label-excluding digest. The producer's signed fields (Label, ContentProducer, ProduceID)
and ``ReservedCode1`` are left exactly as they were, so the producer's signature still verifies.
Content without a label gets one only on the platform's word: Label 2 ("possibly", the uploader
declared it) or 3 ("suspected", traces were detected).
"""

from __future__ import annotations

import dataclasses

from .aigc import AigcRecord, Label, new_produce_id
from .errors import InvalidRecordError, LabelerError, typed_errors
from .formats import find_label
from .policy import LabelPolicy
from .provenance import sign_for
from .xmp import XmpLabel, write_label

__all__ = ["NoLabelError", "propagate_bytes"]

UNKNOWN_PRODUCER = "unknown"


class NoLabelError(LabelerError):
    """The content has no AIGC label and the platform did not say what it knows."""


@typed_errors
def propagate_bytes(
    data: bytes, policy: LabelPolicy, *, declared: Label | str | None = None, propagate_id: str | None = None
) -> bytes:
    """``data`` with this platform's propagator fields and a signed ``ReservedCode2``.

    ``declared``: for unlabelled content, ``Label.POSSIBLY`` (the uploader declared it AI) or
    ``Label.SUSPECTED`` (traces were found). Labelled content keeps its producer's Label.
    """
    found = find_label(data)  # before staging, which may empty a slot
    if found.problem is not None:
        raise InvalidRecordError(f"can't propagate a malformed label: {found.problem}")
    fmt = found.format
    staged = fmt.stage(data)
    packet = fmt.read_xmp(staged)
    propagate_id = propagate_id or new_produce_id()
    if found.record is not None:
        record = AigcRecord.from_json(found.record)
        xmp = found.xmp or XmpLabel(aigc="")
    elif declared is None:
        raise NoLabelError(
            "no AIGC label: say what the platform knows (declared: Label 2, suspected: Label 3)"
        )
    else:
        label = Label(declared)
        if label is Label.GENERATED:
            raise NoLabelError("a platform can't confirm AI generation without the producer's label")
        record = AigcRecord(label, UNKNOWN_PRODUCER, UNKNOWN_PRODUCER)
        xmp = XmpLabel(aigc="", digital_source_type=None)
    token = sign_for(
        policy,
        produce_id=propagate_id,
        media_format=fmt.name,
        label=record.Label.value,
        content_digest=fmt.content_digest(staged),
        role="propagator",
        subject_id=record.ProduceID,
    )
    record = record.with_fields(
        ContentPropagator=policy.producer, PropagateID=propagate_id, ReservedCode2=token
    )
    if fmt.write_record is not None:
        return fmt.write_record(staged, record.to_json())
    new_packet = write_label(dataclasses.replace(xmp, aigc=record.to_json()), existing=packet)
    return fmt.write_xmp(staged, new_packet)
