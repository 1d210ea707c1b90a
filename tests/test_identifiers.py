from __future__ import annotations

import pytest

from labeler.errors import ConfigError
from labeler.identifiers import (
    FilingKind,
    classify_filing_number,
    validate_filing_number,
    validate_provider_code,
)


def test_spec_example_provider_code_is_valid() -> None:
    code = validate_provider_code("001191440300708461136T1XGW3")
    assert code.subject == "1191440300708461136T"
    assert code.role == "generation"


@pytest.mark.parametrize(
    "code, message",
    [
        ("001191440300708461136T1XGW", "27 characters"),
        ("011191440300708461136T1XGW3", "must be '00'"),
        ("001191440300708461136T3XGW3", "starting with 1"),
        ("001191440300708461136t1XGW3", "must be '00'"),
        ("001191440300708461137T1XGW3", "check"),  # one digit of the USCC changed
        ("0011914403007084611I6T1XGW3", "outside GB 32100"),  # I is not a USCC character
    ],
)
def test_bad_provider_codes_say_why(code: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_provider_code(code)


def test_propagation_role() -> None:
    assert validate_provider_code("001191440300708461136T20000").role == "propagation"


@pytest.mark.parametrize(
    "number, kind",
    [
        ("Beijing-YunQue-20230821", FilingKind.GENERATIVE_AI),
        ("Shanghai-Model_2.5-Pro-20240229", FilingKind.GENERATIVE_AI),
        ("网信算备110108823483901230031号", FilingKind.ALGORITHM),
        ("Beijing-YunQue-20230230", None),  # no Feb 30th
        ("beijing-YunQue-20230821", None),
        ("Beijing--20230821", None),
        ("网信算备11010882348390123003号", None),  # 20 digits
        ("网信算备110108823483901230031", None),
        ("", None),
    ],
)
def test_filing_number_shapes(number: str, kind: FilingKind | None) -> None:
    assert classify_filing_number(number) is kind


def test_bad_filing_number_error_shows_both_shapes() -> None:
    with pytest.raises(ConfigError, match=r"Province.*网信算备"):
        validate_filing_number("ICP-12345")
    assert validate_filing_number("  Beijing-YunQue-20230821 ") == "Beijing-YunQue-20230821"
