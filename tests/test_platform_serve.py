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
