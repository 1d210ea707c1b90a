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

__all__ = ["comment_material", "edit", "read", "read_comment", "stage_comment", "write_comment"]

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


def stage_comment(data: bytes, opener: str, field: str) -> bytes:
    """``data`` with its comment block as write_comment will leave it, without ``field``
    (created if there is none): mutagen rewrites the block (encodings, padding, pages), and the
    digest binds every comment but ours."""

    def change(audio: Any) -> dict[str, Any]:
        if audio.tags is None:
            audio.add_tags()
        if field in audio.tags:
            del audio.tags[field]
        return {}

    return edit(data, opener, change)


def comment_material(block: bytes, field: str) -> list[bytes]:
    """What of a Vorbis comment block (from the vendor length on) the digest binds: the vendor
    string, every comment but the first ``field=…`` (ours; the key compared as mutagen does,
    without case), in order, and whatever follows the comments (a framing bit, Opus binary
    data) without trailing NULs: padding, which a tag edit resizes."""
    pos, parts, ours = 0, [], False

    def take() -> bytes:
        nonlocal pos
        if pos + 4 > len(block):
            raise MalformedFileError("Vorbis comment block truncated")
        n = int.from_bytes(block[pos : pos + 4], "little")
        if pos + 4 + n > len(block):
            raise MalformedFileError("Vorbis comment length runs past its block")
        pos += 4 + n
        return block[pos - n : pos]

    parts.append(take())  # the vendor string
    if pos + 4 > len(block):
        raise MalformedFileError("Vorbis comment block truncated")
    count = int.from_bytes(block[pos : pos + 4], "little")
    pos += 4
    if count * 4 > len(block) - pos:
        raise MalformedFileError("Vorbis comment count runs past its block")
    for _ in range(count):
        entry = take()
        if not ours and entry.partition(b"=")[0].lower() == field.lower().encode():
            ours = True
            continue
        parts.append(entry)
    rest = block[pos:].rstrip(b"\x00")
    return [*parts, b"rest:" + rest] if rest else parts
