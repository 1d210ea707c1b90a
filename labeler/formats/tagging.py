"""mutagen at the edge: audio tag containers (ID3v2, Vorbis comments) edited in memory.

mutagen knows the tag formats' many versions and encodings better than code we would write;
we keep it to the tag block and compute our digests over the audio data ourselves. Any failure
inside mutagen on untrusted bytes becomes a :class:`MalformedFileError`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, TypeVar

from ..aigc import single_record
from ..errors import MalformedFileError, UnsupportedFormatError

__all__ = ["edit", "read", "read_comment", "write_comment"]

T = TypeVar("T")


def _open(opener: str, buf: io.BytesIO) -> Any:
    try:
        import importlib

        module, _, name = opener.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    except ImportError:
        raise UnsupportedFormatError("audio tags need mutagen: pip install 'aigc-labeler[media]'") from None
    try:
        return cls(buf)
    except Exception as exc:  # mutagen raises many kinds on hostile input
        raise MalformedFileError(f"{name} tag block is unreadable: {exc}") from exc


def read(data: bytes, opener: str, get: Callable[[Any], T]) -> T:
    """``get(tags)`` for the tag object ``opener`` (e.g. ``"mutagen.flac.FLAC"``) makes of data."""
    obj = _open(opener, io.BytesIO(data))
    try:
        return get(obj)
    except Exception as exc:
        raise MalformedFileError(f"tag block is unreadable: {exc}") from exc


def edit(data: bytes, opener: str, change: Callable[[Any], dict[str, Any]]) -> bytes:
    """``data`` with its tag block changed by ``change(obj)``, which returns save() options."""
    buf = io.BytesIO(data)
    obj = _open(opener, buf)
    try:
        options = change(obj)
        buf.seek(0)
        obj.save(buf, **options)
    except Exception as exc:
        raise MalformedFileError(f"tag block could not be written: {exc}") from exc
    return buf.getvalue()


def read_comment(data: bytes, opener: str, field: str) -> str | None:
    """The value of Vorbis comment ``field`` (FLAC, Ogg), or None; a field repeated with
    different records raises InvalidRecordError (one label per file)."""

    def get(audio: Any) -> list[str]:
        return [str(v) for v in (audio.tags.get(field) or [])] if audio.tags is not None else []

    return single_record(read(data, opener, get))


def write_comment(data: bytes, opener: str, field: str, value: str) -> bytes:
    """``data`` with Vorbis comment ``field`` set to exactly ``value`` (tags created if none)."""

    def change(audio: Any) -> dict[str, Any]:
        if audio.tags is None:
            audio.add_tags()
        audio.tags[field] = [value]
        return {}

    return edit(data, opener, change)
