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
being killed (it is in the operating system's hands), and costs no disk flush. Two runs on
one journal at once could send twice, so a run holds an exclusive lock on a sidecar file
(``<journal>.lock``) that the operating system releases if the process dies. The API key is
never stored; nor is anything but the numbers, the outcome and the content key.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from ..errors import ConfigurationError

__all__ = ["Journal", "JournalLockedError", "JournalRecord"]

log = logging.getLogger(__name__)

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
_FIELDS = (
    "state",
    "message_id",
    "error_code",
    "error_message",
    "http_status",
    "attempts",
    "sent_at",
    "request_id",
    "recipients",
)


class JournalLockedError(ConfigurationError):
    """Another run holds the journal: running both could send the same rows twice."""


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


class Journal:
    """A SQLite journal of row states; open it with ``with Journal(path) as journal:``.

    Args:
        path: the database file (created if missing).
        settings: what the run was asked to do (recorded per run; never the key).
    """

    def __init__(self, path: str | Path, *, settings: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.settings = settings or {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self.run_id: int | None = None

    # -- opening and closing ------------------------------------------------------------

    def open(self) -> Self:
        """Take the run lock and open the database.

        Raises:
            JournalLockedError: another process is using this journal.
            ConfigurationError: the file is not a journal or cannot be written.
        """
        if self.path.parent and not self.path.parent.exists():
            raise ConfigurationError(
                f"journal {self.path}: folder {self.path.parent} does not exist"
            )
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLockedError(
                f"journal {self.path} is in use by another run: wait for it to finish (two runs "
                "on one journal could send the same message twice)"
            ) from None
        self._lock_file = fd
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA cache_size=-65536")  # 64 MiB: large campaigns stay in memory
            db.executescript(_SCHEMA)
            cursor = db.execute(
                "INSERT INTO runs (started_at, settings) VALUES (?, ?)",
                (_now(), json.dumps(self.settings, default=str)),
            )
        except sqlite3.DatabaseError as exc:
            self._release()
            raise ConfigurationError(f"journal {self.path} cannot be used: {exc}") from None
        self._db = db
        self.run_id = cursor.lastrowid
        return self

    def close(self) -> None:
        """Record the end of the run, close the database and release the lock."""
        if self._db is not None:
            with self._lock:
                self._db.execute(
                    "UPDATE runs SET finished_at = ? WHERE id = ?", (_now(), self.run_id)
                )
                self._db.close()
            self._db = None
        self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            os.close(self._lock_file)
            self._lock_file = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, run_id={self.run_id})"

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is not open: use 'with Journal(path) as journal:'")
        return self._db

    # -- reading and writing ------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, JournalRecord]:
        """The records of the given keys that the journal holds."""
        found: dict[str, JournalRecord] = {}
        columns = "key, recipient, " + ", ".join(_FIELDS)
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for row in self.db.execute(
                    f"SELECT {columns} FROM rows WHERE key IN ({marks})", chunk
                ):
                    record = dict(zip(("key", "recipient", *_FIELDS), row, strict=True))
                    sent_at = record["sent_at"]
                    record["sent_at"] = datetime.fromisoformat(sent_at) if sent_at else None
                    found[row[0]] = JournalRecord(**record)
        return found

    def mark_in_flight(self, requests: Iterable[tuple[Sequence[str], Sequence[str]]]) -> None:
        """Record, before they go out, that these requests' rows are being sent.

        Args:
            requests: ``(keys, recipients)`` of each request, in one transaction.
        """
        now = _now()
        rows = [
            (key, number, "in_flight", len(keys), self.run_id, now)
            for keys, recipients in requests
            for key, number in zip(keys, recipients, strict=True)
        ]
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO rows (key, recipient, state, recipients, run_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "state = excluded.state, message_id = NULL, error_code = NULL, "
                "error_message = NULL, http_status = NULL, sent_at = NULL, request_id = NULL, "
                "recipients = excluded.recipients, run_id = excluded.run_id, "
                "updated_at = excluded.updated_at",
                rows,
            )
            self.db.execute("COMMIT")

    def record(self, outcomes: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Record final outcomes: ``(key, recipient, fields)`` with ``fields`` named as in
        the results (``status``, ``message_id``, ``error_code``, …)."""
        now = _now()
        rows = []
        for key, number, fields in outcomes:
            sent_at = fields.get("sent_at")
            rows.append(
                (
                    key,
                    number,
                    fields["status"],
                    fields.get("message_id"),
                    fields.get("error_code"),
                    fields.get("error_message"),
                    fields.get("http_status"),
                    fields.get("attempts"),
                    sent_at.isoformat() if isinstance(sent_at, datetime) else None,
                    fields.get("request_id"),
                    fields.get("recipients"),
                    self.run_id,
                    now,
                )
            )
        if not rows:
            return
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO rows (key, recipient, state, message_id, error_code, error_message, "
                "http_status, attempts, sent_at, request_id, recipients, run_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "state = excluded.state, message_id = excluded.message_id, "
                "error_code = excluded.error_code, error_message = excluded.error_message, "
                "http_status = excluded.http_status, attempts = excluded.attempts, "
                "sent_at = excluded.sent_at, request_id = excluded.request_id, "
                "recipients = excluded.recipients, run_id = excluded.run_id, "
                "updated_at = excluded.updated_at",
                rows,
            )
            self.db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        """How many rows the journal holds in each state."""
        with self._lock:
            return dict(
                self.db.execute("SELECT state, COUNT(*) FROM rows GROUP BY state").fetchall()
            )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
