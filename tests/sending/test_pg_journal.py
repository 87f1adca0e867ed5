"""The journal on PostgreSQL, in one process: what the SQLite journal keeps (resume, nothing
twice, unknown), claims that leave another run's rows alone, tables refused when newer, the
campaign required with a URL (and only then), and the password nowhere."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from conftest import SENDER as CONFTEST_SENDER
from conftest import campaign

import kwa_batch as kb
from kwa_batch import Emulator
from kwa_batch.cli import cli
from kwa_batch.database import ensure_schema
from kwa_batch.errors import Code, ConfigurationError, DatabaseError
from kwa_batch.fields import message_frame, row_keys
from kwa_batch.sending.journal import IN_FLIGHT
from kwa_batch.sending.pg_journal import SCHEMA_VERSION, PostgresJournal

FAST = kb.Pacing(rate_limit=None, per_recipient_interval=0)
SENDER = "+911234567890"


def campaign_frame(n: int, word: str = "Hi") -> pd.DataFrame:
    return pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(n)], "body": [f"{word} {i}" for i in range(n)]}
    )


def with_password(url: str, password: str = "s3cr3t-pw") -> str:
    """The URL with a password (the test cluster trusts every login: it is ignored)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")


def test_a_campaign_is_sent_once_and_resumed_from_the_journal(
    postgres_url: str, fresh_emulator: Emulator
) -> None:
    frame = campaign_frame(30)
    client = fresh_emulator.client(sender=SENDER)
    first = kb.send(frame.iloc[:12], client, journal=postgres_url, campaign="july",
                    pacing=FAST, progress=False)  # fmt: skip
    assert (first["status"] == "sent").all()
    again = kb.send(frame, client, journal=postgres_url, campaign="july", pacing=FAST,
                    progress=False)  # fmt: skip
    assert (again["status"] == "sent").all()
    assert again["from_journal"].sum() == 12
    assert again.attrs["run"].resume == {"already sent": 12, "new": 18}
    assert len(fresh_emulator.messages) == 30  # nothing twice
    # Same rows, another campaign of the same database: its own rows, sent again.
    other = kb.send(frame.iloc[:5], client, journal=postgres_url, campaign="august",
                    pacing=FAST, progress=False)  # fmt: skip
    assert not other["from_journal"].any()
    assert len(fresh_emulator.messages) == 35


def test_rows_in_flight_of_a_dead_run_are_unknown_and_not_resent(
    postgres_url: str, fresh_emulator: Emulator
) -> None:
    frame = campaign_frame(6)
    client = fresh_emulator.client(sender=SENDER)
    kb.send(frame.iloc[:3], client, journal=postgres_url, campaign="c", pacing=FAST,
            progress=False)  # fmt: skip
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"UPDATE kwa_journal_rows SET state = '{IN_FLIGHT}'")  # a run died so
    results = kb.send(frame, client, journal=postgres_url, campaign="c", pacing=FAST,
                      progress=False)  # fmt: skip
    assert list(results["status"].iloc[:3]) == ["unknown"] * 3
    assert set(results["error_code"].iloc[:3]) == {Code.INFLIGHT.value}
    assert len(fresh_emulator.messages) == 6  # the three in flight were not sent again


def test_a_row_another_live_run_holds_is_not_claimed_nor_overwritten(
    postgres_url: str, fresh_emulator: Emulator
) -> None:
    keys = ["k1", "k2"]
    with (
        PostgresJournal(postgres_url, campaign="c") as first,
        PostgresJournal(postgres_url, campaign="c") as second,
    ):
        assert first.mark_in_flight([(keys, ["+9198", "+9199"])]) == frozenset()
        assert second.mark_in_flight([(["k2", "k3"], ["+9199", "+9197"])]) == {"k2"}
        assert second.held_elsewhere(keys) == {"k1", "k2"}
        # An outcome of the second run over the first's row is not written.
        second.record([("k2", "+9199", {"status": "not_sent", "attempts": 0})])
        assert second.lookup(["k2"])["k2"].state == IN_FLIGHT
        first.record([("k2", "+9199", {"status": "sent", "message_id": "m2"})])
        assert second.lookup(["k2"])["k2"].message_id == "m2"
    with PostgresJournal(postgres_url, campaign="c") as third:
        assert third.held_elsewhere(keys) == frozenset()  # the first run ended


def test_tables_of_a_newer_version_are_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        ensure_schema(conn, "journal", SCHEMA_VERSION + 1, [])  # type: ignore[arg-type]
    url = with_password(postgres_url)
    with Emulator() as emu:
        with pytest.raises(DatabaseError) as caught:
            kb.send(campaign_frame(2), emu.client(sender=SENDER), journal=url, campaign="c",
                    pacing=FAST, progress=False)  # fmt: skip
        assert len(emu.messages) == 0
    message = str(caught.value)
    assert f"version {SCHEMA_VERSION + 1}; this one reads up to {SCHEMA_VERSION}" in message
    assert "s3cr3t-pw" not in message


@pytest.mark.parametrize(
    ("journal", "campaign", "says"),
    [
        ("postgresql://kwa:pw@127.0.0.1:1/db", None, "needs|holds many campaigns"),
        ("run.db", "july", "is a SQLite file"),
        (None, "july", "give --journal postgresql"),
    ],
)
def test_the_campaign_goes_with_a_url_journal_only(
    journal: str | None, campaign: str | None, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        kb.send(campaign_frame(1), kb.KaleyraClient("S", "k", sender=SENDER), journal=journal,
                campaign=campaign, progress=False)  # fmt: skip
    assert "pw@" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--journal", "postgresql://kwa:pw@127.0.0.1:1/db"], "holds many campaigns"),
        (["--journal", "run.db", "--campaign", "july"], "is a SQLite file"),
        (["--campaign", "july"], "give --journal postgresql"),
    ],
)
def test_the_command_refuses_a_campaign_that_does_not_fit_in_one_line(
    runner, write_csv, options: list[str], says: str
) -> None:
    recipients = write_csv("to,body\n+919876543210,Hi\n")
    result = runner.invoke(cli, ["send", str(recipients), "--emulator", *options])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert re.search(says, lines[0]), result.output
    assert "pw@" not in result.output


def test_the_password_is_nowhere_in_output_results_or_journal(
    postgres_url: str, runner, write_csv, tmp_path: Path
) -> None:
    url = with_password(postgres_url)
    recipients = write_csv("to,body\n+919876543210,Hi\n+919876543211,Hello\n")
    out, summary = tmp_path / "results.csv", tmp_path / "summary.json"
    args = ["send", str(recipients), "--emulator", "--journal", url, "--campaign", "july",
            "--out", str(out), "--summary-json", str(summary)]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    again = runner.invoke(cli, args)  # everything sent before: said, with the journal named
    assert "already sent" in again.output
    for text in (result.output, again.output, out.read_text(), summary.read_text()):
        assert "s3cr3t-pw" not in text
    assert json.loads(summary.read_text())["journal"].startswith("postgresql://postgres:***@")
    with psycopg.connect(postgres_url) as conn:
        recorded = conn.execute("SELECT settings::text FROM kwa_journal_runs").fetchall()
    assert recorded
    assert all("s3cr3t-pw" not in text for (text,) in recorded)


@pytest.mark.slow  # waits the grace period for a row another process keeps in flight
def test_rows_another_live_process_holds_end_as_that_process_records_them(
    postgres_url: str, fresh_emulator: Emulator
) -> None:
    frame = campaign_frame(4)
    keys = list(row_keys(message_frame(kb.validate(frame, sender=SENDER).valid)))
    with PostgresJournal(postgres_url, campaign="c") as other:  # another process, alive
        other.mark_in_flight([(keys[:2], list(frame["to"].iloc[:2]))])

        def settle_one() -> None:
            time.sleep(1.0)
            other.record(
                [(keys[0], str(frame.at[0, "to"]), {"status": "sent", "message_id": "m0"})]
            )

        settler = threading.Thread(target=settle_one)
        settler.start()
        results = kb.send(frame, fresh_emulator.client(sender=SENDER), journal=postgres_url,
                          campaign="c", pacing=FAST, progress=False)  # fmt: skip
        settler.join()
    assert results.attrs["run"].resume == {"in flight in another process": 2, "new": 2}
    assert list(results["status"]) == ["sent", "unknown", "sent", "sent"]
    assert results.at[0, "message_id"] == "m0"
    assert bool(results.at[0, "from_journal"])
    assert results.at[1, "error_code"] == Code.ELSEWHERE.value
    assert len(fresh_emulator.messages) == 2  # only the two rows nobody held


def test_the_daily_limit_counts_every_campaign_of_the_database(
    postgres_url: str, fresh_emulator: Emulator
) -> None:
    """The limit is the business portfolio's: another campaign's sends count."""
    uk = ["+447911123451", "+447911123452", "+447911123453", "+447911123454"]
    client = fresh_emulator.client()
    kb.send(kb.validate(campaign(uk[:2]), sender=CONFTEST_SENDER), client,
            journal=postgres_url, campaign="one", progress=False)  # fmt: skip
    results = kb.send(kb.validate(campaign(uk[2:]), sender=CONFTEST_SENDER), client,
                      journal=postgres_url, campaign="two", daily_limit=3,
                      progress=False)  # fmt: skip
    assert list(results["status"]) == ["sent", "not_sent"]
    assert results.at[1, "error_code"] == Code.DAILY_LIMIT.value
