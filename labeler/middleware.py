"""``LabelingMiddleware``: pure ASGI middleware that labels what an AI app sends.

    app.add_middleware(LabelingMiddleware, policy=LabelPolicy.load())

Per-request state lives in a responder created for each request (as Starlette's
GZipMiddleware does); the middleware object itself holds only configuration and counters.

* JSON (OpenAI chat / Responses, Anthropic Messages, OpenAI Images): the body is buffered up to
  ``max_body_size``, labelled, re-serialised, and sent with a fixed Content-Length.
* SSE (``text/event-stream``): the headers go out with the first event, which shows whether the
  stream is one we label (only then do they claim a label); every upstream event is forwarded the
  moment it is complete, label events are inserted at the start and/or end, unknown events pass
  untouched, ``[DONE]`` stays last. The signed record binding the streamed text travels as a
  trailing SSE *comment*, which every conforming client ignores (announced by
  ``AIGC-Provenance: sse-comment`` only when a signing key makes one).
* ``Content-Encoding: gzip`` / ``deflate`` bodies are decoded (bounded: ``max_body_size`` in all,
  64 KiB pieces for streams) and labelled, then sent uncompressed; other codings can't be labelled.
* Images (``image/png|jpeg|webp|gif``): visible + implicit label + signature.
* Audio (``audio/wav|mpeg|flac|ogg``, e.g. OpenAI ``audio/speech``), video (``video/mp4``) and
  documents (PDF, DOCX): the record in the format's own tag, plus per ``visible_media`` the
  rhythm label on audio, the opening-frames label on video, the label paragraph that opens a
  DOCX and the page-1 stamp on a PDF. Media are labelled in a worker
  thread, so the event loop keeps serving other requests meanwhile.
* Labelled responses carry ``AI-Generated: true``, ``AIGC`` (the GB record), ``AIGC-Filing-Number``
  and ``AIGC-Label`` (non-ASCII percent-encoded). ``GET /.well-known/aigc-label`` tells a UI what
  to show persistently.
* On a labelling failure: ``fail_mode="closed"`` answers a clean 500 JSON error (a stream whose
  headers are out ends with its API's own error event, after the record of what was labelled);
  ``"open"`` passes the original through, with no header claiming a label (logged and counted).
  The host app never sees our exceptions, and a body is never sent half-labelled.
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
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import jsonfast
from .adapters import STREAM_ADAPTERS, anthropic, images, openai_chat, openai_responses
from .adapters.base import Labels, StreamAdapter, error_event, error_object
from .aigc import AigcRecord, new_produce_id
from .batch_signing import BatchSigner
from .errors import MalformedFileError
from .explicit import explicit_label
from .formats import detect, find_label, formats
from .policy import LabelPolicy
from .provenance import PayloadTemplate, sign_payloads
from .sse import MAX_PENDING, Event, EventTooLargeError, SSEParser, format_comment
from .text import Position
from .verification import verify_response, verify_stream

if TYPE_CHECKING:
    from .content_credentials import C2paConfig

__all__ = ["LabelingMiddleware", "verify_response", "verify_stream"]

logger = logging.getLogger("labeler.middleware")

#: Every media type of every registered container format: what the middleware labels as media.
MEDIA_TYPES = frozenset(t for f in formats() for t in (f.mime_type, *f.mime_aliases))
TEXT_JSON_ADAPTERS = (openai_chat.label_json, openai_responses.label_json, anthropic.label_json)
COMMENT_PREFIX = "AIGC "
#: stream bytes (comments, keep-alives) held before the first event decides the headers
HOLD_BEFORE_HEADERS = 64 * 1024


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
        max_event_size: int = MAX_PENDING,
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
        self.max_event_size = max_event_size  #: one SSE event larger than this can't be labelled
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
        """Whether ``path`` is labelled, judged on its normalised form (dot segments resolved,
        repeated slashes folded), as the app behind us or an upstream will route it:
        ``/x/../v1/chat`` can't slip past ``include_paths=["/v1"]`` or into an excluded prefix."""
        if self.include_paths is None and not self.exclude_paths:
            return True
        path = _normalise_path(path)
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
        if not self.applies_to(path) or scope.get("method") == "HEAD":  # HEAD: headers, no content
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


def _error_body(message: str) -> bytes:
    return json.dumps({"error": error_object(message)}).encode()


def _content_coding(value: str) -> str | None:
    """The coding of a Content-Encoding value that we can undo: "identity", "gzip" or "deflate";
    None for anything else (br, zstd, compress, codings stacked)."""
    codings = [c.strip().lower() for c in value.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    return None


class _TooLargeError(MalformedFileError):
    """A compressed body decodes to more than the middleware buffers."""


class _Inflater:
    """gzip / deflate, undone in pieces of at most ``PIECE`` bytes, at most ``limit`` in all
    (None: no total, for streams, which are sent on piece by piece): a bomb can't take memory."""

    PIECE = 64 * 1024

    def __init__(self, coding: str, limit: int | None) -> None:
        self.coding = coding
        self.limit = limit
        self.size = 0
        self.ended = False  #: the compressed stream is complete; what follows is ignored (as gzip(1))
        self._head = b""  #: deflate: the first 2 bytes tell zlib-wrapped (as RFC 9110 says) from raw
        self._d: Any = zlib.decompressobj(31) if coding == "gzip" else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.ended or not data:
            return
        if self._d is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._d = zlib.decompressobj(15 if wrapped else -15)
        d = self._d
        while True:
            try:
                out = d.decompress(data, self.PIECE)
            except zlib.error as exc:
                raise MalformedFileError(f"the {self.coding} body does not decode: {exc}") from None
            if out:
                self.size += len(out)
                if self.limit is not None and self.size > self.limit:
                    raise _TooLargeError(f"the {self.coding} body decodes to over {self.limit} bytes")
                yield out
            rest = d.unconsumed_tail
            if d.eof:
                more = d.unused_data
                if self.coding == "gzip" and more[:2] == b"\x1f\x8b":  # the next gzip member
                    self._d = d = zlib.decompressobj(31)
                    data = more
                    continue
                self.ended = True
                return
            if not rest and len(out) < self.PIECE:
                return  # all input used, nothing held back
            if not out and rest == data:
                raise MalformedFileError(f"the {self.coding} body does not decode")  # no progress
            data = rest

    def finish(self) -> None:
        if not self.ended:
            raise MalformedFileError(f"the {self.coding} body ends before its end")


class _Unlabelable(Exception):
    """A stream stopped being one we can label (an event too large, an adapter error, signing)."""

    unsent = b""  #: events parsed but not sent: passed on as they came under fail_mode="open"


class _Responder:
    """One request's state: which mode the response is in, what is buffered, the stream adapter."""

    def __init__(self, mw: LabelingMiddleware) -> None:
        self.mw = mw
        self.send: Send = _unset_send
        self.start: Message = {}
        self.mode: Literal["pass", "json", "media", "sse", "sse-raw", "discard"] = "pass"
        self.buffer: list[bytes] = []
        self.size = 0
        self.decoder: _Inflater | None = None  #: the response is gzip/deflate: decoded to label it
        self.decoded: list[bytes] = []
        self.refusal = ""  #: why a response is refused before its headers (fail_mode="closed")
        self.parser: SSEParser | None = None  #: made when the response turns out to be a stream
        self.adapter: StreamAdapter | None = None
        self.finished = False
        self.newline = b"\n"  #: the stream's line ending, from the last event seen
        self.labels = mw.labels
        self.out: list[bytes] = []  #: stream bytes to send next
        #: stream output held until the first event shows whether the stream is labelled (and the
        #: headers may say so); None once the headers are out
        self.held: list[bytes] | None = None
        self.held_size = 0
        self.seen_event = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.send = send
        await self.mw.app(scope, receive, self.on_send)

    async def on_send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.start = message
            mode = self._mode(message)
            if mode == "refuse":  # known before the headers: a 500 instead of them
                await self._fail(self.refusal, None)
                return
            self.mode = mode
            if mode == "sse":
                self.parser = SSEParser(self.mw.max_event_size)
                self.held = []
            elif mode == "pass":
                await self.send(message)
            return
        if kind != "http.response.body":
            if self.mode != "discard":
                if self.held is not None:
                    await self._emit([], more=True, release=True)
                await self.send(message)
            return
        if self.mode == "pass":
            await self.send(message)
        elif self.mode == "sse":
            await self._stream(message)
        elif self.mode in ("json", "media"):
            await self._buffered(message)
        elif self.mode == "sse-raw":
            await self._stream_raw(message)
        # "discard": a fail-closed error was already sent; the app's remaining body is dropped

    def _mode(self, start: Message) -> Literal["pass", "json", "media", "sse", "refuse"]:
        status = start.get("status", 200)
        if not 200 <= status < 300 or status in (204, 205):
            return "pass"
        ctype, encoding = "", b""
        for name, value in start["headers"]:  # one pass, no Headers object: this runs per response
            name = name.lower()
            if name == b"content-type" and not ctype:  # the first one counts, as in Headers.get
                ctype = value.decode("latin-1").split(";")[0].strip().lower()
            elif name == b"content-encoding":
                encoding = encoding + b"," + value if encoding else value
        mode: Literal["json", "media", "sse"]
        if ctype == "text/event-stream":
            mode = "sse"
        elif ctype == "application/json" or ctype.endswith("+json"):
            mode = "json"
        elif ctype in MEDIA_TYPES:
            mode = "media"
        else:
            return "pass"
        if encoding:
            value = encoding.decode("latin-1")
            coding = _content_coding(value)
            if coding is None:
                logger.warning(
                    "a %s-encoded response can't be labelled (gzip and deflate are decoded); "
                    "put LabelingMiddleware inside compression middleware",
                    value,
                )
                if self.mw.fail_mode == "open":
                    self.mw.stats["passed_encoded"] += 1
                    return "pass"
                self.refusal = f"Content-Encoding {value!r} is not one the labeller decodes"
                return "refuse"
            if coding != "identity":
                self.decoder = _Inflater(coding, None if mode == "sse" else self.mw.max_body_size)
        return mode

    def _headers(self) -> list[tuple[bytes, bytes]]:
        """The app's headers, less the ones our rewrite makes wrong (length; encoding, if decoded)."""
        if self.decoder is None:
            return [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        return [
            (k, v)
            for k, v in self.start["headers"]
            if k.lower() not in (b"content-length", b"content-encoding")
        ]

    # -- buffered bodies (JSON, images) -------------------------------------------------------------

    async def _buffered(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        self.size += len(body)
        if self.size > self.mw.max_body_size:
            self.mw.stats["too_large"] += 1
            await self._fail(f"response body exceeds {self.mw.max_body_size} bytes", message)
            return
        self.buffer.append(body)
        if self.decoder is not None:
            try:
                self.decoded += self.decoder.feed(body)
                if not more:
                    self.decoder.finish()
            except MalformedFileError as exc:
                if isinstance(exc, _TooLargeError):
                    self.mw.stats["too_large"] += 1
                    exc = _TooLargeError(f"decoded response body exceeds {self.mw.max_body_size} bytes")
                self.decoded = []
                await self._fail(str(exc), {"body": b"", "more_body": more})
                return
        if more:
            return
        encoded = b"".join(self.buffer)
        raw = b"".join(self.decoded) if self.decoder is not None else encoded
        self.buffer, self.decoded = [], []
        try:
            if self.mode == "json":
                labelled = await self._label_json(raw)
            else:
                labelled = await anyio.to_thread.run_sync(
                    self._label_media, raw, limiter=self.mw.media_limiter()
                )
        except Exception as exc:
            await self._fail(f"{type(exc).__name__}: {exc}", None, encoded)
            return
        if labelled is None:  # not a shape we label: untouched
            self.mw.stats["passed"] += 1
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": encoded})
            return
        new_body, extra = labelled
        headers = self._headers()
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
        from .labeling import label_with_record

        fmt = detect(raw)
        out, record = label_with_record(
            raw,
            self.mw.policy,
            visible=self._visible(fmt.kind, fmt.name),
            on_existing="keep",
            c2pa=self.mw.c2pa if fmt.kind == "image" else None,
        )
        if record is None:  # labelled upstream already: say what it carries
            headers = self.mw.label_headers(find_label(out).record)
        else:
            headers = self.mw.label_headers(record.to_json())
        if self.mw.c2pa is not None and fmt.kind == "image" and self.mw.add_headers:
            headers.append((b"aigc-c2pa", b"embedded"))  # C2PA Content Credentials are in the image
        return out, headers

    def _visible(self, kind: str, name: str) -> bool:
        if kind == "image":
            return self.mw.visible_images
        if self.mw.visible_media is False:
            return False
        explicit = explicit_label(name)
        if explicit is None or not explicit.needs_ffmpeg:  # WAV rhythm, DOCX paragraph, PDF stamp
            return True
        if self.mw.visible_media == "auto":
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
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        pieces: Iterator[bytes] | None = None
        try:
            if self.decoder is None:
                self._events(body)
            else:
                pieces = self.decoder.feed(body)
                for piece in pieces:
                    self._events(piece)
                    await self._emit(self._take(), more=True)  # a piece out before the next is decoded
                if not more:
                    self.decoder.finish()
            if not more:
                tail = self.parser.flush() if self.parser is not None else b""
                try:
                    self.out += self._finish()
                except _Unlabelable as exc:
                    exc.unsent = tail
                    raise
                self.out.append(tail)
        except _Unlabelable as exc:
            await self._stream_failed(str(exc), more, exc.unsent, pieces)
            return
        except MalformedFileError as exc:  # the compressed stream is broken: nothing more to pass on
            if self.decoder is not None:
                self.decoder.ended = True
            await self._stream_failed(str(exc), more, b"", None)
            return
        await self._emit(self._take(), more)

    def _take(self) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def _events(self, data: bytes) -> None:
        """Parse ``data`` and queue what to send in ``self.out``. Raises _Unlabelable, with the
        events parsed but not sent in ``unsent``."""
        parser = self.parser
        assert parser is not None  # made with the response start
        try:
            events = parser.feed(data)
        except EventTooLargeError as exc:
            self._rewrite_all(exc.events)
            raise _Unlabelable(str(exc)) from None
        self._rewrite_all(events)

    def _rewrite_all(self, events: list[Event]) -> None:
        done = 0
        try:
            for event in events:
                self._rewrite(event)
                done += 1
        except _Unlabelable as exc:
            exc.unsent = b"".join(e.raw for e in events[done:])
            raise

    def _rewrite(self, event: Event) -> None:
        self.newline = event.newline
        if event.data is None and event.event is None:  # a comment, a keep-alive: as it came
            self.out.append(event.raw)
            return
        self.seen_event = True
        if event.data == "[DONE]":
            self.out += self._finish()
            self.out.append(event.raw)
            return
        if self.adapter is not None:
            try:
                result = self.adapter.on_event(event)
            except Exception as exc:  # what we would send is no longer what we sign: stop
                raise _Unlabelable(f"an event could not be labelled: {type(exc).__name__}: {exc}") from exc
            if result is None:
                self.out.append(event.raw)
            else:
                self.out += result
            return
        for adapter_type in STREAM_ADAPTERS:
            candidate = adapter_type(self.labels)
            try:
                result = candidate.on_event(event)
            except Exception:  # not this API's event after all
                continue
            if result is not None:
                self.adapter = candidate
                self.mw.stats["labeled"] += 1
                self.out += result
                return
        self.out.append(event.raw)

    def _finish(self) -> list[bytes]:
        if self.finished or self.adapter is None:
            return []
        self.finished = True
        return self.adapter.finish() + self._record_comment()

    def _record_comment(self) -> list[bytes]:
        """The signed record of the text sent so far (when the headers announce one)."""
        if self.mw.policy.signing_key is None or self.adapter is None:
            return []
        try:
            record = self.mw.record_json(self.adapter.digest.digest(), "text")
        except Exception as exc:
            raise _Unlabelable(f"the record could not be signed: {type(exc).__name__}: {exc}") from exc
        return [format_comment(COMMENT_PREFIX + record, self.newline)]

    async def _emit(self, out: list[bytes], more: bool, release: bool = False) -> None:
        """Send stream bytes; the headers go first, once the first event says what they may claim."""
        if self.held is not None:
            self.held += out
            self.held_size += sum(map(len, out))
            if more and not release and not self.seen_event and self.held_size <= HOLD_BEFORE_HEADERS:
                return
            out, self.held = self.held, None
            await self.send({**self.start, "headers": self._stream_headers()})
        payload = b"".join(out)
        if payload or not more:
            await self.send({"type": "http.response.body", "body": payload, "more_body": more})

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        headers = self._headers()
        if self.adapter is not None:  # the stream is one we label: the label goes out, say so
            headers += self.mw.label_headers(None)
            if self.mw.add_headers and self.mw.policy.signing_key is not None:
                headers.append((b"aigc-provenance", b"sse-comment"))
        return headers

    async def _stream_failed(
        self, reason: str, more: bool, unsent: bytes, pieces: Iterator[bytes] | None
    ) -> None:
        """The rest of the stream can't be labelled. Closed: before the headers a 500 refusal,
        after them what was labelled, its record and the API's own error event; then nothing.
        Open: the record of what was labelled (the headers announced it), then the rest as it
        came (``unsent``, the parser's pending bytes, the rest of ``pieces``), no end label."""
        closed = self.mw.fail_mode == "closed"
        logger.warning("stream labelling failed (%s mode): %s", self.mw.fail_mode, reason)
        self.mw.stats["event_errors"] += 1
        assert self.parser is not None
        pending = self.parser.flush()
        if closed and self.held is not None:  # nothing sent yet: refuse, as for a JSON body
            self.held, self.out = None, []
            await self._fail(reason, None)
            return
        out = self._take()
        if self.adapter is not None and not self.finished:
            self.finished = True
            try:
                if closed:
                    out += self.adapter.finish()
                out += self._record_comment()
            except Exception as exc:  # an end label or the signature failed too
                logger.warning("no record for the stream: %s", exc)
        if closed:
            self.mw.stats["fail_closed"] += 1
            message = f"the response could not be labelled as AI-generated: {reason}"[:500]
            adapter = self.adapter
            out.append((adapter.error_event if adapter else error_event)(message, self.newline))
            self.mode = "discard"
            await self._emit(out, more=False, release=True)
            return
        self.mw.stats["fail_open"] += 1
        self.mode = "sse-raw"
        out += [unsent, pending]
        if pieces is not None:  # the rest of this body, decoded piece by piece
            await self._emit(out, more=True, release=True)
            out = []
            try:
                for piece in pieces:
                    await self.send({"type": "http.response.body", "body": piece, "more_body": True})
            except MalformedFileError as exc:
                logger.warning("stream passed through: %s", exc)
                self.decoder.ended = True  # type: ignore[union-attr]
        await self._emit(out, more, release=True)

    async def _stream_raw(self, message: Message) -> None:
        """After a fail-open: the rest of the stream as it comes (decoded, as the headers say)."""
        if self.decoder is None:
            await self.send(message)
            return
        more = bool(message.get("more_body", False))
        try:
            for piece in self.decoder.feed(message.get("body", b"")):
                await self.send({"type": "http.response.body", "body": piece, "more_body": True})
        except MalformedFileError as exc:
            logger.warning("stream passed through: %s", exc)
            self.decoder.ended = True
        if not more:
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})


async def _unset_send(message: Message) -> None:  # pragma: no cover - replaced before use
    raise RuntimeError("responder used before it was called")
