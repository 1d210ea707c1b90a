"""labeler: make AI-generated content carry its label.

GB 45438-2025 implicit labels (the TC260 AIGC record in XMP or the format's own slot), IPTC
DigitalSourceType and a signed provenance record, written into pictures, audio, video, documents
and text without re-encoding, explicit labels per medium, and verification on receipt.
"""

__version__ = "0.1.0"

from .aigc import AigcRecord, Label
from .audio import RhythmStyle
from .errors import (
    AlreadyLabeledError,
    ConfigError,
    InvalidRecordError,
    LabelerError,
    LabelTooLargeError,
    MalformedFileError,
    SigningKeyError,
    ToolNotFoundError,
    UnsupportedFormatError,
)
from .labeling import has_label, label_bytes, label_content, label_image
from .policy import LabelPolicy
from .propagation import NoLabelError, propagate_bytes
from .signing import PublicKey, SigningKey, TrustStore
from .text import add_text_label, label_markdown, mark_text, verify_text
from .verification import Status, Verdict, verify
from .visible import Placement, VisibleStyle

__all__ = [
    "AigcRecord",
    "AlreadyLabeledError",
    "ConfigError",
    "InvalidRecordError",
    "Label",
    "LabelPolicy",
    "LabelTooLargeError",
    "LabelerError",
    "MalformedFileError",
    "NoLabelError",
    "Placement",
    "PublicKey",
    "RhythmStyle",
    "SigningKey",
    "SigningKeyError",
    "Status",
    "ToolNotFoundError",
    "TrustStore",
    "UnsupportedFormatError",
    "Verdict",
    "VisibleStyle",
    "__version__",
    "add_text_label",
    "has_label",
    "label_bytes",
    "label_content",
    "label_image",
    "label_markdown",
    "mark_text",
    "propagate_bytes",
    "verify",
    "verify_text",
]
