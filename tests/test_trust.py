"""Key rotation: key sets with validity windows, retired and revoked keys, keygen --rotate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import SAMPLES

from labeler import LabelPolicy, Status, label_bytes, verify
from labeler.cli import main
from labeler.errors import SigningKeyError
from labeler.signing import ALGORITHMS, KEY_SET_NAME, SigningKey, TrustStore, b64url_encode, decide_trust
from labeler.trust import KeyRecord, dump_key_set, judge


def test_rotation_keeps_old_content_verifiable_and_says_the_key_is_retired(
    tmp_path: Path, policy: LabelPolicy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--out", str(tmp_path), "--name", "svc"]) == 0
    old = SigningKey.from_file(tmp_path / "svc.pem")
    labelled = label_bytes(SAMPLES["jpeg"], dataclasses.replace(policy, signing_key=old))
    signed = verify(labelled).signed
    assert signed is not None

    assert main(["keygen", "--rotate", "--out", str(tmp_path), "--name", "svc", "--grace", "0"]) == 0
    assert "retired:   " + old.key_id in capsys.readouterr().out
    new = SigningKey.from_file(tmp_path / "svc.pem")
    assert new.key_id != old.key_id and (tmp_path / f"svc-{old.key_id}.pem").exists()
    store = TrustStore.from_paths([tmp_path])
    assert store.records[old.key_id].status == "retired" and store.records[new.key_id].status == "active"

    decision = store.decide(signed.public_key, signed.provenance.created)
    assert decision.trusted and decision.key_status == "retired"
    assert decision.problem is not None and f"{old.key_id} is retired" in decision.problem
    late = store.decide(signed.public_key, "2999-01-01T00:00:00Z")  # claims a time after retirement
    assert (
        not late.trusted and late.key_status == "outside-window" and "validity window" in (late.problem or "")
    )
    assert not store.decide(signed.public_key, "").trusted  # a windowed key needs a signing time
    assert store.decide(new.public_key, "2999-01-01T00:00:00Z").key_status == "active"
    # the verdict asks the store with the record's signing time: verified, and says "retired"
    v = verify(labelled, store)
    assert v.status is Status.VERIFIED and v.key_status == "retired"
    assert any(f"{old.key_id} is retired" in problem for problem in v.problems)
    assert v.to_dict()["key_status"] == "retired"


def test_a_revoked_key_is_untrusted_with_its_reason(tmp_path: Path, policy: LabelPolicy) -> None:
    assert main(["keygen", "--out", str(tmp_path)]) == 0
    old = SigningKey.from_file(tmp_path / "labeler.pem")
    labelled = label_bytes(SAMPLES["png"], dataclasses.replace(policy, signing_key=old))
    assert main(["keygen", "--rotate", "--out", str(tmp_path)]) == 0
    reason = "private key leaked in incident 42"
    # the = form: a key id is base64url and may begin with "-", which argparse reads as an option
    assert main(["keygen", f"--revoke={old.key_id}", "--reason", reason, "--out", str(tmp_path)]) == 0
    store = TrustStore.from_paths([tmp_path])  # its .pub.pem is still there: revocation wins
    decision = decide_trust(store, old.public_key, "2000-01-01T00:00:00Z")
    assert not decision.trusted and decision.key_status == "revoked"
    assert decision.problem is not None and reason in decision.problem and "revoked on 20" in decision.problem
    assert old.key_id not in store.keys and not store.is_trusted(old.public_key)
    v = verify(labelled, store)
    assert v.status is Status.UNTRUSTED and v.key_status == "revoked" and not v.key_trusted
    assert any(reason in problem for problem in v.problems)
    # the key set alone, named as a file, says the same
    alone = TrustStore.from_paths([tmp_path / KEY_SET_NAME])
    assert alone.decide(old.public_key, None).key_status == "revoked" and len(alone) == 1
    assert main(["keygen", "--revoke", "nosuchkid", "--out", str(tmp_path)]) == 2


def test_unknown_keys_and_no_store_keep_todays_wording() -> None:
    key = SigningKey.generate()
    for decision in (decide_trust(None, key.public_key, None), TrustStore().decide(key.public_key, None)):
        assert not decision.trusted and decision.key_status == "unknown"
        assert decision.problem == f"signing key {key.key_id} is not in the trust store"
    assert TrustStore([key.public_key]).decide(key.public_key, None).trusted  # plain keys: no window


@pytest.mark.skipif("SM2" not in ALGORITHMS, reason="no SM2 here")
def test_rotation_stays_within_the_algorithm(tmp_path: Path) -> None:
    assert main(["keygen", "--alg", "SM2", "--out", str(tmp_path)]) == 0
    assert main(["keygen", "--rotate", "--out", str(tmp_path)]) == 0
    assert SigningKey.from_file(tmp_path / "labeler.pem").algorithm == "SM2"
    assert {r.alg for r in TrustStore.from_paths([tmp_path]).records.values()} == {"SM2"}


def test_key_windows() -> None:
    record = KeyRecord(
        "k", "Ed25519", "", not_before="2026-01-01T00:00:00Z", not_after="2026-06-30T23:59:59Z"
    )
    assert judge(record, "k", "2026-03-01T12:00:00Z").trusted
    assert judge(record, "k", "2026-03-01T20:00:00+08:00").trusted  # any offset, compared in UTC
    assert not judge(record, "k", "2025-12-31T23:59:59Z").trusted
    assert not judge(record, "k", "2026-07-01T00:00:00Z").trusted
    assert not judge(record, "k", "not a time").trusted


def test_broken_key_sets_are_refused_never_skipped(tmp_path: Path) -> None:
    key = SigningKey.generate()
    good = KeyRecord(key.key_id, "Ed25519", b64url_encode(key.public_key.raw))
    path = tmp_path / "set.json"
    for content, why in (
        (b"{", "not JSON"),
        (b'{"keys": {}}', '"keys" list'),
        (json.dumps({"keys": [{"kid": "x"}]}).encode(), "needs string kid"),
        (dump_key_set([dataclasses.replace(good, kid="AAAAAAAAAAAAAAAA")]), "is not the id of its key"),
        (dump_key_set([good]).replace(b'"active"', b'"paused"'), "status must be"),
        (dump_key_set([good]).replace(b'"reason"', b'"reasons"'), "unknown fields"),
        (dump_key_set([good]).replace(b'"not_after": null', b'"not_after": "tomorrow"'), "not an ISO 8601"),
    ):
        path.write_bytes(content)
        with pytest.raises(SigningKeyError, match=why):
            TrustStore.from_paths([path], on_skip=lambda *_: None)
    path.write_bytes(dump_key_set([good]))
    assert TrustStore.from_paths([path]).is_trusted(key.public_key)
