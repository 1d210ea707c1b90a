"""labeler: make AI-generated content carry its label.

GB 45438-2025 implicit labels (the TC260 AIGC record in XMP or the format's own slot), IPTC
DigitalSourceType and a signed provenance record, written into pictures, audio, video, documents
and text without re-encoding, explicit labels per medium, and verification on receipt.
"""

__version__ = "0.2.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers; at run time each is imported on first use
    from .aigc import AigcRecord, Label
    from .errors import (
        AlreadyLabeledError,
        ConfigError,
        DecodeBudgetError,
        InvalidRecordError,
        LabelerError,
        LabelTooLargeError,
        MalformedFileError,
        SigningKeyError,
        ToolNotFoundError,
        UnexpectedParserError,
        UnsupportedFormatError,
    )
    from .explicit.styles import Placement, RhythmStyle, VisibleStyle
    from .labeling import Labelled, has_label, label_bytes, label_content, label_image, label_with_record
    from .markkey import MarkKey, WatermarkUnavailableError
    from .policy import LabelPolicy
    from .propagation import NoLabelError, propagate_bytes
    from .signing import PublicKey, SigningKey, TrustStore
    from .text import add_text_label, label_markdown, mark_text
    from .verification import Status, Verdict, verify, verify_text

#: public name -> the module that defines it. ``import labeler`` stays cheap (no Pillow, no
#: cryptography): a metadata-only user or ``labeler --help`` pays only for what it touches.
_LAZY = {
    "add_text_label": "text",
    "AigcRecord": "aigc",
    "AlreadyLabeledError": "errors",
    "ConfigError": "errors",
    "DecodeBudgetError": "errors",
    "has_label": "labeling",
    "InvalidRecordError": "errors",
    "Label": "aigc",
    "label_bytes": "labeling",
    "label_content": "labeling",
    "label_image": "labeling",
    "label_with_record": "labeling",
    "Labelled": "labeling",
    "MarkKey": "markkey",
    "WatermarkUnavailableError": "markkey",
    "label_markdown": "text",
    "LabelerError": "errors",
    "LabelPolicy": "policy",
    "LabelTooLargeError": "errors",
    "MalformedFileError": "errors",
    "mark_text": "text",
    "NoLabelError": "propagation",
    "Placement": "explicit.styles",
    "propagate_bytes": "propagation",
    "PublicKey": "signing",
    "RhythmStyle": "explicit.styles",
    "SigningKey": "signing",
    "SigningKeyError": "errors",
    "Status": "verification",
    "ToolNotFoundError": "errors",
    "TrustStore": "signing",
    "UnexpectedParserError": "errors",
    "UnsupportedFormatError": "errors",
    "Verdict": "verification",
    "verify": "verification",
    "verify_text": "verification",
    "VisibleStyle": "explicit.styles",
}


__all__ = [
    "AigcRecord",
    "AlreadyLabeledError",
    "ConfigError",
    "DecodeBudgetError",
    "InvalidRecordError",
    "Label",
    "LabelPolicy",
    "LabelTooLargeError",
    "LabelerError",
    "Labelled",
    "MalformedFileError",
    "MarkKey",
    "NoLabelError",
    "Placement",
    "PublicKey",
    "RhythmStyle",
    "SigningKey",
    "SigningKeyError",
    "Status",
    "ToolNotFoundError",
    "TrustStore",
    "UnexpectedParserError",
    "UnsupportedFormatError",
    "Verdict",
    "VisibleStyle",
    "WatermarkUnavailableError",
    "__version__",
    "add_text_label",
    "has_label",
    "label_bytes",
    "label_content",
    "label_image",
    "label_markdown",
    "label_with_record",
    "mark_text",
    "propagate_bytes",
    "verify",
    "verify_text",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labeler' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
