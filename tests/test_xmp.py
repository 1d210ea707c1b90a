from __future__ import annotations

import contextlib

import pytest
from conftest import EXISTING_XMP
from hypothesis import given
from hypothesis import strategies as st

from labeler.errors import MalformedFileError
from labeler.xmp import (
    DIGITAL_SOURCE_TYPE_AI,
    NS_TC260,
    XmpLabel,
    parse_packet,
    read_label,
    write_label,
)

LABEL = XmpLabel(
    aigc='{"AIGC":{"Label":"1","ContentProducer":"P&<>","ProduceID":"x"}}',
    provenance="aigcl1.abc.def",
    provider="示例智能科技有限公司",
    system="YunQue",
    system_version="2.1",
    created="2026-11-22T10:00:00Z",
    filing_numbers="Beijing-YunQue-20230821; 网信算备110108823483901230031号",
)


def test_new_packet_round_trips_every_field() -> None:
    packet = write_label(LABEL)
    assert packet.startswith(b"<?xpacket begin=")
    assert packet.endswith(b'<?xpacket end="w"?>')
    assert read_label(packet) == LABEL


def test_namespace_uri_is_exactly_tc260() -> None:
    packet = write_label(LABEL)
    assert b'xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/"' in packet
    _root, prefixes = parse_packet(packet)
    assert prefixes[NS_TC260] == "TC260"


def test_update_keeps_foreign_properties_and_prefixes() -> None:
    packet = write_label(LABEL, existing=EXISTING_XMP)
    text = packet.decode()
    assert 'photoshop:Credit="Studio A"' in text
    assert "<rdf:li>Jane Doe</rdf:li>" in text
    assert read_label(packet) == LABEL


def test_update_replaces_our_properties_instead_of_adding() -> None:
    first = write_label(LABEL, existing=EXISTING_XMP)
    second = write_label(XmpLabel(aigc="second"), existing=first)
    assert second.count(b"TC260:AIGC>") == 2  # one open, one close tag
    assert second.count(b"DigitalSourceType>") == 2
    assert b"Provenance" not in second
    assert read_label(second) == XmpLabel(aigc="second")


def test_update_replaces_attribute_form_and_other_sources_type() -> None:
    existing = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" '
        b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" TC260:AIGC="old" '
        b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    assert read_label(existing) == XmpLabel(
        aigc="old", digital_source_type="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    )
    updated = write_label(XmpLabel(aigc="new"), existing=existing)
    assert b"old" not in updated and b"digitalCapture" not in updated
    assert read_label(updated) == XmpLabel(aigc="new", digital_source_type=DIGITAL_SOURCE_TYPE_AI)


def test_wrong_namespace_is_read_but_reported() -> None:
    packet = write_label(LABEL).replace(NS_TC260.encode(), b"http://www.tc260.org.cn/ns/AIGC/")
    label = read_label(packet)
    assert label is not None and label.aigc == LABEL.aigc
    assert label.aigc_namespace == "http://www.tc260.org.cn/ns/AIGC/"


def test_packet_without_label_reads_none() -> None:
    assert read_label(EXISTING_XMP) is None


@pytest.mark.parametrize(
    "packet",
    [
        # billion laughs: refused before any parsing, so nothing is expanded
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>&lol2;</x:xmpmeta>",
        # external entity
        b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>',
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed></x:xmpmeta>",
        b"\xff\xfe<\x00x\x00",
        b"<a>&undefined;</a>",
        b"",
    ],
)
def test_hostile_or_broken_packets_are_refused(packet: bytes) -> None:
    with pytest.raises(MalformedFileError):
        read_label(packet)


def test_huge_packet_is_refused_before_parsing() -> None:
    with pytest.raises(MalformedFileError, match="exceeds"):
        parse_packet(b" " * (4 * 1024 * 1024 + 1))


@given(st.binary(max_size=400))
def test_reader_raises_only_malformed_file_error(blob: bytes) -> None:
    for packet in (blob, write_label(LABEL)[: len(blob)], EXISTING_XMP.replace(b"Jane", blob[:20])):
        with contextlib.suppress(MalformedFileError):
            read_label(packet)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60))
def test_any_text_value_round_trips(value: str) -> None:
    label = XmpLabel(aigc=value.strip() or "x", provider=value or None)
    assert read_label(write_label(label)) == label
