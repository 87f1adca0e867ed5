"""The callback store: a SQLite file of every distinct callback Kaleyra sent us.

It holds two kinds of facts, each written once however often Kaleyra repeats it:

- **status updates**, one per ``(message_id, status)``: the first ``delivered`` callback for
  a message is kept, a repeat of it is ignored. A message's delivery status is *derived*
  from its updates (:func:`kwa_batch.receipts.load_receipts`), never overwritten, so it
  cannot go backwards whatever order the callbacks arrive in: ``sent < delivered < read``,
  and ``failed`` / ``not-sent`` are final (the first final one received wins);
- **incoming messages** (replies from recipients), one per distinct callback: they open
  the 24-hour conversation windows (:func:`kwa_batch.receipts.conversations.open_windows`).

The file runs in WAL mode with ``synchronous=NORMAL``: every callback is committed before
it is acknowledged, survives the receiver being killed, and readers (a notebook calling
``load_receipts``) never block the receiver. Several processes may write to one store
(e.g. gunicorn workers): SQLite serialises them, each waiting up to 5 seconds.

Example:
    >>> with CallbackStore("receipts.db") as store:  # doctest: +SKIP
    ...     store.counts()
    {'status_updates': 1200, 'incoming_messages': 14}
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import pandas as pd

from ..actions import normal_code
from ..errors import InputError

__all__ = [
    "FINAL_STATUSES",
    "STATUS_RANK",
    "CallbackStore",
    "IncomingMessage",
    "StatusUpdate",
    "message_key",
    "message_keys",
    "opened_store",
]

# Delivery statuses (what Kaleyra's callbacks say became of a message the API took:
# kwa_batch.results.DELIVERY_STATUSES) are another term than a row's result status
# (kwa_batch.results.Status), though "sent" and "failed" are spelled alike in both.

#: Delivery statuses after which nothing changes.
FINAL_STATUSES = ("failed", "not-sent")
#: How far along each status is; a message's status is its highest-ranked update. Other
#: statuses (Kaleyra may add some) are kept with rank 0: they never replace a known one.
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4, "not-sent": 4}

_SCHEMA = """
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
#: ``PRAGMA user_version``: the store's format. 1 had no prices, business number on status
#: updates, ``reply_to`` or ``payload``; such a store gets the new columns (empty) when
#: opened. A newer one is refused, not misread.
STORE_VERSION = 2
# Columns added since version 1, by table: (name, SQL type).
_ADDED = {
    "status_updates": (
        ("price", "REAL"), ("billable", "INTEGER"), ("pricing_category", "TEXT"),
        ("business", "TEXT"),
    ),
    "incoming_messages": (("reply_to", "TEXT"), ("payload", "TEXT")),
}  # fmt: skip
_STATUS_COLUMNS = ("message_id", "status", "at", "received_at", "recipient", "error_code",
                   "error", "ref", "ref1", "ref2", "price", "billable", "pricing_category",
                   "business")  # fmt: skip
_INCOMING_COLUMNS = ("key", "customer", "business", "at", "received_at", "type", "name",
                     "body", "media_url", "reply_to", "payload")  # fmt: skip
_TIMES = ("at", "received_at")
_NUMBERS = ("price",)
_FLAGS = ("billable",)
_BUSY_TIMEOUT_S = 5.0
# Kaleyra's v1 answers name a message "<uuid>:0" (its first recipient), and some callbacks
# name it "<uuid>": both are one message (kaleyra-facts.md).
_FIRST_RECIPIENT = ":0"


def message_key(message_id: str) -> str:
    """What a message id is matched on: ``<uuid>:0`` and ``<uuid>`` are one message.

    >>> message_key("3f2a:0") == message_key("3f2a")
    True
    """
    text = message_id.strip()
    return text.removesuffix(_FIRST_RECIPIENT)


def message_keys(message_ids: pd.Series) -> pd.Series:
    """:func:`message_key` of a column (NA stays NA), computed for the column at once."""
    text = message_ids.astype("str").str.strip()
    return text.str.removesuffix(_FIRST_RECIPIENT)


@dataclass(frozen=True)
class StatusUpdate:
    """One delivery-status callback, normalised.

    Attributes:
        message_id: the ``message_id`` the send answer gave (``<uuid>:0``).
        status: lower case, Kaleyra's spelling (``not-sent`` with a hyphen).
        at: when it happened (the callback's ``timestamp``, else when it was received).
        received_at: when the receiver got it.
        recipient: the recipient in E.164 with ``+``, when the callback said.
        price: what the message cost, as the callback said (v1 ``price``), in the
            account's currency.
        billable: whether the message is billed (v2 ``pricing.billable``).
        pricing_category: what it is billed as (v2 ``pricing.category``: ``marketing``,
            ``utility``, ``authentication``, ``service``...).
        business: the business number that sent it, E.164 with ``+``, when the callback
            said (v2 ``metadata.display_phone_number``, v1 ``wanumber``).
    """

    message_id: str
    status: str
    at: datetime
    received_at: datetime
    recipient: str | None = None
    error_code: str | None = None
    error: str | None = None
    ref: str | None = None
    ref1: str | None = None
    ref2: str | None = None
    price: float | None = None
    billable: bool | None = None
    pricing_category: str | None = None
    business: str | None = None


@dataclass(frozen=True)
class IncomingMessage:
    """One incoming-message callback (a recipient wrote to the business number).

    Attributes:
        key: identifies the callback (a digest of its fields): a repeat has the same key.
        customer: who wrote, E.164 with ``+``.
        business: the business number written to, E.164 with ``+``; None when the
            callback did not say (its window then counts for every business number).
        at: when it was written (``created_at``, else when it was received).
        reply_to: the ``message_id`` of the message it answers, when the callback says
            (v1 ``reply_to``, v2 ``context.id``): ties a reply to its campaign row.
        payload: a quick-reply button's payload (or a list choice's id), when it is one.
    """

    key: str
    customer: str
    business: str | None
    at: datetime
    received_at: datetime
    type: str | None = None
    name: str | None = None
    body: str | None = None
    media_url: str | None = None
    reply_to: str | None = None
    payload: str | None = None


def _text_time(value: datetime) -> str:
    # One fixed format, so that times sort as text too.
    if value.tzinfo is None:
        raise ValueError(f"a time without a time zone: {value!r} (use datetime.now(UTC))")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class CallbackStore:
    """A SQLite file of status updates and incoming messages (created when missing).

    Safe to share between threads; the connection opens on first use and :meth:`close`
    may be followed by more use (it reopens).

    Args:
        path: the SQLite file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"CallbackStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        """The open connection (opening it, and creating the tables, when needed)."""
        if self._connection is None:
            connection = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,  # autocommit: each callback is its own transaction
                check_same_thread=False,  # guarded by self._lock
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

    def add_status(self, update: StatusUpdate) -> bool:
        """Store a status update; False when this ``(message_id, status)`` was stored already."""
        row = (
            update.message_id,
            update.status,
            _text_time(update.at),
            _text_time(update.received_at),
            update.recipient,
            normal_code(update.error_code),
            update.error,
            update.ref,
            update.ref1,
            update.ref2,
            update.price,
            None if update.billable is None else int(update.billable),
            update.pricing_category,
            update.business,
        )
        return self._insert("status_updates", _STATUS_COLUMNS, row)

    def add_incoming(self, message: IncomingMessage) -> bool:
        """Store an incoming message; False when the same callback was stored already."""
        row = (
            message.key,
            message.customer,
            message.business,
            _text_time(message.at),
            _text_time(message.received_at),
            message.type,
            message.name,
            message.body,
            message.media_url,
            message.reply_to,
            message.payload,
        )
        return self._insert("incoming_messages", _INCOMING_COLUMNS, row)

    def _insert(self, table: str, columns: tuple[str, ...], row: tuple[Any, ...]) -> bool:
        sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        with self._lock:
            return self._connect().execute(sql, row).rowcount == 1

    def status_updates(self) -> pd.DataFrame:
        """Every stored status update, oldest received first (times as UTC timestamps)."""
        return self._frame("status_updates", _STATUS_COLUMNS)

    def incoming_messages(self) -> pd.DataFrame:
        """Every stored incoming message, oldest received first (times as UTC timestamps)."""
        return self._frame("incoming_messages", _INCOMING_COLUMNS)

    def _frame(self, table: str, columns: tuple[str, ...]) -> pd.DataFrame:
        with self._lock:
            rows = (
                self._connect()
                .execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY received_at, rowid")
                .fetchall()
            )
        return _as_frame(rows, columns)

    def updates_with_codes(
        self, codes: Collection[str], since: datetime, after: int = 0
    ) -> tuple[pd.DataFrame, int]:
        """The status updates whose ``error_code`` is one of ``codes``, received at or after
        ``since`` and stored after row ``after``; and the store's last row, to pass as
        ``after`` next time (a reader that polls reads only what is new).

        The frame has :meth:`status_updates`' columns, oldest received first. This is what
        :func:`kwa_batch.send` reads while it sends (``receipts=``: see
        :mod:`kwa_batch.sending.watch`).
        """
        wanted = sorted({str(code) for code in codes})
        names = ", ".join(_STATUS_COLUMNS)
        sql = (
            f"SELECT {names} FROM status_updates WHERE rowid > ? AND rowid <= ? "
            "AND received_at >= ? "
            f"AND error_code IN ({', '.join('?' * len(wanted))}) ORDER BY received_at, rowid"
        )
        with self._lock:
            connection = self._connect()
            # Up to the last row now: one stored meanwhile is read next time, once.
            last = int(
                connection.execute("SELECT max(rowid) FROM status_updates").fetchone()[0] or 0
            )
            params = (after, last, _text_time(since), *wanted)
            rows = connection.execute(sql, params).fetchall() if wanted else []
        return _as_frame(rows, _STATUS_COLUMNS), max(last, after)

    def version(self) -> tuple[int, int]:
        """A token that changes whenever the store does (written by this connection or by
        another): a reader that polls can skip a read when it is unchanged."""
        with self._lock:
            connection = self._connect()
            changed_elsewhere = connection.execute("PRAGMA data_version").fetchone()[0]
            return int(changed_elsewhere), connection.total_changes

    def counts(self) -> dict[str, int]:
        """How many status updates and incoming messages are stored."""
        with self._lock:
            connection = self._connect()
            updates = connection.execute("SELECT count(*) FROM status_updates").fetchone()[0]
            incoming = connection.execute("SELECT count(*) FROM incoming_messages").fetchone()[0]
        return {"status_updates": int(updates), "incoming_messages": int(incoming)}

    def close(self) -> None:
        """Close the connection (idempotent; using the store again reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_frame(rows: list[Any], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows of a table as a frame: times as UTC timestamps, prices as Float64, flags as
    boolean, the rest as strings."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    frame = pd.DataFrame(
        {
            name: (
                pd.to_datetime(pd.Series(column, dtype="str"), utc=True, format="ISO8601")
                .astype("datetime64[us, UTC]")
                .array
                if name in _TIMES
                else pd.array(list(column), dtype="Float64")
                if name in _NUMBERS
                else pd.array(list(column), dtype="boolean")
                if name in _FLAGS
                else pd.array(list(column), dtype="str")
            )
            for name, column in zip(columns, values, strict=True)
        }
    )
    return frame


def _create_or_upgrade(connection: sqlite3.Connection, path: Path) -> None:
    """Create the tables, or add the columns a store of an older version lacks."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > STORE_VERSION:
        raise InputError(
            f"{path}: a callback store of a newer format ({version}; this kwa_batch reads up "
            f"to {STORE_VERSION}): upgrade kwa_batch to read it"
        )
    connection.executescript(_SCHEMA)
    if version == STORE_VERSION:
        return
    with connection:  # one transaction: a store is upgraded whole or not at all
        connection.execute("BEGIN IMMEDIATE")
        for table, added in _ADDED.items():
            have = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            for name, kind in added:
                if name not in have:
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        connection.execute(f"PRAGMA user_version = {STORE_VERSION}")


@contextmanager
def opened_store(store: str | Path | CallbackStore) -> Iterator[CallbackStore]:
    """Yield ``store`` itself, or a store opened on a path (closed afterwards).

    Raises:
        InputError: the path does not exist (a store is never created just to be read).
    """
    if isinstance(store, CallbackStore):
        yield store
        return
    path = Path(store)
    if not path.is_file():
        raise InputError(
            f"{path}: no such callback store (kwa-batch receive --store {path} creates it)"
        )
    refuse_foreign_database(path)
    opened = CallbackStore(path)
    try:
        yield opened
    finally:
        opened.close()


def refuse_foreign_database(path: Path) -> None:
    """Raise :class:`InputError` when ``path`` is a file but not a callback store (a run's
    journal, another SQLite file, a CSV…), before anything writes tables into it.

    An empty file is accepted (it becomes a store).
    """
    if path.stat().st_size == 0:
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
        if head != b"SQLite format 3\x00":
            raise InputError(f"{path}: not a callback store (not a SQLite file)")
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            connection.close()
    except (OSError, sqlite3.DatabaseError) as exc:
        raise InputError(f"{path}: not a callback store ({exc})") from None
    if tables and not {"status_updates", "incoming_messages"} <= tables:
        raise InputError(
            f"{path}: a SQLite file, but not a callback store (tables: "
            f"{', '.join(sorted(tables))}); is it a run's journal? Give the receiver's store"
        )
