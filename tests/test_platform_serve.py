"""``labeler serve`` (issue 17): the verify and propagate API, and the drop-a-file page driven by
a real browser (Debian's headless Chromium) with the bundled CJK font."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import httpx
import pytest
from browser import CHROMIUM, DRIVER, chrome
from conftest import make_image
from servers import serve

from labeler import LabelPolicy, SigningKey, Status, TrustStore, label_content, verify
from labeler.platform.serve import create_app

PLATFORM_CODE = "001191440300708461136T20000"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def _jpeg(seed: int = 1) -> bytes:
    buf = io.BytesIO()
    make_image((320, 240), seed=seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_verify_answers_per_file_with_what_is_missing(policy: LabelPolicy, trust: TrustStore) -> None:
    labelled, plain = label_content(_jpeg(), policy), _jpeg(2)
    async with await _client(create_app(trust=trust)) as client:
        r = await client.post(
            "/v1/verify",
            files=[("file", ("ai.jpg", labelled, "image/jpeg")), ("file", ("p.jpg", plain, "image/jpeg"))],
        )
        assert r.status_code == 200
        ai, photo = r.json()["files"]
        assert (ai["filename"], ai["status"], ai["notice"]) == ("ai.jpg", "verified", "confirmed")
        assert ai["record"]["ContentProducer"] == policy.provider_code and ai["findings"] == []
        assert photo["status"] == "no-label" and [f["rule"] for f in photo["findings"]] == ["AIGC001"]
        raw = await client.post("/v1/verify?filename=x.jpg", content=labelled)
        assert raw.json()["files"][0]["status"] == "verified"
        assert (await client.post("/v1/verify", content=b"")).status_code == 400
        big = await client.post("/v1/verify", content=b"x" * 100, headers={"content-length": str(1 << 40)})
        assert big.status_code == 413
        page = await client.get("/")
        assert "LabelerCJK" in page.text and "/v1/verify" in page.text
        font = await client.get("/font.otf")
        assert font.headers["content-type"] == "font/otf" and font.content[:4] == b"OTTO"


@pytest.mark.anyio
async def test_propagate_returns_the_file_with_the_platform_record(
    policy: LabelPolicy, trust: TrustStore
) -> None:
    labelled = label_content(_jpeg(), policy)
    async with await _client(create_app(trust=trust)) as client:
        assert (await client.post("/v1/propagate", content=labelled)).status_code == 501  # no policy given
    platform = dataclasses.replace(policy, provider_code=PLATFORM_CODE, signing_key=SigningKey.generate())
    async with await _client(create_app(trust=trust, propagator=platform)) as client:
        r = await client.post("/v1/propagate", files={"file": ("x.jpg", labelled, "image/jpeg")})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        verdict = verify(r.content, trust)
        assert verdict.status is Status.VERIFIED and verdict.record is not None
        assert verdict.record.ContentPropagator == PLATFORM_CODE
        bad = await client.post("/v1/propagate", content=b"not a file")
        assert bad.status_code == 422


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian chromium + chromium-driver not installed")
def test_a_person_drops_files_and_sees_the_notice_in_chinese(
    policy: LabelPolicy, trust: TrustStore, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (tmp_path / "ai.jpg").write_bytes(label_content(_jpeg(), policy))
    (tmp_path / "photo.jpg").write_bytes(_jpeg(2))
    with serve(create_app(trust=trust)) as url:
        driver = chrome("1000,1000")
        try:
            wait = WebDriverWait(driver, 20)
            driver.get(url + "/")
            driver.find_element(By.ID, "files").send_keys(f"{tmp_path / 'ai.jpg'}\n{tmp_path / 'photo.jpg'}")
            cards = wait.until(
                lambda d: (
                    len(d.find_elements(By.CSS_SELECTOR, ".card")) == 2
                    and d.find_elements(By.CSS_SELECTOR, ".card")
                )
            )
            by_status = {c.get_attribute("data-status"): c for c in cards}
            confirmed = by_status["verified"].find_element(By.CSS_SELECTOR, ".notice")
            assert "AI生成" in confirmed.text and confirmed.is_displayed()
            # the visible label's position, outlined on the picture where the label was drawn
            box = by_status["verified"].find_element(By.CSS_SELECTOR, ".label-box")
            picture = by_status["verified"].find_element(By.CSS_SELECTOR, ".picture img")
            assert box.get_attribute("data-placement") == "bottom-right" and box.is_displayed()
            b, p = box.rect, picture.rect
            assert b["x"] > p["x"] + p["width"] / 2 and b["y"] > p["y"] + p["height"] / 2
            assert (
                b["x"] + b["width"] <= p["x"] + p["width"] + 2
                and b["y"] + b["height"] <= p["y"] + p["height"] + 2
            )
            assert by_status["no-label"].find_element(By.CSS_SELECTOR, ".visible").text == "not found"
            assert not by_status["no-label"].find_elements(By.CSS_SELECTOR, ".label-box")
            assert (
                by_status["no-label"].find_element(By.CSS_SELECTOR, ".finding").get_attribute("data-rule")
                == "AIGC001"
            )
            # the Chinese is drawn with our font (served by the page), not boxes from a missing one
            wait.until(lambda d: d.execute_script("return document.fonts.status") == "loaded")
            assert driver.execute_script("return document.fonts.check('20px LabelerCJK', 'AI生成')")
            loaded = driver.execute_script(
                "return [...document.fonts]"
                ".filter(f => f.family.includes('LabelerCJK') && f.status === 'loaded').length"
            )
            assert loaded >= 1
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "serve-page.png"))
        finally:
            driver.quit()


def test_every_chinese_character_on_the_page_is_in_the_bundled_font() -> None:
    from importlib.resources import files

    from fontTools.ttLib import TTFont

    html = files("labeler.platform").joinpath("serve.html").read_text("utf-8")
    with files("labeler.fonts").joinpath("NotoSansCJKsc-Bold-labeler-subset.otf").open("rb") as f:
        cmap = TTFont(f).getBestCmap()
    missing = {c for c in html if ord(c) > 0x2E80 and ord(c) not in cmap}
    assert not missing, f"would render as boxes without system CJK fonts: {''.join(sorted(missing))}"


@pytest.mark.slow
def test_serve_with_two_worker_processes(policy: LabelPolicy, tmp_path: Path) -> None:
    """`labeler serve --workers 2`: each worker builds the service from the environment it
    inherits (trusted keys, upload limit); both answer with the trust the command was given."""
    import os
    import socket
    import subprocess
    import sys
    import time

    assert policy.signing_key is not None
    pem = tmp_path / "producer.pem"
    pem.write_bytes(policy.signing_key.public_key.to_pem())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "labeler.cli", "serve", "--port", str(port), "--workers", "2"]
    command += ["--trust", str(pem), "--max-body", "1000000"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELER_")}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        labelled = label_content(_jpeg(), policy)
        with httpx.Client(base_url=base) as client:
            for _ in range(6):  # connections land on either worker
                r = client.post("/v1/verify", files={"file": ("ai.jpg", labelled, "image/jpeg")})
                assert r.json()["files"][0]["status"] == "verified"
            assert client.post("/v1/verify", content=b"x" * 2_000_000).status_code == 413
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "2 worker(s)" in out


@pytest.mark.anyio
async def test_verify_says_where_a_pictures_visible_label_is(policy: LabelPolicy, trust: TrustStore) -> None:
    from PIL import Image

    labelled = label_content(_jpeg(), policy)
    stripped = io.BytesIO()
    Image.open(io.BytesIO(labelled)).save(stripped, "JPEG", quality=90)  # metadata gone, label drawn
    async with await _client(create_app(trust=trust)) as client:
        files = [
            ("file", ("ai.jpg", labelled, "image/jpeg")),
            ("file", ("s.jpg", stripped.getvalue(), "image/jpeg")),
        ]
        ai, lost = (await client.post("/v1/verify?visible=1", files=files)).json()["files"]
        assert ai["visible_label"]["placement"] == "bottom-right" and ai["visible_label"]["size"] == [
            320,
            240,
        ]
        x0, y0, x1, y1 = ai["visible_label"]["box"]
        assert x1 <= 320 and y1 <= 240 and x0 > 160 and y0 > 120
        assert (lost["status"], lost["notice"], lost["explicit_label"]) == ("no-label", "suspected", True)
        assert lost["marks"]["explicit_label"] is True
        quick = (await client.post("/v1/verify", files=files[1:])).json()["files"][0]
        assert quick["visible_label"] is None and quick["notice"] == "none"  # pixels not decoded
