"""The outcome of a run, as one value: what happened, the counts, the exit code, what next.

:func:`kwa_batch.send` returns the results frame with its :class:`RunOutcome` in
``results.attrs["run"]``; :func:`kwa_batch.export_results` stores it with the results
(``.xlsx``: in plain words on the Summary sheet and as data on the ``Run`` sheet;
``.csv``: in a ``<file>.run.json`` beside it; ``.parquet``: in the file's metadata), and
:func:`kwa_batch.load_results` reads it back, as the same type. ``kwa-batch send``,
``report``, ``status`` and ``--summary-json`` all take their exit code, counts and next step
from it, so a results file is reported as the run that wrote it.

Why ``attrs``: it is pandas' own place for facts about a whole frame, so the outcome
travels with the results it describes, and no second object has to be kept beside them.
pandas 3 carries it through ``copy``, selections (``results[mask]``, ``.loc``),
``sort_values``, ``assign``, ``rename`` and ``pd.concat`` of frames of one run; it drops it
when frames of different ``attrs`` meet: ``merge``, ``join`` and ``concat`` with another
frame, and ``groupby`` results. So read ``results.attrs["run"]`` on the frame that
:func:`~kwa_batch.send` or :func:`~kwa_batch.load_results` returned (``df.join(results)``
has none). After a selection it still describes the whole run; :meth:`RunOutcome.of`
counts any frame of results anew.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_API_VERSION, other_api_version
from .errors import BAD_CREDENTIALS, EXIT_INCOMPLETE, OTHER_API_VERSION
from .results import STATUSES, Status, exit_code_for, never_sent_rows

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DERIVED_FIELDS", "RunOutcome"]

#: The version of the stored form (:meth:`RunOutcome.to_dict`).
FORMAT = 1
#: The fields of :class:`RunOutcome` that :meth:`RunOutcome.of` counts from the results'
#: rows (never given as facts).
DERIVED_FIELDS = ("counts", "never_sent", "credentials_refused", "wrong_api_version")


@dataclass(frozen=True)
class RunOutcome:
    """What a run of :func:`kwa_batch.send` did, read from ``results.attrs["run"]``.

    Attributes:
        counts: rows per result status (:class:`kwa_batch.results.Status`), every status
            listed, zeros included.
        never_sent: ``not_sent`` rows that no later run sends (the campaign expired or the
            recipient opted out: :data:`kwa_batch.results.NEVER_SENT`): final, like failed.
        credentials_refused: the API refused the credentials (HTTP 401/403, v2's
            ``RBC001``), which stopped the run.
        wrong_api_version: the API answered ``WA-401``: the sending number is on the other
            of Kaleyra's API versions, which stopped the run (:attr:`next_step` says which
            version to choose, and how).
        started_at, finished_at: when the run started and finished (UTC), None when unknown
            (results not written by a run).
        stopped_by: the signal that stopped the run (``"SIGINT"`` for Ctrl-C or a notebook's
            stop button, ``"SIGTERM"``, ``"SIGHUP"``), None when it ran to its end.
        headline: what the run set out to do (``Sending 2,780 message(s) (220 already sent,
            by the journal)``).
        resume: with a journal, rows by what the journal knew of them (``{"new": 20}``).
        held: rows held back, by code (quiet hours ``KWA027``, over the daily limit
            ``KWA030``, expired ``KWA029``…).
        pacing: how fast it went: ``throttles`` (the API said "too fast"), the
            ``lowest_rate`` that was in force, ``peak_in_flight`` and ``latency``.
        settings: the settings it was given (``rate_limit``, ``concurrency``, ``journal``,
            ``quiet_hours``…), never the key.
        journal_error: why the journal could not be written, which stopped the run.
        export_error: why the results file could not be written where asked (set by whoever
            exported them, with :meth:`with_export_error`).
        stopped_on: the callback that stopped the sending (``send(receipts=...)``: a stop
            code such as 131048, received while the run sent), in a sentence that says what
            a person must check; None when none came.

    Example:
        >>> outcome = RunOutcome(
        ...     counts={"sent": 9, "not_sent": 1}, stopped_by="SIGINT", settings={"journal": "j.db"}
        ... )
        >>> outcome.exit_code, outcome.rows
        (130, 10)
        >>> outcome.next_step
        'Interrupted: send again with the same journal to send the 1 not_sent row(s).'
    """

    counts: Mapping[str, int]
    never_sent: int = 0
    credentials_refused: bool = False
    wrong_api_version: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_by: str | None = None
    headline: str = ""
    resume: Mapping[str, int] = field(default_factory=dict)
    held: Mapping[str, int] = field(default_factory=dict)
    pacing: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    journal_error: str | None = None
    export_error: str | None = None
    stopped_on: str | None = None

    def __post_init__(self) -> None:
        # Plain dicts (copyable, comparable, JSON-ready), every status listed.
        counts = {status: int(self.counts.get(status, 0)) for status in STATUSES}
        counts.update({str(k): int(v) for k, v in self.counts.items() if k not in counts})
        object.__setattr__(self, "counts", counts)
        for name in ("resume", "held", "pacing", "settings"):
            object.__setattr__(self, name, dict(getattr(self, name)))

    @classmethod
    def of(cls, results: pd.DataFrame, **facts: Any) -> RunOutcome:
        """The outcome of ``results``, counted from its rows, with the run's ``facts``
        (the other fields: ``started_at``, ``stopped_by``…).

        Example:
            >>> import pandas as pd
            >>> frame = pd.DataFrame({"status": ["sent", "rejected"], "error_code": [None, "E1"],
            ...                       "http_status": [200, None]})
            >>> RunOutcome.of(frame).exit_code
            1
        """
        counts = results["status"].value_counts()
        codes = results["error_code"] if "error_code" in results.columns else None
        other_version = codes is not None and bool(codes.eq(OTHER_API_VERSION).fillna(False).any())
        refused = "http_status" in results.columns and bool(
            results["http_status"].isin([401, 403]).to_numpy().any()
        )
        if codes is not None:
            refused = (refused and not other_version) or bool(
                codes.eq(BAD_CREDENTIALS).fillna(False).any()
            )
        return cls(
            counts={str(k): int(v) for k, v in counts.items()},
            never_sent=never_sent_rows(results) if codes is not None else 0,
            credentials_refused=refused,
            wrong_api_version=other_version,
            **facts,
        )

    @property
    def rows(self) -> int:
        """How many rows the results hold."""
        return sum(self.counts.values())

    @property
    def interrupted(self) -> bool:
        """A signal stopped the run."""
        return self.stopped_by is not None

    @property
    def journal(self) -> str | None:
        """The journal the run wrote, if any."""
        journal = self.settings.get("journal")
        return None if journal is None else str(journal)

    @property
    def pending(self) -> int:
        """``not_sent`` rows that a later run sends."""
        return self.counts[Status.NOT_SENT] - self.never_sent

    @property
    def exit_code(self) -> int:
        """The command line's exit code for this run (and for its results file).

        128 + the signal's number when a signal stopped it (130 Ctrl-C, 143 SIGTERM, 129
        SIGHUP); else the statuses' code (:func:`kwa_batch.results.exit_code_for`: 3
        incomplete, 1 some rejected or failed or never to be sent, 0 all sent), raised to 3
        when the journal or the results file could not be written.
        """
        if self.stopped_by:
            return 128 + _signal_number(self.stopped_by)
        code = exit_code_for(self.counts, self.never_sent)
        if self.journal_error or self.export_error:
            return max(code, EXIT_INCOMPLETE)
        return code

    @property
    def next_step(self) -> str | None:
        """What to do about the rows left unsettled, in a sentence; None when nothing is
        left to do (every row sent, or rejected, failed or never to be sent) and no callback
        said to stop sending."""
        stop = ""
        if self.stopped_on:
            stop = (
                f"Stopped: {self.stopped_on}. Nothing more left after it (requests already "
                "on their way excepted)."
            )
        if self.exit_code in (0, 1):
            return stop or None
        what = "Incomplete"
        if self.stopped_by:
            what = "Interrupted" if self.stopped_by == "SIGINT" else f"Stopped by {self.stopped_by}"
        prefix = f"{stop}\n" if stop else ""
        if stop:
            what = "Once a person has acted"
        if self.wrong_api_version:
            prefix = f"Stopped: {self.version_line()}\n"
            what = "Once chosen"
        elif self.credentials_refused:
            prefix = (
                "Stopped: the API refused the credentials (HTTP 401/403). Check KALEYRA_SID, "
                "KALEYRA_API_KEY and KALEYRA_BASE_URL (the key must belong to that SID and "
                "region); nothing more was sent after the refusal.\n"
            )
            what = "Once fixed"
        pending, unknown = self.pending, self.counts[Status.UNKNOWN]
        resend = (
            f"the {unknown:,} unknown row(s) may have been sent: check them, then add "
            "resend_unknown=True (--resend-unknown) to send them again"
        )
        if pending == 0 and unknown == 0:
            problem = self.export_error or self.journal_error
            hint = problem if problem else "every row has its final status; nothing is left to send"
        elif pending == 0 and self.journal:
            hint = resend
        elif self.journal:
            hint = f"send again with the same journal to send the {pending:,} not_sent row(s)"
            hint += f"; {resend}" if unknown else ""
        else:
            hint = (
                f"{pending:,} row(s) not sent, {unknown:,} unknown. Sending again without a "
                "journal= (--journal) would send the sent rows twice: send only the not_sent "
                "rows, or give a journal= (--journal) next time"
            )
        return f"{prefix}{what}: {hint}."

    def version_line(self) -> str:
        """The one line on a ``WA-401``: which API version the sending number needs, and how
        to choose it (the run's own version is in its settings; v1 when not said)."""
        used = str(self.settings.get("api_version") or DEFAULT_API_VERSION)
        other = other_api_version(used)
        return (
            f"the sending number is on Kaleyra's {other} API, not {used} ({OTHER_API_VERSION}); "
            f"send with {other}: --api-version {other}, KALEYRA_API_VERSION={other} or "
            f"api_version={other!r}. Nothing more left after that answer (requests already on "
            "their way excepted)."
        )

    def steps(self) -> list[str]:
        """What to do next, in plain words for whoever reads the results (the workbook's
        Summary): one paragraph per kind of row left to act on, or "Nothing" when every row
        was sent. (:attr:`next_step` is the command line's one sentence about the rows a
        later run may still settle.)"""
        refused = self.counts[Status.REJECTED] + self.counts[Status.FAILED]
        pending, unknown, journal = self.pending, self.counts[Status.UNKNOWN], self.journal
        steps = []
        if self.wrong_api_version:
            steps.append(f"The sending stopped: {self.version_line()}")
        if self.stopped_on:
            steps.append(
                f"A callback stopped the sending: {self.stopped_on}. Do that before sending "
                "anything more from this number."
            )
        if refused:
            steps.append(
                f"Fix the {refused:,} rejected or failed row(s) listed on the Errors sheet "
                "(its fix column says how), then send those rows only: sending the whole "
                "file again would send the other rows twice."
            )
        if pending and journal:
            steps.append(
                f"Send again with the same journal ({journal}): it sends the {pending:,} "
                "row(s) not sent, and nothing twice."
            )
        elif pending:
            steps.append(
                f"Send the {pending:,} not_sent row(s) on their own (filter the Results sheet "
                "on status): sending the whole file again would send the sent rows twice. "
                "Next time, a journal (--journal) lets the same command carry on where it "
                "stopped."
            )
        if unknown:
            steps.append(
                f"{unknown:,} row(s) got no answer and may have been sent: check them "
                "(delivery receipts, or Kaleyra's console) before sending them again"
                + (" (--resend-unknown sends them again)." if journal else ".")
            )
        if not steps:
            steps.append(
                "Nothing: every row was sent. To see which messages were delivered and "
                "read, run kwa-batch status on this file with the receipts store."
            )
        return steps

    def with_export_error(self, reason: str) -> RunOutcome:
        """This outcome, saying that the results could not be written where asked."""
        return dataclasses.replace(self, export_error=reason)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON-ready data: every field (times in ISO 8601), with ``rows``,
        ``exit_code`` and ``next_step`` for readers other than :meth:`from_dict`."""
        data: dict[str, Any] = {"format": FORMAT}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            data[item.name] = value.isoformat() if isinstance(value, datetime) else value
        data.update(rows=self.rows, exit_code=self.exit_code, next_step=self.next_step)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], results: pd.DataFrame | None = None) -> RunOutcome:
        """The outcome :meth:`to_dict` wrote; with ``results``, counted from their rows
        (they are the truth: a file's rows may have been edited since)."""
        names = {item.name for item in dataclasses.fields(cls)}
        facts = {k: v for k, v in data.items() if k in names}
        if "format" not in data and "settings" not in data:
            # Written before the outcome had a form of its own: the settings stood flat
            # among the facts (journal, rate_limit...).
            facts["settings"] = {k: v for k, v in data.items() if k not in names}
        for name in ("started_at", "finished_at"):
            value = facts.get(name)
            if isinstance(value, str):
                facts[name] = datetime.fromisoformat(value)
            elif value is not None and not isinstance(value, datetime):
                raise ValueError(f"{name} is {value!r}, not a time")
        for name in ("stopped_by", "headline", "journal_error", "export_error", "stopped_on"):
            value = facts.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} is {value!r}, not text")
        for name in ("resume", "held", "pacing", "settings"):
            if not isinstance(facts.get(name, {}), Mapping):
                raise ValueError(f"{name} is {facts[name]!r}, not a table of facts")
        if results is None:
            return cls(**{"counts": {}, **facts})
        return cls.of(results, **{k: v for k, v in facts.items() if k not in DERIVED_FIELDS})


def _signal_number(name: str) -> int:
    """15 for ``SIGTERM`` (and for ``15``, as a signal without a name is written)."""
    try:
        return int(signal.Signals[name])
    except KeyError:
        return int(name) if name.isdigit() else int(signal.SIGINT)
