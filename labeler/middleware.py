"""``LabelingMiddleware``: pure ASGI middleware that labels what an AI app sends.

    app.add_middleware(LabelingMiddleware, policy=LabelPolicy.load())

Per-response state lives in a responder chosen at ``http.response.start`` (as Starlette's
GZipMiddleware chooses its responder): a buffered responder for JSON and media, a stream
responder for SSE; anything else goes through untouched. What labelling means apart from ASGI
(options, counters, plans, headers, records, whole-body steps) is the
:class:`~labeler.response_labeling.ResponseLabeller` this middleware is; the stream's own
labelling is :class:`~labeler.stream_labeling.StreamLabeller`.

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
import hashlib
import logging
import os
import weakref
from collections.abc import Awaitable, Iterator
from typing import Any, Literal, Unpack

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .content_coding import DecodedTooLargeError, Inflater
from .errors import MalformedFileError
from .policy import LabelPolicy
from .response_labeling import LabelOptions, ResponseLabeller, error_body, refusal_message
from .stream_labeling import StreamLabeller, Unlabelable
from .verification import verify_response, verify_stream

__all__ = ["LabelingMiddleware", "verify_response", "verify_stream"]

logger = logging.getLogger("labeler.middleware")

#: stream bytes (comments, keep-alives) held before the first event decides the headers
HOLD_BEFORE_HEADERS = 64 * 1024


class LabelingMiddleware(ResponseLabeller):
    def __init__(self, app: ASGIApp, policy: LabelPolicy, **options: Unpack[LabelOptions]) -> None:
        super().__init__(policy, **options)
        self.app = app
        #: media labelling threads at once (one per core): bounds CPU and memory under bursts
        self.media_workers = max(1, os.cpu_count() or 1)
        self._media_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )  # one per event loop: a limiter belongs to the loop it was made in

    def media_limiter(self) -> anyio.CapacityLimiter:
        """This event loop's limiter on concurrent media labelling threads."""
        loop = asyncio.get_running_loop()
        limiter = self._media_limiters.get(loop)
        if limiter is None:
            limiter = self._media_limiters[loop] = anyio.CapacityLimiter(self.media_workers)
        return limiter

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
        dispatch = _Dispatch(self, send)
        try:
            await self.app(scope, receive, dispatch)
        except Exception:
            buffered = dispatch.buffered
            if buffered is not None and buffered.owes_answer():  # the answer still goes
                await buffered.finish()
            raise
        buffered = dispatch.buffered
        if buffered is not None and buffered.owes_answer():
            await buffered.finish()

    async def _send_info(self, scope: Scope, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(self.info_body)).encode()),
            (b"cache-control", b"max-age=60"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else self.info_body}
        )


class _Dispatch:
    """One request's send channel: at ``http.response.start`` it picks who handles the rest
    (passed on as it comes, a buffered responder, a stream responder, or a refusal)."""

    __slots__ = ("buffered", "handle", "mw", "send")

    def __init__(self, mw: LabelingMiddleware, send: Send) -> None:
        self.mw = mw
        self.send = send
        self.handle: Send = self._start
        #: the buffered responder, if one was picked: a JSON answer waiting for its batch
        #: signature is sent by the middleware (see :meth:`_BufferedResponder.finish`)
        self.buffered: _BufferedResponder | None = None

    def __call__(self, message: Message) -> Awaitable[None]:
        return self.handle(message)  # the handler's own coroutine: no extra frame per message

    async def _start(self, message: Message) -> None:
        if message["type"] != "http.response.start":  # nothing else may come first: as it came
            await self.send(message)
            return
        mw = self.mw
        mode, detail = mw.plan(message.get("status", 200), message["headers"])
        if mode == "pass":
            self.handle = self.send
            await self.send(message)
        elif mode == "sse":
            self.handle = _StreamResponder(mw, self.send, message, detail).on_send
        elif mode == "refuse":  # known before the headers: a 500 instead of them
            self.handle = _discard
            logger.warning("labeling failed (%s mode): %s", mw.fail_mode, detail)
            await _refuse(mw, self.send, detail)
        else:
            self.buffered = _BufferedResponder(mw, self.send, message, detail, mode == "json")
            self.handle = self.buffered.on_send


def _seen(task: asyncio.Task[None]) -> None:
    """A task's failure counts as seen (no "exception was never retrieved" at shutdown)."""
    if not task.cancelled():
        task.exception()


async def _discard(message: Message) -> None:
    """After a fail-closed refusal: the app's remaining messages are dropped."""


async def _refuse(mw: LabelingMiddleware, send: Send, reason: str) -> None:
    """fail_mode="closed" before any header went out: a clean 500 JSON error instead."""
    mw.stats["fail_closed"] += 1
    body = error_body(refusal_message(reason))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Responder:
    """What both responders share: the app's response start, its decoder, and the way out."""

    __slots__ = ("decoder", "mw", "send", "start", "state")

    def __init__(self, mw: LabelingMiddleware, send: Send, start: Message, coding: str, limit: int | None):
        self.mw = mw
        self.send = send
        self.start = start
        #: the response is gzip/deflate: decoded to label it, sent decoded
        self.decoder = None if coding == "identity" else Inflater(coding, limit)
        self.state: Literal["labelling", "pass", "discard"] = "labelling"

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The app's headers, less the ones our rewrite makes wrong (length; encoding, if decoded)."""
        if self.decoder is None:
            return [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        return [
            (k, v)
            for k, v in self.start["headers"]
            if k.lower() not in (b"content-length", b"content-encoding")
        ]

    async def fail(self, reason: str, body: bytes = b"", more: bool = False) -> None:
        """Labelling failed before any header went out. Open: the response as it came (``body``
        so far, then the rest as it comes). Closed: a clean 500; the rest is dropped."""
        mw = self.mw
        logger.warning("labeling failed (%s mode): %s", mw.fail_mode, reason)
        if mw.fail_mode == "open":
            mw.stats["fail_open"] += 1
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
            self.state = "pass" if more else "discard"
            return
        await _refuse(mw, self.send, reason)
        self.state = "discard"


class _BufferedResponder(_Responder):
    """JSON and media: the body is buffered (bounded), labelled whole, sent with its length.

    A JSON answer's record is signed in the loop turn's batch. The wait for it is not done in
    the app's ``send`` (resuming the app's whole call chain costs more than the rest of the
    labelling) but by the middleware once the app has returned; if the app is still busy when
    the batch is signed (e.g. background tasks), a task sends the answer then."""

    __slots__ = ("app_returned", "buffer", "decoded", "held", "is_json", "sending", "signed", "size")

    def __init__(self, mw: LabelingMiddleware, send: Send, start: Message, coding: str, is_json: bool):
        super().__init__(mw, send, start, coding, mw.max_body_size)
        self.is_json = is_json
        self.buffer: list[bytes] = []
        self.size = 0
        self.decoded: list[bytes] = []
        #: (body, extra headers, ProduceID, future token, the body as the app sent it)
        self.signed: tuple[bytes, list[tuple[bytes, bytes]], str, asyncio.Future[str], bytes] | None = None
        self.sending: asyncio.Task[None] | None = None
        self.app_returned = False
        #: messages the app sent after an answer that waits for its signature, sent after it
        self.held: list[Message] | None = None

    def on_send(self, message: Message) -> Awaitable[None]:
        """The awaitable that handles ``message`` (its handler's own: no extra frame)."""
        if self.held is not None:  # after an answer still waiting for its signature (trailers)
            self.held.append(message)
            return _discard(message)
        if message["type"] != "http.response.body":
            return self.send(message) if self.state != "discard" else _discard(message)
        if self.state == "labelling":
            return self._body(message)
        return self.send(message) if self.state == "pass" else _discard(message)

    async def _body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        mw = self.mw
        self.size += len(body)
        if self.size > mw.max_body_size:
            mw.stats["too_large"] += 1
            await self._give_up(f"response body exceeds {mw.max_body_size} bytes", body, more)
            return
        self.buffer.append(body)
        if self.decoder is not None:
            try:
                self.decoded += self.decoder.feed(body)
                if not more:
                    self.decoder.finish()
            except MalformedFileError as exc:
                if isinstance(exc, DecodedTooLargeError):
                    mw.stats["too_large"] += 1
                    exc = DecodedTooLargeError(f"decoded response body exceeds {mw.max_body_size} bytes")
                self.decoded = []
                await self._give_up(str(exc), b"", more)
                return
        if more:
            return
        encoded = b"".join(self.buffer)  # one piece: that piece itself, not a copy
        raw = b"".join(self.decoded) if self.decoder is not None else encoded
        self.buffer, self.decoded = [], []
        try:
            if self.is_json and mw.batcher is None:
                labelled = mw.label_json_now(raw)  # signed on the spot, or unsigned without a key
            elif self.is_json:
                labelled = mw.label_json(raw)
                if labelled is not None:
                    digest = hashlib.sha256(labelled[0]).digest()
                    queued = mw.queue_record(digest, "json", self._on_signed)
                    assert queued is not None  # a batch signer means a key
                    self.signed = (*labelled, *queued, encoded)  # sent by finish(), once signed
                    self.held = []
                    return
            else:
                labelled = await anyio.to_thread.run_sync(mw.label_media, raw, limiter=mw.media_limiter())
        except Exception as exc:
            await self.fail(f"{type(exc).__name__}: {exc}", encoded)
            return
        if labelled is None:  # not a shape we label: untouched
            mw.stats["passed"] += 1
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": encoded})
            return
        await self._send_labelled(*labelled)

    async def _send_labelled(self, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        headers = self.headers()
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        self.mw.stats["labeled"] += 1
        await self.send({**self.start, "headers": headers + extra})
        await self.send({"type": "http.response.body", "body": body})

    def _on_signed(self) -> None:
        if not self.app_returned and self.sending is None:  # the app is still busy: send now
            self.sending = asyncio.get_running_loop().create_task(self._send_signed())
            # finish() re-raises its error; if the request is cancelled first, nobody will
            self.sending.add_done_callback(_seen)

    def owes_answer(self) -> bool:
        """A JSON answer was queued for its signature: :meth:`finish` must be awaited."""
        return self.signed is not None or self.sending is not None

    def finish(self) -> Awaitable[None]:
        """After the app returned: the signed answer goes out (or has, if the app was slow)."""
        self.app_returned = True
        return self._send_signed() if self.sending is None else self.sending

    async def _send_signed(self) -> None:
        assert self.signed is not None
        body, extra, produce_id, token, encoded = self.signed
        self.signed = None
        try:
            record = self.mw.signed_record_json(produce_id, await token)
        except Exception as exc:  # the signing key failed (e.g. a remote signer)
            await self.fail(f"{type(exc).__name__}: {exc}", encoded)
            if self.mw.fail_mode == "closed":
                self.held = None  # the refusal is the whole response
        else:
            await self._send_labelled(body, self.mw.label_headers(record) + extra)
        held, self.held = self.held or [], None
        for message in held:  # what the app sent after its answer, in order
            await self.send(message)

    async def _give_up(self, reason: str, body: bytes, more: bool) -> None:
        buffered, self.buffer = b"".join(self.buffer), []
        await self.fail(reason, buffered + body, more)


class _StreamResponder(_Responder):
    """SSE: every event out the moment it is complete, labelled by a :class:`StreamLabeller`;
    the headers wait for the first event, which shows whether they may claim a label."""

    __slots__ = ("fast", "held", "held_size", "raw", "stream")

    def __init__(self, mw: LabelingMiddleware, send: Send, start: Message, coding: str):
        super().__init__(mw, send, start, coding, None)
        self.stream = StreamLabeller(mw)
        self.raw = False  #: after a fail-open: the rest passes as it comes
        #: stream output held until the first event shows whether the stream is labelled (and the
        #: headers may say so); None once the headers are out
        self.held: list[bytes] | None = []
        self.held_size = 0
        #: the headers are out, nothing to decode, nothing failed: events go straight through
        self.fast = False

    async def on_send(self, message: Message) -> None:
        if self.fast and message["type"] == "http.response.body" and message.get("more_body", False):
            stream = self.stream  # the per-event path: feed, send what came out, nothing else
            try:
                stream.feed(message.get("body", b""))
            except Unlabelable as exc:
                await self._failed(str(exc), True, exc.unsent, None)
                return
            out = stream.out
            if out:
                stream.out = []
                if len(out) == 1 and out[0] is message.get("body"):  # the event as it came
                    await self.send(message)
                    return
                body = out[0] if len(out) == 1 else b"".join(out)
                await self.send({"type": "http.response.body", "body": body, "more_body": True})
            return
        if message["type"] != "http.response.body":
            if self.state != "discard":
                if self.held is not None:
                    await self._emit([], more=True, release=True)
                await self.send(message)
        elif self.state == "discard":
            return
        elif self.raw:
            await self._raw(message)
        else:
            await self._body(message)

    async def _body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        stream = self.stream
        pieces: Iterator[bytes] | None = None
        try:
            if self.decoder is None:
                stream.feed(body)
            else:
                pieces = self.decoder.feed(body)
                for piece in pieces:
                    stream.feed(piece)
                    await self._emit(stream.take(), more=True)  # a piece out before the next is decoded
                if not more:
                    self.decoder.finish()
            if not more:
                stream.end()
        except Unlabelable as exc:
            await self._failed(str(exc), more, exc.unsent, pieces)
            return
        except MalformedFileError as exc:  # the compressed stream is broken: nothing more to pass on
            if self.decoder is not None:
                self.decoder.ended = True
            await self._failed(str(exc), more, b"", None)
            return
        await self._emit(stream.take(), more)

    async def _emit(self, out: list[bytes], more: bool, release: bool = False) -> None:
        """Send stream bytes; the headers go first, once the first event says what they may claim."""
        if self.held is not None:
            self.held += out
            self.held_size += sum(map(len, out))
            if more and not release and not self.stream.seen_event and self.held_size <= HOLD_BEFORE_HEADERS:
                return
            out, self.held = self.held, None
            self.fast = self.decoder is None and self.state == "labelling" and not self.raw
            headers = self.headers() + self.mw.stream_headers(self.stream.labelled)
            await self.send({**self.start, "headers": headers})
        payload = b"".join(out)
        if payload or not more:
            await self.send({"type": "http.response.body", "body": payload, "more_body": more})

    async def _failed(self, reason: str, more: bool, unsent: bytes, pieces: Iterator[bytes] | None) -> None:
        """The rest of the stream can't be labelled. Closed: before the headers a 500 refusal,
        after them what was labelled, its record and the API's own error event; then nothing.
        Open: the record of what was labelled (the headers announced it), then the rest as it
        came (``unsent``, the parser's pending bytes, the rest of ``pieces``), no end label."""
        mw = self.mw
        self.fast = False
        closed = mw.fail_mode == "closed"
        logger.warning("stream labelling failed (%s mode): %s", mw.fail_mode, reason)
        mw.stats["event_errors"] += 1
        pending = self.stream.parser.flush()
        if closed and self.held is not None:  # nothing sent yet: refuse, as for a JSON body
            self.held = None
            await self.fail(reason)
            return
        out = self.stream.abandon(closed, reason)
        if closed:
            mw.stats["fail_closed"] += 1
            self.state = "discard"
            await self._emit(out, more=False, release=True)
            return
        mw.stats["fail_open"] += 1
        self.raw = True
        out += [unsent, pending]
        if pieces is not None:  # the rest of this body, decoded piece by piece
            await self._emit(out, more=True, release=True)
            out = []
            try:
                for piece in pieces:
                    await self.send({"type": "http.response.body", "body": piece, "more_body": True})
            except MalformedFileError as exc:
                logger.warning("stream passed through: %s", exc)
                assert self.decoder is not None
                self.decoder.ended = True
        await self._emit(out, more, release=True)

    async def _raw(self, message: Message) -> None:
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
