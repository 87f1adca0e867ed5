"""The suppression list: numbers never to message, with since when and why, and the rows
of a campaign that would reach them.

:func:`load_suppression` reads numbers however they come: a list or Series, a CSV, XLSX
or text file (one number a line, or a column named like ``to``/``phone``/``number``, with
optional ``since`` and ``reason`` columns; every sheet of a workbook, each read as such a
table, unless ``sheet=`` names one), the opt-outs of a receipts store (the frame
:func:`kwa_batch.opt_outs` returns, or anything whose ``opt_outs()`` gives it: an open
store, a :class:`~kwa_batch.receipts.optouts.OptOutSource`), or a frame of any of these
shapes. Validation sits below the receipts side, so a *path* to a store is read by the
caller (``kb.opt_outs(path)``; the CLI's ``--suppress`` does it). A file is read by
:mod:`kwa_batch.loading.reading`, as recipient files are (only a regular file; UTF-8 with
or without BOM, UTF-16, a legacy code page; a sheet named in any case).

Each number is normalised as :func:`kwa_batch.validate` does it (``+91 98765-43210`` and
``919876543210`` are the same person), and a form WhatsApp's ``wa_id`` writes it in
(:func:`~kwa_batch.validation.phones.wa_id_forms`: ``+52 1…``, a Brazilian mobile without
its ninth digit) is read as the number it stands for. The frame also carries, as rows of
their own with the same ``since`` and ``reason``, the other valid forms of each number, so
that an opt-out matches the recipient whichever form either side wrote.

Nothing that names someone who asked not to be messaged is dropped quietly:

- in a list (a file, a frame, a Python list), a value that is not a valid number is an
  error naming the line (and the sheet) and the value;
- a list *file* with no numbers at all is refused: it would suppress nobody (an empty
  Python list is taken as written, and a receipts store with no opt-outs yet is fine);
- an opt-out of a receipts store whose number cannot be read cannot stop a campaign (one
  garbled callback would block every send): it is logged as a warning and kept in the
  frame's ``attrs["unreadable"]``, which the command line prints.

:func:`suppressed_rows` tells which rows go to a suppressed number (``KWA025``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..database import is_database_url, redact
from ..errors import Code, InputError
from ..loading.files import FileKind, check_regular_file
from ..loading.reading import WORKBOOK_SUFFIXES, Table, read_tables
from ..loading.recipients import MAX_FILE_BYTES, TO_ALIASES
from ..privacy import mask_phone
from .phones import check_region, normalize_phone, normalize_phones, wa_id_forms

__all__ = [
    "SUPPRESSED_CODE",
    "SUPPRESSION_COLUMNS",
    "load_suppression",
    "normalize_suppressed",
    "suppressed_rows",
    "unreadable_note",
]

log = logging.getLogger(__name__)

#: The error code of a row to a suppressed number (see errors.py).
SUPPRESSED_CODE = Code.OPTED_OUT
#: Columns of :func:`load_suppression`, in order.
SUPPRESSION_COLUMNS = ("number", "since", "reason")

_TIME = "datetime64[us, UTC]"
_NUMBER_NAMES = {"to", "number", "numbers", "msisdn", "wa_id", *TO_ALIASES}
_SINCE_NAMES = ("since", "opted_out_at", "date", "at", "when")
_REASON_NAMES = ("reason", "why", "how", "detail", "source")
_SQLITE = b"SQLite format 3\x00"
#: What a suppression file is, for the messages that refuse one, and how large it may be.
SUPPRESSION_FILE = FileKind(
    "suppression list",
    "save the numbers as a .csv or .xlsx file first",
    MAX_FILE_BYTES,
    "split it into smaller files",
    "one number a line",
)
# The columns of kwa_batch.opt_outs (receipts sit above validation: not imported).
_OPT_OUT_COLUMNS = ("number", "opted_out_at", "how", "detail")
# A number written as digits, perhaps after '+' and with separators: what a wa_id form
# is looked for in.
_DIGITS = re.compile(r"\+?[1-9][0-9]{6,15}")
_SEPARATORS = str.maketrans("", "", " \u00a0\u202f\u2007\t()-./")
_NO_NUMBERS = "a suppression list with no numbers would suppress nobody"
_SHOWN = 3


def load_suppression(
    *sources: Any, default_region: str | None = None, sheet: str | None = None
) -> pd.DataFrame:
    """The numbers of every source, once each, with the earliest known ``since``.

    Args:
        *sources: each a list/tuple/set/Series of numbers, a path to a CSV, XLSX or text
            file of numbers, a frame of :func:`kwa_batch.opt_outs` (or anything with an
            ``opt_outs()`` method that returns one: an open
            :class:`~kwa_batch.receipts.store.CallbackStore`, an
            :class:`~kwa_batch.receipts.optouts.OptOutSource`), or a DataFrame.
        default_region: ISO country code for numbers written nationally (``"IN"``).
        sheet: the one sheet to read of each workbook among ``sources`` (default: every
            sheet).

    Returns:
        A frame with :data:`SUPPRESSION_COLUMNS`: ``number`` (E.164), ``since`` (UTC, NaT
        when the source does not say) and ``reason``, sorted by number; a number with
        other valid ``wa_id`` forms has a row for each of them too. ``attrs["unreadable"]``
        holds the opt-outs whose number could not be read (as written; see
        :func:`unreadable_note`).

    Raises:
        InputError: a file is missing or unreadable, is a receipts store (pass
            ``kb.opt_outs(path)``), holds no numbers at all, or holds a value that is not
            a valid number (the message names the sheet, the line and the value).

    Example:
        >>> load_suppression(["+91 98765 43210", "919876543210"])["number"].tolist()
        ['+919876543210']
    """
    region = check_region(default_region)
    frames = [_one(source, region, sheet) for source in sources]
    if sheet is not None and not any(_is_workbook(source) for source in sources):
        log.warning(
            "sheet=%r is for .xlsx workbooks, and no suppression source is one: ignored", sheet
        )
    unreadable = tuple(dict.fromkeys(v for f in frames for v in f.attrs.get("unreadable", ())))
    if frames:
        out = pd.concat(frames, ignore_index=True)
        out = out.sort_values(["number", "since"], kind="stable", na_position="last")
        out = _with_other_forms(out.drop_duplicates("number"))
    else:
        out = _empty()
    out.attrs = {"unreadable": unreadable}
    return out


def _is_workbook(source: Any) -> bool:
    return isinstance(source, str | Path) and Path(source).suffix.lower() in WORKBOOK_SUFFIXES


def normalize_suppressed(values: pd.Series, default_region: str | None = None) -> pd.DataFrame:
    """Numbers to suppress in E.164: as :func:`~kwa_batch.validation.phones.normalize_phones`
    reads recipients, and a value that is not valid as written but is a ``wa_id`` form of a
    valid number (:func:`~kwa_batch.validation.phones.wa_id_forms`) read as that number.

    Args:
        values: the numbers as written (``wa_id`` digits without ``+`` are read as
            international numbers when no ``default_region`` is given).
        default_region: ISO country code for numbers written nationally.

    Returns:
        A frame with the input's index and columns ``e164`` (NA when unreadable) and
        ``reason`` (why, NA when readable).

    Example:
        >>> normalize_suppressed(pd.Series(["5215512345678", "551187654321"]))["e164"].tolist()
        ['+525512345678', '+5511987654321']
    """
    checked = normalize_phones(values, default_region)[["e164", "reason"]]
    invalid = checked["e164"].isna().to_numpy() & values.notna().to_numpy()
    for position in np.flatnonzero(invalid):
        found = _as_wa_id(values.iloc[position])
        if found is not None:
            checked.iloc[position] = [found, pd.NA]
    return checked


def _as_wa_id(value: Any) -> str | None:
    """The valid number a ``wa_id`` form stands for, else None."""
    compact = str(value).strip().translate(_SEPARATORS)
    if not _DIGITS.fullmatch(compact):
        return None
    for form in wa_id_forms("+" + compact.lstrip("+"))[1:]:
        check = normalize_phone(form)
        if check.e164 == form:
            return form
    return None


def _with_other_forms(found: pd.DataFrame) -> pd.DataFrame:
    """``found`` (one row per number) with a row for each other valid ``wa_id`` form of a
    number that is not a row already, with the same ``since`` and ``reason``."""
    numbers = found["number"].astype("str")
    candidates = found[numbers.str.startswith(("+52", "+55")).to_numpy()]
    pairs = [
        (position, form)
        for position, number in enumerate(candidates["number"])
        for form in wa_id_forms(number)[1:]
    ]
    if pairs:
        forms = pd.Series([form for _, form in pairs], dtype="str")
        same = normalize_phones(forms)["e164"] == forms
        valid = same.fillna(False).to_numpy(dtype=bool) & ~forms.isin(set(numbers)).to_numpy()
        chosen = [position for (position, _), keep in zip(pairs, valid, strict=True) if keep]
        if chosen:
            rows = candidates.iloc[chosen].assign(number=forms[valid].to_numpy())
            found = pd.concat([found, rows], ignore_index=True)
            found = found.sort_values("number", kind="stable")
    return found.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "number": pd.Series(dtype="str"),
            "since": pd.Series(dtype=_TIME),
            "reason": pd.Series(dtype="str"),
        }
    )


def _one(source: Any, region: str | None, sheet: str | None) -> pd.DataFrame:
    if callable(getattr(source, "opt_outs", None)):  # an open store, an OptOutSource
        return _from_opt_outs(source.opt_outs(), repr(source))
    if isinstance(source, pd.DataFrame) and set(_OPT_OUT_COLUMNS) <= set(source.columns):
        return _from_opt_outs(source, "the opt-outs frame")
    if isinstance(source, pd.DataFrame):
        return _from_table(source, "the suppression frame", region, lines=None)
    if is_database_url(source):
        shown = redact(str(source))
        raise InputError(
            f"{shown} is a database, not a list of numbers: for the opt-outs of a receipts "
            f"store pass kb.OptOutSource({shown!r}) with the full URL, read again while a send "
            f"runs (on the command line, --suppress URL does it)"
        )
    if isinstance(source, str | Path):
        return _from_file(Path(source), region, sheet)
    if isinstance(source, pd.Series | pd.Index | list | tuple | set | frozenset):
        values = pd.Series(list(source), dtype="object")
        table = pd.DataFrame({"number": values.map(_as_text)})
        return _from_table(table, "the suppression list", region, lines=None)
    raise TypeError(
        f"cannot read numbers to suppress from {type(source).__name__}: give a list of "
        "numbers, a file of numbers, a DataFrame, or a receipts store as kb.OptOutSource(path)"
    )


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return pd.NA
    return str(value)


def unreadable_note(values: Sequence[str], where: str) -> str:
    """One line on opt-outs whose number cannot be read: how many, a few of them masked
    to their last four digits (personal data), what it means and what to check.

    >>> unreadable_note(["+1234567", "abc"], "receipts.db").split(": they")[0]
    "receipts.db: 2 opt-out(s) name a number that cannot be read (***4567, 'abc')"
    """
    shown = ", ".join(
        mask_phone(v) if any(ch.isdigit() for ch in v) else repr(v[:8]) for v in values[:_SHOWN]
    )
    more = f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
    return (
        f"{where}: {len(values)} opt-out(s) name a number that cannot be read ({shown}{more}): "
        "they suppress nobody; check what the receiver stores as the sender ('from') and the "
        "recipient ('mobile')"
    )


def _from_opt_outs(found: pd.DataFrame, where: str) -> pd.DataFrame:
    numbers = normalize_suppressed(found["number"])["e164"]
    readable = numbers.notna().to_numpy()
    earlier = tuple(found.attrs.get("unreadable", ()))
    unreadable = tuple(found["number"].fillna("").astype("str")[~readable])
    if unreadable:  # a frame built by hand (opt_outs keeps them out and says so itself)
        log.warning("%s", unreadable_note(unreadable, where), extra={"unreadable": unreadable})
    found = found[readable]
    reason = ("replied '" + found["detail"] + "'").where(
        found["how"] == "reply", "a message failed with 131050: " + found["detail"]
    )
    out = pd.DataFrame(
        {
            "number": numbers[readable].astype("str").to_numpy(),
            "since": found["opted_out_at"].astype(_TIME).to_numpy(),
            "reason": reason.astype("str").to_numpy(),
        }
    )
    out.attrs["unreadable"] = earlier + unreadable
    return out


def _from_file(file: Path, region: str | None, sheet: str | None) -> pd.DataFrame:
    if not file.exists():
        raise InputError(f"{file}: no such suppression file or receipts store")
    check_regular_file(file, SUPPRESSION_FILE)  # a FIFO or a device: refused, never opened
    try:
        with file.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise InputError(f"{file}: cannot be read as a list of numbers ({exc})") from None
    if head == _SQLITE:
        raise InputError(
            f"{file} is a SQLite file, not a list of numbers: for the opt-outs of a "
            f"receipts store pass kb.OptOutSource({str(file)!r}), read again while a "
            f"send runs (on the command line, --suppress {file} does it)"
        )
    workbook = file.suffix.lower() in WORKBOOK_SUFFIXES
    read = read_tables(file, SUPPRESSION_FILE, sheet=sheet if workbook else None, empty=True)
    tables = [_as_rows(table) for table in read]
    found = [
        _from_table(table, where, region, lines=lines)
        for where, table, lines in (_with_header(*table) for table in tables)
    ]
    if not any(len(f) for f in found):
        raise InputError(f"{file}: {_NO_NUMBERS}: {_why_nothing(file, tables)}")
    return pd.concat(found, ignore_index=True)


# A table as read: where (the file, and the sheet), its rows of text, their line numbers.
_Table = tuple[str, pd.DataFrame, np.ndarray[Any, Any]]


def _why_nothing(file: Path, tables: list[_Table]) -> str:
    """Why a file holds no numbers, and the fix, for the message that refuses it."""
    fix = (
        "put the numbers not to message in it (one a line, or in a column named 'phone' or "
        "'number'), or leave it out"
    )
    if file.suffix.lower() in WORKBOOK_SUFFIXES:
        names = ", ".join(repr(table.attrs["sheet"]) for _, table, _ in tables)
        return f"none of its sheets ({names}) holds a number: {fix}"
    if tables[0][1].empty:
        return f"the file is empty: {fix}"
    return f"it has a header and no numbers under it: {fix}"


def _as_rows(table: Table) -> _Table:
    """A table as read, with its header as its first row (a list of numbers may have none:
    :func:`_with_header` decides), and where it is, for messages."""
    if table.sheet is None:
        where = table.source.name
    else:
        where = f"{table.source.name}, sheet {table.sheet!r}"
    if not table.header:
        frame = pd.DataFrame(dtype="str")
        lines = np.zeros(0, dtype=np.int64)
    else:
        frame = pd.DataFrame(
            {
                i: pd.array([name or None, *column], dtype="str")
                for i, (name, column) in enumerate(zip(table.header, table.columns, strict=True))
            }
        )
        lines = np.concatenate([[table.header_line], table.lines]).astype(np.int64)
    frame.attrs["sheet"] = table.sheet
    return where, frame, lines


def _key(name: object) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(name).strip().lower()).strip("_")


def _with_header(
    where: str, table: pd.DataFrame, lines: np.ndarray[Any, Any]
) -> tuple[str, pd.DataFrame, np.ndarray[Any, Any]]:
    """Use the first row as the header when it names a number column (else keep numbers)."""
    if table.empty:
        return where, pd.DataFrame({"number": pd.Series(dtype="str")}), lines[:0]
    first = [_key(v) for v in table.iloc[0].fillna("")]
    if any(name in _NUMBER_NAMES for name in first):
        out = table.iloc[1:].copy()
        out.columns = first
        out.attrs["header"] = True
        return where, out, lines[1:]
    out = table.rename(columns={table.columns[0]: "number"})
    return where, out[["number"]], lines


def _pick(table: pd.DataFrame, names: Iterable[str]) -> Any:
    keys = {_key(c): c for c in table.columns}
    return next((keys[n] for n in names if n in keys), None)


def _from_table(
    table: pd.DataFrame,
    where: str,
    region: str | None,
    *,
    lines: np.ndarray[Any, Any] | None,
) -> pd.DataFrame:
    """The numbers of a table; ``lines`` are its rows' lines in the file (None: not a
    file, its items are numbered from 1)."""
    column = _pick(table, ["number", *sorted(_NUMBER_NAMES)])
    if column is None:
        if len(table.columns) != 1:
            raise InputError(
                f"{where}: no column of numbers (name it 'to', 'phone' or 'number'; columns: "
                f"{', '.join(map(str, table.columns))})"
            )
        column = table.columns[0]
    written = table[column].astype("str").str.strip()
    written = written.mask(written == "").reset_index(drop=True)
    present = written.notna().to_numpy()
    checked = normalize_suppressed(written[present].reset_index(drop=True), region)
    bad = checked["e164"].isna().to_numpy()
    if bad.any():
        positions = np.flatnonzero(present)[bad]
        shown = [
            f"{'line ' + str(lines[p]) if lines is not None else 'item ' + str(p + 1)}: "
            f"{written.iloc[p]!r} ({reason})"
            for p, reason in zip(positions[:3], checked["reason"][bad][:3], strict=False)
        ]
        more = f" and {len(positions) - 3} more" if len(positions) > 3 else ""
        if lines is not None and not table.attrs.get("header") and positions[0] == 0:
            more += " (if line 1 is a header, name its column of numbers 'phone' or 'number')"
        raise InputError(
            f"{where}: {len(positions)} value(s) are not valid numbers: {'; '.join(shown)}"
            f"{more}. Fix them (with + and the country code, or pass default_region) or "
            "remove them: a number to suppress is never guessed"
        )
    out = pd.DataFrame({"number": checked["e164"].astype("str")})
    out["since"] = _since(table, present, where)
    reason_column = _pick(table, _REASON_NAMES)
    default = "on the suppression list" + (f" {where}" if lines is not None else "")
    if reason_column is not None:
        reasons = table[reason_column].astype("str").str.strip().reset_index(drop=True)
        reasons = reasons[present].reset_index(drop=True)
        out["reason"] = reasons.mask(reasons == "", default).fillna(default)
    else:
        out["reason"] = pd.Series(default, index=out.index, dtype="str")
    return out


def _since(table: pd.DataFrame, present: np.ndarray[Any, Any], where: str) -> pd.Series:
    column = _pick(table, _SINCE_NAMES)
    n = int(present.sum())
    if column is None:
        return pd.Series(pd.NaT, index=pd.RangeIndex(n), dtype=_TIME)
    values = table[column].reset_index(drop=True)[present].reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
    else:
        text = values.astype("str").str.strip()
        text = text.mask(text == "")
        stamps = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        wrong = stamps.isna() & text.notna()
        if wrong.any():
            raise InputError(
                f"{where}: {column} {text[wrong].iloc[0]!r} is not a date: write it as "
                "2026-11-30 or 2026-11-30 14:02 (UTC), or leave it empty"
            )
    return stamps.astype(_TIME)


def suppressed_rows(
    to: pd.Series, suppression: pd.DataFrame
) -> tuple[np.ndarray[Any, Any], pd.Series]:
    """Which rows go to a suppressed number, and the reason for each of them.

    Args:
        to: the recipients in E.164 (NA where invalid), as :func:`kwa_batch.validate`
            normalised them.
        suppression: a frame from :func:`load_suppression`.

    Returns:
        A mask over ``to``, and the message of each masked row, in order.
    """
    if suppression.empty:
        return np.zeros(len(to), dtype=bool), pd.Series(dtype="str")
    since = suppression["since"].dt.strftime("%Y-%m-%d %H:%M UTC")
    told = (" since " + since).fillna("")
    messages = (
        "this recipient opted out" + told + " (" + suppression["reason"] + "): do not message "
        "them, remove the row"
    )
    lookup = pd.Series(messages.to_numpy(), index=pd.Index(suppression["number"]), dtype="str")
    found = to.reset_index(drop=True).map(lookup)
    mask = found.notna().to_numpy()
    return mask, found[mask].reset_index(drop=True).astype("str")
