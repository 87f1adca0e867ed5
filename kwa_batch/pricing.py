"""What a campaign will cost and how long it will take, before anything is sent.

:func:`estimate` counts the valid rows of a report by region (the ISO country of the number;
one the rate card does not list is priced as the main country of its calling code, so a
Guernsey +44 number is billed as GB)
and category (the template catalogue's ``category`` for template rows; text and media
messages are ``service``; authentication templates are ``authentication``), prices them
with the user's rate card, and says in ``attrs["summary"]`` how many requests the run makes,
how long they take at the rate, and how many rows the schedule (quiet hours, the start, the
expiry, the daily limit, see :mod:`~kwa_batch.sending.schedule`) will hold back now.

No price is built in: WhatsApp prices each delivered template by category and country, and
providers bill their own rates on top; the rate card is the user's (``sample_data/
rate_card.csv`` is an example with its source and date).

A rate card is checked line by line before anything is priced: every price a plain number,
finite, from 0 (free categories, such as service conversations, cost 0) up to
:data:`MAX_PRICE`; a region, a category and a currency on every row; one price per region and
category (a second one is refused, not silently preferred). A refusal names the file, the
line, the column, the value and the fix.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers

from .catalogue import TEMPLATE_COLUMNS
from .config import DEFAULT_API_VERSION
from .errors import InputError
from .fields import message_frame
from .loading.files import FileKind
from .loading.reading import read_table
from .sending.history import recent_recipients
from .sending.pacing import Pacing
from .sending.planner import plan_requests
from .sending.schedule import BUSINESS_INITIATED, Holds, Schedule, hold_back
from .sending.settings import setting_from
from .validation import ValidationReport

__all__ = [
    "ESTIMATE_COLUMNS",
    "MAX_PRICE",
    "RATE_CARD_FILE",
    "UNKNOWN_REGION",
    "Estimate",
    "billed_regions",
    "categories_of",
    "describe",
    "describe_table",
    "estimate",
    "load_rate_card",
    "regions_of",
]

#: The columns of an estimate, in order.
ESTIMATE_COLUMNS = ("region", "category", "messages", "recipients", "price", "cost", "currency")
_RATE_COLUMNS = ("region", "category", "price", "currency")
#: The highest price of one message a rate card may give, in its currency (WhatsApp's dearest
#: template costs well under 1 USD, or a few thousand in currencies such as IDR or VND).
MAX_PRICE = 1_000_000
#: What a rate card file is, for the messages that refuse one, and how large it may be.
RATE_CARD_FILE = FileKind(
    "rate card",
    "save the rate card as a .csv file first",
    4 * 2**20,
    "keep one row per region and category",
    f"one row per region and category (columns {', '.join(_RATE_COLUMNS)})",
)
_PRICE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_REGION = re.compile(r"[A-Z]{2}|[0-9]{3}")
_CATEGORY = re.compile(r"[a-z][a-z0-9_]*")
_CURRENCY = re.compile(r"[A-Z]{3}")


def load_rate_card(rates: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A rate card (CSV file or DataFrame) with ``region, category, price, currency``.

    Lines starting with ``#`` in a CSV are comments (where the figures come from), as is
    anything after a ``#`` on a line. A price of 0 is allowed (a free category, such as
    service conversations).

    Raises:
        InputError: the file cannot be read, a column is missing, a region, category or
            currency is empty or malformed, a price is not a plain finite number from 0 to
            :data:`MAX_PRICE`, or a region and category are priced twice; the message names
            the file, the line (or the frame's row), the column, the value and the fix.
    """
    if isinstance(rates, pd.DataFrame):
        where = "the rate card"
        header = [str(c).strip().lower() for c in rates.columns]
        rows = [
            (f"row {label}", ["" if _missing(v) else str(v) for v in values])
            for label, values in zip(rates.index, rates.itertuples(index=False), strict=True)
        ]
    else:
        where = f"rate card {rates}"
        header, rows = _read_card(Path(rates))
    missing = [c for c in _RATE_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; it needs "
            f"{', '.join(_RATE_COLUMNS)} (region as an ISO code such as IN, category as "
            "marketing, utility, authentication or service)"
        )
    position = {name: header.index(name) for name in _RATE_COLUMNS}
    records: list[dict[str, Any]] = []
    first: dict[tuple[str, str], str] = {}
    for label, cells in rows:
        value = {name: (cells[i] if i < len(cells) else "").strip() for name, i in position.items()}
        here = f"{where}, {label}"
        region = _checked(
            here, "region", value["region"].upper(), _REGION, "an ISO code such as IN"
        )
        category = _checked(
            here,
            "category",
            value["category"].lower(),
            _CATEGORY,
            "a category such as marketing, utility, authentication or service",
        )
        price = _price(here, value["price"])
        currency = _checked(
            here, "currency", value["currency"].upper(), _CURRENCY, "an ISO code such as USD"
        )
        record = {"region": region, "category": category, "price": price, "currency": currency}
        key = (region, category)
        if key in first:
            raise InputError(
                f"{here}: {key[0]} {key[1]} is priced twice (also on {first[key]}): keep one "
                "price per region and category"
            )
        first[key] = label
        records.append(record)
    card = pd.DataFrame.from_records(records, columns=list(_RATE_COLUMNS))
    card = card.astype({"region": "str", "category": "str", "currency": "str", "price": "float64"})
    return card


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array: not missing, and not a price
        return False


def _read_card(file: Path) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The header (lower case) and the rows of a rate card, each row with its line; a CSV
    file's text from ``#`` to the end of a line is a comment."""
    table = read_table(file, RATE_CARD_FILE, comments=True)
    header = [cell.strip().lower() for cell in table.header]
    cells = [column.to_numpy(dtype=object, na_value="") for column in table.columns]
    rows = [(label, [str(column[i]) for column in cells]) for i, label in enumerate(table.labels())]
    return header, rows


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 24 else f"{value[:20]!r}... ({len(value):,} characters)"


def _checked(where: str, column: str, value: str, pattern: re.Pattern[str], fix: str) -> str:
    if not value:
        raise InputError(f"{where}, column {column}: empty: write {fix}")
    if not pattern.fullmatch(value):
        raise InputError(f"{where}, column {column}: {_shown(value)} is not {fix}: correct it")
    return value


def _price(where: str, value: str) -> float:
    """The price of one message: a plain finite number from 0 to MAX_PRICE."""
    fix = "write it as a plain number such as 0.0107 (a dot for decimals, no currency sign)"
    shown = _shown(value)
    if not value:
        raise InputError(f"{where}, column price: empty: {fix}")
    if value.startswith("-") and _PRICE.fullmatch(value[1:]):
        raise InputError(f"{where}, column price: {shown} is negative: a price is 0 or more")
    if value.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        raise InputError(f"{where}, column price: {shown} is not a finite number: {fix}")
    if not _PRICE.fullmatch(value):
        raise InputError(f"{where}, column price: {shown} is not a number >= 0: {fix}")
    price = float(value)
    if not math.isfinite(price) or price > MAX_PRICE:
        raise InputError(
            f"{where}, column price: {shown} is more than {MAX_PRICE:,}, the most one message "
            f"may cost here: {fix}"
        )
    return price


class Estimate(pd.DataFrame):  # type: ignore[misc]  # pandas is untyped here
    """The estimate frame; in a notebook it shows its summary above the table (pandas'
    documented way of subclassing: derived frames are plain DataFrames)."""

    @property
    def _constructor(self) -> Any:
        return pd.DataFrame

    def _repr_html_(self) -> str:
        summary = pd.Series(self.attrs.get("summary", {}), dtype="object").to_frame("")
        table = pd.DataFrame(self).to_html(index=False)
        return f"{summary.to_html(header=False)}{table}"


#: The region of a number libphonenumber cannot read (a rejected row's ``98765``).
UNKNOWN_REGION = "ZZ"


def regions_of(numbers: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The ISO region of each number, and the main region of its country calling code
    (+44 7911 is Guernsey, GG; its code's main region is GB); :data:`UNKNOWN_REGION` for
    a number that is missing or not in international form (a rejected row's)."""
    unique = numbers.dropna().drop_duplicates()
    own: dict[str, str] = {}
    main: dict[str, str] = {}
    for number in unique:
        try:
            parsed = phonenumbers.parse(str(number))
        except phonenumbers.NumberParseException:
            continue
        own[number] = phonenumbers.region_code_for_number(parsed) or UNKNOWN_REGION
        main[number] = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    shown = numbers.astype("object")

    def mapped(regions: dict[str, str]) -> pd.Series:
        return shown.map(regions).fillna(UNKNOWN_REGION).astype("str")

    return mapped(own), mapped(main)


def billed_regions(
    card: pd.DataFrame, own: pd.Series, main: pd.Series, category: pd.Series
) -> pd.Series:
    """The region each message is priced as: its own when the rate card lists it for the
    category, else its calling code's main one (a Guernsey number billed as GB)."""
    priced = pd.MultiIndex.from_frame(card[["region", "category"]])
    listed = pd.MultiIndex.from_arrays([own, category]).isin(priced)
    return own.where(listed, main)


def categories_of(messages: pd.DataFrame, templates: Any) -> pd.Series:
    """What each message is billed as: the catalogue's ``category`` for a template
    (``unknown`` without a catalogue that lists it), ``authentication`` for an
    authentication template, ``service`` for text and media (``messages`` as
    :func:`~kwa_batch.fields.message_frame` gives them)."""
    kind = messages["type"].fillna("text").str.lower()
    category = pd.Series("service", index=messages.index, dtype="str")
    category[kind == "authenticationtemplate"] = "authentication"
    templated = kind.isin(BUSINESS_INITIATED) & (kind != "authenticationtemplate")
    named: dict[str, str] = {}
    if isinstance(templates, pd.DataFrame) and set(TEMPLATE_COLUMNS[:3]) <= set(templates):
        for name, cat in zip(templates["template_name"], templates["category"], strict=True):
            if isinstance(name, str) and isinstance(cat, str):
                named.setdefault(name.lower(), cat.lower())
    names = messages["template_name"].fillna("").str.lower()
    # A mapping with no match (or no catalogue) yields floats: fill before typing as text.
    category[templated] = names[templated].map(named).astype("object").fillna("unknown")
    return category


def estimate(
    report: ValidationReport,
    *,
    rates: str | Path | pd.DataFrame | None = None,
    templates: Any = None,
    pacing: Pacing | None = None,
    schedule: Schedule | None = None,
    now: datetime | None = None,
    api_version: str = DEFAULT_API_VERSION,
    **options: Any,
) -> Estimate:
    """Count, price and time the valid rows of ``report`` (nothing is sent).

    Args:
        report: from :func:`kwa_batch.validate`.
        rates: the rate card (see :func:`load_rate_card`); None: no cost (NA).
        templates: the catalogue for categories (default: the one the report was
            validated with, ``report.arguments["templates"]``).
        pacing: as for :func:`kwa_batch.send` (default ``Pacing()``, 80 messages per
            second): the requests are counted as send() plans them, and the duration at
            its rate (None without a rate limit): each sender number of the report at its
            own, together within ``account_rate`` (two numbers at 20/s take half the time
            of one).
        schedule: as for :func:`kwa_batch.send`: how many rows would be held back if it ran
            at ``now`` (default: the real clock).
        api_version: the Kaleyra API the client sends through (``client.api_version``):
            ``v2`` takes one recipient per request, and the requests are counted so.
        **options: the fields of ``pacing`` and ``schedule`` as keywords (``rate_limit=``,
            ``quiet_hours=``...), as for :func:`kwa_batch.send`.

    Returns:
        One row per region and category with :data:`ESTIMATE_COLUMNS`; ``attrs["summary"]``
        holds the totals, requests, duration and rows held back.

    Raises:
        ConfigurationError: a setting out of range, or given both as an object and as a
            keyword.
        TypeError: a keyword that is not a setting of ``pacing`` or ``schedule``.

    Example:
        >>> estimate(report, rates="sample_data/rate_card.csv")  # doctest: +SKIP
    """
    pacing = setting_from("estimate", "pacing", Pacing, pacing, options)
    schedule = setting_from("estimate", "schedule", Schedule, schedule, options)
    if options:
        raise TypeError(f"estimate() got an unexpected keyword argument {next(iter(options))!r}")
    messages = message_frame(report.to_send)  # an experiment's holdout is never sent
    if templates is None:
        templates = (report.arguments or {}).get("templates")
    own, main = regions_of(messages["to"])
    category = categories_of(messages, templates)
    card = load_rate_card(rates) if rates is not None else None
    if card is not None:  # a region off the card is billed as its calling code's main one
        own = billed_regions(card, own, main, category)
    frame = pd.DataFrame({"region": own, "category": category, "to": messages["to"]})
    table = (
        frame.groupby(["region", "category"], sort=True)
        .agg(messages=("to", "size"), recipients=("to", "nunique"))
        .reset_index()
    )
    if card is not None:
        table = table.merge(card, on=["region", "category"], how="left")
    else:
        table["price"], table["currency"] = float("nan"), pd.NA
    table["cost"] = table["messages"] * table["price"]
    table = table[list(ESTIMATE_COLUMNS)]
    # Grouped as send() groups them, from the same settings (v2: one recipient a request).
    planned = plan_requests(messages, max_recipients=pacing.size_for(api_version))
    requests = sum(1 for _ in planned) if len(messages) else 0
    holds = Holds.make(schedule, now=now)
    held: dict[str, int] = {}
    if holds.active and len(messages):
        since = holds.now - timedelta(hours=24)
        before = recent_recipients(holds.history, since) if holds.daily_limit else {}
        held = hold_back(messages, holds, before)[1].counts
    # Each sender number at its own rate, all within the account's (two numbers at 20/s: 40).
    rate = pacing.total_rate(messages["from"].dropna().unique())
    currencies = sorted(set(table["currency"].dropna()))
    unpriced = int(table.loc[table["price"].isna(), "messages"].sum())
    summary = {
        "messages": int(table["messages"].sum()),
        "recipients": int(frame["to"].nunique()),
        "requests": requests,
        "rate_limit": rate,
        "duration_seconds": round(len(messages) / rate, 1) if rate is not None else None,
        # One total only in one currency: a sum of rupees and dollars means nothing.
        "cost": round(float(table["cost"].sum()), 6)
        if card is not None and len(currencies) == 1
        else None,
        "currency": ", ".join(currencies) or None,
        "unpriced_messages": unpriced,
        "held_back": held,
        "planned_at": holds.now.isoformat(timespec="minutes"),
    }
    result = Estimate(table)
    result.attrs["summary"] = summary
    return result


def describe(summary: dict[str, Any], *, rate_card: bool = True) -> list[str]:
    """The summary as lines for the CLI and the workbook.

    Args:
        summary: ``estimate(...).attrs["summary"]``.
        rate_card: whether the estimate was priced with a rate card; without one nothing is
            priced, and saying that every message is "not on the rate card" would mislead.
    """
    head = (
        f"{summary['messages']:,} message(s) to {summary['recipients']:,} recipient(s) in "
        f"{summary['requests']:,} request(s)"
    )
    if summary["rate_limit"] is None:
        head += " (no rate limit: as fast as the API answers)"
    else:
        head += f": about {summary['duration_seconds']:,} s at {summary['rate_limit']:g}/s"
    lines = [head]
    unpriced = summary["unpriced_messages"] if rate_card else 0
    if summary["cost"] is not None:
        priced = summary["messages"] - unpriced
        only = f" for the {priced:,} priced message(s)" if unpriced else ""
        lines.append(f"cost: {summary['cost']:,.4f} {summary['currency'] or ''}".rstrip() + only)
    if unpriced:
        lines.append(f"{unpriced:,} message(s) not priced (no rate for their region and category)")
    for code, count in summary["held_back"].items():
        lines.append(f"held back now ({code}): {count:,}")
    return lines


def describe_table(found: pd.DataFrame) -> list[str]:
    """An estimate's rows as aligned text, one line per region and category: prices and
    costs with their currency, and for a row without a price, why (its category is
    unknown without the template catalogue, or the rate card does not list it), never NaN.
    """
    header = ("region", "category", "messages", "recipients", "price", "cost")
    rows: list[tuple[str, ...]] = []
    for row in found.itertuples(index=False):
        if pd.isna(row.price):
            why = (
                "no price: a template's category comes from the catalogue "
                "(templates= (--templates))"
                if row.category == "unknown"
                else "no price: not on the rate card"
            )
            price = cost = "-"
        else:
            currency = "" if pd.isna(row.currency) else f" {row.currency}"
            price = np.format_float_positional(float(row.price), trim="-") + currency
            cost = f"{float(row.cost):,.4f}{currency}"
            why = ""
        counts = (f"{int(row.messages):,}", f"{int(row.recipients):,}")
        rows.append((str(row.region), str(row.category), *counts, price, cost, why))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5}  # numbers

    def line(cells: tuple[str, ...]) -> str:
        shown = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells[: len(header)])
        ]
        return "  ".join([*shown, *cells[len(header) :]]).rstrip()

    return [line(header), *(line(r) for r in rows)]
