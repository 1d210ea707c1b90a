"""Container formats, one module each, registered on import (Pillow-plugin style)."""

from . import docx, flac, gif, jpeg, mp3, mp4, ogg, pdf, png, wav, webp  # noqa: F401  (registration side effect)
from .base import C2PA, ContainerFormat, Excluded, detect, formats, media_types, register
from .finder import Found, find_label

__all__ = [
    "C2PA",
    "ContainerFormat",
    "Excluded",
    "Found",
    "detect",
    "find_label",
    "formats",
    "media_types",
    "register",
]
