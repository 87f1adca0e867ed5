"""The callback store: every distinct callback Kaleyra sent us, in a SQLite file or in a
PostgreSQL database.

It holds two kinds of facts, each written once however often Kaleyra repeats it:

- **status updates**, one per ``(message_id, status)``: the first ``delivered`` callback for
  a message is kept, a repeat of it is ignored. A message's delivery status is *derived*
  from its updates (:func:`kwa_batch.receipts.load_receipts`), never overwritten, so it
  cannot go backwards whatever order the callbacks arrive in: ``sent < delivered < read``,
  and ``failed`` / ``not-sent`` are final (the first final one received wins);
- **incoming messages** (replies from recipients), one per distinct callback: they open
  the 24-hour conversation windows (:func:`kwa_batch.receipts.conversations.open_windows`).

Every callback is committed before it is acknowledged and survives the receiver being
killed; readers (a notebook calling ``load_receipts``) never block the receiver. A file
(the default, which needs nothing) runs in WAL mode with ``synchronous=NORMAL``: SQLite
has one writer at a time, so one receiver process writes it. A database
(``CallbackStore("postgresql://kwa@db/campaigns")``, wherever a store's path is taken) is
written by any number of processes at once, on one machine or several
(``kwa-batch receive --workers N``), each callback still stored once. Both hold the same
tables and give the same frames (:mod:`kwa_batch.receipts.store_tables`).

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
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import pandas as pd

from ..actions import normal_code
from ..database import is_database_url, redact
from ..errors import InputError
from .store_tables import STORE_VERSION as STORE_VERSION
from .store_tables import TABLES, PostgresTables, SqliteTables

__all__ = [
    "FINAL_STATUSES",
    "STATUS_RANK",
    "CallbackStore",
    "IncomingMessage",
    "StatusUpdate",
    "message_key",
    "message_keys",
    "opened_store",
    "store_name",
]

# Delivery statuses (what Kaleyra's callbacks say became of a message the API took:
# kwa_batch.results.DELIVERY_STATUSES) are another term than a row's result status
# (kwa_batch.results.Status), though "sent" and "failed" are spelled alike in both.

#: Delivery statuses after which nothing changes.
FINAL_STATUSES = ("failed", "not-sent")
#: How far along each status is; a message's status is its highest-ranked update. Other
#: statuses (Kaleyra may add some) are kept with rank 0: they never replace a known one.
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4, "not-sent": 4}

_STATUS_COLUMNS = ("message_id", "status", "at", "received_at", "recipient", "error_code",
                   "error", "ref", "ref1", "ref2", "price", "billable", "pricing_category",
                   "business")  # fmt: skip
_INCOMING_COLUMNS = ("key", "customer", "business", "at", "received_at", "type", "name",
                     "body", "media_url", "reply_to", "payload")  # fmt: skip
_TIMES = ("at", "received_at")
_NUMBERS = ("price",)
_FLAGS = ("billable",)
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


def _zoned(value: datetime) -> datetime:
    """``value`` itself; refused without a time zone (a store's times are instants)."""
    if value.tzinfo is None:
        raise ValueError(f"a time without a time zone: {value!r} (use datetime.now(UTC))")
    return value


class CallbackStore:
    """Status updates and incoming messages, in a SQLite file or a PostgreSQL database
    (created when missing).

    Safe to share between threads; the connection opens on first use and :meth:`close`
    may be followed by more use (it reopens). A store on PostgreSQL may be written by
    several processes at once (a receiver's ``--workers``, on several machines): each
    callback is still stored once.

    Args:
        target: the SQLite file, or a database's URL (``postgresql://user@host/db``: see
            :mod:`kwa_batch.database`; its password never shows).
        create: make the tables where they are missing (False: a database without them is
            refused with :class:`~kwa_batch.errors.InputError`, as readers do).

    Attributes:
        target: the path or the URL, as given (the URL holds its password: never show it).
        shown: the path, or the URL with its password hidden: what messages name.
        path: the SQLite file; None for a database.
    """

    def __init__(self, target: str | Path, *, create: bool = True) -> None:
        self._lock = threading.Lock()
        self._tables: SqliteTables | PostgresTables
        if is_database_url(target):
            self.target: str | Path = str(target).strip()
            self.path: Path | None = None
            self._tables = PostgresTables(str(target), create=create)
            self.shown = self._tables.shown
        else:
            self.path = Path(target)
            self.target = self.path
            self.shown = str(self.path)
            self._tables = SqliteTables(self.path)

    def __repr__(self) -> str:
        return f"CallbackStore({self.shown!r})"

    def open(self) -> Self:
        """Open the store now (creating or upgrading its tables), so that a bad path or
        database fails here; return self.

        Raises:
            InputError: the file is not a callback store, or one of a newer format.
            DatabaseError: the database cannot be used (its message says why).
        """
        with self._lock:
            self._tables.open()
        return self

    def add_status(self, update: StatusUpdate) -> bool:
        """Store a status update; False when this ``(message_id, status)`` was stored already."""
        row = (
            update.message_id,
            update.status,
            _zoned(update.at),
            _zoned(update.received_at),
            update.recipient,
            normal_code(update.error_code),
            update.error,
            update.ref,
            update.ref1,
            update.ref2,
            update.price,
            update.billable,
            update.pricing_category,
            update.business,
        )
        with self._lock:
            return self._tables.insert("status_updates", _STATUS_COLUMNS, row)

    def add_incoming(self, message: IncomingMessage) -> bool:
        """Store an incoming message; False when the same callback was stored already."""
        row = (
            message.key,
            message.customer,
            message.business,
            _zoned(message.at),
            _zoned(message.received_at),
            message.type,
            message.name,
            message.body,
            message.media_url,
            message.reply_to,
            message.payload,
        )
        with self._lock:
            return self._tables.insert("incoming_messages", _INCOMING_COLUMNS, row)

    def status_updates(self) -> pd.DataFrame:
        """Every stored status update, oldest received first (times as UTC timestamps)."""
        with self._lock:
            rows = self._tables.rows("status_updates", _STATUS_COLUMNS)
        return _as_frame(rows, _STATUS_COLUMNS)

    def incoming_messages(self) -> pd.DataFrame:
        """Every stored incoming message, oldest received first (times as UTC timestamps)."""
        with self._lock:
            rows = self._tables.rows("incoming_messages", _INCOMING_COLUMNS)
        return _as_frame(rows, _INCOMING_COLUMNS)

    def updates_with_codes(
        self, codes: Collection[str], since: datetime, after: int = 0
    ) -> tuple[pd.DataFrame, int]:
        """The status updates whose ``error_code`` is one of ``codes``, received at or after
        ``since`` and stored after ``after``; and a token to pass as ``after`` next time
        (a reader that polls reads only what is new, each update once).

        The frame has :meth:`status_updates`' columns, oldest received first. This is what
        :func:`kwa_batch.send` reads while it sends (``receipts=``: see
        :mod:`kwa_batch.sending.watch`).
        """
        wanted = sorted({str(code) for code in codes})
        with self._lock:
            rows, last = self._tables.updates_with_codes(
                _STATUS_COLUMNS, wanted, _zoned(since), after
            )
        return _as_frame(rows, _STATUS_COLUMNS), max(last, after)

    def version(self) -> tuple[int, int]:
        """A token that changes whenever the store does (written by this connection or by
        another): a reader that polls can skip a read when it is unchanged."""
        with self._lock:
            return self._tables.version()

    def counts(self) -> dict[str, int]:
        """How many status updates and incoming messages are stored."""
        with self._lock:
            return {table: self._tables.count(table) for table in TABLES}

    def close(self) -> None:
        """Close the connection (idempotent; using the store again reopens it)."""
        with self._lock:
            self._tables.close()

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
                pd.to_datetime(pd.Series(column, dtype=object), utc=True, format="ISO8601")
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


def store_name(store: str | Path | CallbackStore) -> str:
    """A store as messages name it: its path, or its database's URL without the password.

    >>> store_name("postgresql://kwa:s3cret@db/campaigns")
    'postgresql://kwa:***@db/campaigns'
    """
    if isinstance(store, CallbackStore):
        return store.shown
    return redact(str(store)) if is_database_url(store) else str(store)


@contextmanager
def opened_store(store: str | Path | CallbackStore) -> Iterator[CallbackStore]:
    """Yield ``store`` itself, or a store opened on a path or a database's URL (closed
    afterwards).

    Raises:
        InputError: the path does not exist, or the database holds no callback store (a
            store is never created just to be read).
        DatabaseError: the database cannot be used.
    """
    if isinstance(store, CallbackStore):
        yield store
        return
    if is_database_url(store):
        on_database = CallbackStore(store, create=False)
        try:
            yield on_database
        finally:
            on_database.close()
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
