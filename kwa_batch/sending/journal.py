"""The journal: a SQLite checkpoint of every row's state, so a run can resume safely.

Each row is keyed by its content (recipient and message, see
:func:`kwa_batch.fields.row_keys`). Its state is written as ``in_flight`` *before* its
request goes out and replaced by the outcome after the answer. So when a process dies:

- rows recorded ``sent`` are skipped next time (their message ids come back in the results);
- rows still ``in_flight`` may or may not have been processed: they come back ``unknown``
  and are not resent unless the caller says so (``resend_unknown=True``);
- rows ``not_sent`` or ``failed`` (never processed), and rows that are new or were edited
  since (a new key), are sent.

The database runs in WAL mode with ``synchronous=NORMAL``: a commit survives the process
being killed (it is in the operating system's hands), and costs no disk flush. At most once
a second, what was committed is also copied into the main file (a checkpoint), so a journal
whose ``-wal`` file is lost after a crash (deleted, or the main file copied alone) has lost
at most the last second.

Two runs on one journal at once could send twice, so a run holds the database in SQLite's
exclusive locking mode: an operating-system lock on the file itself (its inode), so a
symlink or a hard link to a journal is the same journal, nothing is left behind, and the
lock goes when the process dies. Other programs cannot read the journal during a run.

Opening checks the file before anything is sent: a folder, a FIFO, an empty file, a file
that is not SQLite, a damaged one (``PRAGMA integrity_check``), another program's database or a
newer version's, and a place that cannot be written each raise :class:`JournalError` with
one line saying which file, what is wrong and what to do. A write that fails mid-run (a full
disk) raises :class:`JournalWriteError`, with the failed transaction rolled back.

The API key is never stored; nor is anything but the numbers, the outcome and the content
key.

What a run asks of a journal is :class:`RunJournal`: this SQLite file, or a campaign in a
PostgreSQL database that several processes share (:mod:`~kwa_batch.sending.pg_journal`).
The run, the daily limit (:mod:`~kwa_batch.sending.history`) and the schedule's anchoring
read a journal through its methods only, never its SQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self

from ..errors import JournalError, JournalLockedError, JournalWriteError
from ..results import OUTCOME_FIELDS, STATUSES, Status
from . import clock

__all__ = [
    "APPLICATION_ID",
    "IN_FLIGHT",
    "JOURNAL_VERSION",
    "Journal",
    "JournalError",
    "JournalLockedError",
    "JournalRecord",
    "JournalWriteError",
    "RunJournal",
]

log = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a kwa_batch journal ("KWAj"): tells ours from other SQLite files.
APPLICATION_ID = 0x4B57416A
#: ``PRAGMA user_version``: the journal's format; a newer one is refused, not misread.
JOURNAL_VERSION = 1
#: How often, at most, committed outcomes are copied into the main file.
CHECKPOINT_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rows (
    key TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    message_id TEXT,
    error_code TEXT,
    error_message TEXT,
    http_status INTEGER,
    attempts INTEGER,
    sent_at TEXT,
    request_id TEXT,
    recipients INTEGER,
    run_id INTEGER,
    updated_at TEXT NOT NULL
);
"""
# A row's outcome, as the results name it (results.OUTCOME_FIELDS), with the status stored
# as its "state" (which may also be in_flight).
_OUTCOME = OUTCOME_FIELDS[1:]
_FIELDS = ("state", *_OUTCOME)
_SENT_AT = _OUTCOME.index("sent_at")
_COLUMNS = ("key", "recipient", *_FIELDS, "run_id", "updated_at")
_RECORD = (
    f"INSERT INTO rows ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS if name != "key")
)
_TABLES = {
    "runs": ("id", "started_at", "finished_at", "settings"),
    "rows": _COLUMNS,
}
#: A row's journal state while its request is out, before the answer: the journal's own
#: term (its other states are the result statuses a run gives, :class:`Status`).
IN_FLIGHT = "in_flight"
#: What a row's state can be: ``in_flight`` before the answer, then an outcome. Any other
#: value is damage, and taking it for "not sent" would send the row again. Rejected and
#: holdout rows never reach a journal.
_STATES = frozenset({IN_FLIGHT, *STATUSES} - {Status.REJECTED, Status.HOLDOUT})
_COLUMNS_OF = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
_CHUNK = 500  # keys per query: under SQLite's limit of host parameters

_DAMAGED = (
    "move it aside and run again: the rows it recorded as sent will be sent again, so check "
    "them first (or choose another journal, --journal)"
)
_ELSEWHERE = "choose another journal (--journal); a new one is created where no file exists"
_WRITABLE = "choose another journal (--journal) in a folder you can write"


@dataclass(frozen=True)
class JournalRecord:
    """What the journal knows about one row."""

    key: str
    recipient: str
    state: str
    message_id: str | None
    error_code: str | None
    error_message: str | None
    http_status: int | None
    attempts: int | None
    sent_at: datetime | None
    request_id: str | None
    recipients: int | None


class RunJournal(Protocol):
    """What a run asks of its journal: :class:`Journal` (a SQLite file, one process at a
    time) or :class:`~kwa_batch.sending.pg_journal.PostgresJournal` (a campaign in a
    PostgreSQL database, several processes at once)."""

    @property
    def path(self) -> Path | str:
        """How messages name the journal (a file, or a URL without its password)."""
        ...

    @property
    def run_id(self) -> int | None:
        """This run's id in the journal, once open."""
        ...

    @property
    def shared(self) -> bool:
        """Whether other processes may send the same campaign at the same time."""
        ...

    def open(self) -> Self:
        """Check the journal and record the start of the run."""
        ...

    def close(self) -> None:
        """Record the end of the run; never raises."""
        ...

    def lookup(self, keys: Sequence[str]) -> dict[str, JournalRecord]:
        """The records of the given keys that the journal holds."""
        ...

    def mark_in_flight(
        self, requests: Iterable[tuple[Sequence[str], Sequence[str]]]
    ) -> frozenset[str]:
        """Claim these requests' rows and record them in flight, before they go out; the
        keys another process holds (not claimed: this run must not send them)."""
        ...

    def record(self, outcomes: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Record final outcomes ``(key, recipient, fields)``."""
        ...

    def held_elsewhere(self, keys: Sequence[str]) -> frozenset[str]:
        """Which of these keys another running process holds in flight now."""
        ...

    def counts(self) -> dict[str, int]:
        """How many rows the journal holds in each state."""
        ...

    def recorded_settings(self) -> list[dict[str, Any]]:
        """The settings each run of this journal (campaign) recorded, oldest first."""
        ...

    def recent_sends(self) -> list[tuple[str, datetime]]:
        """Recipient → the latest time a message may have gone to them (rows in a
        :data:`~kwa_batch.sending.history.COUNTED_STATES` state), for the daily limit."""
        ...


class Journal:
    """A SQLite journal of row states; open it with ``with Journal(path) as journal:``.

    Args:
        path: the database file (created if missing).
        settings: what the run was asked to do (recorded per run; never the key).
        checkpoint_every: at most how often, in seconds, what was committed is copied into
            the main file (``None``: only by SQLite's auto-checkpoint, every 1,000 pages).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        settings: dict[str, Any] | None = None,
        checkpoint_every: float | None = CHECKPOINT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.settings = settings or {}
        self.checkpoint_every = checkpoint_every
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._dirty = False
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self.run_id: int | None = None

    #: One process at a time: :meth:`open` takes an exclusive lock on the file.
    shared = False

    # -- opening and closing ------------------------------------------------------------

    def open(self) -> Self:
        """Check the file, take the run lock and open the database.

        Raises:
            JournalLockedError: another run is using this journal (under any name).
            JournalError: the file is not a usable journal, or cannot be written here.
        """
        _check_place(self.path)
        created = not self.path.exists()
        try:
            db = sqlite3.connect(
                self.path, timeout=0, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            run_id = self._start(db)
        except (JournalError, sqlite3.Error, UnicodeDecodeError) as exc:
            db.close()
            error = exc if isinstance(exc, JournalError) else self._unusable(exc)
            if created and not isinstance(error, JournalLockedError):
                # Leave no empty file behind: the next run would refuse it as a lost journal.
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            raise error from None
        self._db = db
        self.run_id = run_id
        if self.checkpoint_every is not None:
            self._closing.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(self.checkpoint_every,),
                name="kwa-journal-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()
        return self

    def _start(self, db: sqlite3.Connection) -> int | None:
        """Lock, check, set up and record the run; the id of the run."""
        # Exclusive before the first access: the lock is taken on the file itself and held
        # to the end, and no -shm file is used. The checks come before WAL mode is set,
        # since setting it writes to the file (which must stay as it was if refused).
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN IMMEDIATE")
        self._check_contents(db)
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")  # 64 MiB: large campaigns stay in memory
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)  # not executescript(): it would commit first
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={JOURNAL_VERSION}")
        cursor = db.execute(
            "INSERT INTO runs (started_at, settings) VALUES (?, ?)",
            (_now(), json.dumps(self.settings, default=str)),
        )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the main file holds the schema now
        return cursor.lastrowid

    def close(self) -> None:
        """Record the end of the run, close the database and release the lock.

        Never raises for a journal that can no longer be written (the run is stopping
        anyway, and what was recorded is intact): that is logged.
        """
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None
        if self._db is None:
            return
        with self._lock:
            try:
                self._db.execute(
                    "UPDATE runs SET finished_at = ? WHERE id = ?", (_now(), self.run_id)
                )
            except sqlite3.Error as exc:
                log.warning("journal %s: the end of the run was not recorded: %s", self.path, exc)
            try:
                self._db.close()  # the last connection: checkpoints, removes the -wal file
            except sqlite3.Error as exc:
                log.warning("journal %s: closing it failed: %s", self.path, exc)
            self._db = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, run_id={self.run_id})"

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection (for reading; writes go through the methods below)."""
        if self._db is None:
            raise RuntimeError("the journal is not open: use 'with Journal(path) as journal:'")
        return self._db

    def _check_contents(self, db: sqlite3.Connection) -> None:
        """Refuse a damaged database, another program's, or a newer version's."""
        # integrity_check, not quick_check: a key garbled in the table but not in its index
        # passes quick_check, and lookups through the index would then miss the row.
        problems = [row[0] for row in db.execute("PRAGMA integrity_check(3)")]
        if problems != ["ok"]:
            shown = "; ".join(" ".join(problem.split()) for problem in problems)
            raise self._error(f"it is damaged ({shown})", _DAMAGED)
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            name: tuple(column for (column,) in db.execute(_COLUMNS_OF, (name,)))
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if app_id not in (0, APPLICATION_ID):
            raise self._error(
                f"it is another program's SQLite database (application id {app_id:#x})",
                _ELSEWHERE,
            )
        if app_id == APPLICATION_ID and version > JOURNAL_VERSION:
            raise self._error(
                f"it was written by a newer kwa_batch (journal version {version}; this one "
                f"reads up to {JOURNAL_VERSION})",
                "upgrade kwa_batch, or " + _ELSEWHERE,
            )
        if tables and tables != _TABLES:
            shown = ", ".join(sorted(tables))
            raise self._error(
                f"it is a SQLite database but not a kwa_batch journal (tables: {shown})",
                _ELSEWHERE,
            )

    def _error(self, what: str, fix: str) -> JournalError:
        return JournalError(
            f"journal {self.path} cannot be used: {what}; {fix}", path=str(self.path)
        )

    def _unusable(self, exc: sqlite3.Error | UnicodeDecodeError) -> JournalError:
        """The :class:`JournalError` for an SQLite error met while opening or reading."""
        if isinstance(exc, UnicodeDecodeError):  # garbled text where SQLite keeps UTF-8
            return self._error("it is damaged (text that is not UTF-8)", _DAMAGED)
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return JournalLockedError(
                f"journal {self.path} is in use by another run (under this name or another "
                "link to the same file) or open elsewhere (another program or connection): "
                "wait for it to finish or close it, or choose another journal (--journal); two "
                "runs on one journal could send the same message twice",
                path=str(self.path),
            )
        if name.startswith("SQLITE_NOTADB"):
            return self._error("it is not a journal (not a SQLite database)", _ELSEWHERE)
        if name.startswith("SQLITE_CORRUPT"):
            return self._error(f"it is damaged ({exc})", _DAMAGED)
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
            return self._error(f"it cannot be written there ({exc})", _WRITABLE)
        if name.startswith("SQLITE_FULL"):
            return self._error("the disk is full", "free some space, or " + _ELSEWHERE)
        return self._error(f"{exc}", _ELSEWHERE)

    # -- keeping the main file current ---------------------------------------------------

    def _checkpoint_loop(self, every: float) -> None:
        while not self._closing.wait(every):
            with self._lock:
                if self._dirty and self._db is not None:
                    self._checkpoint(self._db)

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        """Copy what was committed into the main file (the caller holds ``self._lock``)."""
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            # What was committed is still in the -wal file: nothing is lost yet. The next
            # write will fail the same way if the disk is full, and say so.
            log.warning("journal %s: checkpoint failed: %s", self.path, exc)
        else:
            self._dirty = False

    # -- reading and writing ------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, JournalRecord]:
        """The records of the given keys that the journal holds.

        Raises:
            JournalError: the journal turned out damaged while reading.
        """
        found: dict[str, JournalRecord] = {}
        columns = "key, recipient, " + ", ".join(_FIELDS)
        with self._lock:
            try:
                for start in range(0, len(keys), _CHUNK):
                    chunk = list(keys[start : start + _CHUNK])
                    marks = ",".join("?" * len(chunk))
                    for row in self.db.execute(
                        f"SELECT {columns} FROM rows WHERE key IN ({marks})", chunk
                    ):
                        record = dict(zip(("key", "recipient", *_FIELDS), row, strict=True))
                        if record["state"] not in _STATES:
                            raise ValueError(f"a row in an unknown state {record['state']!r}")
                        record["sent_at"] = _parse_time(record["sent_at"])
                        found[row[0]] = JournalRecord(**record)
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                raise self._unusable(exc) from None
            except (TypeError, ValueError) as exc:  # a time or a state that does not parse
                raise self._error(f"it is damaged ({exc})", _DAMAGED) from None
        return found

    def mark_in_flight(
        self, requests: Iterable[tuple[Sequence[str], Sequence[str]]]
    ) -> frozenset[str]:
        """Record, before they go out, that these requests' rows are being sent.

        Args:
            requests: ``(keys, recipients)`` of each request, in one transaction.

        Returns:
            No key: the run holds the file alone, so every row is its own.

        Raises:
            JournalWriteError: the journal cannot be written (disk full…): send nothing more.
        """
        now = _now()
        rows = [
            (key, number, IN_FLIGHT, len(keys), self.run_id, now)
            for keys, recipients in requests
            for key, number in zip(keys, recipients, strict=True)
        ]
        self._write(
            "INSERT INTO rows (key, recipient, state, recipients, run_id, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "state = excluded.state, message_id = NULL, error_code = NULL, "
            "error_message = NULL, http_status = NULL, sent_at = NULL, request_id = NULL, "
            "recipients = excluded.recipients, run_id = excluded.run_id, "
            "updated_at = excluded.updated_at",
            rows,
        )
        return frozenset()

    def record(self, outcomes: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Record final outcomes: ``(key, recipient, fields)`` with ``fields`` named as in
        the results (``status``, ``message_id``, ``error_code``, …).

        Raises:
            JournalWriteError: the journal cannot be written (disk full…): the outcomes
                are not recorded (the caller still has them), nothing else is changed.
        """
        now = _now()
        rows = []
        for key, number, fields in outcomes:
            values = [fields.get(name) for name in _OUTCOME]
            values[_SENT_AT] = _time_text(values[_SENT_AT])
            rows.append((key, number, fields["status"], *values, self.run_id, now))
        self._write(_RECORD, rows)

    def _write(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        """Run ``statement`` over ``rows`` in one transaction; all or nothing."""
        if not rows:
            return
        with self._lock:
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(statement, rows)
                db.execute("COMMIT")
            except BaseException as exc:
                # A KeyboardInterrupt too: a transaction left open would fail every write after.
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # else SQLite rolled it back
                        db.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                reason = "the disk is full" if "full" in str(exc) else str(exc)
                raise JournalWriteError(
                    f"journal {self.path} cannot be written any more ({reason}): what it "
                    "recorded before is intact; stop sending, free some space or move the "
                    "journal, then run again with it",
                    path=str(self.path),
                    reason=reason,
                ) from exc
            self._dirty = True

    def counts(self) -> dict[str, int]:
        """How many rows the journal holds in each state."""
        with self._lock:
            return dict(
                self.db.execute("SELECT state, COUNT(*) FROM rows GROUP BY state").fetchall()
            )

    def held_elsewhere(self, keys: Sequence[str]) -> frozenset[str]:
        """None: no other process runs on this journal while this run holds it."""
        return frozenset()

    def recorded_settings(self) -> list[dict[str, Any]]:
        """The settings each run recorded, oldest first (a run's that does not parse is
        passed over)."""
        with self._lock:
            texts = [text for (text,) in self.db.execute("SELECT settings FROM runs ORDER BY id")]
        return list(_parsed_settings(texts))

    def recent_sends(self) -> list[tuple[str, datetime]]:
        """Per recipient, the latest time a counted row was recorded (see
        :mod:`~kwa_batch.sending.history`).

        Raises:
            JournalError: a recorded time is not a time.
        """
        with self._lock:
            found = self.db.execute(COUNTED_QUERY).fetchall()
        return counted_times(found, self.path)


def _check_place(path: Path) -> None:
    """Refuse, before SQLite sees it, a path that cannot be a journal file."""

    def refuse(what: str, fix: str) -> JournalError:
        return JournalError(f"journal {path} cannot be used: {what}; {fix}", path=str(path))

    try:
        folder = path.resolve().parent  # a symlink's -wal file goes beside its target
    except (OSError, RuntimeError):  # a symlink loop: path.stat() below says so
        folder = path.parent
    if not folder.is_dir():
        raise refuse(f"folder {folder} does not exist", "create it, or " + _ELSEWHERE)
    try:
        found = path.stat()
    except FileNotFoundError:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise refuse(f"folder {folder} is on a read-only filesystem", _WRITABLE) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise refuse(f"folder {folder} cannot be written (permissions)", _WRITABLE) from None
        return  # a new journal
    except OSError as exc:
        raise refuse(f"it cannot be read ({exc.strerror})", _ELSEWHERE) from None
    if stat.S_ISDIR(found.st_mode):
        raise refuse("it is a folder", f"give a file name, e.g. {path / 'journal.db'}")
    if not stat.S_ISREG(found.st_mode):
        raise refuse("it is not a regular file", _ELSEWHERE)
    if found.st_size == 0:
        # An empty file may be a journal that lost its contents (a copy to a full disk):
        # taking it for a new one would send again everything it held.
        raise refuse(
            "it is an empty file, not a journal",
            "delete it if it is not a lost journal (a new journal is created where no file "
            "exists), or choose another journal (--journal)",
        )
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        raise refuse("it is on a read-only filesystem", _WRITABLE)
    if not os.access(path, os.R_OK | os.W_OK):
        raise refuse(
            "the file cannot be written (permissions)", "make it writable, or " + _WRITABLE
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise refuse(
            f"its folder {folder} cannot be written (the -wal file goes beside the journal)",
            _WRITABLE,
        )


#: A row state counted by the daily limit: what may have reached the recipient (see
#: :mod:`~kwa_batch.sending.history`).
COUNTED_STATES = (Status.SENT.value, IN_FLIGHT, Status.UNKNOWN.value)
#: Per recipient, the latest time a counted row was recorded (SQLite's SQL).
COUNTED_QUERY = (
    "SELECT recipient, MAX(COALESCE(sent_at, updated_at)) FROM rows "
    f"WHERE state IN ({', '.join(repr(s) for s in COUNTED_STATES)}) GROUP BY recipient"
)


def counted_times(rows: Iterable[tuple[Any, Any]], where: Path | str) -> list[tuple[str, datetime]]:
    """``(recipient, time)`` pairs read from a journal, times aware (UTC when recorded
    without a zone).

    Raises:
        JournalError: a time that is not a time (the daily limit cannot be counted).
    """
    out = []
    for recipient, value in rows:
        try:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise history_unreadable(where, f"a recorded time is not a time: {value!r}") from None
        out.append((str(recipient), moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
    return out


def history_unreadable(where: Path | str, why: str) -> JournalError:
    """The error of a journal the daily limit cannot read fully: nothing may be sent."""
    return JournalError(
        f"history {where} cannot be read fully: {why}. The daily limit cannot be counted "
        "without it: repair it, or move it out of the history folder (nothing was sent)",
        path=str(where),
    )


def _parsed_settings(texts: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for text in texts:
        try:
            found = json.loads(text) if isinstance(text, str) else text
        except (TypeError, ValueError):
            continue
        if isinstance(found, dict):
            yield found


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _time_text(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _now() -> str:
    return clock.now().isoformat(timespec="milliseconds")
