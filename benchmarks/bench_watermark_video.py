"""The invisible mark in video after a platform's re-encode (docs/watermark.md, "Video").

    .venv/bin/python benchmarks/bench_watermark_video.py [--keys 20] [--read 6x1.0 12x0.25]

Two 3.2 s clips (photographs slowly zooming, camera-like motion, 640x360 H.264 with sound) are
labelled with ``label_with_record`` under ``--keys`` random watermark keys and ProduceIDs (seeded:
the same keys every run). Each labelled file then goes through a platform's steps with the
metadata stripped: libx264 CRF 23 (its default), CRF 28, and a downscale to 480x270 at CRF 23.
The mark is read from each result with every ``--read`` setting ("COUNTxEVERY": up to COUNT
frames, one per EVERY seconds), side by side on the same files: "found" is a detection at
p <= 1e-6, "payload" the whole 64-bit payload read with its CRC and naming this producer and
this ProduceID. The same steps on the unlabelled clips, read with each run's key, count false
detections (and the smallest p-value seen).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from labeler import LabelPolicy, SigningKey
from labeler.explicit.video import sample_frames
from labeler.labeling import label_with_record
from labeler.markkey import MarkKey
from labeler.watermark import Detection, WatermarkKey, content_id_for, detect_frames

ATTACKS = {
    "CRF 23": ["-c:v", "libx264", "-crf", "23"],
    "CRF 28": ["-c:v", "libx264", "-crf", "28"],
    "480x270, CRF 23": ["-vf", "scale=480:270", "-c:v", "libx264", "-crf", "23"],
}


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, capture_output=True, timeout=600
    )


def clips(work: Path) -> list[bytes]:
    from skimage import data

    out = []
    for name, picture in (("astronaut", data.astronaut()), ("chelsea", data.chelsea())):
        Image.fromarray(picture).convert("RGB").save(work / f"{name}.png")
        ffmpeg(
            "-loop", "1", "-i", work / f"{name}.png", "-f", "lavfi", "-i", "sine=frequency=440",
            "-vf", "zoompan=z='1+0.002*on':d=1:s=640x360:fps=25", "-t", "3.2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", work / f"{name}.mp4",
        )  # fmt: skip
        out.append((work / f"{name}.mp4").read_bytes())
    return out


def platform(video: bytes, options: list[str], work: Path) -> bytes:
    """``video`` after a platform's step: re-encoded with ``options``, the metadata stripped."""
    (work / "in.mp4").write_bytes(video)
    ffmpeg("-i", work / "in.mp4", "-map_metadata", "-1", *options, "-c:a", "copy", work / "out.mp4")
    return (work / "out.mp4").read_bytes()


def read(video: bytes, key: WatermarkKey, count: int, every: float) -> Detection:
    width, height, frames = sample_frames(video, count=count, every=every)
    return detect_frames([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in frames], key)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--read", nargs="+", default=["6x1.0", "12x0.25"], help="COUNTxEVERY settings")
    args = parser.parse_args()
    settings = [(int(c), float(e)) for c, e in (s.split("x") for s in args.read)]
    rng = random.Random(20261204)
    signing = SigningKey.generate()
    found = {(a, s): 0 for a in ATTACKS for s in settings}
    payload = dict.fromkeys(found, 0)
    read_time = dict.fromkeys(settings, 0.0)
    false = dict.fromkeys(settings, 0)
    smallest = dict.fromkeys(settings, 1.0)
    reads = unmarked = 0
    with tempfile.TemporaryDirectory(prefix="bench-wm-video-") as tmp:
        work = Path(tmp)
        sources = clips(work)
        for i in range(args.keys):
            secret = rng.randbytes(32)
            produce_id = f"{rng.getrandbits(128):032x}"
            policy = LabelPolicy(
                provider_name="ExampleAI",
                filing_numbers=("Beijing-YunQue-20230821",),
                signing_key=signing,
                watermark_key=secret,
            )
            key = MarkKey.for_policy(policy)
            assert key is not None
            expected = content_id_for(key.producer, produce_id)
            labelled = label_with_record(sources[i % len(sources)], policy, produce_id=produce_id)
            for attack, options in ATTACKS.items():
                uploaded = platform(labelled[0], options, work)
                for count, every in settings:
                    t0 = time.process_time()
                    mark = read(uploaded, WatermarkKey(secret), count, every)
                    read_time[(count, every)] += time.process_time() - t0
                    found[(attack, (count, every))] += mark.detected
                    payload[(attack, (count, every))] += mark.detected and mark.content_id == expected
                reads += 1
            for options in ATTACKS.values():  # the unmarked clip through the same steps
                plain = platform(sources[i % len(sources)], options, work)
                for count, every in settings:
                    p_value = float(read(plain, WatermarkKey(secret), count, every).p_value)
                    false[(count, every)] += p_value <= 1e-6
                    smallest[(count, every)] = min(smallest[(count, every)], p_value)
                unmarked += 1
            print(f"key {i + 1}/{args.keys} done", file=sys.stderr)
    n = args.keys
    print(f"\n{n} random keys and ProduceIDs, 2 clips alternated, metadata stripped by each re-encode\n")
    head = " | ".join(f"read {c} frames every {e:g} s: found / payload" for c, e in settings)
    print(f"| platform step | {head} |")
    print("| --- |" + " ---: |" * len(settings))
    for attack in ATTACKS:
        cells = " | ".join(f"{found[(attack, s)]}/{n} / {payload[(attack, s)]}/{n}" for s in settings)
        print(f"| {attack} | {cells} |")
    cells = " | ".join(f"{false[s]}/{unmarked} (smallest p {smallest[s]:.1g})" for s in settings)
    print(f"| unmarked clips, same steps: false detections | {cells} |")
    cost = " | ".join(f"{read_time[s] / reads * 1e3:.0f} ms" for s in settings)
    print(f"| read, CPU per file (this process; ffmpeg's decode not counted) | {cost} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
