"""The video explicit label: burnt into the opening >= 2 s, measured on decoded frames."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from media import FFMPEG, decodes, ffprobe_tags, make_video, needs_ffmpeg
from PIL import Image

from labeler import LabelPolicy, Status, TrustStore, verify
from labeler.errors import ToolNotFoundError
from labeler.explicit.image import label_geometry
from labeler.explicit.styles import MIN_HEIGHT_RATIO
from labeler.explicit.video import add_video_label
from labeler.labeling import label_content

pytestmark = [needs_ffmpeg, pytest.mark.slow]


def _frame(path: Path, seconds: float) -> Image.Image:
    assert FFMPEG is not None
    png = subprocess.run(
        [FFMPEG, "-v", "error", "-ss", str(seconds), "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
         "-vcodec", "png", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return Image.open(io.BytesIO(png)).convert("RGB")


def _diff(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    pa, pb = a.crop(box).get_flattened_data(), b.crop(box).get_flattened_data()
    return sum(abs(x - y) for p, q in zip(pa, pb, strict=True) for x, y in zip(p, q, strict=True)) / (
        3 * len(pa)
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    tmp = tmp_path_factory.mktemp("video")
    return tmp, make_video(tmp, "src.mp4", 3.2, "480x270")


def test_label_on_the_opening_two_seconds_only(clip: tuple[Path, bytes], policy: LabelPolicy) -> None:
    tmp, data = clip
    out = add_video_label(data, policy.label_text, policy.visible)
    (tmp / "labeled.mp4").write_bytes(out)
    (tmp / "src.mp4").write_bytes(data)
    box = label_geometry((480, 270), policy.label_text, policy.visible)
    assert box.text_height >= MIN_HEIGHT_RATIO * 270
    for t in (0.0, 1.0, 1.9):
        assert _diff(_frame(tmp / "labeled.mp4", t), _frame(tmp / "src.mp4", t), box.plate) > 40, t
    # after 2 s the picture is the source again (up to re-encoding noise), label region included
    assert _diff(_frame(tmp / "labeled.mp4", 2.5), _frame(tmp / "src.mp4", 2.5), box.plate) < 6
    # white ink on the dark plate where the text is
    ink = _frame(tmp / "labeled.mp4", 1.0).crop(box.plate).convert("L")
    assert (
        max(ink.get_flattened_data()) > 200
        and max(ink.get_flattened_data()) - min(ink.get_flattened_data()) > 150
    )
    assert decodes(tmp / "labeled.mp4")


def test_label_content_adds_the_visible_and_the_signed_label(
    clip: tuple[Path, bytes], policy: LabelPolicy, trust: TrustStore
) -> None:
    tmp, data = clip
    out = label_content(data, policy)
    assert verify(out, trust).status is Status.VERIFIED
    (tmp / "full.mp4").write_bytes(out)
    assert "AIGC" in ffprobe_tags(tmp / "full.mp4")


def test_shorter_than_two_seconds_is_refused(clip: tuple[Path, bytes], policy: LabelPolicy) -> None:
    with pytest.raises(ValueError, match=r">= 2\.0 s"):
        add_video_label(clip[1], policy.label_text, policy.visible, seconds=1.5)


def test_without_ffmpeg_the_error_says_so(
    clip: tuple[Path, bytes], policy: LabelPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELER_FFPROBE", "/nonexistent/ffprobe")
    with pytest.raises(ToolNotFoundError, match="needs ffprobe"):
        label_content(clip[1], policy)
    # the implicit label alone needs no ffmpeg at all
    assert verify(label_content(clip[1], policy, visible=False)).label_present
