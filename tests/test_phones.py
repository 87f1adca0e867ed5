"""Phone normalisation: exact agreement with libphonenumber, refusal of mangled values."""

from __future__ import annotations

import re

import pandas as pd
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwa_batch.phones import normalize_phone, normalize_phones

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+919876543210", None, "+919876543210"),
        ("+91 98765 43210", None, "+919876543210"),
        ("+91\u00a098765\u00a043210", None, "+919876543210"),
        ("+91-98765-43210", None, "+919876543210"),
        ("+91.98765.43210", None, "+919876543210"),
        ("+1 (202) 555-0143", None, "+12025550143"),
        ("00447911123456", None, "+447911123456"),
        ("447911123456", None, "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("098765 43210", "IN", "+919876543210"),
        ("9876543210", "IN", "+919876543210"),
        ("919876543210", "IN", "+919876543210"),
        ("447911123456", "IN", "+447911123456"),
        ("  +919876543210  ", None, "+919876543210"),
    ],
)
def test_valid_numbers_normalise_to_e164(value: str, region: str | None, expected: str) -> None:
    assert normalize_phone(value, region).e164 == expected


@pytest.mark.parametrize(
    ("value", "region", "reason_part", "mangled"),
    [
        ("9.19876543210E+11", None, "scientific notation", True),
        ("9,19876543210E+11", None, "scientific notation", True),
        ("919876543210.0", None, "'.0'", True),
        ("+919876543210x", None, "'x'", False),
        ("+91987654321O", None, "'O'", False),
        ("9876543210", None, "no country code", False),
        ("12345", "IN", "neither a valid IN number", False),
        ("+12", None, "not a valid number", False),
        ("91+9876543210", None, "'+' that is not at the start", False),
        ("", None, "empty", False),
        ("   ", None, "empty", False),
        ("+", None, "no digits", False),
        ("+91 98765 43210 ext 5", None, "'e'", False),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(
    value: str, region: str | None, reason_part: str, mangled: bool
) -> None:
    check = normalize_phone(value, region)
    assert check.e164 is None
    assert reason_part in check.reason
    assert check.mangled is mangled


def test_a_letter_libphonenumber_would_accept_is_refused() -> None:
    parsed = phonenumbers.parse("+919876543210x", None)
    assert phonenumbers.is_valid_number(parsed)  # libphonenumber drops the x...
    assert normalize_phone("+919876543210x").e164 is None  # ...we do not


def test_column_normalisation_keeps_index_and_marks_missing() -> None:
    values = pd.Series(["+919876543210", None, "bad", "+919876543210"], index=[10, 11, 12, 13])
    out = normalize_phones(values.astype("str"))
    assert list(out.index) == [10, 11, 12, 13]
    assert out.loc[10, "e164"] == "+919876543210"
    assert pd.isna(out.loc[11, "e164"])
    assert "empty" in out.loc[11, "reason"]
    assert pd.isna(out.loc[12, "e164"])
    assert pd.isna(out.loc[13, "reason"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from([None, "IN", "GB", "US", "DE"]))
def test_arbitrary_text_never_raises_and_valid_output_is_e164(
    text: str, region: str | None
) -> None:
    check = normalize_phone(text, region)
    if check.e164 is not None:
        assert E164.match(check.e164)
        assert normalize_phone(check.e164, region).e164 == check.e164  # idempotent
    else:
        assert check.reason


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["1", "7", "44", "91", "49", "55", "61", "65", "971", "27", "86", "234"]),
    st.text(alphabet="0123456789", min_size=7, max_size=12),
)
def test_agrees_with_libphonenumber_on_international_numbers(cc: str, rest: str) -> None:
    number = f"+{cc}{rest}"
    try:
        expected = phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        expected = False
    assert normalize_phone(number).ok is expected
