"""Check the label on content someone hands us: the labelling path, run backwards.

find label -> parse the GB record -> parse the provenance token -> verify the signature ->
compare signed fields with the record -> recompute the content digest -> check key trust.

:func:`verify` never raises on content: broken files, forged or copied labels all come back
as a :class:`Verdict` with a distinct :class:`Status` and the reasons. Nothing that is altered,
mismatched or signed by an unknown key reads as ``VERIFIED``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .adapters import stream_text
from .aigc import AigcRecord
from .errors import InvalidRecordError, LabelerError
from .explicit import explicit_label
from .formats import C2PA, ContainerFormat, Found, detect, find_label
from .formats.base import walk_once
from .provenance import SignedProvenance, parse_token
from .signing import ALGORITHMS, TrustStore, b64url_encode, decide_trust
from .text import find_text_labels, front_matter_label, mark_digest, read_text_mark
from .xmp import DIGITAL_SOURCE_TYPE_AI, NS_TC260, XmpLabel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .markkey import MarkKey

__all__ = ["Status", "Verdict", "judge_record", "verify", "verify_response", "verify_stream", "verify_text"]


class Status(enum.StrEnum):
    """From best to worst. Only ``VERIFIED`` means: ours to trust, intact, as labelled."""

    VERIFIED = "verified"  #: signature valid, key trusted, content intact, fields consistent
    UNTRUSTED = "untrusted"  #: signature valid and content intact, but the key is not trusted
    ALTERED = "altered"  #: signature valid, but the content is not what was signed (edit or copy)
    LABEL_MISMATCH = "label-mismatch"  #: the GB record disagrees with the signed fields
    BAD_SIGNATURE = "bad-signature"  #: signature invalid, or an algorithm we refuse
    UNSIGNED = "unsigned"  #: a GB record, but no provenance we can check
    MALFORMED_LABEL = "malformed-label"  #: a label is there but does not parse or breaks rules
    NO_LABEL = "no-label"  #: readable content without an AIGC label
    UNREADABLE = "unreadable"  #: not a supported format, or a broken container


@dataclass(frozen=True)
class Verdict:
    status: Status
    media_format: str | None = None
    record: AigcRecord | None = None
    signed: SignedProvenance | None = None
    label_source: str | None = None  #: "xmp", or the fallback slot it came from
    signature_valid: bool | None = None
    key_trusted: bool | None = None
    #: active, retired (trusted within its window), revoked, outside-window, unknown
    key_status: str | None = None
    content_intact: bool | None = None
    explicit_label: bool = False  #: a visible label was found (text); alone it means "suspected"
    propagation: dict[str, Any] | None = None  #: the platform's ReservedCode2, checked
    c2pa: dict[str, Any] | None = None  #: C2PA Content Credentials as c2pa-python judges them
    #: the invisible watermark, when looked for: detected, p_value, key_id, content_id, producer...
    watermark: dict[str, Any] | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status is Status.VERIFIED

    @property
    def label_present(self) -> bool:
        return self.status not in (Status.NO_LABEL, Status.UNREADABLE)

    @property
    def fields_valid(self) -> bool:
        return self.record is not None

    @property
    def notice(self) -> str:
        """Measures Art. 6 notice level: from the record's Label (confirmed / possible / suspected);
        with no record but a visible label or a detected watermark (case 3), suspected; else none."""
        if self.record is not None:
            return self.record.Label.notice
        return "suspected" if self.explicit_label or self.watermark_detected else "none"

    @property
    def watermark_detected(self) -> bool:
        return bool(self.watermark and self.watermark.get("detected"))

    @property
    def filing_numbers(self) -> tuple[str, ...]:
        """Filing numbers from the signed record only: unsigned copies prove nothing."""
        return self.signed.provenance.filing_numbers if self.signed is not None else ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for CLIs, headers and logs."""
        out: dict[str, Any] = {
            "status": self.status.value,
            "ok": self.ok,
            "notice": self.notice,
            "format": self.media_format,
            "label_present": self.label_present,
            "label_source": self.label_source,
            "explicit_label": self.explicit_label,
            "fields_valid": self.fields_valid,
            "signature_valid": self.signature_valid,
            "key_trusted": self.key_trusted,
            "key_status": self.key_status,
            "content_intact": self.content_intact,
            "filing_numbers": list(self.filing_numbers),
            "record": self.record.as_dict() if self.record else None,
            "problems": list(self.problems),
            "propagation": self.propagation,
            "c2pa": self.c2pa,
            "watermark": self.watermark,
        }
        if self.signed is not None:
            p = self.signed.provenance
            # signed facts only once the signature holds; before that they are a claim
            out["provenance" if self.signature_valid else "claimed_provenance"] = {
                "provider": p.provider,
                "system": p.system,
                "system_version": p.system_version,
                "created": p.created,
                "algorithm": self.signed.algorithm,
                "key_id": self.signed.public_key.key_id,
                "content_digest": b64url_encode(p.content_digest),
            }
            if self.signed.batch is not None and self.signature_valid:  # one signature, a Merkle batch
                out["provenance"]["batch"] = {
                    "index": self.signed.batch.index,
                    "size": self.signed.batch.size,
                }
        return out


def verify(
    data: bytes,
    trust: TrustStore | None = None,
    *,
    c2pa_anchors: str | None = None,
    decode_audio: bool = False,
    decode_pictures: bool = False,
    watermark_keys: Sequence[MarkKey] = (),
    watermark: bool | None = None,
) -> Verdict:
    """The verdict on ``data``'s AIGC label, signature, integrity and signer trust, plus the
    state of C2PA Content Credentials when the file has them (``Trusted`` needs ``c2pa_anchors``,
    PEM root certificates) and c2pa-python is installed.

    ``decode_audio=True`` also listens for the rhythm label in MP3, FLAC and Ogg (decoded by
    ffmpeg, where installed; WAV is always checked): on audio whose tags were stripped it is what
    makes the verdict "suspected" rather than nothing. ``decode_pictures=True`` looks for the
    visible label's plate in a picture's pixels (:mod:`labeler.explicit.plate`; a decode, so
    asked for): a picture with a label drawn on it and no record is "suspected".

    ``watermark_keys`` (:class:`~labeler.markkey.MarkKey`, e.g. from the provider's key file):
    on a picture with no readable label the invisible watermark is looked for (``watermark=True``:
    always, also under a label; False: never). A detection makes the notice "suspected" and puts
    the decoded ids and the p-value in ``verdict.watermark``: a trace, never proof of origin."""
    with walk_once():  # one walk of the container serves the label, the digest and C2PA
        try:
            fmt = detect(data)
        except LabelerError as exc:
            return Verdict(Status.UNREADABLE, problems=(str(exc),))
        try:
            found: Found | None = find_label(data, fmt)
        except LabelerError as exc:
            found, verdict = None, Verdict(Status.UNREADABLE, problems=(str(exc),))
        if found is not None:
            verdict = _verify_gb(found, data, trust, decode_audio, decode_pictures)
        if _holds_c2pa(fmt, data, found):
            from .content_credentials import read_content_credentials

            verdict = dataclasses.replace(verdict, c2pa=read_content_credentials(data, c2pa_anchors))
        verdict = _require_valid_c2pa(verdict, fmt, data)
    markable = fmt.kind in ("image", "audio", "video")  # audio and video decoded by ffmpeg to look
    if markable and watermark is not False and (watermark or verdict.record is None):
        verdict = _look_for_watermark(verdict, data, watermark_keys, watermark is True, fmt.kind)
    return verdict


def _look_for_watermark(
    verdict: Verdict, data: bytes, keys: Sequence[MarkKey], asked: bool, kind: str = "image"
) -> Verdict:
    """The invisible mark's result in the verdict (Measures Art. 6 case 3 when detected)."""
    if not keys and not asked:
        return verdict
    from .explicit.marking import read_mark

    record = verdict.record
    ids = (record.ContentProducer, record.ProduceID) if record else None
    found = read_mark(data, keys, record_ids=ids, sound=kind == "audio", video=kind == "video")
    problems = verdict.problems
    if found.get("detected") and record is None:
        who = found.get("producer") or f"key {found.get('key_id')}"
        problems = (*problems, f"no label, but the invisible watermark of {who} (p = {found['p_value']:.1e})")
    elif found.get("matches_record") is False:
        problems = (
            *problems,
            "the invisible watermark names another record than the label's (label copied?)",
        )
    elif asked and record is None and found.get("reason"):  # why there is no trace either
        problems = (*problems, f"watermark: {found['reason']}")
    return dataclasses.replace(verdict, watermark=found, problems=problems)


def _holds_c2pa(fmt: ContainerFormat, data: bytes, found: Found | None) -> bool:
    """Whether to ask the C2PA reader: the container's C2PA-typed data (from the walk), or the
    XMP packet (where a remote manifest is named), holds ``c2pa``, the label of every C2PA store.
    Formats without a C2PA container (audio, video, documents, GIF) are never asked: the
    reader reads JPEG, PNG and WebP only. A container too broken to walk is asked as before, if
    its bytes name c2pa at all: a truncated file's credentials then still read as ``Invalid``."""
    if fmt.holds_c2pa is None:
        return False
    if found is not None:
        try:
            return fmt.holds_c2pa(data) or (found.packet is not None and b"c2pa" in found.packet)
        except LabelerError:
            pass  # a format's own walker that fails where reading the label did not: as if broken
    return b"c2pa" in data


def _require_valid_c2pa(verdict: Verdict, fmt: ContainerFormat, data: bytes) -> Verdict:
    """Our digest skips a C2PA store because C2PA binds our label and every other byte in turn;
    that holds only if the store validates for this file. Otherwise the skipped bytes are bytes
    no signature binds, and the content does not read as intact (for producer and platform)."""
    propagation = verdict.propagation
    propagation_intact = bool(propagation and propagation.get("content_intact"))
    if not (verdict.content_intact or propagation_intact):
        return verdict
    if verdict.c2pa is not None and verdict.c2pa.get("state") in ("Valid", "Trusted"):
        return verdict
    try:
        unbound = sum(e.size for e in fmt.excluded(data) if e.claim == C2PA)
    except LabelerError:  # parsed a moment ago for the digest; if not now, nothing vouches for it
        unbound = -1
    if unbound == 0:
        return verdict
    why = "no C2PA reader (extra 'c2pa')" if verdict.c2pa is None else f"C2PA {verdict.c2pa.get('state')}"
    problem = f"{max(unbound, 0)} bytes of unvalidated C2PA-typed data the signature does not bind ({why})"
    changes: dict[str, Any] = {}
    if verdict.content_intact:
        status = Status.ALTERED if verdict.status in (Status.VERIFIED, Status.UNTRUSTED) else verdict.status
        changes.update(status=status, content_intact=False)
    if propagation is not None and propagation_intact:
        status_2 = (
            "altered" if propagation.get("status") in ("verified", "untrusted") else propagation["status"]
        )
        changes["propagation"] = {**propagation, "content_intact": False, "status": status_2}
    return dataclasses.replace(verdict, problems=(*verdict.problems, problem), **changes)


def _explicit_label(
    fmt: ContainerFormat, data: bytes, decode_audio: bool = False, decode_pictures: bool = False
) -> bool:
    """A visible/audible label we can recognise in the content itself (the format's entry in
    :mod:`labeler.explicit`): the rhythm label (WAV; compressed audio with ``decode_audio``), a
    Word document's opening label paragraph, our stamp on a PDF's first page."""
    explicit = explicit_label(fmt.name)
    if explicit is None or explicit.find is None:
        return False
    if (explicit.find_needs_ffmpeg and not decode_audio) or (
        explicit.find_decodes_pixels and not decode_pictures
    ):
        return False
    try:
        return explicit.find(data)
    except LabelerError:
        return False  # not a Word document (XLSX, PPTX), no ffmpeg, or content we can't read


def _verify_gb(
    found: Found,
    data: bytes,
    trust: TrustStore | None,
    decode_audio: bool = False,
    decode_pictures: bool = False,
) -> Verdict:
    fmt, xmp = found.format, found.xmp
    media_format = fmt.name
    explicit = _explicit_label(fmt, data, decode_audio, decode_pictures)
    if not found.labelled:
        return Verdict(Status.NO_LABEL, media_format, explicit_label=explicit)
    problems: list[str] = []
    source = found.source or fmt.record_slot
    if xmp is not None:
        if xmp.aigc_namespace != NS_TC260:
            problems.append(f"AIGC property in non-standard namespace {xmp.aigc_namespace!r}")
        if xmp.digital_source_type != DIGITAL_SOURCE_TYPE_AI:
            problems.append("IPTC DigitalSourceType trainedAlgorithmicMedia missing")
    try:
        if found.problem is not None:
            raise InvalidRecordError(found.problem)
        record = AigcRecord.from_json(found.record or "")
    except InvalidRecordError as exc:
        return Verdict(
            Status.MALFORMED_LABEL,
            media_format,
            label_source=source,
            explicit_label=explicit,
            problems=(*problems, str(exc)),
        )

    token = record.ReservedCode1 or (xmp.provenance if xmp is not None else None) or ""
    digested: list[bytes] = []

    def content_digest() -> bytes:  # producer and platform sign the same digest: hash once
        if not digested:
            digested.append(fmt.content_digest(data))
        return digested[0]

    try:
        verdict = judge_record(
            record,
            token,
            content_digest,
            trust,
            media_format=media_format,
            label_source=source,
            problems=problems,
            explicit_label=explicit,
        )
        if record.ReservedCode2:
            verdict = dataclasses.replace(
                verdict, propagation=check_propagation(record, content_digest, trust)
            )
        elif record.ContentPropagator and (record.ContentPropagator, record.PropagateID) != (
            record.ContentProducer,
            record.ProduceID,
        ):  # a platform's claim nobody signed: report it, never present it as checked
            verdict = dataclasses.replace(
                verdict,
                propagation={
                    "propagator": record.ContentPropagator,
                    "propagate_id": record.PropagateID,
                    "status": "unsigned",
                    "problem": "propagator fields are not signed (ReservedCode2 is empty)",
                },
                problems=(*verdict.problems, "propagator fields are not signed (ReservedCode2 is empty)"),
            )
        if xmp is not None and verdict.signed is not None and verdict.signature_valid:
            verdict = _check_readable_copies(verdict, xmp)
    except LabelerError as exc:  # the label reads, but the content around it is broken
        return Verdict(
            Status.UNREADABLE,
            media_format,
            record,
            label_source=source,
            explicit_label=explicit,
            problems=(*problems, f"content digest cannot be computed: {exc}"),
        )
    return verdict


def _check_readable_copies(verdict: Verdict, xmp: XmpLabel) -> Verdict:
    """Our XMP namespace repeats the signed facts in readable, unsigned form (for exiftool and
    people). A copy that disagrees with the signed payload is a forged or stale label: say which,
    and never let it read as verified."""
    assert verdict.signed is not None
    p = verdict.signed.provenance
    signed = {
        "provider": p.provider,
        "system": p.system,
        "system_version": p.system_version or None,
        "created": p.created,
        "filing_numbers": "; ".join(p.filing_numbers) or None,
    }
    differ = [name for name, value in signed.items() if getattr(xmp, name) not in (None, value)]
    if xmp.provenance and verdict.record is not None and xmp.provenance != verdict.record.ReservedCode1:
        differ.append("provenance")
    if not differ:
        return verdict
    status = verdict.status
    if status in (Status.VERIFIED, Status.UNTRUSTED):
        status = Status.LABEL_MISMATCH
    problem = f"unsigned XMP fields differ from the signed record: {', '.join(differ)}"
    return dataclasses.replace(verdict, status=status, problems=(*verdict.problems, problem))


def check_propagation(
    record: AigcRecord, content_digest: Callable[[], bytes], trust: TrustStore | None
) -> dict[str, Any]:
    """The platform's ReservedCode2: who propagated, and whether its signature, fields, digest
    and key hold. Separate from the producer's verdict: a platform vouches, it doesn't produce."""
    out: dict[str, Any] = {"propagator": record.ContentPropagator, "propagate_id": record.PropagateID}
    try:
        signed = parse_token(record.ReservedCode2)
    except InvalidRecordError as exc:
        return {**out, "status": "unverifiable", "problem": str(exc)}
    p = signed.provenance
    consistent = (p.role, p.producer, p.produce_id, p.subject_id) == (
        "propagator",
        record.ContentPropagator,
        record.PropagateID,
        record.ProduceID,
    )
    valid = signed.signature_valid()
    intact = valid and hmac.compare_digest(content_digest(), p.content_digest)
    decision = decide_trust(trust, signed.public_key, p.created)
    trusted = decision.trusted
    status = (
        "bad-signature"
        if not valid
        else "label-mismatch"
        if not consistent
        else "altered"
        if not intact
        else "untrusted"
        if not trusted
        else "verified"
    )
    return {
        **out,
        "status": status,
        "signature_valid": valid,
        "key_trusted": trusted,
        "key_status": decision.key_status,
        **({"key_problem": decision.problem} if decision.problem else {}),
        "content_intact": intact,
        "key_id": signed.public_key.key_id,
        "created": p.created,
    }


#: Formats whose tags around our slot 0.1 left unsigned; from 0.2 the signature binds them.
_TAGS_BOUND_SINCE_0_2 = frozenset({"mp3", "flac", "ogg", "docx"})


def judge_record(
    record: AigcRecord,
    token: str,
    content_digest: Callable[[], bytes],
    trust: TrustStore | None,
    *,
    media_format: str,
    label_source: str,
    problems: list[str] | None = None,
    explicit_label: bool = False,
) -> Verdict:
    """The verdict ladder shared by every medium: token -> signature -> signed fields ->
    content digest -> key trust. ``content_digest`` is only called once the signature holds."""
    problems = list(problems or [])

    def verdict(status: Status, **details: Any) -> Verdict:
        return Verdict(
            status,
            media_format,
            record,
            label_source=label_source,
            explicit_label=explicit_label,
            problems=tuple(problems),
            **details,
        )

    signed = _signed_token(token, problems)
    if signed is None:
        return verdict(Status.UNSIGNED)
    if not signed.signature_valid():
        problems.append("signature does not verify")
        return verdict(Status.BAD_SIGNATURE, signed=signed, signature_valid=False)
    mismatched = _mismatched_fields(record, signed, media_format)
    intact = hmac.compare_digest(content_digest(), signed.provenance.content_digest)
    if not intact:
        problems.append("content digest differs from the signed one: content altered or label copied")
    decision = decide_trust(trust, signed.public_key, signed.provenance.created)
    if decision.problem:  # why not trusted, or (trusted) that the key is retired
        problems.append(decision.problem)
    status = _rung(mismatched, intact, decision.trusted, media_format, problems)
    return verdict(
        status,
        signed=signed,
        signature_valid=True,
        key_trusted=decision.trusted,
        key_status=decision.key_status,
        content_intact=intact,
    )


def _signed_token(token: str, problems: list[str]) -> SignedProvenance | None:
    """ReservedCode1 parsed (None, with the problem noted, when there is nothing to check);
    an algorithm we refuse or an inconsistent key id is noted too (the signature then fails)."""
    if not token:
        problems.append("ReservedCode1 is empty")
        return None
    try:
        signed = parse_token(token)
    except InvalidRecordError as exc:
        problems.append(f"ReservedCode1 not verifiable: {exc}")
        return None
    if not signed.algorithm_supported:
        problems.append(f"signature algorithm {signed.algorithm!r} is not accepted")
    elif not signed.key_id_consistent:
        problems.append("key id does not match the embedded public key")
    return signed


def _mismatched_fields(record: AigcRecord, signed: SignedProvenance, media_format: str) -> list[str]:
    """The record's fields that differ from the signed ones (a forged or swapped record)."""
    p = signed.provenance
    return [
        name
        for name, signed_value, value in (
            ("Label", p.label, record.Label.value),
            ("ContentProducer", p.producer, record.ContentProducer),
            ("ProduceID", p.produce_id, record.ProduceID),
            ("format", p.media_format or media_format, media_format),
        )
        if signed_value != value
    ]


def _rung(
    mismatched: list[str], intact: bool, trusted: bool, media_format: str, problems: list[str]
) -> Status:
    """Where a validly signed label lands: mismatch, then altered, then untrusted, else verified."""
    if mismatched:
        problems.append(f"record fields differ from the signed ones: {', '.join(mismatched)}")
        return Status.LABEL_MISMATCH
    if not intact:
        if media_format in _TAGS_BOUND_SINCE_0_2:
            problems.append(
                "content differs from what was signed; a label made by labeler 0.1 did not bind the "
                f"{media_format} tags around it and reads so too: relabel such files (on_existing='replace')"
            )
        return Status.ALTERED
    return Status.VERIFIED if trusted else Status.UNTRUSTED


# -- text and Markdown ------------------------------------------------------------------------------


def verify_text(text: str, trust: TrustStore | None = None) -> Verdict:
    """Verdict for a text or Markdown document: front-matter record, invisible mark, or only a
    visible label (Measures Art. 6 case 3: ``notice == "suspected"``)."""
    explicit = any(find_text_labels(text))
    stripped, raw = front_matter_label(text)
    if raw is not None:
        return _verify_front_matter(stripped, raw, trust, explicit)
    try:
        mark = read_text_mark(text)
    except InvalidRecordError as exc:
        return Verdict(Status.MALFORMED_LABEL, "text", explicit_label=explicit, problems=(str(exc),))
    if mark is None:
        return Verdict(Status.NO_LABEL, "text", explicit_label=explicit)
    try:
        record = AigcRecord(mark.label, mark.producer, mark.produce_id)  # type: ignore[arg-type]
    except InvalidRecordError as exc:
        return Verdict(Status.MALFORMED_LABEL, "text", explicit_label=explicit, problems=(str(exc),))
    known = trust.keys.get(mark.key_id) if trust is not None else None
    if known is None or known.algorithm != mark.algorithm or mark.algorithm not in ALGORITHMS:
        return Verdict(
            Status.UNTRUSTED,
            "text",
            record,
            label_source="text-mark",
            explicit_label=explicit,
            problems=(f"signing key {mark.key_id} is not in the trust store; mark not checkable",),
        )
    message = mark.signed_part + mark_digest(text)
    if not known.verify(mark.signature, message):
        return Verdict(
            Status.ALTERED,
            "text",
            record,
            label_source="text-mark",
            signature_valid=False,
            key_trusted=True,
            content_intact=False,
            explicit_label=explicit,
            problems=("text changed since it was marked, or the mark was copied",),
        )
    return Verdict(
        Status.VERIFIED,
        "text",
        record,
        label_source="text-mark",
        signature_valid=True,
        key_trusted=True,
        content_intact=True,
        explicit_label=explicit,
    )


def _verify_front_matter(body: str, value: str, trust: TrustStore | None, explicit: bool) -> Verdict:
    try:
        record = AigcRecord.from_json(value)
    except InvalidRecordError as exc:
        return Verdict(
            Status.MALFORMED_LABEL,
            "markdown",
            label_source="front-matter",
            explicit_label=explicit,
            problems=(str(exc),),
        )
    return judge_record(
        record,
        record.ReservedCode1,
        lambda: hashlib.sha256(body.encode("utf-8")).digest(),
        trust,
        media_format="markdown",
        label_source="front-matter",
        explicit_label=explicit,
    )


# -- HTTP responses and streams (what the middleware produced) ----------------------------------------


_COMMENT_LINE = re.compile(rb"(?:\A|(?<=[\r\n])): ?AIGC ([^\r\n]*)")  #: a comment line, any line ending


def _header_values(headers: Mapping[str, str] | Iterable[tuple[Any, Any]], name: str) -> list[str]:
    """Every value of header ``name``, duplicates kept (httpx's ``multi_items``, Starlette's
    ``items``, a dict, or (name, value) pairs of str or bytes)."""
    multi = getattr(headers, "multi_items", None)
    if callable(multi):
        items: Iterable[tuple[Any, Any]] = multi()
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    out = []
    for key, value in items:
        key = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        if key.lower() == name:
            out.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return out


def _one_record(values: list[str], what: str, media_format: str, source: str) -> AigcRecord | Verdict:
    """The record when there is exactly one that parses; else the verdict saying why not."""
    if not values:
        return Verdict(Status.NO_LABEL, media_format, problems=(f"no {what}",))
    if len(values) > 1:  # which one would count is anyone's guess: neither does
        return Verdict(
            Status.MALFORMED_LABEL,
            media_format,
            label_source=source,
            problems=(f"{len(values)} {what}s: a response carries one record",),
        )
    try:
        return AigcRecord.from_json(values[0])
    except InvalidRecordError as exc:
        problem = str(exc)
        if re.match(r"\s*\{.*\}\s*,\s*\{", values[0], re.DOTALL):
            problem = f"more than one {what}, joined with a comma: {problem}"
        return Verdict(Status.MALFORMED_LABEL, media_format, label_source=source, problems=(problem,))


def _judge(
    record: AigcRecord, digest: Any, trust: TrustStore | None, media_format: str, source: str
) -> Verdict:
    try:
        return judge_record(
            record, record.ReservedCode1, digest, trust, media_format=media_format, label_source=source
        )
    except LabelerError as exc:
        return Verdict(
            Status.MALFORMED_LABEL, media_format, record, label_source=source, problems=(str(exc),)
        )


def verify_response(
    headers: Mapping[str, str] | Iterable[tuple[Any, Any]], body: bytes, trust: TrustStore | None = None
) -> Verdict:
    """Verdict on a non-streamed labelled response: the ``AIGC`` header against the body.
    Never raises on content: no header is ``no-label``, two or more ``malformed-label``."""
    found = _one_record(_header_values(headers, "aigc"), "AIGC header", "json", "http-header")
    if isinstance(found, Verdict):
        return found
    return _judge(found, lambda: hashlib.sha256(body).digest(), trust, "json", "http-header")


def verify_stream(
    text: str | bytes | None, raw_stream: bytes | None = None, trust: TrustStore | None = None
) -> Verdict:
    """Verdict on a labelled stream: its one ``: AIGC`` comment against the text a client
    assembled. ``verify_stream(raw, trust=...)`` (or ``text=None``) assembles the text itself from
    the stream's events (chat chunks, Responses or Anthropic events). Never raises on content:
    no comment is ``no-label``, two or more ``malformed-label``."""
    shown: str | bytes | None = text
    if raw_stream is not None:
        raw = raw_stream
    elif isinstance(text, bytes):
        shown, raw = None, text
    else:
        return Verdict(Status.UNREADABLE, "text", problems=("no stream given",))
    values = [m.group(1).decode("utf-8", "replace") for m in _COMMENT_LINE.finditer(raw)]
    found = _one_record(values, "AIGC comment", "text", "sse-comment")
    if isinstance(found, Verdict):
        return found
    if shown is None:
        shown = stream_text(raw)
    elif isinstance(shown, bytes):
        shown = shown.decode("utf-8", "replace")
    data = shown.encode("utf-8", "surrogatepass")  # as the middleware hashes what it streams
    return _judge(found, lambda: hashlib.sha256(data).digest(), trust, "text", "sse-comment")
