"""Results to files people open in Excel or LibreOffice, and back: xlsx, csv, parquet.

- ``.xlsx``: a ``Results`` sheet (one row per input row, the input's own columns alongside
  the outcome when ``data=`` is passed), a ``Summary`` sheet (counts by status and by error
  code, when and how the run happened — never the key) and an ``Errors`` sheet (every row
  that was not sent, with the fix). Every text is written as text — phone numbers keep
  their ``+`` and digits, ids are never turned into numbers — and no cell is ever a
  formula, whatever the data holds. Times are written in UTC (Excel has no time zones);
  the header is frozen, with an autofilter and column widths that fit.
- ``.csv``: UTF-8 with a BOM (so Excel shows accents and emoji), with text cells that
  start with ``= + - @``, a tab or a carriage return prefixed by ``'`` against formula
  injection (OWASP). Phone numbers (``+`` then digits) are kept exactly, so
  ``load_recipients`` reads the file back to the same numbers.
- ``.parquet`` (pyarrow): every column with its type, for the next program.

:func:`load_results` reads any of them back into a results DataFrame.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError, KwaBatchError, describe_code
from .results import error_counts, summarize

__all__ = ["FORMATS", "export_results", "load_results"]

FORMATS = (".xlsx", ".csv", ".parquet")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A phone number as people write it: digits and separators only, so no formula function
# can hide in it; kept as it is in phone columns, so the file reads back the same.
_PHONE = re.compile(r"\+[0-9 ()./\-]{6,30}")
_PHONE_COLUMNS = ("to", "from", "to_as_written")
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NOT_SENT = ("rejected", "failed", "unknown", "not_sent")
_TYPES = {
    "http_status": "Int64",
    "attempts": "Int64",
    "recipients": "Int64",
}
_RUN_KEY = b"kwa_batch.run"


def export_results(
    results: pd.DataFrame, path: str | Path, *, data: pd.DataFrame | None = None
) -> Path:
    """Write ``results`` to ``path``; the format follows the extension.

    Args:
        results: the frame returned by :func:`kwa_batch.send`.
        path: a ``.xlsx``, ``.csv`` or ``.parquet`` file; parent folders must exist.
        data: the input frame, to write its own columns (names, order ids…) next to each
            outcome; joined on the index. Its ``to`` becomes ``to_as_written``.

    Returns:
        The path written.

    Raises:
        KwaBatchError: the extension is not supported or the file cannot be written.

    Example:
        >>> export_results(results, "results.xlsx", data=df)  # doctest: +SKIP
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise KwaBatchError(
            f"cannot export to {target.name!r}: use a .xlsx, .csv or .parquet file name"
        )
    frame = _with_input(results, data)
    try:
        if suffix == ".xlsx":
            _write_xlsx(frame, results, target)
        elif suffix == ".csv":
            _write_csv(frame, target)
        else:
            _write_parquet(frame, target)
    except OSError as exc:
        raise KwaBatchError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def _with_input(results: pd.DataFrame, data: pd.DataFrame | None) -> pd.DataFrame:
    if data is None:
        return results
    if not data.index.equals(results.index):
        raise KwaBatchError(
            "data= must be the frame the results came from (same index): the results have "
            f"{len(results)} rows, data has {len(data)}"
        )
    extra = data.drop(columns=[c for c in data.columns if c in results.columns])
    if "to" in data.columns:
        extra.insert(0, "to_as_written", data["to"])
    combined = results.join(extra)
    combined.attrs = dict(results.attrs)
    return combined


def _index_name(frame: pd.DataFrame) -> str:
    return str(frame.index.name) if frame.index.name is not None else "row"


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its index as a column and times as naive UTC (for spreadsheets)."""
    out = frame.reset_index(names=_index_name(frame))
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


def _write_csv(frame: pd.DataFrame, target: Path) -> None:
    out = _plain(frame)
    for name in out.columns:
        if pd.api.types.is_string_dtype(out[name].dtype) or out[name].dtype == object:
            out[name] = out[name].map(lambda v, c=name: _neutralise(v, c)).astype("object")
    out.to_csv(target, index=False, encoding="utf-8-sig", date_format="%Y-%m-%d %H:%M:%S.%f")


def _write_parquet(frame: pd.DataFrame, target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=True)
    metadata = dict(table.schema.metadata or {})
    metadata[_RUN_KEY] = json.dumps(frame.attrs.get("run") or {}, default=str).encode()
    pq.write_table(table.replace_schema_metadata(metadata), target)


def _xml_safe(value: str) -> str:
    """Control characters cannot be stored in a workbook: show them as ``\\xNN`` instead."""
    return _ILLEGAL_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _write_xlsx(frame: pd.DataFrame, results: pd.DataFrame, target: Path) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    table = _plain(frame)
    _write_table(book.create_sheet("Results"), table)

    summary = book.create_sheet("Summary")
    counts = summarize(results)
    rows: list[list[Any]] = [["status", "rows", "share"]]
    rows += [[status, int(r["rows"]), float(r["share"])] for status, r in counts.iterrows()]
    rows.append(["total", len(results), 1.0 if len(results) else 0.0])
    rows.append([])
    rows.append(["status", "error_code", "rows", "meaning and fix"])
    for row in error_counts(results).itertuples(index=False):
        rows.append([row.status, row.error_code, int(row.rows), describe_code(row.error_code)])
    rows.append([])
    rows.append(["run", "value"])
    rows.append(["times", "UTC"])
    run = dict(results.attrs.get("run") or {})
    run.setdefault("exported_at", datetime.now(UTC).isoformat(timespec="seconds"))
    for key, value in run.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        rows.append([key, "" if value is None else str(value)])
    summary.column_dimensions["A"].width = 24
    summary.column_dimensions["B"].width = 22
    summary.column_dimensions["C"].width = 10
    summary.column_dimensions["D"].width = 100
    for number, values in enumerate(rows):
        cells = [_cell(summary, v) for v in values]
        if number in (0,) or (values and values[0] in ("status", "run") and number > 0):
            cells = [_cell(summary, v, bold=True) for v in values]
        elif 1 <= number <= len(counts) + 1 and len(values) == 3:
            cells[2] = _cell(summary, values[2], number_format="0.0%")
        summary.append(cells)

    errors = table[table["status"].isin(_NOT_SENT)].copy()
    fixes = [describe_code(c) if isinstance(c, str) else "" for c in errors["error_code"]]
    errors.insert(list(errors.columns).index("error_message") + 1, "fix", fixes)
    _write_table(book.create_sheet("Errors"), errors)
    book.save(target)


def _cell(sheet: Any, value: Any, *, bold: bool = False, number_format: str | None = None) -> Any:
    """A write-only cell; strings are always text (a leading ``=`` never makes a formula)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    if isinstance(value, str):
        value = _xml_safe(value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    if bold:
        cell.font = Font(bold=True)
    if number_format:
        cell.number_format = number_format
    return cell


def _write_table(sheet: Any, frame: pd.DataFrame) -> None:
    from openpyxl.utils import get_column_letter

    columns = [str(c) for c in frame.columns]
    widths = []
    for name in columns:
        sample = frame[name].head(500).astype("str")
        longest = max([len(name), *(len(v) for v in sample if isinstance(v, str))])
        widths.append(min(max(longest + 2, 8), 60))
    for position, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(position)].width = width
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(len(columns), 1))}{len(frame) + 1}"
    sheet.append([_cell(sheet, name, bold=True) for name in columns])
    dates = {
        i for i, name in enumerate(columns) if pd.api.types.is_datetime64_any_dtype(frame[name])
    }
    values = frame.astype("object").where(frame.notna(), None)
    for row in values.itertuples(index=False, name=None):
        cells: list[Any] = []
        for i, value in enumerate(row):
            if isinstance(value, str) and (value.startswith("=") or _ILLEGAL_XML.search(value)):
                cells.append(_cell(sheet, value))
            elif i in dates and value is not None:
                cells.append(
                    _cell(sheet, value.to_pydatetime(), number_format="yyyy-mm-dd hh:mm:ss")
                )
            else:
                cells.append(value)
        sheet.append(cells)


def load_results(path: str | Path) -> pd.DataFrame:
    """Read an exported results file (``.xlsx``, ``.csv`` or ``.parquet``) back.

    Returns:
        A results DataFrame indexed as the original (by input row), with the contract's
        dtypes: text as strings, ``http_status``/``attempts`` as nullable integers,
        ``sent_at`` as UTC timestamps. CSV cells neutralised against formulas keep their
        leading ``'``.

    Raises:
        InputError: the file is missing or is not a results file.
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file")
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(source)
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise InputError(f"{source}: is not a readable parquet file ({exc})") from None
        frame = table.to_pandas()
        raw = (table.schema.metadata or {}).get(_RUN_KEY)
        if raw:
            frame.attrs["run"] = json.loads(raw)
        _check_results(source, frame.columns)
        return frame
    if suffix == ".xlsx":
        frame = _read_xlsx(source)
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(
                source, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"{source}: is not a results file written by kwa-batch ({reason})"
            ) from None
    else:
        raise InputError(f"{source}: not a results file: use a .xlsx, .csv or .parquet file")
    _check_results(source, frame.columns)
    index_name = frame.columns[0]
    index = pd.Index(pd.to_numeric(frame[index_name], errors="coerce"))
    if index.notna().all() and (index == index.round()).all():
        index = index.astype("int64")
    else:
        index = pd.Index(frame[index_name].astype("str"))
    run = frame.attrs.get("run")
    frame = frame.drop(columns=index_name)
    frame.index = index.rename(None if index_name == "row" else index_name)
    typed = _typed(frame)
    if run:
        typed.attrs["run"] = run
    return typed


def _check_results(source: Path, columns: pd.Index) -> None:
    missing = [c for c in ("to", "status") if c not in columns]
    if missing:
        raise InputError(
            f"{source}: not a kwa_batch results file (no {' or '.join(missing)} column)"
        )


def _read_xlsx(source: Path) -> pd.DataFrame:
    from openpyxl import load_workbook

    try:
        book = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a bad file
        raise InputError(f"{source}: is not a readable .xlsx workbook ({exc})") from None
    if "Results" not in book.sheetnames:
        book.close()
        raise InputError(f"{source}: has no 'Results' sheet: not a kwa_batch results workbook")
    rows = list(book["Results"].iter_rows(values_only=True))
    run: dict[str, str] = {}
    if "Summary" in book.sheetnames:
        in_run = False
        for values in book["Summary"].iter_rows(values_only=True):
            if values and values[0] == "run":
                in_run = True
            elif in_run and values and values[0] not in (None, "times"):
                run[str(values[0])] = "" if values[1] is None else str(values[1])
    book.close()
    if not rows:
        raise InputError(f"{source}: the Results sheet is empty")
    header = [str(h) for h in rows[0] if h is not None]
    width = len(header)
    body = [(list(r) + [None] * width)[:width] for r in rows[1:]]
    frame = pd.DataFrame(body, columns=header, dtype="object")
    frame.attrs["run"] = run
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if name in _TYPES:
            out[name] = pd.to_numeric(column, errors="coerce").astype(_TYPES[name])
        elif name == "sent_at":
            out[name] = pd.to_datetime(column, utc=True, format="mixed").astype(
                "datetime64[us, UTC]"
            )
        elif name == "from_journal":
            out[name] = column.map(lambda v: str(v).lower() in ("true", "1")).astype("bool")
        else:
            out[name] = column.map(lambda v: v if v is None or isinstance(v, str) else _text(v))
            out[name] = out[name].astype("str")
    return out


def _text(value: object) -> str | None:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
