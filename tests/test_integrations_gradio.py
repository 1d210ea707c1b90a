"""labeler.integrations.gradio against real Gradio apps: launched on 127.0.0.1, driven by
gradio_client (the queue/SSE protocol Gradio's own front end speaks) and by headless Chromium."""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a closed network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from browser import CHROMIUM, DRIVER, MISSING, chrome  # noqa: E402
from conftest import FILINGS, PROVIDER_CODE  # noqa: E402

from labeler import LabelPolicy, SigningKey, Status, TrustStore, verify  # noqa: E402
from labeler.integrations.gradio import label_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
LABEL = "【AI生成】"


def label_plate(data: bytes, plain: Any) -> bool:
    """Whether ``data`` is ``plain`` with the label plate drawn in its bottom-right corner (the
    default placement): strong changes there, none elsewhere beyond the invisible watermark's."""
    from PIL import Image, ImageChops

    got = Image.open(io.BytesIO(data)).convert("L")
    diff = ImageChops.difference(got, plain.convert("L"))
    w, h = got.size
    corner = diff.crop((w // 2, h // 2, w, h)).getextrema()[1]
    rest = max(diff.crop(box).getextrema()[1] for box in ((0, 0, w, h // 2), (0, h // 2, w // 2, h)))
    return corner > 100 and rest < 40


#: Gradio 5's Chatbot speaks "tuples" unless told; 6 speaks messages only
MESSAGES = {"type": "messages"} if int(gr.__version__.split(".")[0]) < 6 else {}


def text_of(message: dict[str, Any]) -> str:
    """A message's text as the Gradio API returns it (5: a string; 6: a list of parts)."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Launched:
    def __init__(self, demo: Any) -> None:
        self.demo = demo
        self.url = f"http://127.0.0.1:{free_port()}"

    def __enter__(self) -> Launched:
        port = int(self.url.rsplit(":", 1)[1])
        self.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.demo.close()

    def client(self) -> Any:
        return gradio_client.Client(self.url + "/", verbose=False, download_files=False)


@pytest.fixture(scope="module")
def example_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, example_key: SigningKey) -> Iterator[Launched]:
    """examples/gradio_chat.py as written (its one line reads LABELER_* from the environment)."""
    keys = tmp_path_factory.mktemp("keys")
    (keys / "labeler.pem").write_bytes(example_key.private_pem())
    (keys / "labeler.pem").chmod(0o600)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LABELER_CONFIG", raising=False)  # the environment alone, not a developer's file
        mp.setenv("LABELER_PROVIDER_NAME", "示例智能科技有限公司")
        mp.setenv("LABELER_PROVIDER_CODE", PROVIDER_CODE)
        mp.setenv("LABELER_FILING_NUMBERS", ",".join(FILINGS))
        mp.setenv("LABELER_KEY_FILE", str(keys / "labeler.pem"))
        mp.setenv("EXAMPLE_TOKEN_DELAY", "0.03")
        mp.syspath_prepend(str(ROOT))
        sys.modules.pop("examples.gradio_chat", None)
        module = importlib.import_module("examples.gradio_chat")
    with Launched(module.demo) as app:
        yield app


def test_example_streams_one_label_through_the_gradio_api(example: Launched) -> None:
    client = example.client()
    job = client.submit("hello", api_name="/chat")
    seen = [str(x) for x in job]
    assert len(seen) > 5  # streamed, not one answer
    assert all(s.startswith(LABEL + "\n\n") and s.count(LABEL) == 1 for s in seen)
    assert [len(s) for s in seen] == sorted(len(s) for s in seen)  # each a prefix of the next
    assert seen[-1].endswith("it carries its label.")
    client.close()


def test_example_picture_verifies(example: Launched, example_key: SigningKey) -> None:
    client = example.client()
    out = client.predict("a red kite", api_name="/draw")
    client.close()
    data = httpx.get(out["url"]).content
    verdict = verify(data, TrustStore([example_key.public_key]))
    assert verdict.status is Status.VERIFIED and verdict.notice == "confirmed", verdict
    assert data[:8] == b"\x89PNG\r\n\x1a\n"  # the component's format, as Gradio would serve it
    assert label_plate(data, sys.modules["examples.gradio_chat"].draw("a red kite"))


@pytest.fixture
def blocks_app(policy: LabelPolicy) -> Any:
    """gr.Chatbot streamed by a sync generator, an async answer, a numpy picture, and a
    dict-of-components return: the shapes Blocks apps hand Gradio."""

    def respond(message: str, history: list[Any]) -> Iterator[list[Any]]:
        history = [*history, {"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        for word in ("One", " two", " three."):
            history[-1] = {**history[-1], "content": history[-1]["content"] + word}
            yield history

    async def answer(message: str) -> tuple[str, list[Any]]:
        await asyncio.sleep(0)
        return message, [{"role": "assistant", "content": f"You said {message}"}]

    def picture(seed: float) -> Any:
        rng = np.random.default_rng(int(seed))
        return {image: rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)}

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot(**MESSAGES)
        box = gr.Textbox()
        echo = gr.Textbox()
        image = gr.Image(format="webp")
        seed = gr.Number(value=1)
        box.submit(respond, [box, chatbot], chatbot, api_name="respond")
        gr.Button("a").click(answer, box, [echo, chatbot], api_name="answer")
        gr.Button("p").click(picture, seed, image, api_name="picture")
    return demo


def test_blocks_chatbot_stream_async_fn_and_numpy_picture(
    blocks_app: Any, policy: LabelPolicy, trust: TrustStore
) -> None:
    label_app(blocks_app, policy)
    label_app(blocks_app, policy)  # idempotent: wrapped once, one banner
    banners = [b for b in blocks_app.blocks.values() if getattr(b, "elem_id", None) == "aigc-label"]
    assert len(banners) == 1 and blocks_app.children[0] is banners[0]
    assert "Beijing-YunQue-20230821" in banners[0].value and LABEL in banners[0].value
    with Launched(blocks_app) as app:
        client = app.client()
        streamed = list(client.submit("hi", [], api_name="/respond"))
        texts = [text_of(h[-1]) for h in streamed if h and h[-1]["role"] == "assistant"]
        assert texts[-1] == LABEL + "\n\nOne two three."
        assert all(t.startswith(LABEL) and t.count(LABEL) == 1 for t in texts)
        echo, history = client.predict("yo", api_name="/answer")
        assert echo == "yo"  # a Textbox is not an AI output we know of: untouched
        assert text_of(history[0]) == LABEL + "You said yo"
        out = client.predict(3, api_name="/picture")
        data = httpx.get(out["url"]).content
        client.close()
    verdict = verify(data, trust)
    assert verdict.status is Status.VERIFIED and verdict.notice == "confirmed"
    assert data[8:12] == b"WEBP"
    assert blocks_app.aigc_labeler.stats["images"] == 1


def test_end_label_comes_once_after_the_stream(policy: LabelPolicy) -> None:
    async def chat(message: str, history: list[Any]) -> Any:
        for text in ("A", "A b", "A b c"):
            yield text

    demo = label_app(gr.ChatInterface(chat), policy, text_position="both", banner=False)

    async def run() -> list[str]:
        return [x async for x in demo.fn("q", [])]

    out = asyncio.run(run())
    assert out[:3] == [LABEL + "\n\nA", LABEL + "\n\nA b", LABEL + "\n\nA b c"]
    assert out[3:] == [LABEL + "\n\nA b c\n\n" + LABEL]
    assert not any(getattr(b, "elem_id", None) == "aigc-label" for b in demo.blocks.values())


def test_interface_picture(policy: LabelPolicy, trust: TrustStore) -> None:
    from PIL import Image

    demo = gr.Interface(lambda prompt: Image.new("RGB", (160, 120), (200, 60, 20)), "text", "image")
    label_app(demo, policy)
    submit = demo.fns[0].fn  # the submit event: the first Interface registers
    assert verify(Path(submit("a kite")).read_bytes(), trust).status is Status.VERIFIED


def test_stopping_a_stream_closes_the_model_stream(policy: LabelPolicy) -> None:
    closed = []

    def chat(message: str, history: list[Any]) -> Iterator[str]:
        try:
            yield from ("a", "a b", "a b c")
        finally:
            closed.append(True)

    demo = label_app(gr.ChatInterface(chat), policy, banner=False)
    stream = demo.fn("q", [])
    assert next(stream) == LABEL + "\n\na"
    stream.close()  # what Gradio does when the user presses stop
    assert closed == [True]


def test_gallery_update_and_chat_file_parts(policy: LabelPolicy, trust: TrustStore, tmp_path: Path) -> None:
    from PIL import Image

    pic = Image.new("RGB", (160, 120), (20, 120, 200))
    png = tmp_path / "drawn.png"
    pic.save(png)
    with gr.Blocks() as demo:
        gallery = gr.Gallery()
        image = gr.Image()
        gr.Button().click(
            lambda: ([(pic, "a caption"), np.zeros((90, 120, 3), np.uint8)], gr.update(value=pic)),
            None,
            [gallery, image],
        )
    label_app(demo, policy, banner=False)
    items, update = next(f.fn for f in demo.fns.values() if f.outputs == [gallery, image])()
    assert items[0][1] == "a caption" and update["__type__"] == "update"
    for path in (items[0][0], items[1], update["value"]):
        assert verify(Path(path).read_bytes(), trust).status is Status.VERIFIED

    def chat(message: str, history: list[Any]) -> list[Any]:
        return [{"role": "assistant", "content": {"path": str(png)}}, "Here it is."]

    demo = label_app(gr.ChatInterface(chat), policy, banner=False)
    answer = demo.fn("draw", [])
    assert verify(Path(answer[0]["content"]["path"]).read_bytes(), trust).status is Status.VERIFIED
    assert answer[1] == LABEL + "Here it is."
    assert verify(png.read_bytes()).status is Status.NO_LABEL  # the app's own file is left as it was


def test_fail_closed_refuses_what_it_cannot_label(policy: LabelPolicy, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-picture.png"
    bad.write_bytes(b"this is no PNG")
    with gr.Blocks() as demo:
        image = gr.Image()
        gr.Button().click(lambda: str(bad), None, image)
    label_app(demo, policy, banner=False)
    fn = next(f.fn for f in demo.fns.values() if f.outputs == [image])
    with pytest.raises(gr.Error):
        fn()
    with gr.Blocks() as open_demo:
        image = gr.Image()
        gr.Button().click(lambda: str(bad), None, image)
    label_app(open_demo, policy, fail_mode="open", banner=False)
    fn = next(f.fn for f in open_demo.fns.values() if f.outputs == [image])
    assert fn() == str(bad) and open_demo.aigc_labeler.stats["failed"] == 1


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=MISSING)
def test_browser_sees_the_persistent_label_one_streamed_label_and_a_verifying_picture(
    example: Launched, example_key: SigningKey
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome("900,1100")
    try:
        wait = WebDriverWait(driver, 20, poll_frequency=0.02)
        driver.get(example.url + "/")
        banner = wait.until(lambda d: d.find_elements(By.ID, "aigc-label"))[0]
        assert "AI生成" in banner.text and FILINGS[0] in banner.text
        colours = (
            "return [...arguments[0].querySelectorAll('.aigc-label, .aigc-label *')]"
            ".map(e => getComputedStyle(e).color)"
        )
        assert set(driver.execute_script(colours, banner)) == {"rgb(255, 255, 255)"}  # legible on its plate
        chat = wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "textarea[placeholder='Type a message...']")
        )
        top = driver.execute_script("return arguments[0].getBoundingClientRect().top", banner)
        assert top < driver.execute_script("return arguments[0].getBoundingClientRect().top", chat[0])

        chat[0].send_keys("hello", Keys.ENTER)
        bot = "[data-testid='bot'] .message-content"
        partial = wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, bot) if e.text])[0]
        answer = wait.until(
            lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, bot) if "its label." in e.text]
        )[0]
        assert answer.startswith(LABEL) and answer.count(LABEL) == 1
        assert partial.startswith(LABEL) and len(partial) < len(answer)  # seen while streaming
        assert banner.is_displayed()  # still there with the answer

        driver.find_element(By.CSS_SELECTOR, "#picture-prompt textarea").send_keys("a red kite")
        driver.find_element(By.ID, "draw").click()
        img = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#picture img"))[0]
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", img) == 384)
        src = img.get_attribute("src")
        # the label's Chinese is drawn with the bundled font where no CJK font is installed
        loaded = (
            "return [...document.fonts].some(f => f.family.includes('LabelerCJK') && f.status === 'loaded')"
        )
        wait.until(lambda d: d.execute_script(loaded))
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "gradio-chat.png"))
    finally:
        driver.quit()
    data = httpx.get(src).content
    verdict = verify(data, TrustStore([example_key.public_key]))
    assert verdict.status is Status.VERIFIED and verdict.notice == "confirmed"
    assert label_plate(data, sys.modules["examples.gradio_chat"].draw("a red kite"))


def test_module_imports_gradio_only_inside_the_wing() -> None:
    source = (ROOT / "labeler/integrations/gradio.py").read_text()
    assert "import gradio" in source
    for path in (ROOT / "labeler").rglob("*.py"):
        if "integrations" not in path.parts:
            assert "import gradio" not in path.read_text() and "from gradio" not in path.read_text(), path
