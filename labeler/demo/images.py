"""Procedural "generated" images for the demo: deterministic for a prompt, no model weights."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageDraw


def generate_image(prompt: str, size: tuple[int, int] = (1024, 1024), fmt: str = "JPEG") -> bytes:
    """A colourful, deterministic image derived from ``prompt``, encoded as ``fmt``."""
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    w, h = size
    img = Image.linear_gradient("L").resize(size)
    r = img.point(lambda v: (v + seed[0]) % 256)
    g = img.rotate(90).point(lambda v: (v + seed[1]) % 256)
    b = Image.radial_gradient("L").resize(size).point(lambda v: (v + seed[2]) % 256)
    img = Image.merge("RGB", (r, g, b))
    draw = ImageDraw.Draw(img)
    for i in range(12):
        x, y = seed[3 + i] * w // 256, seed[15 + i] * h // 256
        radius = (seed[(27 + i) % 32] % 64 + 16) * min(w, h) // 512
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius),
            fill=(seed[i], seed[i + 8], seed[i + 16]),
            outline=(255, 255, 255),
        )
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()
