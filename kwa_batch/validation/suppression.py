"""The suppression list: numbers never to message, with since when and why, and the rows
of a campaign that would reach them.

:func:`load_suppression` reads numbers however they come: a list or Series, a CSV, XLSX
or text file (one number a line, or a column named like ``to``/``phone``/``number``, with
optional ``since`` and ``reason`` columns), the opt-outs of a receipts store (the frame
:func:`kwa_batch.opt_outs` returns, or an open store, whose ``opt_outs()`` gives it), or a
frame of any of these shapes. Validation sits below the receipts side, so a *path* to a
store is read by the caller (``kb.opt_outs(path)``; the CLI's ``--suppress`` does it). Each
number is normalised as :func:`kwa_batch.validate` does it (``+91 98765-43210`` and
``919876543210`` are the same person); one that cannot be read is an error, never
dropped, since it is someone who asked not to be messaged.

:func:`suppressed_rows` tells which rows go to a suppressed number (``KWA025``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..recipients import TO_ALIASES
from .phones import check_region, normalize_phones

__all__ = [
    "SUPPRESSED_CODE",
    "SUPPRESSION_COLUMNS",
    "load_suppression",
    "suppressed_rows",
]

#: The error code of a row to a suppressed number (see errors.py).
SUPPRESSED_CODE = "KWA025"
#: Columns of :func:`load_suppression`, in order.
SUPPRESSION_COLUMNS = ("number", "since", "reason")

_TIME = "datetime64[us, UTC]"
_NUMBER_NAMES = {"to", "number", "numbers", "msisdn", "wa_id", *TO_ALIASES}
_SINCE_NAMES = ("since", "opted_out_at", "date", "at", "when")
_REASON_NAMES = ("reason", "why", "how", "detail", "source")
_SQLITE = b"SQLite format 3\x00"
# The columns of kwa_batch.opt_outs (receipts sit above validation: not imported).
_OPT_OUT_COLUMNS = ("number", "opted_out_at", "how", "detail")


def load_suppression(*sources: Any, default_region: str | None = None) -> pd.DataFrame:
    """The numbers of every source, once each, with the earliest known ``since``.

    Args:
        *sources: each a list/tuple/set/Series of numbers, a path to a CSV, XLSX or text
            file of numbers, a frame of :func:`kwa_batch.opt_outs` (or an open
            :class:`~kwa_batch.receipts.store.CallbackStore`), or a DataFrame.
        default_region: ISO country code for numbers written nationally (``"IN"``).

    Returns:
        A frame with :data:`SUPPRESSION_COLUMNS`: ``number`` (E.164), ``since`` (UTC, NaT
        when the source does not say) and ``reason``, sorted by number.

    Raises:
        InputError: a file is missing or unreadable, is a receipts store (pass
            ``kb.opt_outs(path)``), or holds a value that is not a valid number (the
            message names the line and the value).

    Example:
        >>> load_suppression(["+91 98765 43210", "919876543210"])["number"].tolist()
        ['+919876543210']
    """
    region = check_region(default_region)
    frames = [_one(source, region) for source in sources]
    if not frames:
        return _empty()
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["number", "since"], kind="stable", na_position="last")
    return out.drop_duplicates("number").reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "number": pd.Series(dtype="str"),
            "since": pd.Series(dtype=_TIME),
            "reason": pd.Series(dtype="str"),
        }
    )


def _one(source: Any, region: str | None) -> pd.DataFrame:
    if callable(getattr(source, "opt_outs", None)):  # an open receipts store
        return _from_opt_outs(source.opt_outs())
    if isinstance(source, pd.DataFrame) and set(_OPT_OUT_COLUMNS) <= set(source.columns):
        return _from_opt_outs(source)
    if isinstance(source, pd.DataFrame):
        return _from_table(source, "the suppression frame", region, first_line=None)
    if isinstance(source, str | Path):
        return _from_file(Path(source), region)
    if isinstance(source, pd.Series | pd.Index | list | tuple | set | frozenset):
        values = pd.Series(list(source), dtype="object")
        table = pd.DataFrame({"number": values.map(_as_text)})
        return _from_table(table, "the suppression list", region, first_line=None)
    raise TypeError(
        f"cannot read numbers to suppress from {type(source).__name__}: give a list of "
        "numbers, a file of numbers, a receipts store or a DataFrame"
    )


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return pd.NA
    return str(value)


def _from_opt_outs(found: pd.DataFrame) -> pd.DataFrame:
    reason = ("replied '" + found["detail"] + "'").where(
        found["how"] == "reply", "a message failed with 131050: " + found["detail"]
    )
    return pd.DataFrame(
        {
            "number": found["number"].astype("str"),
            "since": found["opted_out_at"].astype(_TIME),
            "reason": reason.astype("str"),
        }
    )


def _from_file(file: Path, region: str | None) -> pd.DataFrame:
    if not file.is_file():
        raise InputError(f"{file}: no such suppression file or receipts store")
    try:
        with file.open("rb") as handle:
            head = handle.read(16)
        if head == _SQLITE:
            raise InputError(
                f"{file} is a SQLite file, not a list of numbers: for the opt-outs of a "
                f"receipts store pass kb.opt_outs({str(file)!r}) (on the command line, "
                f"--suppress {file} reads it)"
            )
        if file.suffix.lower() in (".xlsx", ".xlsm"):
            table = pd.read_excel(file, dtype=str, header=None, keep_default_na=False)
        else:
            table = _read_text(file.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, UnicodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{file}: cannot be read as a list of numbers ({exc})") from None
    return _from_table(_with_header(table), file.name, region, first_line=1)


def _read_text(text: str) -> pd.DataFrame:
    sample = text[:4096]
    try:
        # Never a space: "+91 98765 43210" is one number.
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    width = max((len(r) for r in rows), default=1)
    return pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype="str")


def _key(name: object) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(name).strip().lower()).strip("_")


def _with_header(table: pd.DataFrame) -> pd.DataFrame:
    """Use the first row as the header when it names a number column (else keep numbers)."""
    if table.empty:
        return pd.DataFrame({"number": pd.Series(dtype="str")})
    first = [_key(v) for v in table.iloc[0].fillna("")]
    if any(name in _NUMBER_NAMES for name in first):
        out = table.iloc[1:].copy()
        out.columns = first
        out.attrs["header"] = True
        return out
    out = table.rename(columns={table.columns[0]: "number"})
    return out[["number"]]


def _pick(table: pd.DataFrame, names: Iterable[str]) -> Any:
    keys = {_key(c): c for c in table.columns}
    return next((keys[n] for n in names if n in keys), None)


def _from_table(
    table: pd.DataFrame, where: str, region: str | None, *, first_line: int | None
) -> pd.DataFrame:
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
    offset = first_line + (1 if table.attrs.get("header") else 0) if first_line else None
    present = written.notna().to_numpy()
    checked = normalize_phones(written[present].reset_index(drop=True), region)
    bad = checked["e164"].isna().to_numpy()
    if bad.any():
        positions = np.flatnonzero(present)[bad]
        shown = [
            f"{'line ' + str(p + offset) if offset else 'item ' + str(p + 1)}: "
            f"{written.iloc[p]!r} ({reason})"
            for p, reason in zip(positions[:3], checked["reason"][bad][:3], strict=False)
        ]
        more = f" and {len(positions) - 3} more" if len(positions) > 3 else ""
        if offset == 1 and positions[0] == 0:
            more += " (if line 1 is a header, name its column of numbers 'phone' or 'number')"
        raise InputError(
            f"{where}: {len(positions)} value(s) are not valid numbers: {'; '.join(shown)}"
            f"{more}. Fix them (with + and the country code, or pass default_region) or "
            "remove them: a number to suppress is never guessed"
        )
    out = pd.DataFrame({"number": checked["e164"].astype("str")})
    out["since"] = _since(table, present, where)
    reason_column = _pick(table, _REASON_NAMES)
    default = "on the suppression list" + (f" {where}" if first_line else "")
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
