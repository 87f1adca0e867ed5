"""The journal: resume without sending twice, the run lock, and no secrets stored."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SENDER

from kwa_batch import Emulator, KaleyraClient, send
from kwa_batch.sending.journal import Journal, JournalLockedError
from kwa_batch.sending.pg_journal import open_journal


def frame(n: int, body: str = "Hello {i}") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198765{i:05d}" for i in range(n)],
            "body": [body.format(i=i) for i in range(n)],
        }
    )


def test_second_run_skips_what_was_sent_and_returns_its_ids(
    fresh_emulator: Emulator, journal_target: dict[str, Any]
) -> None:
    client = fresh_emulator.client(sender=SENDER)
    first = send(frame(20), client, **journal_target, progress=False)
    assert (first["status"] == "sent").all()
    assert first.attrs["run"].resume == {"new": 20}
    second = send(frame(20), client, **journal_target, progress=False)
    assert len(fresh_emulator.messages) == 20  # nothing sent twice
    assert second["message_id"].tolist() == first["message_id"].tolist()
    assert second["from_journal"].all()
    assert second.attrs["run"].resume == {"already sent": 20}


def test_not_sent_rows_are_sent_on_resume(
    fresh_emulator: Emulator, journal_target: dict[str, Any]
) -> None:
    down = KaleyraClient("HX", "key", sender=SENDER, base_url="http://127.0.0.1:9")
    first = send(frame(5), down, **journal_target, progress=False, max_attempts=1)
    assert (first["status"] == "not_sent").all()
    client = fresh_emulator.client(sender=SENDER)
    second = send(frame(5), client, **journal_target, progress=False)
    assert (second["status"] == "sent").all()
    assert second.attrs["run"].resume == {"sending again (failed or not sent before)": 5}


def test_edited_rows_count_as_new(fresh_emulator: Emulator, journal_target: dict[str, Any]) -> None:
    client = fresh_emulator.client(sender=SENDER)
    send(frame(4), client, **journal_target, progress=False)
    edited = frame(4)
    edited.loc[2, "body"] = "Hello 2, with a fix"
    results = send(edited, client, **journal_target, progress=False)
    assert results["from_journal"].tolist() == [True, True, False, True]
    assert results.attrs["run"].resume == {"already sent": 3, "new": 1}
    assert len(fresh_emulator.messages) == 5


def test_in_flight_rows_come_back_unknown_unless_resent(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    client = fresh_emulator.client(sender=SENDER)
    send(frame(3), client, journal=journal, progress=False)
    # As if the process had died with row 1 in flight.
    with closing(sqlite3.connect(journal)) as db, db:
        db.execute(
            "UPDATE rows SET state = 'in_flight', message_id = NULL WHERE recipient = ?",
            ("+919876500001",),
        )
    again = send(frame(3), client, journal=journal, progress=False)
    assert again["status"].tolist() == ["sent", "unknown", "sent"]
    assert again.loc[1, "error_code"] == "INFLIGHT"
    assert "resend_unknown" in again.loc[1, "error_message"]
    assert len(fresh_emulator.messages) == 3
    forced = send(frame(3), client, journal=journal, progress=False, resend_unknown=True)
    assert forced["status"].tolist() == ["sent", "sent", "sent"]
    assert forced.attrs["run"].resume == {"already sent": 2, "resending unknown": 1}
    assert len(fresh_emulator.messages) == 4


def test_two_runs_on_one_journal_are_refused(fresh_emulator: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    with Journal(journal), pytest.raises(JournalLockedError, match="in use by another run"):
        send(frame(2), fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    assert fresh_emulator.requests_seen == 0
    # Released afterwards.
    results = send(frame(2), fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    assert (results["status"] == "sent").all()


def test_the_key_is_never_stored(fresh_emulator: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    send(frame(3), fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    for path in tmp_path.iterdir():
        assert fresh_emulator.api_key.encode() not in path.read_bytes(), path.name


def test_journal_records_every_row_state(
    fresh_emulator: Emulator, journal_target: dict[str, Any]
) -> None:
    df = frame(3)
    df.loc[1, "to"] = "bad"
    send(df, fresh_emulator.client(sender=SENDER), **journal_target, progress=False)
    target = journal_target["journal"]
    opened = open_journal(target, campaign=journal_target.get("campaign"), settings={})
    try:
        assert opened.counts() == {"sent": 2}  # rejected rows are not the journal's business
    finally:
        opened.close()


def test_not_a_journal_is_a_configuration_error(fresh_emulator: Emulator, tmp_path: Path) -> None:
    from kwa_batch import ConfigurationError

    bogus = tmp_path / "notes.txt"
    bogus.write_text("just some text, not a database\n" * 100)
    with pytest.raises(ConfigurationError, match="cannot be used: it is not a journal"):
        send(frame(1), fresh_emulator.client(sender=SENDER), journal=bogus, progress=False)
    assert fresh_emulator.requests_seen == 0


def alias(journal: Path, how: str) -> Path:
    """Another name for the same journal file: a symlink or a hard link."""
    other = journal.with_name("alias.db")
    if how == "symlink":
        other.symlink_to(journal.name)
    else:
        other.hardlink_to(journal)
    return other


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_another_name_for_the_journal_is_the_same_journal(
    fresh_emulator: Emulator, tmp_path: Path, how: str
) -> None:
    journal = tmp_path / "run.db"
    send(frame(2), fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    other = alias(journal, how)
    with (
        Journal(journal),
        pytest.raises(JournalLockedError, match=r"alias\.db is in use by another run"),
    ):
        send(frame(4), fresh_emulator.client(sender=SENDER), journal=other, progress=False)
    assert fresh_emulator.requests_seen == 2
    # And the other way round: held under the alias, refused under the name.
    with Journal(other), pytest.raises(JournalLockedError, match="another link to the same"):
        Journal(journal).open()


def test_the_lock_leaves_no_file_behind(fresh_emulator: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    send(frame(2), fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    assert [path.name for path in tmp_path.iterdir()] == ["run.db"]


def test_a_lock_error_is_a_journal_error_and_a_configuration_error() -> None:
    from kwa_batch.errors import ConfigurationError, JournalError

    assert issubclass(JournalLockedError, JournalError)
    assert issubclass(JournalError, ConfigurationError)  # the CLI exits 2


def main_file_alone(journal: Path, copy: Path) -> int:
    """How many rows the journal's main file holds on its own (as if its -wal were lost)."""
    shutil.copyfile(journal, copy)
    with closing(sqlite3.connect(copy)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'rows'").fetchone():
            return 0  # not even the table yet
        return int(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])


def test_outcomes_reach_the_main_file_without_further_writes(tmp_path: Path) -> None:
    """The last answers of a run that then waits (a slow request, a stall) reach the main
    file anyway: the checkpoint is timed, not triggered by the next write."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.record([("k", "+919876500001", {"status": "sent", "message_id": "m"})])
        deadline = time.monotonic() + 30  # generous: about a second is expected
        while main_file_alone(path, tmp_path / "copy.db") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert main_file_alone(path, tmp_path / "copy.db") == 1
    assert not [t for t in threading.enumerate() if t.name == "kwa-journal-checkpoint"]


def test_two_journals_can_be_open_at_once(tmp_path: Path) -> None:
    with Journal(tmp_path / "a.db") as a, Journal(tmp_path / "b.db") as b:
        a.record([("k", "+919876500001", {"status": "sent"})])
        b.record([("k", "+919876500001", {"status": "failed"})])
        assert (a.counts(), b.counts()) == ({"sent": 1}, {"failed": 1})


def test_the_journal_keeps_the_results_outcome_fields() -> None:
    """One shape: what the journal stores of a row is the results' outcome, by name."""
    from dataclasses import fields

    from kwa_batch.results import OUTCOME_FIELDS
    from kwa_batch.sending.journal import JournalRecord

    assert OUTCOME_FIELDS[0] == "status"
    assert [f.name for f in fields(JournalRecord)] == [
        "key",
        "recipient",
        "state",
        *OUTCOME_FIELDS[1:],
    ]
