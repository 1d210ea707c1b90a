"""``labeler check``: a compliance linter for pipelines (CI, CDNs, upload paths).

Why a linter beside ``verify``: a verdict answers "can I trust this label?"; a pipeline asks
"which marks does this file carry, which rules of GB 45438 does its label break, and what did my
step (resize, CDN, upload) lose?". Findings carry stable rule ids so SARIF viewers (GitHub code
scanning, IDEs) can track them, and the exit code is what CI needs: 0 clean, 1 findings, 2 could
not run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..aigc import FIELD_ORDER, AigcRecord
from ..errors import LabelerError
from ..explicit import explicit_label
from ..formats import find_label
from ..identifiers import classify_filing_number, validate_provider_code
from ..signing import TrustStore
from ..verification import Status, Verdict, verify
from ..xmp import DIGITAL_SOURCE_TYPE_AI

__all__ = ["RULES", "CheckReport", "Finding", "check_bytes", "check_files", "compare", "to_sarif"]

Level = Literal["error", "warning", "note"]

#: rule id -> (level, short description). Ids are stable: SARIF consumers track them.
RULES: dict[str, tuple[Level, str]] = {
    "AIGC001": ("error", "no implicit label: the file carries no GB 45438 AIGC record"),
    "AIGC002": ("error", "the AIGC record does not parse or breaks Annex E (fields, charset)"),
    "AIGC003": ("error", "more than one different AIGC record in one file (one label per file)"),
    "AIGC004": ("warning", 'the AIGC record is wrapped ({"AIGC":{...}}) in a slot with a key of its own'),
    "AIGC005": ("warning", "the AIGC record's fields are not the seven of Annex E in Annex E order"),
    "AIGC006": ("warning", "ContentProducer is not a provider code (TC260-PG-20252A shape and check)"),
    "AIGC007": ("warning", "a signed filing number has neither filing-number shape"),
    "AIGC008": ("warning", "IPTC DigitalSourceType trainedAlgorithmicMedia missing from the XMP"),
    "AIGC009": ("error", "the label's signature does not verify, or the content was altered"),
    "AIGC010": ("note", "the label is unsigned (ReservedCode1 holds nothing we can check)"),
    "AIGC011": ("note", "the signing key is not in the trust store"),
    "AIGC012": ("warning", "no explicit (visible/audible) label found where GB 45438 asks for one"),
    "AIGC013": ("error", "C2PA Content Credentials present but invalid"),
    "AIGC014": ("error", "a pipeline step lost a mark the input carried"),
}


def _explicit_checkable(media_format: str | None) -> bool:
    """Whether the explicit label can be recognised from the bytes without decoding media (the
    rhythm in WAV, Word's opening paragraph, our PDF stamp); a label drawn into pixels can't."""
    entry = explicit_label(media_format) if media_format else None
    return (
        entry is not None
        and entry.find is not None
        and not entry.find_needs_ffmpeg
        and not entry.find_decodes_pixels
    )


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str

    @property
    def level(self) -> Level:
        return RULES[self.rule][0]


@dataclass(frozen=True)
class CheckReport:
    """What one file carries (``marks``) and which rules it breaks (``findings``)."""

    path: str
    marks: dict[str, Any]
    findings: tuple[Finding, ...] = field(default=())
    error: str | None = None  #: the file could not be checked at all (exit code 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "marks": self.marks,
            "findings": [{"rule": f.rule, "level": f.level, "message": f.message} for f in self.findings],
            "error": self.error,
        }


def _record_shape(raw: str, source: str | None) -> list[Finding]:
    """Annex E's letter on the stored JSON text: flat in keyed slots, seven fields in order."""
    findings = []
    try:
        obj = json.loads(raw)
    except ValueError:
        return []  # AIGC002 comes from the verdict
    keyed = source not in (None, "exif", "png-text")
    if isinstance(obj, dict) and set(obj) == {"AIGC"}:
        if keyed:
            findings.append(Finding("AIGC004", f"the record in {source} is wrapped; write it flat"))
        obj = obj["AIGC"]
    if isinstance(obj, dict) and list(obj) != list(FIELD_ORDER):
        missing = [k for k in FIELD_ORDER if k not in obj]
        extra = [k for k in obj if k not in FIELD_ORDER]
        why = (
            f"missing {', '.join(missing)}"
            if missing
            else f"unknown {', '.join(extra)}"
            if extra
            else "fields out of Annex E order"
        )
        findings.append(Finding("AIGC005", f"AIGC record: {why}"))
    return findings


def _producer_shape(record: AigcRecord) -> list[Finding]:
    try:
        validate_provider_code(record.ContentProducer)
    except LabelerError as exc:
        return [Finding("AIGC006", f"ContentProducer {record.ContentProducer!r}: {exc}")]
    return []


def _verdict_findings(verdict: Verdict, media_format: str | None) -> list[Finding]:
    status = verdict.status
    findings: list[Finding] = []
    if status is Status.NO_LABEL:
        findings.append(Finding("AIGC001", "no AIGC record in any slot"))
    elif status is Status.MALFORMED_LABEL:
        text = "; ".join(verdict.problems) or "malformed label"
        rule = "AIGC003" if "one label per file" in text else "AIGC002"
        findings.append(Finding(rule, text))
    elif status in (Status.BAD_SIGNATURE, Status.ALTERED, Status.LABEL_MISMATCH):
        findings.append(Finding("AIGC009", f"{status.value}: " + "; ".join(verdict.problems)))
    elif status is Status.UNSIGNED:
        findings.append(Finding("AIGC010", "; ".join(verdict.problems) or "unsigned"))
    elif status is Status.UNTRUSTED:
        findings.append(
            Finding("AIGC011", "; ".join(p for p in verdict.problems if "key" in p) or "untrusted")
        )
    for number in verdict.filing_numbers:
        if classify_filing_number(number) is None:
            findings.append(Finding("AIGC007", f"filing number {number!r} has neither shape"))
    if _explicit_checkable(media_format) and verdict.label_present and not verdict.explicit_label:
        findings.append(Finding("AIGC012", f"no explicit label found in this {media_format}"))
    c2pa = verdict.c2pa
    if c2pa is not None and c2pa.get("state") == "Invalid":
        why = "; ".join(str(x) for x in (c2pa.get("failures") or c2pa.get("problems") or [])) or "Invalid"
        findings.append(Finding("AIGC013", f"C2PA validation state Invalid: {why}"))
    return findings


def check_bytes(
    data: bytes, path: str = "-", trust: TrustStore | None = None, verdict: Verdict | None = None
) -> CheckReport:
    """Marks and findings for one file's bytes. Never raises on content: a file that can't be
    read at all comes back with ``error`` set. ``verdict``: ``verify(data, trust)`` when the
    caller has it already (the file is not verified twice)."""
    if verdict is None:
        verdict = verify(data, trust, decode_pictures=True)
    if verdict.status is Status.UNREADABLE:
        return CheckReport(path, {}, error="; ".join(verdict.problems) or "unreadable")
    try:
        found = find_label(data)
    except LabelerError as exc:  # verify read it, so this is unexpected: report, don't crash
        return CheckReport(path, {}, error=str(exc))
    xmp = found.xmp
    marks: dict[str, Any] = {
        "format": verdict.media_format,
        "gb_record": verdict.record is not None or found.labelled,
        "gb_slot": found.source,
        "notice": verdict.notice,
        "iptc_digital_source_type": bool(xmp and xmp.digital_source_type == DIGITAL_SOURCE_TYPE_AI),
        "signature": verdict.status.value,
        "c2pa": verdict.c2pa.get("state") if verdict.c2pa else None,
        #: None: can't be told from the bytes (video frames; a picture whose plate we don't find:
        #: only labeler's plate geometry is recognised, another producer's label may be there)
        "explicit_label": verdict.explicit_label
        if _explicit_checkable(verdict.media_format)
        else (True if verdict.explicit_label else None),
    }
    findings = _verdict_findings(verdict, verdict.media_format)
    if found.record is not None:
        findings += _record_shape(found.record, found.source)
    if verdict.record is not None:
        findings += _producer_shape(verdict.record)
    if found.packet is not None and found.xmp is not None and not marks["iptc_digital_source_type"]:
        findings.append(Finding("AIGC008", "the XMP packet has no DigitalSourceType trainedAlgorithmicMedia"))
    return CheckReport(path, marks, tuple(findings))


def check_files(paths: Sequence[str | Path], trust: TrustStore | None = None) -> list[CheckReport]:
    reports = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            reports.append(CheckReport(str(p), {}, error=f"cannot read: {exc.strerror or exc}"))
            continue
        reports.append(check_bytes(data, str(p), trust))
    return reports


#: marks whose loss a pipeline step is blamed for (True before, falsy after)
_KEPT = ("gb_record", "iptc_digital_source_type", "c2pa", "explicit_label")


def compare(before: CheckReport, after: CheckReport) -> CheckReport:
    """``after``'s report plus what the step between them lost (AIGC014)."""
    lost = [m for m in _KEPT if before.marks.get(m) and not after.marks.get(m)]
    if before.marks.get("signature") == "verified" and after.marks.get("signature") != "verified":
        lost.append(f"signature ({before.marks['signature']} -> {after.marks.get('signature')})")
    extra = tuple(Finding("AIGC014", f"lost {m} (in {before.path}, not in {after.path})") for m in lost)
    return CheckReport(after.path, {**after.marks, "lost": lost}, after.findings + extra, after.error)


def exit_code(reports: Sequence[CheckReport]) -> int:
    if any(r.error for r in reports):
        return 2
    return 1 if any(f.level != "note" for r in reports for f in r.findings) else 0


def to_text(reports: Sequence[CheckReport]) -> str:
    lines = []
    for r in reports:
        if r.error:
            lines.append(f"{r.path}: could not check: {r.error}")
            continue
        present = [
            k for k in ("gb_record", "iptc_digital_source_type", "c2pa", "explicit_label") if r.marks.get(k)
        ]
        lines.append(
            f"{r.path}: {r.marks.get('format')}, notice {r.marks.get('notice')}, "
            f"signature {r.marks.get('signature')}, marks: {', '.join(present) or 'none'}"
            + (f" (record in {r.marks['gb_slot']})" if r.marks.get("gb_slot") else "")
        )
        lines += [f"  {f.level} {f.rule}: {f.message}" for f in r.findings]
    return "\n".join(lines)


def to_sarif(reports: Sequence[CheckReport], tool_version: str) -> dict[str, Any]:
    """SARIF 2.1.0: one run, the rules with their ids, a result per finding located at its file."""
    rules = [
        {"id": rid, "shortDescription": {"text": text}, "defaultConfiguration": {"level": level}}
        for rid, (level, text) in RULES.items()
    ]
    results = [
        {
            "ruleId": f.rule,
            "level": f.level,
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": Path(r.path).as_posix()}}}],
        }
        for r in reports
        for f in r.findings
    ]
    notes = [
        {
            "level": "error",
            "message": {"text": f"{r.path}: could not check: {r.error}"},
            "descriptor": {"id": "could-not-run"},
        }
        for r in reports
        if r.error
    ]
    invocation: dict[str, Any] = {"executionSuccessful": not notes}
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "labeler check",
                        "version": tool_version,
                        "informationUri": "https://www.tc260.org.cn/",
                        "rules": rules,
                    }
                },
                "invocations": [invocation],
                "results": results,
            }
        ],
    }
