"""Find a visible label's plate in a picture's pixels: where it is, not what it says.

Our picture label is white text on a translucent dark plate at an edge or corner, placed by
:func:`~labeler.explicit.image.label_geometry`, a pure function of the picture's size, the text
and the style. A plate multiplies the background by ``1 - opacity`` (0.38 at the default 0.62),
so across each of its four sides the pixels just inside are a fraction of the pixels just
outside, whatever the picture shows. For each placement and each of the label texts we ship, the
box the labeller would have drawn is checked side by side: at least two sides clearly show that
step and none clearly denies it (a photograph's own edges may hide one), and the inside holds
bright text on a dark ground. The best-fitting box wins (a shorter text's box fits inside a
longer one's plate, but its far side crosses no step). Pure Pillow, a few hundred reads per box.

It tells a platform where a label is (to draw it on a page, to say "suspected" when a picture
carries a label but lost its record); it does not read the text, and it knows labeler's own
geometry only (another producer's label may be there unseen). Backgrounds too dark to darken
(luminance under ~24) can't show the step: there it claims nothing rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image

from ..errors import LabelerError
from .styles import Placement, VisibleStyle

__all__ = ["LABEL_TEXTS", "PlateFound", "find_picture_label", "find_plate"]

#: label texts whose plates are looked for: the defaults of every language we ship
LABEL_TEXTS = ("AI生成", "AI-generated", "人工智能生成")
#: inside/outside luminance across a side under this: the plate darkens there (0.38 expected)
_STEP = 0.72
#: an outside luminance below this can't show a darkening: the sample can't tell
_DARKEST = 24
_CLEAR = 0.8  #: share of a side's telling samples that must show the step for a clear side
_DENIED = 0.5  #: under this share (with most samples telling) a side says "no plate here"
_INSET = 2  #: JPEG blurs a side by a pixel or two: read beside it, not on it


@dataclass(frozen=True)
class PlateFound:
    placement: Placement
    box: tuple[int, int, int, int]  #: left, top, right, bottom (exclusive), in pixels
    size: tuple[int, int]  #: the picture's width and height, to draw the box at any scale


class _Luma:
    """The picture's luminance, read with its bounds checked."""

    def __init__(self, img: Image.Image) -> None:
        gray = img.convert("L")
        self.width, self.height = gray.size
        self.data = gray.tobytes()

    def __call__(self, x: int, y: int) -> int:
        if 0 <= x < self.width and 0 <= y < self.height:
            return self.data[y * self.width + x]
        return -1

    def step(self, inside: tuple[int, int], outside: tuple[int, int]) -> bool | None:
        """Whether ``inside`` is ``outside`` darkened; None where that can't be told (the
        outside too dark, or off the picture)."""
        lo, hi = self(*inside), self(*outside)
        if lo < 0 or hi < _DARKEST:
            return None
        return lo < hi * _STEP


def _samples(lo: int, hi: int, count: int = 24) -> list[int]:
    if hi - lo <= count:
        return list(range(lo, hi))
    return [lo + (hi - lo - 1) * i // (count - 1) for i in range(count)]


def _side(flags: list[bool | None]) -> float | None:
    """The share of a side's telling samples that show the step; None when under half tell."""
    known = [f for f in flags if f is not None]
    return sum(known) / len(known) if known and len(known) * 2 >= len(flags) else None


def _score(luma: _Luma, box: tuple[int, int, int, int]) -> float | None:
    """How well ``box`` fits a plate in the pixels (higher is better), or None if it is not one."""
    x0, y0, x1, y1 = box
    i = _INSET
    xs, ys = _samples(x0 + i, x1 - i), _samples(y0 + i, y1 - i)
    sides = [
        _side([luma.step((x, y0 + i), (x, y0 - i - 1)) for x in xs]),
        _side([luma.step((x, y1 - 1 - i), (x, y1 + i)) for x in xs]),
        _side([luma.step((x0 + i, y), (x0 - i - 1, y)) for y in ys]),
        _side([luma.step((x1 - 1 - i, y), (x1 + i, y)) for y in ys]),
    ]
    told = [s for s in sides if s is not None]
    clear = sum(s >= _CLEAR for s in told)
    if clear < 2 or any(s < _DENIED for s in told):
        return None
    inside = sorted(luma(x, y) for y in range(y0 + i, y1 - i) for x in _samples(x0 + i, x1 - i, 64))
    ground = inside[len(inside) // 4]  #: the plate's own darkness (text is the bright minority)
    bright = sum(1 for v in inside if v >= max(150, ground * 2 + 40)) / len(inside)
    if not 0.02 <= bright <= 0.7:
        return None
    return clear + sum(told) / len(told)


def find_plate(
    img: Image.Image, texts: tuple[str, ...] = LABEL_TEXTS, style: VisibleStyle | None = None
) -> PlateFound | None:
    """The label plate in ``img`` (its first frame) of any of ``texts`` in ``style`` (the
    default style) at any placement, or None."""
    from .image import label_geometry

    luma = _Luma(img)
    size = (luma.width, luma.height)
    if min(size) < 40:
        return None
    style = style or VisibleStyle()
    best: tuple[float, PlateFound] | None = None
    for text in texts:
        for placement in Placement:
            try:
                box = label_geometry(size, text, replace(style, placement=placement)).plate
            except LabelerError:  # this label can't fit this picture: it can't be on it
                break
            score = _score(luma, box)
            if score is not None and (best is None or score > best[0]):
                best = (score, PlateFound(placement, box, size))
    return best[1] if best else None


def find_picture_label(data: bytes, style: VisibleStyle | None = None) -> PlateFound | None:
    """:func:`find_plate` on a JPEG, PNG, GIF or WebP file's first frame, decoded within the
    style's budget (a bomb raises :class:`~labeler.errors.DecodeBudgetError`)."""
    from .image import decode_picture

    style = style or VisibleStyle()
    return find_plate(decode_picture(data, style), style=style)
