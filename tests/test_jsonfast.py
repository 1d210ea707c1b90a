from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler import jsonfast

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_orjson_is_installed_where_the_tests_run() -> None:
    assert jsonfast.FAST  # the dev extra includes it; the fallback is tested below


@given(JSON)
def test_parse_and_write_back_preserve_the_value(value: object) -> None:
    data = json.dumps(value).encode()
    parsed, encode = jsonfast.parse(data)
    assert parsed == json.loads(data)
    assert json.loads(encode(parsed)) == parsed
    assert json.loads(jsonfast.dumps(value)) == value


def test_what_only_the_stdlib_reads_is_written_back_by_the_stdlib() -> None:
    parsed, encode = jsonfast.parse(b'{"x": NaN, "big": 123456789012345678901234567890}')
    assert math.isnan(parsed["x"]) and parsed["big"] == 123456789012345678901234567890
    assert encode(parsed) == b'{"x":NaN,"big":123456789012345678901234567890}'  # not null


def test_non_utf8_encodings_and_garbage() -> None:
    assert jsonfast.parse('{"a": "é"}'.encode("utf-16"))[0] == {"a": "é"}  # as json.loads does
    with pytest.raises(ValueError):
        jsonfast.parse(b"{not json")
    with pytest.raises((ValueError, RecursionError)):
        jsonfast.parse(b"[" * 100_000 + b"]" * 100_000)


def test_without_orjson_the_stdlib_does_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonfast, "FAST", False)
    parsed, encode = jsonfast.parse(b'{"a": "\\u4eba", "b": [1, 2.5]}')
    assert encode(parsed) == '{"a":"人","b":[1,2.5]}'.encode()


@given(JSON)
def test_loads_reads_text_as_the_stdlib_does(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    loaded = jsonfast.loads(text)
    assert loaded == json.loads(text) and json.dumps(loaded) == json.dumps(json.loads(text))


def test_loads_keeps_what_orjson_would_change() -> None:
    big = jsonfast.loads('{"created": 123456789012345678901234567890, "x": NaN, "s": "\\ud800"}')
    assert big["created"] == 123456789012345678901234567890 and isinstance(big["created"], int)
    assert math.isnan(big["x"]) and big["s"] == "\ud800"
    with pytest.raises(ValueError):
        jsonfast.loads("{not json")
