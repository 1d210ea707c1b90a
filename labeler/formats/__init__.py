"""Container formats, one module each, registered on import (Pillow-plugin style)."""

from . import gif, jpeg, png, webp  # noqa: F401  (registration side effect)
from .base import ContainerFormat, detect, formats, register

__all__ = ["ContainerFormat", "detect", "formats", "register"]
