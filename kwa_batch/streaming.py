"""``send_file()``: a recipient file larger than memory, sent in parts.

:func:`kwa_batch.send` holds the whole file, its validation and its results in memory
(about a gigabyte for a million rows). :func:`send_file` keeps one part in memory at a
time, whatever the file's size:

1. the file is read once whole, part by part, and refused before anything is sent if
   :func:`kwa_batch.load_recipients` would refuse it
   (:class:`~kwa_batch.loading.recipients.RecipientParts`: the same reader, the same
   columns and cells, each row's line the file's);
2. each part of ``chunk_rows`` rows is validated as :func:`kwa_batch.validate` validates a
   frame, with the rows of the earlier parts remembered for the duplicate rule
   (:class:`~kwa_batch.validation.duplicates.EarlierMessages`: a repeat in a later part is
   ``KWA007``, naming the earlier line);
3. it is sent by :func:`kwa_batch.send`, with the one journal of the campaign (resume after
   a stop or a crash sends nothing twice; the daily limit and the expiry count every part,
   since they read the journal), the same pacing, schedule, retries and receipts watch;
4. its results are appended to ``out`` (:class:`~kwa_batch.export.ResultsWriter`: a
   ``.parquet`` row group or ``.csv`` rows, the columns of :func:`kwa_batch.export_results`
   with the input's own), and forgotten.

Every input row gets exactly one result. A stop (Ctrl-C, SIGTERM, SIGHUP, or a part
stopped by a refused key, the other API version, a stop callback or an unwritable
journal) sends nothing more: the rows of the parts not sent yet are written ``not_sent``
(``NOTSENT``) without being validated, and the same call (the same command, with its
journal) sends them later. The per-recipient spacing holds within a part; the parts go
one after another.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import Code, ConfigurationError
from .export import ResultsWriter
from .loading.recipients import RecipientParts, line_numbers
from .outcome import RunOutcome
from .results import ResultsBuilder, Status
from .sending.client import KaleyraClient
from .sending.pacing import Pacing
from .sending.retries import Retries
from .sending.run import send, signal_name
from .sending.schedule import Schedule
from .sending.settings import setting_from
from .sending.stopping import StopButton
from .sending.watch import CallbackSource
from .validation.duplicates import EarlierMessages
from .validation.sender import choose_sender, joined_senders
from .validation.validator import validate

__all__ = ["DEFAULT_CHUNK_ROWS", "MAX_CHUNK_ROWS", "PartSent", "send_file"]

log = logging.getLogger(__name__)

#: Rows per part unless told: about 150 MB in memory for a personalised part.
DEFAULT_CHUNK_ROWS = 100_000
#: The most rows a part may have (more would defeat the point: memory grows with it).
MAX_CHUNK_ROWS = 5_000_000


@dataclass(frozen=True)
class PartSent:
    """What one part did, given to ``send_file(on_part=...)`` as it settles.

    Attributes:
        number: the part's number, from 1; ``parts``: how many the file has.
        first_line, last_line: the file's lines it spans.
        outcome: its own :class:`~kwa_batch.RunOutcome` (counts, held rows, pacing).
        results: its results frame (what was written to ``out`` for it).
        sent: whether it was sent (False: after a stop, written ``not_sent``).
    """

    number: int
    parts: int
    first_line: int
    last_line: int
    outcome: RunOutcome
    results: pd.DataFrame
    sent: bool


def send_file(
    path: str | Path,
    client: KaleyraClient,
    *,
    out: str | Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    pacing: Pacing | None = None,
    schedule: Schedule | None = None,
    retries: Retries | None = None,
    journal: str | Path | None = None,
    campaign: str | None = None,
    sender: str | Sequence[str] | None = None,
    receipts: CallbackSource | None = None,
    progress: bool = True,
    sheet_name: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    on_part: Callable[[PartSent], None] | None = None,
    **options: Any,
) -> RunOutcome:
    """Send a recipient file of any size in parts of ``chunk_rows`` rows, writing the
    results to ``out`` as they settle; memory does not grow with the file.

    Args:
        path: the recipient file (CSV, read as it goes; a workbook is read whole, within
            its limits, then sent in parts).
        client: where to send, as for :func:`kwa_batch.send`.
        out: the results file: ``.parquet`` (one row group per part) or ``.csv``; a
            workbook is refused (a worksheet holds at most 1,048,576 rows).
        chunk_rows: rows per part, 1 to 5,000,000 (default 100,000).
        pacing, schedule, retries, journal, campaign, sender, receipts, progress: as for
            :func:`kwa_batch.send`, for every part (a journal on PostgreSQL with its
            ``campaign`` too). A schedule that holds rows back needs
            a journal (the later run sends only what was held back).
        sheet_name, encoding, delimiter, columns: as for :func:`kwa_batch.load_recipients`.
        on_part: called with a :class:`PartSent` as each part settles (progress, counts).
        **options: the settings' fields as keywords (``rate_limit=1000``), as for
            :func:`kwa_batch.send`, and :func:`kwa_batch.validate`'s arguments
            (``default_region``, ``params_from``, ``body_template``, ``templates``...).

    Returns:
        The run's :class:`~kwa_batch.RunOutcome` (the counts of every row of the file; no
        frame of them): what ``out`` carries too, for :func:`kwa_batch.load_results` and
        ``kwa-batch report``.

    Raises:
        ConfigurationError: ``chunk_rows`` is not a number of rows from 1 to 5,000,000, a
            setting is out of range, or a schedule holds rows back without a journal.
        InputError: the file cannot be read (nothing was sent).
        KwaBatchError: ``out`` is a workbook or cannot be written.

    Example:
        >>> outcome = send_file("campaign.csv", client, out="results.parquet",  # doctest: +SKIP
        ...                     journal="campaign.db", chunk_rows=100_000)
        >>> outcome.counts["sent"], outcome.exit_code  # doctest: +SKIP
        (9999990, 1)
    """
    check_chunk_rows(chunk_rows)
    pacing = setting_from("send_file", "pacing", Pacing, pacing, options)
    schedule = setting_from("send_file", "schedule", Schedule, schedule, options)
    retries = setting_from("send_file", "retries", Retries, retries, options)
    _check_validation(options)
    given = options.pop("api_version", None)
    if given is not None and str(given).strip().lower() != client.api_version:
        raise ConfigurationError(
            f"api_version={given!r}: the client sends through Kaleyra's {client.api_version} "
            f"API; give the client api_version={given!r}, or leave api_version= out"
        )
    holding = [
        name
        for name in ("quiet_hours", "not_before", "expires", "daily_limit")
        if getattr(schedule, name) is not None
    ]
    if holding and journal is None:
        raise ConfigurationError(
            f"{', '.join(holding)}: hold rows back for a later run, and a file sent in parts "
            "counts them across parts from its journal: give journal= (--journal FILE)"
        )
    started = datetime.now(UTC).replace(microsecond=0)
    parts = RecipientParts(
        path,
        chunk_rows,
        sheet_name=sheet_name,
        encoding=encoding,
        delimiter=delimiter,
        columns=columns,
    )
    with ResultsWriter(out) as writer:
        total = parts.check()  # the whole file read once: refused before anything is sent
        count = -(-total // chunk_rows)
        log.info("%s: %s row(s), sent in %d part(s) of %s", path, f"{total:,}", count,
                 f"{chunk_rows:,}")  # fmt: skip
        tally = _Tally(started)
        earlier = EarlierMessages()
        effective = choose_sender(joined_senders(sender), client.sender)
        with StopButton() as button:
            for number, frame in enumerate(parts, start=1):
                sending = tally.stopped is None and not button.pressed
                if sending:
                    report = validate(
                        frame,
                        sender=effective,
                        api_version=client.api_version,
                        earlier=earlier,
                        **options,
                    )
                    results = send(
                        report,
                        client,
                        pacing=pacing,
                        schedule=schedule,
                        retries=retries,
                        journal=journal,
                        campaign=campaign,
                        receipts=receipts,
                        progress=progress,
                    )
                    del report
                else:
                    results = _left(frame, tally.stopped or _signal(button.first))
                part = results.attrs["run"]
                tally.add(part, sent=sending)
                if button.pressed and tally.stopped_by is None:
                    tally.stopped_by = _signal(button.first)
                    tally.stopped = tally.stopped or tally.stopped_by
                writer.write(results, frame)
                if on_part is not None:
                    lines = line_numbers(frame).dropna()
                    on_part(
                        PartSent(
                            number,
                            count,
                            int(lines.iloc[0]) if len(lines) else 0,
                            int(lines.iloc[-1]) if len(lines) else 0,
                            part,
                            results,
                            sending,
                        )
                    )
                del results, frame
        outcome = tally.outcome(total=total, chunk_rows=chunk_rows, parts=count, source=path)
        writer.close(outcome)
    return outcome


def check_chunk_rows(chunk_rows: object) -> int:
    """``chunk_rows`` if it is a number of rows a part may have.

    Raises:
        ConfigurationError: it is not a whole number from 1 to :data:`MAX_CHUNK_ROWS`.
    """
    if (
        isinstance(chunk_rows, bool)
        or not isinstance(chunk_rows, int)
        or not 1 <= chunk_rows <= MAX_CHUNK_ROWS
    ):
        raise ConfigurationError(
            f"chunk_rows={chunk_rows!r} (--chunk-rows): give the rows of a part, a whole "
            f"number from 1 to {MAX_CHUNK_ROWS:,} (memory grows with it; "
            f"{DEFAULT_CHUNK_ROWS:,} is a good size)"
        )
    return chunk_rows


def _check_validation(options: dict[str, Any]) -> None:
    """Refuse keywords that are neither settings nor :func:`validate`'s arguments."""
    accepted = set(inspect.signature(validate).parameters) - {"df", "sender", "earlier"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"send_file() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: "
            "it takes its own, the fields of Pacing, Schedule and Retries, and validate()'s"
        )
    if "now" in options:  # pragma: no cover - not a validate() argument
        raise ConfigurationError("now=: a real send goes by the real clock")


def _signal(signum: int | None) -> str:
    return signal_name(signum) or "SIGINT"


_LEFT = (
    "the run stopped before this part of the file was sent ({why}): send again with the same "
    "journal"
)


def _left(frame: pd.DataFrame, why: str) -> pd.DataFrame:
    """The results of a part never sent (the run had stopped): every row ``not_sent``,
    unvalidated (a later run validates and sends it)."""
    results = ResultsBuilder(frame.index)
    row = {
        "status": Status.NOT_SENT,
        "error_code": Code.NOTSENT,
        "error_message": _LEFT.format(why=why),
        "attempts": 0,
    }
    labels = list(frame.index)
    results.fill(labels, [row] * len(labels))
    results.data["line"] = list(line_numbers(frame).array)
    out = results.frame()
    out["to"] = frame["to"].astype("string")
    out.attrs["run"] = RunOutcome.of(out)
    return out


def _why(part: RunOutcome) -> str | None:
    """Why a part's run stopped the whole file, if it did."""
    if part.stopped_by:
        return part.stopped_by
    if part.wrong_api_version:
        return "the sending number is on the other API version"
    if part.credentials_refused:
        return "the API refused the credentials"
    if part.stopped_on:
        return "a callback said to stop"
    if part.journal_error:
        return "the journal could not be written"
    return None


@dataclass
class _Tally:
    """The outcomes of the parts, added up into the run's."""

    started: datetime
    counts: dict[str, int] = field(default_factory=dict)
    never_sent: int = 0
    credentials_refused: bool = False
    wrong_api_version: bool = False
    stopped_by: str | None = None
    stopped: str | None = None
    stopped_on: str | None = None
    journal_error: str | None = None
    resume: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    pacing: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    sent_parts: int = 0

    def add(self, part: RunOutcome, *, sent: bool) -> None:
        for table, more in ((self.counts, part.counts), (self.resume, part.resume),
                            (self.held, part.held)):  # fmt: skip
            for key, value in more.items():
                table[key] = table.get(key, 0) + int(value)
        self.never_sent += part.never_sent
        self.credentials_refused |= part.credentials_refused
        self.wrong_api_version |= part.wrong_api_version
        if not sent:
            return
        self.sent_parts += 1
        self.settings = self.settings or dict(part.settings)
        self.stopped_by = self.stopped_by or part.stopped_by
        self.stopped_on = self.stopped_on or part.stopped_on
        self.journal_error = self.journal_error or part.journal_error
        self.stopped = self.stopped or _why(part)
        for key, value in part.pacing.items():
            if key == "throttles" and isinstance(value, int | float):
                self.pacing[key] = self.pacing.get(key, 0) + value
            elif key == "peak_in_flight" and isinstance(value, int | float):
                self.pacing[key] = max(self.pacing.get(key, 0), value)
            elif key == "lowest_rate" and isinstance(value, int | float):
                low = self.pacing.get(key)
                self.pacing[key] = value if low is None else min(low, value)
            else:
                self.pacing[key] = value

    def outcome(self, *, total: int, chunk_rows: int, parts: int, source: str | Path) -> RunOutcome:
        settings = {
            **self.settings,
            "source": str(source),
            "chunk_rows": chunk_rows,
            "parts": parts,
        }
        headline = (
            f"Sent {total:,} row(s) in {parts:,} part(s) of up to {chunk_rows:,}"
            if self.stopped is None
            else f"Sent {self.sent_parts:,} of {parts:,} part(s) of up to {chunk_rows:,} rows, "
            f"then stopped ({self.stopped})"
        )
        return RunOutcome(
            counts=self.counts,
            never_sent=self.never_sent,
            credentials_refused=self.credentials_refused,
            wrong_api_version=self.wrong_api_version,
            started_at=self.started,
            finished_at=datetime.now(UTC).replace(microsecond=0),
            stopped_by=self.stopped_by,
            headline=headline,
            resume=self.resume,
            held=self.held,
            pacing=self.pacing,
            settings=settings,
            journal_error=self.journal_error,
            stopped_on=self.stopped_on,
        )
