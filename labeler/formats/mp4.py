"""MP4 / MOV: the GB record is the metadata key ``AIGC`` in ``moov/udta/meta`` (handler
``mdta``, ``keys`` + ``ilst``), where ``ffmpeg -movflags use_metadata_tags`` puts its keys.

No sample is touched. Growing ``moov`` moves whatever follows it, so when ``moov`` precedes
the media ("fast start"), every chunk offset (``stco`` / ``co64``) behind it is shifted by the
same amount. The digest is the SHA-256 of the file with exactly our slot taken out: our key
entry and its ``ilst`` item (sizes, later item numbers and chunk offsets put back as they were
without it); every other byte, a second key or item, an item naming no key, is content.
``stage`` writes the meta box in the form ``write_record`` leaves it (keys and items after the
handler, our key removed), so what is digested when labelling is what is digested on verify.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ..aigc import single_record
from ..errors import MalformedFileError, UnsupportedFormatError
from .base import record_format, register, shared_walk

KEY = b"AIGC"
_NOT_VIDEO = {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"hevc", b"crx "}
_CHUNK_PATH = {b"trak", b"mdia", b"minf", b"stbl"}  # containers on the way to stco / co64
MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Box:
    type: bytes
    start: int
    body: int  #: start of the payload, after the (8- or 16-byte) header
    end: int


def accept(prefix: bytes) -> bool:
    return prefix[4:8] == b"ftyp" and prefix[8:12] not in _NOT_VIDEO


def boxes(data: bytes, start: int, end: int, top: bool = False) -> list[Box]:
    """The boxes laid end to end in ``data[start:end]``; a zero tail under 8 bytes is padding."""
    out, pos = [], start
    while pos < end:
        if end - pos < 8:
            if any(data[pos:end]):
                raise MalformedFileError(f"MP4 box header truncated at offset {pos}")
            break
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise MalformedFileError(f"MP4 large box header truncated at offset {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # "to the end of the file": only a top-level box may say so
            if not top:
                raise MalformedFileError(f"MP4 box {kind!r} at offset {pos} has size 0 inside a container")
            size = end - pos
        if size < header or pos + size > end:
            raise MalformedFileError(
                f"MP4 box {kind!r} at offset {pos} declares {size} bytes, beyond its parent"
            )
        out.append(Box(kind, pos, pos + header, pos + size))
        pos += size
    return out


def box(kind: bytes, payload: bytes) -> bytes:
    if len(payload) + 8 > 0xFFFFFFFF:
        return struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload
    return struct.pack(">I4s", len(payload) + 8, kind) + payload


@shared_walk  # reading and digesting share the walk (inside walk_once)
def _moov(data: bytes) -> tuple[list[Box], Box]:
    top = boxes(data, 0, len(data), top=True)
    moovs = [b for b in top if b.type == b"moov"]
    if not top or top[0].type != b"ftyp" or len(moovs) != 1:
        raise MalformedFileError("MP4 needs an ftyp box first and exactly one moov box")
    return top, moovs[0]


def _meta_children(data: bytes, meta: Box) -> tuple[bytes, list[Box]]:
    """(version/flags prefix or b"" for QuickTime-style meta, children)."""
    full = data[meta.body + 4 : meta.body + 8] != b"hdlr"  # QuickTime's meta has no version/flags
    start = meta.body + 4 if full else meta.body
    return data[meta.body : start], boxes(data, start, meta.end)


def _is_mdta(data: bytes, meta: Box) -> bool:
    _, kids = _meta_children(data, meta)
    return any(k.type == b"hdlr" and data[k.body + 8 : k.body + 12] == b"mdta" for k in kids)


def _key_entries(data: bytes, keys: Box) -> list[tuple[int, int]]:
    """(start, end) of each key entry (size, namespace, name), in index order."""
    if keys.end - keys.body < 8:
        raise MalformedFileError("MP4 keys box truncated")
    (count,) = struct.unpack_from(">I", data, keys.body + 4)
    out, pos = [], keys.body + 8
    for _ in range(count):
        if pos + 8 > keys.end:
            raise MalformedFileError("MP4 keys entry truncated")
        (size,) = struct.unpack_from(">I", data, pos)
        if size < 8 or pos + size > keys.end:
            raise MalformedFileError("MP4 keys entry size out of range")
        out.append((pos, pos + size))
        pos += size
    return out


def _keys(data: bytes, keys: Box) -> list[bytes]:
    """Raw key entries (namespace + name), in index order."""
    return [data[start + 4 : end] for start, end in _key_entries(data, keys)]


def _item_value(data: bytes, item: Box) -> bytes | None:
    for child in boxes(data, item.body, item.end):
        if child.type == b"data" and child.end - child.body >= 8:
            return data[child.body + 8 : child.end]
    return None


@shared_walk
def _find(data: bytes) -> tuple[Box, Box, Box | None] | None:
    """(moov, the mdta meta box, its udta or None if directly in moov) holding our key, if any."""
    _, moov = _moov(data)
    for child in boxes(data, moov.body, moov.end):
        candidates: list[tuple[Box, Box | None]] = []
        if child.type == b"udta":
            candidates = [(m, child) for m in boxes(data, child.body, child.end) if m.type == b"meta"]
        elif child.type == b"meta":
            candidates = [(child, None)]
        for meta, udta in candidates:
            if _is_mdta(data, meta):
                return moov, meta, udta
    return None


def read_record(data: bytes) -> str | None:
    found = _find(data)
    if found is None:
        return None
    _, meta, _ = found
    _, kids = _meta_children(data, meta)
    keys = next((k for k in kids if k.type == b"keys"), None)
    ilst = next((k for k in kids if k.type == b"ilst"), None)
    if keys is None or ilst is None:
        return None
    ours = {i + 1 for i, name in enumerate(_keys(data, keys)) if name == b"mdta" + KEY}
    values = [
        value.decode("utf-8", "replace")
        for item in boxes(data, ilst.body, ilst.end)
        if int.from_bytes(item.type, "big") in ours and (value := _item_value(data, item)) is not None
    ]
    return single_record(values)  # two AIGC keys with different records: one label per file


# -- writing -----------------------------------------------------------------------------------


def _new_meta(data: bytes, meta: Box | None, record: str | None) -> bytes:
    """The mdta meta box with our key removed, then (given ``record``) appended last."""
    prefix, kids = (b"\x00\x00\x00\x00", []) if meta is None else _meta_children(data, meta)
    names: list[bytes] = []
    items: list[tuple[int, bytes]] = []  # (index, payload)
    for k in kids:
        if k.type == b"keys":
            names = _keys(data, k)
        elif k.type == b"ilst":
            items = [
                (int.from_bytes(i.type, "big"), data[i.body : i.end]) for i in boxes(data, k.body, k.end)
            ]
    items = [(i, p) for i, p in items if 1 <= i <= len(names)]  # orphans name no key: dropped
    while b"mdta" + KEY in names:  # every copy of our key goes, each removal renumbering the rest
        gone = names.index(b"mdta" + KEY) + 1
        names.remove(b"mdta" + KEY)
        items = [(i - 1 if i > gone else i, p) for i, p in items if i != gone]
    if record is not None:
        names.append(b"mdta" + KEY)
        value = record.encode("utf-8")
        items.append((len(names), box(b"data", struct.pack(">II", 1, 0) + value)))
    keys = box(
        b"keys",
        struct.pack(">II", 0, len(names)) + b"".join(struct.pack(">I", len(n) + 4) + n for n in names),
    )
    ilst = box(b"ilst", b"".join(box(i.to_bytes(4, "big"), p) for i, p in items))
    hdlr = box(b"hdlr", b"\x00" * 8 + b"mdta" + b"\x00" * 13)
    if not kids:
        return box(b"meta", prefix + hdlr + keys + ilst)
    parts: list[bytes] = []
    placed = False
    for k in kids:  # keys and ilst go right after (the first) hdlr; other children stay as they were
        if k.type not in (b"keys", b"ilst"):
            parts.append(data[k.start : k.end])
        if k.type == b"hdlr" and not placed:
            parts += [keys, ilst]
            placed = True
    return box(b"meta", prefix + b"".join(parts))


def _shift_chunk_offsets(
    buf: bytearray, start: int, end: int, after: int, delta: int, depth: int = 0
) -> None:
    """Add ``delta`` to every stco/co64 entry >= ``after`` in the boxes of ``buf[start:end]``."""
    if depth > MAX_DEPTH:
        raise MalformedFileError("MP4 boxes nested too deeply")
    for b in boxes(bytes(buf[start:end]), 0, end - start):
        body, stop = start + b.body, start + b.end
        if b.type in _CHUNK_PATH:
            _shift_chunk_offsets(buf, body, stop, after, delta, depth + 1)
        elif b.type in (b"stco", b"co64"):
            width, fmt = (4, ">I") if b.type == b"stco" else (8, ">Q")
            (count,) = struct.unpack_from(">I", buf, body + 4)
            if body + 8 + count * width > stop:
                raise MalformedFileError(f"MP4 {b.type.decode()} entry count overruns its box")
            for pos in range(body + 8, body + 8 + count * width, width):
                (offset,) = struct.unpack_from(fmt, buf, pos)
                if offset >= after:
                    if offset + delta >= 1 << (8 * width):
                        raise UnsupportedFormatError("MP4 chunk offset overflows stco; remux with co64")
                    struct.pack_into(fmt, buf, pos, offset + delta)


def _rewrite(data: bytes, record: str | None) -> tuple[Box, bytes]:
    """(the moov box, its replacement): our key removed, then (given ``record``) added last,
    chunk offsets behind moov shifted by the change in size. Only moov is copied."""
    top, moov = _moov(data)
    found = _find(data)
    kids = boxes(data, moov.body, moov.end)
    if found is not None:
        _, meta, udta = found
        parts = _with_meta(data, kids, meta, udta, _new_meta(data, meta, record))
    else:
        parts = []
        udtas = [c for c in kids if c.type == b"udta"]
        for child in kids:
            if udtas and child.start == udtas[0].start:
                inner = data[child.body : child.end]
                parts.append(box(b"udta", inner + _new_meta(data, None, record)))
            else:
                parts.append(data[child.start : child.end])
        if not udtas:
            parts.append(box(b"udta", _new_meta(data, None, record)))
    return _resized(data, top, moov, kids, parts)


def _with_meta(data: bytes, kids: list[Box], meta: Box, udta: Box | None, new_meta: bytes) -> list[bytes]:
    """moov's children with ``meta`` (in ``udta``, or in moov itself) replaced by ``new_meta``."""
    parts: list[bytes] = []
    for child in kids:
        if udta is not None and child.start == udta.start:
            inner = b"".join(
                new_meta if m.start == meta.start else data[m.start : m.end]
                for m in boxes(data, child.body, child.end)
            )
            parts.append(box(b"udta", inner + data[_last_end(data, child) : child.end]))
        elif child.start == meta.start:
            parts.append(new_meta)
        else:
            parts.append(data[child.start : child.end])
    return parts


def _resized(
    data: bytes, top: list[Box], moov: Box, kids: list[Box], parts: list[bytes]
) -> tuple[Box, bytes]:
    """(moov, the moov box made of ``parts`` and its old tail, chunk offsets behind it shifted)."""
    tail = data[kids[-1].end if kids else moov.body : moov.end]
    new = bytearray(box(b"moov", b"".join(parts) + tail))
    delta = len(new) - (moov.end - moov.start)
    if delta:
        later = [b.type for b in top if b.start > moov.start]
        if any(b.type == b"mvex" for b in kids) and any(t in (b"moof", b"mdat", b"sidx") for t in later):
            raise UnsupportedFormatError("fragmented MP4 with moov before the fragments: not supported")
        _shift_chunk_offsets(new, 8, len(new), moov.end, delta)
    return moov, bytes(new)


def _meta_without_our_key(data: bytes, meta: Box) -> bytes | None:
    """The meta box with exactly our slot taken out (the first ``mdtaAIGC`` entry of the first
    ``keys`` box, the first item naming it in the first ``ilst``, later item numbers lowered by
    one) and every other byte kept in place; ``None`` if it holds no key of ours."""
    prefix, kids = _meta_children(data, meta)
    keys = next((k for k in kids if k.type == b"keys"), None)
    ilst = next((k for k in kids if k.type == b"ilst"), None)
    if keys is None or ilst is None:
        return None
    entries = _key_entries(data, keys)
    ours = next((i for i, (s, e) in enumerate(entries, 1) if data[s + 4 : e] == b"mdta" + KEY), None)
    if ours is None:
        return None
    entries_end = entries[-1][1]
    keys_new = box(
        b"keys",
        data[keys.body : keys.body + 4]
        + struct.pack(">I", len(entries) - 1)
        + b"".join(data[s:e] for i, (s, e) in enumerate(entries, 1) if i != ours)
        + data[entries_end : keys.end],
    )
    items, dropped = [], False
    for item in boxes(data, ilst.body, ilst.end):
        index = int.from_bytes(item.type, "big")
        if index == ours and not dropped:
            dropped = True
        elif ours < index <= len(entries):
            items.append(box((index - 1).to_bytes(4, "big"), data[item.body : item.end]))
        else:
            items.append(data[item.start : item.end])
    ilst_new = box(b"ilst", b"".join(items) + data[_last_end(data, ilst) : ilst.end])
    parts = [
        keys_new if k.start == keys.start else ilst_new if k.start == ilst.start else data[k.start : k.end]
        for k in kids
    ]
    tail = data[kids[-1].end : meta.end]  # kids holds keys and ilst, so it is not empty
    return box(b"meta", prefix + b"".join(parts) + tail)


def _edit(data: bytes, record: str | None) -> bytes:
    moov, new = _rewrite(data, record)
    view = memoryview(data)
    if view[moov.start : moov.end] == new:
        return data  # already in this form: no copy
    return b"".join((view[: moov.start], new, view[moov.end :]))


def _last_end(data: bytes, container: Box) -> int:
    kids = boxes(data, container.body, container.end)
    return kids[-1].end if kids else container.body


def write_record(data: bytes, record: str) -> bytes:
    return _edit(data, record)


def stage(data: bytes) -> bytes:
    """The meta box as write_record leaves it, without our key (created empty if there is none),
    so adding the key changes nothing digested."""
    return _edit(data, None)


def content_digest(data: bytes) -> bytes:
    """SHA-256 of the file with exactly our key entry and its item taken out (see the module
    docstring), hashed piecewise without building it."""
    found = _find(data)
    stripped = _meta_without_our_key(data, found[1]) if found is not None else None
    if found is None or stripped is None:
        return hashlib.sha256(data).digest()
    _, meta, udta = found
    top, moov = _moov(data)
    kids = boxes(data, moov.body, moov.end)
    moov, new = _resized(data, top, moov, kids, _with_meta(data, kids, meta, udta, stripped))
    view = memoryview(data)
    h = hashlib.sha256(view[: moov.start])
    h.update(new)
    h.update(view[moov.end :])
    return h.digest()


FORMAT = register(
    record_format(
        name="mp4",
        mime_type="video/mp4",
        mime_aliases=("video/quicktime",),
        extensions=(".mp4", ".m4v", ".mov", ".m4a", ".3gp"),
        kind="video",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="mp4:udta/meta/keys:AIGC",
        stage=stage,
    )
)
