"""The small interface every container format implements (Pillow-plugin style).

A format module walks its container once per call with a single walker, and exposes:
``accept(prefix)``, ``read_xmp(data)``, ``write_xmp(data, packet)``, ``content_digest(data)``
and optionally ``read_fallback(data)`` for AIGC records stored outside XMP by other tools, and
``stage(data)`` for containers whose structure changes when a slot is added (WebP -> VP8X).

The invariant that makes signing possible: ``content_digest`` ignores the label slot, so
``content_digest(write_xmp(s, p)) == content_digest(s)`` for ``s = stage(d)`` and any packet p.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import UnsupportedFormatError

__all__ = ["ContainerFormat", "detect", "digest_ranges", "formats", "register"]


@dataclass(frozen=True)
class ContainerFormat:
    name: str
    mime_type: str
    extensions: tuple[str, ...]
    accept: Callable[[bytes], bool]
    read_xmp: Callable[[bytes], bytes | None]
    write_xmp: Callable[[bytes, bytes], bytes]
    content_digest: Callable[[bytes], bytes]
    read_fallback: Callable[[bytes], str | None] = lambda data: None
    stage: Callable[[bytes], bytes] = lambda data: data


_REGISTRY: dict[str, ContainerFormat] = {}


def register(fmt: ContainerFormat) -> ContainerFormat:
    _REGISTRY[fmt.name] = fmt
    return fmt


def formats() -> tuple[ContainerFormat, ...]:
    return tuple(_REGISTRY.values())


def detect(data: bytes) -> ContainerFormat:
    """The format whose magic bytes start ``data``; :class:`UnsupportedFormatError` otherwise."""
    for fmt in _REGISTRY.values():
        if fmt.accept(data[:16]):
            return fmt
    raise UnsupportedFormatError(
        f"unsupported content (starts {bytes(data[:8])!r}); supported: {', '.join(_REGISTRY)}"
    )


def digest_ranges(data: bytes, keep: Iterable[tuple[int, int]], prefix: bytes = b"") -> bytes:
    """SHA-256 over ``prefix`` then the given byte ranges of ``data``, without copying."""
    view = memoryview(data)
    h = hashlib.sha256(prefix)
    for start, end in keep:
        h.update(view[start:end])
    return h.digest()


def splice(data: bytes, spans: list[tuple[int, int]], new: bytes) -> bytes:
    """``data`` with the first span replaced by ``new`` and the other spans removed; one copy."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    pos = 0
    for i, (start, end) in enumerate(spans):
        parts += [view[pos:start], new if i == 0 else b""]
        pos = end
    parts.append(view[pos:])
    return b"".join(parts)


def complement(spans: Iterable[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The ranges of ``[0, total)`` not covered by the sorted, disjoint ``spans``."""
    keep, pos = [], 0
    for start, end in spans:
        if start > pos:
            keep.append((pos, start))
        pos = end
    if pos < total:
        keep.append((pos, total))
    return keep
