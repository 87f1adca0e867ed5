"""Real `kwa-batch send --journal` processes: killed with SIGKILL mid-flight then run again
(none twice, none lost, even when the -wal file is lost), and two at once on one journal
under two names (refused)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from send_process import run_cli

from kwa_batch import Emulator
from kwa_batch.sending.journal import Journal

pytestmark = pytest.mark.slow  # real processes and filesystems: seconds each

ROWS = 160  # 2 s at the default rate: a kill after a quarter lands mid-run
CONCURRENCY = 4


def write_campaign(path: Path, rows: int = ROWS) -> Path:
    pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(rows)],
            "body": [f"Hi {i}, your order has shipped" for i in range(rows)],
        }
    ).to_csv(path, index=False)
    return path


def wait_for_messages(emu: Emulator, count: int) -> None:
    deadline = time.monotonic() + 60
    while emu.message_count < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sigkill_then_resume_sends_each_row_exactly_once(tmp_path: Path) -> None:
    recipients = write_campaign(tmp_path / "campaign.csv")
    args = [
        str(recipients),
        "--journal",
        "campaign.db",
        "--out",
        "results.csv",
        "--concurrency",
        str(CONCURRENCY),
        "--quiet",
    ]
    with Emulator(latency=0.02) as emu:
        first = run_cli(args, emu, tmp_path)
        wait_for_messages(emu, ROWS // 4)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        killed_at = len(emu.messages)
        assert 0 < killed_at < ROWS, "the kill must land mid-run"
        assert not (tmp_path / "results.csv").exists()

        second = run_cli(args, emu, tmp_path)
        output, _ = second.communicate(timeout=120)
        assert second.returncode in (0, 3), output

        ledger = emu.messages
        assert not ledger["to"].duplicated().any(), "a message was accepted twice"
        results = pd.read_csv(tmp_path / "results.csv", dtype=str, encoding="utf-8-sig")
        assert len(results) == ROWS
        statuses = results["status"].value_counts().to_dict()
        assert set(statuses) <= {"sent", "unknown"}
        sent = results[results["status"] == "sent"]
        # Every sent row is in the ledger with its own message id: none lost.
        by_id = ledger.set_index("message_id")["to"]
        assert (by_id.loc[sent["message_id"]].to_numpy() == sent["to"].to_numpy()).all()
        # Rows in flight at the kill are 'unknown' (at most one window of requests), never resent.
        unknown = results[results["status"] == "unknown"]
        assert len(unknown) <= CONCURRENCY  # at most one request per worker was in flight
        assert (unknown["error_code"] == "INFLIGHT").all()
        assert len(ledger) == len(sent) + int(unknown["to"].isin(ledger["to"]).sum())
        if len(unknown):
            assert "--resend-unknown" in output


RATE = 20  # messages per second: one second of answers is about 20 rows


def test_losing_the_wal_file_after_a_crash_resends_at_most_the_last_seconds(
    tmp_path: Path,
) -> None:
    """The main file alone (its -wal deleted, or the file copied alone) knows all but the
    last second or so: a run with it re-sends only those rows."""
    rows = 9 * RATE  # the kill comes six seconds in, three before the end
    recipients = write_campaign(tmp_path / "campaign.csv", rows=rows)
    args = [str(recipients), "--journal", "j.db", "--out", "results.csv", "--quiet"]
    args += ["--concurrency", str(CONCURRENCY)]
    with Emulator(latency=0.02) as emu:
        first = run_cli([*args, "--rate", str(RATE)], emu, tmp_path)
        wait_for_messages(emu, 6 * RATE)  # six seconds in
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        killed_at = len(emu.messages)
        assert 6 * RATE <= killed_at < rows, "the kill must land mid-run"
        for lost in ("j.db-wal", "j.db-shm"):
            (tmp_path / lost).unlink(missing_ok=True)

        second = run_cli(args, emu, tmp_path)
        output, _ = second.communicate(timeout=120)
        assert second.returncode in (0, 3), output
        ledger = emu.messages
    twice = int(ledger["to"].duplicated().sum())
    print(f"killed after {killed_at} messages; {twice} sent twice after losing the -wal file")
    # Before, the main file held nothing and all killed_at rows went twice. Now at most
    # about a second of answers (RATE rows) plus the requests in flight; three seconds'
    # worth is the bound, so that a busy machine does not make it flaky.
    assert twice <= 3 * RATE, f"{twice} of {killed_at} rows sent twice"
    assert ledger["to"].nunique() == rows  # and none lost


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_two_runs_on_two_names_of_one_journal(tmp_path: Path, how: str) -> None:
    """`ln -s j.db alias.db` (or `ln`), then a run with each name: the second is refused."""
    recipients = write_campaign(tmp_path / "campaign.csv", rows=40)
    journal = tmp_path / "j.db"
    Journal(journal).open().close()  # the journal exists, so the alias can point at it
    alias = tmp_path / "alias.db"
    if how == "symlink":
        alias.symlink_to(journal.name)
    else:
        alias.hardlink_to(journal)
    common = [str(recipients), "--quiet", "--concurrency", "2"]
    # Slow answers (four messages a second) keep the first run going for ten seconds while
    # the second starts; once it is refused, quick answers let the first one finish.
    with Emulator(latency=0.5) as emu:
        first = run_cli([*common, "--journal", "j.db", "--out", "first.csv"], emu, tmp_path)
        wait_for_messages(emu, 2)
        second = run_cli([*common, "--journal", "alias.db", "--out", "second.csv"], emu, tmp_path)
        refused, _ = second.communicate(timeout=60)
        assert first.poll() is None, "the first run must still be sending"
        emu.latency = 0.0
        assert second.returncode == 2, refused
        assert refused.count("\n") == 1, refused  # one line, no traceback
        assert "alias.db is in use by another run" in refused
        output, _ = first.communicate(timeout=120)
        assert first.returncode == 0, output
        ledger = emu.messages
    assert not ledger["to"].duplicated().any()
    assert len(ledger) == 40
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "alias.db",
        "campaign.csv",
        "first.csv",
        "first.csv.run.json",  # the run's outcome, beside its results
        "j.db",
    ]  # no lock file left behind


def test_a_run_killed_mid_flight_never_lets_the_next_exceed_the_daily_limit(
    tmp_path: Path,
) -> None:
    """Issue #17: run 1 (templates, 0.3 s latency, many requests in flight) killed with -9;
    run 2, another campaign, with --daily-limit N and run 1's journal in --history: the unique
    recipients that
    reached the server in 24 h never exceed N, since rows left in flight may have gone."""
    rows = 600
    for name, prefix in (("campaign.csv", "+9198"), ("next.csv", "+9197")):
        pd.DataFrame(
            {
                "to": [f"{prefix}{i:08d}" for i in range(rows)],
                "type": "template",
                "template_name": "promo",
                "params": [f"Customer {i}" for i in range(rows)],
                "lang_code": "en",
            }
        ).to_csv(tmp_path / name, index=False)
    history = tmp_path / "history"
    history.mkdir()
    first_args = [
        "campaign.csv", "--journal", "history/run1.db", "--out", "r1.csv",
        "--rate", "200", "--quiet",
    ]  # fmt: skip
    with Emulator(latency=0.3) as emu:
        first = run_cli(first_args, emu, tmp_path)
        wait_for_messages(emu, 60)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        time.sleep(0.5)  # requests already on the wire arrive
        reached = set(emu.messages["to"])
        with Journal(history / "run1.db") as journal:
            in_flight = journal.db.execute(
                "SELECT count(*) FROM rows WHERE state = 'in_flight'"
            ).fetchone()[0]
        assert in_flight > 0, "the kill must leave rows in flight"
        limit = len(reached) + 5
        second = run_cli(
            [
                "next.csv",
                "--journal",
                "run2.db",
                "--out",
                "r2.csv",
                "--quiet",
                "--daily-limit",
                str(limit),
                "--history",
                "history",
                "--rate",
                "200",
            ],
            emu,
            tmp_path,
        )
        output, _ = second.communicate(timeout=120)
        assert second.returncode == 3, output  # the rest waits for room
        assert len(set(emu.messages["to"])) <= limit
