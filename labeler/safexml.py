"""Parse untrusted XML (XMP packets, OOXML parts) with explicit bounds.

No DOCTYPE or ENTITY declaration is accepted, so no entity is ever expanded (billion laughs,
XXE); and the tree is bounded in depth and element count while it is read, so hostile nesting
ends as a :class:`MalformedFileError`, never as a ``RecursionError`` in code that walks the tree.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

from .errors import MalformedFileError

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "escape", "parse", "quoteattr"]

#: Deeper than any XMP packet or Office part we meet (XMP: < 10, Word tables in tables: < 60).
MAX_DEPTH = 256
#: Elements in one document: far above a real XMP packet or a custom-properties part.
MAX_ELEMENTS = 500_000


def parse(
    raw: bytes, what: str, *, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS
) -> tuple[ET.Element, dict[str, str]]:
    """(root element, namespace URI -> prefix as first written). Raises MalformedFileError."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise MalformedFileError(f"{what} declares a DOCTYPE/ENTITY; refused (no entity expansion)")
    prefixes: dict[str, str] = {}
    depth = count = 0
    events = ET.iterparse(io.BytesIO(raw), events=("start", "end", "start-ns"))
    try:
        for event, item in events:
            if event == "start":
                depth += 1
                count += 1
                if depth > max_depth:
                    raise MalformedFileError(f"{what} nests deeper than {max_depth} elements")
                if count > max_elements:
                    raise MalformedFileError(f"{what} has more than {max_elements} elements")
            elif event == "end":
                depth -= 1
            else:
                prefixes.setdefault(item[1], item[0])
    except (ET.ParseError, ValueError, RecursionError) as exc:
        raise MalformedFileError(f"{what} is not well-formed XML: {exc}") from None
    return events.root, prefixes  # type: ignore[attr-defined]  # documented, missing from stubs


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as entities: what :func:`xml.sax.saxutils.escape` does, without
    importing it (it pulls in urllib, http.client and ssl: ~80 ms of every CLI start)."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(text: str) -> str:
    """An attribute value with its quotes, as :func:`xml.sax.saxutils.quoteattr` makes it."""
    text = escape(text).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return '"{}"'.format(text.replace('"', "&quot;"))
