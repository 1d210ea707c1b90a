"""An invisible, keyed image watermark that survives re-encoding and geometry, on CPU, no weights.

Design (docs/watermark.md): a key-derived tile of ``TILE`` x ``TILE`` pixels is repeated over the
picture's luma, scaled by a texture mask. The tile is the sum of a *sync* pattern (known to the
key) and a *data* pattern (the key's chip signs times the coded payload bits). Because the mark
is periodic, the detector

1. whitens the picture (a local high-pass, divided by the local energy) so the content looks
   like noise and the mark stands out;
2. finds the tile's lattice (scale, aspect, rotation) from the peaks of the residual's
   autocorrelation -- the mark synchronises itself, no template in the spectrum is needed; a
   small picture, whose autocorrelation is faint, also has its downscales scanned by folding;
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
from labeler.watermark.payload import CODED_BITS, Payload, decode_bits, decode_list, encode_bits

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
_AC_LOW = 0.06  # cycles per pixel: the autocorrelation's high-pass
_CANDIDATES = 24  # lattices scored per picture (each adds to the Bonferroni factor) ...
_CANDIDATES_BIG = 16  # ... on a big one, whose autocorrelation is the surest ...
_AXIS_CANDIDATES = 8  # ... of which up to this many from the peaks on the axes
_AXIS_PEAKS = 4
_FULL_FOLDS = 2  # of which this many, the best on the sample, are scored in full (median, MAD) ...
_FULL_FOLDS_ALL = 1  # ... and this many folded on every pixel when the sample was not all of them
_FULL_GATE = 5.0  # ... and its z on the sample at least this (unmarked pictures: 4-5)
_SCREEN_PIXELS = 40_000
_SCREEN_ALL = 200_000  # pictures up to this many pixels are screened on all of them
_REFINED = 1  # of the full folds, this many have their scale refined first ...
_REFINED_SMALL = 2  # ... this many on a small picture (every pixel screened: cheap)
_SCAN = (0.4, 1.1)  # small pictures: these scales scanned by folding ...
_SCAN_STEP = 2.5  # ... a step of this many px over the picture apart
_SCAN_PICKS = 2  # ... and the best this many refined
_REFINE = 6  # ... over +-6 px of the picture's extent
_LAG_MAX_SHARE = 0.55  # ... and at most this share of the picture's shorter side
_STAGES = 4  # detection may stop after each of four stages; the error rate is split in four
_LIST = 64  # paths kept by the list decode of a detected mark whose plain decode failed


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
    """Nearest upsampling then a light circular blur: band-limits the mark (JPEG, resampling).
    (No matrix products here: BLAS's threads would spin against a second worker process.)"""
    px = np.repeat(np.repeat(chips, CHIP, axis=0), CHIP, axis=1)
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


def _luma_quick(rgb: npt.NDArray[Any]) -> F32:
    """Luma for detection: BT.601 in 8-bit fixed point (weights 77, 150, 29 of 256), summed in
    uint16; a fraction of a level from the float weights, and cheaper."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    y = rgb[..., 0].astype(np.uint16) * np.uint16(77)
    y += rgb[..., 1].astype(np.uint16) * np.uint16(150)
    y += rgb[..., 2].astype(np.uint16) * np.uint16(29)
    out: F32 = y.astype(np.float32)
    out *= np.float32(1 / 256)
    return out


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


_BAND_PIXELS = 1 << 17  # the picture is worked in bands of rows of about this many pixels: its
# bytes out of Pillow stay a few hundred KiB (cache-warm, and below the size at which each fresh
# buffer costs its pages faulted in again: on a VM that was half of the whole-array embedder's time)


def _band_rows(w: int, tile: int) -> int:
    """Rows per band: even (whole 2 x 2 blocks), at most one tile."""
    return max(2, min(tile, _BAND_PIXELS // max(w, 1)) // 2 * 2)


def _ssim_budget(img: Image.Image) -> F32:
    """How much change each 2 x 2 block hides, as SSIM sees it, at half the picture's size: a
    change of variance v in a window of variance s2 costs about v / (2 s2 + C2) of SSIM, so the
    mark's variance follows 2 s2 + C2 (texture hides it, flat sky does not; and texture is
    where JPEG keeps it).

    The variance is exact over 8 x 8 windows aligned to 2 x 2 blocks (edges mirrored), from the
    blocks' sums of y and y^2 (pooling is a sum, so nothing is lost): a quarter of the filtering
    work. An odd last row or column takes its neighbour's budget. Luma is Pillow's (BT.601)."""
    from labeler.watermark.kernels import budget_rows  # numba, if there: only the embedder uses it

    w, h = img.size
    h2, w2 = h // 2, w // 2
    budget = np.empty((h2 + h % 2, w2 + w % 2), np.float32)
    step = _band_rows(w, TILE) // 2
    for p0 in range(0, h2, step):
        p1 = min(h2, p0 + step)
        q0, q1 = max(0, p0 - 2), min(h2, p1 + 1)  # the windows' 2 pooled rows above, 1 below
        band = img.crop((0, 2 * q0, 2 * w2, 2 * q1))
        y = np.asarray(band if band.mode == "L" else band.convert("L"))
        budget_rows(y, budget[p0:p1, :w2], 2 - (p0 - q0), p1 + 1 - q1, _C2)
    if h % 2:
        budget[h2] = budget[h2 - 1]
    if w % 2:
        budget[:, w2] = budget[:, w2 - 1]
    return budget


def _tile_scale(h: int, w: int) -> int:
    """Big pictures get a bigger tile (whole pixels per chip), so a platform's downscale to
    ~1 MP leaves the chips at least a pixel wide."""
    return max(1, min(h, w) // 1024)


#: how each mode's pixels are read and written: the raw layout and its bytes per pixel (the
#: same change on R, G, B: luma only, hue and alpha untouched)
_LAYOUT = {"L": ("L", 1), "RGB": ("RGBX", 4), "RGBA": ("RGBA", 4)}


def _as_image(picture: Any, in_place: bool) -> Image.Image:
    """A PIL image in L, RGB or RGBA for the embedder to change: arrays are wrapped (a copy),
    other modes converted as detection reads them, and the caller's image copied unless
    ``in_place``."""
    from PIL import Image

    if isinstance(picture, np.ndarray):
        return Image.fromarray(_as_array(picture)[0])
    if picture.mode not in _LAYOUT:
        return picture.convert("RGBA" if "A" in picture.mode or "transparency" in picture.info else "RGB")  # type: ignore[no-any-return]
    return picture if in_place else picture.copy()  # type: ignore[no-any-return]


def embed(
    picture: PictureT, key: WatermarkKey, payload: Payload, *, strength: float = 1.0, in_place: bool = False
) -> Embedded:
    """Mark a decoded picture (PIL Image or uint8 array); returns the same kind, same size.
    ``in_place``: a PIL image in L, RGB or RGBA is changed and returned itself (no copy).

    Raises :class:`WatermarkCapacityError` for a picture smaller than a tile or too flat."""
    from PIL import Image

    from labeler.watermark.kernels import mark_rows  # numba, if there: only the embedder uses it

    w, h = picture.size if not isinstance(picture, np.ndarray) else picture.shape[1::-1]
    if min(h, w) < MIN_SIDE:
        raise WatermarkCapacityError("too small", f"{w}x{h} is too small to watermark (min side {MIN_SIDE})")
    img = _as_image(picture, in_place)
    budget = _ssim_budget(img)
    mean_budget = float(budget.mean())
    gain = min(_SSIM_LOSS**0.5, TARGET_RMS / mean_budget**0.5) * strength
    if gain * mean_budget**0.5 < MIN_RMS:
        raise WatermarkCapacityError("too flat", "the picture is too flat to watermark invisibly")
    u = _tile_scale(h, w)
    tile = _tile(key, payload)
    if u > 1:
        tile = np.kron(tile, np.ones((u, u), dtype=np.float32))
    rawmode, stride = _LAYOUT[img.mode]
    band = _band_rows(w, tile.shape[0])
    squares = 0
    for r0 in range(0, h, band):  # each band's bytes out of Pillow, marked, and pasted back
        n = min(band, h - r0)
        rows = np.frombuffer(img.crop((0, r0, w, r0 + n)).tobytes("raw", rawmode), np.uint8)
        rows = rows.reshape(n, w * stride).copy()
        squares += mark_rows(rows, stride, budget, r0, tile, gain, 3 * TARGET_RMS, w)
        img.paste(Image.frombytes(img.mode, (w, n), rows, "raw", rawmode), (0, r0))
    channels = 1 if img.mode == "L" else 3
    mse = squares / (channels * h * w)
    psnr = 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf
    if isinstance(picture, np.ndarray):
        return Embedded(np.array(img), psnr, u)
    if img is not picture:
        img.info.update({k: v for k, v in picture.info.items() if k in ("icc_profile", "dpi")})
    return Embedded(img, psnr, u)


# ---------------------------------------------------------------- detection


def _box3(y: F32) -> F32:
    """3x3 mean (edges mirrored) by shifted sums: 4x faster than ndimage.uniform_filter."""
    p = np.pad(y, 1, mode="symmetric")
    v = p[:-2] + p[1:-1] + p[2:]
    out: F32 = (v[:, :-2] + v[:, 1:-1] + v[:, 2:]) * np.float32(1 / 9)
    return out


def _box_sum(a: F32, k: int) -> F32:
    """k x k box sum (k odd, edges repeated) by shifted adds: down the columns as cheap as
    along the rows (a filter down a column walks memory with a stride)."""
    m = k // 2
    h, w = a.shape
    p = np.pad(a, m, mode="edge")
    rows = p[:h].copy()
    for i in range(1, k):
        rows += p[i : i + h]
    out: F32 = rows[:, :w].copy()
    for i in range(1, k):
        out += rows[:, i : i + w]
    return out


def _residual(y: F32) -> F32:
    """The content whitened: a local high-pass over its local energy, clipped (edges count
    as much as any other pixel, no more). The energy is a 10 x 10 mean taken on 2 x 2 sums
    (it varies slowly; a quarter of the work)."""
    r: F32 = y - _box3(y)
    h, w = r.shape
    hh, ww = h // 2 * 2, w // 2 * 2
    e = r[:hh, :ww] * r[:hh, :ww]
    pooled = e[0::2, 0::2] + e[1::2, 0::2] + e[0::2, 1::2] + e[1::2, 1::2]
    gain = _box_sum(pooled, 5)
    gain *= np.float32(1 / 100)
    gain += np.float32(1.0)
    np.sqrt(gain, out=gain)
    np.divide(np.float32(1.0), gain, out=gain)
    if (hh, ww) == (h, w):
        r.reshape(hh // 2, 2, ww // 2, 2)[...] *= gain[:, None, :, None]
    else:  # an odd last row/column takes its neighbour's gain
        full = np.repeat(np.repeat(gain, 2, axis=0), 2, axis=1)
        r *= np.pad(full, ((0, h - hh), (0, w - ww)), mode="edge")
    np.clip(r, -3.0, 3.0, out=r)
    return r


def _fold_grid(r: F32, u: int) -> F64:
    """:func:`_fold` for the lattice the mark was made with (axis-aligned, ``TILE * u`` px):
    whole tiles summed by a reshape, the edges' part-tiles added on, no per-pixel index."""
    t = TILE * u
    h, w = r.shape
    nh, nw = h // t, w // t
    out = np.zeros((t, t), np.float32)
    if nh and nw:
        out += r[: nh * t, : nw * t].reshape(nh, t, nw, t).sum(axis=(0, 2))
    if h > nh * t and nw:
        out[: h - nh * t] += r[nh * t :, : nw * t].reshape(h - nh * t, nw, t).sum(axis=1)
    if w > nw * t and nh:
        out[:, : w - nw * t] += r[: nh * t, nw * t :].reshape(nh, t, w - nw * t).sum(axis=0)
    out[: h - nh * t, : w - nw * t] += r[nh * t :, nw * t :]
    if u > 1:
        out = out.reshape(TILE, u, TILE, u).sum(axis=(1, 3))
    return out.astype(np.float64)


def _cubic(img: F32, ys: F64, xs: F64) -> F64:
    """``img`` at fractional points (Keys' cubic convolution, 4 x 4 neighbours; points within
    the picture's border of 2 px are clamped): smooth enough to climb to a peak between
    pixels, where a bilinear one always stops on a pixel."""
    h, w = img.shape
    ys = np.clip(ys, 1.0, h - 2.001)
    xs = np.clip(xs, 1.0, w - 2.001)
    iy, ix = ys.astype(np.intp), xs.astype(np.intp)
    t = np.stack([ys - iy, xs - ix])[..., None] + _KEYS_AT  # (2, ..., 4): distances to the taps
    t = np.abs(t)
    k = np.where(t <= 1, (1.5 * t - 2.5) * t * t + 1, ((-0.5 * t + 2.5) * t - 4) * t + 2)
    taps = img.ravel()[((iy - 1) * w + ix - 1)[..., None, None] + (_TAPS[0] * w + _TAPS[1])]
    out: F64 = ((k[0][..., :, None] * taps).sum(axis=-2) * k[1]).sum(axis=-1)
    return out


_KEYS_AT = np.array([1.0, 0.0, -1.0, -2.0])  # a point's distance to its 4 taps, less its fraction
_TAPS = np.mgrid[0:4, 0:4]  # (2, 4, 4): tap offsets in y and x


_NEAR = np.mgrid[-2:3, -2:3].reshape(2, 25)  # a 5 x 5 neighbourhood's offsets
_PEAK_POOL = 600  # the highest autocorrelation values looked at for local maxima
_COMB = np.array(  # the lattice points (i v1 + j v2) a candidate is refined and ranked on
    [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, -1), (1, -2)], dtype=np.float64
)


def _comb_refine(ac: F32, lattices: F64, reach_ok: float) -> tuple[F64, F64]:
    """Each candidate lattice (n, 2, 2) moved to where the autocorrelation summed over its
    lattice points (v1, v2, v1 +- v2, 2 v1, ...) peaks: every point in reach pins the lattice
    down, not the two shortest alone. Parabolic steps of at most 1, 1/2, 1/4 px.
    Returns the lattices and their mean height over the points in reach."""
    c = ac.shape[0] // 2
    lat = lattices.copy()
    pts = np.einsum("kj,nij->nki", _COMB, lat)  # (n, k, 2): x, y of each lattice point
    use = (np.abs(pts) <= reach_ok).all(axis=2).astype(np.float64)  # (n, k)
    count = np.maximum(use.sum(axis=1), 1.0)

    def value(cands: F64) -> F64:  # cands (n, m, 2, 2) -> (n, m)
        p = np.einsum("kj,nmij->nmki", _COMB, cands)
        got = _cubic(ac, p[..., 1] + c, p[..., 0] + c)
        out: F64 = (got * use[:, None, :]).sum(axis=2) / count[:, None]
        return out

    for s in (1.0, 0.5, 0.25):  # the four coordinates stepped together, each on its parabola
        trial = np.repeat(lat[:, None], 9, axis=1)
        for q in range(4):
            trial[:, 2 * q + 1, q // 2, q % 2] -= s
            trial[:, 2 * q + 2, q // 2, q % 2] += s
        f = value(trial)
        for q in range(4):
            lo, mid, hi = f[:, 2 * q + 1], f[:, 0], f[:, 2 * q + 2]
            curv = lo - 2 * mid + hi
            vertex = 0.5 * (lo - hi) / np.where(curv < 0, curv, -1.0)
            climb = np.where(np.maximum(lo, hi) > mid, np.where(hi > lo, s, -s), 0.0)
            lat[:, q // 2, q % 2] += np.where(curv < 0, np.clip(vertex * s, -s, s), climb)
    return lat, value(lat[:, None])[:, 0]


@lru_cache(maxsize=16)
def _ring(reach: int, lag_max: int) -> tuple[npt.NDArray[np.intp], ...]:
    """Flat indices of the autocorrelation window (side 2 * reach) within the lag range and
    +-30 degrees of the x axis, and of the y axis."""
    yy, xx = np.mgrid[-reach:reach, -reach:reach]
    length = np.hypot(yy, xx)
    angle = np.degrees(np.arctan2(yy, xx))
    ring = (length >= _LAG_MIN) & (length <= lag_max)
    along_x = np.flatnonzero(ring & (np.abs(angle) <= 30))
    along_y = np.flatnonzero(ring & (angle >= 60) & (angle <= 120))
    axis_x = np.flatnonzero(ring & (np.abs(yy) <= 2) & (xx > 0))
    axis_y = np.flatnonzero(ring & (np.abs(xx) <= 2) & (yy > 0))
    return along_x, along_y, axis_x, axis_y


@lru_cache(maxsize=16)
def _ac_weight(ch: int, cw: int) -> F32:
    """The autocorrelation's blur (a Gaussian of _AC_BLUR px) and a high-pass below _AC_LOW
    cycles per pixel, as one weight on the power spectrum: the whitened residual keeps slow
    undulations from the content, which the blur would otherwise make the strongest part."""
    fy = np.fft.fftfreq(ch)[:, None]
    fx = np.fft.rfftfreq(cw)[None, :]
    f2 = fy * fy + fx * fx
    out: F32 = (np.exp(-2 * np.pi**2 * _AC_BLUR**2 * f2) * (1 - np.exp(-f2 / _AC_LOW**2))).astype(np.float32)
    return out


def _lattices(r: F32, count: int) -> list[F64]:
    """Candidate tile lattices (2x2, columns = the two tile vectors in pixels) from the peaks of
    the residual's autocorrelation. The spectrum is whitened first (what is left of the content
    then has no peaks) and a JPEG/WebP 8 px block grid's lines are cut out of it: the crop is a
    multiple of 8 px, so they fall on exact frequency bins and one bin each removes them (their
    multiples of 8 px would outrank and pull the mark's peaks). A pair of peaks is refined and
    ranked by the whole lattice it implies (v1, v2, v1+v2, v1-v2, ... all peak for the mark,
    rarely for anything else)."""
    h, w = r.shape
    ch, cw = min(h, _AC_MAX) // 8 * 8, min(w, _AC_MAX) // 8 * 8
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = r[y0 : y0 + ch, x0 : x0 + cw]
    spec = rfft2(crop - crop.mean(), workers=1)
    power = spec.real * spec.real + spec.imag * spec.imag
    power /= _box_sum(power, 9) * np.float32(1 / 81) + np.float32(1e-9)
    level = power.mean()  # cut out, not zeroed: a zeroed line leaves a ridge along the axis
    power[:, [m * cw // 8 for m in range(5)]] = level
    power[[m * ch // 8 for m in range(8)], :] = level
    lag_max = min(_LAG_MAX_SCALE * TILE * _tile_scale(h, w), _LAG_MAX_SHARE * min(ch, cw))
    reach = min(int(lag_max * 1.5) + 3, ch // 2, cw // 2)
    full = irfft2(power * _ac_weight(ch, cw), s=(ch, cw), workers=1)
    rows, cols = np.arange(-reach, reach) % ch, np.arange(-reach, reach) % cw
    ac: F32 = np.ascontiguousarray(full[rows][:, cols], dtype=np.float32)
    side = 2 * reach

    def best(region: npt.NDArray[np.intp], count: int) -> list[tuple[float, float]]:
        """The ``count`` highest local maxima (5 x 5) in ``region``, to a fraction of a pixel."""
        if region.size == 0:
            return []
        vals = ac.flat[region]
        if region.size > _PEAK_POOL:
            keep = np.argpartition(vals, region.size - _PEAK_POOL)[-_PEAK_POOL:]
            region, vals = region[keep], vals[keep]
        top = region[np.argsort(vals)[::-1]]
        iy, ix = np.clip(top // side, 2, side - 3), np.clip(top % side, 2, side - 3)
        near = ac[iy[:, None] + _NEAR[0], ix[:, None] + _NEAR[1]].max(axis=1)
        out: list[tuple[float, float]] = []
        peak = ac[iy, ix] >= near
        for y, x in zip(iy[peak][:count], ix[peak][:count], strict=True):
            py, px = _subpixel(ac, int(y), int(x))
            out.append((px - reach, py - reach))
        return out

    along_x, along_y, axis_x, axis_y = _ring(reach, int(lag_max))

    def pairs_of(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> F64:
        pairs = []
        for vx, vy in xs:  # a similarity (scale, rotation) and any partner peak (aspect change)
            n1, a1 = math.hypot(vx, vy), math.degrees(math.atan2(vy, vx))
            pairs.append([[vx, -vy], [vy, vx]])
            for ux, uy in ys:
                n2, a2 = math.hypot(ux, uy), math.degrees(math.atan2(uy, ux))
                if 0.75 <= n2 / n1 <= 1.33 and abs(a2 - a1 - 90) <= 10:
                    pairs.append([[vx, ux], [vy, uy]])
        for ux, uy in ys:
            pairs.append([[uy, ux], [-ux, uy]])
        return np.array(pairs, dtype=np.float64).reshape(-1, 2, 2)

    # platforms rescale far more often than they rotate: the peaks on the axes are looked at on
    # their own (a line has far fewer noise peaks than the plane, so a faint mark still ranks)
    out: list[F64] = []
    for group, quota in (
        (pairs_of(best(axis_x, _AXIS_PEAKS), best(axis_y, _AXIS_PEAKS)), _AXIS_CANDIDATES),
        (pairs_of(best(along_x, 6), best(along_y, 6)), count),
    ):
        if not len(group):
            continue
        refined, heights = _comb_refine(ac, group, reach - 3.0)
        for i in np.argsort(-heights):
            if len(out) >= quota:
                break
            if not out or np.abs(np.array(out) - refined[i]).max(axis=(1, 2)).min() > 1.5:
                out.append(refined[i])
    return out


def _subpixel(ac: F32, iy: int, ix: int) -> tuple[float, float]:
    def vertex(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if d >= 0 else max(-0.5, min(0.5, 0.5 * (a - c) / d))

    h, w = ac.shape
    dy = vertex(ac[(iy - 1) % h, ix], ac[iy, ix], ac[(iy + 1) % h, ix])
    dx = vertex(ac[iy, (ix - 1) % w], ac[iy, ix], ac[iy, (ix + 1) % w])
    return iy + dy, ix + dx


def _fold(r: F32 | F64, lattice: F64) -> F64:
    """Sum every residual pixel into its place in the tile (coordinates modulo the lattice)."""
    h, w = r.shape
    inv = (np.linalg.inv(lattice / TILE)).astype(np.float32)
    off = np.float32(TILE * 4096 + 0.5)  # keeps coordinates positive: truncation rounds
    cx = (inv[0, 0] * _ramp(w))[None, :] + (inv[0, 1] * _ramp(h) + off)[:, None]
    cy = (inv[1, 0] * _ramp(w))[None, :] + (inv[1, 1] * _ramp(h) + off)[:, None]
    bins = (cy.astype(np.int32) & (TILE - 1)) * TILE + (cx.astype(np.int32) & (TILE - 1))
    sums = np.bincount(bins.ravel(), weights=r.ravel(), minlength=TILE * TILE)
    out: F64 = sums.astype(np.float64, copy=False).reshape(TILE, TILE)
    return out


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


def _quick_score(folded: F64, spec32: npt.NDArray[np.complex64]) -> float:
    """:func:`_sync_score`'s z by mean and standard deviation, in single precision: to rank
    candidate lattices, not to report."""
    corr = irfft2(rfft2(folded.astype(np.float32), workers=1) * spec32, s=folded.shape, workers=1)
    sd = float(corr.std())
    return (float(corr.max()) - float(corr.mean())) / sd if sd > 0 else 0.0


@lru_cache(maxsize=32)
def _sync_spectrum(key: WatermarkKey) -> npt.NDArray[np.complex128]:
    spec: npt.NDArray[np.complex128] = np.conj(rfft2(_key_patterns(key).sync_px.astype(np.float64)))
    return spec


def _soft_values(folded: F64, key: WatermarkKey, oy: int, ox: int) -> F64:
    """The CODED_BITS soft values at an origin: sync subtracted, matched filter, chips summed
    per coded bit with the key's signs."""
    pats = _key_patterns(key)
    aligned = np.roll(folded, (-oy, -ox), axis=(0, 1))
    sync = pats.sync_px.astype(np.float64)
    aligned = aligned - sync * (float(np.sum(aligned * sync)) / float(np.sum(sync * sync)))
    matched = ndimage.gaussian_filter(aligned, 0.7, mode="wrap")
    chips = matched.reshape(CHIPS, CHIP, CHIPS, CHIP).sum(axis=(1, 3))
    soft = np.bincount(
        pats.assign_chip.ravel(), weights=(chips * pats.sign_chip).ravel(), minlength=CODED_BITS
    )
    values: F64 = soft.astype(np.float64)
    return values


def _read_payload(folded: F64, key: WatermarkKey, oy: int, ox: int) -> Payload | None:
    values = _soft_values(folded, key, oy, ox)
    # the key's own id first (16 bits fewer to decode), then any id (a mark made with a payload
    # that names another key still reads)
    return decode_bits(values, key.key_id) or decode_bits(values)


def _read_list(folded: F64, key: WatermarkKey, oy: int, ox: int) -> Payload | None:
    """The last resort for a detected mark whose plain decode failed: a CRC-aided list decode
    with the key id decoded, not fixed, and compared (noise passes both checks at about
    _LIST * 2^-32 per read)."""
    return decode_list(_soft_values(folded, key, oy, ox), key.key_id, _LIST, fixed=False)


def detect(picture: Any, key: WatermarkKey, *, threshold: float = DEFAULT_THRESHOLD) -> Detection:
    """Look for ``key``'s mark in a decoded picture (PIL Image or uint8 array). Never raises on
    a picture that is merely too small or flat: the result says so with ``p_value`` 1."""
    arr, _ = _as_array(picture)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE // 2:
        return Detection(False, 1.0, None, 0.0, threshold, reason="too small to detect")
    return _detect_residual(_residual(_luma_quick(arr)), key, threshold)


def _found(
    z: float,
    p: float,
    lattice: F64,
    folded: F64,
    oy: int,
    ox: int,
    key: WatermarkKey,
    threshold: float,
    n: int,
) -> Detection | None:
    """A detection whose payload reads, else None."""
    if p > threshold:
        return None
    payload = _read_payload(folded, key, oy, ox)
    if payload is None:
        return None
    return Detection(True, p, payload, z, threshold, *_geometry(lattice), "", n)


def _geometry(lattice: F64) -> tuple[float, float]:
    """A lattice's scale (against the made-with tile) and rotation in degrees, as reported."""
    scale = math.sqrt(abs(float(np.linalg.det(lattice)))) / TILE
    return scale, math.degrees(math.atan2(lattice[1, 0], lattice[0, 0]))


@lru_cache(maxsize=32)
def _spec_pooled(key: WatermarkKey) -> npt.NDArray[np.complex64]:
    """The sync pattern pooled 2 x 2 (a tile of TILE / 2 bins), as :func:`_sync_spectrum`."""
    half = TILE // 2
    pooled = _key_patterns(key).sync_px.reshape(half, 2, half, 2).sum(axis=(1, 3))
    spec: npt.NDArray[np.complex64] = np.conj(rfft2(pooled)).astype(np.complex64)
    return spec


def _scan(r: F32, spec: npt.NDArray[np.complex64], extent: float) -> tuple[F64, F64]:
    """The scales from _SCAN[0] to _SCAN[1] of the made-with tile, a step of _SCAN_STEP px over
    ``extent`` apart, each scored by folding the 2 x 2 pooled residual (axis-aligned, so the
    bins are a row index plus a column index)."""
    half = TILE // 2
    h, w = r.shape[0] // 2 * 2, r.shape[1] // 2 * 2
    pooled = r[:h, :w].reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3), dtype=np.float64)
    weights = pooled.ravel()
    ratio = 1 + _SCAN_STEP / extent
    count = int(math.log(_SCAN[1] / _SCAN[0]) / math.log(ratio)) + 1
    scales: F64 = _SCAN[0] * ratio ** np.arange(count, dtype=np.float64)
    off = np.float32(half * 4096 + 0.5)
    zs = np.empty(len(scales))
    for n, scale in enumerate(scales):
        per_px = np.float32(half / (TILE * _tile_scale(*r.shape) * scale / 2))
        bx = (per_px * _ramp(w // 2) + off).astype(np.int32) & (half - 1)
        by = ((per_px * _ramp(h // 2) + off).astype(np.int32) & (half - 1)) * half
        folded = np.bincount((by[:, None] + bx[None, :]).ravel(), weights=weights, minlength=half * half)
        corr = irfft2(rfft2(folded.reshape(half, half).astype(np.float32), workers=1) * spec, workers=1)
        sd = float(corr.std())
        zs[n] = (float(corr.max()) - float(corr.mean())) / sd if sd > 0 else 0.0
    return scales, zs


def _polish(r: F32, lattice: F64, sync_spec: npt.NDArray[np.complex128]) -> F64:
    """A detected lattice moved to where the sync correlation on every pixel is highest: each
    axis stretched and sheared on its own, by 1, 1/2 and 1/4 px over the picture (the payload
    needs the chips aligned more closely than detection does). Only after a detection: the
    p-value is the one found before, so these tries do not count in it."""
    h, w = r.shape
    spec32 = sync_spec.astype(np.complex64)
    best = (_quick_score(_fold(r, lattice), spec32), lattice)
    for d in (1.0, 0.5, 0.25):
        for i, j in ((0, 0), (1, 1), (0, 1), (1, 0)):
            for sign in (-1.0, 1.0):
                warp = np.eye(2)
                warp[i, j] += sign * d / (w, h)[j]
                tried = warp @ best[1]
                z = _quick_score(_fold(r, tried), spec32)
                if z > best[0]:
                    best = (z, tried)
                    break
    return best[1]


def _detect_residual(r: F32, key: WatermarkKey, threshold: float) -> Detection:
    """:func:`detect` on a picture's residual (a caller with several pictures makes each once).

    Up to four stages, each may stop the search; the error rate is split between them (alpha
    spending: each p-value is multiplied by their number), so stopping early costs nothing in
    calibration: 1. the lattice the mark was made with; 2. the autocorrelation's lattices,
    screened on every pixel of a small picture, else on a sample; 3. a big picture: the
    sample's best folded in full; 4. a small picture: its downscales scanned by folding."""
    h, w = r.shape
    u = _tile_scale(h, w)
    sync_spec = _sync_spectrum(key)
    identity = np.eye(2) * TILE * u

    def p_of(z: float, tries: int) -> float:
        return min(1.0, _STAGES * tries * TILE * TILE * float(ndtr(-z)))

    # stage 1: re-encodes, crops and colour changes keep the lattice the mark was made with
    folded0 = _fold_grid(r, u)
    z0, oy0, ox0 = _sync_score(folded0, sync_spec)
    found = _found(z0, p_of(z0, 1), identity, folded0, oy0, ox0, key, threshold, 1)
    if found is not None:
        return found
    # stage 2: the geometry search (scale, aspect, rotation) over the autocorrelation's lattices,
    # scored on every pixel of a small picture, else on a sample of about _SCREEN_PIXELS (on the
    # exact lattice coordinates: no aliasing)
    step = max(1, int(math.sqrt(r.size / _SCREEN_PIXELS))) if r.size > _SCREEN_ALL else 1
    lattices = [identity, *_lattices(r, _CANDIDATES if step == 1 else _CANDIDATES_BIG)]
    sub = np.ascontiguousarray(r[::step, ::step], dtype=np.float64)
    spec32 = sync_spec.astype(np.complex64)

    def screen(lattice: F64) -> tuple[float, F64, F64]:
        folded = _fold(sub, lattice / step)
        return _quick_score(folded, spec32), folded, lattice

    screened = sorted((screen(lat) for lat in lattices), key=lambda s: -s[0])
    tries = len(lattices)
    # the autocorrelation's peaks can sit a pixel or two off: the best lattices' scale is refined
    # where the sync correlation is highest, coarse then fine, within +-_REFINE px over the extent;
    # on a small picture (every pixel screened, so cheap; its autocorrelation is the least sure)
    # the best few
    extent = float(max(h, w))

    def refine(first: tuple[float, F64, F64], per_axis: bool, reach: int) -> list[tuple[float, F64, F64]]:
        """Every lattice tried around ``first`` (scale within +-``reach`` px over the extent,
        then each axis on its own), the best last."""
        lattice = first[2]
        coarse = [screen(lattice * (1 + d / extent)) for d in range(-reach, reach + 1, 2) if d]
        centre = max([*coarse, first], key=lambda s: s[0])
        fine = [screen(centre[2] * (1 + d / extent)) for d in (-1, 1)]
        tried = [*coarse, *fine]
        here = max([centre, *fine], key=lambda s: s[0])
        for d in (1.0, 0.5) if per_axis else ():
            for axis, side in ((0, w), (1, h)):
                for sign in (-1.0, 1.0):
                    stretch = np.ones(2)
                    stretch[axis] += sign * d / side
                    tried.append(screen(stretch[:, None] * here[2]))
                    if tried[-1][0] > here[0]:
                        here = tried[-1]
                        break
        return [*tried, here]

    for first in list(screened[: _REFINED if step > 1 else _REFINED_SMALL]):
        tried = refine(first, False, _REFINE)
        screened += tried[:-1]
        tries += len(tried) - 1
    screened.sort(key=lambda s: -s[0])
    scored = []
    for _, folded, lattice in screened[:_FULL_FOLDS]:
        z, oy, ox = _sync_score(folded, sync_spec)
        scored.append((z, lattice, folded, oy, ox))
    scored.sort(key=lambda s: -s[0])

    def first_read(candidates: list[tuple[float, F64, F64, int, int]]) -> Detection | None:
        """The first candidate (best first) whose payload reads, while its p-value is below the
        threshold at the tries counted so far."""
        for z, lattice, folded, oy, ox in candidates:
            if p_of(z, tries) > threshold:
                return None
            found = _found(z, p_of(z, tries), lattice, folded, oy, ox, key, threshold, len(lattices))
            if found is not None:
                return found
        return None

    if (found := first_read(scored)) is not None:
        return found
    if step > 1 and scored[0][0] >= _FULL_GATE:
        # stage 3: every pixel, on the lattice the sample liked best, if it stood out at all
        full = []
        for _, lattice, _, _, _ in scored[:_FULL_FOLDS_ALL]:
            folded = folded0 if lattice is identity else _fold(r, lattice)
            z, oy, ox = _sync_score(folded, sync_spec)
            full.append((z, lattice, folded, oy, ox))
        full.sort(key=lambda s: -s[0])
        if (found := first_read(full)) is not None:
            return found
        if full[0][0] > scored[0][0]:
            scored = full
    if step == 1:
        # stage 4, small pictures only: their autocorrelation is often too faint to show a
        # downscale the fold still finds, so the scales from _SCAN[0] to _SCAN[1] (no rotation)
        # are scanned by folding a 2 x 2 pooled residual (a quarter of the work; every step of
        # _SCAN_STEP px over the picture counts in the Bonferroni factor), the best refined
        scales, zs = _scan(r, _spec_pooled(key), extent)
        tries += len(scales)
        picks: list[tuple[float, F64, F64]] = []
        for i in np.argsort(zs)[::-1]:
            if len(picks) == _SCAN_PICKS:
                break
            if all(abs(scales[i] * TILE * u / p[2][0, 0] - 1) > 2 * _SCAN_STEP / extent for p in picks):
                picks.append(screen(identity * scales[i]))
        tries += len(picks)
        scan_scored = []
        for first in picks:
            tried = refine(first, True, 0)  # the scan's step is finer than +-1 px
            tries += len(tried) - 1
            _, folded, lattice = tried[-1]
            z, oy, ox = _sync_score(folded, sync_spec)
            scan_scored.append((z, lattice, folded, oy, ox))
        scan_scored.sort(key=lambda s: -s[0])
        if (found := first_read(scan_scored)) is not None:
            return found
        if scan_scored and scan_scored[0][0] > scored[0][0]:
            scored = scan_scored
    z, lattice = scored[0][0], scored[0][1]
    p_value = p_of(z, tries)
    detected = p_value <= threshold
    if detected:  # the mark is there but its lattice a fraction of a pixel off: polish, read again
        polished = _polish(r, lattice, sync_spec)
        folded = _fold(r, polished)
        _, oy, ox = _sync_score(folded, sync_spec)
        found = _found(z, p_value, polished, folded, oy, ox, key, threshold, len(lattices))
        if found is not None:
            return found
        # still unread: the list decode, at the polished lattice, then at the one found
        _, _, folded1, oy1, ox1 = scored[0]
        for fold_at, lat_at, at_y, at_x in ((folded, polished, oy, ox), (folded1, lattice, oy1, ox1)):
            payload = _read_list(fold_at, key, at_y, at_x)
            if payload is not None:
                return Detection(True, p_value, payload, z, threshold, *_geometry(lat_at), "", len(lattices))
    scale, rotation = _geometry(lattice)
    reason = "mark present, payload unreadable" if detected else "no mark at this threshold"
    return Detection(detected, p_value, None, z, threshold, scale, rotation, reason, len(lattices))


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
        residuals = [_residual(_luma_quick(a)) for a in arrays]  # once each: the sum and each search
        folded = sum((_fold_grid(r, _tile_scale(h, w)) for r in residuals), np.zeros((TILE, TILE)))
        z, oy, ox = _sync_score(folded, _sync_spectrum(key))
        p_sum = min(1.0, 2 * _STAGES * TILE * TILE * float(ndtr(-z)))
        if p_sum <= threshold:
            payload = _read_payload(folded, key, oy, ox) or _read_list(folded, key, oy, ox)
            if payload is not None:
                return Detection(True, p_sum, payload, z, threshold, float(_tile_scale(h, w)), 0.0, "", 1)
        singles = [_detect_residual(r, key, each) for r in residuals]
    best = min(singles, key=lambda d: d.p_value)
    p_value = min(1.0, best.p_value * 2 * len(arrays))
    return dataclasses.replace(best, p_value=p_value, detected=p_value <= threshold, threshold=threshold)
