"""The small interface every container format implements (Pillow-plugin style).

A format module walks its container once per call with a single walker, and exposes:
``accept(prefix)``, ``read_xmp(data)``, ``write_xmp(data, packet)``, ``content_digest(data)``
and optionally ``read_fallback(data)`` for AIGC records stored outside XMP by other tools, and
``stage(data)`` for containers whose structure changes when a slot is added (WebP -> VP8X).
Inside :func:`walk_once` (verify), the walk a format's functions share is done once per bytes
object (:func:`shared_walk`); outside, each call walks, so every function stays pure on bytes.
Containers without XMP (audio, video, documents) set ``write_record`` and keep the GB record
JSON in their own slot (a RIFF chunk, an ID3 frame, an MP4 key, a PDF Info entry...).

The invariant that makes signing possible: ``content_digest`` ignores the label slot, so
``content_digest(write_xmp(s, p)) == content_digest(s)`` for ``s = stage(d)`` and any packet p.
It ignores nothing else but what ``excluded`` reports (a C2PA store, which binds us in turn):
``verified`` means every other byte is bound by the signature. ``stage`` leaves one slot (drops
duplicates), so what is digested when labelling is what is digested when verifying.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from ..errors import UnsupportedFormatError

__all__ = [
    "C2PA",
    "ContainerFormat",
    "Excluded",
    "detect",
    "digest_ranges",
    "formats",
    "media_types",
    "no_xmp",
    "record_format",
    "register",
    "shared_walk",
    "walk_once",
    "xmp_unsupported",
]

T = TypeVar("T")


#: The claim of a span the digest skips because it is a C2PA manifest store: C2PA is embedded
#: after our label and hashes every byte but its own store, so it binds our label in turn.
C2PA = "c2pa"
#: The JUMBF description-box type of a C2PA manifest store (ISO 19566-5; C2PA spec 11.1.4.1).
C2PA_STORE_UUID = b"c2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"


@dataclass(frozen=True, slots=True)
class Excluded:
    """Bytes ``content_digest`` leaves out besides our own label slot, and what they claim to
    be. Verification may say ``verified`` only once every claim is checked (for :data:`C2PA`:
    the store validates for this file)."""

    claim: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def no_exclusions(data: bytes) -> tuple[Excluded, ...]:
    return ()


def claims_c2pa_store(box: bytes) -> bool:
    """Whether ``box`` starts a JUMBF superbox described as a C2PA manifest store."""
    if len(box) < 16 or box[4:8] != b"jumb":
        return False
    at = 16 if box[:4] == b"\x00\x00\x00\x01" else 8  # LBox 1: an 8-byte XLBox follows
    return box[at + 4 : at + 8] == b"jumd" and box[at + 8 : at + 24] == C2PA_STORE_UUID


#: What an explicit label looks like for a container: a picture, a sound, frames or a document.
Kind = Literal["image", "audio", "video", "document"]


@dataclass(frozen=True, kw_only=True)
class ContainerFormat:
    """One container format, built with keywords (Pillow-plugin style: a module registers it)."""

    name: str
    mime_type: str
    #: Other media types the same bytes are served under (e.g. ``audio/x-wav``): the middleware
    #: labels every type of every registered format, and no second list.
    mime_aliases: tuple[str, ...] = ()
    extensions: tuple[str, ...]
    accept: Callable[[bytes], bool]
    read_xmp: Callable[[bytes], bytes | None]
    write_xmp: Callable[[bytes, bytes], bytes]
    content_digest: Callable[[bytes], bytes]
    read_fallback: Callable[[bytes], str | None] = lambda data: None
    stage: Callable[[bytes], bytes] = lambda data: data
    #: For containers with a native AIGC slot and no XMP (audio, video, documents): writes the
    #: GB record JSON there; ``read_fallback`` reads it back and ``record_slot`` names it.
    write_record: Callable[[bytes, str], bytes] | None = None
    record_slot: str = "fallback"
    kind: Kind = "image"
    #: What ``content_digest`` skips besides our label slot (C2PA stores), to be checked on verify.
    excluded: Callable[[bytes], tuple[Excluded, ...]] = no_exclusions
    #: Whether the container holds C2PA-typed data naming ``c2pa`` (JPEG APP11 JUMBF, PNG
    #: ``caBX``, WebP ``C2PA``: what a C2PA reader reads), from the walk, never a scan of the file.
    #: ``None``: a format with no C2PA container (a C2PA reader is never asked about it).
    holds_c2pa: Callable[[bytes], bool] | None = None


def no_xmp(data: bytes) -> bytes | None:
    """``read_xmp`` of a container whose label lives in its own AIGC slot, not in XMP."""
    return None


def xmp_unsupported(data: bytes, packet: bytes) -> bytes:
    raise UnsupportedFormatError("this container carries the AIGC record in its own slot, not XMP")


def record_format(
    *,
    name: str,
    mime_type: str,
    mime_aliases: tuple[str, ...] = (),
    extensions: tuple[str, ...],
    kind: Kind,
    accept: Callable[[bytes], bool],
    content_digest: Callable[[bytes], bytes],
    read_record: Callable[[bytes], str | None],
    write_record: Callable[[bytes, str], bytes],
    slot: str,
    stage: Callable[[bytes], bytes] = lambda data: data,
) -> ContainerFormat:
    """A container that keeps the GB record in its own slot (audio, video, documents)."""
    return ContainerFormat(
        name=name, mime_type=mime_type, mime_aliases=mime_aliases, extensions=extensions, kind=kind,
        accept=accept, read_xmp=no_xmp, write_xmp=xmp_unsupported, content_digest=content_digest,
        read_fallback=read_record, stage=stage, write_record=write_record, record_slot=slot,
    )  # fmt: skip


_REGISTRY: dict[str, ContainerFormat] = {}

#: Inside walk_once(): walker -> (the bytes it walked, its result). Holding the bytes keeps
#: their id from being reused by another object while the entry lives.
_WALKS: ContextVar[dict[Callable[[bytes], Any], tuple[bytes, Any]] | None] = ContextVar(
    "labeler_walks", default=None
)


@contextmanager
def walk_once() -> Iterator[None]:
    """Within the block each :func:`shared_walk` walker runs once per bytes object: verify reads
    the label, the digest and the C2PA stores from one walk. The cache ends with the block."""
    token = _WALKS.set({})
    try:
        yield
    finally:
        _WALKS.reset(token)


def shared_walk(walker: Callable[[bytes], T]) -> Callable[[bytes], T]:
    """``walker`` (a pure function of the bytes, returning something never mutated) with its
    result shared by the calls inside :func:`walk_once` on the same bytes object."""

    @functools.wraps(walker)
    def walk(data: bytes) -> T:
        cache = _WALKS.get()
        if cache is None:
            return walker(data)
        hit = cache.get(walker)
        if hit is not None and hit[0] is data:
            return cast(T, hit[1])
        result = walker(data)
        cache[walker] = (data, result)
        return result

    return walk


def register(fmt: ContainerFormat) -> ContainerFormat:
    _REGISTRY[fmt.name] = fmt
    return fmt


def formats() -> tuple[ContainerFormat, ...]:
    return tuple(_REGISTRY.values())


def media_types() -> frozenset[str]:
    """Every media type (and alias) of every registered format: what labellers accept as media."""
    return frozenset(t for f in _REGISTRY.values() for t in (f.mime_type, *f.mime_aliases))


def detect(data: bytes) -> ContainerFormat:
    """The format whose magic bytes start ``data``; :class:`UnsupportedFormatError` otherwise."""
    for fmt in _REGISTRY.values():
        if fmt.accept(data[:16]):
            return fmt
    raise UnsupportedFormatError(
        f"unsupported content (starts {bytes(data[:8])!r}); supported: {', '.join(_REGISTRY)}"
    )


def digest_ranges(
    data: bytes, keep: Iterable[tuple[int, int]], prefix: bytes = b"", suffix: bytes = b""
) -> bytes:
    """SHA-256 over ``prefix``, the given byte ranges of ``data``, then ``suffix``; no copies."""
    view = memoryview(data)
    h = hashlib.sha256(prefix)
    for start, end in keep:
        h.update(view[start:end])
    h.update(suffix)
    return h.digest()


def trailer_marker(payload_end: int, total: int) -> bytes:
    """Hashed after a container's trailer, if it has one, so that where the payload ends (a RIFF
    size, say) is bound too: moving it over the trailer would otherwise hash the same bytes.
    Empty without a trailer, which keeps the digest of files without one as it always was."""
    return b"" if payload_end >= total else b"\x00trailer" + (total - payload_end).to_bytes(8, "big")


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
