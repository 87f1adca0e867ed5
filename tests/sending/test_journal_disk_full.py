"""Journal writes that fail: a disk that fills up mid-run (a distinct error, the database
left consistent, no message sent that the journal did not record as going out), a full
disk at open, and an interrupt in the middle of a write.

The disk is real: a small tmpfs (the ``small_tmpfs`` fixture), which needs root; elsewhere
those tests are skipped and say why.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER

from kwa_batch import Emulator, send
from kwa_batch.errors import JournalError, JournalWriteError
from kwa_batch.sending.journal import Journal

pytestmark = pytest.mark.slow  # real processes and filesystems: seconds each

REASON = "x" * 300  # outcomes with a long message fill the disk sooner


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"to": [f"+9198{i:08d}" for i in range(n)], "body": "Hi"})


def outcome(i: int) -> tuple[str, str, dict[str, object]]:
    fields = {"status": "failed", "error_code": "E13009", "error_message": REASON}
    return f"{i:064x}", f"+9198{i:08d}", fields


def fill_disk(filler: Path) -> None:
    """Write to ``filler`` until the disk is full."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def copy_journal(folder: Path, target: Path) -> Path:
    """The journal with its -wal file, copied to a disk with room (to read it back)."""
    target.mkdir()
    for path in folder.glob("j.db*"):
        shutil.copy(path, target / path.name)
    return target / "j.db"


def fill(journal: Journal, recorded: list[int]) -> None:
    """Record batches of ten outcomes until the disk is full."""
    for batch in range(10_000):
        rows = range(batch * 10, batch * 10 + 10)
        journal.record(outcome(i) for i in rows)
        recorded.extend(rows)


def test_a_full_disk_raises_journal_write_error_and_keeps_what_was_recorded(
    small_tmpfs: Path, tmp_path: Path
) -> None:
    recorded: list[int] = []
    with Journal(small_tmpfs / "j.db") as journal:
        with pytest.raises(JournalWriteError) as caught:
            fill(journal, recorded)
        # Still full: the next write says the same, whichever method it is.
        with pytest.raises(JournalWriteError):
            journal.mark_in_flight([([f"k{i}" for i in range(500)], ["+919876500000"] * 500)])
    # ... and closing did not raise: the run is stopping anyway.
    assert recorded, "the disk must fill mid-run, not at once"
    error = caught.value
    assert str(error).startswith(f"journal {small_tmpfs / 'j.db'} cannot be written any more")
    assert "the disk is full" in str(error)
    assert "what it recorded before is intact" in str(error)
    assert error.reason == "the disk is full"
    assert "\n" not in str(error)

    with Journal(copy_journal(small_tmpfs, tmp_path / "room")) as reread:  # integrity_check: ok
        assert reread.counts() == {"failed": len(recorded)}
        keys = [outcome(i)[0] for i in range(len(recorded) + 10)]
        found = reread.lookup(keys)
    assert set(found) == set(keys[: len(recorded)])  # the failed batch: all or nothing


def test_a_new_journal_on_a_full_disk_is_refused_at_open_and_leaves_no_file(
    small_tmpfs: Path, emulator: Emulator
) -> None:
    fill_disk(small_tmpfs / "filler")
    emulator.reset()
    with pytest.raises(JournalError, match="cannot be used: the disk is full; free some space"):
        send(frame(3), emulator.client(sender=SENDER), journal=small_tmpfs / "j.db", progress=False)
    assert emulator.requests_seen == 0
    assert [path.name for path in small_tmpfs.iterdir()] == ["filler"]


def test_an_interrupted_write_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A KeyboardInterrupt (Jupyter's stop button) in the middle of a write: that write is
    rolled back and the next one works."""
    journal = Journal(tmp_path / "j.db").open()

    class Interrupting:
        """A value whose conversion for SQLite is where the interrupt lands (mid-write)."""

        def __conform__(self, protocol: object) -> str:
            raise KeyboardInterrupt

    key, number, fields = outcome(3)
    with pytest.raises(KeyboardInterrupt):
        journal.record([outcome(1), (key, number, {**fields, "message_id": Interrupting()})])
    journal.mark_in_flight([([outcome(2)[0]], [outcome(2)[1]])])
    journal.close()
    with Journal(tmp_path / "j.db") as reread:
        assert reread.counts() == {"in_flight": 1}


@pytest.mark.parametrize("small_tmpfs", ["512k"], indirect=True)
def test_a_run_whose_journal_fills_the_disk_stops_cleanly(
    small_tmpfs: Path, tmp_path: Path, emulator: Emulator
) -> None:
    """send() returns: the rows answered have their outcome, the rest are not_sent with
    the journal's error, and attrs say why (the CLI exits 3 and writes the results)."""
    rows = 3000
    emulator.reset()
    # No rate: at the default 80 messages a second the disk took ~20 s to fill.
    results = send(
        frame(rows),
        emulator.client(sender=SENDER),
        journal=small_tmpfs / "j.db",
        rate_limit=None,
        progress=False,
    )
    error = results.attrs["run"].journal_error
    assert "cannot be written any more (the disk is full)" in error
    accepted = emulator.messages
    assert 0 < len(accepted) < rows, "the disk must fill mid-run"
    sent = results[results["status"] == "sent"]
    assert set(sent["to"]) == set(accepted["to"])  # in-flight answers kept, none lost
    assert set(results["status"]) <= {"sent", "not_sent"}
    not_sent = results[results["status"] == "not_sent"]
    assert len(not_sent) > 0
    assert not_sent["error_message"].str.startswith("the run stopped: journal").all()
    with Journal(copy_journal(small_tmpfs, tmp_path / "room")) as reread:
        known = set(reread.db.execute("SELECT recipient FROM rows WHERE state != 'not_sent'"))
    assert {(to,) for to in accepted["to"]} <= known
