"""``UploadGate``: pure-ASGI middleware for upload endpoints (Measures Art. 6 and 9).

Every uploaded file (a multipart/form-data file part, or a raw body of a media type we read) is
verified before the app sees it; optionally this platform's propagator record is written into
it (the producer's signature still verifies); the app learns each file's outcome from
``scope["state"]["aigc"]`` (``request.state.aigc`` in Starlette) and the request header
``aigc-notice`` (one notice per file, in order: confirmed, possible, suspected or none). Each
check is one line in the audit log.

Why buffer: a verdict needs the whole file (the digest covers it), so the body is spooled to a
temporary file (``spool_bytes`` in memory at most) up to ``max_body``, then replayed to the app.
Verification runs in a worker thread, so the event loop keeps serving other requests.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import anyio.to_thread

from ..errors import LabelerError
from ..formats import media_types
from ..policy import LabelPolicy
from ..signing import TrustStore
from ..verification import Status, verify
from .audit import AuditLog

__all__ = ["GATE_MODES", "UploadGate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Mode = Literal["tag-only", "require-label", "reject-altered"]
GATE_MODES: tuple[Mode, ...] = ("tag-only", "require-label", "reject-altered")
_MEDIA_TYPES = media_types()
_BROKEN = frozenset({Status.ALTERED, Status.BAD_SIGNATURE, Status.LABEL_MISMATCH, Status.MALFORMED_LABEL})
_CHUNK = 64 << 10


class _Refused(Exception):
    def __init__(self, status: int, message: str, files: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.files = status, files


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: IO[bytes] | None = None
    size: int = 0

    def header(self, name: bytes) -> bytes:
        return next((v for k, v in self.headers if k.lower() == name), b"")

    @property
    def disposition(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.header(b"content-disposition").decode("latin-1").split(";")[1:]:
            key, _, value = item.strip().partition("=")
            out[key.lower()] = value.strip().strip('"')
        return out


class UploadGate:
    """Verify (and optionally propagate) every uploaded file before the app sees it.

    ``mode``: ``tag-only`` (default: the app decides), ``require-label`` (422 when a file has no
    AIGC record), ``reject-altered`` (422 when a label is forged, altered or malformed).
    ``propagator``: this platform's policy (provider code, signing key): labelled files get its
    ContentPropagator / PropagateID / ReservedCode2 before the app sees them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trust: TrustStore | None = None,
        mode: Mode = "tag-only",
        propagator: LabelPolicy | None = None,
        audit: AuditLog | None = None,
        paths: tuple[str, ...] = ("/",),
        max_body: int = 64 << 20,
        max_parts: int = 32,
        spool_bytes: int = 1 << 20,
    ) -> None:
        if mode not in GATE_MODES:
            raise ValueError(f"mode must be one of {', '.join(GATE_MODES)}")
        self.app, self.trust, self.mode, self.propagator, self.audit = app, trust, mode, propagator, audit
        self.paths, self.max_body, self.max_parts, self.spool_bytes = paths, max_body, max_parts, spool_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if not any(path == p or path.startswith(p.rstrip("/") + "/") or p == "/" for p in self.paths):
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        media = ctype.split(";")[0].strip().lower()
        if media != "multipart/form-data" and media not in _MEDIA_TYPES:
            return await self.app(scope, receive, send)
        try:
            body = await self._spool(headers, receive)
            if body is None:
                return  # the client went away
            with body:
                parts = (
                    _parse_multipart(body, ctype, self.max_parts) if media == "multipart/form-data" else None
                )
                try:
                    results, new_body = await self._check(scope, parts, body)
                finally:
                    _close(parts or [])
                self._enforce(results)
                await self._forward(scope, receive, send, results, body, new_body)
        except _Refused as exc:
            await _json(send, exc.status, {"error": str(exc), **({"files": exc.files} if exc.files else {})})

    async def _spool(self, headers: dict[bytes, bytes], receive: Receive) -> IO[bytes] | None:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _Refused(413, f"upload larger than {self.max_body} bytes")
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=self.spool_bytes)  # noqa: SIM115
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                spool.close()
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                spool.close()
                raise _Refused(413, f"upload larger than {self.max_body} bytes")
            spool.write(chunk)
            if not message.get("more_body", False):
                break
        spool.seek(0)
        return spool

    async def _check(
        self, scope: Scope, parts: list[_Part] | None, body: IO[bytes]
    ) -> tuple[list[dict[str, Any]], bytes | None]:
        """Per-file outcomes, and the body to forward when propagation changed a file."""
        route = scope.get("path", "")
        if parts is None:  # a raw upload: the whole body is the file
            data = body.read()
            body.seek(0)
            result, out = await anyio.to_thread.run_sync(self._judge, data, route, None, None)
            return [result], out if out is not data else None
        results, changed = [], False
        outputs: list[bytes | None] = []
        for part in parts:
            info = part.disposition
            if "filename" not in info or part.body is None:
                outputs.append(None)
                continue
            part.body.seek(0)
            data = part.body.read()
            result, out = await anyio.to_thread.run_sync(
                self._judge, data, route, info.get("name"), info.get("filename")
            )
            results.append(result)
            changed |= out is not data
            outputs.append(out if out is not data else None)
        if not changed:
            return results, None
        return results, _rebuild(parts, outputs, _boundary(scope))

    def _judge(
        self, data: bytes, route: str, name: str | None, filename: str | None
    ) -> tuple[dict[str, Any], bytes]:
        verdict = verify(data, self.trust)
        result: dict[str, Any] = {
            "field": name,
            "filename": filename,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "status": verdict.status.value,
            "notice": verdict.notice,
            "format": verdict.media_format,
            "producer": verdict.record.ContentProducer if verdict.record else None,
            "produce_id": verdict.record.ProduceID if verdict.record else None,
        }
        out = data
        if self.propagator is not None and verdict.record is not None and verdict.status not in _BROKEN:
            from ..propagation import propagate_bytes

            try:
                out = propagate_bytes(data, self.propagator)
                result["propagate_id"] = verify(out).record.PropagateID  # type: ignore[union-attr]
                result["propagated_sha256"] = hashlib.sha256(out).hexdigest()
            except LabelerError as exc:
                result["propagation_error"] = str(exc)
                out = data
        if self.audit is not None:
            self.audit.write(
                {
                    "route": route,
                    "digest": result["sha256"],
                    "status": result["status"],
                    "notice": result["notice"],
                    "format": result["format"],
                    "filename": filename,
                    "producer": result["producer"],
                    "propagate_id": result.get("propagate_id"),
                }
            )
        return result, out

    def _enforce(self, results: list[dict[str, Any]]) -> None:
        if self.mode == "require-label":
            bad = [r for r in results if r["status"] in ("no-label", "unreadable")]
            if bad:
                raise _Refused(422, "upload refused: AI-generated content must carry its label", bad)
        elif self.mode == "reject-altered":
            bad = [r for r in results if Status(r["status"]) in _BROKEN]
            if bad:
                raise _Refused(422, "upload refused: a label is forged, altered or malformed", bad)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        results: list[dict[str, Any]],
        body: IO[bytes],
        new_body: bytes | None,
    ) -> None:
        """The app gets the request with the outcomes in its state and headers, and the body
        (the propagated one when a file changed) replayed in chunks."""
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"aigc-notice"]
        if new_body is not None:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(new_body)).encode()))
        headers.append((b"aigc-notice", ",".join(r["notice"] for r in results).encode() or b"none"))
        state = dict(scope.get("state") or {})
        state["aigc"] = results
        inner = {**scope, "headers": headers, "state": state}
        source = memoryview(new_body if new_body is not None else body.read())
        done = False

        async def replay() -> Message:
            nonlocal done, source
            if done:
                return await receive()  # after the body: a disconnect passes through
            chunk, source = source[:_CHUNK], source[_CHUNK:]
            done = not source
            return {"type": "http.request", "body": bytes(chunk), "more_body": not done}

        await self.app(inner, replay, send)


def _boundary(scope: Scope) -> bytes:
    ctype = dict(scope.get("headers", [])).get(b"content-type", b"").decode("latin-1")
    return _boundary_of(ctype)


def _boundary_of(ctype: str) -> bytes:
    for item in ctype.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip().strip('"').encode("latin-1")
    raise _Refused(400, "multipart/form-data without a boundary")


def _parse_multipart(body: IO[bytes], ctype: str, max_parts: int) -> list[_Part]:
    """The parts, each body spooled; a broken body is a 400, never an exception in the host."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser

    boundary = _boundary_of(ctype)
    parts: list[_Part] = []
    field_name = b""

    def on_part_begin() -> None:
        if len(parts) >= max_parts:
            raise _Refused(413, f"more than {max_parts} parts")
        parts.append(_Part(body=tempfile.SpooledTemporaryFile(max_size=1 << 20)))  # noqa: SIM115

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        assert part.body is not None
        part.body.write(data[start:end])
        part.size += end - start

    def on_header_field(data: bytes, start: int, end: int) -> None:
        nonlocal field_name
        field_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        if field_name:
            part.headers.append((field_name, b""))
        name, value = part.headers[-1]
        part.headers[-1] = (name, value + data[start:end])
        _clear()

    def _clear() -> None:
        nonlocal field_name
        field_name = b""

    ended = False

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_end": on_end,
        },
    )
    try:
        while chunk := body.read(_CHUNK):
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        _close(parts)
        raise _Refused(400, f"broken multipart body: {exc}") from None
    if not ended:
        _close(parts)
        raise _Refused(400, "broken multipart body: no closing boundary")
    body.seek(0)
    return parts


def _close(parts: list[_Part]) -> None:
    for part in parts:
        if part.body is not None:
            part.body.close()


def _rebuild(parts: list[_Part], outputs: list[bytes | None], boundary: bytes) -> bytes:
    """The multipart body again, with the propagated files in place of the uploaded ones."""
    out = bytearray()
    for part, new in zip(parts, outputs, strict=True):
        out += b"--" + boundary + b"\r\n"
        for name, value in part.headers:
            out += name + b": " + value + b"\r\n"
        out += b"\r\n"
        if new is not None:
            out += new
        elif part.body is not None:
            part.body.seek(0)
            out += part.body.read()
        out += b"\r\n"
    out += b"--" + boundary + b"--\r\n"
    return bytes(out)


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
