"""Phone numbers: E.164 normalisation that never guesses, vectorised over a column.

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

Validity is libphonenumber's ``is_valid_number``, and also E.164's own bounds (7 to 15
digits): libphonenumber calls a few longer German, Japanese or Indonesian fixed-line and
toll-free numbers valid, which no international number can be.

:func:`normalize_phone` checks one value with libphonenumber itself.
:func:`normalize_phones` checks a column at once with :mod:`kwa_batch.numbering`
(phonenumbers' own metadata compiled into RE2 expressions that pyarrow runs over the
column). Values that path cannot decide (odd characters, mangled values, a national number
that starts with its region's international prefix) go through :func:`normalize_phone`
one by one. Both give the same answers; the tests hold them to it.

:func:`wa_id_forms` gives the other forms WhatsApp's ``wa_id`` writes some numbers in
(Mexican ``+52 1…``, Brazilian mobiles without the ninth digit): an opt-out read from a
reply matches the number in either form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from ..errors import ConfigurationError
from .numbering import (
    E164_MAX,
    E164_MIN,
    Reading,
    byte_at,
    digits_only,
    drop_prefix,
    international_column,
    match,
    national_column,
    null_strings,
    scatter,
    take,
)

__all__ = [
    "E164_PATTERN",
    "SEVERAL_FIX",
    "PhoneCheck",
    "check_region",
    "normalize_phone",
    "normalize_phones",
    "wa_id_forms",
    "wa_id_keys",
]

#: What every accepted number looks like once normalised.
E164_PATTERN = r"\+[1-9][0-9]{6,14}"
_SEPARATORS = " \u00a0\u202f\u2007\t()-./"
_SPACES = " \u00a0\u202f\u2007"
_ALLOWED = re.compile(r"[0-9+ \u00a0\u202f\u2007()\-./]+")
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_TRAILING_ZERO = re.compile(r"\+?\d+[.,]0+")
_STRIP = str.maketrans("", "", _SEPARATORS)
# A value the column path takes as it is: allowed characters only, '+' then digits once
# the separators are gone, and no trailing '.0' (that one is a spreadsheet's, see above).
_FAST_TEXT = "^[0-9+" + _SPACES + r"()\-./]+$"
_FAST_COMPACT = r"^\+?[0-9]+$"
_FAST_SEPARATORS = "[" + _SPACES + r"()\-./]"
_ENDS_IN_ZERO = r"\.0+[" + _SPACES + "]*$"
# Several numbers in one cell: two or more runs of at least 7 digits (E.164's fewest), split
# by Google Contacts' ' ::: ', a slash, a semicolon, a comma, a bar or a line break. The
# same expression for RE2 (the column) and Python's re (one value): no construct where
# they differ. A slash inside one number ('0171/1234567') leaves a run shorter than 7.
_INSIDE = "[" + _SPACES + r"\t()\-.]*"
_ONE_NUMBER = _INSIDE + r"\+?" + _INSIDE + "[0-9](?:" + _INSIDE + "[0-9]){6,}" + _INSIDE
_EDGE = "[" + _SPACES + r"\t\r\n]*"
_SEVERAL_PATTERN = (
    "^" + _EDGE + _ONE_NUMBER + r"(?:(?::{1,3}|[/;,|]|[\r\n]+)" + _ONE_NUMBER + ")+" + _EDGE + "$"
)
_SEVERAL = re.compile(_SEVERAL_PATTERN)


@dataclass(frozen=True)
class PhoneCheck:
    """The verdict on one value: ``e164`` when valid, else a ``reason`` (and whether a
    spreadsheet ``mangled`` it, or it holds ``several`` numbers)."""

    e164: str | None
    reason: str = ""
    mangled: bool = False
    several: bool = False

    @property
    def ok(self) -> bool:
        """True when the value is a valid number."""
        return self.e164 is not None


# Reasons. They never repeat the value: reports show it in its own column.
_EMPTY = "the number is empty: fill in the recipient's number, with + and the country code"
_SCIENTIFIC_REASON = (
    "is in scientific notation: a spreadsheet turned the number into a float and its last "
    "digits are lost"
)
_ZERO_REASON = (
    "ends in '.0': a spreadsheet stored the number as a decimal (and may have dropped its "
    "leading + or 0)"
)
_APOSTROPHE_REASON = (
    "starts with an apostrophe, Excel's mark for text: remove it and keep the number as text"
)
_PLUS_REASON = "has a '+' that is not at the start"
#: The fix of a recipient cell of several numbers, which validation adds (a sender's is
#: different: one business number).
SEVERAL_FIX = (
    "put one number per row (a row for each recipient), or map the column that holds one "
    "with --column to=NAME / columns={'to': NAME}"
)
_SEVERAL_REASON = "holds several numbers in one cell"
_NO_DIGITS = "has no digits"
_NO_COUNTRY_CODE = (
    "does not start with a country code: after the + (or 00) comes the country code, "
    "e.g. +91 for India, +44 for the UK"
)
_NO_REGION = (
    "has no country code: write it as +<country code><number>, or pass default_region= "
    "(--region) for national numbers"
)


@cache
def _shortest(region: str) -> int:
    """The fewest digits a national number of ``region`` has (libphonenumber's metadata)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    general = metadata.general_desc if metadata else None
    lengths = [n for n in (general.possible_length if general else ()) or () if n > 0]
    return min(lengths, default=1)


def _too_short(digits: int, region: str | None) -> str | None:
    """The reason for a value written without ``+`` that has too few digits to be a number
    (its hint must not be "pass --region", which cannot lengthen it); None when it has
    enough for one of its readings."""
    if digits >= E164_MIN or (region and digits >= _shortest(region)):
        return None
    count = f"only {digits} digit" + ("s" if digits != 1 else "")
    within = f"{region} numbers have at least {_shortest(region)}; " if region else ""
    return (
        f"has {count}, too few for a phone number ({within}with the country code, "
        f"{E164_MIN} to {E164_MAX}): check that no digit is missing"
    )


def _invalid_for_cc(cc: str) -> str:
    regions = [r for r in COUNTRY_CODE_TO_REGION_CODE.get(int(cc), ()) if r != "001"]
    if not regions:
        where = ""
    elif len(regions) <= 4:
        where = f" ({', '.join(regions)})"
    else:
        where = f" ({', '.join(regions[:3])} and {len(regions) - 3} more)"
    return (
        f"is not a valid number for country code +{cc}{where}: check that no digit is missing "
        "or extra"
    )


def _neither(region: str) -> str:
    return (
        f"is neither a valid {region} number nor a valid international number: add the + and "
        "country code"
    )


def _out_of_bounds(digits: int) -> str:
    return (
        f"has {digits} digits: an international (E.164) number has {E164_MIN} to "
        f"{E164_MAX}, so it cannot be reached this way"
    )


def check_region(region: str | None) -> str | None:
    """Return ``region`` as libphonenumber spells it (``"in"`` → ``"IN"``), or raise.

    Raises:
        ConfigurationError: ``region`` is not a region libphonenumber knows.
    """
    if region is None or region == "":
        return None
    if not isinstance(region, str) or region.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            f"unknown region {region!r}: use a two-letter ISO country code such as IN, GB or US"
        )
    return region.strip().upper()


def _cc_prefix(digits: str) -> str | None:
    """The country code ``phonenumbers.parse`` would read at the start of ``digits``."""
    if not digits or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        if len(digits) >= size and int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size]
    return None


def _lib_e164(number: str, region: str | None) -> str | None:
    """libphonenumber's verdict: the E.164 form when ``is_valid_number``, else None."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _in_bounds(e164: str) -> bool:
    return E164_MIN <= len(e164) - 1 <= E164_MAX


def _text_refusal(text: str) -> PhoneCheck | None:
    """The refusal of a value that is not written as a number at all, else None."""
    if not text:
        return PhoneCheck(None, _EMPTY)
    if _SEVERAL.fullmatch(text):
        return PhoneCheck(None, _SEVERAL_REASON, several=True)
    if _SCIENTIFIC.fullmatch(text):
        return PhoneCheck(None, _SCIENTIFIC_REASON, mangled=True)
    if _TRAILING_ZERO.fullmatch(text):
        return PhoneCheck(None, _ZERO_REASON, mangled=True)
    if not _ALLOWED.fullmatch(text):
        if text.startswith("'") and _ALLOWED.fullmatch(text[1:]):
            return PhoneCheck(None, _APOSTROPHE_REASON)
        bad = sorted({ch for ch in text if not _ALLOWED.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad[:5])
        return PhoneCheck(None, f"contains {shown}, which cannot be part of a number")
    return None


@lru_cache(maxsize=65536)
def normalize_phone(value: str, default_region: str | None = None) -> PhoneCheck:
    """Normalise one phone number to E.164, or say why it is refused.

    Args:
        value: the number as written.
        default_region: ISO country code (``"IN"``) for numbers written nationally.

    Raises:
        ConfigurationError: ``default_region`` is not a known region.

    >>> normalize_phone("+91 98765-43210").e164
    '+919876543210'
    >>> normalize_phone("098765 43210", "IN").e164
    '+919876543210'
    >>> normalize_phone("9.19876543210E+11").mangled
    True
    """
    region = check_region(default_region)
    text = value.strip() if isinstance(value, str) else ""
    refused = _text_refusal(text)
    if refused is not None:
        return refused
    compact = text.translate(_STRIP)
    if compact.count("+") > 1 or ("+" in compact and not compact.startswith("+")):
        return PhoneCheck(None, _PLUS_REASON)
    digits = compact.lstrip("+")
    if not digits:
        return PhoneCheck(None, _NO_DIGITS)
    if compact.startswith("+") or digits.startswith("00"):
        return _international(digits if compact.startswith("+") else digits[2:])
    readings = []
    if region:
        readings.append(_lib_e164(digits, region))
    readings.append(_lib_e164("+" + digits, None))
    for found in readings:
        if found and _in_bounds(found):
            return PhoneCheck(found)
    for found in readings:
        if found:
            return PhoneCheck(None, _out_of_bounds(len(found) - 1))
    short = _too_short(len(digits), region)
    return PhoneCheck(None, short or (_neither(region) if region else _NO_REGION))


def _international(digits: str) -> PhoneCheck:
    found = _lib_e164("+" + digits, None)
    if found:
        return (
            PhoneCheck(found)
            if _in_bounds(found)
            else PhoneCheck(None, _out_of_bounds(len(found) - 1))
        )
    cc = _cc_prefix(digits)
    return PhoneCheck(None, _invalid_for_cc(cc) if cc else _NO_COUNTRY_CODE)


def _as_arrow(values: pd.Series) -> pa.Array:
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("str")
    array = pa.array(values.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def _repeat(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, type=pa.large_string()), n)


class _Reasons:
    """Why each row is refused, as ids into a short table of texts, so that each text is
    written out once, at the end (a column of reasons is mostly a few texts repeated)."""

    def __init__(self, n: int) -> None:
        self.texts: list[str] = []
        self.ids: dict[str, int] = {}
        self.rows = np.full(n, -1, dtype=np.int64)

    def id(self, text: str) -> int:
        if text not in self.ids:
            self.ids[text] = len(self.texts)
            self.texts.append(text)
        return self.ids[text]

    def set(self, rows: np.ndarray[Any, Any], text: str) -> None:
        self.rows[rows] = self.id(text)

    def reading(self, rows: np.ndarray[Any, Any], reading: Reading, otherwise: str | None) -> None:
        """Reasons for the invalid rows of ``reading`` (which covers ``rows``)."""
        invalid = ~reading.valid
        if otherwise is None:
            codes, where = np.unique(reading.country_code[invalid], return_inverse=True)
            table = np.array(
                [self.id(_invalid_for_cc(str(c)) if c else _NO_COUNTRY_CODE) for c in codes],
                dtype=np.int64,
            )
            self.rows[rows[invalid]] = table[where.ravel()]
        else:
            self.set(rows[invalid], otherwise)
        bounded = np.flatnonzero(reading.bounds > 0)
        for row in bounded:
            self.rows[rows[row]] = self.id(_out_of_bounds(int(reading.bounds[row])))

    def column(self) -> pa.Array:
        texts = pa.array([*self.texts, ""], type=pa.large_string())
        return texts.take(pa.array(self.rows, mask=self.rows < 0))


def normalize_phones(values: pd.Series, default_region: str | None = None) -> pd.DataFrame:
    """Normalise a column of numbers at once; the same verdicts as :func:`normalize_phone`.

    Args:
        values: the numbers as written (any dtype; converted to strings).
        default_region: ISO country code for numbers written nationally.

    Returns:
        A frame with the input's index and columns ``e164`` (NA when invalid), ``reason``
        (NA when valid), ``mangled`` and ``several`` (bool: a cell of several numbers).

    Raises:
        ConfigurationError: ``default_region`` is not a known region.

    Example:
        >>> import pandas as pd
        >>> normalize_phones(pd.Series(["+91 98765 43210", "12"]))["e164"].tolist()
        ['+919876543210', nan]
    """
    region = check_region(default_region)
    raw = _as_arrow(values)
    n = len(raw)
    present = ~np.asarray(raw.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    compact, fast, plus, several = _compacted(raw, present)
    first = byte_at(compact, 0)
    idd = ~plus & (first == ord("0")) & (byte_at(compact, 1) == ord("0"))
    international = fast & (plus | idd)
    national = fast & ~international

    e164: list[tuple[np.ndarray[Any, Any], pa.Array]] = []
    reasons = _Reasons(n)
    slow = present & ~fast & ~several
    if several.any():
        reasons.set(np.flatnonzero(several), _SEVERAL_REASON)
    if international.any():
        rows = np.flatnonzero(international)
        subset = drop_prefix(_rows(compact, rows), np.where(plus[rows], 1, 2))
        _settle(rows, international_column(subset), None, e164, reasons, slow)
    if national.any():
        rows = np.flatnonzero(national)
        subset = _rows(compact, rows)
        otherwise = _neither(region) if region else _NO_REGION
        _settle(rows, _national(subset, region), otherwise, e164, reasons, slow)
        _say_too_short(rows, subset, region, otherwise, reasons)
    mangled = np.zeros(n, dtype=bool)
    if slow.any():
        rows = np.flatnonzero(slow)
        checks = [normalize_phone(v, region) for v in raw.take(pa.array(rows)).to_pylist()]
        e164.append((rows, pa.array([c.e164 for c in checks], type=pa.large_string())))
        for row, check in zip(rows, checks, strict=True):
            if not check.ok:
                reasons.rows[row] = reasons.id(check.reason)
        mangled[rows] = [c.mangled for c in checks]
        several[rows] = [c.several for c in checks]
    if not present.all():
        reasons.set(np.flatnonzero(~present), _EMPTY)
    return pd.DataFrame(
        {
            "e164": pd.array(scatter(n, e164), dtype="str"),
            "reason": pd.array(reasons.column(), dtype="str"),
            "mangled": mangled,
            "several": several,
        },
        index=values.index,
    )


def _say_too_short(
    rows: np.ndarray[Any, Any], subset: pa.Array, region: str | None, said: str, reasons: _Reasons
) -> None:
    """Where a national value was refused with ``said`` but has too few digits to be a
    number, say that instead (as :func:`normalize_phone` does)."""
    if said not in reasons.ids:
        return
    lengths = np.asarray(pc.utf8_length(subset).to_numpy(zero_copy_only=False))
    for i in np.flatnonzero(lengths < E164_MIN):
        short = _too_short(int(lengths[i]), region)
        if short and reasons.rows[rows[i]] == reasons.ids[said]:
            reasons.rows[rows[i]] = reasons.id(short)


def _compacted(
    raw: pa.Array, present: np.ndarray[Any, Any]
) -> tuple[pa.Array, np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The values without separators where that is all that stands between them and
    digits; which rows are now plain ('+' and digits, or digits); which start with '+';
    which hold several numbers."""
    # Most values are '+' and digits, or digits: one pass finds them; the others lose
    # their separators first, and what is still not digits goes the slow way.
    fast = present & digits_only(raw)
    several = np.zeros(len(raw), dtype=bool)
    compact = raw
    other = present & ~fast
    if other.any():
        written = take(raw, other)
        many = match(written, _SEVERAL_PATTERN)
        several[np.flatnonzero(other)[many]] = True
        plain = match(written, _FAST_TEXT) & ~match(written, _ENDS_IN_ZERO) & ~many
        squeezed = pc.replace_substring_regex(written, _FAST_SEPARATORS, "")
        plain &= match(squeezed, _FAST_COMPACT)
        compact = pc.replace_with_mask(raw, pa.array(other), squeezed)
        fast[np.flatnonzero(other)[plain]] = True
    return compact, fast, byte_at(compact, 0) == ord("+"), several


def _national(subset: pa.Array, region: str | None) -> Reading:
    """Numbers written without '+': read in ``region``, else (or when that fails) as
    international numbers that lost their '+'."""
    if region:
        reading = national_column(subset, region)
    else:
        m = len(subset)
        reading = Reading(
            null_strings(m),
            np.zeros(m, dtype=bool),
            np.zeros(m, dtype=np.int64),
            np.zeros(m, dtype=np.int64),
            np.zeros(m, dtype=bool),
        )
    rest = ~reading.valid & ~reading.undecided
    if rest.any():
        other = international_column(take(subset, rest))
        reading.e164 = pc.replace_with_mask(reading.e164, pa.array(rest), other.e164)
        reading.valid[rest] = other.valid
        reading.undecided[rest] = other.undecided
        earlier = reading.bounds[rest]
        reading.bounds[rest] = np.where(earlier > 0, earlier, other.bounds)
    return reading


def _settle(
    rows: np.ndarray[Any, Any],
    reading: Reading,
    otherwise: str | None,
    e164: list[tuple[np.ndarray[Any, Any], pa.Array]],
    reasons: _Reasons,
    slow: np.ndarray[Any, Any],
) -> None:
    """Keep the decided rows of a reading (their number or their reason); mark the
    undecided ones for the slow path."""
    slow[rows[reading.undecided]] = True
    keep = ~reading.undecided
    if not keep.all():
        rows, reading = rows[keep], reading.select(keep)
    e164.append((rows, reading.e164))
    reasons.reading(rows, reading, otherwise)


def _rows(values: pa.Array, rows: np.ndarray[Any, Any]) -> pa.Array:
    """``values`` at ``rows`` (no copy when that is every row, in order)."""
    if len(rows) == len(values):
        return values
    return values.take(pa.array(rows))


# WhatsApp's id for a user (wa_id) is not always the number a business sends to: Mexican
# mobiles as +52 1 and ten digits (the 1 Mexico dropped in 2019), Brazilian accounts older
# than the ninth digit as +55, the area code and the eight digits of a mobile (6 to 9).
_MX_WITH_ONE = re.compile(r"\+521([0-9]{10})")
_MX = re.compile(r"\+52([0-9]{10})")
_BR_NINE = re.compile(r"\+55([1-9]{2})9([6-9][0-9]{7})")
_BR_EIGHT = re.compile(r"\+55([1-9]{2})([6-9][0-9]{7})")
# The same forms for RE2 (a column at once), each onto one of its account's forms.
_ONE_FORM = ((r"^\+521([0-9]{10})$", r"+52\1"), (r"^\+55([1-9]{2})9([6-9][0-9]{7})$", r"+55\1\2"))


def wa_id_forms(e164: str) -> tuple[str, ...]:
    """The number and the other forms WhatsApp's ``wa_id`` gives the same account, in that
    order; the number alone when it has no other form.

    WhatsApp's id for a user is not always the E.164 number a business sends to: Mexican
    mobiles appear as ``+52 1`` and the ten digits of ``+52`` and ten digits, and Brazilian
    accounts older than the ninth digit as ``+55``, the area code and the eight digits of
    a mobile (6 to 9) for ``+55``, the area code, ``9`` and those eight. An opt-out must
    match the number in either form. The forms are only written here, not checked:
    libphonenumber calls ``+5215512345678`` and ``+551187654321`` invalid, while
    ``+551177654321`` and ``+5511977654321`` are both valid numbers.

    Args:
        e164: a number as ``+`` and digits.

    >>> wa_id_forms("+5215512345678")
    ('+5215512345678', '+525512345678')
    >>> wa_id_forms("+5511987654321")
    ('+5511987654321', '+551187654321')
    >>> wa_id_forms("+551187654321")
    ('+551187654321', '+5511987654321')
    >>> wa_id_forms("+919876543210")
    ('+919876543210',)
    """
    if found := _MX_WITH_ONE.fullmatch(e164):
        return e164, "+52" + found[1]
    if found := _MX.fullmatch(e164):
        return e164, "+521" + found[1]
    if found := _BR_NINE.fullmatch(e164):
        return e164, "+55" + found[1] + found[2]
    if found := _BR_EIGHT.fullmatch(e164):
        return e164, "+55" + found[1] + "9" + found[2]
    return (e164,)


def wa_id_keys(numbers: pd.Series) -> pd.Series:
    """One key per WhatsApp account for a column of ``+``-and-digits numbers: the forms
    :func:`wa_id_forms` gives one account share a key (Mexican ``+52 1`` … as ``+52`` …,
    a Brazilian mobile with its ninth digit as without it); other numbers are their own key.

    For matching numbers, not for sending to: a key may not be a valid number. Computed
    for the column at once (NA stays NA).

    >>> wa_id_keys(pd.Series(["+5215512345678", "+525512345678", "+5511987654321"])).tolist()
    ['+525512345678', '+525512345678', '+551187654321']
    """
    array = pa.array(numbers.astype("str").array)
    for pattern, replacement in _ONE_FORM:
        array = pc.replace_substring_regex(array, pattern, replacement)
    return pd.Series(pd.array(array, dtype="str"), index=numbers.index)
