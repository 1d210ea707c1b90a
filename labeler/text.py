"""Labels for text: visible prompts, Markdown front matter, and an invisible signed mark.

* Visible: ``【AI生成】`` (zh) / ``[AI-generated]`` (en) at the start, end or both; Markdown-aware
  (goes after YAML front matter, on its own line before a code fence, heading, list or table);
  idempotent: a label already there, in any compliant wording, is never added twice.
* Markdown files: front matter ``AIGC: '{"AIGC":{...}}'`` whose ReservedCode1 signs the
  document *without* that line, so verify can recompute it.
* Plain text: a compact signed mark spelled in Unicode variation selectors (invisible, and kept
  by copy-paste), placed after the first character. It signs a digest of the text with
  whitespace collapsed, so re-wrapping or trimming does not break it; editing words does.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
import unicodedata
from dataclasses import dataclass
from typing import Literal

from .aigc import AigcRecord, Label, new_produce_id
from .errors import ConfigError, InvalidRecordError
from .policy import LabelPolicy, check_label_text
from .provenance import sign_for
from .signing import b64url_decode, b64url_encode

__all__ = [
    "add_text_label",
    "end_fragment",
    "find_text_labels",
    "front_matter_label",
    "label_markdown",
    "label_marker",
    "mark_digest",
    "mark_text",
    "markdown_record",
    "read_text_mark",
    "start_fragment",
    "strip_text_mark",
]

Position = Literal["start", "end", "both"]

_BRACKETED = re.compile(r"【([^】\n]{1,40})】|\[([^\]\n]{1,40})\]")
_BRACKETED_AT_END = re.compile(r"(?:【([^】\n]{1,40})】|\[([^\]\n]{1,40})\])\Z")
_LONGEST_LABEL = 42  #: chars of the longest bracketed label, brackets included
_FRONT_MATTER = re.compile(r"\A---(\r?\n)(.*?)(?:\r?\n)?---(?:\r?\n|\Z)", re.S)
_BLOCK_START = re.compile(r"(```|~~~|#{1,6}\s|\||>|[-*+]\s|\d+[.)]\s|<|    |\t)")
_VS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]+")
_MAGIC = b"AIGC\x01"
_ALG_IDS = {"Ed25519": 1, "ES256": 2}


# -- visible labels -----------------------------------------------------------------------------


def label_marker(policy: LabelPolicy) -> str:
    """The label as a bracketed prompt, e.g. 【AI生成】: what text and documents carry."""
    return f"【{policy.label_text_zh}】" if policy.language == "zh" else f"[{policy.label_text_en}]"


def start_fragment(policy: LabelPolicy) -> str:
    """What a stream sends before the first token: the label as its own paragraph."""
    return label_marker(policy) + "\n\n"


def end_fragment(policy: LabelPolicy) -> str:
    """What a stream sends after the last token."""
    return "\n\n" + label_marker(policy)


def _is_label(inner: str) -> bool:
    for language in ("zh", "en"):
        try:
            check_label_text(inner, language)
            return True
        except ConfigError:
            pass
    return False


def _split_front_matter(text: str) -> tuple[str, str]:
    match = _FRONT_MATTER.match(text)
    return (text[: match.end()], text[match.end() :]) if match else ("", text)


def find_text_labels(text: str) -> tuple[bool, bool]:
    """(label at the start, label at the end), ignoring front matter, marks and whitespace."""
    body = _plain_body(text)
    return _label_at_start(body), _label_at_end(body)


def _plain_body(text: str) -> str:
    _, body = _split_front_matter(strip_text_mark(text))
    return body.strip()


def _label_at_start(body: str) -> bool:
    first = _BRACKETED.match(body)
    return bool(first and _is_label(first.group(1) or first.group(2)))


def _label_at_end(body: str) -> bool:
    last = _BRACKETED_AT_END.search(body, max(0, len(body) - _LONGEST_LABEL))
    return bool(last and _is_label(last.group(1) or last.group(2)))


def add_text_label(text: str, policy: LabelPolicy, position: Position = "start") -> str:
    """``text`` with a visible label at ``position``; unchanged where a label already is."""
    if position not in ("start", "end", "both"):
        raise ConfigError(f"position must be start, end or both, got {position!r}")
    plain = _plain_body(text)
    has_start = _label_at_start(plain)
    has_end = position != "start" and _label_at_end(plain)  # "start" (the default) needs no end
    marker = label_marker(policy)
    if position in ("start", "both") and not has_start:
        front, body = _split_front_matter(text)
        if not body.strip() or _BLOCK_START.match(body):
            sep = "\n\n"
        else:
            sep = "" if policy.language == "zh" else " "
        text = front + marker + sep + body
    if (
        position in ("end", "both")
        and not has_end
        and not (position == "end" and has_start and not text.strip())
    ):
        text = text.rstrip("\n") + "\n\n" + marker + ("\n" if text.endswith("\n") else "")
    return text


# -- Markdown front matter ------------------------------------------------------------------------


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text[:4096] else "\n"


def _yaml_single_quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _remove_front_matter_label(doc: str) -> tuple[str, str | None]:
    """(document without our AIGC line, the raw YAML value of that line or None)."""
    match = _FRONT_MATTER.match(doc)
    if not match:
        return doc, None
    nl = match.group(1)
    lines = match.group(2).split(nl) if match.group(2) else []
    kept, value = [], None
    for line in lines:
        m = re.match(r"AIGC:\s*(.*)$", line)
        if m and value is None:
            value = m.group(1).strip()
        else:
            kept.append(line)
    if value is None:
        return doc, None
    rest = doc[match.end() :]
    if not kept:
        return rest, value
    return f"---{nl}{nl.join(kept)}{nl}---{nl}" + rest, value


def markdown_record(doc: str) -> str | None:
    """The ``AIGC:`` front-matter value of a Markdown document (unquoted), or ``None``."""
    raw = _remove_front_matter_label(doc)[1]
    return None if raw is None else _unquote_yaml(raw)


def _unquote_yaml(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def label_markdown(
    doc: str, policy: LabelPolicy, *, visible: Position | None = "start", produce_id: str | None = None
) -> str:
    """A Markdown document with a visible label (after the front matter) and an ``AIGC:`` front
    matter record signed over the rest. An existing ``AIGC:`` record is kept (idempotent)."""
    if _remove_front_matter_label(doc)[1] is not None:
        return doc
    if visible:
        doc = add_text_label(doc, policy, visible)
    produce_id = produce_id or new_produce_id()
    token = sign_for(
        policy,
        produce_id=produce_id,
        media_format="markdown",
        content_digest=hashlib.sha256(doc.encode("utf-8")).digest(),
    )
    record = AigcRecord.first_write(policy.producer, produce_id, token)
    line = "AIGC: " + _yaml_single_quoted(record.to_json())
    nl = _newline(doc)
    match = _FRONT_MATTER.match(doc)
    if match:
        nl = match.group(1)
        body = match.group(2)
        inner = f"{body}{nl}{line}" if body else line
        return f"---{nl}{inner}{nl}---{nl}" + doc[match.end() :]
    return f"---{nl}{line}{nl}---{nl}" + doc


# -- invisible mark ---------------------------------------------------------------------------------


def _to_vs(data: bytes) -> str:
    return "".join(chr(0xFE00 + b) if b < 16 else chr(0xE0100 + b - 16) for b in data)


def _from_vs(chars: str) -> bytes:
    return bytes(ord(c) - 0xFE00 if ord(c) < 0xFE10 else ord(c) - 0xE0100 + 16 for c in chars)


def strip_text_mark(text: str) -> str:
    """``text`` without any variation-selector runs (our marks, and stray selectors)."""
    return text if text.isascii() else _VS.sub("", text)


def _normalise(text: str) -> bytes:
    """What a mark signs: NFC text without marks or U+FEFF, whitespace runs folded to one space."""
    plain = strip_text_mark(text).replace("\ufeff", "")
    return " ".join(unicodedata.normalize("NFC", plain).split()).encode("utf-8")


@dataclass(frozen=True)
class TextMark:
    algorithm: str
    key_id: str
    created: int
    label: str
    produce_id: str
    producer: str
    signed_part: bytes
    signature: bytes


def mark_text(text: str, policy: LabelPolicy, *, produce_id: str | None = None) -> str:
    """``text`` carrying an invisible, signed AIGC mark (any earlier mark is replaced)."""
    key = policy.signing_key
    if key is None:
        raise ConfigError("an invisible text mark needs a signing key in the policy")
    if key.algorithm not in _ALG_IDS:
        raise ConfigError(f"text marks support {', '.join(_ALG_IDS)}, not {key.algorithm}")
    produce_id = produce_id or new_produce_id()
    try:
        pid = bytes.fromhex(produce_id)
    except ValueError:
        pid = b""
    if len(pid) != 16:
        raise ConfigError("text marks need a 32-hex-digit ProduceID (as new_produce_id makes)")
    producer = policy.producer.encode("ascii")
    head = (
        _MAGIC
        + bytes([_ALG_IDS[key.algorithm]])
        + b64url_decode(key.key_id)
        + struct.pack(">I", int(time.time()))
        + Label.GENERATED.value.encode()
        + pid
        + bytes([len(producer)])
        + producer
    )
    clean = strip_text_mark(text)
    signature = key.sign(head + hashlib.sha256(_normalise(clean)).digest())
    mark = _to_vs(head + signature)
    return clean[:1] + mark + clean[1:] if clean else "\ufeff" + mark


def read_text_mark(text: str) -> TextMark | None:
    """The first mark in ``text``; ``None`` if there is none; raises on a broken one."""
    for run in _VS.finditer(text):
        data = _from_vs(run.group())
        if not data.startswith(_MAGIC):
            continue
        try:
            alg_id, kid, created = data[5], data[6:18], struct.unpack_from(">I", data, 18)[0]
            label, pid, plen = chr(data[22]), data[23:39], data[39]
            producer = data[40 : 40 + plen].decode("ascii")
            signature = data[40 + plen :]
        except (IndexError, struct.error, UnicodeDecodeError):
            raise InvalidRecordError("text mark is truncated") from None
        algorithm = next((n for n, i in _ALG_IDS.items() if i == alg_id), f"#{alg_id}")
        if len(pid) != 16 or len(signature) != 64:
            raise InvalidRecordError("text mark is truncated")
        return TextMark(
            algorithm, b64url_encode(kid), created, label, pid.hex(), producer, data[: 40 + plen], signature
        )
    return None


def front_matter_label(doc: str) -> tuple[str, str | None]:
    """(the document without our ``AIGC:`` front-matter line, that line's record JSON or None):
    what the front matter's ReservedCode1 signs, and the record to check."""
    body, raw = _remove_front_matter_label(doc)
    return body, (None if raw is None else _unquote_yaml(raw))


def mark_digest(text: str) -> bytes:
    """SHA-256 of what an invisible mark signs: the normalised text (see :func:`mark_text`)."""
    return hashlib.sha256(_normalise(text)).digest()
