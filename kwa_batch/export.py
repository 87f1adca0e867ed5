"""Results to files people open in Excel or LibreOffice, and back: xlsx, csv, parquet.

- ``.xlsx``: a ``Results`` sheet (one row per input row: the outcome first — the file's
  ``line``, status, number, error and its ``fix`` — then the input's own columns when
  ``data=`` is passed, then the message's and the technical ones; the 0-based row last,
  hidden), a ``Summary`` sheet (the run in plain words — what was sent, what was not and
  why, what to do next — then counts by status and by error code; the run's facts for
  support below, off paper — never the key) and an ``Errors`` sheet (every row that was
  not sent, with the fix). Every text is written as text — phone numbers keep their ``+``
  and digits, ids are never turned into numbers — and no cell is ever a formula, whatever
  the data holds. Times are written in UTC (Excel has no time zones) and their headers
  say so (``sent_at (UTC)``); the input's own numeric columns (an amount) are written as
  numbers, those whose name says they identify something (``order_id``, ``pincode``, a
  phone) stay text. Printed (see :class:`kwa_batch.tables.Sheet`): landscape, one page
  wide at a readable size, long texts wrapped, the header on each page. Once receipts are
  merged, the Summary has a delivery block; run facts keep their type. The run's outcome
  (:class:`kwa_batch.RunOutcome`) is also on the last sheet, ``Run``, as data (one fact a
  row, its value as JSON): what :func:`load_results` reads back.
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

import contextlib
import json
import os
import re
import tempfile
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .actions import describe, meaning_of
from .campaign_funnel import campaign_rows, count_funnel
from .costing import COST_COLUMNS, rate_card, template_catalogue
from .errors import InputError, KwaBatchError
from .fields import MAX_RECIPIENTS_PER_REQUEST, MESSAGE_COLUMNS
from .loading.recipients import check_regular_file
from .outcome import DERIVED_FIELDS, RunOutcome
from .receipts.store import CallbackStore
from .results import (
    DELIVERY_COLUMNS,
    RESULT_DTYPES,
    STATUSES,
    Status,
    coerce_results,
    delivery_counts,
    error_counts,
    summarize,
)
from .tables import Sheet, append_csv, atomic_write, plain, write_csv, write_xlsx

__all__ = [
    "FORMATS",
    "FUNNEL_SHEET",
    "PART_FORMATS",
    "ResultsWriter",
    "export_results",
    "load_results",
    "outcome_path",
]

FORMATS = (".xlsx", ".csv", ".parquet")
#: The formats results can be written in part by part (:class:`ResultsWriter`).
PART_FORMATS = (".parquet", ".csv")
#: The most rows a worksheet holds (Excel's limit, the header's row included).
SHEET_ROWS = 1_048_576
# The Errors sheet's rows: a holdout row was kept back on purpose, no error.
_NOT_SENT = tuple(s for s in STATUSES if s not in (Status.SENT, Status.HOLDOUT))
_RUN_KEY = b"kwa_batch.run"
#: The sheet holding the run's outcome as data (after Results, Summary and Errors).
RUN_SHEET = "Run"
#: The sheet of the campaign's funnel (:func:`kwa_batch.funnel`), when receipts are given.
FUNNEL_SHEET = "Funnel"
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
    results: pd.DataFrame,
    path: str | Path,
    *,
    data: pd.DataFrame | None = None,
    receipts: str | Path | CallbackStore | None = None,
    rates: str | Path | pd.DataFrame | None = None,
    templates: Any = None,
) -> Path:
    """Write ``results`` to ``path``; the format follows the extension.

    Args:
        results: the frame returned by :func:`kwa_batch.send`.
        path: a ``.xlsx``, ``.csv`` or ``.parquet`` file; parent folders must exist.
        data: the input frame, to write its own columns (names, order ids…) next to each
            outcome; joined on the index. Its ``to`` becomes ``to_as_written``.
        receipts: a callback store: each row gets its delivery columns
            (:func:`kwa_batch.merge_receipts`) and its ``cost``, ``estimated_cost`` and
            ``cost_note`` (:func:`kwa_batch.costs`), and a workbook gets a ``Funnel`` sheet
            (:func:`kwa_batch.funnel`, per template, per country and in total).
        rates: the rate card, with ``receipts``: prices v2 callbacks and the estimate.
        templates: the template catalogue, with ``receipts``: the estimate's categories.

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
    funnel: pd.DataFrame | None = None
    if receipts is not None:
        rows = campaign_rows(frame, receipts, rate_card(rates), template_catalogue(templates))
        funnel = count_funnel(rows, ("template", "country"))
        frame = rows.drop(columns="replied")
        results = frame[
            [c for c in results.columns if c in frame.columns]
            + [c for c in (*DELIVERY_COLUMNS, *COST_COLUMNS) if c not in results.columns]
        ]
    elif rates is not None or templates is not None:
        raise KwaBatchError(
            "rates= and templates= price the receipts: give receipts= (the callback store) too"
        )
    if suffix == ".xlsx":
        _write_xlsx(_for_people(frame, user_columns), results, target, funnel)
    elif suffix == ".csv":
        write_csv(plain(_for_people(frame, ())), target, date_format="%Y-%m-%d %H:%M:%S.%f")
        _write_outcome_beside(target, _outcome(results))
    else:
        _write_parquet(frame, target)
    return target


#: The column beside ``error_message`` (Results and Errors sheets) that says what the error
#: code means and how to fix it; derived from ``error_code``, so not read back.
FIX = "fix"
# A reader's order (issue #18): the outcome first (the file's line, the status, the number,
# the error and what to do), then the customer's own columns (those kwa_batch does not know,
# then the refs), then the message as the file specified it, then the technical columns
# (ids, times, counts); the frame's index (the 0-based row) last and hidden: load_results
# needs it, a reader has ``line``.
_OUTCOME = (
    "line", "status", "delivery_status", "to", "error_code", "error_message", FIX,
    "delivery_error_code", "action", "reason", "cost", "estimated_cost",
)  # fmt: skip
_REFS = ("ref", "ref1", "ref2")
_MESSAGE = (*(c for c in MESSAGE_COLUMNS if c not in _REFS), "to_as_written")
_TECHNICAL = (
    "cost_note", "message_id", "sent_at", "delivered_at", "read_at", "http_status", "attempts",
    "request_id", "recipients", "from_journal", "sender",
)  # fmt: skip
# Long texts, wrapped within their column.
_LONG_TEXT = ("error_message", FIX, "reason", "body", "caption", "cost_note")


def _for_people(frame: pd.DataFrame, user_columns: tuple[str, ...]) -> pd.DataFrame:
    """The frame as a colleague reads it (see the order above); time columns marked UTC,
    and the user's numeric columns as numbers (so they can be summed)."""
    known = {*_OUTCOME, *_REFS, *_MESSAGE, *_TECHNICAL}
    order = [
        *(c for c in _OUTCOME if c in frame.columns),
        *(c for c in frame.columns if c not in known),
        *(c for c in _REFS if c in frame.columns),
        *(c for c in _MESSAGE if c in frame.columns),
        *(c for c in _TECHNICAL if c in frame.columns),
    ]
    out = frame[order].copy()
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


def _fixes(codes: pd.Series) -> pd.Series:
    """What each row's error code means and how to fix it (empty without a code)."""
    meanings = {c: describe(c) for c in codes.dropna().unique()}
    return pd.Series(
        [meanings.get(c, "") if isinstance(c, str) else "" for c in codes],
        index=codes.index,
        dtype="str",
    )


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


def _write_xlsx(
    frame: pd.DataFrame, results: pd.DataFrame, target: Path, funnel: pd.DataFrame | None
) -> None:
    table = frame
    if FIX not in table.columns:  # a customer's own "fix" column is theirs: kept, not ours
        table = table.copy()
        where = list(table.columns).index("error_message") + 1
        table.insert(where, FIX, _fixes(table["error_code"]))
    index = str(table.index.name) if table.index.name is not None else "row"
    table = plain(table, index)
    table = table[[*table.columns[1:], index]]  # the 0-based row last, hidden
    errors = table[table["status"].isin(_NOT_SENT)]
    printed = _printed(table)
    wrap = [c for c in _LONG_TEXT if c in table.columns]
    sheets = [
        Sheet("Results", table, printed=printed, wrap=wrap, hidden=[index]),
        _summary_sheet(results),
        Sheet("Errors", errors, printed=printed, wrap=wrap, hidden=[index]),
    ]
    if funnel is not None:
        sheets.append(Sheet(FUNNEL_SHEET, funnel.reset_index(), wrap=["cost_note"]))
    write_xlsx(target, [*sheets, _run_sheet(_outcome(results))])


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
    return Sheet(RUN_SHEET, rows=rows, bold={0}, widths=(22, 100), for_machines=True)


def _facts(outcome: RunOutcome) -> dict[str, Any]:
    """The outcome's facts as one flat mapping for the Summary: the settings, then the
    rest (times in ISO 8601), with the ``not_sent`` rows a later run still sends."""
    facts = {**outcome.settings}
    for key, value in outcome.to_dict().items():
        if key not in ("format", "settings", "counts", "rows", "next_step"):
            facts[key] = value
    facts["pending"] = outcome.pending
    return facts


def _printed(table: pd.DataFrame) -> int:
    """How many first columns go on paper: the outcome's and the customer's own, up to the
    message's and the technical ones (the writer stops sooner when the page is full)."""
    later = {*_MESSAGE, *_TECHNICAL, *(f"{c}{UTC_MARK}" for c in _TECHNICAL)}
    columns = list(table.columns)
    return next((i for i, c in enumerate(columns) if c in later), len(columns))


def _summary_sheet(results: pd.DataFrame) -> Sheet:
    """Counts by status and by error code (with the fix), the delivery and the estimate
    when known, the run in plain words, and the run's facts for support (off paper: what
    :func:`load_results` reads back)."""
    counts = summarize(results)
    rows: list[list[Any]] = [["Summary", f"{len(results):,} rows"]]
    bold = {0}
    outcome = _outcome(results)
    run = _facts(outcome)
    run["exported_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    by_status = {str(status): int(r["rows"]) for status, r in counts.iterrows()}
    for heading, paragraphs in _run_in_words(run, by_status, outcome.steps()):
        rows.append([])
        bold.add(len(rows))
        rows.append([heading])
        for paragraph in paragraphs:
            rows += [[line] for line in textwrap.wrap(paragraph, _SUMMARY_LINE)]
    rows.append([])
    bold.add(len(rows))
    rows.append(["status", "rows", "share"])
    shares = {}
    for status, r in counts.iterrows():
        shares[(len(rows), 2)] = "0.0%"
        rows.append([status, int(r["rows"]), r["percent"] / 100])
    shares[(len(rows), 2)] = "0.0%"
    rows.append(["total", len(results), 1.0 if len(results) else 0.0])
    rows.append([])
    bold.add(len(rows))
    rows.append(["status", "error_code", "rows", "meaning and fix"])
    for row in error_counts(results).itertuples(index=False):
        rows.append([row.status, row.error_code, int(row.rows), describe(row.error_code)])
    if "delivery_status" in results.columns:  # receipts were merged: what became of the sent
        rows.append([])
        bold.add(len(rows))
        rows.append(["delivery", "rows", "share"])
        delivered = delivery_counts(results)
        total = max(int(delivered.sum()), 1)
        for status, count in delivered.items():
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
    printed = len(rows)
    rows.append([])
    bold.add(len(rows))
    rows.append(["run", "value"])  # the facts as stored, for support and load_results
    rows.append(["times", "UTC"])
    for key, value in run.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif not isinstance(value, bool | int | float) and value is not None:
            value = str(value)  # numbers and yes/no stay typed: a colleague can use them
        rows.append([key, value])
    return Sheet(
        "Summary", rows=rows, bold=bold, formats=shares, widths=(24, 14, 8, 70), wrap=[3],
        printed=printed,
    )  # fmt: skip


# The characters of a line of plain words on the Summary: as wide as its four columns.
_SUMMARY_LINE = 110


def _run_in_words(
    run: Mapping[str, Any], statuses: Mapping[str, int], steps: list[str]
) -> list[tuple[str, list[str]]]:
    """The run for an operations person, in plain words: what was sent, what was not and
    why, what to do next, and how the run went (the Summary sheet's top).

    Args:
        run: the run's facts (``results.attrs["run"]``; any of them may be missing, or be
            text when read back from a file).
        statuses: rows by status.
        steps: what to do next (:meth:`RunOutcome.steps`).

    Returns:
        ``(heading, paragraphs)`` pairs.
    """
    total = sum(statuses.values())
    sent = statuses.get(Status.SENT, 0)
    held = statuses.get(Status.HOLDOUT, 0)
    left = {s: n for s, n in statuses.items() if s not in (Status.SENT, Status.HOLDOUT) and n}
    happened = [f"{sent:,} of {total:,} rows were sent ({Status.SENT.meaning})."]
    if held:
        happened.append(f"{held:,} were the experiment's holdout ({Status.HOLDOUT.meaning}).")
    if left:
        parts = [f"{n:,} {s} ({Status(s).meaning})" for s, n in left.items()]
        happened.append(
            f"{sum(left.values()):,} were not: {'; '.join(parts)}. Each reason and its fix "
            "are in the table below and, row by row, on the Errors sheet."
        )
    stopped = run.get("stopped_by")
    if stopped:
        how = "interrupted (Ctrl-C)" if stopped == "SIGINT" else f"stopped by {stopped}"
        happened.append(f"The run was {how} before it finished.")
    for problem in ("journal_error", "export_error"):
        if run.get(problem):
            happened.append(f"Problem: {run[problem]}.")
    return [
        ("What happened", happened),
        ("What to do next", steps),
        ("How the run went", _how_it_ran(run)),
    ]


def _how_it_ran(run: Mapping[str, Any]) -> list[str]:
    lines = []
    if run.get("source"):
        lines.append(f"Input: {run['source']}.")
    if run.get("started_at"):
        finished = f", finished {_when(run['finished_at'])}" if run.get("finished_at") else ""
        lines.append(f"Started {_when(run['started_at'])}{finished}.")
    if run.get("base_url"):
        account = f" (account {run['sid']})" if run.get("sid") else ""
        lines.append(f"Sent to {run['base_url']}{account}.")
    rate, group = run.get("rate_limit"), run.get("max_recipients_per_request")
    if isinstance(rate, int | float) and rate:
        pace = f"Pace: at most {rate:g} messages a second"
        if isinstance(group, int) and group < MAX_RECIPIENTS_PER_REQUEST:
            pace += (
                f", up to {group} recipients per request (Kaleyra takes up to "
                f"{MAX_RECIPIENTS_PER_REQUEST}; {group} fill each second evenly at this pace)"
            )
        lines.append(pace + ".")
    pacing = run.get("pacing")
    if isinstance(pacing, Mapping) and pacing.get("throttles"):
        lowest = pacing.get("lowest_rate")
        slowed = f", down to {lowest:g} messages a second" if lowest else ""
        lines.append(
            f"Kaleyra asked to slow down {pacing['throttles']} time(s) (HTTP 429): the run "
            f"slowed{slowed}."
        )
    resume = run.get("resume")
    if isinstance(resume, Mapping) and resume.get("already sent"):
        lines.append(
            f"The journal had {resume['already sent']:,} row(s) sent by an earlier run: "
            "they were not sent again."
        )
    held = run.get("held")
    if isinstance(held, Mapping) and held:
        parts = [
            f"{n:,} {code}" + (f" ({meaning})" if (meaning := meaning_of(code)) else "")
            for code, n in held.items()
        ]
        lines.append(f"Held back by the schedule or the limits: {'; '.join(parts)}.")
    if isinstance(run.get("max_attempts"), int):
        lines.append(f"Each request was tried up to {run['max_attempts']} time(s).")
    if "journal" in run:
        lines.append(
            f"Journal: {run['journal']} (the same command again sends only what is left)."
            if run["journal"]
            else "Journal: none (the same command again would send every row again)."
        )
    if run.get("exported_at"):
        lines.append(f"This file was written {_when(run['exported_at'])}.")
    return lines


def _when(moment: Any) -> str:
    """An ISO 8601 time as people read it: ``2026-12-06 01:31:19 UTC``."""
    try:
        parsed = datetime.fromisoformat(str(moment))
    except ValueError:
        return str(moment)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return f"{parsed:%Y-%m-%d %H:%M:%S} UTC"


class ResultsWriter:
    """Results written part by part, as a run settles them: for a file sent in parts
    (:func:`kwa_batch.send_file`), so that no frame of every result is ever held.

    ``.parquet``: one row group per part, with the columns and types
    :func:`export_results` writes (the input's own columns beside the results, the index
    the file's 0-based row); ``.csv``: the rows appended as :func:`export_results` writes
    them. The file is written under a temporary name beside the target and takes its name
    at :meth:`close`, with the run's outcome (the parquet file's metadata, or
    ``<file>.run.json`` beside a CSV), so :func:`load_results` and ``kwa-batch report``
    read it as any results file; a run killed before it leaves no half file at the target.

    Raises:
        KwaBatchError: the target is a workbook (a worksheet holds at most 1,048,576 rows:
            write .parquet or .csv), another format, or cannot be written.

    Example:
        >>> with ResultsWriter("results.parquet") as out:  # doctest: +SKIP
        ...     for results, data in parts:
        ...         out.write(results, data)
        ...     out.close(outcome)
    """

    def __init__(self, path: str | Path) -> None:
        self.target = Path(path)
        suffix = self.target.suffix.lower()
        if suffix in (".xlsx", ".xlsm"):
            raise KwaBatchError(
                f"{self.target.name}: results written part by part go to .parquet or .csv, not "
                f"a workbook (a worksheet holds at most {SHEET_ROWS:,} rows): use --out "
                f"{self.target.with_suffix('.parquet').name} (or .csv)"
            )
        if suffix not in PART_FORMATS:
            raise KwaBatchError(
                f"cannot write results to {self.target.name!r} part by part: use a .parquet "
                "or .csv file name"
            )
        folder = self.target.parent if str(self.target.parent) else Path(".")
        try:
            handle, name = tempfile.mkstemp(
                prefix=f".{self.target.name}.", suffix=".partial", dir=folder
            )
        except OSError as exc:
            raise KwaBatchError(f"cannot write {self.target}: {exc.strerror or exc}") from None
        os.close(handle)
        self._temporary = Path(name)
        self._parquet: Any = None
        self._schema: Any = None
        self._csv: Any = None
        self.rows = 0

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, results: pd.DataFrame, data: pd.DataFrame | None = None) -> None:
        """Append one part's results (with ``data``, the part's input, beside them)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame, _ = _with_input(results, data)
        frame = frame.copy(deep=False)
        frame.attrs = {}
        try:
            if self.target.suffix.lower() == ".csv":
                if self._csv is None:
                    self._csv = open(self._temporary, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
                append_csv(
                    plain(_for_people(frame, ())),
                    self._csv,
                    header=self.rows == 0,
                    date_format="%Y-%m-%d %H:%M:%S.%f",
                )
            else:
                table = pa.Table.from_pandas(frame, preserve_index=True)
                if self._parquet is None:
                    self._schema = table.schema
                    self._parquet = pq.ParquetWriter(self._temporary, self._schema)
                else:
                    table = table.cast(self._schema)
                self._parquet.write_table(table, row_group_size=max(len(table), 1))
        except OSError as exc:
            raise KwaBatchError(f"cannot write {self.target}: {exc.strerror or exc}") from None
        self.rows += len(frame)

    def close(self, outcome: RunOutcome) -> Path:
        """Finish the file with the run's ``outcome`` and give it its name."""
        try:
            if self._parquet is not None:
                self._parquet.add_key_value_metadata({_RUN_KEY: _as_json(outcome).encode()})
                self._parquet.close()
                self._parquet = None
            if self._csv is not None:
                self._csv.close()
                self._csv = None
            with open(self._temporary, "rb+") as done:
                os.fsync(done.fileno())
            os.replace(self._temporary, self.target)
        except OSError as exc:
            raise KwaBatchError(f"cannot write {self.target}: {exc.strerror or exc}") from None
        if self.target.suffix.lower() == ".csv":
            _write_outcome_beside(self.target, outcome)
        return self.target

    def abort(self) -> None:
        """Drop what was written (nothing when :meth:`close` gave the file its name)."""
        for handle in (self._parquet, self._csv):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._parquet = self._csv = None
        with contextlib.suppress(OSError):
            self._temporary.unlink()


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
    # Written since issue #18, a workbook starts with the outcome and ends with the index
    # (hidden); earlier ones, and every CSV, start with it.
    index_name = frame.columns[-1] if frame.columns[0] in RESULT_DTYPES else frame.columns[0]
    if _derived_fix(frame):
        frame = frame.drop(columns=FIX)
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


def _derived_fix(frame: pd.DataFrame) -> bool:
    """Whether the frame's ``fix`` column is the one the export derives from the error
    codes (not the customer's own column of that name)."""
    if FIX not in frame.columns or "error_code" not in frame.columns:
        return False
    written = frame[FIX].astype("str").fillna("")
    return bool((written == _fixes(frame["error_code"].astype("str"))).all())


# The facts a Summary's "run" block shows as text (times) that the outcome reads back from
# it; its other facts are the settings, or shown only (mappings written as "key: value").
_SCALAR_FACTS = ("started_at", "finished_at", "stopped_by", "headline", "journal_error",
                 "export_error")  # fmt: skip
_SHOWN_ONLY = ("times", "interrupted", "exported_at", "resume", "held", "pacing", "pending",
               *DERIVED_FIELDS, "exit_code")  # fmt: skip


def _facts_on_summary(sheet: Any) -> dict[str, Any] | None:
    """The run's facts from the "run" block of a Summary sheet (the only place earlier
    versions kept them), as :meth:`RunOutcome.from_dict` reads them; None without one."""
    found: dict[str, Any] | None = None
    for values in sheet.iter_rows(values_only=True):
        if values and values[0] == "run":
            found = {}
        elif found is not None and values and values[0] is not None:
            found[str(values[0])] = values[1] if len(values) > 1 else None
    if found is None:
        return None
    facts: dict[str, Any] = {k: found[k] for k in _SCALAR_FACTS if k in found}
    skipped = {*_SCALAR_FACTS, *_SHOWN_ONLY}
    facts["settings"] = {k: v for k, v in found.items() if k not in skipped}
    return facts


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
    if RUN_SHEET not in book.sheetnames and "Summary" in book.sheetnames:
        run = _facts_on_summary(book["Summary"])  # a workbook without a Run sheet
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
