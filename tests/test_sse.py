from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.errors import MalformedFileError
from labeler.sse import SSEParser, format_comment, format_event

STREAM = (
    b'data: {"a":1}\n\n'
    b'event: response.output_text.delta\ndata: {"delta":"hi"}\n\n'
    b": keep-alive comment\n\n"
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)


def _events(stream: bytes, cuts: list[int]) -> list[tuple[str | None, str | None, bytes]]:
    parser, out, last = SSEParser(), [], 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        out += parser.feed(stream[last:cut])
        last = cut
    assert parser.flush() == b""
    return [(e.event, e.data, e.raw) for e in out]


def test_fields_and_raw_bytes() -> None:
    events = _events(STREAM, [])
    assert [(e, d) for e, d, _ in events] == [
        (None, '{"a":1}'),
        ("response.output_text.delta", '{"delta":"hi"}'),
        (None, None),
        (None, "line one\nline two"),
        (None, "[DONE]"),
    ]
    assert b"".join(raw for _, _, raw in events) == STREAM


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@given(cuts=st.lists(st.integers(0, 200), max_size=12))
def test_any_split_and_line_ending_gives_the_same_events(newline: bytes, cuts: list[int]) -> None:
    stream = STREAM.replace(b"\n", newline)
    expected = _events(stream, [])
    assert _events(stream, [c % (len(stream) + 1) for c in cuts]) == expected
    assert [e for e, _, _ in expected][1] == "response.output_text.delta"


def test_crlf_split_between_cr_and_lf_does_not_end_early() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r\n\r") == []
    (event,) = parser.feed(b"\n")
    assert event.data == "x" and event.newline == b"\r\n"


def test_unterminated_tail_is_flushed_and_bounded() -> None:
    parser = SSEParser(max_pending=64)
    assert parser.feed(b"data: partial") == []
    assert parser.flush() == b"data: partial"
    with pytest.raises(MalformedFileError):
        parser.feed(b"data: " + b"x" * 100)


def test_writer_round_trips_and_keeps_line_style() -> None:
    raw = format_event({"text": "AI生成"}, event="delta", newline=b"\r\n")
    assert raw == 'event: delta\r\ndata: {"text":"AI生成"}\r\n\r\n'.encode()
    (event,) = SSEParser().feed(raw)
    assert event.json() == {"text": "AI生成"} and event.event == "delta"
    (comment,) = SSEParser().feed(format_comment("AIGC {x}\nsecond"))
    assert comment.is_comment_only


@given(st.binary(max_size=300))
def test_parser_never_raises_on_garbage(blob: bytes) -> None:
    parser = SSEParser()
    for event in parser.feed(blob):
        event.json()
    parser.flush()
