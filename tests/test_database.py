"""kwa_batch.database against a real PostgreSQL server: URLs, passwords, schema versions."""

from __future__ import annotations

import threading

import pytest

from kwa_batch.database import connect, ensure_schema, is_database_url, redact
from kwa_batch.errors import DatabaseError

CREATE = ["CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY, name TEXT)"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("postgresql://u@h/d", True),
        ("postgres://u@h/d", True),
        ("  POSTGRESQL://u@h/d", True),
        ("run.db", False),
        ("postgresql.db", False),
        (None, False),
    ],
)
def test_a_url_is_told_from_a_path(target: object, expected: bool) -> None:
    assert is_database_url(target) is expected


def test_the_password_never_shows() -> None:
    shown = redact("postgresql://kwa:p%40ss@db:5432/c?sslmode=require&password=other")
    assert "p%40ss" not in shown
    assert "other" not in shown
    assert shown == "postgresql://kwa:***@db:5432/c?sslmode=require&password=***"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://kwa:pa#SECRETss@db:5432/c",
        "postgresql://kwa:pa?SECRETss@db/c",
        "postgresql://kwa:pa/SECRETss@db/c",
        "postgresql://kwa:SECRET@db/c?options=-c%20x%3Dy&password=SECRET",
    ],
)
def test_a_password_with_url_characters_never_shows(url: str) -> None:
    assert "SECRET" not in redact(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://kwa:S3CRETPW@[::1:bad/x",  # not a URL a parser reads
        "postgresql://kwa:pa#S3CRETPW@127.0.0.1:1/nothing",
    ],
)
def test_a_url_that_fails_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        connect(url, connect_timeout=1)
    assert "S3CRETPW" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_server_that_is_not_there_is_one_line_without_the_password() -> None:
    from postgres_server import free_port

    url = f"postgresql://kwa:hunter2@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DatabaseError) as caught:
        connect(url, connect_timeout=2)
    message = str(caught.value)
    assert "hunter2" not in message
    assert "hunter2" not in repr(caught.value)
    assert "postgresql://kwa:***@127.0.0.1" in message
    assert "\n" not in message


def test_tables_are_created_once_then_kept(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        assert ensure_schema(conn, "demo", 1, CREATE) == 0
        conn.execute("INSERT INTO things VALUES (1, 'kept')")
        assert ensure_schema(conn, "demo", 1, CREATE) == 1
        assert conn.execute("SELECT name FROM things").fetchall() == [("kept",)]


def test_older_tables_are_migrated_forward(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        ensure_schema(conn, "demo", 1, CREATE)
        migrations = {2: ["ALTER TABLE things ADD COLUMN colour TEXT"]}
        assert ensure_schema(conn, "demo", 2, [], migrations) == 1
        conn.execute("INSERT INTO things VALUES (2, 'x', 'red')")
        assert ensure_schema(conn, "demo", 2, [], migrations) == 2


def test_newer_tables_are_refused(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        ensure_schema(conn, "demo", 3, CREATE)
        with pytest.raises(
            DatabaseError, match=r"newer kwa_batch \(version 3; this one reads up to 2\)"
        ):
            ensure_schema(conn, "demo", 2, CREATE, url=postgres_url)


def test_a_journal_and_a_store_starting_at_once_on_a_new_database(postgres_server) -> None:
    """Both set up kwa_schema: one lock for every part's set-up (each part's own lock let
    both create the table at once: a duplicate key in pg_type)."""
    from kwa_batch.receipts.store import CallbackStore
    from kwa_batch.sending.pg_journal import PostgresJournal

    errors: list[BaseException] = []
    for _ in range(5):
        url = postgres_server.new_database()
        barrier = threading.Barrier(2)

        def journal(url: str = url, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                PostgresJournal(url, campaign="july").open().close()
            except BaseException as exc:
                errors.append(exc)

        def store(url: str = url, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                CallbackStore(url).open().close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=journal), threading.Thread(target=store)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors


def test_processes_starting_at_once_create_the_tables_once(postgres_url: str) -> None:
    found: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with connect(postgres_url) as conn:
                found.append(
                    ensure_schema(
                        conn, "demo", 1, [*CREATE, "INSERT INTO things VALUES (1, 'once')"]
                    )
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(found) == [0, 1, 1, 1, 1, 1]
