"""The watermark wired in, end to end (docs/watermark.md, "Where the mark is written and read").

    .venv/bin/python benchmarks/bench_watermark_wiring.py

label_with_record (visible label + mark in one re-encode) -> a platform's re-encode with no
metadata -> verify with the key file: how often the notice is "suspected" and the producer and
ProduceID hash come back; then the cost of labelling with and without the mark, and of verify
with a key, on one 1024 x 1024 JPEG (best of 5).
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from PIL import Image
from watermark.attacks import sample_pictures, synthetic_scene

from labeler import LabelPolicy, SigningKey, verify
from labeler.labeling import label_with_record
from labeler.markkey import MarkKey


def jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def half(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.BICUBIC)


def crop(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.crop((w // 10, h // 10, w * 9 // 10, h * 9 // 10))


PLATFORM: dict[str, Callable[[Image.Image], bytes]] = {
    "JPEG q70, metadata stripped": lambda im: jpeg(im, 70),
    "JPEG q50, metadata stripped": lambda im: jpeg(im, 50),
    "crop 10% each side, JPEG q70": lambda im: jpeg(crop(im), 70),
    "0.5x, then JPEG q70": lambda im: jpeg(half(im), 70),
}


def best_ms(run: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    policy = LabelPolicy(
        provider_name="x", provider_code="001191440300708461136T1XGW3", signing_key=SigningKey.generate()
    )
    key = MarkKey.for_policy(policy)
    assert key is not None
    pictures = [synthetic_scene(s, (768, 512)) for s in range(13)] + [p for _, p in sample_pictures()]
    suspected = dict.fromkeys(PLATFORM, 0)
    named = dict.fromkeys(PLATFORM, 0)
    psnrs = []
    for img in pictures:
        labelled = label_with_record(jpeg(img), policy)
        assert labelled.watermark is not None
        psnrs.append(labelled.watermark.psnr or 0.0)
        out = Image.open(io.BytesIO(labelled[0]))
        out.load()
        for name, step in PLATFORM.items():
            verdict = verify(step(out), watermark_keys=[key])
            mark = verdict.watermark or {}
            suspected[name] += verdict.notice == "suspected"
            named[name] += mark.get("producer") == policy.producer and mark.get("produce_id_hash") is not None
    print(f"{len(pictures)} pictures, min PSNR after the label's re-encode {min(psnrs):.1f} dB")
    for name in PLATFORM:
        print(f"| {name} | {suspected[name]}/{len(pictures)} | {named[name]}/{len(pictures)} |")
    data = jpeg(synthetic_scene(3, (1024, 1024)), 90)
    marked = label_with_record(data, policy)[0]
    uploaded = jpeg(Image.open(io.BytesIO(marked)), 70)
    on = best_ms(lambda: label_with_record(data, policy))
    off = best_ms(lambda: label_with_record(data, policy, watermark=False))
    check = best_ms(lambda: verify(uploaded, watermark_keys=[key]))
    print(
        f"1 MP JPEG: label {on:.0f} ms with the mark, {off:.0f} ms without; verify with a key {check:.0f} ms"
    )


if __name__ == "__main__":
    main()
