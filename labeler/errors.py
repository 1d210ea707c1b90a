"""Typed errors: every failure a caller can act on has its own class.

Everything the library raises on bad input derives from :class:`LabelerError`, so a host
application can catch one type and never see a crash from a parser.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "AlreadyLabeledError",
    "ConfigError",
    "DecodeBudgetError",
    "InvalidRecordError",
    "LabelTooLargeError",
    "LabelerError",
    "MalformedFileError",
    "SigningKeyError",
    "ToolNotFoundError",
    "UnexpectedParserError",
    "UnsupportedFormatError",
    "typed_errors",
]


class LabelerError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(LabelerError, ValueError):
    """A policy value (provider code, filing number, label text, key path...) is invalid."""


class SigningKeyError(LabelerError):
    """A key could not be loaded or is of an unsupported type. Never carries key material."""


class UnsupportedFormatError(LabelerError):
    """The bytes are not of a container format we can label."""


class MalformedFileError(LabelerError):
    """The bytes claim to be a known format but their structure is broken or truncated."""


class InvalidRecordError(LabelerError, ValueError):
    """A GB 45438 AIGC record or a provenance token does not parse or breaks a rule."""


class LabelTooLargeError(LabelerError):
    """The label does not fit in the format's metadata slot (e.g. a JPEG APP1 segment)."""


class AlreadyLabeledError(LabelerError):
    """The content already carries an AIGC label and the caller asked not to replace it."""


class ToolNotFoundError(LabelerError):
    """An external program this operation needs (e.g. ffmpeg for video labels) is not installed."""


class DecodeBudgetError(LabelerError):
    """A picture would decode to more pixels than the budget allows (frames x width x height,
    read from its header before anything is decoded): refused, as a possible decompression bomb."""


class UnexpectedParserError(MalformedFileError):
    """A library underneath (Pillow, pypdf, mutagen, ...) failed on the content in a way we did
    not anticipate. The public entry points turn any such failure into this error, so a host
    application catches one type; the original exception is chained as ``__cause__``."""


def typed_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a public entry point that takes content: whatever a parser underneath raises
    leaves as a :class:`LabelerError` (ours as they are, anything else as
    :class:`UnexpectedParserError`), so one bad file never surfaces as a stray exception type."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except LabelerError:
            raise
        except Exception as exc:
            raise UnexpectedParserError(
                f"{func.__name__}: the content broke a parser ({type(exc).__name__}: {exc})"
            ) from exc

    return wrapper
