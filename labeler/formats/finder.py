"""Find the one AIGC label in content bytes: the XMP property and the format's own slots.

Every reader (verify, labelling's ``on_existing``, propagation) asks here, so "what label does
this file carry" has one answer. GB 45438 allows one label per file: the same record in two
places (flat in XMP, wrapped in EXIF UserComment) is one label; two different records are
reported as a conflict, never resolved by "first wins".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..aigc import single_record
from ..errors import InvalidRecordError
from ..xmp import XmpLabel, read_label
from .base import ContainerFormat, detect

__all__ = ["Found", "find_label"]


@dataclass(frozen=True)
class Found:
    """What :func:`find_label` found. ``record`` is the record's JSON text as stored (flat or
    wrapped); ``problem`` says why there is no single record although labels are present."""

    format: ContainerFormat
    packet: bytes | None  #: the XMP packet, if the file has one
    xmp: XmpLabel | None  #: our properties read from it, if it has an AIGC property
    record: str | None
    source: str | None  #: "xmp", or the format's own slot name
    problem: str | None = None

    @property
    def labelled(self) -> bool:
        return self.record is not None or self.problem is not None


def find_label(data: bytes, fmt: ContainerFormat | None = None) -> Found:
    """The label in ``data``. Raises :class:`LabelerError` only when the container itself can't
    be read (unsupported or broken); a conflict between labels comes back as ``problem``."""
    fmt = fmt or detect(data)
    packet = fmt.read_xmp(data)
    xmp = read_label(packet) if packet is not None else None
    values = list(xmp.aigc_values) if xmp is not None else []
    try:
        other = fmt.read_fallback(data)
    except InvalidRecordError as exc:  # the format's own slot holds two different records
        return Found(fmt, packet, xmp, None, fmt.record_slot, str(exc))
    if other is not None:
        values.append(other)
    source = "xmp" if xmp is not None else (fmt.record_slot if other is not None else None)
    try:
        record = single_record(values)
    except InvalidRecordError as exc:
        return Found(fmt, packet, xmp, None, source, str(exc))
    return Found(fmt, packet, xmp, record, source)
