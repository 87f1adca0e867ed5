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

**The daily limit across processes.** A run with a daily limit claims a template's rows
with :meth:`PostgresJournal.claim`: in the claim's transaction, under a transaction lock of
the database's own, it counts the unique recipients sent, in flight or ``unknown`` in the
last 24 hours (every campaign) and leaves the rows of new recipients beyond the limit
unclaimed (the run holds them: ``not_sent``, the daily limit's code). The full count is
taken once a minute or when the room runs out; in between, the rows written since it (by
the index on ``updated_at``) are added to it, which may count more, never fewer (about 1.5
ms a claim with 100,000 recipients counted: ``benchmarks/bench_pg_daily_limit.py``).

**A database that stops answering.** Every call is bounded: the connections ask the
server to give up on a statement after :data:`STATEMENT_TIMEOUT` seconds (a lock waited
for too: ``lock_timeout``), libpq's TCP keepalives and ``tcp_user_timeout`` notice a host
or a network that went silent, and a call still waiting :data:`CALL_TIMEOUT` seconds after
it began (a server frozen, whose kernel still acknowledges) has its socket shut by a
watchdog thread.
The call then fails as a full disk does (:class:`~kwa_batch.errors.JournalWriteError`):
the run stops, awaits what is in flight and writes its results; a stop signal that came
meanwhile is acted on then.

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
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

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

__all__ = [
    "CALL_TIMEOUT",
    "SCHEMA_VERSION",
    "STATEMENT_TIMEOUT",
    "Claim",
    "PostgresJournal",
    "check_campaign",
    "open_journal",
]

log = logging.getLogger(__name__)

#: The version of the journal's tables (``kwa_schema``, part ``journal``).
SCHEMA_VERSION = 2
#: Seconds the server works on one statement before giving up (``statement_timeout``).
STATEMENT_TIMEOUT = 10.0
#: Seconds a call may wait for the server at all before its connection is cut.
CALL_TIMEOUT = 12.0
# libpq's bounds on a silent peer: keepalives after 5 s idle, every 2 s, 3 missed; data
# unacknowledged for 10 s.
_BOUNDS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
_PART = "journal"
# The rows the daily limit counts, by state and moment (version 2).
_RECENT_INDEX = (
    "CREATE INDEX IF NOT EXISTS kwa_journal_rows_updated ON kwa_journal_rows (updated_at, state)"
)
_MIGRATIONS = {2: (_RECENT_INDEX,)}
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
    _RECENT_INDEX,
    "CREATE TABLE IF NOT EXISTS kwa_journal_pace (lane TEXT PRIMARY KEY, tat TIMESTAMPTZ NOT NULL)",
)
# The advisory lock class of a live run (the two-key form: this, then the run's id).
_LIVE = APPLICATION_ID
# The transaction lock under which a claim counts the daily limit (one per database).
_DAILY = (APPLICATION_ID + 1, 0)
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
# The recipients counted in the last 24 hours (every campaign), and which of the claim's
# recipients are not among them, in the claim's order.
_COUNTED = (
    "SELECT COUNT(DISTINCT recipient), clock_timestamp() - interval '15 seconds', "
    "clock_timestamp() "
    "FROM kwa_journal_rows WHERE state = ANY(%(states)s::text[]) "
    "AND COALESCE(sent_at, updated_at) > clock_timestamp() - interval '24 hours'"
)
# Seconds an exact count of the daily limit serves (rows written since are added to it).
_RECOUNT_AFTER = 60.0
_FRESH = """
SELECT t.recipient FROM unnest(%(numbers)s::text[]) WITH ORDINALITY AS t(recipient, i)
WHERE NOT EXISTS (
    SELECT 1 FROM kwa_journal_rows AS r
    WHERE r.recipient = t.recipient AND r.state = ANY(%(states)s::text[])
        AND COALESCE(r.sent_at, r.updated_at) > clock_timestamp() - interval '24 hours'
)
ORDER BY t.i
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


class Claim(NamedTuple):
    """What a claim (:meth:`PostgresJournal.claim`) did not take."""

    #: Keys another process holds: not to be sent by this run.
    taken: frozenset[str]
    #: Keys of new recipients beyond the daily limit: not to be sent now.
    over_limit: frozenset[str]


class PostgresJournal:
    """One campaign's journal in a PostgreSQL database (see the module); open with
    :meth:`open` (or ``with``), as :class:`~kwa_batch.sending.journal.Journal`.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database``.
        campaign: the campaign's name: the processes that share it share its rows.
        settings: what the run was asked to do (recorded per run; never a secret).
        resend: the run resends ``unknown`` rows (``resend_unknown``): it may claim them.
        call_timeout: seconds any call may wait for the server (see the module).
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
        call_timeout: float = CALL_TIMEOUT,
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
        self._watchdog = _Watchdog(call_timeout)
        # The daily limit's last exact count, and from when rows written since count on it.
        self._tally: tuple[int, datetime, datetime] | None = None

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
        rows = self._connect("kwa_batch journal")
        try:
            with self._watchdog.bounded(rows):
                ensure_schema(rows, _PART, SCHEMA_VERSION, _CREATE, _MIGRATIONS, url=self._url)
                found = rows.execute(
                    "INSERT INTO kwa_journal_runs (campaign, started_at, settings) "
                    "VALUES (%s, clock_timestamp(), %s::jsonb) RETURNING id, started_at",
                    (self.campaign, json.dumps(self.settings, default=str)),
                ).fetchone()
                assert found is not None
                self.run_id, self.started_at = int(found[0]), found[1]
                rows.execute("SELECT pg_advisory_lock(%s, %s)", (_LIVE, self.run_id))
            self._pace = self._connect("kwa_batch pace")
        except BaseException as exc:
            rows.close()
            self._watchdog.close()
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
                with self._watchdog.bounded(rows):
                    rows.execute(
                        "UPDATE kwa_journal_runs SET finished_at = clock_timestamp() WHERE id = %s",
                        (self.run_id,),
                    )
            except Exception as exc:
                reason = redact(" ".join(str(exc).split())) or type(exc).__name__
                log.warning(
                    "journal %s: the end of the run was not recorded: %s", self.path, reason
                )
            rows.close()
        with self._pace_lock:
            pace, self._pace = self._pace, None
        if pace is not None:
            pace.close()
        self._watchdog.close()

    def _connect(self, name: str) -> psycopg.Connection[Any]:
        """A connection whose every wait is bounded (see the module)."""
        statement = round(STATEMENT_TIMEOUT * 1000)
        return connect(
            self._url,
            application_name=name,
            options=f"-c statement_timeout={statement} -c lock_timeout={statement}",
            **_BOUNDS,
        )

    @contextmanager
    def _rows_call(self, doing: str, *, reading: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """The rows' connection for one call, under its lock and the watchdog; a driver error
        becomes :class:`JournalWriteError` (:class:`JournalError` when ``reading``), one line
        without the password."""
        try:
            with self._rows_lock:
                conn = self._conn()
                with self._watchdog.bounded(conn):
                    yield conn
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            broken = self._broken(doing, exc)
            if reading:
                raise JournalError(str(broken), path=self.path) from None
            raise broken from None

    def _conn(self) -> psycopg.Connection[Any]:
        if self._rows is None:
            raise RuntimeError("the journal is not open: use 'with PostgresJournal(...)'")
        return self._rows

    def _broken(self, doing: str, exc: BaseException) -> JournalWriteError:
        reason = redact(" ".join(str(exc).split())) or type(exc).__name__
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
        with self._rows_call("reading rows", reading=True) as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM kwa_journal_rows "
                "WHERE campaign = %s AND key = ANY(%s::text[])",
                (self.campaign, list(keys)),
            ).fetchall()
        for row in rows:
            record = dict(zip(("key", "recipient", *_COLUMNS), row, strict=True))
            found[row[0]] = JournalRecord(**record)
        return found

    def held_elsewhere(self, keys: Sequence[str]) -> frozenset[str]:
        """The keys ``in_flight`` in another run that is still alive (its process holds
        its connection).

        Raises:
            JournalError: the database cannot be read.
        """
        with self._rows_call("reading the rows other processes hold", reading=True) as conn:
            rows = conn.execute(
                "SELECT key FROM kwa_journal_rows "
                "WHERE campaign = %s AND key = ANY(%s::text[]) "
                f"AND state = '{IN_FLIGHT}' AND run_id <> %s AND run_id IN ({_LIVE_RUNS})",
                (self.campaign, list(keys), self.run_id, _LIVE),
            ).fetchall()
        return frozenset(key for (key,) in rows)

    def counts(self) -> dict[str, int]:
        """How many rows the campaign holds in each state.

        Raises:
            JournalError: the database cannot be read.
        """
        with self._rows_call("counting rows", reading=True) as conn:
            rows = conn.execute(
                "SELECT state, COUNT(*) FROM kwa_journal_rows WHERE campaign = %s GROUP BY state",
                (self.campaign,),
            ).fetchall()
        return {str(state): int(n) for state, n in rows}

    def recorded_settings(self) -> list[dict[str, Any]]:
        """The settings each run of the campaign recorded, oldest first.

        Raises:
            JournalError: the database cannot be read.
        """
        with self._rows_call("reading the runs' settings", reading=True) as conn:
            rows = conn.execute(
                "SELECT settings FROM kwa_journal_runs WHERE campaign = %s ORDER BY id",
                (self.campaign,),
            ).fetchall()
        return [settings for (settings,) in rows if isinstance(settings, dict)]

    def recent_sends(self) -> list[tuple[str, datetime]]:
        """Per recipient, the latest time a counted row was recorded, over *every*
        campaign of the database: the daily limit is the business portfolio's.

        Raises:
            JournalError: the database cannot be read.
        """
        with self._rows_call("reading recent sends", reading=True) as conn:
            rows = conn.execute(
                "SELECT recipient, MAX(COALESCE(sent_at, updated_at)) FROM kwa_journal_rows "
                "WHERE state = ANY(%s::text[]) GROUP BY recipient",
                (list(COUNTED_STATES),),
            ).fetchall()
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
        return self.claim(requests).taken

    def claim(
        self,
        requests: Iterable[tuple[Sequence[str], Sequence[str]]],
        *,
        daily_limit: int | None = None,
    ) -> Claim:
        """:meth:`mark_in_flight`, within a daily limit shared by every process of the
        database when ``daily_limit`` is given (business-initiated messages): in the
        claim's transaction, under a lock of the database's own, the recipients counted in
        the last 24 hours (sent, in flight or unknown, in any campaign) are counted, and
        the rows of new recipients beyond the limit are not claimed.

        Raises:
            JournalWriteError: the database cannot be written: send nothing more.
        """
        wanted: dict[str, tuple[str, int]] = {}
        for keys, numbers in requests:
            for key, number in zip(keys, numbers, strict=True):
                wanted[key] = (number, len(keys))
        if not wanted:
            return Claim(frozenset(), frozenset())
        if daily_limit is None:
            with self._rows_call("claiming rows") as conn:
                claimed = self._claim(conn, wanted)
            return Claim(frozenset(wanted.keys() - claimed), frozenset())
        with self._rows_call("claiming rows within the daily limit") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _DAILY)
            params = {"states": list(COUNTED_STATES), "numbers": [n for n, _ in wanted.values()]}
            fresh = list(dict.fromkeys(n for (n,) in conn.execute(_FRESH, params).fetchall()))
            counted = self._counted(conn, params, len(fresh), daily_limit) if fresh else 0
            refused = set(fresh[max(0, daily_limit - counted) :])
            over = frozenset(key for key, (number, _) in wanted.items() if number in refused)
            claimed = self._claim(conn, {k: v for k, v in wanted.items() if k not in over})
        return Claim(frozenset(wanted.keys() - claimed - over), over)

    def _counted(
        self, conn: psycopg.Connection[Any], params: dict[str, Any], fresh: int, limit: int
    ) -> int:
        """The recipients the daily limit counts now, or more (never fewer) where that
        leaves room for ``fresh`` new ones: the last exact count plus every counted row
        written since (from 15 s before it: a claim that was committing then is one
        statement, bounded by ``statement_timeout``), read from the index on
        ``updated_at``. Counted exactly again (every row of the last 24 hours) when that
        leaves no room, or when the exact count is :data:`_RECOUNT_AFTER` seconds old."""
        if self._tally is not None:
            exact, since, at = self._tally
            found = conn.execute(
                "SELECT COUNT(*), clock_timestamp() - %s FROM kwa_journal_rows "
                "WHERE updated_at > %s AND state = ANY(%s::text[])",
                (at, since, params["states"]),
            ).fetchone()
            assert found is not None
            added, age = int(found[0]), found[1].total_seconds()
            if age < _RECOUNT_AFTER and exact + added + fresh <= limit:
                return exact + added
        found = conn.execute(_COUNTED, params).fetchone()
        assert found is not None
        self._tally = (int(found[0]), found[1], found[2])
        return int(found[0])

    def _claim(self, conn: psycopg.Connection[Any], wanted: dict[str, tuple[str, int]]) -> set[str]:
        """Run the claim of these rows (key -> recipient, the request's size): the keys
        claimed."""
        if not wanted:
            return set()
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
        return {key for (key,) in conn.execute(_CLAIM, params).fetchall()}

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
        with (
            self._rows_call("recording outcomes") as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            cursor.executemany(_RECORD, rows)

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
                with self._watchdog.bounded(conn):
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


class _Watchdog:
    """Bounds the calls on a journal's connections: a call still waiting for the server
    ``seconds`` after it began has its connection's socket shut, so that it fails at once
    (the connection is lost then: every later call on it fails too). One thread, started
    with the first call, looks four times a second."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._calls: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def bounded(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Watch one call on ``conn`` (the ``with`` block)."""
        token = object()
        with self._lock:
            self._calls[id(token)] = (time.monotonic() + self.seconds, conn)
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._watch, name="kwa-journal-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(id(token), None)

    def close(self) -> None:
        """Stop watching (the journal closed)."""
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(0.25):
            now = time.monotonic()
            with self._lock:
                overdue = [key for key, (deadline, _) in self._calls.items() if deadline < now]
                for key in overdue:
                    _, conn = self._calls.pop(key)
                    log.warning(
                        "the journal's database has not answered for %.0f s: giving up on it",
                        self.seconds,
                    )
                    _cut(conn)


def _cut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket: the call waiting on it reads the end at once."""
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception as exc:  # already closed: nothing waits on it
        log.debug("the journal's connection could not be cut: %s", exc)
