"""OpenAI Images: ``data[].b64_json`` is decoded, fully labelled and re-encoded; ``url``
entries can't be labelled here (the bytes are elsewhere) and are reported instead."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from ..errors import MalformedFileError
from ..labeling import label_image
from ..policy import LabelPolicy

if TYPE_CHECKING:
    from ..content_credentials import C2paConfig


def label_json(
    obj: dict[str, Any], policy: LabelPolicy, visible: bool, c2pa: C2paConfig | None = None
) -> tuple[bool, int]:
    """(recognised, number of url entries left unlabelled)."""
    data = obj.get("data")
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        return False, 0
    if not any("b64_json" in d or "url" in d for d in data):
        return False, 0
    unlabeled = 0
    for item in data:
        if isinstance(item.get("b64_json"), str):
            try:
                raw = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                raise MalformedFileError("images response: b64_json is not base64") from None
            item["b64_json"] = base64.b64encode(
                label_image(raw, policy, visible=visible, on_existing="keep", c2pa=c2pa)
            ).decode()
        elif item.get("url"):
            unlabeled += 1
    return True, unlabeled
