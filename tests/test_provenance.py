from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.aigc import check_charset
from labeler.errors import InvalidRecordError
from labeler.provenance import Provenance, parse_token, sign
from labeler.signing import SigningKey, b64url_encode

PROV = Provenance(
    producer="001191440300708461136T1XGW3",
    produce_id="abc",
    label="1",
    provider="示例",
    system="YunQue",
    system_version="2.1",
    created="2026-11-22T10:00:00Z",
    filing_numbers=("Beijing-YunQue-20230821", "网信算备110108823483901230031号"),
    media_format="jpeg",
    content_digest=bytes(range(32)),
    launch_number="L-1",
)


@pytest.mark.parametrize("algorithm", ["Ed25519", "ES256"])
def test_token_round_trip_and_charset(algorithm: str) -> None:
    key = SigningKey.generate(algorithm)
    token = sign(PROV, key)
    assert check_charset("ReservedCode1", token) == token
    signed = parse_token(token)
    assert signed.provenance == PROV
    assert signed.public_key == key.public_key and signed.key_id == key.key_id
    assert signed.signature_valid()


def _reencode(token: str, **changes: object) -> str:
    head, payload, sig = token.split(".")
    obj = json.loads(base64.urlsafe_b64decode(payload + "=="))
    obj.update(changes)
    return ".".join((head, b64url_encode(json.dumps(obj).encode()), sig))


def test_any_payload_edit_breaks_the_signature() -> None:
    token = sign(PROV, SigningKey.generate())
    for change in ({"fn": ["Beijing-Other-20230821"]}, {"lbl": "3"}, {"t": "2020-01-01T00:00:00Z"}):
        assert not parse_token(_reencode(token, **change)).signature_valid()


def test_alg_none_and_key_swap_are_refused() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    token = sign(PROV, key)
    none = parse_token(_reencode(token, alg="none"))
    assert not none.algorithm_supported and not none.signature_valid()
    swapped = parse_token(_reencode(token, pk=b64url_encode(other.public_key.raw)))
    assert not swapped.key_id_consistent and not swapped.signature_valid()


def test_truncated_signature_is_invalid() -> None:
    token = sign(PROV, SigningKey.generate())
    assert not parse_token(token[:-4]).signature_valid()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "aigcl1",
        "aigcl1.a.b.c",
        "jwt.eyJ9.abc",
        "aigcl1.!!!.abc",
        "aigcl1." + b64url_encode(b"[]") + ".AA",
        "aigcl1." + b64url_encode(b'{"v":2}') + ".AA",
        "x" * 9000,
    ],
)
def test_malformed_tokens_raise_invalid_record(token: str) -> None:
    with pytest.raises(InvalidRecordError):
        parse_token(token)


@given(st.text(max_size=200))
def test_parser_raises_only_invalid_record_error(text: str) -> None:
    for token in (text, "aigcl1." + text, "aigcl1." + b64url_encode(text.encode()) + ".AAAA"):
        with contextlib.suppress(InvalidRecordError):
            parse_token(token)
