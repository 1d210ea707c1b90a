"""Visible labels, judged on pixels: where the plate is, how tall the text is, contrast."""

from __future__ import annotations

import io
import math
import struct
import zlib

import pytest
from conftest import SAMPLES, encode, make_image, pixels
from PIL import Image, ImageChops, ImageSequence

from labeler import LabelPolicy, Status, TrustStore, verify
from labeler.errors import DecodeBudgetError, MalformedFileError
from labeler.explicit.image import BUNDLED_FONT, Placement, VisibleStyle, draw_label, label_geometry
from labeler.labeling import label_image

SIZES = [(1024, 1024), (640, 480), (480, 1600), (3000, 200), (200, 3000), (32, 32), (20000, 15000)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("text", ["AI生成", "AI-generated", "人工智能生成"])
def test_ink_height_is_at_least_5_percent_of_shortest_side_and_minimal(
    size: tuple[int, int], text: str
) -> None:
    style = VisibleStyle()
    box = label_geometry(size, text, style)
    required = math.ceil(min(size) * 0.05)
    assert box.required_height == required
    assert box.text_height >= required
    x0, y0, x1, y1 = box.plate
    assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
    if min(size) * 0.05 >= style.min_text_px:  # no legibility floor in play: the size is the smallest
        from labeler.explicit.image import _ink

        _, top, _, bottom = _ink(text, None, box.font_size - 1)
        assert bottom - top < required


@pytest.mark.parametrize("placement", list(Placement))
def test_every_placement_is_on_an_edge_or_corner(placement: Placement) -> None:
    w, h = 800, 600
    x0, y0, x1, y1 = label_geometry((w, h), "AI生成", VisibleStyle(placement=placement)).plate
    margin = round(600 * 0.02)
    touches = {
        "left": x0 == margin,
        "right": x1 == w - margin,
        "top": y0 == margin,
        "bottom": y1 == h - margin,
    }
    for side in ("left", "right", "top", "bottom"):
        assert touches[side] == (side in placement.value), (placement, touches)
    if placement in (Placement.TOP, Placement.BOTTOM):
        assert abs((x0 + x1) / 2 - w / 2) <= 1
    if placement in (Placement.LEFT, Placement.RIGHT):
        assert abs((y0 + y1) / 2 - h / 2) <= 1


def _rgb_pixels(img: Image.Image) -> list[tuple[int, int, int]]:
    raw = img.convert("RGB").tobytes()
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]


def _luminance(rgb: tuple[int, ...]) -> float:
    def lin(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = rgb[:3]
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 0, 0), (255, 230, 0), "noise"])
def test_drawn_label_pixels_box_height_and_contrast(background: object) -> None:
    w, h = 900, 700
    img = make_image((w, h), seed=9) if background == "noise" else Image.new("RGB", (w, h), background)  # type: ignore[arg-type]
    before = img.copy()
    box = draw_label(img, "AI生成", VisibleStyle())
    changed = ImageChops.difference(before, img).getbbox()
    assert changed is not None
    x0, y0, x1, y1 = box.plate
    # nothing outside the plate changed
    assert x0 <= changed[0] and y0 <= changed[1] and changed[2] <= x1 and changed[3] <= y1
    plate = img.crop(box.plate)
    # rows where the white text covers at least half a pixel: the visible ink height
    plate_level = plate.convert("L").getextrema()[0]
    mask = plate.convert("L").point(lambda v: 255 if v >= (plate_level + 255) / 2 else 0)
    ink = mask.getbbox()
    assert ink is not None
    assert ink[3] - ink[1] >= math.ceil(min(w, h) * 0.05) == box.required_height
    # contrast: white text against the brightest plate pixel (the padding strip holds no glyphs)
    pad_strip = img.crop((x0, y0, x1, y0 + (box.text_origin[1] - y0) // 2))
    worst_plate = max(_rgb_pixels(pad_strip), key=_luminance)
    ratio = (1.05) / (_luminance(worst_plate) + 0.05)
    assert ratio >= 4.5, (worst_plate, ratio)


def test_second_line_shows_filing_number_and_is_dropped_when_it_cannot_fit() -> None:
    with_line = label_geometry((800, 600), "AI生成", VisibleStyle(), second="网信算备110108823483901230031号")
    assert with_line.second_line is not None
    narrow = label_geometry((60, 400), "AI生成", VisibleStyle(), second="网信算备110108823483901230031号")
    assert narrow.second_line is None


def test_style_refuses_less_than_5_percent() -> None:
    with pytest.raises(ValueError, match=r"0\.05"):
        VisibleStyle(height_ratio=0.04)


def test_custom_font_path() -> None:
    from importlib import resources

    path = str(resources.files("labeler.fonts") / BUNDLED_FONT)
    box = label_geometry((640, 480), "AI生成", VisibleStyle(font_path=path))
    assert box.text_height >= 24
    from labeler.errors import UnsupportedFormatError

    with pytest.raises(UnsupportedFormatError, match="cannot load font"):
        label_geometry((640, 480), "AI生成", VisibleStyle(font_path="/nonexistent.ttf"))


# -- whole files --------------------------------------------------------------------------------


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    "name",
    [
        "jpeg",
        "jpeg-exif-icc-xmp",
        "png",
        "png-rgba",
        "webp-lossy",
        "webp-lossless-alpha",
        "gif",
        "gif-animated",
    ],
)
def test_label_image_end_to_end(name: str, policy: LabelPolicy, trust: TrustStore) -> None:
    data = SAMPLES[name]
    out = label_image(data, policy)
    assert verify(out, trust).status is Status.VERIFIED
    before, after = _open(data), _open(out)
    assert after.format == before.format and after.size == before.size
    box = label_geometry(before.size, policy.label_text, policy.visible)
    frames = list(ImageSequence.Iterator(after))
    assert len(frames) == getattr(before, "n_frames", 1)
    for frame in frames:  # every frame carries the dark plate
        plate = frame.convert("RGB").crop(box.plate)
        dark = sum(1 for p in _rgb_pixels(plate) if max(p) < 140)
        assert dark > 0.4 * plate.width * plate.height
    if name == "png-rgba":  # alpha kept outside the plate
        a0, a1 = before.getchannel("A"), after.getchannel("A")
        outside = Image.new("L", before.size, 255)
        outside.paste(0, box.plate)
        assert ImageChops.multiply(ImageChops.difference(a0, a1), outside).getbbox() is None
    if name.startswith("png") or name == "webp-lossless-alpha":  # lossless: only the plate changed
        diff = ImageChops.difference(before.convert("RGBA"), after.convert("RGBA")).getbbox(alpha_only=False)
        assert diff is not None and box.plate[0] <= diff[0] and diff[2] <= box.plate[2]


def test_jpeg_keeps_quantisation_exif_icc_and_foreign_xmp(policy: LabelPolicy) -> None:
    data = SAMPLES["jpeg-exif-icc-xmp"]
    out = label_image(data, policy)
    before, after = _open(data), _open(out)
    assert after.quantization == before.quantization  # quality="keep"
    assert after.info["icc_profile"] == before.info["icc_profile"]
    assert after.getexif()[0x010F] == "GenCam"
    assert b"Jane Doe" in after.info["xmp"] and b"TC260:AIGC" in after.info["xmp"]


def test_jpeg_with_exif_orientation_gets_the_label_where_the_viewer_sees_bottom_right(
    policy: LabelPolicy,
) -> None:
    from PIL import ImageOps

    img = Image.new("RGB", (400, 300), (255, 255, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # stored landscape, shown rotated to portrait
    out = label_image(encode(img, "JPEG", exif=exif.tobytes()), policy)
    shown = ImageOps.exif_transpose(_open(out))
    assert shown.size == (300, 400)
    dark = shown.convert("L").point(lambda v: 255 if v < 140 else 0).getbbox()
    assert dark is not None and dark[2] > 250 and dark[3] > 350  # bottom-right as displayed


def test_policy_visible_settings_from_toml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.toml").write_text(
        '[labeler]\nprovider_name = "A"\nfiling_numbers = ["Beijing-YunQue-20230821"]\n'
        '[labeler.visible]\nplacement = "top-left"\nshow_filing_number = true\nheight_ratio = 0.08\n'
    )
    policy = LabelPolicy.from_toml(tmp_path / "c.toml")
    assert policy.visible.placement is Placement.TOP_LEFT and policy.filing_line == "Beijing-YunQue-20230821"
    (tmp_path / "bad.toml").write_text(
        '[labeler]\nprovider_name = "A"\n[labeler.visible]\nheight_ratio = 0.01\n'
    )
    from labeler.errors import ConfigError

    with pytest.raises(ConfigError, match=r"0\.05"):
        LabelPolicy.from_toml(tmp_path / "bad.toml")


def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(SAMPLES["png"])
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


def test_decompression_bomb_is_refused_with_a_typed_error(policy: LabelPolicy) -> None:
    with pytest.raises(DecodeBudgetError, match="refused as a possible decompression bomb"):
        label_image(_png_claiming(40_000, 40_000), policy)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's guard stays on


def test_broken_image_is_a_typed_error(policy: LabelPolicy) -> None:
    with pytest.raises(MalformedFileError):
        label_image(SAMPLES["jpeg"][:400], policy)


@pytest.mark.parametrize("sample", ["jpeg", "png-rgba", "webp-lossy", "gif", "gif-animated"])
def test_a_pixel_pass_runs_in_the_same_re_encode_before_the_label(sample: str) -> None:
    """The watermark's hook: given each still frame before the plate is drawn (GIF never: its
    palette would quantise the change away); an identity pass changes nothing at all."""
    from labeler.explicit.image import render_visible_label

    seen: list[tuple[str, tuple[int, int]]] = []

    def identity(img: Image.Image) -> Image.Image:
        seen.append((img.mode, img.size))
        return img

    data, style = SAMPLES[sample], VisibleStyle()
    with_pass = render_visible_label(data, "AI生成", style, mark=identity)
    assert with_pass == render_visible_label(data, "AI生成", style)
    assert seen == ([] if sample.startswith("gif") else [(seen[0][0], (64, 48))])


def test_a_new_picture_from_the_pass_keeps_the_jpeg_tables_and_text_none_draws_nothing() -> None:
    from labeler.explicit.image import render_visible_label

    source = SAMPLES["jpeg"]
    out = render_visible_label(source, None, VisibleStyle(), mark=lambda img: img.copy())
    with Image.open(io.BytesIO(source)) as a, Image.open(io.BytesIO(out)) as b:
        assert a.quantization == b.quantization  # type: ignore[attr-defined]
        kept = io.BytesIO()
        a.save(kept, "JPEG", quality="keep")  # Pillow's own "keep", nothing drawn: the same pixels
        assert pixels(kept.getvalue()) == pixels(out)
