"""``LabelingMiddleware``: pure ASGI middleware that labels what an AI app sends.

    app.add_middleware(LabelingMiddleware, policy=LabelPolicy.load())

Per-request state lives in a responder created for each request (as Starlette's
GZipMiddleware does); the middleware object itself holds only configuration and counters.

* JSON (OpenAI chat / Responses, Anthropic Messages, OpenAI Images): the body is buffered up to
  ``max_body_size``, labelled, re-serialised, and sent with a fixed Content-Length.
* SSE (``text/event-stream``): headers go out at once; every upstream event is forwarded the
  moment it is complete, label events are inserted at the start and/or end, unknown events pass
  untouched, ``[DONE]`` stays last. The signed record binding the streamed text travels as a
  trailing SSE *comment*, which every conforming client ignores.
* Images (``image/png|jpeg|webp|gif``): visible + implicit label + signature.
* Audio (``audio/wav|mpeg|flac|ogg``, e.g. OpenAI ``audio/speech``), video (``video/mp4``) and
  documents (PDF, DOCX): the record in the format's own tag, plus per ``visible_media`` the
  rhythm label on audio, the opening-frames label on video, the label paragraph that opens a
  DOCX and the page-1 stamp on a PDF. Media are labelled in a worker
  thread, so the event loop keeps serving other requests meanwhile.
* Labelled responses carry ``AI-Generated: true``, ``AIGC`` (the GB record), ``AIGC-Filing-Number``
  and ``AIGC-Label`` (non-ASCII percent-encoded). ``GET /.well-known/aigc-label`` tells a UI what
  to show persistently.
* On a labelling failure: ``fail_mode="closed"`` answers a clean 500 JSON error,
  ``"open"`` passes the original through (logged and counted). The host app never sees our
  exceptions, and a body is never sent half-labelled.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import os
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import anyio
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import jsonfast
from .adapters import anthropic, images, openai_chat, openai_responses, stream_text
from .adapters.base import Labels, StreamAdapter
from .aigc import AigcRecord, new_produce_id
from .batch_signing import BatchSigner
from .errors import InvalidRecordError, LabelerError, MalformedFileError
from .formats import detect
from .policy import LabelPolicy
from .provenance import PayloadTemplate, sign_payloads
from .signing import TrustStore
from .sse import Event, SSEParser, format_comment
from .text import Position
from .verification import Status, Verdict, judge_record

if TYPE_CHECKING:
    from .content_credentials import C2paConfig
from .xmp import read_label

__all__ = ["LabelingMiddleware", "verify_response", "verify_stream"]

logger = logging.getLogger("labeler.middleware")

IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
AUDIO_TYPES = {
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3",
    "audio/flac", "audio/x-flac", "audio/ogg", "audio/opus",
}  # fmt: skip
OTHER_MEDIA_TYPES = {
    "video/mp4", "video/quicktime", "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}  # fmt: skip
MEDIA_TYPES = IMAGE_TYPES | AUDIO_TYPES | OTHER_MEDIA_TYPES
STREAM_ADAPTERS: tuple[type[StreamAdapter], ...] = (
    openai_chat.ChatStream,
    openai_responses.ResponsesStream,
    anthropic.AnthropicStream,
)
TEXT_JSON_ADAPTERS = (openai_chat.label_json, openai_responses.label_json, anthropic.label_json)
COMMENT_PREFIX = "AIGC "


class LabelingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        policy: LabelPolicy,
        *,
        text_position: Position = "start",
        visible_images: bool = True,
        visible_media: bool | Literal["auto"] = "auto",
        include_paths: Sequence[str] | None = None,
        exclude_paths: Sequence[str] = (),
        fail_mode: Literal["closed", "open"] = "closed",
        max_body_size: int = 32 * 1024 * 1024,
        info_path: str | None = "/.well-known/aigc-label",
        add_headers: bool = True,
        c2pa: C2paConfig | None = None,
        batch_signatures: bool = True,
    ) -> None:
        if fail_mode not in ("closed", "open"):
            raise ValueError("fail_mode must be 'closed' or 'open'")
        self.app = app
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
        self.info_path = info_path
        self.add_headers = add_headers
        self.c2pa = c2pa  #: given: image responses also get C2PA Content Credentials
        #: labeled, passed, fail_open, fail_closed, too_large, unlabeled_urls, event_errors
        self.stats: collections.Counter[str] = collections.Counter()
        self._info = json.dumps(self.label_info(), ensure_ascii=False).encode("utf-8")
        #: media labelling threads at once (one per core): bounds CPU and memory under bursts
        self.media_workers = max(1, os.cpu_count() or 1)
        self._media_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )  # one per event loop: a limiter belongs to the loop it was made in
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

    def media_limiter(self) -> anyio.CapacityLimiter:
        """This event loop's limiter on concurrent media labelling threads."""
        loop = asyncio.get_running_loop()
        limiter = self._media_limiters.get(loop)
        if limiter is None:
            limiter = self._media_limiters[loop] = anyio.CapacityLimiter(self.media_workers)
        return limiter

    def applies_to(self, path: str) -> bool:
        if any(path.startswith(prefix) for prefix in self.exclude_paths):
            return False
        return self.include_paths is None or any(path.startswith(prefix) for prefix in self.include_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websocket, lifespan: untouched
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if self.info_path and path == self.info_path and scope.get("method") in ("GET", "HEAD"):
            await self._send_info(scope, send)
            return
        if not self.applies_to(path):
            await self.app(scope, receive, send)
            return
        await _Responder(self)(scope, receive, send)

    async def _send_info(self, scope: Scope, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(self._info)).encode()),
            (b"cache-control", b"max-age=60"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else self._info}
        )

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
        if self.batcher is None or self._payloads is None:
            return self.record_json(digest, media_format)
        produce_id = new_produce_id()
        token = await self.batcher.sign(self._payloads.payload(produce_id, media_format, digest))
        return AigcRecord.first_write_json(self.policy.producer, produce_id, token)

    def _constant_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers that are the same on every labelled response (computed once)."""
        headers = [(b"ai-generated", b"true"), (b"aigc-label", quote(self.policy.label_text).encode())]
        if self.policy.filing_numbers:
            value = ", ".join(quote(n, safe="-") for n in self.policy.filing_numbers)
            headers.append((b"aigc-filing-number", value.encode("ascii")))
        return headers

    def label_headers(self, record_json: str | None) -> list[tuple[bytes, bytes]]:
        if not self.add_headers:
            return []
        headers = list(self._static_headers)
        if record_json:
            headers.append((b"aigc", record_json.encode("ascii")))
        return headers


def _error_body(message: str) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": "labeling_error", "code": "aigc_label_failed"}}
    ).encode()


class _Responder:
    """One request's state: which mode the response is in, what is buffered, the stream adapter."""

    def __init__(self, mw: LabelingMiddleware) -> None:
        self.mw = mw
        self.send: Send = _unset_send
        self.start: Message = {}
        self.mode: Literal["pass", "json", "media", "sse", "discard"] = "pass"
        self.buffer: list[bytes] = []
        self.size = 0
        self.parser: SSEParser | None = None  #: made when the response turns out to be a stream
        self.adapter: StreamAdapter | None = None
        self.finished = False
        self.newline = b"\n"  #: the stream's line ending, from the last event seen
        self.labels = mw.labels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.send = send
        await self.mw.app(scope, receive, self.on_send)

    async def on_send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.start = message
            self.mode = self._mode(message)
            if self.mode == "sse":
                self.parser = SSEParser()
                headers = MutableHeaders(raw=list(message["headers"]))
                del headers["content-length"]
                for name, value in self.mw.label_headers(None):
                    headers.append(name.decode(), value.decode())
                headers["aigc-provenance"] = "sse-comment"
                await self.send({**message, "headers": headers.raw})
            elif self.mode == "pass":
                await self.send(message)
            return
        if kind != "http.response.body":
            if self.mode != "discard":
                await self.send(message)
            return
        if self.mode == "pass":
            await self.send(message)
        elif self.mode == "sse":
            await self._stream(message)
        elif self.mode in ("json", "media"):
            await self._buffered(message)
        # "discard": a fail-closed error was already sent; the app's remaining body is dropped

    def _mode(self, start: Message) -> Literal["pass", "json", "media", "sse"]:
        status = start.get("status", 200)
        if not 200 <= status < 300 or status in (204, 205):
            return "pass"
        ctype, encoding = "", "identity"
        for name, value in start["headers"]:  # one pass, no Headers object: this runs per response
            name = name.lower()
            if name == b"content-type" and not ctype:  # the first one counts, as in Headers.get
                ctype = value.decode("latin-1").split(";")[0].strip().lower()
            elif name == b"content-encoding" and encoding == "identity":
                encoding = value.decode("latin-1")
        if encoding.strip().lower() != "identity":
            self.mw.stats["passed_encoded"] += 1
            logger.warning(
                "response is %s-encoded; put LabelingMiddleware inside compression middleware", encoding
            )
            return "pass"
        if ctype == "text/event-stream":
            return "sse"
        if ctype == "application/json" or ctype.endswith("+json"):
            return "json"
        if ctype in MEDIA_TYPES:
            return "media"
        return "pass"

    # -- buffered bodies (JSON, images) -------------------------------------------------------------

    async def _buffered(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        self.size += len(body)
        if self.size > self.mw.max_body_size:
            self.mw.stats["too_large"] += 1
            await self._fail(f"response body exceeds {self.mw.max_body_size} bytes", message)
            return
        self.buffer.append(body)
        if message.get("more_body", False):
            return
        raw = b"".join(self.buffer)
        self.buffer = []
        try:
            if self.mode == "json":
                labelled = await self._label_json(raw)
            else:
                labelled = await anyio.to_thread.run_sync(
                    self._label_media, raw, limiter=self.mw.media_limiter()
                )
        except Exception as exc:
            await self._fail(f"{type(exc).__name__}: {exc}", None, raw)
            return
        if labelled is None:  # not a shape we label: untouched
            self.mw.stats["passed"] += 1
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": raw})
            return
        new_body, extra = labelled
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(new_body)).encode("ascii")))
        self.mw.stats["labeled"] += 1
        await self.send({**self.start, "headers": headers + extra})
        await self.send({"type": "http.response.body", "body": new_body})

    async def _label_json(self, raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        obj, encode = jsonfast.parse(raw)
        if not isinstance(obj, dict):
            return None
        extra: list[tuple[bytes, bytes]] = []
        if not any(adapter(obj, self.labels) for adapter in TEXT_JSON_ADAPTERS):
            recognised, unlabeled = images.label_json(
                obj, self.mw.policy, self.mw.visible_images, self.mw.c2pa
            )
            if not recognised:
                return None
            if unlabeled:
                self.mw.stats["unlabeled_urls"] += unlabeled
                extra.append((b"aigc-unlabeled-urls", str(unlabeled).encode()))
        body = encode(obj)
        record = await self.mw.batch_signed_record_json(hashlib.sha256(body).digest(), "json")
        return body, self.mw.label_headers(record) + extra

    def _label_media(self, raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        from .labeling import label_content

        fmt = detect(raw)
        out = label_content(
            raw,
            self.mw.policy,
            visible=self._visible(fmt.kind, fmt.name),
            on_existing="keep",
            c2pa=self.mw.c2pa if fmt.kind == "image" else None,
        )
        packet = fmt.read_xmp(out)
        label = read_label(packet) if packet else None
        headers = self.mw.label_headers(label.aigc if label else fmt.read_fallback(out))
        if self.mw.c2pa is not None and fmt.kind == "image" and self.mw.add_headers:
            headers.append((b"aigc-c2pa", b"embedded"))  # C2PA Content Credentials are in the image
        return out, headers

    def _visible(self, kind: str, name: str) -> bool:
        if kind == "image":
            return self.mw.visible_images
        if self.mw.visible_media is False:
            return False
        if kind == "document":  # a DOCX paragraph or a PDF stamp needs nothing external
            return True
        if self.mw.visible_media == "auto" and name != "wav":
            from . import ffmpeg

            if not ffmpeg.available():
                self.mw.stats["implicit_only"] += 1
                return False
        return True

    async def _fail(self, reason: str, message: Message | None, raw: bytes | None = None) -> None:
        logger.warning("labeling failed (%s mode): %s", self.mw.fail_mode, reason)
        if self.mw.fail_mode == "open":
            self.mw.stats["fail_open"] += 1
            await self.send(self.start)
            body = b"".join(self.buffer) + (raw or b"") + (message.get("body", b"") if message else b"")
            self.buffer = []
            more = bool(message and message.get("more_body", False))
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
            self.mode = "pass" if more else "discard"
            return
        self.mw.stats["fail_closed"] += 1
        body = _error_body(f"the response could not be labelled as AI-generated: {reason}"[:500])
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})
        self.buffer = []
        self.mode = "discard"

    # -- streams ---------------------------------------------------------------------------------------

    async def _stream(self, message: Message) -> None:
        parser = self.parser
        assert parser is not None  # made with the response start
        more = message.get("more_body", False)
        out: list[bytes] = []
        try:
            events = parser.feed(message.get("body", b""))
        except MalformedFileError as exc:  # an event that never ends: stop rewriting, pass the rest
            logger.warning("SSE stream no longer labelled: %s", exc)
            self.mw.stats["event_errors"] += 1
            out.append(parser.flush())
            self.mode = "pass"
            events = []
        for event in events:
            out += self._rewrite(event)
        if not more:
            tail = parser.flush()
            out += self._finish()
            out.append(tail)
        payload = b"".join(out)
        if payload or not more:
            await self.send({"type": "http.response.body", "body": payload, "more_body": more})

    def _rewrite(self, event: Event) -> list[bytes]:
        self.newline = event.newline
        if event.data == "[DONE]":
            return [*self._finish(), event.raw]
        try:
            if self.adapter is not None:
                result = self.adapter.on_event(event)
                return result if result is not None else [event.raw]
            for adapter_type in STREAM_ADAPTERS:
                candidate = adapter_type(self.labels)
                result = candidate.on_event(event)
                if result is not None:
                    self.adapter = candidate
                    self.mw.stats["labeled"] += 1
                    return result
        except Exception as exc:
            logger.warning("SSE event passed through unlabelled: %s", exc)
            self.mw.stats["event_errors"] += 1
        return [event.raw]

    def _finish(self) -> list[bytes]:
        if self.finished or self.adapter is None:
            return []
        self.finished = True
        out = self.adapter.finish()
        if self.adapter.saw_text and self.mw.policy.signing_key is not None:
            record = self.mw.record_json(self.adapter.digest.digest(), "text")
            out.append(format_comment(COMMENT_PREFIX + record, self.newline))
        return out


async def _unset_send(message: Message) -> None:  # pragma: no cover - replaced before use
    raise RuntimeError("responder used before it was called")


# -- checking what the middleware produced ----------------------------------------------------------


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
