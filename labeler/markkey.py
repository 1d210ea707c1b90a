"""The invisible watermark's key: where it comes from, and the file a platform is given.

The mark is symmetric (whoever detects could embed), so its secret is not the signing key: it
is *derived* from the provider's configuration. ``[labeler] watermark_key_file`` names a key
file (below) and wins; otherwise the secret is HMAC-SHA256 over the signing key's private PEM
(``key_file``), so a provider with a signing key marks without configuring anything more, and
the derivation is one-way: a platform given the watermark key learns nothing of the signing key.

A key file is a small JSON object (``chmod 600``; :meth:`MarkKey.to_file` writes one)::

    {"type": "aigc-labeler watermark key", "producer": "001191...", "secret": "<hex>"}

``producer`` is the provider code the key marks for: the mark's payload carries 24 bits of its
hash, so a verifier holding the file names the producer after all metadata is gone. No numpy
here: the policy and the CLI read keys without the ``watermark`` extra.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, LabelerError
from .keyfiles import read_secret_file

if TYPE_CHECKING:
    from .policy import LabelPolicy

__all__ = ["KEY_FILE_TYPE", "MarkKey", "WatermarkUnavailableError", "derive_secret"]

KEY_FILE_TYPE = "aigc-labeler watermark key"
_DERIVE = b"aigc-labeler watermark secret v1"


class WatermarkUnavailableError(LabelerError):
    """``watermark=True`` was asked for, but it can't be written or read here: the ``watermark``
    extra (numpy, scipy) is not installed, or the policy has no key to mark with."""


def derive_secret(private_pem: bytes) -> bytes:
    """The watermark secret of a signing key: HMAC-SHA256(private PEM, a fixed label)."""
    return hmac.new(private_pem, _DERIVE, hashlib.sha256).digest()


@dataclass(frozen=True)
class MarkKey:
    """A watermark secret and the producer (ContentProducer) it marks for."""

    secret: bytes = field(repr=False)
    producer: str

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigError("a watermark key needs at least 16 bytes of secret")

    @classmethod
    def for_policy(cls, policy: LabelPolicy) -> MarkKey | None:
        """The key ``policy`` marks with, or None when it has neither a watermark key nor a
        signing key to derive one from."""
        secret = policy.watermark_secret
        return None if secret is None else cls(secret, policy.producer)

    def to_json(self) -> str:
        return json.dumps({"type": KEY_FILE_TYPE, "producer": self.producer, "secret": self.secret.hex()})

    @classmethod
    def from_json(cls, text: str, where: str = "watermark key") -> MarkKey:
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("type") != KEY_FILE_TYPE:
                raise ValueError(f"not an {KEY_FILE_TYPE!r} object")
            return cls(bytes.fromhex(str(doc["secret"])), str(doc["producer"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the key file, readable by its owner only."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json() + "\n")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MarkKey:
        """Read a key file, refusing one other users can read (as for signing keys)."""
        text = read_secret_file(path, "watermark key file", ConfigError).decode("utf-8", "replace")
        return cls.from_json(text, f"watermark key file {Path(path)}")
