"""Typed errors: every failure a caller can act on has its own class.

Everything the library raises on bad input derives from :class:`LabelerError`, so a host
application can catch one type and never see a crash from a parser.
"""

from __future__ import annotations

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
    "UnsupportedFormatError",
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
