"""Phone normalisation: exact agreement with libphonenumber, refusal of mangled values."""

from __future__ import annotations

import random
import re

import pandas as pd
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from kwa_batch import ConfigurationError
from kwa_batch.validation.phones import normalize_phone, normalize_phones

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
        ("12345678", "IN", "neither a valid IN number", False),
        ("98765", None, "has only 5 digits, too few for a phone number", False),
        ("12345", "IN", "(IN numbers have at least 8; with the country code, 7 to 15)", False),
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


@pytest.mark.parametrize(
    ("value", "region"), [("98765", None), ("1", None), ("12345", "IN"), ("98 76", "GB")]
)
def test_a_value_too_short_to_be_a_number_does_not_suggest_a_region(
    value: str, region: str | None
) -> None:
    """Issue #18: '98765' was told to "pass --region", which cannot lengthen it."""
    check = normalize_phone(value, region)
    assert check.e164 is None
    assert "too few for a phone number" in check.reason
    assert "check that no digit is missing" in check.reason
    assert "region" not in check.reason
    column = normalize_phones(pd.Series([value, "+919876543210"], dtype="str"), region)
    assert column.loc[0, "reason"] == check.reason  # the column says the same


def test_a_national_number_of_a_possible_length_still_suggests_a_region() -> None:
    assert "--region" in normalize_phone("9876543210").reason
    assert "--region" in normalize_phones(pd.Series(["9876543210"]))["reason"].iloc[0]
    assert normalize_phone("7012", "NU").ok  # Niue: four digits are a number


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


# --- Shared country codes, national prefixes and their transform rules -------------------


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+1 613 555 0123", None, "+16135550123"),  # CA, shares +1 with the US
        ("+1 876 555 0123", None, "+18765550123"),  # JM: leading digits 876
        ("+7 701 123 4567", None, "+77011234567"),  # KZ, shares +7 with RU
        ("+44 1481 256789", None, "+441481256789"),  # GG, shares +44 with GB
        ("+44 7624 123456", None, "+447624123456"),  # IM
        ("+44 (0) 7911 123456", None, "+447911123456"),  # the national 0 written too
        ("+54 11 15 2345 6789", None, "+5491123456789"),  # AR: 15 becomes a leading 9
        ("0 11 15 2345 6789", "AR", "+5491123456789"),
        ("0 21 11 98765 4321", "BR", "+5511987654321"),  # BR: carrier code 21 dropped
        ("8 701 123 4567", "KZ", "+77011234567"),  # trunk prefix 8
        ("011 44 7911 123456", "US", "+447911123456"),  # US international prefix 011
        ("(11) 98765-4321", "BR", "+5511987654321"),
    ],
)
def test_metadata_cases_from_libphonenumber(value: str, region: str | None, expected: str) -> None:
    assert normalize_phone(value, region).e164 == expected
    column = normalize_phones(pd.Series([value], dtype="str"), region)
    assert column.loc[0, "e164"] == expected


@pytest.mark.parametrize("value", ["+4967797904969142", "+49550229717161082", "+431112"])
def test_numbers_outside_e164_bounds_are_refused(value: str) -> None:
    assert phonenumbers.is_valid_number(phonenumbers.parse(value))  # libphonenumber: valid
    check = normalize_phone(value)
    assert check.e164 is None
    assert "digits" in check.reason
    column = normalize_phones(pd.Series([value], dtype="str"))
    assert pd.isna(column.loc[0, "e164"])
    assert column.loc[0, "reason"] == check.reason


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        ("'+919876543210", "apostrophe"),
        ("+0091 98765 43210", "does not start with a country code"),
        ("+28 1234 5678", "does not start with a country code"),
        ("+44 7911 12345", "country code +44 (GB, GG, IM, JE)"),
        ("+1 202 555 01", "country code +1 (US, AG, AI and 22 more)"),
    ],
)
def test_reasons_name_the_cause(value: str, reason_part: str) -> None:
    assert reason_part in normalize_phone(value).reason


def test_unknown_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown region 'XX'"):
        normalize_phone("0123", "XX")
    with pytest.raises(ConfigurationError, match="unknown region"):
        normalize_phones(pd.Series(["0123"]), "XX")
    assert normalize_phone("098765 43210", "in").e164 == "+919876543210"


# --- The column path and the one-by-one path give the same verdicts -----------------------

_SEPARATOR = st.sampled_from(["", "", "", " ", "-", ".", "\u00a0", "(", ")", "/"])


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    """Numbers as people write them: a prefix, digits with separators, sometimes junk."""
    prefix = draw(st.sampled_from(["+", "", "00", "0", "+0", "011", "8", "15", "(+"]))
    code = draw(st.sampled_from(["", "1", "7", "44", "91", "49", "54", "55", "61", "81", "971"]))
    digits = draw(st.text(alphabet="0123456789", min_size=0, max_size=14))
    parts = [prefix, code]
    for digit in digits:
        parts.append(draw(_SEPARATOR))
        parts.append(digit)
    tail = draw(st.sampled_from(["", "", "", " ", ".0", "x", "E+11", "\t"]))
    return "".join(parts) + tail


@settings(max_examples=400, deadline=None)
@given(
    st.lists(written_numbers() | st.text(max_size=20), min_size=1, max_size=30),
    st.sampled_from([None, "IN", "GB", "US", "AR", "BR", "CA", "KZ", "AG", "JP"]),
)
def test_column_path_agrees_with_one_by_one(values: list[str], region: str | None) -> None:
    column = normalize_phones(pd.Series(values, dtype="str"), region)
    for position, value in enumerate(values):
        one = normalize_phone(value, region)
        e164 = column["e164"].iloc[position]
        assert (None if pd.isna(e164) else e164) == one.e164, value
        reason = column["reason"].iloc[position]
        assert (None if pd.isna(reason) else reason) == (one.reason or None), value
        assert bool(column["mangled"].iloc[position]) is one.mangled


@settings(max_examples=300, deadline=None)
@given(written_numbers(), st.sampled_from([None, "IN", "GB", "US", "BR"]))
def test_normalising_twice_equals_once(value: str, region: str | None) -> None:
    once = normalize_phone(value, region)
    if once.e164 is None:
        return
    assert E164.match(once.e164)
    for other_region in (None, region):
        assert normalize_phone(once.e164, other_region).e164 == once.e164
    again = normalize_phones(pd.Series([once.e164], dtype="str"), region)
    assert again.loc[0, "e164"] == once.e164


def test_agreement_with_libphonenumber_on_a_random_sample() -> None:
    """Every country code, 1 to 15 digits after it, with and without a national prefix:
    the column's verdict is libphonenumber's own (within E.164's 7 to 15 digits)."""
    rng = random.Random(20240611)
    codes = sorted(str(c) for c in COUNTRY_CODE_TO_REGION_CODE)
    values = set()
    while len(values) < 20_000:
        values.add(
            "+"
            + rng.choice(codes)
            + rng.choice(["", "", "", "0", "1", "8", "9", "15"])
            + "".join(rng.choices("0123456789", k=rng.randint(1, 15)))
        )
    ordered = sorted(values)
    column = normalize_phones(pd.Series(ordered, dtype="str"))
    disagreements = []
    for value, e164 in zip(ordered, column["e164"], strict=True):
        try:
            parsed = phonenumbers.parse(value, None)
            expected = phonenumbers.is_valid_number(parsed)
            formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            expected, formatted = False, None
        if expected and not 7 <= len(formatted) - 1 <= 15:
            expected = False  # outside E.164: refused on purpose
        got = None if pd.isna(e164) else e164
        if (got is not None) != expected or (expected and got != formatted):
            disagreements.append((value, got, formatted))
    assert disagreements == []
    assert column["e164"].notna().sum() > 300  # the sample holds valid numbers too


def test_agreement_on_national_readings() -> None:
    rng = random.Random(7)
    regions = ["IN", "GB", "US", "CA", "AR", "BR", "MX", "KZ", "RU", "DE", "JP", "GG", "AG"]
    for region in regions:
        values = sorted(
            {
                rng.choice(["", "0", "1", "8", "00", "011", "15"])
                + "".join(rng.choices("0123456789", k=rng.randint(4, 13)))
                for _ in range(800)
            }
        )
        column = normalize_phones(pd.Series(values, dtype="str"), region)
        for value, e164 in zip(values, column["e164"], strict=True):
            assert (None if pd.isna(e164) else e164) == normalize_phone(value, region).e164


# --- A cell with several numbers (issue #14) --------------------------------------------

_SEVERAL = "holds several numbers in one cell"


@pytest.mark.parametrize(
    "value",
    [
        "+91 98765 43210 ::: +91 91234 56789",  # Google Contacts' separator
        "+91 98765 43210 / +91 91234 56789",
        "98765 43210 / 91234 56789",  # no '+': squeezed, 20 digits
        "+919876543210; +447911123456",
        "+919876543210,+447911123456",
        "020 7946 0958, 020 7946 0959",
        "+447911123456\n+447911123457",
        " +91 98765 43210 | +91 91234 56789\n",
    ],
)
@pytest.mark.parametrize("region", [None, "IN"])
def test_a_cell_of_several_numbers_is_refused_saying_so(value: str, region: str | None) -> None:
    one = normalize_phone(value, region)
    column = normalize_phones(pd.Series([value, "+919876543210"], dtype="str"), region)
    assert one.e164 is None
    assert one.several
    assert one.reason == _SEVERAL
    assert column["reason"].iloc[0] == one.reason
    assert column["several"].tolist() == [True, False]
    assert column["e164"].iloc[1] == "+919876543210"


@pytest.mark.parametrize(
    "value",
    ["0171/1234567", "98765/43210", "+91 98765 43210 / 11", "1, 2", "+91 (0) 98765-43210"],
)
def test_one_number_with_a_slash_or_a_short_tail_is_not_several(value: str) -> None:
    for region in (None, "IN", "DE"):
        assert not normalize_phone(value, region).several
        assert not normalize_phones(pd.Series([value], dtype="str"), region)["several"].iloc[0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(written_numbers(), min_size=2, max_size=3),
    st.sampled_from([" ::: ", "/", " / ", ";", ", ", "\n", " | "]),
    st.sampled_from([None, "IN", "GB"]),
)
def test_several_numbers_agree_on_both_paths(parts: list[str], sep: str, region) -> None:
    value = sep.join(parts)
    one = normalize_phone(value, region)
    column = normalize_phones(pd.Series([value], dtype="str"), region)
    assert bool(column["several"].iloc[0]) is one.several, value
    reason = column["reason"].iloc[0]
    assert (None if pd.isna(reason) else reason) == (one.reason or None), value
