"""``labeler check`` (issue 17): marks present, GB 45438 rules broken, what a pipeline step lost,
and SARIF for CI. Real labelled files, real re-encodes, the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import SAMPLES, make_image
from media import make_docx, sine_wav

from labeler import LabelPolicy, SigningKey, TrustStore, label_bytes, label_content
from labeler.aigc import AigcRecord
from labeler.cli import main
from labeler.formats import detect
from labeler.platform.check import RULES, check_bytes, compare, exit_code, to_sarif
from labeler.xmp import XmpLabel, write_label


def _jpeg(size: tuple[int, int] = (400, 300)) -> bytes:
    buf = io.BytesIO()
    make_image(size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _with_record(data: bytes, aigc: str) -> bytes:
    return detect(data).write_xmp(data, write_label(XmpLabel(aigc=aigc)))


def _rules(data: bytes, trust: TrustStore | None = None) -> set[str]:
    return {f.rule for f in check_bytes(data, "f", trust).findings}


def test_a_fully_labelled_picture_is_clean(policy: LabelPolicy, trust: TrustStore) -> None:
    report = check_bytes(label_content(_jpeg(), policy), "out.jpg", trust)
    assert report.findings == () and exit_code([report]) == 0
    marks = report.marks
    assert marks["gb_record"] and marks["gb_slot"] == "xmp" and marks["iptc_digital_source_type"]
    assert marks["signature"] == "verified" and marks["notice"] == "confirmed"
    assert marks["explicit_label"] is True  # labeler's plate, found in the pixels
    bare = check_bytes(label_content(_jpeg(), policy, visible=False), "out.jpg", trust).marks
    assert bare["explicit_label"] is None  # no plate found: unknown (another's label may be there)


def test_findings_name_the_rule_that_is_broken(policy: LabelPolicy, trust: TrustStore) -> None:
    plain = _jpeg()
    assert _rules(plain) == {"AIGC001"}
    implicit_only = label_bytes(plain, policy)
    assert _rules(implicit_only, trust) == set()
    assert _rules(implicit_only) == {"AIGC011"}  # no trust store given
    record = AigcRecord("1", "ACME-AI", "id-1")  # a name, not a provider code; nothing signed
    flat = record.to_json()
    assert {"AIGC006", "AIGC010"} <= _rules(_with_record(plain, flat))
    assert "AIGC004" in _rules(_with_record(plain, record.to_json(wrapped=True)))
    short = json.dumps({"ContentProducer": "ACME-AI", "Label": "1", "ProduceID": "x"}, separators=(",", ":"))
    found = check_bytes(_with_record(plain, short), "f").findings
    assert any(f.rule == "AIGC005" and "missing" in f.message for f in found)
    assert "AIGC002" in _rules(_with_record(plain, '{"Label":"9","ContentProducer":"中文"}'))


def test_two_different_records_in_one_file_break_one_label_per_file(policy: LabelPolicy) -> None:
    labelled = label_bytes(_jpeg(), policy)
    other = AigcRecord("1", "ACME-AI", "another").to_json(wrapped=True).encode()
    import piexif  # the wrapped record in EXIF UserComment, as some producers write it

    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: b"ASCII\0\0\0" + other}})
    buf = io.BytesIO()
    from PIL import Image

    with Image.open(io.BytesIO(labelled)) as img:
        img.save(buf, "JPEG", exif=exif, xmp=detect(labelled).read_xmp(labelled))
    assert "AIGC003" in _rules(buf.getvalue())


def test_before_and_after_say_what_a_pipeline_step_lost(policy: LabelPolicy, trust: TrustStore) -> None:
    labelled = label_content(_jpeg(), policy)
    from PIL import Image

    with Image.open(io.BytesIO(labelled)) as img:  # a CDN's resize, metadata dropped
        buf = io.BytesIO()
        img.resize((200, 150)).save(buf, "JPEG", quality=80)
    before, after = check_bytes(labelled, "in.jpg", trust), check_bytes(buf.getvalue(), "out.jpg", trust)
    report = compare(before, after)
    lost = [f.message for f in report.findings if f.rule == "AIGC014"]
    assert any("gb_record" in m for m in lost) and any("iptc_digital_source_type" in m for m in lost)
    assert any("signature (verified -> no-label)" in m for m in lost)
    assert exit_code([report]) == 1


def test_the_cli_speaks_text_json_and_sarif_with_ci_exit_codes(
    tmp_path: Path, policy: LabelPolicy, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.jpg", tmp_path / "plain.jpg"
    good.write_bytes(label_content(_jpeg(), policy))
    bad.write_bytes(_jpeg())
    pub = tmp_path / "k.pub.pem"
    pub.write_bytes(key.public_key.to_pem())
    assert main(["check", str(good), "--trust", str(pub)]) == 0
    assert "signature verified" in capsys.readouterr().out
    assert main(["check", str(good), str(bad), "--format", "sarif", "--trust", str(pub)]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == set(RULES)
    [result] = run["results"]
    assert result["ruleId"] == "AIGC001" and result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("plain.jpg")
    assert main(["check", "--before", str(good), "--after", str(bad), "--format", "json"]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert reports[1]["marks"]["lost"][:1] == ["gb_record"]
    assert main(["check", str(tmp_path / "missing.jpg")]) == 2  # could not run
    capsys.readouterr()
    (tmp_path / "junk.bin").write_bytes(b"not a picture")
    assert main(["check", str(tmp_path / "junk.bin"), "--format", "sarif"]) == 2
    assert json.loads(capsys.readouterr().out)["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_every_sample_format_checks_without_crashing(policy: LabelPolicy, trust: TrustStore) -> None:
    for name, data in SAMPLES.items():
        report = check_bytes(label_bytes(data, policy), name, trust)
        assert report.error is None and report.marks["gb_record"], name
        assert not {"AIGC001", "AIGC002", "AIGC003", "AIGC009"} & {f.rule for f in report.findings}, name
    assert to_sarif([], "0")["runs"][0]["results"] == []


def test_a_wav_without_its_rhythm_label_is_a_finding(policy: LabelPolicy, trust: TrustStore) -> None:
    wav = sine_wav(seconds=2.0)
    assert _rules(label_bytes(wav, policy), trust) == {"AIGC012"}  # implicit label only
    full = check_bytes(label_content(wav, policy, watermark=False), "a.wav", trust)
    assert full.marks["explicit_label"] is True and full.findings == ()


def test_a_word_document_with_its_label_paragraph_is_clean(policy: LabelPolicy, trust: TrustStore) -> None:
    docx = make_docx("quarterly report")
    assert _rules(label_bytes(docx, policy), trust) == {"AIGC012"}
    assert check_bytes(label_content(docx, policy), "r.docx", trust).findings == ()
