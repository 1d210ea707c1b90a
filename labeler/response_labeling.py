"""What labelling an AI app's HTTP responses means, apart from any server interface.

The ASGI middleware (:mod:`labeler.middleware`) and the WSGI middleware (:mod:`labeler.wsgi`)
are each one of these plus their transport: the options and counters, which responses are
labelled and how (:meth:`ResponseLabeller.plan`), the headers a labelled response carries, the
signed GB record, and the steps on a whole body (a JSON answer, a media file). When headers go
out, threads, and what the client sees on a failure stay with the transport.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict
from urllib.parse import quote

from . import jsonfast
from .adapters import anthropic, images, openai_chat, openai_responses
from .adapters.base import Labels, error_object
from .aigc import AigcRecord, new_produce_id
from .batch_signing import BatchSigner
from .content_coding import content_coding
from .explicit import explicit_label
from .formats import detect, find_label, media_types
from .policy import LabelPolicy
from .provenance import PayloadTemplate, sign_payloads
from .sse import MAX_PENDING
from .text import Position

if TYPE_CHECKING:
    from .content_credentials import C2paConfig

__all__ = ["MEDIA_TYPES", "LabelOptions", "Mode", "ResponseLabeller", "error_body", "refusal_message"]

logger = logging.getLogger("labeler.middleware")

#: Every media type of every registered container format: what is labelled as media.
MEDIA_TYPES = media_types()
TEXT_JSON_ADAPTERS = (openai_chat.label_json, openai_responses.label_json, anthropic.label_json)

#: how a response is handled: as it came, buffered and labelled (json, media), labelled event
#: by event (sse), or refused before its headers (an encoding we can't undo, fail_mode="closed")
Mode = Literal["pass", "json", "media", "sse", "refuse"]

Headers = list[tuple[bytes, bytes]]

#: Content-Type values as apps usually write them, to their media type without parsing
_COMMON_TYPES = {
    b"application/json": "application/json",
    b"application/json; charset=utf-8": "application/json",
    b"text/event-stream": "text/event-stream",
    b"text/event-stream; charset=utf-8": "text/event-stream",
}


class LabelOptions(TypedDict, total=False):
    """The keyword options of :class:`ResponseLabeller` (and so of both middleware)."""

    text_position: Position
    visible_images: bool
    visible_media: bool | Literal["auto"]
    include_paths: Sequence[str] | None
    exclude_paths: Sequence[str]
    fail_mode: Literal["closed", "open"]
    max_body_size: int
    max_event_size: int
    info_path: str | None
    add_headers: bool
    c2pa: C2paConfig | None
    batch_signatures: bool


class ResponseLabeller:
    def __init__(
        self,
        policy: LabelPolicy,
        *,
        text_position: Position = "start",
        visible_images: bool = True,
        visible_media: bool | Literal["auto"] = "auto",
        include_paths: Sequence[str] | None = None,
        exclude_paths: Sequence[str] = (),
        fail_mode: Literal["closed", "open"] = "closed",
        max_body_size: int = 32 * 1024 * 1024,
        max_event_size: int = MAX_PENDING,
        info_path: str | None = "/.well-known/aigc-label",
        add_headers: bool = True,
        c2pa: C2paConfig | None = None,
        batch_signatures: bool = True,
    ) -> None:
        if fail_mode not in ("closed", "open"):
            raise ValueError("fail_mode must be 'closed' or 'open'")
        self.policy = policy
        self.text_position = text_position
        self.labels = Labels(policy, text_position)
        self.visible_images = visible_images
        #: audio/video/document explicit labels. "auto": WAV rhythm, DOCX and PDF labels always;
        #: compressed audio and video only where ffmpeg is installed. True: always (a missing
        #: ffmpeg is a labelling failure). False: the implicit label only.
        self.visible_media = visible_media
        self.include_paths = tuple(include_paths) if include_paths is not None else None
        self.exclude_paths = tuple(exclude_paths)
        self.fail_mode = fail_mode
        self.max_body_size = max_body_size
        self.max_event_size = max_event_size  #: one SSE event larger than this can't be labelled
        self.info_path = info_path
        self.add_headers = add_headers
        self.c2pa = c2pa  #: given: image responses also get C2PA Content Credentials
        #: labeled, passed, fail_open, fail_closed, too_large, unlabeled_urls, event_errors
        self.stats: collections.Counter[str] = collections.Counter()
        self.info_body = json.dumps(self.label_info(), ensure_ascii=False).encode("utf-8")
        self._static_headers = self._constant_headers()
        key = policy.signing_key
        self._payloads = PayloadTemplate(policy, key.public_key) if key is not None else None
        #: JSON records finished in the same event-loop turn share one signature (Merkle batch)
        self.batcher = BatchSigner(key) if batch_signatures and key is not None else None

    def label_info(self) -> dict[str, Any]:
        """What an interactive UI must show persistently near the content (Measures, GB 45438)."""
        p = self.policy
        return {
            "ai_generated": True,
            "label": p.label_text,
            "label_zh": p.label_text_zh,
            "label_en": p.label_text_en,
            "provider": p.provider_name,
            "system": p.system_name,
            "system_version": p.system_version,
            "filing_numbers": list(p.filing_numbers),
            "launch_number": p.launch_number,
        }

    def applies_to(self, path: str) -> bool:
        """Whether ``path`` is labelled, judged on its normalised form (dot segments resolved,
        repeated slashes folded), as the app behind us or an upstream will route it:
        ``/x/../v1/chat`` can't slip past ``include_paths=["/v1"]`` or into an excluded prefix."""
        if self.include_paths is None and not self.exclude_paths:
            return True
        path = _normalise_path(path)
        if any(path.startswith(prefix) for prefix in self.exclude_paths):
            return False
        return self.include_paths is None or any(path.startswith(prefix) for prefix in self.include_paths)

    # -- which responses, and how ---------------------------------------------------------------------

    def plan(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> tuple[Mode, str]:
        """How a response with this status and these headers is handled, and a detail: the
        Content-Encoding to undo ("identity", "gzip", "deflate"), or why it is refused."""
        if not 200 <= status < 300 or status in (204, 205):
            return "pass", ""
        ctype, encoding = "", b""
        for name, raw in headers:  # one pass, no Headers object: this runs per response
            name = name.lower()
            if name == b"content-type" and not ctype:  # the first one counts, as in Headers.get
                ctype = _COMMON_TYPES.get(raw) or raw.decode("latin-1").split(";")[0].strip().lower()
            elif name == b"content-encoding":
                encoding = encoding + b"," + raw if encoding else raw
        mode: Mode
        if ctype == "text/event-stream":
            mode = "sse"
        elif ctype == "application/json" or ctype.endswith("+json"):
            mode = "json"
        elif ctype in MEDIA_TYPES:
            mode = "media"
        else:
            return "pass", ""
        if not encoding:
            return mode, "identity"
        value = encoding.decode("latin-1")
        coding = content_coding(value)
        if coding is not None:
            return mode, coding
        logger.warning(
            "a %s-encoded response can't be labelled (gzip and deflate are decoded); "
            "put LabelingMiddleware inside compression middleware",
            value,
        )
        if self.fail_mode == "open":
            self.stats["passed_encoded"] += 1
            return "pass", ""
        return "refuse", f"Content-Encoding {value!r} is not one the labeller decodes"

    # -- what labelled responses carry ------------------------------------------------------------

    def record_json(self, digest: bytes, media_format: str) -> str:
        """The GB record (JSON) of a response whose ReservedCode1 (given a key) signs ``digest``."""
        produce_id = new_produce_id()
        key, token = self.policy.signing_key, ""
        if key is not None and self._payloads is not None:
            token = sign_payloads([self._payloads.payload(produce_id, media_format, digest)], key)[0]
        return AigcRecord.first_write_json(self.policy.producer, produce_id, token)

    async def batch_signed_record_json(self, digest: bytes, media_format: str) -> str:
        """:meth:`record_json`, signed in a batch with the other records of this loop turn."""
        queued = self.queue_record(digest, media_format)
        if queued is None:
            return self.record_json(digest, media_format)
        produce_id, token = queued
        return self.signed_record_json(produce_id, await token)

    def queue_record(
        self, digest: bytes, media_format: str, settled: Callable[[], None] | None = None
    ) -> tuple[str, asyncio.Future[str]] | None:
        """``(ProduceID, future token)``: the record's signature queued in this loop turn's batch
        (:meth:`signed_record_json` makes the record once it is settled); None without a batch
        signer (then :meth:`record_json` signs, or not, on the spot). ``settled``: see
        :meth:`BatchSigner.submit`."""
        if self.batcher is None or self._payloads is None:
            return None
        produce_id = new_produce_id()
        payload = self._payloads.payload(produce_id, media_format, digest)
        return produce_id, self.batcher.submit(payload, settled)

    def signed_record_json(self, produce_id: str, token: str) -> str:
        return AigcRecord.first_write_json(self.policy.producer, produce_id, token)

    def _constant_headers(self) -> Headers:
        """The headers that are the same on every labelled response (computed once)."""
        headers = [(b"ai-generated", b"true"), (b"aigc-label", quote(self.policy.label_text).encode())]
        if self.policy.filing_numbers:
            value = ", ".join(quote(n, safe="-") for n in self.policy.filing_numbers)
            headers.append((b"aigc-filing-number", value.encode("ascii")))
        return headers

    def label_headers(self, record_json: str | None) -> Headers:
        if not self.add_headers:
            return []
        headers = list(self._static_headers)
        if record_json:
            headers.append((b"aigc", record_json.encode("ascii")))
        return headers

    def stream_headers(self, stream_labelled: bool) -> Headers:
        """The headers a labelled stream adds (none if the stream turned out not to be ours)."""
        if not stream_labelled:
            return []
        headers = self.label_headers(None)
        if self.add_headers and self.policy.signing_key is not None:
            headers.append((b"aigc-provenance", b"sse-comment"))
        return headers

    # -- whole bodies ------------------------------------------------------------------------------------

    def label_json(self, raw: bytes) -> tuple[bytes, Headers] | None:
        """A JSON answer with its text or images labelled, and headers to add (not the record:
        the caller signs the body, alone or in a batch); None if it is not a shape we label."""
        obj, encode = jsonfast.parse(raw)
        if not isinstance(obj, dict):
            return None
        extra: Headers = []
        for adapter in TEXT_JSON_ADAPTERS:
            if adapter(obj, self.labels):
                break
        else:
            recognised, unlabeled = images.label_json(obj, self.policy, self.visible_images, self.c2pa)
            if not recognised:
                return None
            if unlabeled:
                self.stats["unlabeled_urls"] += unlabeled
                extra.append((b"aigc-unlabeled-urls", str(unlabeled).encode()))
        return encode(obj), extra

    def label_json_now(self, raw: bytes) -> tuple[bytes, Headers] | None:
        """:meth:`label_json` with the record's headers, signed on its own (no event loop)."""
        labelled = self.label_json(raw)
        if labelled is None:
            return None
        body, extra = labelled
        record = self.record_json(hashlib.sha256(body).digest(), "json")
        return body, self.label_headers(record) + extra

    def label_media(self, raw: bytes) -> tuple[bytes, Headers]:
        """A media file (image, audio, video, document) labelled, with the headers to add.
        CPU-bound: the ASGI middleware runs it in a worker thread."""
        from .labeling import label_with_record

        fmt = detect(raw)
        out, record = label_with_record(
            raw,
            self.policy,
            visible=self.visible(fmt.kind, fmt.name),
            on_existing="keep",
            c2pa=self.c2pa if fmt.kind == "image" else None,
        )
        if record is None:  # labelled upstream already: say what it carries
            headers = self.label_headers(find_label(out).record)
        else:
            headers = self.label_headers(record.to_json())
        if self.c2pa is not None and fmt.kind == "image" and self.add_headers:
            headers.append((b"aigc-c2pa", b"embedded"))  # C2PA Content Credentials are in the image
        return out, headers

    def visible(self, kind: str, name: str) -> bool:
        """Whether a media file of this kind and format gets its explicit label."""
        if kind == "image":
            return self.visible_images
        if self.visible_media is False:
            return False
        explicit = explicit_label(name)
        if explicit is None or not explicit.needs_ffmpeg:  # WAV rhythm, DOCX paragraph, PDF stamp
            return True
        if self.visible_media == "auto":
            from . import ffmpeg

            if not ffmpeg.available():
                self.stats["implicit_only"] += 1
                return False
        return True


def error_body(message: str) -> bytes:
    """The JSON error a client gets when its response can't be labelled (fail_mode="closed")."""
    return json.dumps({"error": error_object(message)}).encode()


def refusal_message(reason: str) -> str:
    return f"the response could not be labelled as AI-generated: {reason}"[:500]


def _normalise_path(path: str) -> str:
    """RFC 3986 remove_dot_segments on a decoded path, with ``//`` and ``\\`` folded to ``/``."""
    out: list[str] = []
    for segment in re.sub(r"[/\\]+", "/", path).split("/"):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    normal = "/".join(out)
    if path.endswith(("/.", "/..")):
        normal += "/"
    return normal if normal.startswith("/") else "/" + normal
