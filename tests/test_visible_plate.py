"""labeler.explicit.plate: the visible label found in a picture's pixels (where, not what).

Found at every placement, on real photographs, after JPEG re-encoding and in PNG/WebP; never
found on photographs, flat fields, noise or dark pictures without one; the verdict turns
"suspected" for a picture that carries the label but lost its record."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from labeler import LabelPolicy, Status, TrustStore, label_content, verify
from labeler.explicit.image import label_geometry, render_visible_label
from labeler.explicit.plate import find_picture_label, find_plate
from labeler.explicit.styles import Placement, VisibleStyle

data = pytest.importorskip("skimage.data")

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size)


def encoded(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.mark.parametrize("placement", list(Placement))
@pytest.mark.parametrize("size", [(640, 480), (300, 400), (1200, 300)])
def test_found_where_it_was_drawn(placement: Placement, size: tuple[int, int]) -> None:
    style = VisibleStyle(placement=placement)
    expected = label_geometry(size, "AI生成", style).plate
    hits = 0
    for name in PHOTOS:
        labelled = render_visible_label(encoded(photo(name, size), quality=90), "AI生成", style)
        found = find_picture_label(labelled)
        hits += found is not None and found.placement == placement and found.box == expected
    assert hits >= 4  # a photo whose own edges line up with the plate's may hide one side


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_other_formats_and_texts(fmt: str) -> None:
    style = VisibleStyle(placement=Placement.TOP_LEFT)
    source = encoded(photo("coffee", (800, 600)), fmt)
    for text in ("AI生成", "AI-generated"):
        found = find_picture_label(render_visible_label(source, text, style))
        assert found is not None and found.box == label_geometry((800, 600), text, style).plate


def test_survives_a_lossy_re_encode() -> None:
    labelled = render_visible_label(
        encoded(photo("chelsea", (1024, 768)), quality=92), "AI生成", VisibleStyle()
    )
    again = encoded(Image.open(io.BytesIO(labelled)), quality=60)
    found = find_picture_label(again)
    assert found is not None and found.placement is Placement.BOTTOM_RIGHT and found.size == (1024, 768)


def test_nothing_found_on_pictures_without_a_label() -> None:
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "page", "text", "brick")
    for name in names:
        for size in ((640, 480), (1024, 768), (333, 500)):
            assert find_plate(Image.open(io.BytesIO(encoded(photo(name, size), quality=85)))) is None, (
                name,
                size,
            )
    noise = Image.effect_noise((640, 480), 60).convert("RGB")
    flat = Image.new("RGB", (640, 480), (200, 200, 200))
    dark = Image.new("RGB", (640, 480), (5, 5, 5))
    for picture in (noise, flat, dark, Image.new("RGB", (30, 30))):
        assert find_plate(picture) is None


def test_a_label_on_a_dark_picture_is_not_claimed() -> None:
    """Nothing to darken: the plate can't be told from the picture, so none is claimed."""
    dark = encoded(Image.new("RGB", (640, 480), (8, 8, 8)), "PNG")
    assert find_picture_label(render_visible_label(dark, "AI生成", VisibleStyle())) is None


def test_verdict_suspected_for_a_picture_that_lost_its_record(policy: LabelPolicy, trust: TrustStore) -> None:
    labelled = label_content(encoded(photo("rocket", (640, 480)), quality=90), policy)
    stripped = encoded(Image.open(io.BytesIO(labelled)), quality=90)  # a platform re-encode: metadata gone
    plain = verify(stripped, trust)
    assert plain.status is Status.NO_LABEL and plain.notice == "none"  # pixels not looked at
    looked = verify(stripped, trust, decode_pictures=True)
    assert looked.explicit_label and looked.notice == "suspected"
    assert verify(labelled, trust, decode_pictures=True).notice == "confirmed"


def test_cli_verify_decode_pictures(
    policy: LabelPolicy, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from pathlib import Path

    from labeler.cli import main

    work = Path(str(tmp_path))
    labelled = label_content(encoded(photo("rocket", (640, 480)), quality=90), policy)
    (work / "stripped.jpg").write_bytes(encoded(Image.open(io.BytesIO(labelled)), quality=90))
    assert policy.signing_key is not None
    (work / "k.pem").write_bytes(policy.signing_key.public_key.to_pem())
    main(["verify", str(work / "stripped.jpg"), "--trust", str(work / "k.pem"), "--json"])
    assert json.loads(capsys.readouterr().out)[0]["notice"] == "none"
    main(
        ["verify", str(work / "stripped.jpg"), "--trust", str(work / "k.pem"), "--json", "--decode-pictures"]
    )
    assert json.loads(capsys.readouterr().out)[0]["notice"] == "suspected"
