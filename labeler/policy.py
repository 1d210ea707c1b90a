"""Who labels, and how: the service identity every label carries.

A :class:`LabelPolicy` is validated when it is built, so a bad provider code or filing number
stops a service at start-up instead of stamping a wrong label on every answer. It loads from a
TOML file (``[labeler]`` table) and ``LABELER_*`` environment variables (env wins).
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from .aigc import check_charset
from .errors import ConfigError, InvalidRecordError
from .explicit.styles import RhythmStyle, VisibleStyle
from .identifiers import ProviderCode, validate_filing_number, validate_provider_code
from .markkey import MarkKey, derive_secret
from .signing import SigningKey

__all__ = ["LabelPolicy", "check_label_text"]

_ZH_AI = ("人工智能", "AI")
_ZH_GEN = ("生成", "合成")
_EN_AI = re.compile(r"\bAI\b|artificial intelligence", re.IGNORECASE)
_EN_GEN = re.compile(r"generat|synthe", re.IGNORECASE)


def check_label_text(text: str, language: str) -> str:
    """Enforce the wording rule: an AI element AND a generation element ("AI" alone is not enough)."""
    text = text.strip()
    if language == "zh":
        ok = any(a in text for a in _ZH_AI) and any(g in text for g in _ZH_GEN)
        rule = "must contain '人工智能' or 'AI' and '生成' or '合成' (e.g. 'AI生成')"
    else:
        ok = bool(_EN_AI.search(text) and _EN_GEN.search(text))
        rule = "must name AI and generation/synthesis (e.g. 'AI-generated')"
    if not ok:
        raise ConfigError(f"label text {text!r} ({language}) {rule}")
    return text


@dataclass(frozen=True)
class LabelPolicy:
    """The identity and choices of one labelling service."""

    provider_name: str
    provider_code: str | None = None
    filing_numbers: tuple[str, ...] = ()
    launch_number: str | None = None  #: 上线编号 of an app on a filed model; shape unconfirmed
    system_name: str = "unknown"
    system_version: str = ""
    label_text_zh: str = "AI生成"
    label_text_en: str = "AI-generated"
    language: Literal["zh", "en"] = "zh"
    visible: VisibleStyle = field(default_factory=VisibleStyle)
    audio: RhythmStyle = field(default_factory=RhythmStyle)
    signing_key: SigningKey | None = field(default=None, repr=False, compare=False)
    #: write the invisible watermark where a visible label is drawn on a picture (docs/watermark.md)
    watermark: bool = True
    #: the watermark secret; None: derived from ``signing_key`` (:attr:`watermark_secret`)
    watermark_key: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.provider_name.strip():
            raise ConfigError("provider_name must not be empty")
        if self.provider_code is not None:
            object.__setattr__(self, "provider_code", validate_provider_code(self.provider_code))
        if isinstance(self.filing_numbers, str):
            raise ConfigError("filing_numbers must be a list of strings, not one string")
        object.__setattr__(
            self, "filing_numbers", tuple(validate_filing_number(n) for n in self.filing_numbers)
        )
        if self.language not in ("zh", "en"):
            raise ConfigError(f"language must be 'zh' or 'en', got {self.language!r}")
        object.__setattr__(self, "label_text_zh", check_label_text(self.label_text_zh, "zh"))
        object.__setattr__(self, "label_text_en", check_label_text(self.label_text_en, "en"))
        if not isinstance(self.visible, VisibleStyle):
            raise ConfigError("visible must be a labeler.VisibleStyle")
        if not isinstance(self.audio, RhythmStyle):
            raise ConfigError("audio must be a labeler.RhythmStyle")
        if self.signing_key is not None and not isinstance(self.signing_key, SigningKey):
            raise ConfigError("signing_key must be a labeler.SigningKey")
        if not isinstance(self.watermark, bool):
            raise ConfigError("watermark must be true or false")
        if self.watermark_key is not None and (
            not isinstance(self.watermark_key, bytes) or len(self.watermark_key) < 16
        ):
            raise ConfigError("watermark_key must be bytes, at least 16 (or set watermark_key_file)")
        _ = self.producer  # fail now, not at the first label

    @functools.cached_property
    def producer(self) -> str:
        """The ``ContentProducer`` value: the provider code, else an ASCII-safe provider name."""
        if self.provider_code is not None:
            return ProviderCode(self.provider_code)
        try:
            return check_charset("ContentProducer", self.provider_name)
        except InvalidRecordError:
            raise ConfigError(
                f"provider_name {self.provider_name!r} can't be a GB 45438 ContentProducer "
                "(printable ASCII only, no spaces); set provider_code"
            ) from None

    @functools.cached_property
    def watermark_secret(self) -> bytes | None:
        """The watermark's secret: ``watermark_key`` if configured, else derived one-way from the
        signing key (HMAC-SHA256 over its private PEM), else None (nothing to mark with)."""
        if self.watermark_key is not None:
            return self.watermark_key
        if self.signing_key is None:
            return None
        return derive_secret(self.signing_key.private_pem())

    @property
    def label_text(self) -> str:
        """The visible label text in the policy's language."""
        return self.label_text_zh if self.language == "zh" else self.label_text_en

    @property
    def filing_line(self) -> str | None:
        """The filing number(s) as one line for visible labels, if the style asks for it."""
        return (
            "  ".join(self.filing_numbers)
            if self.visible.show_filing_number and self.filing_numbers
            else None
        )

    def with_changes(self, **changes: Any) -> LabelPolicy:
        return replace(self, **changes)

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: Path | None = None) -> LabelPolicy:
        """Build from a plain mapping (a TOML ``[labeler]`` table, or env values)."""
        data = dict(data)
        texts = data.pop("label_text", None) or {}
        if not isinstance(texts, Mapping):
            raise ConfigError("label_text must be a table with zh and/or en")
        for lang in ("zh", "en"):
            if lang in texts:
                data[f"label_text_{lang}"] = texts[lang]
        for name, style, keys in (
            ("visible", VisibleStyle, "placement, show_filing_number, ..."),
            ("audio", RhythmStyle, "frequency, level_dbfs, unit_ms, position"),
        ):
            table = data.pop(name, None)
            if table is None:
                continue
            if not isinstance(table, Mapping):
                raise ConfigError(f"{name} must be a table ({keys})")
            try:
                data[name] = style(**table)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[labeler.{name}]: {exc}") from None
        key_file = data.pop("key_file", None)
        if key_file:
            path = Path(key_file)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            data["signing_key"] = SigningKey.from_file(path)
        mark_file = data.pop("watermark_key_file", None)
        if mark_file:
            path = Path(mark_file)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            data["watermark_key"] = MarkKey.from_file(path).secret
        if "filing_numbers" in data:
            data["filing_numbers"] = tuple(data["filing_numbers"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown policy setting(s): {', '.join(unknown)}")
        if "provider_name" not in data:
            raise ConfigError("provider_name is required")
        for name, value in data.items():
            if name == "watermark" and not isinstance(value, bool):
                raise ConfigError("policy setting watermark must be true or false")
            typed = ("signing_key", "visible", "audio", "watermark", "watermark_key")
            if name not in typed and not isinstance(value, str | tuple | type(None)):
                raise ConfigError(f"policy setting {name} must be a string")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> LabelPolicy:
        return cls.load(path, env={})

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> LabelPolicy:
        """TOML file (``path`` or ``$LABELER_CONFIG``) overlaid with ``LABELER_*`` variables."""
        env = os.environ if env is None else env
        path = path or env.get("LABELER_CONFIG")
        data: dict[str, Any] = {}
        base_dir = None
        if path:
            path = Path(path)
            try:
                with path.open("rb") as fh:
                    doc = tomllib.load(fh)
            except OSError as exc:
                raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
            table = doc.get("labeler", doc)
            if not isinstance(table, dict):
                raise ConfigError(f"config {path}: [labeler] must be a table")
            data.update(table)
            base_dir = path.parent
        overrides = _from_env(env)
        for table in ("label_text", "visible"):  # env overrides keys of a table, not the table
            if table in overrides and isinstance(data.get(table), Mapping):
                overrides[table] = {**data[table], **overrides[table]}
        data.update(overrides)
        return cls.from_mapping(data, base_dir)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (
        "provider_name",
        "provider_code",
        "launch_number",
        "system_name",
        "system_version",
        "language",
        "key_file",
        "watermark_key_file",
    ):
        value = env.get(f"LABELER_{name.upper()}")
        if value:
            out[name] = value
    switch = env.get("LABELER_WATERMARK", "").strip().lower()
    if switch:
        if switch not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
            raise ConfigError(f"LABELER_WATERMARK must be on or off, got {switch!r}")
        out["watermark"] = switch in ("1", "true", "on", "yes")
    if env.get("LABELER_FILING_NUMBERS"):
        out["filing_numbers"] = tuple(
            n.strip() for n in re.split(r"[,;]", env["LABELER_FILING_NUMBERS"]) if n.strip()
        )
    texts = {
        lang: env[f"LABELER_LABEL_TEXT_{lang.upper()}"]
        for lang in ("zh", "en")
        if env.get(f"LABELER_LABEL_TEXT_{lang.upper()}")
    }
    if texts:
        out["label_text"] = texts
    budget = {}  # the decode budget of pictures, [labeler.visible]
    for name in ("max_pixels", "max_frame_pixels", "max_frames"):
        value = env.get(f"LABELER_{name.upper()}")
        if value:
            try:
                budget[name] = int(value.strip())
            except ValueError:
                raise ConfigError(f"LABELER_{name.upper()} must be a whole number, got {value!r}") from None
    if budget:
        out["visible"] = budget
    return out
