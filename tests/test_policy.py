from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FILINGS, PROVIDER_CODE

from labeler import LabelPolicy, SigningKey
from labeler.errors import ConfigError, SigningKeyError
from labeler.policy import check_label_text


def _write_key(path: Path) -> SigningKey:
    key = SigningKey.generate()
    path.write_bytes(key.private_pem())
    path.chmod(0o600)
    return key


def test_defaults_and_producer_prefers_code() -> None:
    policy = LabelPolicy(provider_name="示例公司", provider_code=PROVIDER_CODE)
    assert policy.producer == PROVIDER_CODE
    assert (policy.label_text_zh, policy.label_text_en, policy.label_text) == (
        "AI生成",
        "AI-generated",
        "AI生成",
    )


def test_non_ascii_name_without_code_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="set provider_code"):
        LabelPolicy(provider_name="示例公司")
    assert LabelPolicy(provider_name="ExampleAI").producer == "ExampleAI"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"provider_code": "123"}, "27 characters"),
        ({"filing_numbers": ("Beijing-X-2023",)}, "filing number"),
        ({"filing_numbers": "Beijing-YunQue-20230821"}, "list of strings"),
        ({"label_text_zh": "AI"}, "生成"),
        ({"label_text_en": "Made by AI"}, "generation"),
        ({"language": "fr"}, "language"),
        ({"provider_name": " "}, "provider_name"),
    ],
)
def test_bad_settings_fail_at_construction(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LabelPolicy(**{"provider_name": "ExampleAI", **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["AI生成", "人工智能生成", "由人工智能合成", "本内容由AI合成"])
def test_accepted_zh_label_texts(text: str) -> None:
    assert check_label_text(text, "zh") == text


def test_load_from_toml_with_relative_key_file(tmp_path: Path) -> None:
    key = _write_key(tmp_path / "signing.pem")
    (tmp_path / "labeler.toml").write_text(
        f"""
[labeler]
provider_name = "示例智能科技有限公司"
provider_code = "{PROVIDER_CODE}"
filing_numbers = {list(FILINGS)!r}
system_name = "YunQue"
system_version = "2.1"
key_file = "signing.pem"

[labeler.label_text]
zh = "人工智能生成"
""",
        encoding="utf-8",
    )
    policy = LabelPolicy.from_toml(tmp_path / "labeler.toml")
    assert policy.filing_numbers == FILINGS
    assert policy.label_text_zh == "人工智能生成" and policy.label_text_en == "AI-generated"
    assert policy.signing_key is not None and policy.signing_key.public_key == key.public_key


def test_env_overrides_toml(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[labeler]\nprovider_name = "FromToml"\n', encoding="utf-8")
    key = _write_key(tmp_path / "k.pem")
    env = {
        "LABELER_CONFIG": str(tmp_path / "c.toml"),
        "LABELER_PROVIDER_NAME": "FromEnv",
        "LABELER_FILING_NUMBERS": "Beijing-YunQue-20230821, 网信算备110108823483901230031号",
        "LABELER_KEY_FILE": str(tmp_path / "k.pem"),
        "LABELER_LABEL_TEXT_EN": "AI generated content",
    }
    policy = LabelPolicy.load(env=env)
    assert policy.provider_name == "FromEnv" and policy.filing_numbers == FILINGS
    assert policy.label_text_en == "AI generated content"
    assert policy.signing_key is not None and policy.signing_key.key_id == key.key_id


def test_env_label_text_merges_with_toml_table(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[labeler]\nprovider_name = "A"\n[labeler.label_text]\nzh = "人工智能生成"\n', encoding="utf-8"
    )
    policy = LabelPolicy.load(tmp_path / "c.toml", env={"LABELER_LABEL_TEXT_EN": "AI-synthesized"})
    assert (policy.label_text_zh, policy.label_text_en) == ("人工智能生成", "AI-synthesized")


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[labeler\n", "not valid TOML"),
        ('[labeler]\nprovider_name = "A"\ncolour = "red"\n', "unknown policy setting"),
        ('[labeler]\nsystem_name = "x"\n', "provider_name is required"),
        ("[labeler]\nprovider_name = 3\n", "must be a string"),
    ],
)
def test_bad_config_files(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        LabelPolicy.from_toml(tmp_path / "c.toml")


def test_missing_files_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        LabelPolicy.from_toml(tmp_path / "nope.toml")
    with pytest.raises(SigningKeyError, match="cannot read private key"):
        LabelPolicy.load(env={"LABELER_PROVIDER_NAME": "A", "LABELER_KEY_FILE": str(tmp_path / "nope")})


def test_watermark_settings_from_toml_and_env(tmp_path: Path) -> None:
    """The watermark is on by default; ``watermark = false`` / LABELER_WATERMARK=off turn it
    off; ``watermark_key_file`` gives its secret, else it is derived from the signing key."""
    from labeler.markkey import MarkKey, derive_secret

    key = _write_key(tmp_path / "k.pem")
    base = '[labeler]\nprovider_name = "A"\nkey_file = "k.pem"\n'
    (tmp_path / "c.toml").write_text(base, encoding="utf-8")
    policy = LabelPolicy.load(tmp_path / "c.toml", env={})
    assert policy.watermark is True and policy.watermark_secret == derive_secret(key.private_pem())
    assert policy.watermark_secret != key.private_pem()
    assert LabelPolicy.load(tmp_path / "c.toml", env={"LABELER_WATERMARK": "off"}).watermark is False
    MarkKey(b"s" * 32, "A").to_file(tmp_path / "wm.json")
    (tmp_path / "c.toml").write_text(
        base + 'watermark = false\nwatermark_key_file = "wm.json"\n', encoding="utf-8"
    )
    policy = LabelPolicy.load(tmp_path / "c.toml", env={})
    assert policy.watermark is False and policy.watermark_secret == b"s" * 32
    assert LabelPolicy(provider_name="A").watermark_secret is None  # nothing to derive it from
    with pytest.raises(ConfigError, match="LABELER_WATERMARK"):
        LabelPolicy.load(tmp_path / "c.toml", env={"LABELER_WATERMARK": "maybe"})
    (tmp_path / "c.toml").write_text(base + 'watermark = "no"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="true or false"):
        LabelPolicy.load(tmp_path / "c.toml", env={})
    (tmp_path / "wm.json").chmod(0o644)
    (tmp_path / "c.toml").write_text(base + 'watermark_key_file = "wm.json"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="chmod 600"):
        LabelPolicy.load(tmp_path / "c.toml", env={})
