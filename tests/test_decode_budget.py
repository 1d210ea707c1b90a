"""The decode budget: a picture whose header says it would decode to too many pixels (frames x
width x height, summed over an animation) is refused before anything is decoded or allocated.

Real images made here: GIFs whose frames are real 1x1 image blocks on a declared canvas, a PNG
whose IHDR declares 30000x30000 over a tiny IDAT, an animated WebP whose VP8X declares a large
canvas over 16x16 frames. Pillow keeps pixel memory in its own C allocator, which ``tracemalloc``
does not see, so besides a tracemalloc peak (Python side) each refusal also runs in a child
process whose address space is capped a little above what it uses: any real decode there would
be a ``MemoryError``, not a ``DecodeBudgetError``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SAMPLES, encode, make_image
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageSequence
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from labeler import LabelPolicy, Status, TrustStore, verify
from labeler.errors import ConfigError, DecodeBudgetError, LabelerError
from labeler.explicit.image import DEFAULT_MAX_PIXELS, VisibleStyle, render_visible_label
from labeler.labeling import label_image
from labeler.middleware import LabelingMiddleware

ROOT = Path(__file__).resolve().parents[1]


def gif_bytes(screen: tuple[int, int], frames: int, extent: tuple[int, int] = (1, 1)) -> bytes:
    """A real GIF: ``frames`` image blocks of ``extent`` pixels (one LZW-coded pixel each) on a
    ``screen``-sized canvas; Pillow decodes every frame at the canvas size."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", *screen) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff")
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for _ in range(frames):
        out += b"\x21\xf9\x04\x08\x0a\x00\x00\x00"  # graphic control: dispose to background, 100 ms
        out += b"\x2c" + struct.pack("<HHHH", 0, 0, *extent) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return bytes(out + b"\x3b")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (8-bit grey) over a few bytes of IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def webp_animated(canvas: tuple[int, int], frames: int) -> bytes:
    """A real animated WebP (lossless 16x16 frames) whose VP8X canvas is ``canvas``; Pillow
    decodes every frame at the canvas size."""
    images = [Image.new("RGBA", (16, 16), (10 * i, 0, 0, 255)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "WEBP", save_all=True, append_images=images[1:], lossless=True, duration=50)
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8X"
    data[24:27] = (canvas[0] - 1).to_bytes(3, "little")
    data[27:30] = (canvas[1] - 1).to_bytes(3, "little")
    return bytes(data)


#: name -> (bytes, VisibleStyle overrides, what the refusal names)
BOMBS: dict[str, tuple[bytes, dict[str, int], str]] = {
    # 9 MP a frame is far under Pillow's guard; 2000 of them are 18 billion pixels (72 GB as RGBA)
    "gif-3000x3000-2000-frames": (gif_bytes((3000, 3000), 2000), {}, "max_pixels"),
    # tiny frames, but more of them than allowed
    "gif-1x1-2000-frames-max-frames": (gif_bytes((1, 1), 2000), {"max_frames": 1000}, "max_frames"),
    "gif-1x1-2000-frames-max-pixels": (gif_bytes((1, 1), 2000), {"max_pixels": 1000}, "max_pixels"),
    # one frame larger than its screen: Pillow grows the canvas to the frame
    "gif-frame-beyond-screen": (gif_bytes((1, 1), 1, (12_000, 12_000)), {}, "max_frame_pixels"),
    # 900 MP declared: over the per-frame limit, and over the total when that is raised
    "png-30000x30000": (png_declaring(30_000, 30_000), {}, "max_frame_pixels"),
    "png-30000x30000-frame-limit-raised": (
        png_declaring(30_000, 30_000),
        {"max_frame_pixels": 10**9},
        "max_pixels",
    ),
    # 95 MP: Pillow would only warn (DecompressionBombWarning) and decode it
    "png-in-pillows-warning-range": (png_declaring(9_500, 10_000), {}, "max_frame_pixels"),
    # 36 MP a frame x 20 frames = 720 MP
    "webp-6000x6000-20-frames": (webp_animated((6000, 6000), 20), {}, "max_pixels"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_refused_before_decoding_with_a_typed_error_that_says_how_to_raise_it(name: str) -> None:
    data, overrides, knob = BOMBS[name]
    style = VisibleStyle(**overrides)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        with pytest.raises(DecodeBudgetError) as caught:
            render_visible_label(data, "AI生成", style)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # Python side: no copy, no frame list (Pillow's side: next test)
    message = str(caught.value)
    assert knob in message and "decompression bomb" in message and "LABELER_" in message
    assert isinstance(caught.value, LabelerError)


_CHILD = r"""
import json, resource, sys
from pathlib import Path
from labeler.explicit.image import VisibleStyle, render_visible_label

render_visible_label(Path(sys.argv[1]).read_bytes(), "AI生成", VisibleStyle())  # warm up: fonts, plugins
cases = json.loads(Path(sys.argv[2]).read_text())
status = Path("/proc/self/status").read_text()
size = int(next(line for line in status.splitlines() if line.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (128 << 20), resource.RLIM_INFINITY))
for name, path, overrides in cases:
    try:
        render_visible_label(Path(path).read_bytes(), "AI生成", VisibleStyle(**overrides))
        print(name, "labelled")
    except BaseException as exc:
        print(name, type(exc).__name__)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_refused_before_any_large_allocation_in_a_capped_process(tmp_path: Path) -> None:
    """Each bomb would need hundreds of MB to GBs in Pillow's C allocator; with the address
    space capped at +128 MiB, a decode attempt would end in MemoryError (or worse)."""
    (tmp_path / "ok.png").write_bytes(SAMPLES["png"])
    cases = []
    for name, (data, overrides, _) in sorted(BOMBS.items()):
        (tmp_path / name).write_bytes(data)
        cases.append((name, str(tmp_path / name), overrides))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "ok.png"), str(tmp_path / "cases.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    results = dict(line.split() for line in child.stdout.splitlines())
    assert results == dict.fromkeys(BOMBS, "DecodeBudgetError"), child.stderr[-2000:]


def test_the_budget_is_frames_times_width_times_height_and_its_edge_labels() -> None:
    images = [make_image((100, 100), seed=s).convert("P") for s in range(5)]
    data = encode(images[0], "GIF", save_all=True, append_images=images[1:])  # 5 x 100x100 = 50,000 pixels
    out = render_visible_label(data, "AI生成", VisibleStyle(max_pixels=50_000))
    frames = list(ImageSequence.Iterator(Image.open(io.BytesIO(out))))
    assert len(frames) == 5 and all(f.size == (100, 100) for f in frames)
    with pytest.raises(DecodeBudgetError, match=r"5 frames.*50,000 pixels.*max_pixels of 49,999"):
        render_visible_label(data, "AI生成", VisibleStyle(max_pixels=49_999))
    with pytest.raises(DecodeBudgetError, match="max_frames of 4"):
        render_visible_label(data, "AI生成", VisibleStyle(max_frames=4))


def test_counting_frames_stops_at_the_limit() -> None:
    """A GIF's frames are counted by walking its blocks; the walk ends where the budget is
    exceeded, so the message can only say 'at least'."""
    with pytest.raises(DecodeBudgetError, match="at least 11 frames"):
        render_visible_label(gif_bytes((1, 1), 2000), "AI生成", VisibleStyle(max_frames=10))


def gif_with_a_frame_only_pillow_sees() -> bytes:
    """Two 1x1 frames to a by-the-book GIF reader; Pillow reads an extension whose first
    sub-block is empty, then the next byte as a length, and so finds a 12000x12000 frame."""
    head = b"GIF89a" + struct.pack("<HH", 64, 64) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
    payload = bytearray(49)  # image data of the 2nd frame, as the book reads it
    payload[34:44] = b"\x2c" + struct.pack("<HHHH", 0, 0, 12_000, 12_000) + b"\x00"  # Pillow lands here
    payload[44:49] = b"\x02\x02\x44\x01\x00"
    book_frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02" + bytes([49]) + payload + b"\x00"
    return head + frame + b"\x21\xf9\x00" + book_frame + b"\x3b"


def test_gif_frames_are_counted_as_pillow_reads_them() -> None:
    data = gif_with_a_frame_only_pillow_sees()
    pillow = Image.open(io.BytesIO(data))
    assert pillow.n_frames == 2
    with pytest.warns(Image.DecompressionBombWarning):  # only a warning: Pillow would decode 144 MP
        pillow.seek(1)
    assert pillow.size == (12_000, 12_000)
    with pytest.raises(DecodeBudgetError, match="12000x12000"):
        render_visible_label(data, "AI生成", VisibleStyle())


def _descriptor(x: int, y: int, w: int, h: int, local: bool = False) -> bytes:
    palette = b"\x80" + b"\x00" * 6 if local else b"\x00"
    return b"\x2c" + struct.pack("<HHHH", x, y, w, h) + palette + b"\x02"


_SIDES = st.sampled_from([0, 1, 7, 60, 99, 101, 150, 5000])
_PIECES = st.one_of(
    st.builds(_descriptor, _SIDES, _SIDES, _SIDES, _SIDES, st.booleans()),
    st.sampled_from(
        [
            b"\x02\x44\x01\x00",  # image data: one sub-block, terminator
            b"\x21\xf9\x00",  # extension with an empty first sub-block (Pillow then reads on)
            b"\x21\xf9\x04\x08\x0a\x00\x00\x00",  # graphic control
            b"\x21\xfe\x03abc\x00",  # comment
            b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00",
            b"\x00",
            b"\x3b",
        ]
    ),
    st.builds(  # image data that holds a descriptor: a by-the-book reader skips it, a lost one may not
        lambda pad, d: bytes([pad + len(d) + 5]) + bytes(pad) + d + b"\x02\x44\x01\x00" + b"\x00",
        st.integers(0, 44),
        st.builds(_descriptor, _SIDES, _SIDES, _SIDES, _SIDES),
    ),
    st.binary(max_size=3),
)


@settings(max_examples=1000)
@given(pieces=st.lists(_PIECES, max_size=24))
def test_gif_walk_never_sees_less_than_pillow(pieces: list[bytes]) -> None:
    """Differential: whatever the walk lets through, Pillow decodes within the same limits."""
    from labeler.explicit.image import _gif_cost

    data = b"GIF89a" + struct.pack("<HH", 50, 40) + b"\x00\x00\x00" + b"".join(pieces)
    style = VisibleStyle(max_pixels=40_000, max_frame_pixels=20_000, max_frames=6)
    try:
        _gif_cost(data, style)
    except DecodeBudgetError:
        return
    frames = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sizes are asserted below, whatever Pillow thinks of them
        try:
            img = Image.open(io.BytesIO(data), formats=["GIF"])
            for frame in ImageSequence.Iterator(img):
                frames += 1
                pixels = frame.size[0] * frame.size[1]
                assert pixels <= 20_000 and frames <= 6 and frames * pixels <= 40_000, (frames, frame.size)
                frame.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error):
            pass  # Pillow gave up on a broken file: nothing more was decoded


def test_pillows_warning_range_is_refused_and_the_frame_limit_is_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per frame, the default limit is Pillow's own MAX_IMAGE_PIXELS, where Pillow would only
    warn: we refuse instead. ``max_frame_pixels`` moves it either way, without a warning."""
    data = SAMPLES["png"]  # 64x48 = 3,072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # 3,072 is in Pillow's warning range now
    with pytest.raises(DecodeBudgetError, match=r"64x48.*max_frame_pixels of 2,000"):
        render_visible_label(data, "AI生成", VisibleStyle())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail here
        render_visible_label(data, "AI生成", VisibleStyle(max_frame_pixels=3_072))
    monkeypatch.undo()
    with pytest.raises(DecodeBudgetError, match="max_frame_pixels of 3,071"):
        render_visible_label(data, "AI生成", VisibleStyle(max_frame_pixels=3_071))


def test_pillows_decompression_bomb_error_becomes_the_typed_error() -> None:
    """With our limits raised past Pillow's hard one (2 x MAX_IMAGE_PIXELS), Pillow's own check
    (here: a GIF frame that grows the canvas to 200 MP) still refuses, as DecodeBudgetError."""
    assert Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < 200_000_000
    style = VisibleStyle(max_pixels=10**9, max_frame_pixels=10**9)
    with pytest.raises(DecodeBudgetError, match="MAX_IMAGE_PIXELS"):
        render_visible_label(gif_bytes((1, 1), 1, (20_000, 10_000)), "AI生成", style)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_normal_images_still_label_under_the_default_budget(
    name: str, policy: LabelPolicy, trust: TrustStore
) -> None:
    assert policy.visible.max_pixels == DEFAULT_MAX_PIXELS == 100_000_000
    assert verify(label_image(SAMPLES[name], policy), trust).status is Status.VERIFIED


def test_label_image_refuses_with_the_policys_budget(policy: LabelPolicy) -> None:
    small = policy.with_changes(visible=replace(policy.visible, max_pixels=1_000))
    with pytest.raises(DecodeBudgetError, match="max_pixels of 1,000"):
        label_image(SAMPLES["png"], small)
    assert label_image(SAMPLES["png"], small, visible=False)  # nothing is decoded without a visible label


def test_style_refuses_nonsense_budgets() -> None:
    for bad in ({"max_pixels": 0}, {"max_frames": -1}, {"max_frame_pixels": 0}, {"max_pixels": 1.5}):
        with pytest.raises(ValueError, match="whole number"):
            VisibleStyle(**bad)  # type: ignore[arg-type]


# -- configuration -------------------------------------------------------------------------------


def test_budget_from_toml_and_env(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[labeler]\nprovider_name = "A"\n'
        '[labeler.visible]\nplacement = "top-left"\nmax_pixels = 250_000_000\nmax_frames = 500\n'
    )
    policy = LabelPolicy.load(tmp_path / "c.toml", env={})
    assert (policy.visible.max_pixels, policy.visible.max_frames) == (250_000_000, 500)
    assert policy.visible.max_frame_pixels is None  # follows Pillow's MAX_IMAGE_PIXELS
    env = {"LABELER_MAX_PIXELS": "300_000_000", "LABELER_MAX_FRAME_PIXELS": "200000000"}
    policy = LabelPolicy.load(tmp_path / "c.toml", env=env)  # env wins, the rest of the table stays
    assert policy.visible.max_pixels == 300_000_000 and policy.visible.max_frame_pixels == 200_000_000
    assert policy.visible.max_frames == 500 and policy.visible.placement.value == "top-left"
    policy = LabelPolicy.load(None, env={"LABELER_PROVIDER_NAME": "A", "LABELER_MAX_FRAMES": "7"})
    assert policy.visible.max_frames == 7
    with pytest.raises(ConfigError, match="LABELER_MAX_PIXELS"):
        LabelPolicy.load(None, env={"LABELER_PROVIDER_NAME": "A", "LABELER_MAX_PIXELS": "lots"})
    (tmp_path / "bad.toml").write_text('[labeler]\nprovider_name = "A"\n[labeler.visible]\nmax_pixels = 0\n')
    with pytest.raises(ConfigError, match="max_pixels"):
        LabelPolicy.load(tmp_path / "bad.toml", env={})


# -- middleware ----------------------------------------------------------------------------------


def _serving(body: bytes, media_type: str) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type=media_type)

    return Starlette(routes=[Route("/x", endpoint)])


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_middleware_refuses_or_passes_by_fail_mode(policy: LabelPolicy, mode: str) -> None:
    bomb = BOMBS["gif-3000x3000-2000-frames"][0]
    app = LabelingMiddleware(_serving(bomb, "image/gif"), policy=policy, fail_mode=mode)  # type: ignore[arg-type]
    response = TestClient(app).get("/x")
    if mode == "closed":
        assert response.status_code == 500
        message = response.json()["error"]["message"]
        assert "DecodeBudgetError" in message and "max_pixels" in message
    else:
        assert response.status_code == 200 and response.content == bomb  # unlabelled, as sent
        assert "ai-generated" not in response.headers and app.stats["fail_open"] == 1


# -- command line --------------------------------------------------------------------------------


def _apply(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labeler.cli", "apply", "in", "--out", "out", *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "LABELER_PROVIDER_NAME": "ExampleAI",
            **(env or {}),
        },
        timeout=120,
    )


def test_cli_fails_that_file_in_one_line_and_max_pixels_raises_or_lowers_the_budget(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/ok.png").write_bytes(SAMPLES["png"])  # 3,072 pixels
    (tmp_path / "in/bomb.gif").write_bytes(BOMBS["gif-3000x3000-2000-frames"][0])
    done = _apply(tmp_path, "-j", "2")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith(f"{Path('in/bomb.gif')}: failed: ")
        and "--max-pixels" in lines[0]
    )
    assert (tmp_path / "out/ok.png").exists() and not (tmp_path / "out/bomb.gif").exists()
    assert "1 labeled" in done.stdout and "1 failed" in done.stdout
    (tmp_path / "out/ok.png").unlink()
    for jobs in ("1", "2"):  # in this process and in worker processes
        done = _apply(tmp_path, "--max-pixels", "3071", "-j", jobs, env={"LABELER_MAX_PIXELS": "999999999"})
        assert done.returncode == 1 and "0 labeled" in done.stdout and "2 failed" in done.stdout
        assert "max_pixels of 3,071" in done.stderr
    done = _apply(tmp_path, "--max-pixels", "nope")
    assert done.returncode == 2 and "--max-pixels" in done.stderr
