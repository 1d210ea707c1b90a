"""A real, independent reader: exiftool must see what we write, and validate the files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLES

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify
from labeler.xmp import DIGITAL_SOURCE_TYPE_AI

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed (CI installs it)"),
]
EXT = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif"}


def _exiftool(*args: str | Path) -> list[dict[str, object]]:
    out = subprocess.run(
        ["exiftool", "-j", "-G1", *map(str, args)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_exiftool_reads_tc260_aigc_and_digital_source_type(tmp_path: Path, policy: LabelPolicy) -> None:
    paths, originals = [], []
    for name, data in SAMPLES.items():
        path = tmp_path / f"{name}{EXT[name.split('-')[0]]}"
        path.write_bytes(label_bytes(data, policy, on_existing="replace"))
        paths.append(path)
        originals.append(tmp_path / f"orig-{path.name}")
        originals[-1].write_bytes(data)
    before = _exiftool("-validate", "-warning", "-a", *originals)
    for info, orig in zip(_exiftool("-XMP:all", "-validate", "-warning", "-a", *paths), before, strict=True):
        aigc = json.loads(str(info["XMP-TC260:Aigc"]))
        assert aigc["Label"] == "1" and aigc["ContentProducer"] == policy.producer
        assert info["XMP-iptcExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE_AI
        assert info["XMP-aigcl:Provider"] == policy.provider_name
        # labelling adds no warning to what exiftool's validator says of the original
        assert info["ExifTool:Validate"] == orig["ExifTool:Validate"], info
        assert info.get("ExifTool:Warning") == orig.get("ExifTool:Warning"), info
        if "exif" not in str(info["SourceFile"]):
            assert info["ExifTool:Validate"] == "OK", info


def test_foreign_properties_survive_and_exiftool_still_reads_them(
    tmp_path: Path, policy: LabelPolicy
) -> None:
    for name in ("jpeg-exif-icc-xmp", "png-xmp", "webp-xmp"):
        path = tmp_path / f"{name}{EXT[name.split('-')[0]]}"
        path.write_bytes(label_bytes(SAMPLES[name], policy))
        (info,) = _exiftool("-XMP:all", "-EXIF:Make", path)
        assert info["XMP-dc:Creator"] == "Jane Doe"
        assert info["XMP-photoshop:Credit"] == "Studio A"
        assert "XMP-TC260:Aigc" in info
        if name.startswith("jpeg"):
            assert info["IFD0:Make"] == "GenCam"


def test_we_verify_after_exiftool_edits_other_metadata(
    tmp_path: Path, policy: LabelPolicy, trust: TrustStore
) -> None:
    """exiftool rewriting the XMP slot keeps our label; touching EXIF outside it is detected."""
    path = tmp_path / "a.jpg"
    path.write_bytes(label_bytes(SAMPLES["jpeg"], policy))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Title=Edited", str(path)], check=True)
    assert verify(path.read_bytes(), trust).status is Status.VERIFIED  # XMP-only edit
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-EXIF:Artist=Someone", str(path)], check=True)
    assert verify(path.read_bytes(), trust).status is Status.ALTERED
