"""Writing results to files people open in Excel or LibreOffice: ``.xlsx`` and ``.csv``.

- ``.xlsx``: a ``Results`` sheet (one row per input row), a ``Summary`` sheet (counts by
  status and by error code, when and how the run happened — never the key) and an
  ``Errors`` sheet (every row that was not sent, with the fix). Every text is written as
  text — phone numbers keep their ``+`` and digits, and no cell is ever a formula,
  whatever the data holds. Times are written in UTC (Excel has no time zones).
- ``.csv``: UTF-8 with a BOM (so Excel shows accents and emoji), with free-text cells that
  start with ``= + - @``, a tab or a carriage return prefixed by ``'`` against formula
  injection (OWASP). Phone numbers (``+`` then digits) are kept exactly, so
  ``load_recipients`` reads the file back to the same numbers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import KwaBatchError, describe_code
from .results import error_counts, summarize

__all__ = ["export_results"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"\+\d{6,15}")
_PHONE_COLUMNS = ("to", "from")


def export_results(results: pd.DataFrame, path: str | Path) -> Path:
    """Write ``results`` to ``path``; the format follows the extension (``.xlsx``, ``.csv``).

    Args:
        results: the frame returned by :func:`kwa_batch.send` (other columns are kept).
        path: where to write; parent folders must exist.

    Returns:
        The path written.

    Raises:
        KwaBatchError: the extension is not supported or the file cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise KwaBatchError(f"cannot export to {target.name!r}: use a .xlsx or .csv file name")
    try:
        if suffix == ".xlsx":
            _write_xlsx(results, target)
        else:
            _write_csv(results, target)
    except OSError as exc:
        raise KwaBatchError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def _plain(results: pd.DataFrame) -> pd.DataFrame:
    """Results with times as naive UTC (spreadsheets have no time zones)."""
    out = results.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert(UTC).dt.tz_localize(None)
    return out


def _neutralise(value: object, column: str) -> object:
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if column in _PHONE_COLUMNS and _PHONE.fullmatch(value):
        return value
    return "'" + value


def _write_csv(results: pd.DataFrame, target: Path) -> None:
    frame = _plain(results).reset_index(names=_index_name(results))
    for name in frame.columns:
        if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name].dtype):
            frame[name] = frame[name].map(lambda v, c=name: _neutralise(v, c))
    frame.to_csv(target, index=False, encoding="utf-8-sig", date_format="%Y-%m-%d %H:%M:%S")


def _index_name(results: pd.DataFrame) -> str:
    return str(results.index.name) if results.index.name is not None else "row"


def _write_xlsx(results: pd.DataFrame, target: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Results"
    frame = _plain(results).reset_index(names=_index_name(results))
    _write_table(sheet, frame)

    summary = book.create_sheet("Summary")
    rows: list[list[Any]] = [["status", "rows", "share"]]
    for status, row in summarize(results).iterrows():
        rows.append([status, int(row["rows"]), float(row["share"])])
    rows.append(["total", len(results), 1.0 if len(results) else 0.0])
    rows.append([])
    rows.append(["status", "error_code", "rows", "meaning and fix"])
    for row in error_counts(results).itertuples(index=False):
        rows.append([row.status, row.error_code, int(row.rows), describe_code(row.error_code)])
    rows.append([])
    rows.append(["run", "value"])
    run = dict(results.attrs.get("run") or {})
    run.setdefault("exported_at", datetime.now(UTC).isoformat(timespec="seconds"))
    rows.append(["times", "UTC"])
    for key, value in run.items():
        rows.append([key, "" if value is None else str(value)])
    for values in rows:
        summary.append([_text_cell(summary, v) for v in values])
    for cell in summary["C"][1 : 1 + len(summarize(results)) + 1]:
        cell.number_format = "0.0%"
    _widths(summary, [18, 16, 10, 90])

    errors = book.create_sheet("Errors")
    failed = frame[frame["status"].isin(["rejected", "failed", "unknown", "not_sent"])].copy()
    failed["fix"] = [describe_code(c) if isinstance(c, str) else "" for c in failed["error_code"]]
    _write_table(errors, failed)
    book.save(target)


def _text_cell(sheet: Any, value: Any) -> Any:
    """A cell that holds ``value`` as text when it is a string (never a formula)."""
    from openpyxl.cell.cell import Cell

    if isinstance(value, str):
        cell = Cell(sheet, row=1, column=1)  # append() moves it into place
        cell.value = value
        cell.data_type = "s"
        return cell
    return value


def _write_table(sheet: Any, frame: pd.DataFrame) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    columns = [str(c) for c in frame.columns]
    sheet.append([_text_cell(sheet, c) for c in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    values = frame.astype("object").where(frame.notna(), None)
    for row in values.itertuples(index=False, name=None):
        sheet.append([_text_cell(sheet, v) for v in row])
    for position, name in enumerate(columns, start=1):
        if pd.api.types.is_datetime64_any_dtype(frame[name].dtype):
            for cell in sheet[get_column_letter(position)][1:]:
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
    sheet.freeze_panes = "A2"
    if len(frame.columns):
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(len(frame) + 1, 1)}"
    widths = []
    for name in columns:
        sample = frame[name].head(500).astype("str")
        longest = max([len(name), *(len(v) for v in sample if isinstance(v, str))])
        widths.append(min(max(longest + 2, 8), 60))
    _widths(sheet, widths)


def _widths(sheet: Any, widths: list[int]) -> None:
    from openpyxl.utils import get_column_letter

    for position, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(position)].width = width
