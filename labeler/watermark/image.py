"""An invisible, keyed image watermark that survives re-encoding and geometry, on CPU, no weights.

Design (docs/watermark.md): a key-derived tile of ``TILE`` x ``TILE`` pixels is repeated over the
picture's luma, scaled by a texture mask. The tile is the sum of a *sync* pattern (known to the
key) and a *data* pattern (the key's chip signs times the coded payload bits). Because the mark
is periodic, the detector

1. whitens the picture (a local high-pass, divided by the local energy) so the content looks
   like noise and the mark stands out;
2. finds the tile's lattice (scale, aspect, rotation) from the peaks of the residual's
   autocorrelation -- the mark synchronises itself, no template in the spectrum is needed;
3. folds every pixel into one tile (coordinates modulo the lattice): crops keep whole tiles and
   every tile adds to the evidence;
4. finds the tile's origin by a circular cross-correlation with the sync pattern; the peak's
   height over the spread of all the other offsets is a z-score, turned into a p-value with a
   Bonferroni factor for every offset and lattice tried (the statistic is self-normalised, so
   the p-value holds for any picture, periodic textures and JPEG block grids included);
5. reads the payload's soft bits at that origin and decodes them (payload.py): ids come back
   only when the CRC checks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import ndimage  # type: ignore[import-untyped]
from scipy.fft import irfft2, rfft2  # type: ignore[import-untyped]
from scipy.special import ndtr  # type: ignore[import-untyped]

from labeler.errors import LabelerError
from labeler.watermark.keys import WatermarkKey
from labeler.watermark.payload import CODED_BITS, Payload, decode_bits, encode_bits

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DEFAULT_THRESHOLD",
    "Detection",
    "Embedded",
    "WatermarkCapacityError",
    "detect",
    "detect_frames",
    "embed",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
PictureT = TypeVar("PictureT", "Image.Image", npt.NDArray[Any])

TILE = 128  # tile side in pixels, at the picture's own scale
CHIP = 2  # pixels per chip (the mark lives below a quarter of the sampling rate: survives 0.5x)
CHIPS = TILE // CHIP
_SYNC_SHARE = 0.6  # amplitude of the sync pattern against the data pattern (0.8), rms 1 together
_DATA_SHARE = 0.8
TARGET_RMS = 2.3  # luma change, rms, in 8-bit levels: PSNR >= 40.5 dB after rounding
_C2 = (0.03 * 255) ** 2  # SSIM's stabiliser
_SSIM_LOSS = 0.011  # the mark's variance over (2 s2 + C2): mean SSIM stays above ~0.98
MIN_RMS = 0.9  # a picture that can hide less than this (rms levels) is too flat to mark
MIN_SIDE = 128  # smaller pictures cannot hold a whole tile
DEFAULT_THRESHOLD = 1e-6
_AC_MAX = 512  # autocorrelation on at most this square of the residual (speed)
_LAG_MIN = 0.35 * TILE  # the lattice searched from 0.35x ...
_LAG_MAX_SCALE = 2.5  # ... to 2.5x the embedded scale
_AC_BLUR = 1.0  # px: the autocorrelation blur
_CANDIDATES = 24  # lattices scored per picture (each adds to the Bonferroni factor)
_FULL_FOLDS = 3  # of which this many, the best on a quarter of the pixels, are folded in full
_SCREEN_PIXELS = 60_000
_REFINED = 2  # of the full folds, this many have their scale refined first ...
_REFINE = 10  # ... over +-10 px of the picture's extent
_LAG_MAX_SHARE = 0.55  # ... and at most this share of the picture's shorter side
_STAGES = 2  # detection stops after the made-with lattice when the mark reads; alpha split in two


class WatermarkCapacityError(LabelerError):
    """The picture is too small or too flat to hold the mark (``reason`` says which): label it
    without the watermark and count it; embedding anyway would be visible or undetectable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Embedded:
    """The marked picture (same type and mode as given) and what it cost in quality."""

    picture: Any
    psnr: float
    tile_scale: int


@dataclass(frozen=True)
class Detection:
    """Never a bare yes/no: ``p_value`` is the probability that an unmarked picture scores as
    high (Bonferroni over every origin and lattice tried). ``detected`` is ``p_value <=
    threshold``; ``payload`` is set only when the mark is detected AND its CRC checks."""

    detected: bool
    p_value: float
    payload: Payload | None
    z: float
    threshold: float
    scale: float = 1.0
    rotation_deg: float = 0.0
    reason: str = ""
    candidates: int = field(default=0, compare=False)

    @property
    def key_id(self) -> int | None:
        return self.payload.key_id if self.payload else None

    @property
    def content_id(self) -> int | None:
        return self.payload.content_id if self.payload else None


# ---------------------------------------------------------------- patterns


@dataclass(frozen=True)
class _KeyPatterns:
    sync_px: F32  # (TILE, TILE)
    sign_chip: F32  # (CHIPS, CHIPS) +-1
    assign_chip: npt.NDArray[np.intp]  # (CHIPS, CHIPS) coded-bit index of each chip


def _chips_to_pixels(chips: F64) -> F32:
    """Nearest upsampling then a light circular blur: band-limits the mark (JPEG, resampling)."""
    px = np.kron(chips, np.ones((CHIP, CHIP)))
    out: F32 = ndimage.gaussian_filter(px, 0.7, mode="wrap").astype(np.float32)
    return out


@lru_cache(maxsize=32)
def _key_patterns(key: WatermarkKey) -> _KeyPatterns:
    sync = key.rng("sync").choice([-1.0, 1.0], size=(CHIPS, CHIPS))
    sign = key.rng("sign").choice([-1.0, 1.0], size=(CHIPS, CHIPS))
    assign = key.rng("assign").permutation(np.arange(CHIPS * CHIPS) % CODED_BITS).reshape(CHIPS, CHIPS)
    return _KeyPatterns(_chips_to_pixels(sync), sign.astype(np.float32), assign)


@lru_cache(maxsize=32)
def _tile(key: WatermarkKey, payload: Payload) -> F32:
    pats = _key_patterns(key)
    coded = encode_bits(payload).astype(np.float64)
    data = pats.sign_chip * (1.0 - 2.0 * coded[pats.assign_chip])
    tile = _SYNC_SHARE * pats.sync_px + _DATA_SHARE * _chips_to_pixels(data)
    out: F32 = (tile / np.sqrt(np.mean(tile**2))).astype(np.float32)
    return out


# ---------------------------------------------------------------- pictures


def _luma(rgb: npt.NDArray[Any]) -> F32:
    """BT.601 luma as float32, straight from uint8 (no float copy of the three channels)."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    y: F32 = np.multiply(rgb[..., 0], np.float32(0.299), dtype=np.float32)
    y += np.multiply(rgb[..., 1], np.float32(0.587), dtype=np.float32)
    y += np.multiply(rgb[..., 2], np.float32(0.114), dtype=np.float32)
    return y


def _as_array(picture: Any) -> tuple[npt.NDArray[np.uint8], str | None]:
    """uint8 (H, W) or (H, W, 3|4) and the PIL mode to give back (None: give back an array)."""
    if isinstance(picture, np.ndarray):
        arr = picture
        if arr.dtype != np.uint8:
            raise ValueError("watermark: arrays must be uint8")
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError("watermark: arrays must be (H, W), (H, W, 3) or (H, W, 4)")
        return arr, None
    mode = picture.mode
    if mode not in ("L", "RGB", "RGBA"):
        picture = picture.convert("RGBA" if "A" in mode or "transparency" in picture.info else "RGB")
    return np.asarray(picture), picture.mode


def _ssim_budget(y: F32) -> F32:
    """How much change each pixel hides, as SSIM sees it: a change of variance v in a window of
    variance s2 costs about v / (2 s2 + C2) of SSIM, so the mark's variance follows 2 s2 + C2
    (texture hides it, flat sky does not; and texture is where JPEG keeps it).

    The variance is exact over 8 x 8 windows aligned to 2 x 2 blocks: the means of y and y^2 are
    pooled 2 x 2 first (pooling is an average, so nothing is lost), filtered at half size, and
    each value serves its block: a quarter of the filtering work."""
    h, w = y.shape
    hh, ww = h // 2 * 2, w // 2 * 2

    def pooled(a: F32) -> F32:
        b = a[:hh, :ww]
        out: F32 = (b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2]) * np.float32(0.25)
        return out

    mu = ndimage.uniform_filter(pooled(y), 4)
    var = ndimage.uniform_filter(pooled(y * y), 4)
    var -= mu * mu
    np.maximum(var, 0, out=var)
    half: F32 = 2 * var + np.float32(_C2)
    budget: F32 = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)
    if (hh, ww) != (h, w):  # an odd last row/column takes its neighbour's budget
        budget = np.pad(budget, ((0, h - hh), (0, w - ww)), mode="edge")
    return budget


def _tile_scale(h: int, w: int) -> int:
    """Big pictures get a bigger tile (whole pixels per chip), so a platform's downscale to
    ~1 MP leaves the chips at least a pixel wide."""
    return max(1, min(h, w) // 1024)


def embed(picture: PictureT, key: WatermarkKey, payload: Payload, *, strength: float = 1.0) -> Embedded:
    """Mark a decoded picture (PIL Image or uint8 array); returns the same kind, same size.

    Raises :class:`WatermarkCapacityError` for a picture smaller than a tile or too flat."""
    arr, mode = _as_array(picture)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise WatermarkCapacityError("too small", f"{w}x{h} is too small to watermark (min side {MIN_SIDE})")
    y = _luma(arr)
    budget = _ssim_budget(y)
    mean_budget = float(budget.mean())
    gain = min(_SSIM_LOSS**0.5, TARGET_RMS / mean_budget**0.5) * strength
    if gain * mean_budget**0.5 < MIN_RMS:
        raise WatermarkCapacityError("too flat", "the picture is too flat to watermark invisibly")
    mask = np.sqrt(budget)
    u = _tile_scale(h, w)
    tile = _tile(key, payload)
    if u > 1:
        tile = np.kron(tile, np.ones((u, u), dtype=np.float32))
    reps = (-(-h // tile.shape[0]), -(-w // tile.shape[1]))
    pattern = np.tile(tile, reps)[:h, :w]
    delta = mask * pattern
    delta *= np.float32(gain)
    np.clip(delta, -3 * TARGET_RMS, 3 * TARGET_RMS, out=delta)
    # the same change on R, G, B: luma only, hue untouched. The picture's levels are whole
    # numbers, so rounding the change rounds the result: integer work from here on
    step = np.rint(delta).astype(np.int16)
    base = arr[..., :3] if arr.ndim == 3 else arr
    wide = base.astype(np.int16)
    wide += step[..., None] if base.ndim == 3 else step
    np.clip(wide, 0, 255, out=wide)
    marked = wide.astype(np.uint8)
    wide -= base  # |change| <= 7 levels: its square fits in int16
    np.square(wide, out=wide)
    mse = float(wide.sum(dtype=np.int64)) / wide.size
    psnr = 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf
    if arr.ndim == 3 and arr.shape[2] == 4:
        marked = np.concatenate([marked, arr[..., 3:]], axis=2)
    if mode is None:
        return Embedded(marked, psnr, u)
    from PIL import Image

    result = Image.fromarray(marked, mode)
    info: dict[str, Any] = getattr(picture, "info", {})
    result.info.update({k: v for k, v in info.items() if k in ("icc_profile", "dpi")})
    return Embedded(result, psnr, u)


# ---------------------------------------------------------------- detection


def _box3(y: F32) -> F32:
    """3x3 mean (edges mirrored) by shifted sums: 4x faster than ndimage.uniform_filter."""
    p = np.pad(y, 1, mode="symmetric")
    v = p[:-2] + p[1:-1] + p[2:]
    out: F32 = (v[:, :-2] + v[:, 1:-1] + v[:, 2:]) * np.float32(1 / 9)
    return out


def _residual(y: F32) -> F32:
    """The content whitened: a local high-pass over its local energy, clipped (edges count
    as much as any other pixel, no more)."""
    r: F32 = y - _box3(y)
    energy = ndimage.uniform_filter(r * r, 11)
    r /= np.sqrt(energy + np.float32(1.0))
    np.clip(r, -3.0, 3.0, out=r)
    return r


def _subpixel(ac: F32, iy: int, ix: int) -> tuple[float, float]:
    def vertex(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if d >= 0 else max(-0.5, min(0.5, 0.5 * (a - c) / d))

    h, w = ac.shape
    dy = vertex(ac[(iy - 1) % h, ix], ac[iy, ix], ac[(iy + 1) % h, ix])
    dx = vertex(ac[iy, (ix - 1) % w], ac[iy, ix], ac[iy, (ix + 1) % w])
    return iy + dy, ix + dx


def _lattices(r: F32) -> list[F64]:
    """Candidate tile lattices (2x2, columns = the two tile vectors in pixels) from the peaks of
    the residual's autocorrelation. The spectrum is whitened first (what is left of the content
    and of a JPEG block grid then has no peaks), and a pair of peaks is ranked by the whole
    lattice it implies (v1, v2, v1+v2, v1-v2 all peak for the mark, rarely for anything else)."""
    h, w = r.shape
    ch, cw = min(h, _AC_MAX), min(w, _AC_MAX)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = r[y0 : y0 + ch, x0 : x0 + cw]
    spec = rfft2(crop - crop.mean(), workers=1)
    power = (spec * spec.conj()).real
    power /= ndimage.uniform_filter(power, 9, mode="wrap") + 1e-9
    lag_max = min(_LAG_MAX_SCALE * TILE * _tile_scale(h, w), _LAG_MAX_SHARE * min(ch, cw))
    reach = min(int(lag_max * 1.5) + 3, ch // 2, cw // 2)  # the window the lattice points need

    def autocorrelation(spectrum: F64) -> F32:
        full = np.fft.fftshift(irfft2(spectrum, s=crop.shape, workers=1))
        window = full[ch // 2 - reach : ch // 2 + reach, cw // 2 - reach : cw // 2 + reach]
        # the mark's peaks are 3-4 px wide, a block grid's 1 px: a light blur keeps the first
        out: F32 = ndimage.gaussian_filter(window.astype(np.float32), _AC_BLUR)
        return out

    # where to look: a JPEG/WebP block grid (lines at multiples of 1/8 cycle per pixel) notched
    # out, else its multiples of 8 px outrank the mark; where exactly: without the notch, which
    # pulls peaks towards those multiples
    exact = autocorrelation(power)
    for m in range(5):
        kx = round(m * cw / 8)
        power[:, max(kx - 2, 0) : kx + 3] = 0
    for m in range(9):
        ky = round(m * ch / 8)
        power[max(ky - 2, 0) : ky + 3, :] = 0
    ac = autocorrelation(power)
    ch = cw = 2 * reach
    cy = cx = reach
    yy, xx = np.mgrid[-cy : ch - cy, -cx : cw - cx]
    length = np.hypot(yy, xx)
    angle = np.degrees(np.arctan2(yy, xx))
    ring = (length >= _LAG_MIN) & (length <= lag_max)
    near_max = ndimage.maximum_filter(ac, 3)
    peaks = (ac == ndimage.maximum_filter(ac, 5)) & ring

    def best(region: npt.NDArray[np.bool_], count: int) -> list[tuple[float, float]]:
        idx = np.flatnonzero(region & peaks)
        top = idx[np.argsort(ac.flat[idx])[::-1][:count]]
        out = []
        for i in top:
            iy, ix = int(i // cw), int(i % cw)
            box = exact[max(iy - 2, 0) : iy + 3, max(ix - 2, 0) : ix + 3]
            dy, dx = np.unravel_index(int(np.argmax(box)), box.shape)
            py, px = _subpixel(exact, max(iy - 2, 0) + int(dy), max(ix - 2, 0) + int(dx))
            out.append((px - cx, py - cy))
        return out

    def at(vx: float, vy: float) -> float | None:
        iy, ix = round(vy) + cy, round(vx) + cx
        inside = 0 <= iy < ch and 0 <= ix < cw and math.hypot(vx, vy) <= lag_max * 1.5
        return float(near_max[iy, ix]) if inside else None

    def score(vx: float, vy: float, ux: float, uy: float) -> float:
        """Mean height over the lattice points in reach: a lattice is not favoured for being
        short (a JPEG grid's multiples of 8 px are all short)."""
        pts = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, -1), (1, -2))
        vals = [at(i * vx + j * ux, i * vy + j * uy) for i, j in pts]
        seen = [v for v in vals if v is not None]
        return sum(seen) / len(seen) if seen else 0.0

    xs, ys = best(np.abs(angle) <= 30, 6), best((angle >= 60) & (angle <= 120), 6)
    pairs = []
    for vx, vy in xs:  # a similarity (scale, rotation) and any partner peak (aspect change)
        n1, a1 = math.hypot(vx, vy), math.degrees(math.atan2(vy, vx))
        partners = [(-vy, vx)]
        for ux, uy in ys:
            n2, a2 = math.hypot(ux, uy), math.degrees(math.atan2(uy, ux))
            if 0.75 <= n2 / n1 <= 1.33 and abs(a2 - a1 - 90) <= 10:
                partners.append((ux, uy))
        for ux, uy in partners:
            pairs.append((score(vx, vy, ux, uy), np.array([[vx, ux], [vy, uy]], dtype=np.float64)))
    for ux, uy in ys:
        pairs.append((score(uy, -ux, ux, uy), np.array([[uy, ux], [-ux, uy]], dtype=np.float64)))
    pairs.sort(key=lambda p: -p[0])
    out: list[F64] = []
    for _, lattice in pairs:
        if all(np.abs(lattice - seen).max() > 1.5 for seen in out):
            out.append(lattice)
        if len(out) == _CANDIDATES:
            break
    return out


def _fold(r: F32, lattice: F64) -> F64:
    """Sum every residual pixel into its place in the tile (coordinates modulo the lattice)."""
    h, w = r.shape
    inv = (np.linalg.inv(lattice / TILE)).astype(np.float32)
    off = np.float32(TILE * 4096 + 0.5)  # keeps coordinates positive: truncation rounds
    cx = (inv[0, 0] * _ramp(w))[None, :] + (inv[0, 1] * _ramp(h) + off)[:, None]
    cy = (inv[1, 0] * _ramp(w))[None, :] + (inv[1, 1] * _ramp(h) + off)[:, None]
    bins = (cy.astype(np.int32) & (TILE - 1)) * TILE + (cx.astype(np.int32) & (TILE - 1))
    sums = np.bincount(bins.ravel(), weights=r.ravel(), minlength=TILE * TILE)
    return sums.astype(np.float64).reshape(TILE, TILE)


@lru_cache(maxsize=64)
def _ramp(n: int) -> F32:
    return np.arange(n, dtype=np.float32)


def _sync_score(
    folded: F64, sync_spec: npt.NDArray[np.complex128], *, robust: bool = True
) -> tuple[float, int, int]:
    """The sync peak's height over the spread of every other origin (median/MAD: a few strong
    offsets do not inflate the spread); ``robust=False`` is the cheaper mean/std for screening."""
    corr = irfft2(rfft2(folded, workers=1) * sync_spec, s=folded.shape, workers=1)
    flat = int(np.argmax(corr))
    if not robust:
        sd = float(corr.std())
        return ((float(corr.flat[flat]) - float(corr.mean())) / sd if sd > 0 else 0.0), 0, 0
    med = float(np.median(corr))
    mad = float(np.median(np.abs(corr - med))) * 1.4826
    z = (float(corr.flat[flat]) - med) / mad if mad > 0 else 0.0
    return z, flat // TILE, flat % TILE


@lru_cache(maxsize=32)
def _sync_spectrum(key: WatermarkKey) -> npt.NDArray[np.complex128]:
    spec: npt.NDArray[np.complex128] = np.conj(rfft2(_key_patterns(key).sync_px.astype(np.float64)))
    return spec


def _read_payload(folded: F64, key: WatermarkKey, oy: int, ox: int) -> Payload | None:
    pats = _key_patterns(key)
    aligned = np.roll(folded, (-oy, -ox), axis=(0, 1))
    sync = pats.sync_px.astype(np.float64)
    aligned = aligned - sync * (float(np.sum(aligned * sync)) / float(np.sum(sync * sync)))
    matched = ndimage.gaussian_filter(aligned, 0.7, mode="wrap")
    chips = matched.reshape(CHIPS, CHIP, CHIPS, CHIP).sum(axis=(1, 3))
    soft = np.bincount(
        pats.assign_chip.ravel(), weights=(chips * pats.sign_chip).ravel(), minlength=CODED_BITS
    )
    return decode_bits(soft.astype(np.float64))


def detect(picture: Any, key: WatermarkKey, *, threshold: float = DEFAULT_THRESHOLD) -> Detection:
    """Look for ``key``'s mark in a decoded picture (PIL Image or uint8 array). Never raises on
    a picture that is merely too small or flat: the result says so with ``p_value`` 1."""
    arr, _ = _as_array(picture)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE // 2:
        return Detection(False, 1.0, None, 0.0, threshold, reason="too small to detect")
    return _detect_residual(_residual(_luma(arr)), key, threshold)


def _detect_residual(r: F32, key: WatermarkKey, threshold: float) -> Detection:
    """:func:`detect` on a picture's residual (a caller with several pictures makes each once)."""
    h, w = r.shape
    u = _tile_scale(h, w)
    sync_spec = _sync_spectrum(key)
    # stage 1: the lattice the mark was made with (re-encodes, crops, colour changes keep it).
    # The error rate is split between the two stages (alpha spending: each p-value is doubled),
    # so stopping here when the mark reads costs a geometry search nothing in calibration
    identity = np.eye(2) * TILE * u
    folded0 = _fold(r, identity)
    z0, oy0, ox0 = _sync_score(folded0, sync_spec)
    p0 = min(1.0, _STAGES * TILE * TILE * float(ndtr(-z0)))
    if p0 <= threshold:
        payload0 = _read_payload(folded0, key, oy0, ox0)
        if payload0 is not None:
            return Detection(True, p0, payload0, z0, threshold, float(u), 0.0, "", 1)
    # stage 2: the geometry search (scale, aspect, rotation) over the autocorrelation's lattices
    lattices = [identity, *_lattices(r)]
    # screening folds a sample of the pixels (on the exact lattice coordinates, so no aliasing):
    # about _SCREEN_PIXELS of them, enough to rank candidates
    step = max(1, int(math.sqrt(r.size / _SCREEN_PIXELS)))
    sub = r[::step, ::step]

    def screen(lattice: F64) -> float:
        return _sync_score(_fold(sub, lattice / step), sync_spec, robust=False)[0]

    tries = len(lattices)
    if len(lattices) > _FULL_FOLDS:
        first = [screen(lat) for lat in lattices]
        best = [lattices[i] for i in sorted(range(len(lattices)), key=lambda i: -first[i])[:_FULL_FOLDS]]
    else:
        best = lattices
    # the autocorrelation's peaks can sit a pixel or two off: the scale is refined where the
    # sync correlation is highest, coarse then fine, within +-_REFINE px over the picture's extent
    extent = float(max(h, w))
    refined = []
    for lattice in best[:_REFINED]:
        coarse = 1 + np.arange(-_REFINE, _REFINE + 1, 2) / extent
        zs = [screen(lattice * f) for f in coarse]
        centre = coarse[int(np.argmax(zs))]
        fine = centre + np.array([-1.0, 0.0, 1.0]) / extent
        zf = [screen(lattice * f) for f in (fine[0], fine[2])]
        zf.insert(1, max(zs))
        pick = float(fine[int(np.argmax(zf))])
        if abs(pick - 1) > 0.5 / extent:
            refined.append(lattice * pick)
        tries += len(coarse) + 2
    scored = []
    for lattice in [*best, *refined]:
        folded = folded0 if lattice is identity else _fold(r, lattice)
        z, oy, ox = _sync_score(folded, sync_spec)
        scored.append((z, lattice, folded, oy, ox))
    scored.sort(key=lambda s: -s[0])
    tries *= TILE * TILE
    z, lattice, folded, oy, ox = scored[0]
    p_value = min(1.0, _STAGES * tries * float(ndtr(-z)))
    scale = math.sqrt(abs(float(np.linalg.det(lattice)))) / TILE
    rotation = math.degrees(math.atan2(lattice[1, 0], lattice[0, 0]))
    detected = p_value <= threshold
    payload = None
    reason = "" if detected else "no mark at this threshold"
    if detected:
        for cz, _lat, cfold, coy, cox in scored:
            if min(1.0, _STAGES * tries * float(ndtr(-cz))) > threshold:
                break
            payload = _read_payload(cfold, key, coy, cox)
            if payload is not None:
                break
        if payload is None:
            reason = "mark present, payload unreadable"
    return Detection(detected, p_value, payload, z, threshold, scale, rotation, reason, len(lattices))


def detect_frames(pictures: Any, key: WatermarkKey, *, threshold: float = DEFAULT_THRESHOLD) -> Detection:
    """Look for ``key``'s mark in several pictures carrying the same mark (a video's frames, all
    of one size). First their residuals are folded on the lattice the mark was made with and
    summed: the mark adds up, the content and the codec's noise only as the square root, so a
    payload too faint in any one frame reads from six. Else the best frame's own search. The
    p-value is Bonferroni over both families (each doubled)."""
    arrays = [_as_array(p)[0] for p in pictures]
    if not arrays:
        return Detection(False, 1.0, None, 0.0, threshold, reason="no picture to detect in")
    h, w = arrays[0].shape[:2]
    each = threshold / (2 * len(arrays))
    if min(h, w) < MIN_SIDE // 2 or any(a.shape[:2] != (h, w) for a in arrays):
        singles = [detect(a, key, threshold=each) for a in arrays]  # no sum: each on its own
    else:
        residuals = [_residual(_luma(a)) for a in arrays]  # once each: the sum and each search
        identity = np.eye(2) * TILE * _tile_scale(h, w)
        folded = sum((_fold(r, identity) for r in residuals), np.zeros((TILE, TILE)))
        z, oy, ox = _sync_score(folded, _sync_spectrum(key))
        p_sum = min(1.0, 2 * _STAGES * TILE * TILE * float(ndtr(-z)))
        if p_sum <= threshold:
            payload = _read_payload(folded, key, oy, ox)
            if payload is not None:
                return Detection(True, p_sum, payload, z, threshold, float(_tile_scale(h, w)), 0.0, "", 1)
        singles = [_detect_residual(r, key, each) for r in residuals]
    best = min(singles, key=lambda d: d.p_value)
    p_value = min(1.0, best.p_value * 2 * len(arrays))
    return dataclasses.replace(best, p_value=p_value, detected=p_value <= threshold, threshold=threshold)
