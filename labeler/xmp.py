"""Build, update and read the XMP packet that carries the implicit label.

The packet holds three things:

* ``TC260:AIGC`` (namespace exactly ``http://www.tc260.org.cn/ns/AIGC/1.0/``): the GB 45438 JSON;
* ``Iptc4xmpExt:DigitalSourceType`` = ``trainedAlgorithmicMedia``: what IPTC/C2PA readers know;
* our own namespace: the signed provenance token plus readable provider, system, version, time
  and filing numbers (the EU AI Act / California SB 942 latent disclosure).

An existing packet is *updated*: other tools' properties and namespace prefixes survive; only
the properties we own are replaced. XMP is untrusted input: a packet with a DOCTYPE is refused
outright, so no entity (internal or external) is ever expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from . import safexml
from .errors import MalformedFileError
from .safexml import escape, quoteattr

__all__ = [
    "DIGITAL_SOURCE_TYPE_AI",
    "EXIFTOOL_CONFIG",
    "NS_IPTC_EXT",
    "NS_LABELER",
    "NS_TC260",
    "XmpLabel",
    "parse_packet",
    "read_label",
    "write_label",
]

NS_TC260 = "http://www.tc260.org.cn/ns/AIGC/1.0/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_LABELER = "http://ns.aigc-labeler.org/provenance/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_X = "adobe:ns:meta/"
DIGITAL_SOURCE_TYPE_AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

#: An exiftool config that teaches it the TC260 namespace, so it can *write* XMP-TC260:AIGC too
#: (``exiftool -config tc260.config -XMP-TC260:AIGC='{"Label":"1",...}' file``); reading needs none.
EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = ('Image::ExifTool::XMP::Main' => { TC260 => {
  SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } } });
%Image::ExifTool::UserDefined::TC260 = ( GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
  NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' }, WRITABLE => 'string', AIGC => { } );
1;
"""

#: Largest packet we parse. Standard JPEG XMP is at most 65,502 bytes; PNG/WebP allow more.
MAX_PACKET_BYTES = 4 * 1024 * 1024

_PREFERRED_PREFIXES = {
    NS_X: "x",
    NS_RDF: "rdf",
    NS_TC260: "TC260",
    NS_IPTC_EXT: "Iptc4xmpExt",
    NS_LABELER: "aigcl",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://www.w3.org/XML/1998/namespace": "xml",
}
_HEADER = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_TRAILER = '\n<?xpacket end="w"?>'
_TAG_AIGC = f"{{{NS_TC260}}}AIGC"
_TAG_DST = f"{{{NS_IPTC_EXT}}}DigitalSourceType"
_TAG_DESCRIPTION = f"{{{NS_RDF}}}Description"
_TAG_RDF = f"{{{NS_RDF}}}RDF"
_ATTR_ABOUT = f"{{{NS_RDF}}}about"

#: Readable fields in our namespace, attribute name -> XMP property local name.
_READABLE = {
    "provenance": "Provenance",
    "provider": "Provider",
    "system": "System",
    "system_version": "SystemVersion",
    "created": "Created",
    "filing_numbers": "FilingNumbers",
}


@dataclass(frozen=True)
class XmpLabel:
    """What we read from or write into a packet. Strings exactly as stored."""

    aigc: str
    digital_source_type: str | None = DIGITAL_SOURCE_TYPE_AI
    provenance: str | None = None
    provider: str | None = None
    system: str | None = None
    system_version: str | None = None
    created: str | None = None
    filing_numbers: str | None = None  #: "; "-joined, for people; the signed copy is in provenance
    aigc_namespace: str = NS_TC260  #: where the AIGC property was found (a wrong one is reported)
    #: every TC260 AIGC value the packet holds, as read (not compared: a view of ``aigc``)
    aigc_values: tuple[str, ...] = field(default=(), compare=False)


def parse_packet(packet: bytes) -> tuple[ET.Element, dict[str, str]]:
    """Parse untrusted XMP into (root element, namespace URI -> prefix as written)."""
    if len(packet) > MAX_PACKET_BYTES:
        raise MalformedFileError(f"XMP packet of {len(packet)} bytes exceeds {MAX_PACKET_BYTES}")
    try:
        text = packet.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFileError("XMP packet is not UTF-8") from None
    return safexml.parse(text.lstrip("\ufeff").encode("utf-8"), "XMP packet")


def _descriptions(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(_TAG_DESCRIPTION))


def _is_ours(tag: str) -> bool:
    return tag in (_TAG_AIGC, _TAG_DST) or tag.startswith(f"{{{NS_LABELER}}}")


def read_label(packet: bytes) -> XmpLabel | None:
    """The label in a packet, or ``None``. Accepts the property as element or attribute, under
    any prefix bound to the TC260 URI, and an ``AIGC`` property in a wrong namespace (reported
    via ``aigc_namespace``). Every TC260 value found is in ``aigc_values`` (one label per file:
    :func:`labeler.aigc.single_record` judges them)."""
    root, _ = parse_packet(packet)
    found: dict[str, str] = {}
    values: list[str] = []
    fallback: tuple[str, str] | None = None
    for desc in _descriptions(root):
        items = list(desc.attrib.items()) + [(c.tag, c.text or "") for c in desc if len(c) == 0]
        for tag, value in items:
            if tag == _TAG_AIGC:
                values.append(value.strip())
            elif tag.endswith("}AIGC") and fallback is None:
                fallback = (value, tag[1:].split("}")[0])
            elif tag == _TAG_DST:
                found.setdefault("digital_source_type", value)
            elif tag.startswith(f"{{{NS_LABELER}}}"):
                found.setdefault(tag.split("}")[1], value)
    if values:
        aigc, namespace = values[0], NS_TC260
    elif fallback is not None:
        aigc, namespace = fallback[0].strip(), fallback[1]
        values = [aigc]
    else:
        return None
    return XmpLabel(
        aigc=aigc,
        aigc_namespace=namespace,
        aigc_values=tuple(values),
        digital_source_type=found.get("digital_source_type"),
        **{attr: found.get(prop) for attr, prop in _READABLE.items()},
    )


def _description(label: XmpLabel) -> str:
    """Our rdf:Description, declaring its own namespaces so it can join any packet as is."""
    lines = [f"<TC260:AIGC>{escape(label.aigc)}</TC260:AIGC>"]
    if label.digital_source_type:
        lines.append(
            f"<Iptc4xmpExt:DigitalSourceType>{escape(label.digital_source_type)}</Iptc4xmpExt:DigitalSourceType>"
        )
    for attr, prop in _READABLE.items():
        value = getattr(label, attr)
        if value:
            lines.append(f"<aigcl:{prop}>{escape(value)}</aigcl:{prop}>")
    body = "".join(f"\n   {line}" for line in lines)
    return (
        f'  <rdf:Description rdf:about="" xmlns:rdf="{NS_RDF}" xmlns:TC260="{NS_TC260}"'
        f' xmlns:Iptc4xmpExt="{NS_IPTC_EXT}" xmlns:aigcl="{NS_LABELER}">{body}\n  </rdf:Description>'
    )


def write_label(label: XmpLabel, existing: bytes | None = None, toolkit: str = "aigc-labeler") -> bytes:
    """A packet holding ``label``: new, or ``existing`` with our properties replaced."""
    ours = _description(label)
    if existing is None:
        text = (
            f'<x:xmpmeta xmlns:x="{NS_X}" x:xmptk={quoteattr(toolkit)}>\n <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
            f"{ours}\n </rdf:RDF>\n</x:xmpmeta>"
        )
        return (_HEADER + text + _TRAILER).encode("utf-8")
    root, prefixes = parse_packet(existing)
    rdf = root if root.tag == _TAG_RDF else root.find(f".//{_TAG_RDF}")
    if rdf is None:
        raise MalformedFileError("existing XMP packet has no rdf:RDF element")
    for desc in _descriptions(root):
        for key in [k for k in desc.attrib if _is_ours(k)]:
            del desc.attrib[key]
        for child in [c for c in desc if _is_ours(c.tag)]:
            desc.remove(child)
        if len(desc) == 0 and set(desc.attrib) <= {_ATTR_ABOUT}:
            parent = root if desc in list(root) else next(p for p in root.iter() if desc in list(p))
            parent.remove(desc)
    return (_HEADER + _serialize(root, prefixes, inject={id(rdf): ours}) + _TRAILER).encode("utf-8")


def _serialize(root: ET.Element, written: dict[str, str], inject: dict[int, str]) -> str:
    """Serialise with the prefixes as written (all declared on the root element), adding the
    pre-rendered text ``inject[id(elem)]`` as the last child of ``elem``."""
    prefixes: dict[str, str] = {}
    taken: set[str] = set()

    def prefix_of(uri: str) -> str:
        if uri not in prefixes:
            want = written.get(uri) or _PREFERRED_PREFIXES.get(uri) or "ns"
            candidate, n = want, 0
            while candidate in taken or not candidate:
                n += 1
                candidate = f"{want}{n}"
            prefixes[uri] = candidate
            taken.add(candidate)
        return prefixes[uri]

    def qname(name: str) -> str:
        if name.startswith("{"):
            uri, local = name[1:].split("}", 1)
            return f"{prefix_of(uri)}:{local}"
        return name

    def emit(elem: ET.Element, out: list[str], depth: int) -> None:
        pad = "\n" + " " * depth
        attrs = "".join(f" {qname(k)}={quoteattr(v)}" for k, v in elem.attrib.items())
        out.append(f"{pad}<{qname(elem.tag)}{attrs}")
        extra = inject.get(id(elem))
        if len(elem) == 0 and not elem.text and extra is None:
            out.append("/>")
            return
        out.append(">")
        if len(elem) == 0 and extra is None:
            out.append(escape(elem.text or ""))
            out.append(f"</{qname(elem.tag)}>")
            return
        for child in elem:
            emit(child, out, depth + 1)
        if extra is not None:
            out.append("\n" + extra)
        out.append(f"{pad}</{qname(elem.tag)}>")

    body: list[str] = []
    emit(root, body, 0)
    head = "<" + qname(root.tag)
    prefixes.pop("http://www.w3.org/XML/1998/namespace", None)
    decls = "".join(f" xmlns:{p}={quoteattr(u)}" for u, p in prefixes.items())
    text = "".join(body).lstrip("\n")
    return head + decls + text[len(head) :]
