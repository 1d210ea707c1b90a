from __future__ import annotations

import base64
import contextlib
import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.aigc import check_charset
from labeler.errors import InvalidRecordError
from labeler.provenance import (
    BATCH_PREFIX,
    TOKEN_PREFIX,
    Provenance,
    encode_payload,
    parse_token,
    sign,
    sign_payloads,
)
from labeler.signing import SigningKey, b64url_decode, b64url_encode

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


# -- batch-signed tokens ------------------------------------------------------------------------


def _batch(key: SigningKey, n: int, prefix: str = "id") -> tuple[list[Provenance], list[str]]:
    provs = [
        dataclasses.replace(PROV, produce_id=f"{prefix}-{i}", content_digest=bytes([i]) * 32)
        for i in range(n)
    ]
    return provs, sign_payloads([encode_payload(p, key.public_key) for p in provs], key)


def _parts(token: str) -> list[str]:
    return token.split(".")


@pytest.mark.parametrize("algorithm", ["Ed25519", "ES256"])
def test_one_signature_vouches_for_every_record_of_a_batch(algorithm: str) -> None:
    key = SigningKey.generate(algorithm)
    provs, tokens = _batch(key, 13)
    assert len({_parts(t)[4] for t in tokens}) == 1  # one signature
    assert len({_parts(t)[3] for t in tokens}) == 1  # over one header
    for prov, token in zip(provs, tokens, strict=True):
        assert token.startswith(BATCH_PREFIX + ".") and check_charset("ReservedCode1", token) == token
        signed = parse_token(token)
        assert signed.provenance == prov and signed.public_key == key.public_key
        assert signed.batch is not None and signed.batch.size == 13
        assert signed.signature_valid()


def test_a_batch_of_one_is_an_ordinary_token() -> None:
    key = SigningKey.generate()
    (prov,), (token,) = _batch(key, 1)
    assert token.startswith(TOKEN_PREFIX + ".") and parse_token(token).batch is None
    assert parse_token(token).signature_valid() and parse_token(token).provenance == prov


def test_batch_tokens_resist_splicing_and_edits() -> None:
    key = SigningKey.generate()
    _, tokens = _batch(key, 6)
    _, others = _batch(key, 6, prefix="other")  # another batch by the same key
    a, b = _parts(tokens[2]), _parts(tokens[3])
    forged = {
        "payload of another record": [a[0], b[1], a[2], a[3], a[4]],
        "path of another record": [a[0], a[1], b[2], a[3], a[4]],
        "header and signature of another batch": [a[0], a[1], a[2], *_parts(others[2])[3:]],
        "edited payload": [a[0], _reencode_part(a[1], lbl="3"), a[2], a[3], a[4]],
        "edited index": [a[0], a[1], b64url_encode(b"\0\0\0\3" + b64url_decode(a[2])[4:]), a[3], a[4]],
        "edited size": [a[0], a[1], a[2], _reencode_part(a[3], n=7), a[4]],
        "edited root": [a[0], a[1], a[2], _reencode_part(a[3], root=b64url_encode(bytes(32))), a[4]],
        "truncated path": [a[0], a[1], b64url_encode(b64url_decode(a[2])[:-32]), a[3], a[4]],
    }
    for name, parts in forged.items():
        assert not parse_token(".".join(parts)).signature_valid(), name


def test_batch_header_must_name_the_records_key() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    a = _parts(_batch(key, 2)[1][0])
    header = _reencode_part(a[3], pk=b64url_encode(other.public_key.raw))
    with pytest.raises(InvalidRecordError, match="another key"):
        parse_token(".".join([a[0], a[1], a[2], header, a[4]]))


@pytest.mark.parametrize(
    "change", [{"n": "6"}, {"n": True}, {"root": "AAAA"}, {"root": 5}, {"v": 2}, {"alg": None}]
)
def test_malformed_batch_headers_raise_invalid_record(change: dict[str, object]) -> None:
    a = _parts(_batch(SigningKey.generate(), 2)[1][0])
    with pytest.raises(InvalidRecordError):
        parse_token(".".join([a[0], a[1], a[2], _reencode_part(a[3], **change), a[4]]))
    with pytest.raises(InvalidRecordError):
        parse_token(".".join([a[0], a[1], "AAA", a[3], a[4]]))  # proof shorter than an index


def _reencode_part(part: str, **changes: object) -> str:
    obj = json.loads(b64url_decode(part))
    obj.update(changes)
    return b64url_encode(json.dumps(obj).encode())


@given(st.lists(st.text(max_size=60), min_size=5, max_size=5))
def test_batch_parser_raises_only_invalid_record_error(parts: list[str]) -> None:
    with contextlib.suppress(InvalidRecordError):
        parse_token(".".join([BATCH_PREFIX, *parts[1:]]))


@given(
    st.text(min_size=1, max_size=40),
    st.sampled_from(["json", "text", "jpeg", 'odd "format"\\']),
    st.binary(min_size=32, max_size=32),
)
def test_payload_template_says_what_the_full_path_says(
    produce_id: str, media_format: str, digest: bytes
) -> None:
    from labeler import LabelPolicy
    from labeler.provenance import PayloadTemplate, provenance_for

    key = _TEMPLATE_KEY
    policy = LabelPolicy(
        provider_name="示例",
        provider_code="001191440300708461136T1XGW3",
        filing_numbers=("Beijing-YunQue-20230821",),
        launch_number="L-1",
        signing_key=key,
    )
    fast = PayloadTemplate(policy, key.public_key).payload(produce_id, media_format, digest)
    token = sign_payloads([fast], key)[0]
    signed = parse_token(token)
    full = provenance_for(
        policy,
        produce_id=produce_id,
        media_format=media_format,
        content_digest=digest,
        created=signed.provenance.created,
    )
    assert signed.provenance == full and signed.signature_valid()
    assert json.loads(fast) == json.loads(encode_payload(full, key.public_key))


_TEMPLATE_KEY = SigningKey.generate()
