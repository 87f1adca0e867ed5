"""`kwa-batch send FILE --chunk-rows N`: real processes killed mid-file with SIGKILL or
stopped with SIGTERM, then run again (nothing twice, every row once), and the refusals."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from send_process import run_cli

import kwa_batch as kb
from kwa_batch import Emulator

ROWS = 400
PART = 40
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
    deadline = time.monotonic() + 120
    while emu.message_count < count and time.monotonic() < deadline:
        time.sleep(0.02)


def args_for(recipients: Path, out: str = "results.parquet") -> list[str]:
    return [
        str(recipients), "--chunk-rows", str(PART), "--journal", "campaign.db", "--out", out,
        "--concurrency", str(CONCURRENCY), "--rate", "200", "--quiet",
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_mid_file_then_resume_sends_each_row_once(tmp_path: Path) -> None:
    recipients = write_campaign(tmp_path / "campaign.csv")
    args = args_for(recipients)
    with Emulator(latency=0.02) as emu:
        first = run_cli(args, emu, tmp_path)
        wait_for_messages(emu, ROWS // 2 + PART // 2)  # mid-file, mid-part
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        killed_at = emu.message_count
        assert PART < killed_at < ROWS, "the kill must land mid-file"
        assert not (tmp_path / "results.parquet").exists()  # no half file under its name

        second = run_cli(args, emu, tmp_path)
        output, _ = second.communicate(timeout=300)
        assert second.returncode in (0, 3), output
        after_resume = emu.message_count

        third = run_cli(args, emu, tmp_path)  # everything settled: nothing leaves
        output, _ = third.communicate(timeout=300)
        assert third.returncode in (0, 3), output
        ledger = emu.messages
        assert emu.message_count == after_resume

    assert not ledger["to"].duplicated().any(), "a message was accepted twice"
    results = kb.load_results(tmp_path / "results.parquet")
    assert list(results.index) == list(range(ROWS))  # every row once, in file order
    assert list(results["line"]) == list(range(2, ROWS + 2))
    assert set(results["status"]) <= {"sent", "unknown"}
    sent = results[results["status"] == "sent"]
    by_id = ledger.set_index("message_id")["to"]
    assert (by_id.loc[sent["message_id"]].to_numpy() == sent["to"].to_numpy()).all()
    unknown = results[results["status"] == "unknown"]
    assert len(unknown) <= CONCURRENCY  # the requests in flight at the kill, never resent
    assert len(ledger) == len(sent) + int(unknown["to"].isin(ledger["to"]).sum())
    assert results["from_journal"].all()  # the third run knew every row from the journal


@pytest.mark.slow
def test_sigterm_mid_file_writes_every_row_and_the_same_command_sends_the_rest(
    tmp_path: Path,
) -> None:
    recipients = write_campaign(tmp_path / "campaign.csv")
    args = args_for(recipients, out="results.csv")
    with Emulator(latency=0.02) as emu:
        first = run_cli(args, emu, tmp_path)
        wait_for_messages(emu, ROWS // 3)
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=60)
        assert first.returncode == 143, output
        stopped = kb.load_results(tmp_path / "results.csv")
        assert len(stopped) == ROWS
        assert stopped.attrs["run"].stopped_by == "SIGTERM"
        assert stopped.attrs["run"].exit_code == 143
        left = stopped[stopped["status"] == "not_sent"]
        assert len(left) > PART  # whole parts were never sent
        assert "send again with the same journal" in output

        second = run_cli(args, emu, tmp_path)
        output, _ = second.communicate(timeout=300)
        assert second.returncode in (0, 3), output
        ledger = emu.messages
    assert not ledger["to"].duplicated().any()
    results = kb.load_results(tmp_path / "results.csv")
    assert len(results) == ROWS
    assert (results["status"] == "sent").sum() + (results["status"] == "unknown").sum() == ROWS


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--out", "big.xlsx"], "big.xlsx: results written part by part go to .parquet or .csv"),
        (["--chunk-rows", "0"], "chunk_rows=0 (--chunk-rows): give the rows of a part"),
        (["--chunk-rows", "9999999999"], "from 1 to 5,000,000"),
        (["--dry-run"], "--dry-run reads the file whole"),
    ],
)
def test_refused_in_one_line_before_anything_is_sent(
    runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], said: str
) -> None:
    from kwa_batch.cli import cli

    monkeypatch.chdir(tmp_path)
    recipients = write_campaign(tmp_path / "campaign.csv", rows=20)
    args = ["send", str(recipients), "--emulator", "--chunk-rows", "7", *extra]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    assert said in error[0]
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*results*"))
    assert not list(tmp_path.glob("big*"))


def test_each_part_is_said_with_its_lines_and_the_outcome_with_the_file(
    runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_csv: Path
) -> None:
    from kwa_batch.cli import cli

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["send", str(sample_csv), "--emulator", "--chunk-rows", "7",
                                  "--journal", "j.db", "--summary-json", "s.json"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "part 1/3 (lines 2-8): 7 sent" in result.output
    assert "part 3/3 (lines 16-21): 1 sent, 5 rejected" in result.output
    assert "Outcome: 15 sent, 5 rejected" in result.output
    assert "KWA007           1 rejected" in result.output
    results = kb.load_results(tmp_path / "recipients.results.parquet")
    assert len(results) == 20
    assert results.attrs["run"].exit_code == 1
    summary = pd.read_json(tmp_path / "s.json", typ="series")
    assert summary["error_codes"]["KWA007"] == 1
    assert summary["exit_code"] == 1
