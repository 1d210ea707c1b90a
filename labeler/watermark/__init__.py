"""The watermark wing: invisible marks that survive platforms which strip metadata and
re-encode (issue 16). Needs the ``watermark`` extra (numpy, scipy; ``watermark-fast`` adds
numba, which compiles the embedder's loops); the bytes core never imports this package."""

from __future__ import annotations

from labeler.watermark.audio import EmbeddedAudio, detect_audio, detect_wav, embed_audio, embed_wav
from labeler.watermark.image import (
    DEFAULT_THRESHOLD,
    Detection,
    Embedded,
    WatermarkCapacityError,
    detect,
    detect_frames,
    embed,
)
from labeler.watermark.keys import WatermarkKey
from labeler.watermark.payload import Payload, content_id_for

__all__ = [
    "DEFAULT_THRESHOLD",
    "Detection",
    "Embedded",
    "EmbeddedAudio",
    "Payload",
    "WatermarkCapacityError",
    "WatermarkKey",
    "content_id_for",
    "detect",
    "detect_audio",
    "detect_frames",
    "detect_wav",
    "embed",
    "embed_audio",
    "embed_wav",
]
