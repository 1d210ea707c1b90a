"""``labeler serve``: verification as a service for a platform's people and pipelines.

``POST /v1/verify`` (files in a multipart form, or one raw body; verdicts out, with the linter's
findings: what is missing), ``POST /v1/propagate`` (a labelled file in, the same file with this
platform's propagator record out), and ``GET /`` a page where a person drops files and sees, per
file, the notice to show, the record's fields, signature / trust / intact, the C2PA state and
what is missing. The page's Chinese text is set in the bundled font subset, served from here, so
it renders on machines without CJK fonts.
"""

from __future__ import annotations

import importlib.resources
import os
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import LabelerError
from ..formats import detect
from ..policy import LabelPolicy
from ..signing import TrustStore
from ..verification import verify
from .check import check_bytes

__all__ = ["app_from_environment", "create_app"]

_FONT = "NotoSansCJKsc-Bold-labeler-subset.otf"


def _verdict(
    data: bytes, name: str | None, trust: TrustStore | None, visible: bool = False
) -> dict[str, Any]:
    """One file's answer. ``visible``: also find a picture's visible label in its pixels (a
    decode: the page asks for it, pipelines need not) and say where it is."""
    verdict = verify(data, trust, decode_pictures=visible)
    report = check_bytes(data, name or "-", trust, verdict)
    where = None
    if visible and verdict.explicit_label and detect(data).kind == "image":
        from ..explicit.plate import find_picture_label

        found = find_picture_label(data)
        if found is not None:
            where = {"placement": found.placement.value, "box": list(found.box), "size": list(found.size)}
    return {
        "filename": name,
        "size": len(data),
        **verdict.to_dict(),
        "visible_label": where,
        "marks": report.marks,
        "findings": [{"rule": f.rule, "level": f.level, "message": f.message} for f in report.findings],
    }


async def _files(request: Request, max_body: int) -> list[tuple[str | None, bytes]]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _HttpError(413, f"upload larger than {max_body} bytes")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=64, max_fields=64)
        except Exception as exc:  # Starlette raises its own parse errors: a client's fault
            raise _HttpError(400, f"broken multipart body: {exc}") from None
        out = []
        for _, value in form.multi_items():
            if not isinstance(value, str):
                data = await value.read()
                if len(data) > max_body:
                    raise _HttpError(413, f"upload larger than {max_body} bytes")
                out.append((value.filename, data))
        return out
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise _HttpError(413, f"upload larger than {max_body} bytes")
    return [(request.query_params.get("filename"), body)] if body else []


def app_from_environment() -> Starlette:
    """The service as each worker of ``labeler serve --workers N`` makes it: trusted keys from
    ``$LABELER_TRUST`` (paths joined by ``os.pathsep``), the propagator policy from
    ``$LABELER_CONFIG``, the upload limit from ``$LABELER_SERVE_MAX_BODY``."""
    paths = os.environ.get("LABELER_TRUST")
    trust = TrustStore.from_paths(paths.split(os.pathsep)) if paths else None
    propagator = LabelPolicy.load() if os.environ.get("LABELER_CONFIG") else None
    max_body = int(os.environ.get("LABELER_SERVE_MAX_BODY", 64 << 20))
    return create_app(trust=trust, propagator=propagator, max_body=max_body)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    *, trust: TrustStore | None = None, propagator: LabelPolicy | None = None, max_body: int = 64 << 20
) -> Starlette:
    """The service. ``propagator``: this platform's policy, needed by ``/v1/propagate``."""

    async def verify_endpoint(request: Request) -> Response:
        try:
            files = await _files(request, max_body)
        except _HttpError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        if not files:
            return JSONResponse({"error": "no file in the request"}, 400)
        visible = request.query_params.get("visible") in ("1", "true")
        results = [
            await anyio.to_thread.run_sync(_verdict, data, name, trust, visible) for name, data in files
        ]
        return JSONResponse({"files": results})

    async def propagate_endpoint(request: Request) -> Response:
        if propagator is None:
            return JSONResponse({"error": "this service has no propagator policy (--config)"}, 501)
        try:
            files = await _files(request, max_body)
        except _HttpError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        if len(files) != 1:
            return JSONResponse({"error": "send exactly one file"}, 400)
        from ..propagation import propagate_bytes

        name, data = files[0]
        try:
            out = await anyio.to_thread.run_sync(lambda: propagate_bytes(data, propagator))
            mime = detect(out).mime_type
        except LabelerError as exc:
            return JSONResponse({"error": str(exc)}, 422)
        disposition = f'attachment; filename="{(name or "file").replace(chr(34), "")}"'
        return Response(out, media_type=mime, headers={"content-disposition": disposition})

    async def page(_: Request) -> Response:
        return HTMLResponse(
            importlib.resources.files("labeler.platform").joinpath("serve.html").read_text("utf-8")
        )

    async def font(_: Request) -> Response:
        data = importlib.resources.files("labeler.fonts").joinpath(_FONT).read_bytes()
        return Response(data, media_type="font/otf", headers={"cache-control": "max-age=86400"})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/font.otf", font),
            Route("/v1/verify", verify_endpoint, methods=["POST"]),
            Route("/v1/propagate", propagate_endpoint, methods=["POST"]),
        ]
    )
