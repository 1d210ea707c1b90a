"""The examples run as documented."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from conftest import SAMPLES

from labeler import LabelPolicy, Status, TrustStore, label_bytes, verify

ROOT = Path(__file__).resolve().parent.parent


def test_fastapi_chatbot_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("LABELER_PROVIDER_NAME", "ExampleAI")
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module("examples.fastapi_chatbot")
    http = TestClient(module.app)
    client = openai.OpenAI(api_key="x", base_url=str(http.base_url) + "/v1", http_client=http, max_retries=0)
    reply = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.parse().choices[0].message.content.startswith("【AI生成】")  # type: ignore[union-attr]
    assert reply.headers["ai-generated"] == "true"


def test_verify_received_example(tmp_path: Path, policy: LabelPolicy, key: object) -> None:
    (tmp_path / "labeled.png").write_bytes(label_bytes(SAMPLES["png"], policy))
    (tmp_path / "plain.jpg").write_bytes(SAMPLES["jpeg"])
    (tmp_path / "trusted.pem").write_bytes(policy.signing_key.public_key.to_pem())  # type: ignore[union-attr]
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/verify_received.py"),
            "--trust",
            str(tmp_path / "trusted.pem"),
            "--as",
            "001191440300708461136T20000",
            str(tmp_path / "labeled.png"),
            str(tmp_path / "plain.jpg"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "labeled.png: verified; show: 该内容为人工智能生成" in out and "plain.jpg: no-label" in out
    propagated = verify(
        (tmp_path / "labeled.propagated.png").read_bytes(), TrustStore([policy.signing_key.public_key])
    )  # type: ignore[union-attr]
    assert propagated.status is Status.VERIFIED and propagated.propagation is not None


def test_example_config_is_valid(tmp_path: Path) -> None:
    config = (
        (ROOT / "examples/labeler.toml")
        .read_text(encoding="utf-8")
        .replace('key_file       = "keys/labeler.pem"\n', "")
    )
    (tmp_path / "c.toml").write_text(config, encoding="utf-8")
    policy = LabelPolicy.from_toml(tmp_path / "c.toml")
    assert policy.provider_code == "001191440300708461136T1XGW3"


@pytest.mark.slow
def test_batch_example_script(tmp_path: Path) -> None:
    work = tmp_path / "ex"
    (work / "examples").mkdir(parents=True)
    for name in ("batch_label.sh", "labeler.toml"):
        (work / "examples" / name).write_bytes((ROOT / "examples" / name).read_bytes())
    (work / "gen").mkdir()
    (work / "gen/a.png").write_bytes(SAMPLES["png"])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "examples/batch_label.sh", "gen", "out"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1 labeled" in result.stdout and "all verified" in result.stdout
