"""Real media made in the tests: audio synthesised with the stdlib, video and other codecs by
ffmpeg (Debian), documents by Pillow / zipfile. Nothing is a mock of a container."""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import wave
import zipfile
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None or FFPROBE is None, reason="needs ffmpeg/ffprobe (Debian ffmpeg)"
)


def sine_wav(
    seconds: float = 0.5, rate: int = 16000, freq: float = 440.0, channels: int = 1, width: int = 2
) -> bytes:
    n = int(seconds * rate)
    peak = (1 << (8 * width - 1)) - 1
    frames = bytearray()
    for i in range(n):
        v = int(0.3 * peak * math.sin(2 * math.pi * freq * i / rate))
        sample = (v + 128).to_bytes(1, "little") if width == 1 else v.to_bytes(width, "little", signed=True)
        frames += sample * channels
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def ffmpeg(tmp: Path, out_name: str, *args: str) -> bytes:
    assert FFMPEG is not None
    out = tmp / out_name
    subprocess.run([FFMPEG, "-v", "error", "-y", *args, str(out)], check=True, cwd=tmp, timeout=120)
    return out.read_bytes()


def encode_audio(tmp: Path, suffix: str, *codec: str) -> bytes:
    (tmp / "in.wav").write_bytes(sine_wav(1.0, rate=44100))
    return ffmpeg(tmp, f"out{suffix}", "-i", "in.wav", *codec)


def make_video(
    tmp: Path, name: str = "v.mp4", seconds: float = 3, size: str = "320x240", *extra: str
) -> bytes:
    return ffmpeg(
        tmp,
        name,
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", *extra,
    )  # fmt: skip


def ffprobe_tags(path: Path) -> dict[str, str]:
    import json

    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    parsed = json.loads(out)
    tags = dict(parsed.get("format", {}).get("tags", {}))
    for stream in parsed.get("streams", []):
        tags.update(stream.get("tags", {}))
    return tags


def decodes(path: Path) -> bool:
    """ffmpeg decodes every frame of every stream without an error."""
    assert FFMPEG is not None
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, timeout=120
    )
    return run.returncode == 0 and not run.stderr.strip()


def make_pdf(pages: int = 1, size: tuple[int, int] = (200, 100)) -> bytes:
    """Pages of ``size`` points, each a white picture (made by Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    imgs = [Image.new("RGB", size, (255, 255, 255 - i)) for i in range(pages)]
    imgs[0].save(buf, "PDF", save_all=True, append_images=imgs[1:])
    return buf.getvalue()


DOCUMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
)


def make_docx(text: str = "AI 生成的报告", custom: str | None = None) -> bytes:
    """A minimal, valid WordprocessingML package (what Word needs to open it)."""
    types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="word/document.xml"/></Relationships>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", types)
        z.writestr("_rels/.rels", rels)
        z.writestr("word/document.xml", DOCUMENT_XML.format(text=text))
        if custom is not None:
            z.writestr("docProps/custom.xml", custom)
    return buf.getvalue()


def wav_samples(data: bytes) -> tuple[list[int], int]:
    """(mono 16-bit samples, rate) read back with the stdlib ``wave`` module."""
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        raw = w.readframes(w.getnframes())
        ch = w.getnchannels()
        rate = w.getframerate()
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    return list(samples[::ch]), rate


def build_samples(tmp: Path) -> dict[str, bytes]:
    """One real file per container and variant we label outside images."""
    out = {
        "wav": sine_wav(),
        "wav-stereo-24bit": sine_wav(0.3, rate=22050, channels=2, width=3),
        "pdf": make_pdf(2),
        "docx": make_docx(),
    }
    if FFMPEG and FFPROBE:
        out["mp3"] = encode_audio(tmp, ".mp3", "-c:a", "libmp3lame", "-q:a", "4")
        out["mp3-id3v1"] = encode_audio(
            tmp, ".mp3", "-c:a", "libmp3lame", "-write_id3v1", "1", "-metadata", "title=t"
        )
        out["flac"] = encode_audio(tmp, ".flac", "-c:a", "flac")
        out["ogg-vorbis"] = encode_audio(tmp, ".ogg", "-c:a", "libvorbis")
        out["ogg-opus"] = encode_audio(tmp, ".opus", "-c:a", "libopus")
        out["mp4"] = make_video(tmp, "v.mp4", 1)
        out["mp4-faststart"] = make_video(tmp, "f.mp4", 1, "320x240", "-movflags", "+faststart")
        out["mp4-with-mdta-keys"] = make_video(
            tmp, "k.mp4", 1, "320x240", "-movflags", "use_metadata_tags", "-metadata", "studio=demo"
        )
        out["mov"] = make_video(tmp, "q.mov", 1)
    return out


def change_docx_text(data: bytes, old: str = "报告", new: str = "报表") -> bytes:
    """The package with one word of the document changed, every part still well-formed: a
    single flipped byte would break a member's CRC instead (which reads as unreadable)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    parts["word/document.xml"] = parts["word/document.xml"].replace(old.encode(), new.encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for part, content in parts.items():
            z.writestr(part, content)
    return buf.getvalue()
