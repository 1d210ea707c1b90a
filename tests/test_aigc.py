from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.aigc import FIELD_ORDER, AigcRecord, Label, check_charset, new_produce_id, single_record
from labeler.errors import InvalidRecordError

ALLOWED = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x21, 0x7F) if c not in (0x22, 0x5C)]), max_size=40
)
NONEMPTY = ALLOWED.filter(bool)


def test_json_is_one_flat_object_of_seven_fields_in_annex_e_order() -> None:
    record = AigcRecord.first_write("001191440300708461136T1XGW3", "abc123", "sig")
    text = record.to_json()
    assert text.startswith('{"Label":"1","ContentProducer":"001191440300708461136T1XGW3",')
    assert list(json.loads(text)) == list(FIELD_ORDER)
    assert all(isinstance(v, str) for v in json.loads(text).values())
    assert " " not in text


def test_wrapped_form_only_on_request_and_both_forms_read_alike() -> None:
    record = AigcRecord.first_write("P", "ID1", "sig")
    wrapped = record.to_json(wrapped=True)
    assert list(json.loads(wrapped)) == ["AIGC"]
    assert list(json.loads(wrapped)["AIGC"]) == list(FIELD_ORDER)
    assert AigcRecord.from_json(wrapped) == AigcRecord.from_json(record.to_json()) == record


def test_single_record_one_label_per_file() -> None:
    flat = AigcRecord.first_write("P", "ID1", "sig").to_json()
    wrapped = AigcRecord.first_write("P", "ID1", "sig").to_json(wrapped=True)
    other = AigcRecord.first_write("P", "ID2", "sig").to_json()
    assert single_record([]) is None
    assert single_record([flat, f" {flat} "]) == flat
    assert single_record([flat, wrapped]) == flat  # the same record in two slots is one label
    with pytest.raises(InvalidRecordError, match="2 different AIGC records"):
        single_record([flat, other])
    with pytest.raises(InvalidRecordError):
        single_record([flat, "{not json"])


def test_first_write_copies_producer_into_propagator_fields() -> None:
    record = AigcRecord.first_write("P", "ID1")
    assert (record.ContentPropagator, record.PropagateID, record.ReservedCode2) == ("P", "ID1", "")


def test_parser_reads_wrapped_and_bare_forms() -> None:
    record = AigcRecord.first_write("P", "ID1", label=Label.SUSPECTED)
    assert AigcRecord.from_json(record.to_json()) == record
    assert AigcRecord.from_json(record.to_json(wrapped=False)) == record
    assert AigcRecord.from_json(record.to_json().encode()) == record


def test_missing_optional_fields_default_to_empty() -> None:
    record = AigcRecord.from_json('{"Label":"2","ContentProducer":"P","ProduceID":"x"}')
    assert record.Label is Label.POSSIBLY and record.ReservedCode1 == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"AIGC":{"Label":"4","ContentProducer":"P","ProduceID":"x"}}', "Label must be"),
        ('{"AIGC":{"Label":"1","ContentProducer":"有限公司","ProduceID":"x"}}', "U+6709"),
        ('{"AIGC":{"Label":"1","ContentProducer":"a b","ProduceID":"x"}}', "' '"),
        ('{"AIGC":{"Label":"1","ContentProducer":"a\\"b","ProduceID":"x"}}', "'\"'"),
        ('{"AIGC":{"Label":"1","ContentProducer":"a\\\\b","ProduceID":"x"}}', "backslash"),
        ('{"AIGC":{"Label":1,"ContentProducer":"P","ProduceID":"x"}}', "must be a string"),
        ('{"AIGC":{"Label":"1","ProduceID":"x"}}', "lacks ContentProducer"),
        ('{"AIGC":{"Label":"1","ContentProducer":"","ProduceID":"x"}}', "must not be empty"),
        ("[1,2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "too long"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_invalid_records_raise_with_the_reason(text: str | bytes, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=re.escape(message)):
        AigcRecord.from_json(text)


def test_charset_rule_exact_boundaries() -> None:
    for c in (0x21, 0x23, 0x5B, 0x5D, 0x7E):
        assert check_charset("f", chr(c)) == chr(c)
    for c in (0x20, 0x22, 0x5C, 0x7F, 0x0A, 0xE9):
        with pytest.raises(InvalidRecordError):
            check_charset("f", chr(c))


def test_produce_ids_are_unique_sortable_and_charset_safe() -> None:
    ids = [new_produce_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and check_charset("ProduceID", i) for i in ids)
    assert ids[0][:12] <= ids[-1][:12]


def test_produce_ids_stay_unique_across_threads_and_a_fork() -> None:
    """ProduceIDs' random part is drawn in bulk: threads must not share a draw, nor a forked
    child its parent's (multiprocessing workers, gunicorn, `labeler serve --workers`)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    new_produce_id()  # the parent holds a partly used draw when it forks
    with ThreadPoolExecutor(8) as pool:
        in_threads = list(pool.map(lambda _: new_produce_id(), range(4000)))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, "\n".join(new_produce_id() for _ in range(500)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_child = pipe.read().split("\n")
    os.waitpid(pid, 0)
    in_parent = [new_produce_id() for _ in range(500)]
    everything = in_threads + in_child + in_parent
    assert len(everything) == 5000 and len(set(everything)) == 5000
    assert {i[12:] for i in in_child}.isdisjoint(i[12:] for i in in_parent)  # random parts too


def test_label_notice_levels() -> None:
    assert [label.notice for label in Label] == ["confirmed", "possible", "suspected"]


@given(
    label=st.sampled_from(list(Label)),
    producer=NONEMPTY,
    pid=NONEMPTY,
    rc1=ALLOWED,
    prop=ALLOWED,
    pid2=ALLOWED,
    rc2=ALLOWED,
    wrapped=st.booleans(),
)
def test_round_trip_property(
    label: Label, producer: str, pid: str, rc1: str, prop: str, pid2: str, rc2: str, wrapped: bool
) -> None:
    record = AigcRecord(label, producer, pid, rc1, prop, pid2, rc2)
    assert AigcRecord.from_json(record.to_json(wrapped=wrapped)) == record


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_parser_raises_only_invalid_record_error(text: str | bytes) -> None:
    with contextlib.suppress(InvalidRecordError):
        AigcRecord.from_json(text)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=8),
    )
)
def test_parser_on_arbitrary_json_values(value: object) -> None:
    for doc in (value, {"AIGC": value}):
        with contextlib.suppress(InvalidRecordError):
            AigcRecord.from_json(json.dumps(doc))


def _same_as_first_write(producer: str, produce_id: str, token: str) -> None:
    """first_write_json (the per-response path) gives first_write's JSON, or raises as it does."""
    try:
        expected = AigcRecord.first_write(producer, produce_id, token).to_json()
    except InvalidRecordError:
        with pytest.raises(InvalidRecordError):
            AigcRecord.first_write_json(producer, produce_id, token)
    else:
        assert AigcRecord.first_write_json(producer, produce_id, token) == expected


@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=60))
def test_first_write_json_is_first_write_to_json(producer: str, produce_id: str, token: str) -> None:
    _same_as_first_write(producer, produce_id, token)
    ascii_ok = "001191440300708461136T1XGW3", "0193abcdef", "aigcm1.a-b_c.d"
    assert AigcRecord.first_write_json(*ascii_ok) == AigcRecord.first_write(*ascii_ok).to_json()


@given(st.text(st.characters(max_codepoint=0x80), max_size=80))
def test_first_write_json_checks_a_token_as_the_record_does(token: str) -> None:
    """The per-response check of the token (a bytes scan, not the regex) agrees with the record's."""
    _same_as_first_write("001191440300708461136T1XGW3", "0193abcdef", token)


@given(st.text(st.characters(max_codepoint=0x100), max_size=60))
def test_the_charset_check_is_annex_e_rule(value: str) -> None:
    """The record's character check (a bytes scan) against the rule written as a regex."""
    import re

    from labeler.aigc import _allowed

    assert _allowed(value) == bool(re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]*", value))
