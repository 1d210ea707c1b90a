"""An invisible, keyed audio watermark for speech and music: survives MP3 128 kb/s and
resampling to 16 kHz, on CPU, no weights.

Design (docs/watermark.md, "Audio"): the mark is made at a fixed working rate of 16 kHz, in the
band every speech channel keeps (``BAND``). A key-derived block of ``BLOCK`` samples (about a
second) is the sum of a *sync* pattern and a *data* pattern (the key's chip signs times the
coded payload bits, as in the image mark), repeated over the whole signal and resampled to the
file's own rate. Its level follows the signal's short-time loudness (``SNR_DB`` under it), so
quiet passages carry a quiet mark and silence none. The detector

1. resamples to 16 kHz and divides by the signal's own envelope (loud and quiet seconds then
   weigh alike);
2. folds the signal modulo the block (every second adds to the evidence; an encoder's delay or a
   cut start is a circular shift of the fold);
3. finds the block's start by a phase-only (whitened) circular cross-correlation with the sync
   pattern; the peak's height over the spread of every other offset is a z-score, turned into a
   p-value with a Bonferroni factor for every offset tried;
4. reads the payload's soft bits at that start and decodes them (payload.py): the ids come back
   only when the CRC checks.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage  # type: ignore[import-untyped]
from scipy.fft import irfft, rfft  # type: ignore[import-untyped]
from scipy.signal import resample_poly  # type: ignore[import-untyped]
from scipy.special import ndtr  # type: ignore[import-untyped]

from labeler.watermark.image import DEFAULT_THRESHOLD, Detection, WatermarkCapacityError
from labeler.watermark.keys import WatermarkKey
from labeler.watermark.payload import CODED_BITS, Payload, decode_bits, encode_bits

__all__ = ["EmbeddedAudio", "detect_audio", "detect_wav", "embed_audio", "embed_wav"]

F64 = npt.NDArray[np.float64]

RATE = 16_000  # the working rate: what a 16 kHz resample keeps, the mark keeps
BLOCK = 1 << 14  # samples per block at RATE (1.02 s)
CHIP = 16  # samples per chip (1 ms)
CHIPS = BLOCK // CHIP
BAND = (400.0, 3400.0)  # Hz: the telephone band, kept by MP3 at any bitrate and by 16 kHz
SNR_DB = 30.0  # the mark's level under the signal's short-time loudness (margin: 12 of 12 at 32 dB)
_ENVELOPE_S = 0.05  # seconds of the loudness window
_SYNC_SHARE, _DATA_SHARE = 0.6, 0.8
MIN_BLOCKS = 3  # shorter signals cannot hold the payload reliably
_STAGES = 1  # one search (no alpha spending needed)


@dataclass(frozen=True)
class EmbeddedAudio:
    """The marked samples (same shape and dtype as given) and the mark's level under the signal."""

    samples: npt.NDArray[Any]
    snr_db: float


@lru_cache(maxsize=8)
def _band_mask(n: int) -> F64:
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    mask: F64 = ((freqs >= BAND[0]) & (freqs <= BAND[1])).astype(np.float64)
    return mask


def _band_limited(x: F64) -> F64:
    """Circular band-pass (the block repeats, so its filtering must wrap)."""
    out: F64 = irfft(rfft(x) * _band_mask(len(x)), n=len(x))
    return out


@dataclass(frozen=True)
class _Patterns:
    sync: F64  # (BLOCK,), band-limited, unit rms
    sign_chip: F64  # (CHIPS,) +-1
    assign_chip: npt.NDArray[np.intp]  # (CHIPS,) coded-bit index of each chip


@lru_cache(maxsize=16)
def _patterns(key: WatermarkKey) -> _Patterns:
    sync = _band_limited(key.rng("audio-sync").choice([-1.0, 1.0], size=BLOCK))
    sign = key.rng("audio-sign").choice([-1.0, 1.0], size=CHIPS)
    assign = key.rng("audio-assign").permutation(np.arange(CHIPS) % CODED_BITS)
    return _Patterns(sync / np.sqrt(np.mean(sync**2)), sign, assign)


@lru_cache(maxsize=16)
def _block(key: WatermarkKey, payload: Payload) -> F64:
    pats = _patterns(key)
    coded = encode_bits(payload).astype(np.float64)
    data = _band_limited(np.repeat(pats.sign_chip * (1.0 - 2.0 * coded[pats.assign_chip]), CHIP))
    data /= np.sqrt(np.mean(data**2))
    block = _SYNC_SHARE * pats.sync + _DATA_SHARE * data
    out: F64 = block / np.sqrt(np.mean(block**2))
    return out


def _to_float(samples: npt.NDArray[Any]) -> tuple[F64, float]:
    """(frames, channels) float64 in [-1, 1] and the full scale of the given dtype."""
    x = samples if samples.ndim == 2 else samples[:, None]
    if np.issubdtype(x.dtype, np.integer):
        scale = float(np.iinfo(x.dtype).max) + 1.0
        return x.astype(np.float64) / scale, scale
    return x.astype(np.float64), 1.0


def _envelope(mono: F64, rate: int) -> F64:
    """Short-time rms, smoothed: how loud the signal is around each sample."""
    win = max(1, int(rate * _ENVELOPE_S))
    power = ndimage.uniform_filter1d(mono * mono, win, mode="nearest")
    env: F64 = np.sqrt(np.maximum(power, 0.0))  # the filter's rounding can dip below 0
    return env


def _resample(x: F64, rate_in: int, rate_out: int) -> F64:
    if rate_in == rate_out:
        return x
    g = math.gcd(rate_in, rate_out)
    out: F64 = resample_poly(x, rate_out // g, rate_in // g)
    return out


def embed_audio(
    samples: npt.NDArray[Any], rate: int, key: WatermarkKey, payload: Payload, *, strength: float = 1.0
) -> EmbeddedAudio:
    """Mark PCM samples ((frames,) or (frames, channels); int16/int32 or float in [-1, 1]).

    Raises :class:`WatermarkCapacityError` for a signal shorter than ``MIN_BLOCKS`` blocks or
    silent throughout."""
    x, scale = _to_float(samples)
    frames = x.shape[0]
    if frames * RATE / rate < MIN_BLOCKS * BLOCK:
        seconds = MIN_BLOCKS * BLOCK / RATE
        raise WatermarkCapacityError(
            "too short", f"audio shorter than {seconds:.1f} s is too short to watermark"
        )
    mono = x.mean(axis=1)
    env = _envelope(mono, rate)
    if float(env.max()) < 1e-4:
        raise WatermarkCapacityError("too flat", "the audio is silent: nothing to hide a mark under")
    n16 = math.ceil(frames * RATE / rate) + 1
    mark16 = np.tile(_block(key, payload), -(-n16 // BLOCK))[:n16]
    mark = _resample(mark16, RATE, rate)[:frames]
    if len(mark) < frames:
        mark = np.pad(mark, (0, frames - len(mark)))
    delta = mark * env * (10 ** (-SNR_DB / 20) * strength)
    out = np.clip(x + delta[:, None], -1.0, 1.0 - 1.0 / scale if scale > 1 else 1.0)
    power_signal = float(np.mean(mono**2))
    power_mark = float(np.mean(delta**2))
    snr = 10 * math.log10(power_signal / power_mark) if power_mark > 0 else math.inf
    if np.issubdtype(samples.dtype, np.integer):
        result: npt.NDArray[Any] = np.rint(out * scale).astype(samples.dtype)
    else:
        result = out.astype(samples.dtype)
    return EmbeddedAudio(result if samples.ndim == 2 else result[:, 0], snr)


def _whiten(spectrum: npt.NDArray[np.complex128]) -> npt.NDArray[np.complex128]:
    """Phase-only weighting inside the band: the content's colour drops out, the mark's
    phases stay."""
    mag = np.abs(spectrum)
    smooth = ndimage.uniform_filter1d(mag, 33, mode="nearest") + 1e-12
    out: npt.NDArray[np.complex128] = spectrum / smooth * _band_mask(BLOCK)
    return out


def detect_audio(
    samples: npt.NDArray[Any], rate: int, key: WatermarkKey, *, threshold: float = DEFAULT_THRESHOLD
) -> Detection:
    """Look for ``key``'s mark in PCM samples. Never raises on audio that is merely too short or
    silent: the result says so with ``p_value`` 1."""
    x, _ = _to_float(samples)
    y = _resample(x.mean(axis=1), rate, RATE)
    blocks = len(y) // BLOCK
    if blocks < 1:
        return Detection(False, 1.0, None, 0.0, threshold, reason="too short to detect")
    env = _envelope(y, RATE)
    floor = max(float(np.median(env)) * 0.05, 1e-6)
    r = y / (env + floor)
    folded = r[: blocks * BLOCK].reshape(blocks, BLOCK).sum(axis=0)
    white = _whiten(rfft(folded))
    pats = _patterns(key)
    corr = irfft(white * np.conj(rfft(pats.sync)), n=BLOCK)
    peak = int(np.argmax(corr))
    med = float(np.median(corr))
    mad = float(np.median(np.abs(corr - med))) * 1.4826
    z = (float(corr[peak]) - med) / mad if mad > 0 else 0.0
    p_value = min(1.0, _STAGES * BLOCK * float(ndtr(-z)))
    detected = p_value <= threshold
    payload = _read_payload(white, pats, peak) if detected else None
    reason = "" if detected else "no mark at this threshold"
    if detected and payload is None:
        reason = "mark present, payload unreadable"
    return Detection(detected, p_value, payload, z, threshold, reason=reason, candidates=1)


def _read_payload(white: npt.NDArray[np.complex128], pats: _Patterns, start: int) -> Payload | None:
    aligned = np.roll(irfft(white, n=BLOCK), -start)
    sync = pats.sync
    aligned = aligned - sync * (float(aligned @ sync) / float(sync @ sync))
    chips = _band_limited(aligned).reshape(CHIPS, CHIP).sum(axis=1)
    soft = np.bincount(pats.assign_chip, weights=chips * pats.sign_chip, minlength=CODED_BITS)
    return decode_bits(soft.astype(np.float64))


# ---------------------------------------------------------------- WAV files


def _read_wav(data: bytes) -> tuple[npt.NDArray[Any], int, wave._wave_params]:
    """The samples of a 16-bit PCM WAV; anything else (or a broken header) is a ValueError."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            params = w.getparams()
            if params.sampwidth != 2 or params.framerate <= 0 or params.nchannels <= 0:
                raise ValueError("only 16-bit PCM WAV with a sample rate and channels is watermarked")
            raw = w.readframes(params.nframes)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV the watermark reads: {exc}") from None
    samples = np.frombuffer(raw, dtype="<i2").reshape(-1, params.nchannels)
    return samples, params.framerate, params


def _data_chunk(data: bytes) -> tuple[int, int]:
    """(offset, size) of the RIFF ``data`` chunk's samples."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            return pos + 8, min(size, len(data) - pos - 8)
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def embed_wav(data: bytes, key: WatermarkKey, payload: Payload, *, strength: float = 1.0) -> bytes:
    """A 16-bit PCM WAV file marked: only the samples change, in place (same length); every
    other chunk (and the header) stays byte for byte."""
    samples, rate, _ = _read_wav(data)
    marked = embed_audio(samples, rate, key, payload, strength=strength).samples
    offset, size = _data_chunk(data)
    body = marked.astype("<i2").tobytes()
    if len(body) > size:
        raise ValueError("the data chunk is shorter than its samples")
    return data[:offset] + body + data[offset + len(body) :]


def detect_wav(data: bytes, key: WatermarkKey, *, threshold: float = DEFAULT_THRESHOLD) -> Detection:
    samples, rate, _ = _read_wav(data)
    return detect_audio(samples, rate, key, threshold=threshold)
