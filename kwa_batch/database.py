"""PostgreSQL: where a journal or a callback store lives when several processes share it.

A journal or a store is a SQLite file by default, which needs nothing; past one process
(several ``kwa-batch send`` workers on one campaign, a receiver with ``--workers N``) it is
a PostgreSQL database, named by its URL wherever a path is taken::

    kwa-batch send recipients.csv --journal postgresql://kwa@db.internal/campaigns --campaign july
    kwa-batch receive --store postgresql://kwa@db.internal/campaigns --workers 4

This module is the one place that knows a URL from a path (:func:`is_database_url`), shows
a URL without its password (:func:`redact`), connects (:func:`connect`, with the driver,
psycopg 3, imported only then: ``pip install 'kwa-batch[postgresql]'``), and keeps the
version of kwa_batch's tables (:func:`ensure_schema`): created on first use, migrated
forward, refused when a newer kwa_batch wrote them.

Every failure is a :class:`~kwa_batch.errors.DatabaseError` whose message names the URL
(password hidden), what went wrong and what to do; the password never appears in a
message, a log line or a repr.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .errors import DatabaseError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "SCHEMA_TABLE",
    "SCHEMES",
    "DatabaseError",
    "connect",
    "ensure_schema",
    "is_database_url",
    "redact",
]

#: The URL schemes that name a PostgreSQL database (libpq's two spellings).
SCHEMES = ("postgresql://", "postgres://")
#: The table that records, per part of kwa_batch (``journal``, ``store``), its tables' version.
SCHEMA_TABLE = "kwa_schema"
#: What to install when the driver is missing.
INSTALL = "pip install 'kwa-batch[postgresql]'"

_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")
#: The advisory lock every set-up of kwa_batch's tables holds (a signed 64-bit key).
_SET_UP_LOCK = int.from_bytes(hashlib.sha256(b"kwa_batch:schema").digest()[:8], "big") - (1 << 63)


def is_database_url(target: object) -> bool:
    """True if ``target`` names a PostgreSQL database rather than a file.

    >>> is_database_url("postgresql://kwa@db/campaigns"), is_database_url("run.db")
    (True, False)
    """
    return isinstance(target, str) and target.strip().lower().startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL with its password (in the authority or as ``password=``) shown as ``***``.

    The authority is read as libpq reads it, up to the last ``@``: a password may hold
    ``#``, ``?`` or ``/`` unencoded, which a URL parser takes for the end of the authority
    (and would then show the password). Where in doubt, more is hidden, never less.

    >>> redact("postgresql://kwa:s3cret@db:5432/campaigns?password=x&sslmode=require")
    'postgresql://kwa:***@db:5432/campaigns?password=***&sslmode=require'
    >>> redact("postgresql://kwa:pa#ss?w/rd@db/campaigns")
    'postgresql://kwa:***@db/campaigns'
    """
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _PASSWORD_PARAM.sub(r"\1***", text)
    user, at, after = _credentials(rest)
    if at and ":" in user:
        rest = f"{user.split(':', 1)[0]}:***@{after}"
    return scheme + "://" + _PASSWORD_PARAM.sub(r"\1***", rest)


def _credentials(rest: str) -> tuple[str, str, str]:
    """``rest`` (the URL after ``://``) split at the ``@`` that ends its user and password:
    the last one (a password may hold any character but ``@`` unencoded)."""
    user, at, after = rest.rpartition("@")
    return (user, at, after) if at else ("", "", rest)


def _password(url: str) -> str | None:
    """The password a URL carries in its authority, as written (``None``: none)."""
    _, sep, rest = str(url).partition("://")
    user, at, _ = _credentials(rest) if sep else ("", "", "")
    return user.split(":", 1)[1] if at and ":" in user else None


def connect(
    url: str,
    *,
    application_name: str = "kwa_batch",
    autocommit: bool = True,
    connect_timeout: float = 10.0,
) -> psycopg.Connection[Any]:
    """Open a connection to the database at ``url``.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?…]`` (libpq's form; the
            password may also come from ``PGPASSWORD`` or ``~/.pgpass``).
        application_name: how the connection shows in ``pg_stat_activity``.
        autocommit: each statement its own transaction unless a ``with conn.transaction():``
            block groups them (the default here, so that nothing is left open by mistake).
        connect_timeout: seconds to wait for the server before giving up.

    Raises:
        DatabaseError: the driver is not installed, or the server cannot be reached or
            refuses the login; the message names the URL without its password.
    """
    shown = redact(url)
    try:
        import psycopg
    except ImportError:
        raise DatabaseError(
            f"{shown} cannot be used: PostgreSQL's driver (psycopg 3) is not installed; "
            f"install it with {INSTALL}",
            url=shown,
        ) from None
    try:
        return psycopg.connect(
            url.strip(),
            autocommit=autocommit,
            application_name=application_name,
            connect_timeout=max(1, round(connect_timeout)),
        )
    except (psycopg.Error, ValueError, UnicodeError) as exc:  # a URL it cannot parse too
        raise DatabaseError(
            f"{shown} cannot be used: {_reason(exc, url)}; check the URL, that the server "
            "is running and that this user may log in (a password can also come from "
            "PGPASSWORD or ~/.pgpass)",
            url=shown,
        ) from None


def _reason(exc: BaseException, url: str) -> str:
    """The driver's message on one line, with anything that could carry the password
    removed (libpq quotes the connection string in some messages)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    written = _password(url)
    secrets = {written, os.environ.get("PGPASSWORD")}
    if written:
        secrets.add(unquote(written))
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _PASSWORD_PARAM.sub(r"\1***", text)


def ensure_schema(
    conn: psycopg.Connection[Any],
    part: str,
    version: int,
    create: Sequence[str],
    migrations: Mapping[int, Sequence[str]] | None = None,
    *,
    url: str = "",
) -> int:
    """Create or migrate ``part``'s tables (``journal``, ``store``) to ``version``.

    Several processes may start at once, for one part or several (a journal and a store
    share :data:`SCHEMA_TABLE`): every set-up holds the same transaction-level advisory
    lock, so one creates and the others find the tables made.

    Args:
        conn: an open connection (autocommit: the set-up is one transaction of its own).
        part: which part of kwa_batch the tables belong to.
        version: the version this kwa_batch writes.
        create: statements that create the current version's tables (``IF NOT EXISTS``).
        migrations: for each version ``v`` (from 2 up), the statements that bring tables
            of version ``v - 1`` to ``v``.
        url: the database's URL, for messages (its password is hidden).

    Returns:
        The version found before (0 where the tables were new).

    Raises:
        DatabaseError: the tables were written by a newer kwa_batch.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SET_UP_LOCK,))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} ("
            "part TEXT PRIMARY KEY, version INTEGER NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
        )
        row = conn.execute(
            f"SELECT version FROM {SCHEMA_TABLE} WHERE part = %s", (part,)
        ).fetchone()
        found = int(row[0]) if row else 0
        if found > version:
            shown = redact(url) if url else "the database"
            raise DatabaseError(
                f"{shown}: its kwa_batch {part} tables were written by a newer kwa_batch "
                f"(version {found}; this one reads up to {version}); upgrade kwa_batch, or "
                "use another database",
                url=shown,
            )
        if found == version:
            return found
        if found == 0:
            for statement in create:
                conn.execute(statement)
        else:
            for step in range(found + 1, version + 1):
                for statement in (migrations or {}).get(step, ()):
                    conn.execute(statement)
        conn.execute(
            f"INSERT INTO {SCHEMA_TABLE} (part, version, updated_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (part) DO UPDATE SET version = excluded.version, "
            "updated_at = excluded.updated_at",
            (part, version),
        )
    return found
