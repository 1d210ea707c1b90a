"""Procedural "speech" for the demo's ``/v1/audio/speech``: deterministic tones per character,
no model weights. Clearly a demo voice; what matters is that the audio leaves labelled."""

from __future__ import annotations

import io
import math
import tempfile
import wave
from array import array
from pathlib import Path

from .. import ffmpeg

__all__ = ["FORMATS", "synthesize"]

#: response_format -> (media type, ffmpeg encoder arguments or None for WAV itself)
FORMATS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "wav": ("audio/wav", None),
    "mp3": ("audio/mpeg", ("-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3")),
    "flac": ("audio/flac", ("-c:a", "flac", "-f", "flac")),
    "opus": ("audio/ogg", ("-c:a", "libopus", "-b:a", "48k", "-f", "ogg")),
}


def _wav(text: str, rate: int) -> bytes:
    samples = array("h")
    syllable = int(rate * 0.09)
    for ch in text[:400] or "…":
        if ch.isspace():
            samples.extend([0] * (syllable // 2))
            continue
        pitch = 140 + (ord(ch) * 37) % 160  # a voice-like range, derived from the character
        for i in range(syllable):
            t = i / rate
            envelope = math.sin(math.pi * i / syllable) ** 2
            v = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3))
            samples.append(int(9000 * envelope * v))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def synthesize(text: str, response_format: str = "wav", rate: int = 24000) -> tuple[bytes, str]:
    """(audio bytes, media type). Compressed formats need ffmpeg (ToolNotFoundError otherwise)."""
    media_type, encoder = FORMATS[response_format]
    data = _wav(text, rate)
    if encoder is None:
        return data, media_type
    with tempfile.TemporaryDirectory(prefix="labeler-demo-") as tmp:
        (Path(tmp) / "in.wav").write_bytes(data)
        ffmpeg.run("-i", "in.wav", *encoder, "out", cwd=Path(tmp))
        return (Path(tmp) / "out").read_bytes(), media_type
