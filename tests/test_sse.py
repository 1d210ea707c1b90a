from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler import sse
from labeler.errors import MalformedFileError
from labeler.sse import Event, EventTooLargeError, SSEParser, format_comment, format_event

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


# -- the parser is linear in the bytes fed, however they are chunked (issue 13e) -----------------------


class _CountingSearch:
    """Stands in for the parser's event-end pattern and counts the bytes each search may scan."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.scanned = 0

    def search(self, data: bytes, pos: int = 0) -> re.Match[bytes] | None:
        self.scanned += len(data) - pos
        return self.pattern.search(data, pos)


@pytest.mark.parametrize(("size", "step"), [(1 << 20, 64), (1 << 16, 1)])
def test_a_long_event_costs_linear_work(monkeypatch: pytest.MonkeyPatch, size: int, step: int) -> None:
    """A 1 MiB event in 64-byte chunks (or 64 KiB byte by byte): each byte is scanned a bounded
    number of times. A parser that rescans (or recopies) its pending buffer per chunk does
    ~size**2 / step work and fails here long before it finishes."""
    counter = _CountingSearch(sse._EVENT_END)
    monkeypatch.setattr(sse, "_EVENT_END", counter)
    stream = b"data: " + b"x" * size + b"\r\n\r\n" + b"data: next\r\n\r\n"
    parser = SSEParser()
    events = []
    for i in range(0, len(stream), step):
        events += parser.feed(stream[i : i + step])
        assert counter.scanned <= 4 * (i + step) + 64, f"rescanning: {counter.scanned} bytes after {i}"
    assert [len(e.data or "") for e in events] == [size, 4] and parser.flush() == b""
    assert b"".join(e.raw for e in events) == stream
    assert parser.bytes_examined <= 6 * len(stream)  # scanned + the one join of the long event


def test_an_event_over_the_bound_keeps_the_events_before_it() -> None:
    parser = SSEParser(max_pending=64)
    with pytest.raises(EventTooLargeError) as raised:
        parser.feed(b"data: a\n\n" + b"data: " + b"x" * 100)
    assert [e.data for e in raised.value.events] == ["a"]
    assert parser.flush() == b"data: " + b"x" * 100


# -- any chunking, any line ending: the same events, and the ones the WHATWG rules dispatch -------------

_ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r"])
_VALUE = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
_LINE = st.one_of(
    st.just(b""),
    st.builds(lambda v: b"data: " + v.encode(), _VALUE),
    st.builds(lambda v: b"data:" + v.encode(), _VALUE),
    st.builds(lambda v: b"event: " + v.encode(), _VALUE),
    st.builds(lambda v: b":" + v.encode(), _VALUE),
    st.builds(lambda v: b"id: " + v.encode(), _VALUE),
    st.just(b"data"),
)


def _whatwg(stream: bytes) -> list[tuple[str | None, str | None]]:
    """The reference: split lines at CRLF, LF or CR; a blank line dispatches what came before.
    The last, unterminated line is not an event yet."""
    out: list[tuple[str | None, str | None]] = []
    event: str | None = None
    data: list[str] = []
    for line in re.split(rb"\r\n|\n|\r", stream)[:-1]:
        if not line:
            if event is not None or data:
                out.append((event, "\n".join(data) if data else None))
            event, data = None, []
        elif not line.startswith(b":"):
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"data":
                data.append(value.decode("utf-8", "replace"))
    return out


def _feed(stream: bytes, cuts: list[int]) -> tuple[list[Event], bytes]:
    parser, events, last = SSEParser(), [], 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        events += parser.feed(stream[last:cut])
        last = cut
    return events, parser.flush()


@settings(max_examples=300)
@given(
    lines=st.lists(st.tuples(_LINE, _ENDINGS), max_size=24),
    cuts=st.lists(st.integers(0, 10_000), max_size=16),
)
def test_mixed_line_endings_any_chunking_match_the_whatwg_rules(
    lines: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(line + end for line, end in lines) + b"data: unterminated"
    whole, whole_rest = _feed(stream, [])
    split, split_rest = _feed(stream, cuts)
    assert [(e.raw, e.event, e.data, e.newline) for e in split] == [
        (e.raw, e.event, e.data, e.newline) for e in whole
    ]
    assert split_rest == whole_rest and b"".join(e.raw for e in whole) + whole_rest == stream
    assert [(e.event, e.data) for e in whole if not e.is_comment_only] == _whatwg(stream)


@given(blob=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=20))
def test_any_bytes_any_chunking_forward_every_byte_once(blob: bytes, cuts: list[int]) -> None:
    whole, whole_rest = _feed(blob, [])
    split, split_rest = _feed(blob, cuts)
    assert [e.raw for e in split] == [e.raw for e in whole] and split_rest == whole_rest
    assert b"".join(e.raw for e in split) + split_rest == blob


def test_a_blank_line_ended_by_a_lone_cr_after_lf_or_crlf_ends_the_event() -> None:
    """WHATWG: CR ends a line too, so LF+CR and CRLF+CR are blank lines (two events here)."""
    for stream in (b"data: a\n\rdata: b\n\n", b"data: a\r\n\rdata: b\r\n\r\n"):
        assert [e.data for e in SSEParser().feed(stream)] == ["a", "b"]


def test_every_small_stream_whole_or_byte_by_byte_matches_the_whatwg_rules() -> None:
    """Exhaustive where random draws are thin: every stream of 4 lines from 4 kinds x 3 endings."""
    kinds = [b"", b"data: a", b"event: e", b":c"]
    pieces = [kind + end for kind in kinds for end in (b"\r\n", b"\n", b"\r")]
    for combo in itertools.product(pieces, repeat=4):
        stream = b"".join(combo) + b"data: z"
        whole, rest = _feed(stream, [])
        assert [(e.event, e.data) for e in whole if not e.is_comment_only] == _whatwg(stream), stream
        bytewise, bytewise_rest = _feed(stream, list(range(len(stream))))
        assert [e.raw for e in bytewise] == [e.raw for e in whole] and bytewise_rest == rest, stream


def test_a_complete_event_over_the_bound_is_refused_too() -> None:
    parser = SSEParser(max_pending=64)
    big = b"data: " + b"x" * 100 + b"\n\n"
    with pytest.raises(EventTooLargeError) as raised:
        parser.feed(b"data: a\n\n" + big + b"data: b\n\n")
    assert [e.data for e in raised.value.events] == ["a"] and parser.flush() == big + b"data: b\n\n"
    parser = SSEParser(max_pending=64)
    assert parser.feed(b"data: " + b"x" * 40) == []
    with pytest.raises(EventTooLargeError):
        parser.feed(b"x" * 40 + b"\n\n")
    assert parser.flush() == b"data: " + b"x" * 80 + b"\n\n"
