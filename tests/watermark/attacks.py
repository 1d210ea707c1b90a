"""The platform attacks of issue 16, with Pillow only, and photo-like test pictures (shared by
tests/test_watermark.py and benchmarks/bench_watermark.py)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance

Attack = Callable[[Image.Image], Image.Image]


def _reencode(img: Image.Image, fmt: str, **kw: object) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def jpeg(q: int) -> Attack:
    return lambda img: _reencode(img, "JPEG", quality=q)


def webp(q: int) -> Attack:
    return lambda img: _reencode(img, "WEBP", quality=q)


def resize(f: float) -> Attack:
    def run(img: Image.Image) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BICUBIC)

    return run


def crop_sides(frac: float) -> Attack:
    def run(img: Image.Image) -> Image.Image:
        w, h = img.size
        dx, dy = round(w * frac), round(h * frac)
        return img.crop((dx, dy, w - dx, h - dy))

    return run


def crop_area(area: float, seed: int = 7) -> Attack:
    def run(img: Image.Image) -> Image.Image:
        w, h = img.size
        side = area**0.5
        cw, ch = round(w * side), round(h * side)
        rng = np.random.default_rng(seed)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return img.crop((x0, y0, x0 + cw, y0 + ch))

    return run


def rotate(deg: float) -> Attack:
    """Rotate and crop the corners away (what an editor's straighten tool does)."""

    def run(img: Image.Image) -> Image.Image:
        w, h = img.size
        out = img.rotate(deg, resample=Image.Resampling.BICUBIC, expand=False)
        m = int(np.ceil(max(w, h) * np.sin(np.radians(abs(deg))))) + 1
        return out.crop((m, m, w - m, h - m))

    return run


def brightness_contrast(b: float, c: float) -> Attack:
    def run(img: Image.Image) -> Image.Image:
        return ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(b)).enhance(c)

    return run


def screenshot(f: float = 0.8) -> Attack:
    def run(img: Image.Image) -> Image.Image:
        return _reencode(resize(f)(img), "PNG")

    return run


def chain(*attacks: Attack) -> Attack:
    def run(img: Image.Image) -> Image.Image:
        for a in attacks:
            img = a(img)
        return img

    return run


ATTACKS: dict[str, Attack] = {
    "none": lambda img: img,
    "jpeg q50": jpeg(50),
    "webp q60": webp(60),
    "resize 0.5x": resize(0.5),
    "crop 10% each side": crop_sides(0.10),
    "crop to 50% area": crop_area(0.5),
    "rotate 2 deg": rotate(2.0),
    "brightness/contrast +15%": brightness_contrast(1.15, 1.15),
    "brightness/contrast -15%": brightness_contrast(0.85, 0.85),
    "rescale 0.8x PNG": screenshot(0.8),
    "chain: crop 10%, 0.8x, jpeg q50": chain(crop_sides(0.10), resize(0.8), jpeg(50)),
}


def synthetic_scene(seed: int, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A photo-like picture: smooth lighting gradients, soft shapes, fine texture and sensor
    noise (no flat areas a mark could not hide in, no pure noise either)."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    base = rng.uniform(40, 200, 3)
    gx, gy = rng.uniform(-0.15, 0.15, 2)
    img += base + (gx * xx + gy * yy)[..., None]
    for _ in range(int(rng.integers(5, 12))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rad = rng.uniform(20, min(w, h) / 2)
        col = rng.uniform(-70, 70, 3)
        d = np.hypot(xx - cx, yy - cy)
        img += col * (1 / (1 + np.exp(np.clip((d - rad) / rng.uniform(1.5, 8), -50, 50))))[..., None]
    # texture: band-limited noise at a few scales
    for sigma, amp in ((8, 14), (2.5, 8), (1.0, 5)):
        n = rng.normal(0, 1, (h, w)).astype(np.float32)
        from scipy import ndimage

        n = ndimage.gaussian_filter(n, sigma)
        n *= amp / (n.std() + 1e-6)
        img += n[..., None] * rng.uniform(0.6, 1.0, 3)
    img += rng.normal(0, 1.5, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def sample_pictures() -> list[tuple[str, Image.Image]]:
    """scikit-image's bundled photos when installed (colour, >= 256 px), else nothing."""
    try:
        from skimage import data
    except ImportError:
        return []
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "motorcycle"):
        try:
            arr = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        except Exception:
            continue
        img = Image.fromarray(arr)
        out.append((name, img.convert("RGB")))
    return out
