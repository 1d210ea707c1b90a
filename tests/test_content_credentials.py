"""C2PA next to the GB label; c2pa-python's own Reader is the judge."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLES

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify
from labeler.labeling import label_image

c2pa = pytest.importorskip("c2pa", reason="the c2pa extra is not installed")
from labeler.content_credentials import (  # noqa: E402
    AIGC_ASSERTION,
    C2paConfig,
    add_content_credentials,
    make_test_ca,
    read_content_credentials,
)

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp-lossy": "image/webp"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_test_ca(tmp_path_factory.mktemp("c2pa"))


@pytest.fixture(scope="module")
def config(ca: dict[str, Path]) -> C2paConfig:
    return C2paConfig.from_files(ca["chain"], ca["key"])


def _state(data: bytes, mime: str, anchors: str | None = None) -> str | None:
    settings = {"trust": {"user_anchors": anchors}} if anchors else {}
    reader = c2pa.Reader(mime, io.BytesIO(data), context=c2pa.Context.from_dict(settings))
    try:
        return reader.get_validation_state()  # type: ignore[no-any-return]
    finally:
        reader.close()


@pytest.mark.parametrize("name", sorted(MIME))
def test_both_labels_valid_together(
    name: str, policy: LabelPolicy, trust: TrustStore, config: C2paConfig, ca: dict[str, Path]
) -> None:
    out = label_image(SAMPLES[name], policy, c2pa=config)
    anchors = ca["ca"].read_text()
    assert _state(out, MIME[name]) == "Valid"  # signature and hard binding hold; CA unknown
    assert _state(out, MIME[name], anchors) == "Trusted"
    verdict = verify(out, trust, c2pa_anchors=anchors)
    assert verdict.status is Status.VERIFIED  # our GB signature survived the C2PA embedding
    assert verdict.c2pa is not None and verdict.c2pa["state"] == "Trusted"
    aigc = verdict.c2pa["aigc"]
    assert aigc["filing_numbers"] == list(policy.filing_numbers)
    assert aigc["record"]["ProduceID"] == verdict.record.ProduceID  # type: ignore[union-attr]


def test_manifest_contents(policy: LabelPolicy, config: C2paConfig) -> None:
    out = label_image(SAMPLES["jpeg"], policy, c2pa=config)
    reader = c2pa.Reader("image/jpeg", io.BytesIO(out))
    manifest = reader.get_active_manifest()
    reader.close()
    labels = {a["label"]: a["data"] for a in manifest["assertions"]}
    created = [
        a
        for a in labels["c2pa.actions.v2" if "c2pa.actions.v2" in labels else "c2pa.actions"]["actions"]
        if a["action"] == "c2pa.created"
    ]
    assert created[0]["digitalSourceType"].endswith("trainedAlgorithmicMedia")
    assert manifest["claim_generator_info"][0]["name"] == "aigc-labeler"
    assert AIGC_ASSERTION in labels
    assert "thumbnail" not in json.dumps(manifest).lower() or manifest.get("thumbnail") is None


def test_modified_pixel_is_invalid_for_both(
    policy: LabelPolicy, trust: TrustStore, config: C2paConfig
) -> None:
    out = bytearray(label_image(SAMPLES["png"], policy, c2pa=config))
    out[-30] ^= 0x01  # inside IDAT
    assert _state(bytes(out), "image/png") == "Invalid"
    assert verify(bytes(out), trust).status is Status.ALTERED


def test_the_other_order_breaks_c2pa(policy: LabelPolicy, config: C2paConfig) -> None:
    """Why C2PA goes last: writing our XMP after the manifest changes bytes C2PA hashed."""
    c2pa_first = add_content_credentials(SAMPLES["jpeg"], policy, config)
    assert _state(c2pa_first, "image/jpeg") == "Valid"
    then_gb = label_bytes(c2pa_first, policy)
    assert _state(then_gb, "image/jpeg") == "Invalid"


def test_no_manifest_reads_none_and_untrusted_ca_is_valid_only(
    policy: LabelPolicy, config: C2paConfig
) -> None:
    assert read_content_credentials(SAMPLES["jpeg"]) is None
    assert verify(label_bytes(SAMPLES["jpeg"], policy)).c2pa is None


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_still_reads_the_gb_label(tmp_path: Path, policy: LabelPolicy, config: C2paConfig) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(label_image(SAMPLES["jpeg"], policy, c2pa=config))
    info = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-G1", "-XMP-TC260:all", "-JUMBF:all", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0]
    assert json.loads(info["XMP-TC260:Aigc"])["ContentProducer"] == policy.producer


def test_callback_signer(policy: LabelPolicy, ca: dict[str, Path]) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = serialization.load_pem_private_key(ca["key"].read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def kms_sign(data: bytes) -> bytes:  # what a KMS/HSM would do; raw r||s for es256
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    out = label_image(
        SAMPLES["jpeg"], policy, c2pa=C2paConfig(ca["chain"].read_bytes(), sign_callback=kms_sign)
    )
    assert _state(out, "image/jpeg", ca["ca"].read_text()) == "Trusted"


def test_config_errors(ca: dict[str, Path]) -> None:
    from labeler.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one"):
        C2paConfig(ca["chain"].read_bytes())
    with pytest.raises(ConfigError, match="PEM certificates"):
        C2paConfig(b"nope", private_key=b"x")


def test_cli_keygen_apply_verify_with_c2pa(tmp_path: Path) -> None:
    import os
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "LABELER_PROVIDER_NAME": "ExampleAI",
            "LABELER_KEY_FILE": str(tmp_path / "k/labeler.pem"),
        }
        return subprocess.run(
            [sys.executable, "-m", "labeler.cli", *args],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
        )

    assert run("keygen", "--out", "k").returncode == 0
    made = run("keygen", "--c2pa", "--out", "c")
    assert made.returncode == 0 and "C2PA test CA" in made.stdout
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.jpg").write_bytes(SAMPLES["jpeg"])
    applied = run(
        "apply",
        "in",
        "--out",
        "out",
        "--c2pa-cert",
        "c/labeler-c2pa-chain.pem",
        "--c2pa-key",
        "c/labeler-c2pa.key",
        "--jobs",
        "1",
    )
    assert applied.returncode == 0, applied.stderr
    table = run("verify", "out", "--trust", "k/labeler.pub.pem", "--c2pa-trust", "c/labeler-c2pa-ca.pem")
    assert table.stdout.splitlines()[0].split()[6] == "C2PA"
    assert "verified" in table.stdout and "Trusted" in table.stdout


async def test_middleware_image_responses_get_c2pa(
    policy: LabelPolicy, config: C2paConfig, ca: dict[str, Path]
) -> None:
    import base64

    import httpx
    import openai

    from labeler.demo.server import create_app
    from labeler.middleware import LabelingMiddleware

    app = LabelingMiddleware(create_app(0), policy=policy, c2pa=config)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    client = openai.AsyncOpenAI(api_key="x", base_url="http://app/v1", http_client=http, max_retries=0)
    result = await client.images.generate(prompt="kite", size="128x128", response_format="b64_json")
    image = base64.b64decode(result.data[0].b64_json or "")
    assert _state(image, "image/png", ca["ca"].read_text()) == "Trusted"
    assert verify(image).status is Status.UNTRUSTED  # GB label intact (our key not in an empty store)
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def raw(request: object) -> Response:
        return Response(SAMPLES["jpeg"], media_type="image/jpeg")

    served = TestClient(
        LabelingMiddleware(Starlette(routes=[Route("/i", raw)]), policy=policy, c2pa=config)
    ).get("/i")
    assert served.headers["aigc-c2pa"] == "embedded"
    assert _state(served.content, "image/jpeg", ca["ca"].read_text()) == "Trusted"


pytestmark = pytest.mark.anyio
