"""The embedder's two per-pixel loops, compiled (numba): numpy's way, one pass over the band per
operation, left the mark at 7.3 ms per megapixel inside a label whose bare re-encode is 6.5 ms;
here each row is a few plain loops that read and write each byte once.

They write the pixels the banded numpy embedder wrote (float32 arithmetic in the same order, no
fast-math, rounding to nearest even as ``np.rint``), and the whole-array float64 reference in
``tests/test_watermark.py`` checks them (a level may differ at a rare .5 tie). Compiled code is
cached beside this file, or in numba's user cache; where neither is writable (a read-only
container) it is compiled once per process instead of failing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit

__all__ = ["budget_rows", "mark_rows"]

F = TypeVar("F", bound=Callable[..., Any])

#: a byte times this, as a 32-bit word in memory, is that byte three times then a zero: R, G, B
#: change by the step, the fourth byte (X or alpha) does not
_THRICE = 0x00010101 if sys.byteorder == "little" else 0x01010100


def _compiled(fn: F) -> F:
    """``njit`` without the GIL (the middleware marks pictures in threads), cached on disk when
    some cache directory is writable."""
    try:
        return cast(F, njit(cache=True, nogil=True)(fn))
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return cast(F, njit(nogil=True)(fn))


@_compiled
def budget_rows(y: Any, out: Any, top: int, bottom: int, c2: float) -> None:  # pragma: no cover - compiled
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
        if top == 2:
            s1[1, j], s1[0, j] = s1[2, j], s1[3, j]
            s2[1, j], s2[0, j] = s2[2, j], s2[3, j]
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


@_compiled
def mark_rows(
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
