"""Audio, video and document labels vs the tools people would otherwise use, one run.

    .venv/bin/python benchmarks/bench_media.py [--runs 10]

Needs ffmpeg (Debian). Samples: 30 s stereo 44.1 kHz audio, a 10 s 1280x720 H.264 clip,
a 20-page PDF, a DOCX. Rows per file (best of 5 medians):
  labeler implicit (signed)    label_bytes(): the record in the format's slot, SHA-256 + Ed25519
  mutagen tag only             the same tag written by mutagen alone (no digest, no signature)
  pypdf incremental only       the same /AIGC Info update by pypdf alone
  ffmpeg -c copy + metadata    a stream-copy remux writing the record as metadata (new process)
Explicit labels:
  labeler rhythm label (WAV)   add_rhythm_label() in process
  labeler video label          overlay + H.264 re-encode of the clip (ffmpeg)
  bare ffmpeg re-encode        the same encoder settings without the overlay
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_implicit import median_ms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from media import ffmpeg, make_docx, make_pdf, sine_wav

from labeler import LabelPolicy, SigningKey, label_bytes
from labeler.explicit.audio import add_rhythm_label
from labeler.explicit.video import add_video_label

RECORD = '{"Label":"1","ContentProducer":"001191440300708461136T1XGW3","ProduceID":"x"}'


def samples(tmp: Path) -> dict[str, bytes]:
    (tmp / "in.wav").write_bytes(sine_wav(30.0, rate=44100, channels=2))
    return {
        "wav": (tmp / "in.wav").read_bytes(),
        "mp3": ffmpeg(tmp, "a.mp3", "-i", "in.wav", "-c:a", "libmp3lame", "-q:a", "2"),
        "flac": ffmpeg(tmp, "a.flac", "-i", "in.wav", "-c:a", "flac"),
        "ogg": ffmpeg(tmp, "a.ogg", "-i", "in.wav", "-c:a", "libvorbis"),
        "mp4": ffmpeg(
            tmp,
            "v.mp4",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ),
        "pdf": make_pdf(20),
        "docx": make_docx("AI 生成的报告 " * 2000),
    }


def mutagen_only(data: bytes, kind: str) -> bytes:
    import mutagen
    from mutagen.id3 import TXXX

    buf = io.BytesIO(data)
    f: Any = mutagen.File(buf)
    if kind == "mp3":
        f.tags.add(TXXX(encoding=0, desc="AIGC", text=[RECORD]))
    else:
        f.tags["AIGC"] = [RECORD]
    buf.seek(0)
    f.save(buf)
    return buf.getvalue()


def pypdf_only(data: bytes) -> bytes:
    import pypdf

    w = pypdf.PdfWriter(io.BytesIO(data), incremental=True)
    w.add_metadata({"/AIGC": RECORD})
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def ffmpeg_remux(tmp: Path, kind: str) -> None:
    extra = ["-movflags", "use_metadata_tags"] if kind == "mp4" else []
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", f"src.{kind}", "-map", "0", "-c", "copy", "-metadata",
         f"AIGC={RECORD}", *extra, f"out.{kind}"],
        cwd=tmp, check=True,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    policy = LabelPolicy(
        provider_name="ExampleAI",
        provider_code="001191440300708461136T1XGW3",
        filing_numbers=("Beijing-YunQue-20230821",),
        signing_key=SigningKey.generate(),
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = samples(tmp)
        rows: list[tuple[str, str, float, float | None]] = []  # kind, row, ms, ratio to ours
        for kind, data in files.items():
            ours = median_ms(lambda d=data: label_bytes(d, policy), args.runs)
            rows.append((kind, f"labeler implicit (signed), {len(data) / 1e6:.1f} MB", ours, None))
            anchors: dict[str, Any] = {}
            if kind in ("mp3", "flac", "ogg"):
                anchors["mutagen tag only"] = lambda d=data, k=kind: mutagen_only(d, k)
            if kind == "pdf":
                anchors["pypdf incremental only"] = lambda d=data: pypdf_only(d)
            if kind in ("wav", "mp3", "flac", "ogg", "mp4"):
                (tmp / f"src.{kind}").write_bytes(data)
                anchors["ffmpeg -c copy + metadata"] = lambda k=kind: ffmpeg_remux(tmp, k)
            for name, fn in anchors.items():
                ms = median_ms(fn, max(3, args.runs // 2))
                rows.append((kind, name, ms, ms / ours))
        rhythm = median_ms(lambda: add_rhythm_label(files["wav"]), max(3, args.runs // 2))
        rows.append(("wav", "labeler rhythm label (in process)", rhythm, None))
        video = median_ms(lambda: add_video_label(files["mp4"], "AI生成", policy.visible), 3, rounds=1)
        (tmp / "src.mp4").write_bytes(files["mp4"])
        bare_cmd = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", "src.mp4", "-map", "0:v:0", "-map", "0:a?",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy",
            "-movflags", "+faststart", "bare.mp4",
        ]  # fmt: skip
        bare = median_ms(lambda: subprocess.run(bare_cmd, cwd=tmp, check=True), 3, rounds=1)
        rows.append(("mp4", "labeler video label (overlay + re-encode)", video, None))
        rows.append(("mp4", "bare ffmpeg re-encode, same settings", bare, video / bare))
    print(f"{'file':<5} {'what':<48} {'ms':>9}  ratio")
    for kind, name, ms, ratio in rows:
        note = (
            "" if ratio is None else (f"{ratio:6.1f}x ours" if "bare" not in name else f"ours {ratio:.2f}x")
        )
        print(f"{kind:<5} {name:<48} {ms:9.2f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
