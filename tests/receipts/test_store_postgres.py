"""The callback store on a real PostgreSQL server: the same tables, frames and answers as
the SQLite file, each callback stored once under concurrent writers, the format versioned,
the password never shown."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

import kwa_batch as kb
from kwa_batch.database import connect
from kwa_batch.errors import DatabaseError, InputError
from kwa_batch.receipts.store import (
    STORE_VERSION,
    CallbackStore,
    IncomingMessage,
    StatusUpdate,
    store_name,
)

SENDER = "+911234567890"
T0 = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)


def number(n: int) -> str:
    return f"+9198765{n:05d}"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def callbacks() -> tuple[list[StatusUpdate], list[IncomingMessage]]:
    """A campaign's callbacks: every kind of field, empty ones, times in another zone."""
    india = timezone(timedelta(hours=5, minutes=30))
    updates = [
        StatusUpdate("m0:0", "sent", at(1), at(1), number(0), business=SENDER),
        StatusUpdate("m0:0", "delivered", at(2), at(2), number(0), price=0.0125, billable=True,
                     pricing_category="marketing", business=SENDER),
        StatusUpdate("m0:0", "read", at(3).astimezone(india), at(3), number(0), ref="r", ref1="a",
                     ref2="b"),
        StatusUpdate("m1:0", "sent", at(1), at(1.5), number(1)),
        StatusUpdate("m1:0", "failed", at(4), at(4), number(1), "131050", "stopped marketing",
                     billable=False),
        StatusUpdate("m2", "failed", at(5), at(5), number(2), "131049", "ecosystem"),
        StatusUpdate("m3:0", "deleted", at(6), at(6)),  # a status Kaleyra may add
        StatusUpdate("m4:0", "failed", at(7), at(7), number(4), "131048", "spam", business=SENDER),
    ]  # fmt: skip
    incoming = [
        IncomingMessage("k0", number(0), SENDER, at(10), at(10), "text", "Asha", "Yes please",
                        reply_to="m0:0"),
        IncomingMessage("k1", number(2), SENDER, at(11), at(11), "text", None, "STOP"),
        IncomingMessage("k2", number(3), None, at(12), at(12), "button", "Ravi", "Stop promotions",
                        payload="STOP"),
        IncomingMessage("k3", number(2), SENDER, at(13).astimezone(timezone(-timedelta(hours=3))),
                        at(13), "text", None, "START"),
        IncomingMessage("k4", number(5), SENDER, at(14), at(14), "image", None, None,
                        "https://x/y.jpg"),
    ]  # fmt: skip
    return updates, incoming


def fill(target: str | Path) -> str | Path:
    updates, incoming = callbacks()
    with CallbackStore(target) as store:
        for update in updates:
            assert store.add_status(update) is True
            assert store.add_status(update) is False  # a repeat
        for message in incoming:
            assert store.add_incoming(message) is True
            assert store.add_incoming(message) is False
    return target


@pytest.fixture
def both(tmp_path: Path, postgres_url: str) -> tuple[Path, str]:
    """The same callbacks in a SQLite file and in a PostgreSQL database."""
    return Path(fill(tmp_path / "receipts.db")), str(fill(postgres_url))


def results_frame() -> pd.DataFrame:
    """A campaign's results for the messages of :func:`callbacks`."""
    return pd.DataFrame(
        {
            "to": [number(n) for n in range(6)],
            "status": ["sent"] * 5 + ["failed"],
            "message_id": ["m0:0", "m1:0", "m2:0", "m3:0", "m4:0", pd.NA],
            "sent_at": pd.Series([T0] * 6, dtype="datetime64[us, UTC]"),
            "from": SENDER,
        }
    ).astype({"to": "str", "status": "str", "message_id": "str", "from": "str"})


def test_both_backends_give_the_same_frames(both: tuple[Path, str]) -> None:
    path, url = both
    with CallbackStore(path) as on_file, CallbackStore(url) as on_database:
        for read in (CallbackStore.status_updates, CallbackStore.incoming_messages):
            expected, got = read(on_file), read(on_database)
            assert len(got) > 0
            pd.testing.assert_frame_equal(got, expected)
            assert got.dtypes.to_dict() == expected.dtypes.to_dict()
        assert (
            on_database.counts()
            == on_file.counts()
            == {
                "status_updates": 8,
                "incoming_messages": 5,
            }
        )
        codes = ["131048", "131050"]
        file_found, _ = on_file.updates_with_codes(codes, T0)
        database_found, _ = on_database.updates_with_codes(codes, T0)
        pd.testing.assert_frame_equal(database_found, file_found)
        assert database_found["message_id"].tolist() == ["m1:0", "m4:0"]


def test_an_empty_store_gives_the_same_empty_frames(tmp_path: Path, postgres_url: str) -> None:
    with CallbackStore(tmp_path / "r.db") as on_file, CallbackStore(postgres_url) as on_database:
        pd.testing.assert_frame_equal(on_database.status_updates(), on_file.status_updates())
        pd.testing.assert_frame_equal(on_database.incoming_messages(), on_file.incoming_messages())


@pytest.mark.parametrize(
    "read",
    [
        kb.load_receipts,
        kb.opt_outs,
        lambda store: kb.OptOutSource(store).opt_outs(),
        lambda store: kb.open_windows(store, now=at(60)),
        lambda store: kb.replies(results_frame(), store),
        lambda store: kb.follow_up(results_frame(), store, now=at(120)),
        lambda store: kb.merge_receipts(results_frame(), store),
        lambda store: kb.funnel(results_frame(), store),
    ],
    ids=[
        "load_receipts", "opt_outs", "OptOutSource", "open_windows", "replies", "follow_up",
        "merge_receipts", "funnel",
    ],
)  # fmt: skip
def test_every_reader_takes_the_url_as_it_takes_a_path(both: tuple[Path, str], read) -> None:
    path, url = both
    expected, got = read(path), read(url)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)


def test_each_callback_is_stored_once_by_concurrent_writers(postgres_url: str) -> None:
    """Eight stores (eight connections, as eight workers) add the same callbacks at once."""
    updates = [
        StatusUpdate(f"m{n}:0", status, at(n), at(n), number(n))
        for n in range(60)
        for status in ("sent", "delivered")
    ]
    incoming = [IncomingMessage(f"k{n}", number(n), SENDER, at(n), at(n)) for n in range(60)]
    CallbackStore(postgres_url).open().close()
    start = threading.Barrier(8)
    new: list[int] = []
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        try:
            with CallbackStore(postgres_url) as store:
                start.wait(timeout=30)
                stored = [store.add_status(u) for u in updates[seed:] + updates[:seed]]
                stored += [store.add_incoming(m) for m in incoming[seed:] + incoming[:seed]]
                new.append(sum(stored))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(seed * 7,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(new) == len(updates) + len(incoming)  # each new exactly once, whoever won
    with CallbackStore(postgres_url) as store:
        assert store.counts() == {"status_updates": 120, "incoming_messages": 60}
        frame = store.status_updates()
    assert not frame.duplicated(["message_id", "status"]).any()


def test_an_update_committed_late_is_still_read_once(postgres_url: str) -> None:
    """Two writers: the one that started first commits last. A reader that polls reads
    every update once, the late one included (a row number alone would skip it)."""
    with CallbackStore(postgres_url) as store:
        store.add_status(StatusUpdate("early:0", "failed", at(1), at(1), error_code="131048"))
        found, after = store.updates_with_codes(["131048"], T0)
        assert found["message_id"].tolist() == ["early:0"]
        with connect(postgres_url) as slow, slow.transaction():
            slow.execute(
                "INSERT INTO status_updates (message_id, status, at, received_at, error_code) "
                "VALUES ('late:0', 'failed', %s, %s, '131048')",
                (at(2), at(2)),
            )
            store.add_status(StatusUpdate("quick:0", "failed", at(3), at(3), error_code="131048"))
            meanwhile, after = store.updates_with_codes(["131048"], T0, after)
        found, after = store.updates_with_codes(["131048"], T0, after)
        again, _ = store.updates_with_codes(["131048"], T0, after)
    seen = meanwhile["message_id"].tolist() + found["message_id"].tolist()
    assert sorted(seen) == ["late:0", "quick:0"]
    assert again.empty


def test_a_transaction_left_open_elsewhere_does_not_hide_new_stop_codes(
    postgres_server, postgres_url: str
) -> None:
    """Another application's transaction, idle in another database of the cluster, holds
    back the cluster's oldest running transaction: a stop code stored meanwhile is still
    read at the next poll (a run watching the store stops), and only once."""
    other = postgres_server.new_database()
    with CallbackStore(postgres_url) as store, connect(other) as hog:
        store.add_status(StatusUpdate("a:0", "failed", at(1), at(1), error_code="131048"))
        _, after = store.updates_with_codes(["131048"], T0)
        hog.execute("CREATE TABLE t (x INTEGER)")
        with hog.transaction():
            hog.execute("INSERT INTO t VALUES (1)")  # a transaction id, left open
            store.add_status(StatusUpdate("b:0", "failed", at(2), at(2), error_code="131048"))
            found, after = store.updates_with_codes(["131048"], T0, after)
            again, after = store.updates_with_codes(["131048"], T0, after)
            store.add_status(StatusUpdate("c:0", "failed", at(3), at(3), error_code="131048"))
            later, after = store.updates_with_codes(["131048"], T0, after)
        last, _ = store.updates_with_codes(["131048"], T0, after)
    assert found["message_id"].tolist() == ["b:0"]
    assert again.empty
    assert later["message_id"].tolist() == ["c:0"]
    assert last.empty


def test_a_store_of_a_newer_format_is_refused(postgres_url: str) -> None:
    CallbackStore(postgres_url).open().close()
    with connect(postgres_url) as conn:
        conn.execute(
            "UPDATE kwa_schema SET version = %s WHERE part = 'store'", (STORE_VERSION + 1,)
        )
    with pytest.raises(DatabaseError) as caught:
        CallbackStore(postgres_url).counts()
    message = str(caught.value)
    assert f"version {STORE_VERSION + 1}; this one reads up to {STORE_VERSION}" in message
    assert "\n" not in message
    with pytest.raises(DatabaseError, match="newer kwa_batch"):
        kb.load_receipts(postgres_url)


def test_a_store_of_version_1_gets_the_new_columns(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        conn.execute(
            "CREATE TABLE status_updates (seq BIGINT GENERATED ALWAYS AS IDENTITY, "
            "tx XID8 NOT NULL DEFAULT pg_current_xact_id(), message_id TEXT NOT NULL, "
            "status TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, received_at TIMESTAMPTZ NOT NULL, "
            "recipient TEXT, error_code TEXT, error TEXT, ref TEXT, ref1 TEXT, ref2 TEXT, "
            "PRIMARY KEY (message_id, status))"
        )
        conn.execute(
            "CREATE TABLE incoming_messages (seq BIGINT GENERATED ALWAYS AS IDENTITY, "
            "key TEXT PRIMARY KEY, customer TEXT NOT NULL, business TEXT, "
            "at TIMESTAMPTZ NOT NULL, received_at TIMESTAMPTZ NOT NULL, type TEXT, name TEXT, "
            "body TEXT, media_url TEXT)"
        )
        conn.execute(
            "INSERT INTO status_updates (message_id, status, at, received_at) "
            "VALUES ('old:0', 'delivered', %s, %s)",
            (T0, T0),
        )
        conn.execute(
            "CREATE TABLE kwa_schema (part TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "updated_at TIMESTAMPTZ NOT NULL)"
        )
        conn.execute("INSERT INTO kwa_schema VALUES ('store', 1, now())")
    with CallbackStore(postgres_url) as store:
        store.add_status(StatusUpdate("new:0", "delivered", at(1), at(1), price=0.5))
        frame = store.status_updates()
    assert frame["message_id"].tolist() == ["old:0", "new:0"]
    assert frame["price"].tolist() == [pd.NA, 0.5]
    with connect(postgres_url) as conn:
        row = conn.execute("SELECT version FROM kwa_schema WHERE part = 'store'").fetchone()
    assert row == (STORE_VERSION,)


def test_a_reader_never_creates_a_store(postgres_url: str) -> None:
    with pytest.raises(InputError, match="no callback store in this database"):
        kb.load_receipts(postgres_url)
    with connect(postgres_url) as conn:
        found = conn.execute("SELECT to_regclass('status_updates')").fetchone()
    assert found == (None,)


def test_the_password_never_shows(postgres_url: str) -> None:
    """The test server trusts every login, so a URL with a password still connects."""
    secret = "hunter2-s3cret"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")
    assert secret in url
    with CallbackStore(url) as store:
        store.add_status(StatusUpdate("m:0", "sent", T0, T0))
        shown = [repr(store), store.shown, store_name(url), repr(kb.OptOutSource(url))]
    with pytest.raises(InputError) as caught:
        kb.load_receipts(url.rsplit("/", 1)[0] + "/postgres")
    shown.append(str(caught.value))
    from postgres_server import free_port

    with pytest.raises(DatabaseError) as refused:
        kb.load_receipts(f"postgresql://postgres:{secret}@127.0.0.1:{free_port()}/nothing")
    shown.append(str(refused.value))
    for text in shown:
        assert secret not in text
    assert "postgres:***@" in shown[0]


def test_validate_says_how_to_suppress_a_database_s_opt_outs(postgres_url: str) -> None:
    url = fill(postgres_url)
    recipients = pd.DataFrame({"to": [number(1), number(2), number(3)], "body": "Hi"})
    with pytest.raises(InputError, match=r"is a database, not a list of numbers.*OptOutSource"):
        kb.validate(recipients, sender=SENDER, suppress=url)
    report = kb.validate(recipients, sender=SENDER, suppress=kb.OptOutSource(str(url)))
    # number(1) failed with 131050; number(3) tapped a stop button; number(2) said START.
    assert report.invalid["to"].tolist() == [number(1), number(3)]


def test_a_poll_s_version_changes_with_each_callback_from_any_writer(postgres_url: str) -> None:
    """What a send's live opt-outs and receipts watch compare before reading again."""
    source = kb.OptOutSource(postgres_url)
    with CallbackStore(postgres_url) as reader, CallbackStore(postgres_url) as writer:
        before, source_before = reader.version(), source.version()
        assert (reader.version(), source.version()) == (before, source_before)
        writer.add_incoming(IncomingMessage("k", number(1), SENDER, T0, T0, body="STOP"))
        assert reader.version() != before
        assert source.version() != source_before
        after = reader.version()
        writer.add_incoming(IncomingMessage("k", number(1), SENDER, T0, T0, body="STOP"))
        assert reader.version() == after  # a repeat changes nothing


def test_a_lost_connection_fails_one_callback_then_reconnects(postgres_url: str) -> None:
    """A database restarted under a receiver: that callback gets 503 (the store raises
    DatabaseError, one line), Kaleyra sends it again, and the next one is stored."""
    with CallbackStore(postgres_url) as store:
        assert store.add_status(StatusUpdate("a:0", "sent", T0, T0)) is True
        with connect(postgres_url) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'kwa_batch store' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(DatabaseError) as caught:
            store.add_status(StatusUpdate("b:0", "sent", T0, T0))
        assert "\n" not in str(caught.value)
        assert store.add_status(StatusUpdate("b:0", "sent", T0, T0)) is True
        assert store.counts()["status_updates"] == 2
