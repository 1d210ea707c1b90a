"""Watermark keys: a secret from the provider's configuration, from which the mark's patterns are
derived. The same key embeds and detects (a spread-spectrum mark is symmetric): whoever can
detect could also forge or weaken the mark, so a platform is given a key for detection only
under the same trust as the provider's own (docs/watermark.md, threat model)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import numpy as np

__all__ = ["WatermarkKey"]


@dataclass(frozen=True)
class WatermarkKey:
    """``secret``: at least 16 bytes. ``key_id``: 16 bits written in the payload so a verifier
    holding several keys (rotation, several providers) knows which one made a mark; derived from
    the secret unless given."""

    secret: bytes = field(repr=False)
    key_id: int = -1

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("a watermark key needs at least 16 bytes of secret")
        if self.key_id == -1:
            derived = int.from_bytes(self._digest(b"key-id")[:2], "big")
            object.__setattr__(self, "key_id", derived)
        if not 0 <= self.key_id < 1 << 16:
            raise ValueError("key_id must fit in 16 bits")

    def _digest(self, label: bytes) -> bytes:
        return hmac.new(self.secret, b"aigc-labeler watermark v1\0" + label, hashlib.sha256).digest()

    def rng(self, label: str) -> np.random.Generator:
        """A deterministic generator for one of the mark's patterns (never reveals the secret)."""
        return np.random.default_rng(np.frombuffer(self._digest(label.encode()), dtype=np.uint32))
