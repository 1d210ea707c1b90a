"""Office Open XML (DOCX, XLSX, PPTX): the GB record is the custom document property ``AIGC``
in ``docProps/custom.xml`` (the file Word shows under File > Properties > Custom).

The package is rewritten member by member with the same names, order, dates and compression.
The digest covers the decompressed content of every member, the bytes of every member's local
record (header, extra field, compressed data) and its central-directory fields, the archive
comment and any bytes between the records: everything but our property element in
``docProps/custom.xml`` and what follows from it (that member's sizes and CRC, record offsets).
``stage`` writes custom.xml (without our property), its content type and relationship as
``write_record`` will, so adding the property changes nothing else.
Untrusted packages are bounded: member count, declared sizes, and no DTDs in the XML we parse.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator

from .. import safexml
from ..aigc import single_record
from ..errors import MalformedFileError, UnsupportedFormatError
from ..safexml import escape
from .base import record_format, register

NAME = "AIGC"
CUSTOM = "docProps/custom.xml"
TYPES = "[Content_Types].xml"
RELS = "_rels/.rels"
NS_PROPS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
NS_VT = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
NS_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
NS_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
CUSTOM_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"  # the one FMTID Office uses for custom properties
MAX_MEMBERS = 10_000
MAX_TOTAL = 1 << 30  # declared uncompressed bytes
MAX_XML = 16 << 20
#: What zipfile raises on hostile archives (unsupported versions and encryption included).
_ZIP_FORMAT_ERRORS = (zipfile.BadZipFile, zlib.error, struct.error, EOFError, NotImplementedError)
ZIP_ERRORS = (*_ZIP_FORMAT_ERRORS, OSError, ValueError, RuntimeError)


def accept(prefix: bytes) -> bool:
    return prefix[:4] == b"PK\x03\x04"


def open_package(data: bytes) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS as exc:
        raise MalformedFileError(f"not a readable ZIP package: {exc}") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_TOTAL:
        raise MalformedFileError("ZIP package is too large (members or declared sizes)")
    if len(zf.NameToInfo) != len(infos):  # readers disagree on which duplicate counts: refuse
        raise MalformedFileError("ZIP package has duplicate member names")
    if TYPES not in zf.NameToInfo:
        raise UnsupportedFormatError("ZIP without [Content_Types].xml: not an Office Open XML document")
    return zf


def read_member(zf: zipfile.ZipFile, name: str, limit: int | None = None) -> bytes:
    info = zf.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise MalformedFileError(f"{name} is larger than {limit} bytes")
    try:
        return zf.read(info)
    except ZIP_ERRORS as exc:
        raise MalformedFileError(f"ZIP member {name} is unreadable: {exc}") from None


def _blocks(zf: zipfile.ZipFile, name: str, size: int = 1 << 20) -> Iterator[bytes]:
    """A member's content in blocks, CRC-checked by zipfile at the end."""
    try:
        with zf.open(name) as src:
            while block := src.read(size):
                yield block
    except ZIP_ERRORS as exc:
        raise MalformedFileError(f"ZIP member {name} is unreadable: {exc}") from None


def parse_xml(raw: bytes, name: str) -> ET.Element:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedFileError(f"{name} is not UTF-8: {exc}") from None
    return safexml.parse(raw, name)[0]


def main_part(zf: zipfile.ZipFile, content_types: tuple[str, ...]) -> str | None:
    """The member name of the package's part of one of ``content_types`` (from
    ``[Content_Types].xml`` overrides), or ``None``."""
    root = parse_xml(read_member(zf, TYPES, MAX_XML), TYPES)
    for override in root.findall(f"{{{NS_TYPES}}}Override"):
        if override.get("ContentType") in content_types:
            name = (override.get("PartName") or "").lstrip("/")
            return name if name in zf.NameToInfo else None
    return None


def read_record(data: bytes) -> str | None:
    with open_package(data) as zf:
        if CUSTOM not in zf.NameToInfo:
            return None
        root = parse_xml(read_member(zf, CUSTOM, MAX_XML), CUSTOM)
    props = root.findall(f"{{{NS_PROPS}}}property")
    return single_record(["".join(p.itertext()) for p in props if p.get("name") == NAME])


def _emit(elem: ET.Element) -> str:
    """Serialise a parsed element under custom.xml's own prefixes (props default, ``vt:``)."""
    uri, _, local = elem.tag[1:].partition("}") if elem.tag.startswith("{") else ("", "", elem.tag)
    declare = ""
    if uri == NS_VT:
        name = f"vt:{local}"
    elif uri in (NS_PROPS, ""):
        name = local
    else:
        name, declare = f"x:{local}", f' xmlns:x="{escape(uri)}"'
    attrs = "".join(
        f' {k}="{escape(v).replace(chr(34), "&quot;")}"' for k, v in elem.attrib.items() if "{" not in k
    )
    inner = escape(elem.text or "") + "".join(_emit(child) + escape(child.tail or "") for child in elem)
    return f"<{name}{declare}{attrs}>{inner}</{name}>"


def _custom_xml(existing: bytes | None, record: str | None) -> bytes:
    """custom.xml with every property but ours kept as written and ours (given ``record``)
    (re)placed last."""
    kept: list[str] = []
    pid = 1
    if existing is not None:
        root = parse_xml(existing, CUSTOM)
        for prop in root.findall(f"{{{NS_PROPS}}}property"):
            if prop.get("name") == NAME:
                continue
            pid = max(pid, int(prop.get("pid", "1")) if prop.get("pid", "").isdigit() else 1)
            kept.append(_emit(prop))
    ours = (
        f'<property fmtid="{FMTID}" pid="{pid + 1}" name="{NAME}">'
        f"<vt:lpwstr>{escape(record)}</vt:lpwstr></property>"
        if record is not None
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Properties xmlns="{NS_PROPS}" xmlns:vt="{NS_VT}">{"".join(kept)}{ours}</Properties>'
    ).encode()


def _insert_before_close(raw: bytes, close: bytes, element: str, name: str) -> bytes:
    at = raw.rfind(close)
    if at >= 0:
        return raw[:at] + element.encode("utf-8") + raw[at:]
    end = raw.rstrip().rfind(b"/>")  # an empty root written as <Root .../>
    if end < 0 or raw.rfind(b"<" + close[2:-1], 0, end) < 0:
        raise MalformedFileError(f"{name} has no {close.decode()}")
    return raw[:end] + b">" + element.encode("utf-8") + close + raw[end + 2 :]


def _with_override(raw: bytes) -> bytes:
    root = parse_xml(raw, TYPES)
    if any(o.get("PartName") == "/" + CUSTOM for o in root.findall(f"{{{NS_TYPES}}}Override")):
        return raw
    return _insert_before_close(
        raw, b"</Types>", f'<Override PartName="/{CUSTOM}" ContentType="{CUSTOM_TYPE}"/>', TYPES
    )


def _with_relationship(raw: bytes | None) -> bytes:
    if raw is None:
        raw = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Relationships xmlns="{NS_RELS}"/>'.encode()
        )  # no rels yet
    root = parse_xml(raw, RELS)
    rels = root.findall(f"{{{NS_RELS}}}Relationship")
    if any(r.get("Type") == CUSTOM_REL for r in rels):
        return raw
    ids = {r.get("Id") for r in rels}
    rid = next(f"rId{n}" for n in range(len(ids) + 100, 1_000_000) if f"rId{n}" not in ids)
    return _insert_before_close(
        raw, b"</Relationships>", f'<Relationship Id="{rid}" Type="{CUSTOM_REL}" Target="{CUSTOM}"/>', RELS
    )


def write_record(data: bytes, record: str) -> bytes:
    return _write(data, record)


def stage(data: bytes) -> bytes:
    """custom.xml without our property, its content type and relationship, as write_record
    leaves them (created if missing): then adding the property changes nothing else."""
    return _write(data, None)


def _write(data: bytes, record: str | None) -> bytes:
    with open_package(data) as zin:
        names = zin.NameToInfo
        replaced = {
            CUSTOM: _custom_xml(read_member(zin, CUSTOM, MAX_XML) if CUSTOM in names else None, record),
            TYPES: _with_override(read_member(zin, TYPES, MAX_XML)),
            RELS: _with_relationship(read_member(zin, RELS, MAX_XML) if RELS in names else None),
        }
    return rewrite_members(data, replaced)


def rewrite_members(data: bytes, replaced: dict[str, bytes]) -> bytes:
    """The package with the members named in ``replaced`` given new content (same name, place,
    date and compression; names it lacked are added at the end) and every other member copied."""
    out = io.BytesIO()
    replaced = dict(replaced)
    with open_package(data) as zin:
        try:
            with zipfile.ZipFile(out, "w") as zout:
                for info in zin.infolist():
                    content = replaced.pop(info.filename, None)
                    if content is not None:
                        zout.writestr(copy.copy(info), content)
                        continue
                    with zout.open(copy.copy(info), "w", force_zip64=info.file_size > 0x7FFFFFFF) as dst:
                        for block in _blocks(zin, info.filename):  # streamed: a bomb never sits in memory
                            dst.write(block)
                for name, content in replaced.items():  # parts the package did not have yet
                    zout.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, zipfile.ZIP_DEFLATED)
        except ZIP_ERRORS as exc:  # e.g. a member declaring a compression method we can't write
            raise MalformedFileError(f"ZIP package could not be rewritten: {exc}") from None
    return out.getvalue()


#: Our property element exactly as _custom_xml writes it: the only bytes of the package the
#: digest leaves out (a property in any other form is content).
_OUR_PROPERTY = re.compile(
    rb'<property fmtid="' + re.escape(FMTID.encode()) + rb'" pid="[0-9]{1,10}" name="' + NAME.encode()
    + rb'"><vt:lpwstr>[^<]*</vt:lpwstr></property>'
)  # fmt: skip
_DESCRIPTOR = b"PK\x07\x08"


def _record_end(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int]:
    """(start of the data, end of the local record: data and any data descriptor)."""
    at = info.header_offset
    if data[at : at + 4] != b"PK\x03\x04":
        raise MalformedFileError(f"ZIP member {info.filename} has no local header")
    name_len, extra_len = struct.unpack_from("<HH", data, at + 26)
    start = at + 30 + name_len + extra_len
    end = start + info.compress_size
    if info.flag_bits & 0x08:  # a data descriptor: optional signature, CRC, sizes (8 or 16 bytes)
        end += (4 if data[end : end + 4] == _DESCRIPTOR else 0) + (20 if info.file_size >= 0xFFFFFFFF else 12)
    if end > len(data):
        raise MalformedFileError(f"ZIP member {info.filename} runs past the file")
    return start, end


def _package_material(data: bytes, zf: zipfile.ZipFile) -> list[bytes]:
    """What the digest binds besides the members' content: see the module docstring."""
    parts: list[bytes] = []
    covered: list[tuple[int, int]] = []
    for info in zf.infolist():
        start, end = _record_end(data, info)
        covered.append((info.header_offset, end))
        name = info.filename.encode()
        fields = (
            info.compress_type, info.date_time, info.flag_bits, info.external_attr, info.internal_attr,
            info.create_system, info.create_version, info.extract_version, info.volume, info.reserved,
        )  # fmt: skip
        parts += [name, repr(fields).encode(), info.extra, info.comment]
        if info.filename == CUSTOM:  # its local header but the CRC and sizes, then its content
            parts.append(
                data[info.header_offset + 4 : info.header_offset + 14] + data[info.header_offset + 30 : start]
            )
            raw = read_member(zf, CUSTOM, MAX_XML)
            ours = _OUR_PROPERTY.search(raw)
            parts.append(raw[: ours.start()] + raw[ours.end() :] if ours else raw)
        else:
            parts.append(struct.pack("<IQQ", info.CRC, info.compress_size, info.file_size))
            parts.append(data[info.header_offset : end])
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 0xFFFF - 22))
    parts += [zf.comment, data[eocd + 4 : eocd + 8] if eocd >= 0 else b""]
    pos = 0
    for start, end in sorted(covered):  # bytes no record accounts for, up to the directory
        if start < pos:
            raise MalformedFileError("ZIP members overlap")
        parts.append(data[pos:start])
        pos = end
    parts.append(data[pos : zf.start_dir])
    return parts


def content_digest(data: bytes) -> bytes:
    h = hashlib.sha256(b"ooxml")
    with open_package(data) as zf:
        for name in sorted(zf.NameToInfo):
            if name in (CUSTOM, TYPES, RELS):
                continue
            h.update(struct.pack(">I", len(name.encode())) + name.encode())
            size = 0
            for block in _blocks(zf, name):
                h.update(block)
                size += len(block)
            h.update(struct.pack(">Q", size))
        h.update(b"\x00package")
        for part in _package_material(data, zf):
            h.update(struct.pack(">Q", len(part)))
            h.update(part)
    return h.digest()


FORMAT = register(
    record_format(
        name="docx",
        mime_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        extensions=(".docx", ".xlsx", ".pptx", ".docm"),
        kind="document",
        accept=accept,
        content_digest=content_digest,
        read_record=read_record,
        write_record=write_record,
        slot="ooxml:docProps/custom.xml:AIGC",
        stage=stage,
    )
)
