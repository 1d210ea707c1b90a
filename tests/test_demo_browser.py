"""A real browser (Debian's headless Chromium) uses the demo chat page like a person would."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import CHROMIUM, DRIVER, chrome
from servers import serve

from labeler import LabelPolicy
from labeler.demo.server import labeled_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.interop,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian chromium + chromium-driver not installed"),
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def d_fonts_loaded(driver: object) -> int:
    """How many faces of the bundled CJK font the page loaded."""
    script = (
        "return [...document.fonts]"
        ".filter(f => f.family.includes('LabelerCJK') && f.status === 'loaded').length"
    )
    return int(driver.execute_script(script))  # type: ignore[attr-defined]


def test_chat_page_streams_answers_and_shows_the_persistent_label(policy: LabelPolicy) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with serve(labeled_app(policy, token_delay=0.02)) as url:
        driver = chrome("900,900")
        try:
            wait = WebDriverWait(driver, 20)
            driver.get(url + "/")
            wait.until(lambda d: d.find_element(By.ID, "filing-number").text not in ("", "…"))
            banner = driver.find_element(By.ID, "ai-label")
            assert banner.is_displayed()
            assert "AI生成" in banner.text and "Beijing-YunQue-20230821" in banner.text
            # the label's Chinese is drawn with the bundled font where no CJK font is installed
            wait.until(lambda d: d.execute_script("return document.fonts.status") == "loaded")
            assert d_fonts_loaded(driver) >= 1

            driver.find_element(By.ID, "prompt").send_keys("你好，请介绍一下你自己")
            driver.find_element(By.ID, "send").click()
            wait.until(
                lambda d: (
                    d.find_elements(By.CSS_SELECTOR, ".assistant[data-state='streaming']")
                    or d.find_elements(By.CSS_SELECTOR, ".assistant[data-state='done']")
                )
            )
            partial = driver.find_element(By.CSS_SELECTOR, ".assistant").text
            answer = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant[data-state='done']"))[
                0
            ].text
            assert answer.startswith("【AI生成】") and answer.count("【AI生成】") == 1
            assert len(partial) < len(answer)  # seen while still streaming
            assert banner.is_displayed()  # the label stays on screen with the answer

            driver.find_element(By.ID, "prompt").send_keys("a red kite")
            driver.find_element(By.ID, "image").click()
            image = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant img"))[0]
            wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) == 512)
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "demo-chat.png"))
        finally:
            driver.quit()
