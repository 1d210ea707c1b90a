"""Shared fixtures: real images encoded by Pillow, a signing key and a policy."""

from __future__ import annotations

import io
import os
import random

import piexif
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image, ImageCms

from labeler import LabelPolicy, SigningKey, TrustStore

# Deterministic by default (same examples every run); HYPOTHESIS_PROFILE=fuzz explores far more.
settings.register_profile("default", derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

PROVIDER_CODE = "001191440300708461136T1XGW3"
FILINGS = ("Beijing-YunQue-20230821", "网信算备110108823483901230031号")


def make_image(size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 1) -> Image.Image:
    rnd = random.Random(seed)
    img = Image.new(mode, size)
    bands = len(mode)
    img.putdata([tuple(rnd.randrange(256) for _ in range(bands)) for _ in range(size[0] * size[1])])
    return img


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def pixels(data: bytes) -> bytes:
    """Every frame's decoded pixels: equal means no pixel changed."""
    from PIL import ImageSequence

    with Image.open(io.BytesIO(data)) as img:
        return b"|".join(
            f.mode.encode() + repr(f.size).encode() + f.tobytes() for f in ImageSequence.Iterator(img)
        )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def trust(key: SigningKey) -> TrustStore:
    return TrustStore([key.public_key])


@pytest.fixture(scope="session")
def policy(key: SigningKey) -> LabelPolicy:
    return LabelPolicy(
        provider_name="示例智能科技有限公司",
        provider_code=PROVIDER_CODE,
        filing_numbers=FILINGS,
        system_name="YunQue",
        system_version="2.1",
        signing_key=key,
    )


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


EXISTING_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:Credit="Studio A">'
    b"<dc:creator><rdf:Seq><rdf:li>Jane Doe</rdf:li></rdf:Seq></dc:creator>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


def _samples() -> dict[str, bytes]:
    rgb, rgba = make_image(), make_image(mode="RGBA", seed=2)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"GenCam"}, "Exif": {}})
    icc = _srgb_icc()
    return {
        "jpeg": encode(rgb, "JPEG", quality=90),
        "jpeg-exif-icc-xmp": encode(rgb, "JPEG", quality=90, exif=exif, icc_profile=icc, xmp=EXISTING_XMP),
        "jpeg-progressive": encode(rgb, "JPEG", progressive=True),
        "png": encode(rgb, "PNG"),
        "png-rgba": encode(rgba, "PNG"),
        "png-xmp": encode(rgb, "PNG", pnginfo=_png_info_with_xmp()),
        "webp-lossy": encode(rgb, "WEBP", quality=80),
        "webp-lossless-alpha": encode(rgba, "WEBP", lossless=True),
        "webp-extended-icc-exif": encode(rgb, "WEBP", icc_profile=icc, exif=exif),
        "webp-xmp": encode(rgb, "WEBP", xmp=EXISTING_XMP),
        "gif": encode(rgb.convert("P"), "GIF"),
        "gif-animated": encode(
            make_image(seed=3).convert("P"),
            "GIF",
            save_all=True,
            loop=0,
            duration=80,
            append_images=[make_image(seed=s).convert("P") for s in (4, 5)],
        ),
    }


def _png_info_with_xmp() -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", EXISTING_XMP.decode("utf-8"))
    return info


SAMPLES = _samples()


@pytest.fixture(params=sorted(SAMPLES))
def sample(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    return request.param, SAMPLES[request.param]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real audio, video and documents (tests/media.py), made once per session."""
    from media import build_samples

    return build_samples(tmp_path_factory.mktemp("media"))
