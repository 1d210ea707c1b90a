"""Write the implicit label and signed provenance into content bytes, without re-encoding.

Flow: detect container -> stage the label slot -> digest the content outside the slot ->
sign -> write the GB record + IPTC + provenance into the slot. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from . import __version__
from .aigc import AigcRecord, Label, new_produce_id
from .errors import AlreadyLabeledError, typed_errors
from .explicit import explicit_label
from .formats import Found, find_label
from .policy import LabelPolicy
from .provenance import sign_for, utc_now
from .xmp import XmpLabel, write_label

if TYPE_CHECKING:
    from .content_credentials import C2paConfig
    from .explicit.marking import MarkOutcome

__all__ = ["Labelled", "has_label", "label_bytes", "label_content", "label_image", "label_with_record"]

OnExisting = Literal["error", "keep", "replace"]


@typed_errors
def label_bytes(
    data: bytes,
    policy: LabelPolicy,
    *,
    label: Label | str = Label.GENERATED,
    produce_id: str | None = None,
    created: _dt.datetime | None = None,
    on_existing: OnExisting = "error",
) -> bytes:
    """Return ``data`` carrying a GB 45438 implicit label, IPTC DigitalSourceType and, when the
    policy has a signing key, a signed provenance record bound to the content.

    ``on_existing`` decides what happens when the content already has an AIGC label: ``"error"``
    raises :class:`AlreadyLabeledError` (Measures Art. 10 forbids silently replacing someone's
    label), ``"keep"`` returns ``data`` unchanged (idempotent batch runs), ``"replace"``
    relabels (e.g. your own earlier label). Pixels and all other bytes are kept as they are.
    """
    found = find_label(data)
    if _keep(found, on_existing):
        return data
    return _write_implicit(data, found, policy, Label(label), produce_id, created)[0]


def _write_implicit(
    data: bytes,
    found: Found,
    policy: LabelPolicy,
    label: Label,
    produce_id: str | None,
    created: _dt.datetime | None,
) -> tuple[bytes, AigcRecord]:
    """stage -> digest -> sign -> write the record (and our XMP) into the slot ``found`` names."""
    fmt, existing = found.format, found.packet
    produce_id = produce_id or new_produce_id()
    staged = fmt.stage(data)  # from here on, adding the slot changes nothing that is digested
    when = utc_now(created)
    token = sign_for(
        policy,
        produce_id=produce_id,
        media_format=fmt.name,
        label=label.value,
        created=when,
        content_digest=fmt.content_digest(staged) if policy.signing_key else b"",
    )
    record = AigcRecord.first_write(policy.producer, produce_id, token, label)
    if fmt.write_record is not None:  # audio, video, documents: the record in its own slot
        return fmt.write_record(staged, record.to_json()), record
    packet = write_label(
        XmpLabel(
            aigc=record.to_json(),
            provenance=token or None,
            provider=policy.provider_name,
            system=policy.system_name,
            system_version=policy.system_version or None,
            created=when,
            filing_numbers="; ".join(policy.filing_numbers) or None,
        ),
        existing=existing,
        toolkit=f"aigc-labeler {__version__}",
    )
    return fmt.write_xmp(staged, packet), record


@typed_errors
def has_label(data: bytes) -> bool:
    """Whether ``data`` carries an AIGC label (XMP or the format's own slot). Cheap: no digest."""
    return find_label(data).labelled


def _keep(found: Found, on_existing: OnExisting) -> bool:
    """Decided once, where the caller came in: True if labelled content is kept as it is;
    raises for ``"error"``."""
    if not found.labelled or on_existing == "replace":
        return False
    if on_existing == "error":
        raise AlreadyLabeledError(
            "content already carries an AIGC label; pass on_existing='keep' or 'replace'"
        )
    return True


@typed_errors
def label_image(
    data: bytes,
    policy: LabelPolicy,
    *,
    visible: bool = True,
    label: Label | str = Label.GENERATED,
    produce_id: str | None = None,
    created: _dt.datetime | None = None,
    on_existing: OnExisting = "error",
    c2pa: C2paConfig | None = None,
    watermark: bool | None = None,
) -> bytes:
    """The full label of a picture: the visible label drawn per ``policy.visible`` (GB 45438
    geometry) with the invisible watermark in the same re-encode, then the implicit label and
    signature written on the final bytes, then (given ``c2pa``) a C2PA manifest, last, so that
    it binds all of the above.

    ``watermark``: None (default) marks where a visible label is drawn, if ``policy.watermark``
    and the ``watermark`` extra and a key are there (else the picture is labelled without it);
    False never; True always (also with ``visible=False``: one re-encode for the mark alone),
    raising :class:`~labeler.markkey.WatermarkUnavailableError` without the extra or a key."""
    found = find_label(data)
    if _keep(found, on_existing):
        return data
    return _label_image(data, found, policy, visible, Label(label), produce_id, created, c2pa, watermark)[0]


class Labelled(tuple[bytes, "AigcRecord | None"]):
    """``(labelled bytes, record)`` as before, plus ``watermark``: what happened to the
    invisible mark (:class:`~labeler.explicit.marking.MarkOutcome`; None for other media)."""

    watermark: MarkOutcome | None

    def __new__(
        cls, data: bytes, record: AigcRecord | None, watermark: MarkOutcome | None = None
    ) -> Labelled:
        self = super().__new__(cls, (data, record))
        self.watermark = watermark
        return self

    def __reduce__(self) -> tuple[type[Labelled], tuple[bytes, AigcRecord | None, MarkOutcome | None]]:
        return (Labelled, (self[0], self[1], self.watermark))


def _label_image(
    data: bytes,
    found: Found,
    policy: LabelPolicy,
    visible: bool,
    label: Label,
    produce_id: str | None,
    created: _dt.datetime | None,
    c2pa: C2paConfig | None,
    watermark: bool | None,
) -> Labelled:
    produce_id = produce_id or new_produce_id()  # the mark carries its hash: known before drawing
    mark = None
    if (visible or watermark) and explicit_label(found.format.name) is not None:
        from .explicit.marking import label_picture  # Pillow is only imported here

        data, mark = label_picture(data, policy, produce_id, visible=visible, watermark=watermark)
        found = find_label(data)  # the re-encoded picture: same packet, new offsets
    out, record = _write_implicit(data, found, policy, label, produce_id, created)
    if c2pa is not None:
        from .content_credentials import add_content_credentials

        out = add_content_credentials(out, policy, c2pa)
    return Labelled(out, record, mark)


@typed_errors
def label_with_record(
    data: bytes,
    policy: LabelPolicy,
    *,
    visible: bool = True,
    label: Label | str = Label.GENERATED,
    produce_id: str | None = None,
    created: _dt.datetime | None = None,
    on_existing: OnExisting = "error",
    c2pa: C2paConfig | None = None,
    watermark: bool | None = None,
) -> Labelled:
    """The full label of any supported file, chosen by what the bytes are, and the GB record it
    wrote (``None`` when ``on_existing="keep"`` kept labelled content as it was):

    * pictures: :func:`label_image` (visible label and invisible watermark, implicit label,
      optional C2PA); the result's ``watermark`` says whether the mark was written, and if
      not why ("too small", "too flat", "unavailable", "off");
    * audio: the rhythm label "short-long-short-short" per ``policy.audio`` with the invisible
      audio mark in the samples first (WAV in place; MP3/FLAC/Ogg in one ffmpeg re-encode),
      then the record in the format's own tag;
    * video (MP4/MOV): the visible label on the opening >= 2 s and the invisible mark in every
      frame (one ffmpeg re-encode), then the ``AIGC`` key;
    * documents: DOCX gets the label as its first paragraph, PDF the picture label stamped on
      page 1 (:mod:`labeler.explicit.documents`); XLSX and PPTX the record only (show the label where they
      are offered); the record goes into the document properties.

    ``visible=False`` writes the implicit label only, without re-encoding anything (unless
    ``watermark=True`` asks for the invisible mark alone).
    """
    found = find_label(data)
    if _keep(found, on_existing):
        return Labelled(data, None)
    fmt, label = found.format, Label(label)
    if fmt.kind == "image":
        return _label_image(data, found, policy, visible, label, produce_id, created, c2pa, watermark)
    original, mark = data, None
    explicit = explicit_label(fmt.name) if visible else None
    if fmt.name == "wav" and (visible or watermark):  # the audio mark, before the rhythm label
        from .explicit.marking import mark_sound

        produce_id = produce_id or new_produce_id()  # the mark carries its hash
        data, mark = mark_sound(data, policy, produce_id, visible=visible, watermark=watermark)
    elif fmt.kind == "video" and visible:  # the mark rides the opening-label's re-encode
        from .explicit.marking import label_video

        produce_id = produce_id or new_produce_id()
        data, mark = label_video(data, policy, produce_id, watermark=watermark)
        explicit = None
    elif fmt.kind == "audio" and (visible or watermark):  # MP3/FLAC/Ogg: one re-encode for both
        from .explicit.marking import mark_compressed_sound

        produce_id = produce_id or new_produce_id()
        data, mark = mark_compressed_sound(
            data, fmt.name, policy, produce_id, visible=visible, watermark=watermark
        )
        explicit = None  # the rhythm label went in with the mark
    if explicit is not None:
        data = explicit.add(data, policy)
    if data is not original:  # the mark or the explicit label changed the bytes: find the slot again
        found = find_label(data)
    return Labelled(*_write_implicit(data, found, policy, label, produce_id, created), mark)


@typed_errors
def label_content(
    data: bytes,
    policy: LabelPolicy,
    *,
    visible: bool = True,
    label: Label | str = Label.GENERATED,
    produce_id: str | None = None,
    created: _dt.datetime | None = None,
    on_existing: OnExisting = "error",
    c2pa: C2paConfig | None = None,
    watermark: bool | None = None,
    on_watermark: Callable[[MarkOutcome], object] | None = None,
) -> bytes:
    """:func:`label_with_record` without the record: the labelled bytes. ``on_watermark`` is
    called with a picture's watermark outcome (how ``labeler apply`` counts pictures too small
    or flat to mark)."""
    labelled = label_with_record(
        data, policy, visible=visible, label=label, produce_id=produce_id, created=created,
        on_existing=on_existing, c2pa=c2pa, watermark=watermark,
    )  # fmt: skip
    if on_watermark is not None and labelled.watermark is not None:
        on_watermark(labelled.watermark)
    return labelled[0]
