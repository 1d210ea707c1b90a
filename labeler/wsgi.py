"""``LabelingMiddleware`` for WSGI apps (Flask, Django in WSGI mode, any PEP 3333 app).

    app.wsgi_app = LabelingMiddleware(app.wsgi_app, policy=LabelPolicy.load())

The same labelling as the ASGI middleware (:mod:`labeler.middleware`), over WSGI's interface:
both are a :class:`~labeler.response_labeling.ResponseLabeller`, so options, headers, records
and verdicts are the same.

* JSON answers and media files are read whole (bounded by ``max_body_size``), labelled and
  returned with their new Content-Length; a JSON record is signed on its own (no event loop to
  batch in).
* ``text/event-stream`` responses stay streams: the app's iterable is consumed chunk by chunk and
  every labelled chunk is yielded as soon as it is complete, so a server that sends what it is
  given (gunicorn, waitress, wsgiref, Werkzeug) streams tokens as they come. The headers are
  given to the server with the first event, which shows whether they may claim a label.
* Anything else, and every response the middleware does not label, is the app's own iterable
  returned untouched (``wsgi.file_wrapper`` and all).
* Failures follow ``fail_mode`` as in ASGI: "closed" answers a clean 500 JSON error (or ends a
  started stream with its API's error event), "open" passes the original. The app's iterable is
  always closed (PEP 3333), and the host never sees our exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Unpack

from .content_coding import DecodedTooLargeError, Inflater
from .errors import MalformedFileError
from .policy import LabelPolicy
from .response_labeling import LabelOptions, ResponseLabeller, error_body, refusal_message
from .stream_labeling import StreamLabeller, Unlabelable

__all__ = ["LabelingMiddleware"]

logger = logging.getLogger("labeler.middleware")

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

WSGIHeaders = list[tuple[str, str]]

#: stream bytes (comments, keep-alives) held before the first event decides the headers
HOLD_BEFORE_HEADERS = 64 * 1024


class LabelingMiddleware(ResponseLabeller):
    def __init__(self, app: WSGIApplication, policy: LabelPolicy, **options: Unpack[LabelOptions]) -> None:
        super().__init__(policy, **options)
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if self.info_path and path == self.info_path and method in ("GET", "HEAD"):
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json; charset=utf-8"),
                    ("Content-Length", str(len(self.info_body))),
                    ("Cache-Control", "max-age=60"),
                ],
            )
            return [b"" if method == "HEAD" else self.info_body]
        if not self.applies_to(path) or method == "HEAD":
            return self.app(environ, start_response)
        capture = _Capture()
        result = self.app(environ, capture)
        chunks = _Chunks(result, capture)
        try:
            chunks.until_started()
        except BaseException:
            chunks.close()
            raise
        if capture.status is None:  # the app returned without starting a response: its error
            chunks.close()
            raise RuntimeError("the WSGI app returned without calling start_response")
        reply = _Reply(capture.status, capture.headers, capture.exc_info, start_response)
        code = int(reply.status[:3]) if reply.status[:3].isdigit() else 0
        mode, detail = self.plan(code, _wire(reply.headers))
        if mode == "pass":
            reply.start()
            if not capture.written and not chunks.first:
                return result  # untouched: the server may use its file_wrapper, len(), etc.
            return chunks.all_then_close()
        if mode == "refuse":
            chunks.close()
            logger.warning("labeling failed (%s mode): %s", self.fail_mode, detail)
            return _refuse(self, start_response, detail)
        if mode == "sse":
            return self._stream(chunks, reply, detail)
        return self._buffered(chunks, reply, detail, mode == "json")

    # -- buffered bodies (JSON, media) ------------------------------------------------------------------

    def _buffered(self, chunks: _Chunks, reply: _Reply, coding: str, is_json: bool) -> Iterable[bytes]:
        try:
            encoded, raw, too_large = self._read_whole(chunks, coding)
        except MalformedFileError as exc:
            return self._fail(str(exc), reply, chunks.seen, chunks)
        except BaseException:
            chunks.close()
            raise
        if too_large:
            self.stats["too_large"] += 1
            return self._fail(too_large, reply, chunks.seen, chunks)
        chunks.close()
        try:
            labelled = self.label_json_now(raw) if is_json else self.label_media(raw)
        except Exception as exc:
            return self._fail(f"{type(exc).__name__}: {exc}", reply, [encoded])
        if labelled is None:  # not a shape we label: untouched
            self.stats["passed"] += 1
            reply.start()
            return [encoded]
        body, extra = labelled
        headers = _strip(reply.headers, coding != "identity")
        headers.append(("Content-Length", str(len(body))))
        self.stats["labeled"] += 1
        reply.start(headers + _native(extra))
        return [body]

    def _read_whole(self, chunks: _Chunks, coding: str) -> tuple[bytes, bytes, str]:
        """(the body as sent, the body decoded, why it is too large or "")."""
        limit = self.max_body_size
        decoder = None if coding == "identity" else Inflater(coding, limit)
        size, decoded = 0, list[bytes]()
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                return b"", b"", f"response body exceeds {limit} bytes"
            if decoder is not None:
                try:
                    decoded += decoder.feed(chunk)
                except DecodedTooLargeError:
                    return b"", b"", f"decoded response body exceeds {limit} bytes"
        if decoder is not None:
            decoder.finish()
        encoded = b"".join(chunks.seen)
        return encoded, (b"".join(decoded) if decoder is not None else encoded), ""

    def _fail(
        self, reason: str, reply: _Reply, seen: list[bytes], chunks: _Chunks | None = None
    ) -> Iterable[bytes]:
        """Labelling failed before the headers. Open: the response as it came (``seen``, then
        the rest of ``chunks``). Closed: a clean 500; the rest is never read."""
        logger.warning("labeling failed (%s mode): %s", self.fail_mode, reason)
        if self.fail_mode == "open":
            self.stats["fail_open"] += 1
            reply.start()
            return _then(list(seen), chunks)
        if chunks is not None:
            chunks.close()
        return _refuse(self, reply.start_response, reason)

    # -- streams --------------------------------------------------------------------------------------

    def _stream(self, chunks: _Chunks, reply: _Reply, coding: str) -> Iterator[bytes]:
        """Labelled events out as they come; the app's iterable closed however this ends."""
        stream = StreamLabeller(self)
        decoder = None if coding == "identity" else Inflater(coding, None)
        held: list[bytes] | None = []
        held_size = 0
        closed = self.fail_mode == "closed"

        def start() -> None:
            ours = _native(self.stream_headers(stream.labelled))
            reply.start(_strip(reply.headers, decoder is not None) + ours)

        pieces: Iterator[bytes] = iter(())
        try:
            try:
                for chunk in chunks:
                    pieces = decoder.feed(chunk) if decoder is not None else iter((chunk,))
                    for piece in pieces:
                        stream.feed(piece)
                        out = stream.take()
                        if held is not None:
                            held += out
                            held_size += sum(map(len, out))
                            if not stream.seen_event and held_size <= HOLD_BEFORE_HEADERS:
                                continue
                            out, held = held, None
                            start()
                        payload = b"".join(out)
                        if payload:
                            yield payload
                if decoder is not None:
                    decoder.finish()
                stream.end()
            except (Unlabelable, MalformedFileError) as exc:
                reason = str(exc)
                unsent = exc.unsent if isinstance(exc, Unlabelable) else b""
                logger.warning("stream labelling failed (%s mode): %s", self.fail_mode, reason)
                self.stats["event_errors"] += 1
                pending = stream.parser.flush()
                if closed and held is not None:  # nothing sent yet: refuse, as for a JSON body
                    yield from _refuse(self, reply.start_response, reason)
                    return
                out = stream.abandon(closed, reason)
                if held is not None:
                    out, held = held + out, None
                    start()
                if closed:
                    self.stats["fail_closed"] += 1
                    yield b"".join(out)
                    return
                self.stats["fail_open"] += 1
                yield b"".join([*out, unsent, pending])
                if isinstance(exc, MalformedFileError):
                    return  # the compressed stream is broken: nothing more to pass on
                try:
                    yield from pieces  # the rest of this chunk, decoded piece by piece
                except MalformedFileError as broken:
                    logger.warning("stream passed through: %s", broken)
                    return
                for chunk in chunks:  # the rest as it comes (decoded, as the headers say)
                    try:
                        rest = b"".join(decoder.feed(chunk)) if decoder is not None else chunk
                    except MalformedFileError as broken:
                        logger.warning("stream passed through: %s", broken)
                        return
                    if rest:
                        yield rest
                return
            out = stream.take()
            if held is not None:
                out = held + out
                start()
            yield b"".join(out)
        finally:
            chunks.close()


class _Reply:
    """The response the app started, and the server's start_response to start ours with."""

    __slots__ = ("exc_info", "headers", "start_response", "status")

    def __init__(
        self, status: str, headers: WSGIHeaders, exc_info: OptExcInfo | None, start_response: StartResponse
    ) -> None:
        self.status, self.headers, self.exc_info = status, headers, exc_info
        self.start_response = start_response

    def start(self, headers: WSGIHeaders | None = None) -> None:
        """Start the response with the app's status and ``headers`` (the app's by default)."""
        self.start_response(self.status, self.headers if headers is None else headers, self.exc_info)


class _Capture:
    """The start_response the app sees: it records the status and headers for us to decide."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: WSGIHeaders = []
        self.exc_info: OptExcInfo | None = None
        self.written: list[bytes] = []  #: legacy write() calls, sent before the iterable

    def __call__(
        self, status: str, headers: WSGIHeaders, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        if exc_info is None and self.status is not None:  # PEP 3333: a second call needs exc_info
            raise AssertionError("start_response called twice without exc_info")
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.written.append


class _Chunks:
    """The app's body: legacy write() data, then the iterable; pulled once, closed once."""

    def __init__(self, result: Iterable[bytes], capture: _Capture) -> None:
        self.result = result
        self.capture = capture
        self.iterator: Iterator[bytes] | None = None
        self.first: list[bytes] = []  #: pulled to make a lazy app call start_response
        self.seen: list[bytes] = []  #: everything handed out (for a fail-open replay)
        self.closed = False

    def until_started(self) -> None:
        """Pull chunks until the app has called start_response (generators call it late)."""
        if self.capture.status is not None:
            return
        self.iterator = iter(self.result)
        for chunk in self.iterator:
            self.first.append(chunk)
            if self.capture.status is not None or chunk:
                return

    def __iter__(self) -> Iterator[bytes]:
        for source in (self.capture.written, self.first):
            while source:
                chunk = source.pop(0)
                self.seen.append(chunk)
                yield chunk
        if self.iterator is None:
            self.iterator = iter(self.result)
        for chunk in self.iterator:
            self.seen.append(chunk)
            yield chunk
            while self.capture.written:  # write() called while iterating
                late = self.capture.written.pop(0)
                self.seen.append(late)
                yield late

    def all_then_close(self) -> Iterator[bytes]:
        try:
            yield from self
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close = getattr(self.result, "close", None)
            if close is not None:
                close()


def _then(first: list[bytes], chunks: _Chunks | None) -> Iterator[bytes]:
    """``first``, then the rest of ``chunks`` (closed at the end)."""
    try:
        yield from first
        if chunks is not None:
            yield from chunks
    finally:
        if chunks is not None:
            chunks.close()


def _refuse(mw: LabelingMiddleware, start_response: StartResponse, reason: str) -> list[bytes]:
    """fail_mode="closed" before any header went out: a clean 500 JSON error instead."""
    mw.stats["fail_closed"] += 1
    body = error_body(refusal_message(reason))
    start_response(
        "500 Internal Server Error",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _wire(headers: WSGIHeaders) -> list[tuple[bytes, bytes]]:
    """The headers :meth:`ResponseLabeller.plan` reads, as bytes (WSGI gives latin-1 str)."""
    return [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in headers
        if k.lower() in ("content-type", "content-encoding")
    ]


def _native(headers: list[tuple[bytes, bytes]]) -> WSGIHeaders:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _strip(headers: WSGIHeaders, decoded: bool) -> WSGIHeaders:
    """The app's headers, less the ones our rewrite makes wrong (length; encoding, if decoded)."""
    drop = ("content-length", "content-encoding") if decoded else ("content-length",)
    return [(k, v) for k, v in headers if k.lower() not in drop]
