"""Where a callback store's rows live: a SQLite file, or tables in a PostgreSQL database.

:class:`~kwa_batch.receipts.store.CallbackStore` is one class whatever the place; it hands
rows to one of the two classes here, chosen by :func:`kwa_batch.database.is_database_url`:

- :class:`SqliteTables`: a file in WAL mode, ``synchronous=NORMAL``; its format is
  ``PRAGMA user_version``;
- :class:`PostgresTables`: a database several processes (a receiver's ``--workers``, on one
  machine or several) write at once. The tables are the SQLite file's, with PostgreSQL's
  types (``TIMESTAMPTZ`` times, ``DOUBLE PRECISION`` prices, ``BOOLEAN`` flags) and two
  columns of their own: ``seq`` (the order rows were stored in, as SQLite's ``rowid``) and
  ``tx`` (the transaction that stored a row, so that a reader that polls never skips a row
  committed late). The format is the ``store`` row of ``kwa_schema``
  (:func:`kwa_batch.database.ensure_schema`): created on first use, migrated forward,
  refused when newer.

Schema (PostgreSQL; version 2)::

    status_updates (seq BIGINT identity, tx XID8, message_id TEXT, status TEXT,
                    at TIMESTAMPTZ, received_at TIMESTAMPTZ, recipient TEXT,
                    error_code TEXT, error TEXT, ref TEXT, ref1 TEXT, ref2 TEXT,
                    price DOUBLE PRECISION, billable BOOLEAN, pricing_category TEXT,
                    business TEXT, PRIMARY KEY (message_id, status))
    incoming_messages (seq BIGINT identity, key TEXT PRIMARY KEY, customer TEXT,
                       business TEXT, at TIMESTAMPTZ, received_at TIMESTAMPTZ, type TEXT,
                       name TEXT, body TEXT, media_url TEXT, reply_to TEXT, payload TEXT)

"Stored once" is the primary keys' work in both: ``INSERT OR IGNORE`` in SQLite,
``INSERT … ON CONFLICT DO NOTHING`` in PostgreSQL, which holds however many processes
insert the same callback at the same moment.

Neither class locks: the store calls them under its own lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..database import connect, ensure_schema, redact
from ..errors import DatabaseError, InputError

if TYPE_CHECKING:
    import psycopg

__all__ = ["STORE_PART", "STORE_VERSION", "PostgresTables", "SqliteTables"]

#: The store's format: ``PRAGMA user_version`` of a SQLite store, the ``store`` row of a
#: database's ``kwa_schema``. 1 had no prices, business number on status updates,
#: ``reply_to`` or ``payload``; such a store gets the new columns (empty) when opened. A
#: newer one is refused, not misread.
STORE_VERSION = 2
#: The part of kwa_batch the store's tables are, in ``kwa_schema``.
STORE_PART = "store"
#: The store's tables.
TABLES = ("status_updates", "incoming_messages")

# Columns added since version 1, by table: (name, SQLite type, PostgreSQL type).
_ADDED = {
    "status_updates": (
        ("price", "REAL", "DOUBLE PRECISION"), ("billable", "INTEGER", "BOOLEAN"),
        ("pricing_category", "TEXT", "TEXT"), ("business", "TEXT", "TEXT"),
    ),
    "incoming_messages": (("reply_to", "TEXT", "TEXT"), ("payload", "TEXT", "TEXT")),
}  # fmt: skip
_BUSY_TIMEOUT_S = 5.0

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS status_updates (
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    recipient TEXT,
    error_code TEXT,
    error TEXT,
    ref TEXT,
    ref1 TEXT,
    ref2 TEXT,
    price REAL,
    billable INTEGER,
    pricing_category TEXT,
    business TEXT,
    PRIMARY KEY (message_id, status)
);
CREATE TABLE IF NOT EXISTS incoming_messages (
    key TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    business TEXT,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    type TEXT,
    name TEXT,
    body TEXT,
    media_url TEXT,
    reply_to TEXT,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS incoming_by_pair ON incoming_messages (customer, business);
"""

_POSTGRES_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS status_updates (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        tx XID8 NOT NULL DEFAULT pg_current_xact_id(),
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        recipient TEXT,
        error_code TEXT,
        error TEXT,
        ref TEXT,
        ref1 TEXT,
        ref2 TEXT,
        price DOUBLE PRECISION,
        billable BOOLEAN,
        pricing_category TEXT,
        business TEXT,
        PRIMARY KEY (message_id, status)
    )""",
    "CREATE INDEX IF NOT EXISTS status_updates_by_receipt ON status_updates (received_at, seq)",
    "CREATE INDEX IF NOT EXISTS status_updates_by_tx ON status_updates (tx)",
    """CREATE TABLE IF NOT EXISTS incoming_messages (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        key TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        business TEXT,
        at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        type TEXT,
        name TEXT,
        body TEXT,
        media_url TEXT,
        reply_to TEXT,
        payload TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS incoming_by_receipt ON incoming_messages (received_at, seq)",
    "CREATE INDEX IF NOT EXISTS incoming_by_pair ON incoming_messages (customer, business)",
)
# Version 1 to 2: the columns added since, empty.
_POSTGRES_MIGRATIONS = {
    2: tuple(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}"
        for table, added in _ADDED.items()
        for name, _, kind in added
    )
}


def _text_time(value: datetime) -> str:
    # One fixed format, so that times sort as text too.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class SqliteTables:
    """A store's tables in a SQLite file (created when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,  # autocommit: each callback is its own transaction
                check_same_thread=False,  # guarded by the store's lock
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                _create_or_upgrade(connection, self.path)
            except sqlite3.DatabaseError as exc:
                connection.close()
                raise InputError(f"{self.path}: not a callback store ({exc})") from None
            except InputError:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def open(self) -> None:
        """Open the file now (creating or upgrading its tables)."""
        self._connect()

    def insert(self, table: str, columns: Sequence[str], row: Sequence[Any]) -> bool:
        """Insert a row unless its key is there; True when it was new."""
        values = tuple(
            _text_time(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v
            for v in row
        )
        sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        return self._connect().execute(sql, values).rowcount == 1

    def rows(self, table: str, columns: Sequence[str]) -> list[Any]:
        """Every row, oldest received first."""
        sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY received_at, rowid"
        return self._connect().execute(sql).fetchall()

    def updates_with_codes(
        self, columns: Sequence[str], codes: Sequence[str], since: datetime, after: int
    ) -> tuple[list[Any], int]:
        """Status updates with these codes received since ``since`` and stored after row
        ``after``; and the last row now."""
        connection = self._connect()
        # Up to the last row now: one stored meanwhile is read next time, once.
        last = int(connection.execute("SELECT max(rowid) FROM status_updates").fetchone()[0] or 0)
        if not codes:
            return [], last
        sql = (
            f"SELECT {', '.join(columns)} FROM status_updates WHERE rowid > ? AND rowid <= ? "
            f"AND received_at >= ? AND error_code IN ({', '.join('?' * len(codes))}) "
            "ORDER BY received_at, rowid"
        )
        return connection.execute(sql, (after, last, _text_time(since), *codes)).fetchall(), last

    def version(self) -> tuple[int, int]:
        """Changes whenever the file does (written by this connection or another)."""
        connection = self._connect()
        changed_elsewhere = connection.execute("PRAGMA data_version").fetchone()[0]
        return int(changed_elsewhere), connection.total_changes

    def count(self, table: str) -> int:
        """How many rows ``table`` holds."""
        return int(self._connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        """Close the connection (opened again on next use)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _create_or_upgrade(connection: sqlite3.Connection, path: Path) -> None:
    """Create the tables, or add the columns a store of an older version lacks."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > STORE_VERSION:
        raise InputError(
            f"{path}: a callback store of a newer format ({version}; this kwa_batch reads up "
            f"to {STORE_VERSION}): upgrade kwa_batch to read it"
        )
    connection.executescript(_SQLITE_SCHEMA)
    if version == STORE_VERSION:
        return
    with connection:  # one transaction: a store is upgraded whole or not at all
        connection.execute("BEGIN IMMEDIATE")
        for table, added in _ADDED.items():
            have = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            for name, kind, _ in added:
                if name not in have:
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        connection.execute(f"PRAGMA user_version = {STORE_VERSION}")


class PostgresTables:
    """A store's tables in a PostgreSQL database (created on first use unless ``create`` is
    False: then a database without them is refused, as a missing file is).

    One connection, opened on first use and again after a failure (a restarted server),
    in autocommit: each callback is its own transaction, committed before it is answered.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url.strip()
        self.shown = redact(self.url)
        self._create = create
        self._connection: psycopg.Connection[Any] | None = None
        # updates_with_codes: the rows returned at or above the token it gave last.
        self._above: dict[int, frozenset[int]] = {}

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            connection = connect(self.url, application_name="kwa_batch store")
            try:
                connection.execute("SET TIME ZONE 'UTC'")
                if not self._create:
                    self._require_store(connection)
                ensure_schema(
                    connection, STORE_PART, STORE_VERSION, _POSTGRES_SCHEMA,
                    _POSTGRES_MIGRATIONS, url=self.url,
                )  # fmt: skip
            except BaseException as exc:
                connection.close()
                if isinstance(exc, _driver_errors()):
                    raise self._failed("its tables cannot be made", exc) from None
                raise
            self._connection = connection
        return self._connection

    def _require_store(self, connection: psycopg.Connection[Any]) -> None:
        found = connection.execute("SELECT to_regclass('kwa_schema') IS NOT NULL").fetchone()
        row = None
        if found and found[0]:
            row = connection.execute(
                "SELECT version FROM kwa_schema WHERE part = %s", (STORE_PART,)
            ).fetchone()
        if row is None:
            raise InputError(
                f"{self.shown}: no callback store in this database (kwa-batch receive "
                f"--store {self.shown} creates it)"
            )

    def _failed(self, what: str, exc: BaseException) -> DatabaseError:
        """A driver's error as one line without the password; the connection is dropped
        when it is broken, so that the next use connects again."""
        if self._connection is not None and self._connection.broken:
            self._connection.close()
            self._connection = None
        text = " ".join(str(exc).split()) or type(exc).__name__
        password = urlsplit(self.url).password
        if password:
            text = text.replace(password, "***")
        return DatabaseError(f"{self.shown}: {what}: {text}", url=self.shown)

    def _run(self, what: str, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        connection = self._connect()
        try:
            return connection.execute(sql, params)
        except _driver_errors() as exc:
            raise self._failed(what, exc) from None

    def open(self) -> None:
        """Connect now (creating or migrating the tables)."""
        self._connect()

    def insert(self, table: str, columns: Sequence[str], row: Sequence[Any]) -> bool:
        """Insert a row unless its key is there (whoever inserts it at the same moment);
        True when it was new."""
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
        )
        return self._run(f"a row cannot be stored in {table}", sql, row).rowcount == 1

    def rows(self, table: str, columns: Sequence[str]) -> list[Any]:
        """Every row, oldest received first."""
        sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY received_at, seq"
        return self._run(f"{table} cannot be read", sql).fetchall()

    def updates_with_codes(
        self, columns: Sequence[str], codes: Sequence[str], since: datetime, after: int
    ) -> tuple[list[Any], int]:
        """As :meth:`SqliteTables.updates_with_codes`, but ``after`` and the token returned
        are transaction ids: every transaction before the token has ended, so a row read
        from below it is never followed by one stored late beneath it (several processes
        insert at once, and a row numbered first may be committed last).

        The token is the oldest transaction still running in the whole cluster, which a
        transaction left open elsewhere (another application, another database) holds
        back: so rows at or above it are read too, at once, and those already returned
        above the token are remembered (by their ``seq``) and not returned again by the
        next call with that token. A reader never waits on someone else's transaction.
        """
        what = "status_updates cannot be read"
        found = self._run(
            what, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        ).fetchone()
        top = max(int(found[0]) if found else after, after)
        if not codes:
            return [], top
        sql = (
            f"SELECT seq, tx::text::bigint, {', '.join(columns)} FROM status_updates "
            "WHERE tx >= %s::text::xid8 AND received_at >= %s "
            "AND error_code = ANY(%s) ORDER BY received_at, seq"
        )
        rows = self._run(what, sql, (str(after), since, list(codes))).fetchall()
        returned = self._above.get(after, frozenset())
        fresh = [row[2:] for row in rows if row[0] not in returned]
        self._above = {top: frozenset(row[0] for row in rows if row[1] >= top)}
        return fresh, top

    def version(self) -> tuple[int, int]:
        """Changes whenever a row is stored, by any process (rows are never deleted)."""
        return self.count("status_updates"), self.count("incoming_messages")

    def count(self, table: str) -> int:
        """How many rows ``table`` holds."""
        found = self._run(f"{table} cannot be read", f"SELECT count(*) FROM {table}").fetchone()
        return int(found[0]) if found else 0

    def close(self) -> None:
        """Close the connection (opened again on next use)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _driver_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (psycopg.Error,)
