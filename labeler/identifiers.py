"""Validation of the identifiers a Chinese AI service must carry.

* Provider code (TC260-PG-20252A): 27 chars ``[0-9A-Z]`` = ``"00"`` + 20-char subject code +
  5-char service extension whose first char is ``1`` (generation) or ``2`` (propagation).
  For organisations the subject code is ``"11"`` + the 18-char unified social credit code,
  whose GB 32100-2015 check character we verify.
* Generative-AI service filing number: ``<Province>-<ModelName>-<YYYYMMDD>``.
* Algorithm filing number: ``网信算备`` + 21 digits + ``号``.

Errors say exactly which rule failed, because a wrong filing number on every label is worse
than a service that refuses to start.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re

from .errors import ConfigError

__all__ = [
    "FilingKind",
    "ProviderCode",
    "classify_filing_number",
    "validate_filing_number",
    "validate_provider_code",
]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_PROVIDER_RE = re.compile(r"00[0-9A-Z]{20}[12][0-9A-Z]{4}")
_GENAI_RE = re.compile(
    r"(?P<province>[A-Z][A-Za-z]*)-(?P<model>[0-9A-Za-z\u4e00-\u9fff][0-9A-Za-z\u4e00-\u9fff._-]*)"
    r"-(?P<date>\d{8})"
)
_ALGO_RE = re.compile(r"网信算备\d{21}号")


class FilingKind(enum.StrEnum):
    GENERATIVE_AI = "generative-ai"  #: 生成式人工智能服务备案
    ALGORITHM = "algorithm"  #: 深度合成算法备案


class ProviderCode(str):
    """A validated 27-char provider code; a ``str`` with its parts as properties."""

    @property
    def subject(self) -> str:
        return self[2:22]

    @property
    def role(self) -> str:
        """``"generation"`` or ``"propagation"`` (position 23 of the code)."""
        return "generation" if self[22] == "1" else "propagation"


def _uscc_check_char(body17: str) -> str:
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(body17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def validate_provider_code(code: str) -> ProviderCode:
    """Return ``code`` as a :class:`ProviderCode` or raise :class:`ConfigError` saying why."""
    code = code.strip()
    if len(code) != 27:
        raise ConfigError(f"provider code must be 27 characters, got {len(code)}: {code!r}")
    if _PROVIDER_RE.fullmatch(code) is None:
        raise ConfigError(
            f"provider code {code!r} must be '00' + 20-char subject code + a 5-char extension "
            "starting with 1 (generation) or 2 (propagation), all of [0-9A-Z]"
        )
    if code[2:4] == "11":
        uscc = code[4:22]
        if any(c not in _USCC_CHARS for c in uscc):
            raise ConfigError(f"unified social credit code {uscc!r} has a character outside GB 32100")
        if _uscc_check_char(uscc[:17]) != uscc[17]:
            raise ConfigError(
                f"unified social credit code {uscc!r} in provider code fails its GB 32100 check "
                f"character (expected {_uscc_check_char(uscc[:17])!r})"
            )
    return ProviderCode(code)


def classify_filing_number(number: str) -> FilingKind | None:
    """Which kind of filing number ``number`` is shaped like, or ``None``."""
    if _ALGO_RE.fullmatch(number):
        return FilingKind.ALGORITHM
    match = _GENAI_RE.fullmatch(number)
    if match is None:
        return None
    try:
        _dt.datetime.strptime(match["date"], "%Y%m%d")
    except ValueError:
        return None
    return FilingKind.GENERATIVE_AI


def validate_filing_number(number: str) -> str:
    """Return the stripped filing number or raise :class:`ConfigError` with the expected shapes."""
    number = number.strip()
    if classify_filing_number(number) is None:
        raise ConfigError(
            f"filing number {number!r} is neither a generative-AI filing number "
            "'<Province>-<ModelName>-<YYYYMMDD>' (e.g. Beijing-YunQue-20230821, a real date) nor an "
            "algorithm filing number '网信算备' + 21 digits + '号'"
        )
    return number
