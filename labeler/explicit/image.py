"""Visible (explicit) image labels: the rules of GB 45438 for pictures.

* on an EDGE or CORNER (bottom-right by default; any corner or edge midpoint);
* text height >= 5% of the picture's SHORTEST side: the *ink* height of the rendered label, found
  by searching font sizes, not estimated from a point size;
* legible on any background: white text on a translucent dark plate (contrast >= 4.5:1 even on
  pure white at the default opacity);
* CJK glyphs from a bundled Noto Sans CJK SC subset (OFL), or a font of your choice.

Geometry is a pure function of (image size, text, style); drawing touches only the plate
region, so a JPEG can be re-saved with its own quantisation tables (``quality="keep"``).

Decoding has a budget (``max_pixels``, ``max_frame_pixels``, ``max_frames``): frames x width x
height, read from the file's header and blocks *before* Pillow decodes or allocates anything, so a
small file that declares a huge canvas or thousands of frames is refused with
:class:`~labeler.errors.DecodeBudgetError` instead of taking the host's memory.
"""

from __future__ import annotations

import functools
import io
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from PIL import (
    GifImagePlugin,
    Image,
    ImageDraw,
    ImageFile,
    ImageFont,
    ImageOps,
    ImageSequence,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

from ..errors import DecodeBudgetError, LabelTooLargeError, MalformedFileError, UnsupportedFormatError
from .styles import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, Placement, VisibleStyle

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "LabelBox",
    "PixelPass",
    "Placement",
    "VisibleStyle",
    "check_decode_budget",
    "decode_picture",
    "draw_label",
    "label_geometry",
    "render_visible_label",
]

BUNDLED_FONT = "NotoSansCJKsc-Bold-labeler-subset.otf"


@dataclass(frozen=True)
class LabelBox:
    """Where the label goes, in pixels. ``text_height`` is the ink height of the label text."""

    font_size: int
    text_height: int
    required_height: int
    plate: tuple[int, int, int, int]  #: left, top, right, bottom (exclusive)
    text_origin: tuple[int, int]  #: where the label text's ink box starts
    second_line: tuple[int, int, int] | None  #: (font size, x, y) of the filing-number line


@functools.lru_cache(maxsize=256)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    if path is None:
        with resources.as_file(resources.files("labeler.fonts") / BUNDLED_FONT) as bundled:
            return ImageFont.truetype(str(bundled), size)
    try:
        return ImageFont.truetype(path, size)
    except OSError as exc:
        raise UnsupportedFormatError(f"cannot load font {path}: {exc}") from None


@functools.lru_cache(maxsize=1024)
def _ink(text: str, path: str | None, size: int) -> tuple[int, int, int, int]:
    """The box of pixels the rendered text covers at least half (FreeType's own bbox counts
    faint antialiased rows and overstates the visible height by a pixel or two)."""
    font = _font(path, size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    canvas = Image.new("L", (right - left + 2, bottom - top + 2))
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), text, font=font, fill=255)
    box = canvas.point(lambda v: 255 if v >= 128 else 0).getbbox()
    if box is None:
        return (left, top, left, top)
    return (left + box[0] - 1, top + box[1] - 1, left + box[2] - 1, top + box[3] - 1)


def _size_for(text: str, path: str | None, height: int) -> int:
    """Smallest font size whose ink height for ``text`` is >= ``height`` px."""

    def ink_height(size: int) -> int:
        _, top, _, bottom = _ink(text, path, size)
        return bottom - top

    size = max(1, math.ceil(height * height / max(1, ink_height(max(1, height)))))
    while ink_height(size) < height:  # converge upwards from the estimate...
        size += 1
    while size > 1 and ink_height(size - 1) >= height:  # ...then make sure it is the smallest
        size -= 1
    return size


def _plate_origin(size: tuple[int, int], plate: tuple[int, int], style: VisibleStyle) -> tuple[int, int]:
    """Top-left corner of a plate of ``plate`` (w, h) at the style's edge or corner."""
    (width, height), (plate_w, plate_h) = size, plate
    margin = max(1, round(min(width, height) * style.margin_ratio))
    p = style.placement.value
    if "left" in p:
        x = margin
    elif "right" in p:
        x = width - margin - plate_w
    else:
        x = (width - plate_w) // 2
    if p.startswith("top"):
        y = margin
    elif p.startswith("bottom"):
        y = height - margin - plate_h
    else:
        y = (height - plate_h) // 2
    return x, y


def _layout(
    size: tuple[int, int], text: str, style: VisibleStyle, second: str | None, text_height: int, required: int
) -> LabelBox:
    """The label's box with its text at ``text_height`` px of ink (fitting or not)."""
    font_size = _size_for(text, style.font_path, text_height)
    left, top, right, bottom = _ink(text, style.font_path, font_size)
    ink_h = bottom - top
    pad = max(1, round(ink_h * 0.3))
    inner_w, inner_h = right - left, ink_h
    line2 = None
    if second:
        size2 = max(style.min_text_px, round(font_size * 0.55))
        left2, top2, right2, bottom2 = _ink(second, style.font_path, size2)
        gap = max(1, round(pad * 0.6))
        line2 = (size2, left2, top2, gap)
        inner_w = max(inner_w, right2 - left2)
        inner_h += gap + (bottom2 - top2)
    plate_w, plate_h = inner_w + 2 * pad, inner_h + 2 * pad
    x, y = _plate_origin(size, (plate_w, plate_h), style)
    second_line = None
    if line2 is not None:
        size2, left2, top2, gap = line2
        second_line = (size2, x + pad - left2, y + pad + ink_h + gap - top2)
    return LabelBox(
        font_size=font_size,
        text_height=ink_h,
        required_height=required,
        plate=(x, y, x + plate_w, y + plate_h),
        text_origin=(x + pad, y + pad),
        second_line=second_line,
    )


def _fits(box: LabelBox, size: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = box.plate
    return x0 >= 0 and y0 >= 0 and x1 <= size[0] and y1 <= size[1]


def label_geometry(
    size: tuple[int, int], text: str, style: VisibleStyle, second: str | None = None
) -> LabelBox:
    """Place ``text`` (and an optional smaller ``second`` line) on a picture of ``size``: the
    style's text height if it fits, else the largest that fits down to the required 5%."""
    width, height = size
    required = max(1, math.ceil(min(width, height) * style.height_ratio - 1e-9))
    wanted = max(required, style.min_text_px)

    def layout(text_height: int) -> LabelBox:
        return _layout(size, text, style, second, text_height, required)

    box = layout(wanted)
    if not _fits(box, size) and wanted > required:
        lo, hi = required, wanted  # largest text height in [required, wanted) that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _fits(layout(mid), size):
                lo = mid
            else:
                hi = mid - 1
        box = layout(lo)
    if not _fits(box, size) and second:  # the optional filing-number line goes first, never the label
        return label_geometry(size, text, style, None)
    if not _fits(box, size):
        raise LabelTooLargeError(
            f"label {text!r} at the required {required}px text height does not fit a {width}x{height} picture"
        )
    return box


@functools.lru_cache(maxsize=32)
def _plate(
    size: tuple[int, int],
    opacity: int,
    text: str,
    font_path: str | None,
    font_size: int,
    origin: tuple[int, int],
    line2: tuple[str, int, int, int] | None,
) -> Image.Image:
    """The label's plate and text as an RGBA overlay, drawn once per geometry (a service's
    pictures mostly share a size and always their text; rendering the text was half of
    drawing the label). Only read after: ``alpha_composite`` makes a new picture."""
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, 0, size[0], size[1]), fill=(0, 0, 0, opacity))
    draw.text(origin, text, font=_font(font_path, font_size), fill=(255, 255, 255, 255))
    if line2 is not None:
        second, size2, x, y = line2
        draw.text((x, y), second, font=_font(font_path, size2), fill=(255, 255, 255, 255))
    overlay.readonly = True
    return overlay


def draw_label(img: Image.Image, text: str, style: VisibleStyle, second: str | None = None) -> LabelBox:
    """Draw the label onto ``img`` in place (only the plate region changes). Returns its box.
    ``img`` must be RGB, RGBA, L, LA or CMYK (callers convert palette images first)."""
    if img.mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        raise ValueError(f"draw_label needs a non-palette image, got mode {img.mode}")
    box = label_geometry(img.size, text, style, second)
    x0, y0 = box.plate[:2]
    region = img.crop(box.plate).convert("RGBA")
    left, top, _, _ = _ink(text, style.font_path, box.font_size)
    origin = (box.text_origin[0] - x0 - left, box.text_origin[1] - y0 - top)
    line2 = None
    if second and box.second_line:
        size2, sx, sy = box.second_line
        line2 = (second, size2, sx - x0, sy - y0)
    overlay = _plate(
        region.size, round(255 * style.plate_opacity), text, style.font_path, box.font_size, origin, line2
    )
    composed = Image.alpha_composite(region, overlay)
    img.paste(composed if img.mode == "RGBA" else composed.convert(img.mode), (x0, y0))
    return box


# -- whole files ------------------------------------------------------------------------------


_BOMB = "refused as a possible decompression bomb"


def check_decode_budget(
    width: int, height: int, frames: int, style: VisibleStyle, what: str = "picture", *, partial: bool = False
) -> None:
    """Raise :class:`DecodeBudgetError` if ``frames`` frames of ``width`` x ``height`` would
    decode to more than ``style`` allows. ``partial``: counting stopped early, frames is a floor.

    Call it with the header's numbers before decoding or allocating pixels."""
    frame = max(1, width) * max(1, height)
    limit = style.frame_pixel_limit
    if limit is not None and frame > limit:
        raise DecodeBudgetError(
            f"{what} {width}x{height} = {frame:,} pixels per frame is over max_frame_pixels of {limit:,} "
            f"({_BOMB}; the default is Pillow's MAX_IMAGE_PIXELS); if you trust it, raise "
            "[labeler.visible] max_frame_pixels or LABELER_MAX_FRAME_PIXELS"
        )
    count = f"at least {frames}" if partial else str(frames)
    if frames > style.max_frames:
        raise DecodeBudgetError(
            f"{what} has {count} frames, over max_frames of {style.max_frames:,} ({_BOMB}); "
            "if you trust it, raise [labeler.visible] max_frames or LABELER_MAX_FRAMES"
        )
    if frame * frames > style.max_pixels:
        raise DecodeBudgetError(
            f"{what} {width}x{height} x {count} frames = {frame * frames:,} pixels to decode is over the "
            f"decode budget max_pixels of {style.max_pixels:,} ({_BOMB}); if you trust it, raise "
            "[labeler.visible] max_pixels, LABELER_MAX_PIXELS or `labeler apply --max-pixels`"
        )


_GIF_BLOCK = re.compile(rb"[!,;]")


def _gif_sub_block(data: bytes, pos: int) -> tuple[bool, int]:
    """Pillow's ``GifImageFile.data()``: (whether a non-empty sub-block was read, next position)."""
    if pos >= len(data) or data[pos] == 0:
        return False, min(pos + 1, len(data))
    return pos + 1 < len(data), pos + 1 + data[pos]


def _gif_cost(data: bytes, style: VisibleStyle) -> None:
    """Check a GIF's canvas and frames as Pillow will decode them, from its blocks alone.

    The walk mirrors ``GifImagePlugin`` step for step, quirks included (unknown bytes skipped; an
    extension whose first sub-block is empty makes Pillow read the next byte as a length): a
    walker that parsed GIF "correctly" could be shown one small frame while Pillow finds a huge
    one. Each frame is decoded at the full canvas, and a frame reaching past it grows it.
    Stops as soon as over budget, so counting costs no more than the budget allows."""
    if len(data) < 13:
        raise MalformedFileError("GIF header is truncated")
    width, height = struct.unpack_from("<HH", data, 6)
    check_decode_budget(width, height, 1, style, "GIF")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames = 0
    while (found := _GIF_BLOCK.search(data, pos)) is not None:
        pos = found.start()
        if data[pos] == 0x3B:  # trailer
            break
        if data[pos] == 0x21:  # extension
            if pos + 1 >= len(data):
                break
            label, first = data[pos + 1], pos + 3  # where the first sub-block's bytes start
            block, pos = _gif_sub_block(data, pos + 2)
            if label == 0xFE:  # comment: read up to its terminator, nothing more
                while block:
                    block, pos = _gif_sub_block(data, pos)
                continue
            if label == 0xFF and frames == 0 and block and data.startswith(b"NETSCAPE2.0", first, pos):
                _, pos = _gif_sub_block(data, pos)
            while True:  # Pillow's "while self.data(): pass", also after an empty first sub-block
                block, pos = _gif_sub_block(data, pos)
                if not block:
                    break
            continue
        if pos + 9 > len(data):
            break
        x, y, w, h = struct.unpack_from("<HHHH", data, pos + 1)  # Pillow grows the canvas by these...
        width, height, frames = max(width, x + w), max(height, y + h), frames + 1
        check_decode_budget(width, height, frames, style, "GIF", partial=True)
        if pos + 10 > len(data):  # ...even when the flags byte after them is missing
            break
        local = data[pos + 9]
        pos += 11 + (3 << ((local & 7) + 1) if local & 0x80 else 0)  # + the LZW code size byte
        block = True
        while block:  # the image data
            block, pos = _gif_sub_block(data, pos)


def _webp_cost(data: bytes, style: VisibleStyle) -> None:
    """Check a WebP's canvas and frames from its RIFF chunks: Pillow's WebP decoder allocates the
    canvas (twice) as soon as the file is opened, so this runs before Pillow sees the file."""
    from ..formats import webp

    chunks, _ = webp.walk(data)
    if not chunks:
        raise MalformedFileError("WebP has no chunks")
    first = chunks[0].payload(data)
    kind = chunks[0].fourcc
    if kind == b"VP8X" and len(first) >= 10:
        width = int.from_bytes(first[4:7], "little") + 1
        height = int.from_bytes(first[7:10], "little") + 1
    elif kind == b"VP8 " and len(first) >= 10 and first[3:6] == b"\x9d\x01\x2a":
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", first, 6))
    elif kind == b"VP8L" and len(first) >= 5 and first[0] == 0x2F:
        (bits,) = struct.unpack_from("<I", first, 1)
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise MalformedFileError(f"WebP starts with a broken {kind!r} chunk")
    frames = sum(1 for c in chunks if c.fourcc == b"ANMF")
    check_decode_budget(width, height, max(1, frames), style, "WebP")


_OPENERS: dict[str, Any] = {
    "JPEG": JpegImagePlugin.jpeg_factory,  # may answer MPO, which we do not label
    "PNG": PngImagePlugin.PngImageFile,
    "GIF": GifImagePlugin.GifImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}


def _sniff(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise UnsupportedFormatError("visible labels are drawn on JPEG, PNG, GIF and WebP pictures only")


def _bomb(exc: Image.DecompressionBombError) -> DecodeBudgetError:
    return DecodeBudgetError(
        f"{_BOMB} by Pillow: {exc} (its hard limit is 2 x PIL.Image.MAX_IMAGE_PIXELS, "
        "which the LABELER_ settings do not raise)"
    )


def _open(data: bytes, style: VisibleStyle) -> Image.Image:
    """Open lazily and check the budget, then decode the first frame.

    The format's own Pillow plugin is called directly rather than through ``Image.open``: our
    budget replaces Pillow's open-time guard, which only *warns* between MAX_IMAGE_PIXELS and
    twice that, and could not be raised per call (it is a process-wide global)."""
    fmt = _sniff(data)
    if fmt == "GIF":
        _gif_cost(data, style)
    elif fmt == "WEBP":
        _webp_cost(data, style)
    try:
        img: ImageFile.ImageFile = _OPENERS[fmt](io.BytesIO(data), "")
        if img.format != fmt:
            raise UnsupportedFormatError(f"no visible labels for {img.format} images")
        check_decode_budget(*img.size, getattr(img, "n_frames", 1) if fmt == "WEBP" else 1, style, fmt)
        img.load()
    except Image.DecompressionBombError as exc:
        raise _bomb(exc) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise MalformedFileError(f"cannot decode image: {exc}") from None
    return img


def _is_lossless_webp(data: bytes) -> bool:
    return b"VP8L" in data[12:64] and b"VP8 " not in data[12:64]


#: A pass over a decoded picture in the label's re-encode (the invisible watermark): it gets
#: the frame (RGB, RGBA or L) and returns the one to save, or the same one untouched.
PixelPass = Callable[[Image.Image], Image.Image]


def decode_picture(data: bytes, style: VisibleStyle) -> Image.Image:
    """The first frame of a JPEG, PNG, GIF or WebP, decoded within ``style``'s decode budget
    (for readers of the pixels, such as the watermark detector)."""
    return _open(data, style)


def render_visible_label(
    data: bytes,
    text: str | None,
    style: VisibleStyle,
    second: str | None = None,
    *,
    mark: PixelPass | None = None,
) -> bytes:
    """Decode, draw the label on every frame, re-encode in the same format keeping EXIF, ICC
    and XMP (the implicit label is applied afterwards, on these final bytes).

    ``mark`` runs on each frame before the label is drawn, in the same re-encode (one loss, not
    two; the label's own pixels stay exactly as drawn). ``text=None`` draws nothing: the
    picture is re-encoded for ``mark`` alone. GIF frames are never given to ``mark``: their
    palette would quantise an invisible change away."""

    def paint(img: Image.Image, marked: bool = True) -> Image.Image:
        if mark is not None and marked and img.mode in ("RGB", "RGBA", "L"):
            img = mark(img)
        if text is not None:
            draw_label(img, text, style, second)
        return img

    img = _open(data, style)
    fmt = img.format
    info = img.info
    keep: dict[str, Any] = {k: info[k] for k in ("icc_profile", "exif") if info.get(k)}
    if info.get("xmp"):
        keep["xmp"] = info["xmp"]
    out = io.BytesIO()
    if fmt == "JPEG":
        orientation = img.getexif().get(0x0112, 1)
        if orientation != 1:  # draw upright as shown; the orientation is baked into pixels
            img = ImageOps.exif_transpose(img)
            keep["exif"] = img.info.get("exif", b"") or img.getexif().tobytes()
            quality: int | str = 92 if style.jpeg_quality == "keep" else style.jpeg_quality
        else:
            quality = style.jpeg_quality
        if img.mode not in ("RGB", "L", "CMYK"):
            img = img.convert("RGB")
        source, img = img, paint(img)
        extra: dict[str, Any] = {"subsampling": "keep"} if quality == "keep" else {}
        if quality == "keep" and img is not source:  # Pillow's "keep", for a new (marked) image
            quality, extra = -1, {"qtables": getattr(source, "quantization", None)}
            if (sampling := JpegImagePlugin.get_sampling(source)) != -1:
                extra["subsampling"] = sampling
        img.save(out, "JPEG", quality=quality, **extra, **keep)
    elif fmt == "PNG":
        from PIL import PngImagePlugin

        pnginfo = PngImagePlugin.PngInfo()
        for key, value in info.items():  # text chunks, XML:com.adobe.xmp included, survive
            if isinstance(key, str) and isinstance(value, str) and key != "xmp":
                pnginfo.add_itxt(key, value)
        keep.pop("xmp", None)
        if img.mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA")
        img = paint(img)
        img.save(out, "PNG", pnginfo=pnginfo, optimize=False, **keep)
    elif fmt in ("GIF", "WEBP") and getattr(img, "n_frames", 1) > 1:
        frames, durations = [], []
        try:  # frame by frame: each one within the budget checked above
            for frame in ImageSequence.Iterator(img):
                rgba = paint(frame.convert("RGBA"), marked=fmt == "WEBP")
                frames.append(rgba)
                durations.append(frame.info.get("duration", info.get("duration", 100)))
        except Image.DecompressionBombError as exc:
            raise _bomb(exc) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
            raise MalformedFileError(f"cannot decode frame {len(frames)}: {exc}") from None
        params: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": durations}
        if "loop" in info:  # absent means "play once"; loop=0 would mean "forever"
            params["loop"] = info["loop"]
        if fmt == "WEBP":
            params.update(lossless=_is_lossless_webp(data), quality=style.webp_quality, **keep)
        else:
            params["disposal"] = 2
        frames[0].save(out, fmt, **params)
    elif fmt == "GIF":
        rgba = paint(img.convert("RGBA"), marked=False)
        rgba.save(out, "GIF")
    elif fmt == "WEBP":
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA")
        img = paint(img)
        img.save(out, "WEBP", lossless=_is_lossless_webp(data), quality=style.webp_quality, **keep)
    else:
        raise UnsupportedFormatError(f"no visible labels for {fmt} images")
    return out.getvalue()
