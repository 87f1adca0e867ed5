"""The recipients earlier runs sent to, read from their journals, for the daily limit.

``history=`` names a folder of journals (``*.db`` files). Each is opened read-only, never
written. The run's own journal always counts (a campaign resumed within 24 hours shares the
limit with its earlier runs); in the folder or not, it is read once, through the run's
connection (the run holds its lock). A journal in use by another running send is locked: its sends
cannot be counted, and counting without them could go over the limit, so the run refuses
to start (:class:`~kwa_batch.errors.JournalLockedError`), saying which file.

The journal does not record a row's message type, so every row recorded as ``sent`` is
counted as business-initiated: this can only under-use the limit, never exceed it.
Times are those the journals recorded (the real time of each send), whatever ``now=`` says.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ..errors import JournalLockedError
from .journal import APPLICATION_ID, Journal

__all__ = ["recent_recipients"]

log = logging.getLogger(__name__)

_QUERY = "SELECT recipient, MAX(sent_at) FROM rows WHERE state = 'sent' GROUP BY recipient"


def recent_recipients(
    folder: Path | None, since: datetime, journal: Journal | None = None
) -> dict[str, datetime]:
    """Recipient → the latest time a message to them was recorded sent after ``since``,
    over the journals in ``folder`` (and the run's own ``journal``, when it is open).

    Raises:
        JournalLockedError: a journal in the folder is in use by a running send.
    """
    latest: dict[str, datetime] = {}
    own = _identity(journal.path) if journal is not None else None
    sources: list[tuple[Path, sqlite3.Connection | None]] = []
    if journal is not None:
        sources.append((journal.path, journal.db))
    for path in sorted(folder.glob("*.db")) if folder is not None else []:
        if path.is_file() and _identity(path) != own:
            sources.append((path, None))
    for path, db in sources:
        rows = _read(path) if db is None else _rows(db)
        for recipient, text in rows:
            try:
                moment = datetime.fromisoformat(text or "")
            except (TypeError, ValueError):
                if text:  # a damaged time: that row cannot be placed in the window
                    log.warning("history %s: a sent_at that is not a time: %r", path, text)
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            if moment > since and (recipient not in latest or latest[recipient] < moment):
                latest[recipient] = moment
    return latest


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _rows(db: sqlite3.Connection) -> list[tuple[str, str | None]]:
    return list(db.execute(_QUERY))


def _read(path: Path) -> list[tuple[str, str | None]]:
    """The sent rows of one journal, opened read-only; [] (with a warning) for a file that is
    not a journal."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error as exc:
        log.warning("history %s: skipped, it cannot be opened (%s)", path, exc)
        return []
    try:
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            log.warning("history %s: skipped, it is not a kwa_batch journal", path)
            return []
        return _rows(db)
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise JournalLockedError(
                f"history journal {path} is in use by a running send: its sends cannot be "
                "counted against the daily limit; wait for that run to finish, or move the "
                "file out of the history folder if it does not share the limit",
                path=str(path),
            ) from None
        log.warning("history %s: skipped, it cannot be read (%s)", path, exc)
        return []
    finally:
        db.close()
