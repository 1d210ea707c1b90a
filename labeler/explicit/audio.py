"""The audio explicit label: the rhythm "short-long-short-short" (Morse ``.- ..``, "AI") as
generated tones, at the start and/or end of a recording (GB 45438, TC260-PG-202510A).

Morse timing in units: a short tone is 1, a long tone 3, the gap inside a letter 1, between
letters 3. Tones get 5 ms raised-cosine ramps so they start and stop without clicks. Works on
PCM WAV (8/16/24/32-bit integer, and 32-bit float) by rewriting only the ``data`` chunk; every
other chunk is kept. :func:`find_rhythm_label` reads the pattern back from the samples.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import MalformedFileError, UnsupportedFormatError
from ..formats import riff
from .styles import PATTERN, RhythmStyle

__all__ = ["PATTERN", "RhythmStyle", "add_rhythm_label", "find_rhythm_label", "rhythm_segments"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
RAMP_SECONDS = 0.005
#: Bounds on what an untrusted fmt chunk may declare: the label's size is derived from them.
MAX_RATE = 768_000
MAX_CHANNELS = 32


@dataclass(frozen=True)
class _Pcm:
    tag: int  #: 1 integer PCM, 3 float
    channels: int
    rate: int
    width: int  #: bytes per sample


def _fmt(data: bytes, chunks: list[riff.Chunk]) -> _Pcm:
    fmt = next((c.payload(data) for c in chunks if c.fourcc == b"fmt "), None)
    if fmt is None or len(fmt) < 16:
        raise MalformedFileError("WAV has no valid fmt chunk")
    tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack_from("<H", fmt, 24)  # the sub-format GUID starts with the tag
    width = bits // 8
    if tag not in (_PCM, _FLOAT) or bits % 8 or not 1 <= width <= 4 or (tag == _FLOAT and width != 4):
        raise UnsupportedFormatError(f"rhythm labels need PCM or float WAV, not format {tag} at {bits} bits")
    if not 1 <= channels <= MAX_CHANNELS or not 4000 <= rate <= MAX_RATE or align != channels * width:
        raise MalformedFileError("WAV fmt chunk is inconsistent (channels, sample rate or block align)")
    return _Pcm(tag, channels, rate, width)


def _encode(values: list[float], pcm: _Pcm) -> bytes:
    """Mono samples in [-1, 1] as interleaved frames of ``pcm``."""
    if pcm.tag == _FLOAT:
        frame = array("f", (v for v in values for _ in range(pcm.channels)))
        return frame.tobytes()
    peak = (1 << (8 * pcm.width - 1)) - 1
    out = bytearray()
    for v in values:
        n = round(v * peak)
        sample = (
            (n + 128).to_bytes(1, "little")
            if pcm.width == 1
            else n.to_bytes(pcm.width, "little", signed=True)
        )
        out += sample * pcm.channels
    return bytes(out)


def rhythm_samples(rate: int, style: RhythmStyle) -> list[float]:
    """The label as mono samples in [-1, 1] at ``rate``."""
    amp = 10 ** (style.level_dbfs / 20)
    unit = round(rate * style.unit_ms / 1000)
    ramp = max(1, round(rate * RAMP_SECONDS))
    step = 2 * math.pi * style.frequency / rate
    out: list[float] = []
    for on, off in PATTERN:
        n = on * unit
        for i in range(n):
            edge = min(i, n - 1 - i)
            gain = 0.5 - 0.5 * math.cos(math.pi * edge / ramp) if edge < ramp else 1.0
            out.append(amp * gain * math.sin(step * i))
        out += [0.0] * (off * unit)
    return out


def add_rhythm_label(wav: bytes, style: RhythmStyle = RhythmStyle()) -> bytes:
    """``wav`` with the rhythm label at ``style.position``; only the ``data`` chunk changes.
    Idempotent: where the label is already heard (start or end), it is not added again."""
    chunks, riff_end = riff.walk(wav, b"WAVE", "WAV")
    pcm = _fmt(wav, chunks)
    data_chunk = next((c for c in chunks if c.fourcc == b"data"), None)
    if data_chunk is None:
        raise MalformedFileError("WAV has no data chunk")
    label = _encode(rhythm_samples(pcm.rate, style), pcm)
    pause = _encode([0.0] * round(pcm.rate * style.pause_ms / 1000), pcm)
    body = data_chunk.payload(wav)
    body = body[: len(body) - len(body) % (pcm.channels * pcm.width)]  # whole frames only

    def sides(where: str | None) -> set[str]:
        return {"start", "end"} if where == "both" else {where} if where else set()

    missing = sides(style.position) - sides(find_rhythm_label(wav, style))
    if not missing:
        return wav
    if "start" in missing:
        body = label + pause + body
    if "end" in missing:
        body = body + pause + label
    view = memoryview(wav)
    parts = [riff.chunk(b"data", body) if c is data_chunk else view[c.start : c.end] for c in chunks]
    size = 4 + sum(len(p) for p in parts)
    return b"".join((b"RIFF", size.to_bytes(4, "little"), b"WAVE", *parts, view[riff_end:]))


def _pcm_body(wav: bytes) -> tuple[_Pcm, memoryview]:
    chunks, _ = riff.walk(wav, b"WAVE", "WAV")
    pcm = _fmt(wav, chunks)
    data = next((c for c in chunks if c.fourcc == b"data"), None)
    if data is None:
        raise MalformedFileError("WAV has no data chunk")
    size = min(struct.unpack_from("<I", wav, data.start + 4)[0], len(wav) - data.start - 8)
    frame = pcm.channels * pcm.width
    return pcm, memoryview(wav)[data.start + 8 : data.start + 8 + size - size % frame]


def _mono(pcm: _Pcm, body: memoryview) -> list[float]:
    """The first channel of ``body`` as floats in [-1, 1]."""
    frame = pcm.channels * pcm.width
    if pcm.tag == _FLOAT:
        values = array("f", body.tobytes())
        return [values[i] for i in range(0, len(values), pcm.channels)]
    peak = float(1 << (8 * pcm.width - 1))
    if pcm.width == 1:
        return [(body[i] - 128) / peak for i in range(0, len(body), frame)]
    raw = body.tobytes()
    return [
        int.from_bytes(raw[i : i + pcm.width], "little", signed=True) / peak
        for i in range(0, len(raw), frame)
    ]


def rhythm_segments(samples: list[float], rate: int, threshold: float = 0.05) -> list[tuple[bool, float]]:
    """The signal as (sounding, seconds) runs, from a 5 ms peak envelope."""
    hop = max(1, rate // 200)
    runs: list[tuple[bool, float]] = []
    for start in range(0, len(samples), hop):
        loud = max((abs(v) for v in samples[start : start + hop]), default=0.0) >= threshold
        if runs and runs[-1][0] == loud:
            runs[-1] = (loud, runs[-1][1] + hop / rate)
        else:
            runs.append((loud, hop / rate))
    return runs


def _matches(runs: list[tuple[bool, float]]) -> bool:
    """Four tones whose lengths go short, long, short, short (long >= 2x short)."""
    tones = [seconds for loud, seconds in runs if loud]
    if len(tones) != 4:
        return False
    short = min(tones[0], tones[2], tones[3])
    return tones[1] >= 2 * short and max(tones[0], tones[2], tones[3]) < 1.6 * short


def find_rhythm_label(
    wav: bytes, style: RhythmStyle = RhythmStyle()
) -> Literal["start", "end", "both"] | None:
    """Where the rhythm label is in ``wav`` (``None`` if it is not), judged from the samples."""
    pcm, body = _pcm_body(wav)
    span = round(pcm.rate * (style.seconds + 0.04)) * pcm.channels * pcm.width  # only the ends are read
    where = {
        name: _matches(rhythm_segments(_mono(pcm, part), pcm.rate))
        for name, part in (("start", body[:span]), ("end", body[max(0, len(body) - span) :]))
    }
    if where["start"] and where["end"]:
        return "both"
    return "start" if where["start"] else "end" if where["end"] else None


#: The most of compressed audio decoded to look for the rhythm label (it sits at either end).
MAX_DECODE_SECONDS = 900


def find_rhythm_label_in(
    data: bytes, media_format: str, style: RhythmStyle = RhythmStyle()
) -> Literal["start", "end", "both"] | None:
    """:func:`find_rhythm_label` for any audio we label: WAV directly; MP3, FLAC and Ogg decoded
    by ffmpeg first (the first 15 minutes). Raises :class:`ToolNotFoundError` without ffmpeg."""
    if media_format == "wav":
        return find_rhythm_label(data, style)
    if media_format not in ("mp3", "flac", "ogg"):
        raise UnsupportedFormatError(f"no rhythm label in {media_format} content")
    return find_rhythm_label(decoded_wav(data, media_format), style)


def _decode_to_wav(work: Path, name: str, media_format: str, *limits: str) -> bytes:
    """The first audio stream of ``work/name`` as 16-bit PCM WAV, decoded by ffmpeg.

    The demuxer is forced, never guessed: verify reads untrusted uploads, and a guessed playlist
    or concat demuxer would make ffmpeg open other files or URLs."""
    from .. import ffmpeg

    ffmpeg.run(
        "-f", media_format, "-i", name, "-map", "0:a:0", *limits, "-c:a", "pcm_s16le", "-f", "wav",
        "decoded.wav", cwd=work,
    )  # fmt: skip
    return (work / "decoded.wav").read_bytes()


#: Encoders for compressed audio, used around the rhythm label (ffmpeg, when installed).
_ENCODERS: dict[str, tuple[str, ...]] = {
    "mp3": ("-c:a", "libmp3lame", "-q:a", "2"),
    "flac": ("-c:a", "flac"),
    "ogg-vorbis": ("-c:a", "libvorbis", "-q:a", "6"),
    "ogg-opus": ("-c:a", "libopus", "-b:a", "128k"),
}


def decoded_wav(data: bytes, media_format: str) -> bytes:
    """MP3, FLAC or Ogg audio as 16-bit PCM WAV (the first 15 minutes), decoded by ffmpeg: what
    the rhythm label and the invisible mark are read from. Raises :class:`ToolNotFoundError`
    without ffmpeg."""
    if media_format not in ("mp3", "flac", "ogg"):
        raise UnsupportedFormatError(f"no decoding of {media_format} content")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="labeler-audio-") as tmp:
        work = Path(tmp)
        (work / "in").write_bytes(data)
        return _decode_to_wav(work, "in", media_format, "-t", str(MAX_DECODE_SECONDS))


def reencode_audio(data: bytes, media_format: str, change: Callable[[bytes], bytes]) -> bytes:
    """MP3, FLAC or Ogg audio decoded with ffmpeg to 16-bit PCM WAV, ``change``d, and encoded
    again with the same codec, tags kept: the one re-encode that the rhythm label and the
    invisible mark share. Raises :class:`ToolNotFoundError` when ffmpeg is not installed."""
    codec = media_format
    if media_format == "ogg":
        codec = "ogg-opus" if b"OpusHead" in data[:64] else "ogg-vorbis"
    if codec not in _ENCODERS:
        raise UnsupportedFormatError(f"no re-encoding of {media_format} audio")
    import tempfile

    from .. import ffmpeg

    suffix = {"mp3": ".mp3", "flac": ".flac"}.get(codec, ".ogg")
    with tempfile.TemporaryDirectory(prefix="labeler-audio-") as tmp:
        work = Path(tmp)
        (work / f"in{suffix}").write_bytes(data)
        decoded = _decode_to_wav(work, f"in{suffix}", media_format)
        (work / "labeled.wav").write_bytes(change(decoded))
        ffmpeg.run(
            "-i", "labeled.wav", "-i", f"in{suffix}", "-map", "0:a", "-map_metadata", "1",
            *_ENCODERS[codec], f"out{suffix}", cwd=work,
        )  # fmt: skip
        return (work / f"out{suffix}").read_bytes()


def add_rhythm_label_to(data: bytes, media_format: str, style: RhythmStyle = RhythmStyle()) -> bytes:
    """The rhythm label for any audio format we label: WAV in place; MP3, FLAC and Ogg by
    decoding with ffmpeg, adding the tones, and encoding again with the same codec (tags kept).
    Raises :class:`ToolNotFoundError` for compressed audio when ffmpeg is not installed."""
    if media_format == "wav":
        return add_rhythm_label(data, style)
    return reencode_audio(data, media_format, lambda wav: add_rhythm_label(wav, style))
