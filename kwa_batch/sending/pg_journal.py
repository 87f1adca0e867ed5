"""The journal on PostgreSQL: one campaign that several ``kwa-batch send`` processes share.

``--journal postgresql://kwa@db/campaigns --campaign july`` (``kb.send(journal=url,
campaign="july")``) keeps what the SQLite journal keeps (:mod:`~kwa_batch.sending.journal`:
the same states, resume, "nothing twice", ``unknown`` for what may have gone, the sends the
daily limit counts) in a database that processes on one machine or several share. Its
tables are created on first use (:func:`kwa_batch.database.ensure_schema`, part
``journal``, version :data:`SCHEMA_VERSION`; tables of a newer version are refused):

``kwa_journal_runs``
    ``id`` (bigserial), ``campaign``, ``started_at``/``finished_at`` (timestamptz, the
    database's clock), ``settings`` (jsonb: what the run was asked to do, never the API key
    nor the database's password).
``kwa_journal_rows``
    keyed by ``(campaign, key)``: ``recipient``, ``state`` (``in_flight`` or a result status),
    the outcome as the results name it (``message_id``, ``error_code``, ``error_message``,
    ``http_status``, ``attempts``, ``sent_at``, ``request_id``, ``recipients``), ``run_id``
    (the run that wrote it last) and ``updated_at`` (the database's clock).
``kwa_journal_pace``
    one row per sender number (``number:+91…``) and one for the account (``account``):
    ``tat``, the moment the next message may leave (see :meth:`PostgresJournal.reserve`).

**Several processes on one campaign.** No process locks the campaign. A row goes out only
from the process that *claims* it: :meth:`PostgresJournal.mark_in_flight` is one
``INSERT … ON CONFLICT (campaign, key) DO UPDATE … WHERE <the row may be sent> RETURNING
key``, which PostgreSQL runs atomically per row (a second claim of the same row waits for
the first to commit, then sees it ``in_flight`` and claims nothing). A row may be claimed
when it is new, ``not_sent`` (never processed; not expired), ``failed`` before this run
started, or ``unknown``/``in_flight`` from before with ``resend_unknown`` (not while the run
that holds it is alive); and always by the run that wrote it last (its own retries). The
keys not returned were taken by another process: this one does not send them, and at its
end reports what the journal says of them (:meth:`held_elsewhere` tells rows still in
flight in a live run). Outcomes are written only over this run's rows, new rows, or rows
an earlier run left ``not_sent`` or ``failed`` (never over a row sent, in flight or
``unknown`` elsewhere). Each run holds a session advisory lock on its id while it
lives, so a process killed with ``-9`` is seen dead at once (its connection closes): only
its own ``in_flight`` rows stay, and read ``unknown``.

**The rate across processes.** Each request reserves its moment in the pace rows of its
sender number (and the account) in one transaction: ``start = GREATEST(clock_timestamp(),
tat)``, ``tat = start + count × (1 + margin) / rate``: a generic cell rate algorithm whose
state is in the database and whose clock is the database's, so processes on several
machines space their requests as one would. The process sleeps until ``start``, and gives
the moment up for a later one if it woke more than 20 ms late (see
:meth:`kwa_batch.sending.pacing.Pacer.acquire`, where this schedule stands for the local
windows; concurrency, spacing per recipient and backpressure stay local).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..database import connect, ensure_schema, is_database_url, redact
from ..errors import Code, ConfigurationError, DatabaseError, JournalError, JournalWriteError
from ..results import OUTCOME_FIELDS, Status
from .journal import (
    APPLICATION_ID,
    COUNTED_STATES,
    IN_FLIGHT,
    Journal,
    JournalRecord,
    RunJournal,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresJournal", "check_campaign", "open_journal"]

log = logging.getLogger(__name__)

#: The version of the journal's tables (``kwa_schema``, part ``journal``).
SCHEMA_VERSION = 1
_PART = "journal"
_CREATE = (
    "CREATE TABLE IF NOT EXISTS kwa_journal_runs ("
    " id BIGSERIAL PRIMARY KEY, campaign TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL,"
    " finished_at TIMESTAMPTZ, settings JSONB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS kwa_journal_runs_campaign ON kwa_journal_runs (campaign)",
    "CREATE TABLE IF NOT EXISTS kwa_journal_rows ("
    " campaign TEXT NOT NULL, key TEXT NOT NULL, recipient TEXT NOT NULL, state TEXT NOT NULL,"
    " message_id TEXT, error_code TEXT, error_message TEXT, http_status INTEGER,"
    " attempts INTEGER, sent_at TIMESTAMPTZ, request_id TEXT, recipients INTEGER,"
    " run_id BIGINT, updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (campaign, key))",
    "CREATE INDEX IF NOT EXISTS kwa_journal_rows_counted ON kwa_journal_rows (state, recipient)",
    "CREATE TABLE IF NOT EXISTS kwa_journal_pace (lane TEXT PRIMARY KEY, tat TIMESTAMPTZ NOT NULL)",
)
# The advisory lock class of a live run (the two-key form: this, then the run's id).
_LIVE = APPLICATION_ID
_OUTCOME = OUTCOME_FIELDS[1:]
_COLUMNS = ("state", *_OUTCOME)
_MAX_CAMPAIGN = 200
_LIVE_RUNS = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = %s::oid AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_CLAIM = f"""
INSERT INTO kwa_journal_rows AS r
    (campaign, key, recipient, state, recipients, run_id, updated_at)
SELECT %(campaign)s, t.key, t.recipient, '{IN_FLIGHT}', t.size, %(run)s, clock_timestamp()
FROM unnest(%(keys)s::text[], %(numbers)s::text[], %(sizes)s::int[]) AS t(key, recipient, size)
ORDER BY t.key
ON CONFLICT (campaign, key) DO UPDATE SET
    state = '{IN_FLIGHT}', message_id = NULL, error_code = NULL, error_message = NULL,
    http_status = NULL, sent_at = NULL, request_id = NULL, recipients = excluded.recipients,
    run_id = excluded.run_id, updated_at = excluded.updated_at
WHERE r.run_id = %(run)s
    OR (r.state = '{Status.NOT_SENT}' AND r.error_code IS DISTINCT FROM %(expired)s)
    OR (r.state = '{Status.FAILED}' AND r.updated_at < %(started)s)
    OR (%(resend)s AND r.state IN ('{Status.UNKNOWN}', '{IN_FLIGHT}')
        AND r.updated_at < %(started)s
        AND r.run_id NOT IN ({_LIVE_RUNS.replace("%s", str(_LIVE))}))
RETURNING r.key
"""
_RECORD = f"""
INSERT INTO kwa_journal_rows AS r
    (campaign, key, recipient, {", ".join(_COLUMNS)}, run_id, updated_at)
VALUES (%s, %s, %s, {", ".join(["%s"] * len(_COLUMNS))}, %s, clock_timestamp())
ON CONFLICT (campaign, key) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in ("recipient", *_COLUMNS))},
    run_id = excluded.run_id, updated_at = excluded.updated_at
WHERE r.run_id = excluded.run_id
    OR (r.updated_at < %s AND r.state IN ('{Status.NOT_SENT}', '{Status.FAILED}'))
"""
_RESERVE = """
WITH lanes AS (
    SELECT lane, seconds FROM unnest(%(lanes)s::text[], %(seconds)s::float8[]) AS t(lane, seconds)
), start AS (
    SELECT GREATEST(clock_timestamp(), MAX(p.tat)) AS at FROM (
        SELECT tat FROM kwa_journal_pace WHERE lane IN (SELECT lane FROM lanes)
        ORDER BY lane FOR UPDATE
    ) AS p
), moved AS (
    UPDATE kwa_journal_pace AS p SET tat = (SELECT at FROM start) + make_interval(secs => l.seconds)
    FROM lanes AS l WHERE p.lane = l.lane
)
SELECT EXTRACT(EPOCH FROM (SELECT at FROM start) - clock_timestamp())::float8
"""
_CAMPAIGN_FIX = (
    "name the campaign the processes share, e.g. --campaign july (campaign='july'): letters, "
    "digits, '-', '_' or '.', at most 200"
)


def check_campaign(target: object, campaign: str | None) -> str | None:
    """The campaign a journal needs: required with a PostgreSQL URL (returned, stripped),
    refused with a SQLite file or without a journal.

    >>> check_campaign("postgresql://kwa@db/c", " july "), check_campaign("run.db", None)
    ('july', None)

    Raises:
        ConfigurationError: one line saying which and what to give.
    """
    if target is None:
        if campaign is not None:
            raise ConfigurationError(
                f"--campaign {campaign} (campaign=) names a campaign in a PostgreSQL journal: "
                "give --journal postgresql://… (journal=) too, or leave it out"
            )
        return None
    if not is_database_url(target):
        if campaign is not None:
            raise ConfigurationError(
                f"--campaign {campaign} (campaign=) names a campaign in a PostgreSQL journal; "
                f"the journal {target} is a SQLite file, which holds one campaign: leave "
                "--campaign out, or give --journal postgresql://…"
            )
        return None
    text = campaign.strip() if isinstance(campaign, str) else ""
    if not text:
        raise ConfigurationError(
            f"the journal {redact(str(target))} is a PostgreSQL database, which holds many "
            f"campaigns: {_CAMPAIGN_FIX}"
        )
    if len(text) > _MAX_CAMPAIGN or not all(c.isalnum() or c in "-_." for c in text):
        raise ConfigurationError(f"--campaign {campaign!r}: {_CAMPAIGN_FIX}")
    return text


def open_journal(
    target: str | Path,
    *,
    campaign: str | None,
    settings: dict[str, Any],
    resend_unknown: bool = False,
) -> RunJournal:
    """The journal a run names, open: a SQLite file, or a campaign of a PostgreSQL
    database (see :func:`check_campaign`).

    Raises:
        ConfigurationError: the campaign does not fit the journal; the journal cannot be
            used (:class:`~kwa_batch.errors.JournalError`, :class:`DatabaseError`).
    """
    name = check_campaign(target, campaign)
    if name is not None:
        return PostgresJournal(
            str(target), campaign=name, settings=settings, resend=resend_unknown
        ).open()
    return Journal(target, settings=settings).open()


class PostgresJournal:
    """One campaign's journal in a PostgreSQL database (see the module); open with
    :meth:`open` (or ``with``), as :class:`~kwa_batch.sending.journal.Journal`.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database``.
        campaign: the campaign's name: the processes that share it share its rows.
        settings: what the run was asked to do (recorded per run; never a secret).
        resend: the run resends ``unknown`` rows (``resend_unknown``): it may claim them.
    """

    #: Several processes may send the campaign at once.
    shared = True

    def __init__(
        self,
        url: str,
        *,
        campaign: str,
        settings: dict[str, Any] | None = None,
        resend: bool = False,
    ) -> None:
        self._url = url
        self.path = redact(url)
        self.campaign = campaign
        self.settings = settings or {}
        self.resend = resend
        self.run_id: int | None = None
        self.started_at: datetime | None = None
        self._rows: psycopg.Connection[Any] | None = None
        self._pace: psycopg.Connection[Any] | None = None
        self._rows_lock = threading.Lock()
        self._pace_lock = threading.Lock()
        self._lanes: set[str] = set()

    def __repr__(self) -> str:
        return f"PostgresJournal({self.path!r}, campaign={self.campaign!r}, run_id={self.run_id})"

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening and closing ------------------------------------------------------------

    def open(self) -> Self:
        """Connect, create or check the tables, record the run and hold its live lock.

        Raises:
            DatabaseError: the server cannot be reached, or its tables are a newer
                kwa_batch's (the message names the URL without its password).
        """
        rows = connect(self._url, application_name="kwa_batch journal")
        try:
            ensure_schema(rows, _PART, SCHEMA_VERSION, _CREATE, url=self._url)
            found = rows.execute(
                "INSERT INTO kwa_journal_runs (campaign, started_at, settings) "
                "VALUES (%s, clock_timestamp(), %s::jsonb) RETURNING id, started_at",
                (self.campaign, json.dumps(self.settings, default=str)),
            ).fetchone()
            assert found is not None
            self.run_id, self.started_at = int(found[0]), found[1]
            rows.execute("SELECT pg_advisory_lock(%s, %s)", (_LIVE, self.run_id))
            self._pace = connect(self._url, application_name="kwa_batch pace")
        except BaseException as exc:
            rows.close()
            if isinstance(exc, DatabaseError):
                raise
            if _is_driver_error(exc):
                raise self._broken("opening it", exc) from None
            raise
        self._rows = rows
        return self

    def close(self) -> None:
        """Record the end of the run and disconnect (which frees the live lock); never
        raises (what was recorded is intact): a failure is logged."""
        with self._rows_lock:
            rows, self._rows = self._rows, None
        if rows is not None:
            try:
                rows.execute(
                    "UPDATE kwa_journal_runs SET finished_at = clock_timestamp() WHERE id = %s",
                    (self.run_id,),
                )
            except Exception as exc:
                log.warning("journal %s: the end of the run was not recorded: %s", self.path, exc)
            rows.close()
        with self._pace_lock:
            pace, self._pace = self._pace, None
        if pace is not None:
            pace.close()

    def _conn(self) -> psycopg.Connection[Any]:
        if self._rows is None:
            raise RuntimeError("the journal is not open: use 'with PostgresJournal(...)'")
        return self._rows

    def _broken(self, doing: str, exc: BaseException) -> JournalWriteError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return JournalWriteError(
            f"journal {self.path} (campaign {self.campaign}) failed while {doing} ({reason}): "
            "what it recorded before is intact; stop sending, check the database, then run "
            "again with it",
            path=self.path,
            reason=reason,
        )

    # -- reading --------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, JournalRecord]:
        """The records of the given keys in this campaign.

        Raises:
            JournalError: the database cannot be read.
        """
        columns = "key, recipient, " + ", ".join(_COLUMNS)
        found: dict[str, JournalRecord] = {}
        try:
            with self._rows_lock:
                cursor = self._conn().execute(
                    f"SELECT {columns} FROM kwa_journal_rows "
                    "WHERE campaign = %s AND key = ANY(%s::text[])",
                    (self.campaign, list(keys)),
                )
                rows = cursor.fetchall()
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise JournalError(
                f"journal {self.path} cannot be read: {' '.join(str(exc).split())}",
                path=self.path,
            ) from None
        for row in rows:
            record = dict(zip(("key", "recipient", *_COLUMNS), row, strict=True))
            found[row[0]] = JournalRecord(**record)
        return found

    def held_elsewhere(self, keys: Sequence[str]) -> frozenset[str]:
        """The keys ``in_flight`` in another run that is still alive (its process holds
        its connection)."""
        with self._rows_lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT key FROM kwa_journal_rows "
                    "WHERE campaign = %s AND key = ANY(%s::text[]) "
                    f"AND state = '{IN_FLIGHT}' AND run_id <> %s AND run_id IN ({_LIVE_RUNS})",
                    (self.campaign, list(keys), self.run_id, _LIVE),
                )
                .fetchall()
            )
        return frozenset(key for (key,) in rows)

    def counts(self) -> dict[str, int]:
        """How many rows the campaign holds in each state."""
        with self._rows_lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT state, COUNT(*) FROM kwa_journal_rows "
                    "WHERE campaign = %s GROUP BY state",
                    (self.campaign,),
                )
                .fetchall()
            )
        return {str(state): int(n) for state, n in rows}

    def recorded_settings(self) -> list[dict[str, Any]]:
        """The settings each run of the campaign recorded, oldest first."""
        with self._rows_lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT settings FROM kwa_journal_runs WHERE campaign = %s ORDER BY id",
                    (self.campaign,),
                )
                .fetchall()
            )
        return [settings for (settings,) in rows if isinstance(settings, dict)]

    def recent_sends(self) -> list[tuple[str, datetime]]:
        """Per recipient, the latest time a counted row was recorded, over *every*
        campaign of the database: the daily limit is the business portfolio's."""
        with self._rows_lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT recipient, MAX(COALESCE(sent_at, updated_at)) FROM kwa_journal_rows "
                    "WHERE state = ANY(%s::text[]) GROUP BY recipient",
                    (list(COUNTED_STATES),),
                )
                .fetchall()
            )
        return [(str(recipient), moment) for recipient, moment in rows]

    # -- writing --------------------------------------------------------------------------

    def mark_in_flight(
        self, requests: Iterable[tuple[Sequence[str], Sequence[str]]]
    ) -> frozenset[str]:
        """Claim the requests' rows for this run and record them ``in_flight``, in one
        statement (see the module).

        Returns:
            The keys another process holds: not claimed, not to be sent by this run.

        Raises:
            JournalWriteError: the database cannot be written: send nothing more.
        """
        wanted: dict[str, tuple[str, int]] = {}
        for keys, numbers in requests:
            for key, number in zip(keys, numbers, strict=True):
                wanted[key] = (number, len(keys))
        if not wanted:
            return frozenset()
        params = {
            "campaign": self.campaign,
            "run": self.run_id,
            "keys": list(wanted),
            "numbers": [number for number, _ in wanted.values()],
            "sizes": [size for _, size in wanted.values()],
            "expired": str(Code.EXPIRED),
            "started": self.started_at,
            "resend": self.resend,
        }
        try:
            with self._rows_lock:
                claimed = {key for (key,) in self._conn().execute(_CLAIM, params).fetchall()}
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise self._broken("claiming rows", exc) from None
        return frozenset(wanted.keys() - claimed)

    def record(self, outcomes: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Record final outcomes ``(key, recipient, fields)``, over this run's rows and rows
        no run processed (never over another process's).

        Raises:
            JournalWriteError: the database cannot be written: nothing of this call is kept.
        """
        rows = [
            (
                self.campaign,
                key,
                number,
                fields["status"],
                *(fields.get(name) for name in _OUTCOME),
                self.run_id,
                self.started_at,
            )
            for key, number, fields in outcomes
        ]
        if not rows:
            return
        try:
            with self._rows_lock:
                conn = self._conn()
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(_RECORD, rows)
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise self._broken("recording outcomes", exc) from None

    def reserve(self, lanes: Sequence[tuple[str, float]], count: int, margin: float) -> float:
        """Reserve the moment ``count`` messages may leave within each lane's rate
        (``(lane, messages per second)``), by the database's clock; the seconds to wait.

        Raises:
            JournalWriteError: the database cannot be written.
        """
        names = [name for name, _ in lanes]
        seconds = [count * (1.0 + margin) / rate for _, rate in lanes]
        try:
            with self._pace_lock:
                conn = self._pace
                if conn is None:
                    raise RuntimeError("the journal is not open")
                new = [name for name in names if name not in self._lanes]
                if new:
                    conn.execute(
                        "INSERT INTO kwa_journal_pace (lane, tat) "
                        "SELECT unnest(%s::text[]), '-infinity' ON CONFLICT DO NOTHING",
                        (new,),
                    )
                    self._lanes.update(new)
                found = conn.execute(_RESERVE, {"lanes": names, "seconds": seconds}).fetchone()
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise self._broken("reserving a moment to send", exc) from None
        return float(found[0]) if found and found[0] is not None else 0.0


def _is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg's (the driver is imported only when a URL is used)."""
    return any(cls.__module__.split(".")[0] == "psycopg" for cls in type(exc).__mro__)
