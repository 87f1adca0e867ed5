"""Results to files people open in Excel or LibreOffice, and back: xlsx, csv, parquet.

- ``.xlsx``: a ``Results`` sheet (one row per input row, the input's own columns alongside
  the outcome when ``data=`` is passed), a ``Summary`` sheet (counts by status and by error
  code, when and how the run happened — never the key) and an ``Errors`` sheet (every row
  that was not sent, with the fix). Every text is written as text — phone numbers keep
  their ``+`` and digits, ids are never turned into numbers — and no cell is ever a
  formula, whatever the data holds. Times are written in UTC (Excel has no time zones)
  and their headers say so (``sent_at (UTC)``); the file's ``line`` comes first; the
  input's own numeric columns (an amount) are written as numbers, those whose name says
  they identify something (``order_id``, ``pincode``, a phone) stay text. The header is
  frozen, with an autofilter and column widths that fit; every sheet prints landscape, one
  page wide, the header repeated on each page. Once receipts are merged, the Summary has a
  delivery block. The run's outcome (:class:`kwa_batch.RunOutcome`) is on the Summary in
  plain words, and on the last sheet, ``Run``, as data (one fact a row, its value as JSON).
- ``.csv``: UTF-8 with a BOM (so Excel shows accents and emoji), formula-safe by the one
  rule of :mod:`kwa_batch.tables` (OWASP's): a text cell a spreadsheet would compute gets a
  leading ``'`` (a body ``-2+3``, an error message, a ``ref``, the input's own columns),
  while phone numbers as written (``to``, ``from`` and the input's columns named like a
  phone) and single numbers (``-5``) stay as written, so ``load_recipients`` reads the file
  back to the same numbers. Spreadsheets that open a CSV drop the ``+`` of phone numbers:
  for people, prefer ``.xlsx``, where every string is typed text, so nothing needs a ``'``.
  The run's outcome goes beside it, in ``<file>.run.json`` (a CSV has no place for it).
- ``.parquet`` (pyarrow): every column with its type, for the next program; the run's
  outcome in the file's metadata (``kwa_batch.run``, JSON).

:func:`load_results` reads any of them back into a results DataFrame, with its outcome in
``attrs["run"]``: the one written, counted again from the file's rows (or, for a file
without one, the outcome its rows say).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError, KwaBatchError, describe_code
from .loading.recipients import check_regular_file
from .outcome import RunOutcome
from .results import (
    RESULT_DTYPES,
    STATUSES,
    Status,
    coerce_results,
    delivery_counts,
    error_counts,
    summarize,
)
from .tables import Sheet, atomic_write, plain, write_csv, write_xlsx

__all__ = ["FORMATS", "export_results", "load_results", "outcome_path"]

FORMATS = (".xlsx", ".csv", ".parquet")
_NOT_SENT = tuple(s for s in STATUSES if s != Status.SENT)
_RUN_KEY = b"kwa_batch.run"
#: The sheet holding the run's outcome as data (after Results, Summary and Errors).
RUN_SHEET = "Run"
#: Appended to the header of every time column: spreadsheets have no time zones.
UTC_MARK = " (UTC)"
# An input column whose name says it identifies something stays text even when it is all
# digits (order ids, phone numbers, postcodes keep their leading zeros and their length).
_ID_LIKE = re.compile(
    r"(?:^|[^a-z])(?:id|ids|no|nr|num|number|phone|mobile|msisdn|whatsapp|tel|code|zip|pin|"
    r"pincode|zipcode|postcode|postal|account|ref\d?|sku|iban|ean|upc)(?:$|[^a-z])",
    re.IGNORECASE,
)
# A plain decimal number as people type amounts: no leading zero, no exponent, not too long
# to stay exact in a spreadsheet (15 significant digits).
_PLAIN_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,10})?"


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
    frame, user_columns = _with_input(results, data)
    if suffix == ".xlsx":
        _write_xlsx(_for_people(frame, user_columns), results, target)
    elif suffix == ".csv":
        write_csv(plain(_for_people(frame, ())), target, date_format="%Y-%m-%d %H:%M:%S.%f")
        _write_outcome_beside(target, _outcome(results))
    else:
        _write_parquet(frame, target)
    return target


# The columns a reader needs first (and on paper); long texts and technical ones go last
# (in the file, off the printed page).
_READING_ORDER = ("line", "status", "to", "error_code", "error_message", "message_id", "sent_at")
_LONG = ("to_as_written", "body", "params", "callback_url")
_TECHNICAL = ("http_status", "attempts", "request_id", "recipients", "from_journal")
_OFF_PAPER = (*_LONG, *_TECHNICAL)


def _for_people(frame: pd.DataFrame, user_columns: tuple[str, ...]) -> pd.DataFrame:
    """The frame as a colleague reads it: the outcome first (line, to, status, the error,
    the message id, the time), then the user's own columns, then the technical ones; time
    columns marked UTC, and the user's numeric columns as numbers (so they can be summed)."""
    first = [c for c in _READING_ORDER if c in frame.columns]
    last = [c for c in _OFF_PAPER if c in frame.columns]
    middle = [c for c in frame.columns if c not in first and c not in last]
    out = frame[[*first, *middle, *last]].copy()
    out.attrs = dict(frame.attrs)
    for name in user_columns:
        if _ID_LIKE.search(str(name)):
            continue
        text = out[name].astype("string")
        filled = text.dropna().str.strip()
        if len(filled) and bool(filled.str.fullmatch(_PLAIN_NUMBER).all()):
            out[name] = pd.to_numeric(text.str.strip(), errors="coerce")
    times = [c for c in out.columns if isinstance(out[c].dtype, pd.DatetimeTZDtype)]
    return out.rename(columns={c: f"{c}{UTC_MARK}" for c in times})


def _with_input(
    results: pd.DataFrame, data: pd.DataFrame | None
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The results with the input's own columns beside them (and which those are)."""
    if data is None:
        return results, ()
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
    return combined, tuple(c for c in extra.columns if c != "to_as_written")


def _write_parquet(frame: pd.DataFrame, target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    outcome = _outcome(frame)
    frame = frame.copy(deep=False)  # pandas' own metadata keeps attrs as JSON: not the outcome
    frame.attrs = {key: value for key, value in frame.attrs.items() if key != "run"}
    table = pa.Table.from_pandas(frame, preserve_index=True)
    metadata = dict(table.schema.metadata or {})
    metadata[_RUN_KEY] = _as_json(outcome).encode()
    table = table.replace_schema_metadata(metadata)
    atomic_write(target, lambda path: pq.write_table(table, path))


def _write_xlsx(frame: pd.DataFrame, results: pd.DataFrame, target: Path) -> None:
    table = plain(frame)
    errors = table[table["status"].isin(_NOT_SENT)].copy()
    fixes = [describe_code(c) if isinstance(c, str) else "" for c in errors["error_code"]]
    errors.insert(list(errors.columns).index("error_message") + 1, "fix", fixes)
    printed = _printed(table)
    write_xlsx(
        target,
        [
            Sheet("Results", table, printed=printed),
            _summary_sheet(results),
            Sheet("Errors", errors, printed=_printed(errors)),
            _run_sheet(_outcome(results)),
        ],
    )


def _outcome(results: pd.DataFrame) -> RunOutcome:
    """The run's outcome the results carry, or the one their rows say."""
    found = results.attrs.get("run")
    return found if isinstance(found, RunOutcome) else RunOutcome.of(results)


def _as_json(outcome: RunOutcome) -> str:
    return json.dumps(outcome.to_dict(), default=str, ensure_ascii=False)


def outcome_path(results_file: str | Path) -> Path:
    """Where the outcome of a ``.csv`` results file is kept: ``<file>.run.json`` beside it."""
    path = Path(results_file)
    return path.with_name(f"{path.name}.run.json")


def _write_outcome_beside(target: Path, outcome: RunOutcome) -> None:
    text = json.dumps(outcome.to_dict(), default=str, ensure_ascii=False, indent=2) + "\n"

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    atomic_write(outcome_path(target), write)


def _run_sheet(outcome: RunOutcome) -> Sheet:
    """The outcome as data: one fact a row, its value as JSON (read by :func:`load_results`)."""
    rows: list[list[Any]] = [["fact", "value (JSON)"]]
    rows += [[key, json.dumps(value, default=str)] for key, value in outcome.to_dict().items()]
    return Sheet(RUN_SHEET, rows=rows, bold={0}, widths=(22, 100))


def _printed(table: pd.DataFrame) -> int:
    """How many first columns go on paper: those before the long texts and the technical
    columns (see :func:`_for_people`'s order)."""
    columns = list(table.columns)
    off_paper = [i for i, c in enumerate(columns) if c in _OFF_PAPER]
    return off_paper[0] if off_paper else len(columns)


def _summary_sheet(results: pd.DataFrame) -> Sheet:
    counts = summarize(results)
    rows: list[list[Any]] = [["status", "rows", "share"]]
    rows += [[status, int(r["rows"]), r["percent"] / 100] for status, r in counts.iterrows()]
    rows.append(["total", len(results), 1.0 if len(results) else 0.0])
    shares = {(number, 2): "0.0%" for number in range(1, len(rows))}
    rows.append([])
    bold = {0, len(rows)}
    rows.append(["status", "error_code", "rows", "meaning and fix"])
    for row in error_counts(results).itertuples(index=False):
        rows.append([row.status, row.error_code, int(row.rows), describe_code(row.error_code)])
    if "delivery_status" in results.columns:  # receipts were merged: what became of the sent
        rows.append([])
        bold.add(len(rows))
        rows.append(["delivery", "rows", "share"])
        counts = delivery_counts(results)
        total = max(int(counts.sum()), 1)
        for status, count in counts.items():
            shares[(len(rows), 2)] = "0.0%"
            rows.append([status, int(count), int(count) / total])
    estimate = results.attrs.get("estimate")
    if estimate:  # issue #13: kwa_batch.estimate()'s summary, e.g. set by send --rate-card
        rows.append([])
        bold.add(len(rows))
        rows.append(["estimate", "value"])
        for key, value in estimate.items():
            shown = (
                ", ".join(f"{k}: {v}" for k, v in value.items())
                if isinstance(value, dict)
                else value
            )
            rows.append([key, shown])
    rows.append([])
    bold.add(len(rows))
    rows.append(["the run", ""])
    rows += [[label, value] for label, value in _outcome(results).in_words()]
    rows.append(["exported", f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"])
    return Sheet("Summary", rows=rows, bold=bold, formats=shares, widths=(24, 22, 10, 100))


def load_results(path: str | Path) -> pd.DataFrame:
    """Read an exported results file (``.xlsx``, ``.csv`` or ``.parquet``) back.

    Returns:
        A results DataFrame indexed as the original (by input row), with the contract's
        dtypes: text as strings, ``http_status``/``attempts`` as nullable integers,
        ``sent_at`` as UTC timestamps. CSV cells neutralised against formulas keep their
        leading ``'``. ``attrs["run"]`` holds the run's :class:`~kwa_batch.RunOutcome`,
        counted from the file's rows: the run's facts as written with the file (a CSV's in
        ``<file>.run.json`` beside it), or none when there are none (then only the rows
        say the outcome).

    Raises:
        InputError: the file is missing or is not a results file.
    """
    source = Path(path)
    check_regular_file(source)  # no FIFO, device or folder: one line, at once
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(source)
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise InputError(f"{source}: is not a readable parquet file ({exc})") from None
        frame = table.to_pandas()
        raw = (table.schema.metadata or {}).get(_RUN_KEY)
        _check_results(source, frame.columns)
        frame.attrs["run"] = _read_outcome(source, json.loads(raw) if raw else None, frame)
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
        frame.attrs["run"] = _read_beside(source)
    else:
        raise InputError(f"{source}: not a results file: use a .xlsx, .csv or .parquet file")
    frame.columns = [
        c[: -len(UTC_MARK)] if isinstance(c, str) and c.endswith(UTC_MARK) else c
        for c in frame.columns
    ]
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
    # The result columns back in the contract's order, the input's own after them.
    ours = [c for c in RESULT_DTYPES if c in frame.columns]
    frame = frame[[*ours, *(c for c in frame.columns if c not in RESULT_DTYPES)]]
    typed = coerce_results(frame)
    typed.attrs["run"] = _read_outcome(source, run, typed)
    return typed


def _read_outcome(source: Path, stored: Any, results: pd.DataFrame) -> RunOutcome:
    """The outcome stored with a results file, counted from its rows; the rows' own when
    none was stored."""
    if stored is None:
        return RunOutcome.of(results)
    if not isinstance(stored, Mapping):
        raise InputError(f"{source}: the run's outcome stored with it is not readable")
    try:
        return RunOutcome.from_dict(stored, results)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{source}: the run's outcome stored with it is not readable ({exc})"
        ) from None


def _read_beside(source: Path) -> Any:
    """The outcome stored beside a ``.csv`` results file (None when there is none)."""
    beside = outcome_path(source)
    if not beside.is_file():
        return None
    try:
        return json.loads(beside.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{beside}: is not readable ({exc}): delete it to read the results alone"
        ) from None


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
    run: dict[str, Any] | None = None
    if RUN_SHEET in book.sheetnames:
        run = {}
        for values in list(book[RUN_SHEET].iter_rows(values_only=True))[1:]:
            if values and isinstance(values[0], str) and len(values) > 1:
                try:
                    run[values[0]] = json.loads(str(values[1]))
                except ValueError:
                    raise InputError(
                        f"{source}: the {RUN_SHEET!r} sheet's {values[0]!r} is not readable: "
                        f"{values[1]!r}"
                    ) from None
    book.close()
    if not rows:
        raise InputError(f"{source}: the Results sheet is empty")
    header = [str(h) for h in rows[0] if h is not None]
    width = len(header)
    body = [(list(r) + [None] * width)[:width] for r in rows[1:]]
    frame = pd.DataFrame(body, columns=header, dtype="object")
    frame.attrs["run"] = run
    return frame
