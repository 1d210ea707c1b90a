"""Explicit labels: what a person sees or hears, one module per medium, one table for callers.

GB 45438 asks each medium for its own explicit label: a text plate on a picture's edge or corner
(:mod:`.image`), the rhythm "short-long-short-short" in audio (:mod:`.audio`), a plate over a
video's opening seconds (:mod:`.video`), a Word document's opening paragraph or a stamp on a
PDF's first page (:mod:`.documents`). Labelling, verification and the middleware don't ask
"which format is this?" in if-chains: they look the format up in :func:`explicit_label`, as they
look up implicit slots in :mod:`labeler.formats`. Styles live in :mod:`.styles` (no Pillow).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UnsupportedFormatError
from .styles import Placement, RhythmStyle, VisibleStyle

if TYPE_CHECKING:
    from ..policy import LabelPolicy

__all__ = ["ExplicitLabel", "Placement", "RhythmStyle", "VisibleStyle", "explicit_label"]


@dataclass(frozen=True)
class ExplicitLabel:
    """How one format carries its explicit label."""

    medium: str  #: image, audio, video or document
    add: Callable[[bytes, LabelPolicy], bytes]  #: the content with the label (never twice)
    #: whether the label is in the content already; None where it can't be told from the bytes
    find: Callable[[bytes], bool] | None
    needs_ffmpeg: bool = False  #: adding it decodes and re-encodes with ffmpeg
    find_needs_ffmpeg: bool = False  #: finding it decodes with ffmpeg (compressed audio)
    #: finding it decodes the pixels (pictures: a plate looked for by its sides), asked for
    find_decodes_pixels: bool = False


def _image(data: bytes, policy: LabelPolicy) -> bytes:
    from .image import render_visible_label

    return render_visible_label(data, policy.label_text, policy.visible, policy.filing_line)


def _find_plate(data: bytes) -> bool:
    from .plate import find_picture_label

    return find_picture_label(data) is not None


def _audio(name: str) -> Callable[[bytes, LabelPolicy], bytes]:
    def add(data: bytes, policy: LabelPolicy) -> bytes:
        from .audio import add_rhythm_label_to

        return add_rhythm_label_to(data, name, policy.audio)

    return add


def _find_rhythm(name: str) -> Callable[[bytes], bool]:
    def find(data: bytes) -> bool:
        from .audio import find_rhythm_label_in

        return find_rhythm_label_in(data, name) is not None

    return find


def _video(data: bytes, policy: LabelPolicy) -> bytes:
    from .video import add_video_label

    return add_video_label(data, policy.label_text, policy.visible, policy.filing_line)


def _docx(data: bytes, policy: LabelPolicy) -> bytes:
    from ..text import label_marker
    from .documents import add_docx_label

    with contextlib.suppress(UnsupportedFormatError):  # XLSX/PPTX: no natural place; implicit only
        return add_docx_label(data, label_marker(policy))
    return data


def _find_docx(data: bytes) -> bool:
    from .documents import find_docx_label

    return find_docx_label(data)


def _pdf(data: bytes, policy: LabelPolicy) -> bytes:
    from .documents import add_pdf_label

    return add_pdf_label(data, policy.label_text, policy.visible, policy.filing_line)


def _find_pdf(data: bytes) -> bool:
    from .documents import find_pdf_label

    return find_pdf_label(data)


@functools.cache
def _table() -> dict[str, ExplicitLabel]:
    image = ExplicitLabel("image", _image, _find_plate, find_decodes_pixels=True)
    return {
        "jpeg": image,
        "png": image,
        "webp": image,
        "gif": image,
        "wav": ExplicitLabel("audio", _audio("wav"), _find_rhythm("wav")),
        **{
            name: ExplicitLabel(
                "audio", _audio(name), _find_rhythm(name), needs_ffmpeg=True, find_needs_ffmpeg=True
            )
            for name in ("mp3", "flac", "ogg")
        },
        "mp4": ExplicitLabel("video", _video, None, needs_ffmpeg=True),
        "docx": ExplicitLabel("document", _docx, _find_docx),
        "pdf": ExplicitLabel("document", _pdf, _find_pdf),
    }


def explicit_label(format_name: str) -> ExplicitLabel | None:
    """The explicit label of a container format (:attr:`ContainerFormat.name`), or None."""
    return _table().get(format_name)
