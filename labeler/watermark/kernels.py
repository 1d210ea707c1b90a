"""The embedder's two per-pixel loops: the SSIM budget of a band, and the mark added to a band.

Each exists twice, writing the same pixels (float32 arithmetic in the same order, rounding to
nearest even): numpy passes, one over the band per operation (the mark in a label: 7.3 ms per
megapixel), and, with the ``watermark-fast`` extra, loops compiled by numba that read and write
each byte once (3.5 ms; numba costs ~150 MB of memory in a process that marks pictures, hence
an extra). ``COMPILED`` says which is in use. The whole-array float64 reference in
``tests/test_watermark.py`` checks both (a level may differ at a rare .5 tie).

Compiled code is cached beside this file, or in numba's user cache; where neither is writable
(a read-only container) it is compiled once per process instead of failing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

try:
    from numba import njit
except ImportError:  # the watermark-fast extra is not installed: the numpy passes
    njit = None  # type: ignore[assignment]

__all__ = ["COMPILED", "budget_rows", "mark_rows"]

COMPILED = njit is not None

F = TypeVar("F", bound=Callable[..., Any])

#: a byte times this, as a 32-bit word in memory, is that byte three times then a zero: R, G, B
#: change by the step, the fourth byte (X or alpha) does not
_THRICE = 0x00010101 if sys.byteorder == "little" else 0x01010100


def _compiled(fn: F) -> F:
    """``njit`` without the GIL (the middleware marks pictures in threads), cached on disk when
    some cache directory is writable."""
    assert njit is not None
    try:
        return cast(F, njit(cache=True, nogil=True)(fn))
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return cast(F, njit(nogil=True)(fn))


def _budget_loops(y: Any, out: Any, top: int, bottom: int, c2: float) -> None:  # pragma: no cover - compiled
    """SSIM budget rows at half size: ``y`` holds the luma rows of the pooled rows a band's
    windows need (2 pixel rows each, 2 x w2 columns); ``top`` (0-2) and ``bottom`` (0-1) pooled
    rows are mirrored past the picture's edge. Each ``out`` value is 2 s2 + C2 over the 8 x 8
    window of blocks i-2 .. i+1 (exact sums of y and y^2 in float32: whole numbers < 2^24)."""
    m = y.shape[0] // 2
    w2 = y.shape[1] // 2
    rows = m + top + bottom
    s1 = np.empty((rows, w2 + 3), np.float32)
    s2 = np.empty((rows, w2 + 3), np.float32)
    for i in range(m):
        for j in range(w2):
            a = np.int32(y[2 * i, 2 * j])
            b = np.int32(y[2 * i, 2 * j + 1])
            c = np.int32(y[2 * i + 1, 2 * j])
            d = np.int32(y[2 * i + 1, 2 * j + 1])
            s1[top + i, j + 2] = a + b + c + d
            s2[top + i, j + 2] = a * a + b * b + c * c + d * d
    for j in range(2, w2 + 2):  # mirrored: blocks -1 -2 are blocks 0 1, block n is n - 1
        for r in range(top):
            s1[r, j], s2[r, j] = s1[2 * top - 1 - r, j], s2[2 * top - 1 - r, j]
        if bottom == 1:
            s1[rows - 1, j] = s1[rows - 2, j]
            s2[rows - 1, j] = s2[rows - 2, j]
    for i in range(rows):
        s1[i, 1], s1[i, 0], s1[i, w2 + 2] = s1[i, 2], s1[i, 3], s1[i, w2 + 1]
        s2[i, 1], s2[i, 0], s2[i, w2 + 2] = s2[i, 2], s2[i, 3], s2[i, w2 + 1]
    v1 = np.empty(w2 + 3, np.float32)
    v2 = np.empty(w2 + 3, np.float32)
    for i in range(out.shape[0]):
        for j in range(w2 + 3):
            v1[j] = s1[i, j] + s1[i + 1, j] + s1[i + 2, j] + s1[i + 3, j]
            v2[j] = s2[i, j] + s2[i + 1, j] + s2[i + 2, j] + s2[i + 3, j]
        for j in range(w2):
            mean = (v1[j] + v1[j + 1] + v1[j + 2] + v1[j + 3]) * np.float32(1 / 64)
            var = (v2[j] + v2[j + 1] + v2[j + 2] + v2[j + 3]) * np.float32(1 / 32) - np.float32(
                2
            ) * mean * mean
            out[i, j] = (var if var > 0 else np.float32(0)) + np.float32(c2)


def _mark_loops(
    base: Any, stride: int, budget: Any, r0: int, tile: Any, gain: float, limit: float, w: int
) -> int:  # pragma: no cover - compiled
    """Add the mark to ``base`` in place: rows of ``w`` pixels from picture row ``r0`` (even),
    ``stride`` bytes a pixel (4: R, G, B changed, the fourth byte not; 1: grey). The change is
    round(clip(sqrt(budget) * gain * tile, +-limit)), the same on every colour byte, clipped
    to 0..255. Returns the sum of the squared changes made."""
    t = tile.shape[0]
    half = (w + 1) // 2
    mask = np.empty(2 * half, np.float32)
    pattern = np.empty(w, np.float32)
    spread = np.zeros(w, np.uint32)  # the step's byte in each colour byte of a pixel (RGBX)
    grey = np.zeros(w, np.int8)
    change = spread.view(np.int8) if stride == 4 else grey
    magic = np.float32(12582912.0)  # 1.5 * 2^23: adding it rounds a float32 to nearest even
    lim, g = np.float32(limit), np.float32(gain)
    zero, top = np.int32(0), np.int32(255)
    squares = 0
    for i in range(base.shape[0]):
        if i % 2 == 0:  # a 2 x 2 block's mask, on both of its rows
            row = budget[(r0 + i) // 2]
            for j in range(half):
                mask[2 * j] = mask[2 * j + 1] = np.sqrt(row[j]) * g
        tile_row = tile[(r0 + i) % t]
        for start in range(0, w, t):
            n = min(t, w - start)
            pattern[start : start + n] = tile_row[:n]
        # plain loops over whole rows: the compiler vectorises them
        for j in range(w):
            v = mask[j] * pattern[j]
            v = min(max(v, -lim), lim)
            s = np.int32((v + magic) - magic)
            spread[j] = np.uint32(np.uint8(s & 0xFF)) * np.uint32(_THRICE)
            grey[j] = np.int8(s)
        line = base[i]
        acc = np.int32(0)  # a row's squares (at most 3 x 49 a pixel)
        for k in range(line.shape[0]):
            b = np.int32(line[k])
            x = min(max(b + np.int32(change[k]), zero), top)
            acc += (x - b) * (x - b)
            line[k] = np.uint8(x)
        squares += int(acc)
    return squares


def _box4(a: Any) -> Any:
    """4 x 4 box sums of both planes of ``a`` (2, n + 3, w + 3), which comes with its 2 rows and
    columns before and 1 after: sums of pairs of sums."""
    pairs = a[:, :-1] + a[:, 1:]
    rows = pairs[:, :-2] + pairs[:, 2:]
    pairs = rows[:, :, :-1] + rows[:, :, 1:]
    return pairs[:, :, :-2] + pairs[:, :, 2:]


def _budget_numpy(y: Any, out: Any, top: int, bottom: int, c2: float) -> None:
    """:func:`budget_rows` in numpy passes."""
    m, w2 = y.shape[0] // 2, y.shape[1] // 2
    wide = y.astype(np.uint16)
    sums = np.empty((2, m + top + bottom, w2 + 3), np.float32)  # of y and y^2, each 2 x 2 block
    into = sums[:, top : top + m, 2:-1]
    rows = wide[0::2] + wide[1::2]
    np.add(rows[:, 0::2], rows[:, 1::2], out=into[0])
    np.square(wide, out=wide)  # 255^2 fits
    rows32 = wide[0::2].astype(np.float32)
    rows32 += wide[1::2]
    np.add(rows32[:, 0::2], rows32[:, 1::2], out=into[1])
    sums[:, :, :2] = sums[:, :, 3:1:-1]  # mirrored: blocks -1 -2 are blocks 0 1, n is n - 1
    sums[:, :, -1] = sums[:, :, -2]
    if top:  # rows -1 -2 are rows 0 1
        sums[:, :top] = sums[:, 2 * top - 1 : top - 1 : -1]
    if bottom:
        sums[:, -1] = sums[:, -2]
    mean, var = _box4(sums)
    mean *= np.float32(1 / 64)
    var *= np.float32(1 / 32)  # twice the mean of y^2 ...
    mean *= mean
    mean *= np.float32(2)
    var -= mean  # ... less twice the squared mean: 2 s2
    np.maximum(var, 0, out=out)
    out += np.float32(c2)


def _mark_numpy(
    base: Any, stride: int, budget: Any, r0: int, tile: Any, gain: float, limit: float, w: int
) -> int:
    """:func:`mark_rows` in numpy passes: the step is added to the bytes modulo 256, and the few
    levels that went past black or white are found and clipped."""
    n, t = base.shape[0], tile.shape[0]
    m, tiles = (n + 1) // 2, -(-w // t)
    mask = np.sqrt(budget[r0 // 2 : r0 // 2 + m])
    mask *= np.float32(gain)
    wide = np.zeros((m, tiles * t), np.float32)  # each 2 x 2 block's mask twice, whole tiles
    np.multiply(
        mask.view(np.uint32), np.uint64(0x1_0000_0001), out=wide[:, : 2 * mask.shape[1]].view(np.uint64)
    )
    rows = np.take(tile, (np.arange(2 * m) + r0) % t, axis=0)
    delta = np.multiply(wide.reshape(m, 1, tiles, t), rows.reshape(m, 2, 1, t)).reshape(2 * m, tiles * t)
    np.clip(delta, -limit, limit, out=delta)
    np.rint(delta, out=delta)
    delta[:, w:] = 0
    step = delta[:n, :w].astype(np.int8)
    change = step.view(np.uint8)  # the step's byte (two's complement) in each colour byte
    if stride == 4:
        change = (change.astype(np.uint32) * np.uint32(_THRICE)).view(np.uint8)
    change = change.reshape(-1)
    flat = base.reshape(-1)
    marked = flat + change
    wrapped = np.less(marked, flat)
    wrapped ^= change.view(np.int8) < 0
    real = delta[:n].reshape(-1)
    squares = (3 if stride == 4 else 1) * int(np.einsum("i,i->", real, real))  # whole numbers < 2^24
    if wrapped.any():
        at = np.flatnonzero(wrapped)
        meant = change.view(np.int8)[at]
        marked[at] = np.where(meant < 0, 0, 255)
        done = marked[at].astype(np.int16) - flat[at]
        squares -= int(np.square(meant, dtype=np.int16).sum()) - int(np.square(done).sum())
    flat[:] = marked
    return squares


budget_rows = _compiled(_budget_loops) if COMPILED else _budget_numpy
mark_rows = _compiled(_mark_loops) if COMPILED else _mark_numpy
