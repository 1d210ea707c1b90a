"""UploadGate and the audit log (issue 17): uploads verified before the app sees them, the
platform's propagator record written in, the outcome in request state and headers, one audit
line per file; broken multipart, oversize bodies and refusals are clean 4xx. A real Starlette
app, real multipart bodies (httpx builds them), one run over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import make_image
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labeler import LabelPolicy, SigningKey, Status, TrustStore, label_content, verify
from labeler.cli import main
from labeler.platform.audit import AuditLog, read_audit
from labeler.platform.gate import UploadGate

PLATFORM_CODE = "001191440300708461136T20000"


def _jpeg(seed: int = 1) -> bytes:
    buf = io.BytesIO()
    make_image((320, 240), seed=seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def _upload(request: Request) -> JSONResponse:
    """The app behind the gate: what it was told, and the bytes it got."""
    received: dict[str, Any] = {}
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await request.form()
        for name, value in form.multi_items():
            if hasattr(value, "read"):
                received[name] = (await value.read()).hex()
            else:
                received[name] = value
    else:
        received["body"] = (await request.body()).hex()
    return JSONResponse(
        {"aigc": request.state.aigc, "notice": request.headers.get("aigc-notice"), "received": received}
    )


def _app(**gate: Any) -> UploadGate:
    return UploadGate(Starlette(routes=[Route("/upload", _upload, methods=["POST"])]), **gate)


async def _post(app: Any, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/upload", **kw)


@pytest.fixture
def platform_policy(policy: LabelPolicy) -> LabelPolicy:
    return dataclasses.replace(policy, provider_code=PLATFORM_CODE, signing_key=SigningKey.generate())


@pytest.mark.anyio
async def test_each_file_is_verified_and_the_app_learns_its_notice(
    policy: LabelPolicy, trust: TrustStore, tmp_path: Path
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    labelled, plain = label_content(_jpeg(), policy), _jpeg(2)
    files = [("a", ("ai.jpg", labelled, "image/jpeg")), ("b", ("photo.jpg", plain, "image/jpeg"))]
    r = await _post(_app(trust=trust, audit=audit), files=files, data={"caption": "hello"})
    assert r.status_code == 200
    body = r.json()
    assert body["notice"] == "confirmed,none"
    assert [(f["filename"], f["status"], f["notice"]) for f in body["aigc"]] == [
        ("ai.jpg", "verified", "confirmed"),
        ("photo.jpg", "no-label", "none"),
    ]
    assert body["received"]["a"] == labelled.hex() and body["received"]["caption"] == "hello"  # untouched
    lines = list(read_audit(tmp_path / "audit.jsonl"))
    assert [(e["route"], e["status"], e["notice"], e["filename"]) for e in lines] == [
        ("/upload", "verified", "confirmed", "ai.jpg"),
        ("/upload", "no-label", "none", "photo.jpg"),
    ]
    assert lines[0]["digest"] == body["aigc"][0]["sha256"] and lines[0]["time"].endswith("Z")


@pytest.mark.anyio
async def test_the_platform_record_is_written_in_and_the_producer_still_verifies(
    policy: LabelPolicy, platform_policy: LabelPolicy, trust: TrustStore
) -> None:
    labelled = label_content(_jpeg(), policy)
    r = await _post(
        _app(trust=trust, propagator=platform_policy), files={"f": ("x.jpg", labelled, "image/jpeg")}
    )
    got = bytes.fromhex(r.json()["received"]["f"])
    assert got != labelled
    verdict = verify(got, TrustStore([policy.signing_key.public_key, platform_policy.signing_key.public_key]))  # type: ignore[union-attr]
    assert verdict.status is Status.VERIFIED  # the producer's signature still holds
    assert verdict.record is not None and verdict.record.ContentPropagator == PLATFORM_CODE
    assert verdict.propagation is not None and verdict.propagation["status"] == "verified"
    assert r.json()["aigc"][0]["propagate_id"] == verdict.record.PropagateID
    raw = await _post(
        _app(trust=trust, propagator=platform_policy),
        content=labelled,
        headers={"content-type": "image/jpeg"},
    )
    assert verify(bytes.fromhex(raw.json()["received"]["body"])).record.ContentPropagator == PLATFORM_CODE  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_policies_refuse_with_a_clean_422(policy: LabelPolicy, trust: TrustStore) -> None:
    plain = _jpeg()
    r = await _post(_app(trust=trust, mode="require-label"), files={"f": ("p.jpg", plain, "image/jpeg")})
    assert r.status_code == 422 and r.json()["files"][0]["status"] == "no-label"
    labelled = bytearray(label_content(_jpeg(), policy))
    labelled[-200] ^= 0xFF  # pixels changed after signing
    r = await _post(
        _app(trust=trust, mode="reject-altered"), files={"f": ("x.jpg", bytes(labelled), "image/jpeg")}
    )
    assert r.status_code == 422 and r.json()["files"][0]["status"] == "altered"
    ok = await _post(_app(trust=trust, mode="reject-altered"), files={"f": ("p.jpg", plain, "image/jpeg")})
    assert ok.status_code == 200  # unlabelled is not altered


@pytest.mark.anyio
async def test_broken_or_oversize_uploads_are_clean_4xx() -> None:
    app = _app(max_body=10_000)
    boundary = "XyZ"
    broken = b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\nabc'  # no end
    r = await _post(
        app, content=broken, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 400 and "multipart" in r.json()["error"]
    r = await _post(app, content=b"x" * 20_000, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413
    r = await _post(app, content=b"--a\r\n", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400  # no boundary
    many = [("f", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(40)]
    r = await _post(_app(max_parts=8), files=many)
    assert r.status_code == 413
    r = await _post(_app(), content=b"not an image", headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["aigc"][0]["status"] == "unreadable"  # told, not crashed


@pytest.mark.anyio
async def test_other_requests_pass_untouched() -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {"body": (await request.body()).decode(), "notice": request.headers.get("aigc-notice")}
        )

    app = UploadGate(Starlette(routes=[Route("/upload", echo, methods=["POST"])]))
    r = await _post(app, json={"q": 1})
    assert r.json() == {"body": '{"q":1}', "notice": None}


def test_over_real_http_with_the_audit_cli(
    policy: LabelPolicy, trust: TrustStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    app = _app(trust=trust, audit=AuditLog(log, max_bytes=600, backups=3))
    labelled = label_content(_jpeg(), policy)
    with serve(app) as url:
        for i in range(4):
            r = httpx.post(f"{url}/upload", files={"f": (f"{i}.jpg", labelled, "image/jpeg")}, timeout=30)
            assert r.status_code == 200 and r.json()["notice"] == "confirmed"
    assert (tmp_path / "audit.jsonl.1").exists()  # rotated by size, nothing lost
    assert [e["filename"] for e in read_audit(log)] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert main(["audit", str(log), "--notice", "confirmed", "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 4 and all(e["status"] == "verified" for e in out)
    assert main(["audit", str(log), "--status", "altered"]) == 0
    assert capsys.readouterr().out.strip().endswith("0 entries")
