"""``kwa-batch send`` with pacing: held rows reported with when they can go, exit 3, the same
command later sends them; the dry run prints the estimate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import WallClock

from kwa_batch.cli import cli

SAMPLE = Path(__file__).parent.parent.parent / "sample_data"
CAMPAIGN = (
    "to,type,template_name,params,lang_code\n"
    '+919876500001,template,order_shipped,"Ana,A-1,500",en\n'
    '+12125550101,template,order_shipped,"Bo,A-2,700",en\n'
    '+5511987650001,template,order_shipped,"Cy,A-3,900",en\n'
)


def _send(runner: CliRunner, file: Path, tmp_path: Path, *more: str) -> tuple[int, str]:
    args = [
        "send", str(file), "--emulator", "--from", "+911234567890",
        "--out", str(tmp_path / "r.csv"), "--journal", str(tmp_path / "j.db"),
        "--quiet-hours", "21:00-09:00", "--daily-limit", "1", *more,
    ]  # fmt: skip
    result = runner.invoke(cli, args)
    return result.exit_code, result.output


def test_held_rows_exit_3_then_the_same_command_later_sends_them(
    runner: CliRunner, write_csv, tmp_path: Path, wall_clock: WallClock
) -> None:
    file = write_csv(CAMPAIGN)
    wall_clock.set(datetime(2027, 6, 1, 12, tzinfo=UTC))
    code, output = _send(runner, file, tmp_path)
    assert code == 3, output
    assert "held back: 1 in quiet hours, 1 over the daily limit" in output
    results = pd.read_csv(tmp_path / "r.csv", dtype="str").set_index("to")
    assert results["status"].to_dict() == {
        "+919876500001": "sent",
        "+12125550101": "not_sent",
        "+5511987650001": "not_sent",
    }
    assert results.loc["+12125550101", "error_code"] == "KWA027"
    assert "2027-06-01 13:00 UTC" in results.loc["+12125550101", "error_message"]
    assert "room from 2027-06-02 12:00 UTC" in results.loc["+5511987650001", "error_message"]
    # A day and a bit later: the first send left the 24-hour window at 12:00.
    wall_clock.set(datetime(2027, 6, 2, 13, tzinfo=UTC))
    code, output = _send(runner, file, tmp_path, "--daily-limit", "5")
    assert code == 0, output
    results = pd.read_csv(tmp_path / "r.csv", dtype="str")
    assert set(results["status"]) == {"sent"}
    assert results["from_journal"].tolist().count("True") == 1


def test_a_set_clock_plans_but_never_sends(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    """--now on a real send is refused in one line (it once sent to India at 03:35 local
    time); with --dry-run it plans."""
    file = write_csv(CAMPAIGN)
    code, output = _send(runner, file, tmp_path, "--now", "2026-12-05T06:00Z")
    assert code == 2, output
    assert "--now only plans (with --dry-run)" in output
    assert "Traceback" not in output
    assert not (tmp_path / "r.csv").exists()
    code, output = _send(runner, file, tmp_path, "--now", "2026-12-05T06:00Z", "--dry-run")
    assert code == 0, output
    assert "Estimate: held back now (KWA027): 2" in output  # 01:00 in New York, 03:00 in Sao Paulo


def test_nothing_leaves_after_the_expiry_and_the_rest_exits_1(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    """12 UK rows, --rate 4, expiring after 1 s: it once said "12 sent", exit 0."""
    rows = "".join(f"+4479111234{i:02d},Hello\n" for i in range(12))
    file = write_csv("to,body\n" + rows)
    args = [
        "send", str(file), "--emulator", "--from", "+911234567890", "--rate", "4",
        "--expire-after", "1s", "--out", str(tmp_path / "r.csv"),
        "--journal", str(tmp_path / "j.db"),
    ]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    results = pd.read_csv(tmp_path / "r.csv", dtype="str")
    expired = results[results["status"] == "not_sent"]
    assert 0 < len(expired) < 12
    assert set(expired["error_code"]) == {"KWA029"}
    assert f"{12 - len(expired)} sent" in result.output


def test_pacing_without_a_journal_is_refused(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(
        cli, ["send", str(write_csv(CAMPAIGN)), "--emulator", "--quiet-hours", "21:00-09:00"]
    )
    assert result.exit_code == 2
    assert "--quiet-hours hold rows back for a later run: add --journal FILE" in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--not-before", "2027-06-01 09:00"], "write a time with its offset"),
        (["--expire-after", "soon"], "write a duration from now (30m, 6h, 2d) or a time"),
        (["--quiet-hours", "late"], "HH:MM-HH:MM"),
        # Once OverflowError tracebacks (issue #17).
        (["--not-before", "0001-01-01T00:00:00+14:00"], "more than 10 years from now"),
        (["--expire-after", "99999999999d"], "from 0 to 366 days away"),
        (["--expire-after", "9999-12-31T23:59:59-14:00"], "more than 10 years from now"),
        (["--now", "9999-12-31T23:59:59-14:00", "--dry-run"], "more than 10 years from now"),
    ],
)
def test_bad_pacing_options_exit_2_in_one_line(
    runner: CliRunner, write_csv, tmp_path: Path, args: list[str], match: str
) -> None:
    result = runner.invoke(
        cli,
        [
            "send",
            str(write_csv(CAMPAIGN)),
            "--emulator",
            "--journal",
            str(tmp_path / "j.db"),
            *args,
        ],
    )
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert "Traceback" not in result.output


def test_dry_run_prints_the_estimate(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(
        cli,
        [
            "send", str(write_csv(CAMPAIGN)), "--dry-run", "--from", "+911234567890",
            "--templates", str(SAMPLE / "templates.csv"), "--rate-card",
            str(SAMPLE / "rate_card.csv"), "--quiet-hours", "21:00-09:00",
            "--now", "2027-06-01T12:00Z", "--rate", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # utility: IN 0.0014 + US 0.0040 + BR 0.0068 = 0.0122 USD
    assert "Estimate: 3 message(s) to 3 recipient(s) in 3 request(s): about 3.0 s at 1/s" in (
        result.output
    )
    assert "Estimate: cost: 0.0122 USD" in result.output
    assert "Estimate: held back now (KWA027): 1" in result.output


def test_the_dry_run_estimate_reads_without_nan(runner: CliRunner) -> None:
    """Issue #18: the sample with --rate-card (no --templates) printed a raw DataFrame with
    NaN; a row without a price now says why, with prices in their currency."""
    sample = [
        "send", str(SAMPLE / "recipients.csv"), "--dry-run", "--from", "+911234567890",
        "--rate-card", str(SAMPLE / "rate_card.csv"),
    ]  # fmt: skip
    result = runner.invoke(cli, sample)
    assert result.exit_code == 1, result.output  # the sample's five bad rows
    assert "NaN" not in result.output
    assert "Estimate: cost: 0.0000 USD for the 9 priced message(s)" in result.output
    assert "Estimate: 6 message(s) not priced" in result.output
    table = [line for line in result.output.splitlines() if line.startswith("  IN ")]
    assert table[0].split() == ["IN", "service", "4", "4", "0", "USD", "0.0000", "USD"]
    assert table[1].startswith("  IN      unknown          3           3")
    assert table[1].endswith(
        "no price: a template's category comes from the catalogue (--templates)"
    )
    priced = runner.invoke(cli, [*sample, "--templates", str(SAMPLE / "templates.csv")])
    assert "NaN" not in priced.output
    assert "no price" not in priced.output
    assert "  IN      utility          3           3  0.0014 USD  0.0042 USD" in priced.output


def test_without_a_rate_card_the_dry_run_says_nothing_of_one(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["send", str(SAMPLE / "recipients.csv"), "--dry-run", "--from", "+911234567890"]
    )
    assert "Estimate: 15 message(s) to 15 recipient(s)" in result.output
    assert "rate card" not in result.output
    assert "priced" not in result.output


def test_the_estimate_and_the_held_rows_are_on_the_summary_sheet(
    runner: CliRunner, write_csv, tmp_path: Path, wall_clock: WallClock
) -> None:
    from openpyxl import load_workbook

    wall_clock.set(datetime(2027, 6, 1, 12, tzinfo=UTC))
    out = tmp_path / "r.xlsx"
    args = [
        "send", str(write_csv(CAMPAIGN)), "--emulator", "--from", "+911234567890",
        "--out", str(out), "--journal", str(tmp_path / "j.db"), "--quiet-hours", "21:00-09:00",
        "--rate-card", str(SAMPLE / "rate_card.csv"),
        "--templates", str(SAMPLE / "templates.csv"),
    ]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 3, result.output
    book = load_workbook(out, read_only=True)
    rows = [tuple(r[:2]) for r in book["Summary"].iter_rows(values_only=True) if r]
    book.close()
    assert ("estimate", "value") in rows
    assert ("cost", 0.0122) in rows
    assert ("held_back", "KWA027: 1") in rows  # what the estimate expected
    assert ("held", "KWA027: 1") in rows  # what the run held back
    assert ("not_sent", "KWA027") in rows


def test_expired_rows_do_not_keep_the_exit_code_at_3(
    runner: CliRunner, write_csv, tmp_path: Path, wall_clock: WallClock
) -> None:
    file = write_csv(CAMPAIGN)
    expiry = ["--expire-after", "2027-06-01T03:30Z"]
    wall_clock.set(datetime(2027, 6, 1, 3, tzinfo=UTC))
    code, output = _send(runner, file, tmp_path, *expiry)
    assert code == 3, output  # 08:30 in India, 23:00 in New York, 00:00 in Sao Paulo: held
    wall_clock.set(datetime(2027, 6, 1, 4, tzinfo=UTC))
    code, output = _send(runner, file, tmp_path, *expiry)
    assert code == 1, output  # all expired: nothing is left to send later
    results = pd.read_csv(tmp_path / "r.csv", dtype="str")
    assert set(results["error_code"]) == {"KWA029"}
    # `report` on the results file exits like the run that wrote it (it once said 3).
    reported = runner.invoke(cli, ["report", str(tmp_path / "r.csv")])
    assert reported.exit_code == 1, reported.output


def test_a_stop_received_while_the_command_sends_holds_that_row(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    """--suppress STORE is read again while sending: a STOP stored one second into the run
    holds that customer's row (KWA025, never sent: exit 1, not 3)."""
    import threading
    import time

    from kwa_batch.receipts.store import CallbackStore, IncomingMessage

    numbers = [f"+4479111234{i:02d}" for i in range(8)]
    file = write_csv("to,body\n" + "".join(f"{n},Hello\n" for n in numbers))
    store = tmp_path / "receipts.db"
    with CallbackStore(store) as opened:
        opened.counts()  # no opt-outs yet

    def stop_reply() -> None:
        time.sleep(1.0)
        at = datetime.now(UTC)
        with CallbackStore(store) as opened:
            opened.add_incoming(
                IncomingMessage("k", numbers[-1], None, at, at, "text", None, "STOP")
            )

    writer = threading.Thread(target=stop_reply)
    writer.start()
    result = runner.invoke(
        cli,
        [
            "send", str(file), "--emulator", "--from", "+911234567890", "--rate", "2",
            "--suppress", str(store), "--out", str(tmp_path / "r.csv"),
        ],
    )  # fmt: skip
    writer.join()
    assert result.exit_code == 1, (result.output, result.exception)
    results = pd.read_csv(tmp_path / "r.csv", dtype="str").set_index("to")
    assert results.loc[numbers[-1], "status"] == "not_sent"
    assert results.loc[numbers[-1], "error_code"] == "KWA025"
    assert (results.loc[numbers[:4], "status"] == "sent").all()


def test_a_damaged_history_journal_stops_the_command_before_sending(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    """It was once skipped with one WARNING line, and 3 sent past a full limit."""
    history = tmp_path / "history"
    (history / "2026-11").mkdir(parents=True)
    (history / "2026-11" / "run.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    code, output = _send(runner, write_csv(CAMPAIGN), tmp_path, "--history", str(history))
    assert code == 2, output
    assert "run.sqlite cannot be read fully" in output
    assert "Traceback" not in output
    assert not (tmp_path / "r.csv").exists()
