"""`kwa-batch follow-up`: exactly the due rows, once, from callbacks posted to a receiver."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from click.testing import CliRunner

import kwa_batch as kb
from kwa_batch.cli import cli
from kwa_batch.receipts.store import CallbackStore, StatusUpdate

SENDER = "+911234567890"
NUMBERS = ["+919876500001", "+919876500002", "+919876500003", "+919876500004"]


@pytest.fixture
def emu() -> Iterator[kb.Emulator]:
    with kb.Emulator() as running:
        yield running


def account(emu: kb.Emulator) -> list[str]:
    return ["--sid", emu.sid, "--api-key", emu.api_key, "--base-url", emu.url]


def test_follow_up_sends_the_due_rows_once_and_a_second_run_nothing(
    runner: CliRunner, emu: kb.Emulator, tmp_path: Path, store_target: str
) -> None:
    recipients = tmp_path / "campaign.csv"
    pd.DataFrame(
        {
            "to": NUMBERS,
            "type": "template",
            "template_name": "order_update",
            "params": ["A", "B", "C", "D"],
            "lang_code": "en",
        }
    ).to_csv(recipients, index=False)
    results, journal, store = tmp_path / "r.xlsx", tmp_path / "j.db", store_target
    sent = runner.invoke(
        cli,
        [
            "send",
            str(recipients),
            "--from",
            SENDER,
            "--journal",
            str(journal),
            "--out",
            str(results),
            "-q",
            *account(emu),
        ],
    )
    assert sent.exit_code == 0, sent.output
    # The campaign left 25 hours ago: its results say so (a retry counts from the later of
    # the message's sending and its failure).
    then = datetime.now(UTC) - timedelta(hours=25)
    written = kb.load_results(results)
    written["sent_at"] = pd.array([then] * len(written), dtype="datetime64[us, UTC]")
    kb.export_results(written, results)
    ids = written["message_id"].tolist()
    long_ago = str(int(then.timestamp()) + 1)
    with kb.Receiver(store) as receiver, requests.Session() as http:
        url = receiver.callback_url
        # GET query, as Kaleyra is seen to send them, and POST JSON.
        http.get(url, params={"id": ids[0], "status": "read", "mobile": NUMBERS[0][1:]},
                 timeout=10).raise_for_status()  # fmt: skip
        http.post(url, json={"id": ids[1], "status": "failed", "error_code": "131049",
                             "mobile": NUMBERS[1][1:], "timestamp": long_ago},
                  timeout=10).raise_for_status()  # fmt: skip
        http.get(url, params={"id": ids[2], "status": "failed", "error_code": "131026",
                              "mobile": NUMBERS[2][1:], "timestamp": long_ago},
                 timeout=10).raise_for_status()  # fmt: skip
    old = tmp_path / "r-before.xlsx"
    shutil.copy(results, old)
    before = emu.message_count
    args = ["follow-up", str(results), "--receipts", str(store), "--journal", str(journal),
            "-q", *account(emu)]  # fmt: skip
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert emu.message_count - before == 1  # only the 131049 row, a day on
    assert "1 done, 1 final, 1 wait, 1 retry" not in first.output  # the order is the table's
    assert "1 retry, 1 final, 1 wait, 1 done; 1 retry(ies) due now" in first.output
    assert "131026" in first.output
    updated = kb.load_results(results)
    assert updated.loc[1, "message_id"] != ids[1]
    assert updated["message_id"].tolist()[::2] == ids[::2]

    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "Nothing is due now" in second.output
    assert emu.message_count - before == 1

    # The results as they were before the follow-up: the journal knows the retry.
    third = runner.invoke(cli, ["follow-up", str(old), *args[2:]])
    assert third.exit_code == 0, third.output
    assert emu.message_count - before == 1
    assert kb.load_results(old).loc[1, "message_id"] == updated.loc[1, "message_id"]


def test_follow_up_dry_run_sends_nothing(
    runner: CliRunner, emu: kb.Emulator, tmp_path: Path
) -> None:
    df = pd.DataFrame({"to": NUMBERS[:1], "body": ["Hi"]})
    with emu.client(sender=SENDER) as client:
        results = kb.send(df, client, progress=False, journal=tmp_path / "j.db")
    results["sent_at"] = pd.array(
        [datetime.now(UTC) - timedelta(hours=1)], dtype="datetime64[us, UTC]"
    )
    kb.export_results(results, tmp_path / "r.csv", data=df)
    store = tmp_path / "receipts.db"
    with CallbackStore(store) as opened:
        at = datetime.now(UTC) - timedelta(hours=1)
        opened.add_status(
            StatusUpdate(
                results["message_id"][0],
                "failed",
                at,
                at,
                error_code="WA500",
            )
        )
    before = emu.message_count
    outcome = runner.invoke(
        cli,
        [
            "follow-up",
            str(tmp_path / "r.csv"),
            "--receipts",
            str(store),
            "--journal",
            str(tmp_path / "j.db"),
            "--dry-run",
            *account(emu),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "1 retry(ies) due now" in outcome.output
    assert emu.message_count == before


def test_follow_up_says_a_missing_store_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("to,status\n")
    outcome = runner.invoke(
        cli,
        [
            "follow-up",
            str(tmp_path / "r.csv"),
            "--receipts",
            str(tmp_path / "none.db"),
            "--journal",
            str(tmp_path / "j.db"),
        ],
    )
    assert outcome.exit_code == 2
    assert "does not exist" in outcome.output


def test_follow_up_names_a_database_without_its_password(
    runner: CliRunner, tmp_path: Path, postgres_url: str
) -> None:
    secret = "s3cret-pw"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")  # the test server trusts all
    results = tmp_path / "r.csv"
    sent_at = pd.array([datetime.now(UTC) - timedelta(hours=1)], dtype="datetime64[us, UTC]")
    frame = pd.DataFrame({"to": NUMBERS[:1], "status": "sent", "message_id": "m1:0"})
    kb.export_results(frame.assign(sent_at=sent_at), results)
    args = ["follow-up", str(results), "--receipts", url, "--journal", str(tmp_path / "j.db")]
    missing = runner.invoke(cli, [*args, "--dry-run"])
    assert missing.exit_code == 2, missing.output
    assert "no callback store in this database" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    CallbackStore(url).open().close()
    found = runner.invoke(cli, [*args, "--dry-run"])
    assert found.exit_code == 0, found.output
    assert "receipts from postgresql://postgres:***@127.0.0.1" in found.output
    for output in (missing.output, found.output):
        assert secret not in output
