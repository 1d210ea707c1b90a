"""How explicit labels look and sound: plain settings, no Pillow, so a policy can be loaded
(and ``import labeler`` done) by metadata-only users without the imaging stack."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "MIN_HEIGHT_RATIO",
    "PATTERN",
    "Placement",
    "RhythmStyle",
    "VisibleStyle",
]

#: GB 45438: text height at least 5% of the shortest side. A style may ask for more, never less.
MIN_HEIGHT_RATIO = 0.05
#: Decoded pixels one picture may cost, all frames together (about 4 bytes each as RGBA).
DEFAULT_MAX_PIXELS = 100_000_000
#: Frames of one animation; also bounds how far a GIF's blocks are walked to count them.
DEFAULT_MAX_FRAMES = 10_000


class Placement(enum.StrEnum):
    TOP_LEFT = "top-left"
    TOP = "top"
    TOP_RIGHT = "top-right"
    LEFT = "left"
    RIGHT = "right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM = "bottom"
    BOTTOM_RIGHT = "bottom-right"


@dataclass(frozen=True)
class VisibleStyle:
    """How the visible label looks. Defaults satisfy GB 45438 on any picture."""

    placement: Placement = Placement.BOTTOM_RIGHT
    height_ratio: float = MIN_HEIGHT_RATIO  #: ink height / shortest side; >= 0.05
    min_text_px: int = 10  #: legibility floor on small pictures, when it fits
    margin_ratio: float = 0.02  #: gap to the picture's edges, of the shortest side
    plate_opacity: float = 0.62
    font_path: str | None = None  #: None: the bundled Noto Sans CJK SC subset
    show_filing_number: bool = False
    jpeg_quality: int | str = "keep"  #: "keep" reuses the source's quantisation tables
    webp_quality: int = 90
    max_pixels: int = DEFAULT_MAX_PIXELS  #: decode budget: frames x width x height, summed
    max_frame_pixels: int | None = None  #: one frame; None: Pillow's ``Image.MAX_IMAGE_PIXELS``
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self) -> None:
        object.__setattr__(self, "placement", Placement(self.placement))
        if not MIN_HEIGHT_RATIO <= self.height_ratio <= 0.5:
            raise ValueError(f"height_ratio must be between 0.05 (GB 45438) and 0.5, got {self.height_ratio}")
        if not 0.3 <= self.plate_opacity <= 1:
            raise ValueError("plate_opacity must be between 0.3 and 1 to stay legible")
        for name in ("max_pixels", "max_frame_pixels", "max_frames"):
            value = getattr(self, name)
            if value is None and name == "max_frame_pixels":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")

    @property
    def frame_pixel_limit(self) -> int | None:
        """Pixels one frame may have: ``max_frame_pixels``, else Pillow's threshold of the
        moment, the point where Pillow itself starts warning of a decompression bomb."""
        if self.max_frame_pixels is not None:
            return self.max_frame_pixels
        from PIL import Image  # read when asked: Pillow's limit of the moment

        return Image.MAX_IMAGE_PIXELS


#: (tone units, silence units after it): A = short long, letter gap, I = short short
PATTERN: tuple[tuple[int, int], ...] = ((1, 1), (3, 3), (1, 1), (1, 0))


@dataclass(frozen=True)
class RhythmStyle:
    """How the rhythm label sounds. Defaults: a 1 kHz tone at -12 dBFS, 100 ms units."""

    frequency: float = 1000.0  #: Hz
    level_dbfs: float = -12.0  #: peak level of the tones
    unit_ms: float = 100.0  #: a short tone; a long one is three units
    position: Literal["start", "end", "both"] = "start"
    pause_ms: float = 300.0  #: silence between the label and the content

    def __post_init__(self) -> None:
        if not 100 <= self.frequency <= 8000:
            raise ValueError(f"frequency must be 100-8000 Hz to be heard, got {self.frequency}")
        if not -40 <= self.level_dbfs <= 0:
            raise ValueError(f"level_dbfs must be between -40 and 0, got {self.level_dbfs}")
        if not 40 <= self.unit_ms <= 400:
            raise ValueError(
                f"unit_ms must be 40-400 ms for the rhythm to be recognisable, got {self.unit_ms}"
            )
        if self.position not in ("start", "end", "both"):
            raise ValueError("position must be start, end or both")

    @property
    def seconds(self) -> float:
        """Length of the label alone, without the pause."""
        return sum(on + off for on, off in PATTERN) * self.unit_ms / 1000
