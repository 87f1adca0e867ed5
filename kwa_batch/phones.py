"""Phone numbers: E.164 normalisation that never guesses.

A number is accepted only when libphonenumber calls it valid under one of the readings
below; every other value is refused with a reason that names the cause:

1. a value with characters other than digits, spaces (non-breaking ones too) and
   ``+ ( ) - . /`` is refused before libphonenumber is consulted (it would quietly drop a
   trailing ``x`` or a letter and accept the rest);
2. values a spreadsheet mangled are refused: scientific notation (``9.19876543210E+11``)
   and a trailing ``.0`` (``919876543210.0``) — their digits are not the real number;
3. ``+`` or ``00`` starts an international number;
4. otherwise, with a default region, the national reading in that region (trunk ``0``
   allowed) if it is valid, else the international reading without its ``+``
   (``447911123456``, as Kaleyra's own samples write numbers); without a default region,
   only the international reading.

The work is done once per distinct value, so a column with repeated numbers costs little.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import phonenumbers

__all__ = ["PhoneCheck", "normalize_phone", "normalize_phones"]

_SEPARATORS = " \u00a0\u202f\u2007\t()-./"
_ALLOWED = re.compile(r"[0-9+ \u00a0\u202f\u2007()\-./]+")
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_TRAILING_ZERO = re.compile(r"\+?\d+[.,]0+")
_STRIP = str.maketrans("", "", _SEPARATORS)


@dataclass(frozen=True)
class PhoneCheck:
    """The verdict on one value: ``e164`` when valid, else a ``reason`` (and whether a
    spreadsheet ``mangled`` it)."""

    e164: str | None
    reason: str = ""
    mangled: bool = False

    @property
    def ok(self) -> bool:
        """True when the value is a valid number."""
        return self.e164 is not None


def _valid_e164(number: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def normalize_phone(value: str, default_region: str | None = None) -> PhoneCheck:
    """Normalise one phone number to E.164, or say why it is refused.

    Args:
        value: the number as written.
        default_region: ISO country code (``"IN"``) for numbers written nationally.

    >>> normalize_phone("+91 98765-43210").e164
    '+919876543210'
    >>> normalize_phone("098765 43210", "IN").e164
    '+919876543210'
    >>> normalize_phone("9.19876543210E+11").mangled
    True
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return PhoneCheck(None, "the number is empty")
    if _SCIENTIFIC.fullmatch(text):
        return PhoneCheck(
            None,
            f"{text!r} is in scientific notation: a spreadsheet turned the number into a "
            "float and its last digits are lost",
            mangled=True,
        )
    if _TRAILING_ZERO.fullmatch(text):
        return PhoneCheck(
            None,
            f"{text!r} ends in '.0': a spreadsheet stored the number as a decimal (and may "
            "have dropped its leading + or 0)",
            mangled=True,
        )
    if not _ALLOWED.fullmatch(text):
        bad = sorted({ch for ch in text if not _ALLOWED.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad[:5])
        return PhoneCheck(None, f"{text!r} contains {shown}, which cannot be part of a number")
    compact = text.translate(_STRIP)
    if compact.count("+") > 1 or ("+" in compact and not compact.startswith("+")):
        return PhoneCheck(None, f"{text!r} has a '+' that is not at the start")
    digits = compact.lstrip("+")
    if not digits:
        return PhoneCheck(None, f"{text!r} has no digits")
    if compact.startswith("+") or digits.startswith("00"):
        international = "+" + (digits[2:] if not compact.startswith("+") else digits)
        found = _valid_e164(international, None)
        if found:
            return PhoneCheck(found)
        return PhoneCheck(None, f"{text!r} is not a valid number for its country code")
    if default_region:
        found = _valid_e164(digits, default_region.upper())
        if found:
            return PhoneCheck(found)
    found = _valid_e164("+" + digits, None)
    if found:
        return PhoneCheck(found)
    if default_region:
        return PhoneCheck(
            None,
            f"{text!r} is neither a valid {default_region.upper()} number nor a valid "
            "international number: add the + and country code",
        )
    return PhoneCheck(
        None,
        f"{text!r} has no country code: write it as +<country code><number>, or pass "
        "default_region= (--region) for national numbers",
    )


def normalize_phones(values: pd.Series, default_region: str | None = None) -> pd.DataFrame:
    """Normalise a column of numbers; each distinct value is checked once.

    Returns:
        A frame with the input's index and columns ``e164`` (NA when invalid), ``reason``
        (NA when valid) and ``mangled`` (bool).
    """
    region = default_region.upper() if default_region else None
    uniques = pd.unique(values.dropna())
    verdicts = {v: normalize_phone(v, region) for v in uniques}
    empty = PhoneCheck(None, "the number is empty")
    checks = [verdicts.get(v, empty) for v in values]
    return pd.DataFrame(
        {
            "e164": pd.array([c.e164 for c in checks], dtype="str"),
            "reason": pd.array([c.reason or None for c in checks], dtype="str"),
            "mangled": [c.mangled for c in checks],
        },
        index=values.index,
    )
