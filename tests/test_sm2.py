"""SM2 (SM3withSM2): keys, signatures and tokens, with the ``openssl`` 3 command as the outside
judge: it verifies our signatures and reads our PEM keys, and we verify and load its."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLES
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from test_provenance import PROV

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify
from labeler.cli import main
from labeler.errors import SigningKeyError
from labeler.provenance import BATCH_PREFIX, TOKEN_PREFIX, encode_payload, parse_token, sign, sign_payloads
from labeler.signing import ALGORITHMS, PublicKey, SigningKey
from labeler.sm2 import DEFAULT_ID, Sm2

pytestmark = pytest.mark.skipif("SM2" not in ALGORITHMS, reason="no OpenSSL 3 libcrypto with SM2")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")

MESSAGE = "aigcl1.签名的数据".encode() * 7


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _pkeyutl_verify(tmp: Path, pub: str, sig: bytes, distid: bytes) -> bool:
    (tmp / "msg").write_bytes(MESSAGE)
    (tmp / "sig").write_bytes(sig)
    out = _openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-digest", "sm3",
        "-pkeyopt", f"distid:{distid.decode()}", "-in", "msg", "-sigfile", "sig", cwd=tmp,
    )  # fmt: skip
    return out.returncode == 0 and "Verified Successfully" in out.stdout


@pytest.mark.interop
@needs_openssl
def test_openssl_verifies_ours_and_reads_our_keys(tmp_path: Path) -> None:
    assert main(["keygen", "--alg", "sm2", "--out", str(tmp_path), "--name", "k"]) == 0
    key = SigningKey.from_file(tmp_path / "k.pem")
    assert key.algorithm == "SM2"
    text = _openssl("pkey", "-in", "k.pem", "-noout", "-text", cwd=tmp_path)
    assert text.returncode == 0 and "ASN1 OID: SM2" in text.stdout
    openssl_pub = _openssl("pkey", "-in", "k.pem", "-pubout", cwd=tmp_path).stdout.encode()
    assert (
        PublicKey.from_pem(openssl_pub)
        == key.public_key
        == PublicKey.from_pem((tmp_path / "k.pub.pem").read_bytes())
    )
    signature = key.sign(MESSAGE)
    assert len(signature) == 64
    assert _pkeyutl_verify(tmp_path, "k.pub.pem", _der(signature), DEFAULT_ID)
    assert not _pkeyutl_verify(tmp_path, "k.pub.pem", _der(signature), b"1234567812345679")  # the ID counts
    custom = Sm2(distid=b"ALICE123@YAHOO.COM")
    signed = custom.sign(key._key, MESSAGE)
    assert _pkeyutl_verify(tmp_path, "k.pub.pem", _der(signed), b"ALICE123@YAHOO.COM")
    assert not key.public_key.verify(signed, MESSAGE)  # default ID: not the same signature scheme


@pytest.mark.interop
@needs_openssl
def test_we_verify_openssl_and_load_its_keys(tmp_path: Path) -> None:
    assert _openssl("genpkey", "-algorithm", "SM2", "-out", "o.pem", cwd=tmp_path).returncode == 0
    (tmp_path / "o.pem").chmod(0o600)
    (tmp_path / "msg").write_bytes(MESSAGE)
    key = SigningKey.from_file(tmp_path / "o.pem")
    for how in (
        ["pkeyutl", "-sign", "-inkey", "o.pem", "-rawin", "-digest", "sm3",
         "-pkeyopt", "distid:1234567812345678", "-in", "msg", "-out", "sig"],
        ["dgst", "-sm3", "-sign", "o.pem", "-sigopt", "distid:1234567812345678", "-out", "sig", "msg"],
    ):  # fmt: skip
        assert _openssl(*how, cwd=tmp_path).returncode == 0
        signature = _raw((tmp_path / "sig").read_bytes())
        assert key.public_key.verify(signature, MESSAGE)
        assert not key.public_key.verify(signature, MESSAGE + b"!")
    # a key written by us reads back in openssl's form and vice versa
    assert SigningKey.from_pem(key.private_pem()).public_key == key.public_key


def test_tokens_single_and_batch_and_a_labelled_file(policy: LabelPolicy) -> None:
    key = SigningKey.generate("SM2")
    single = parse_token(sign(PROV, key))
    assert single.algorithm == "SM2" and single.signature_valid()
    payloads = [
        encode_payload(dataclasses.replace(PROV, produce_id=f"p{i}"), key.public_key) for i in range(5)
    ]
    tokens = sign_payloads(payloads, key)
    assert all(t.startswith(BATCH_PREFIX) and parse_token(t).signature_valid() for t in tokens)
    assert sign_payloads(payloads[:1], key)[0].startswith(TOKEN_PREFIX + ".")
    labelled = label_bytes(SAMPLES["jpeg"], dataclasses.replace(policy, signing_key=key))
    assert verify(labelled, TrustStore([key.public_key])).status is Status.VERIFIED
    assert verify(labelled, TrustStore()).status is Status.UNTRUSTED
    tampered = bytearray(labelled)
    tampered[-10] ^= 1
    assert verify(bytes(tampered), TrustStore([key.public_key])).status is Status.ALTERED


def test_hostile_signatures_and_keys_are_refused_not_raised() -> None:
    key = SigningKey.generate("sm2")
    algorithm = ALGORITHMS["SM2"]
    good = key.sign(MESSAGE)
    raw = key.public_key.raw
    assert algorithm.verify(raw, good, MESSAGE)
    n = bytes.fromhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123")
    for signature in (
        b"",
        good[:63],
        good + b"\0",
        bytes(64),
        good[:32] + bytes(32),
        n + good[32:],
        good[:32] + n,
    ):
        assert not algorithm.verify(raw, signature, MESSAGE)
    off_curve = bytes([2]) + bytes(31) + b"\x05"
    for public in (b"", raw[:32], bytes([4]) + raw[1:], off_curve, bytes([5]) + raw[1:]):
        assert not algorithm.verify(public, good, MESSAGE)
    with pytest.raises(SigningKeyError):
        PublicKey("SM2", off_curve).to_pem()
    with pytest.raises(SigningKeyError):
        SigningKey.from_pem(key.private_pem(), password=b"x")  # encrypted SM2 PEM: refused, clearly
    assert "SM2" in repr(key) and "PRIVATE" not in repr(key)


def test_the_distinguishing_id_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Sm2().distid == DEFAULT_ID == b"1234567812345678"
    monkeypatch.setenv("LABELER_SM2_ID", "dept-7@example.cn")
    assert Sm2().distid == b"dept-7@example.cn"
    with pytest.raises(SigningKeyError):
        Sm2(distid=b"")
