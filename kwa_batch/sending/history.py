"""The recipients earlier runs may have reached, read from their journals, for the daily limit.

``history=`` names a folder of journals. Every file in it and in its sub-folders (linked ones
too; a folder that cannot be listed stops the run) is looked at:
a kwa_batch journal (whatever its name: ``*.db``, ``*.sqlite``…) is counted; any other SQLite
file, and a ``*.db``/``*.sqlite``/``*.sqlite3`` file that is not SQLite at all, is refused
(it may be a damaged journal, or a store that does not belong there); other files (a results
workbook, a CSV) are passed over. Each journal is opened read-only, never written, and must
be read *fully*: a file that cannot be (damaged pages, a time that is not a time) stops the
run before anything is sent, since counting without it could go over the limit
(:class:`~kwa_batch.errors.JournalError`, exit 2). A journal in use by another running send
is locked: its sends cannot be counted, so the run refuses to start as well
(:class:`~kwa_batch.errors.JournalLockedError`).

The run's own journal always counts (a campaign resumed within 24 hours shares the limit with
its earlier runs); in the folder or not, it is read once, through the run's connection (the
run holds its lock). A journal on PostgreSQL counts every campaign of its database: the
daily limit is the business portfolio's (:meth:`RunJournal.recent_sends`).

**What counts.** A row recorded ``sent``, and also one ``in_flight`` (a run died while its
request was out) or ``unknown`` (no clear answer): either may have reached the recipient, so
each is counted at the time it was recorded (its ``sent_at``, else when the journal last
wrote it). The journal does not record a row's message type, so every such row counts as
business-initiated. Both choices can only under-use the limit, never exceed it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from ..errors import JournalError, JournalLockedError
from .journal import (
    APPLICATION_ID,
    COUNTED_QUERY,
    COUNTED_STATES,
    RunJournal,
    counted_times,
    history_unreadable,
)

__all__ = ["COUNTED_STATES", "recent_recipients"]

log = logging.getLogger(__name__)
_SQLITE = b"SQLite format 3\x00"
_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")
_SIDECARS = ("-wal", "-shm", "-journal")


def recent_recipients(
    folder: Path | None, since: datetime, journal: RunJournal | None = None
) -> dict[str, datetime]:
    """Recipient → the latest time a message to them may have gone after ``since``, over
    the journals under ``folder`` (and the run's own ``journal``, when it is open).

    Raises:
        JournalLockedError: a journal in the folder is in use by a running send.
        JournalError: a file in the folder cannot be read fully, or does not belong there.
    """
    latest: dict[str, datetime] = {}
    own = _identity(Path(journal.path)) if journal is not None else None
    sources = [journal.recent_sends()] if journal is not None else []
    for path in _journals(folder) if folder is not None else []:
        if own is None or _identity(path) != own:
            sources.append(_read(path))
    for rows in sources:
        for recipient, moment in rows:
            if moment > since and (recipient not in latest or latest[recipient] < moment):
                latest[recipient] = moment
    return latest


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder``, through linked folders too (each folder once); a folder
    that cannot be listed is refused, never passed over."""
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []

    def refuse(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        raise _unreadable(where, f"it cannot be listed ({exc.strerror or exc})")

    for root, folders, names in os.walk(folder, onerror=refuse, followlinks=True):
        identity = _identity(Path(root))
        if identity in seen:  # a link back up: already walked
            folders[:] = []
            continue
        if identity is not None:
            seen.add(identity)
        found.extend(Path(root) / name for name in names)
    return sorted(found)


def _journals(folder: Path) -> list[Path]:
    """The files under ``folder`` that must be read as journals (see the module)."""
    found = []
    for path in _files(folder):
        if path.name.endswith(_SIDECARS) or not path.is_file():
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(len(_SQLITE))
        except OSError as exc:
            raise _unreadable(path, exc.strerror or str(exc)) from None
        if head == _SQLITE:
            found.append(path)
        elif path.suffix.lower() in _DATABASE_SUFFIXES:
            raise _unreadable(path, "it is not a SQLite file (a damaged journal?)")
        else:
            log.debug("history %s: not a journal, passed over", path)
    return found


def _unreadable(path: Path, why: str) -> JournalError:
    return history_unreadable(path, why)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _rows(db: sqlite3.Connection, path: Path) -> list[tuple[str, datetime]]:
    return counted_times(db.execute(COUNTED_QUERY), path)


def _read(path: Path) -> list[tuple[str, datetime]]:
    """The counted rows of one journal, opened read-only."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error as exc:
        raise _unreadable(path, str(exc)) from None
    try:
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise JournalError(
                f"history {path} is a SQLite file but not a kwa_batch journal: move it out of "
                "the history folder (only the journals of earlier runs belong there)",
                path=str(path),
            )
        return _rows(db, path)
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise JournalLockedError(
                f"history journal {path} is in use by a running send: its sends cannot be "
                "counted against the daily limit; wait for that run to finish, or move the "
                "file out of the history folder if it does not share the limit",
                path=str(path),
            ) from None
        raise _unreadable(path, str(exc)) from None
    finally:
        db.close()
