"""``kwa-batch send``'s pacing options: --rate N|none, --concurrency, --max-concurrency,
--per-recipient-interval (through the emulator, results read back from the file)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kwa_batch import Emulator, load_results
from kwa_batch.cli import cli
from kwa_batch.sending.limiter import max_in_any_window

CLEAN = "to,body\n+919876543210,Hi\n+447911123456,Hello\n+919876543210,Again\n"


def send(runner: CliRunner, path: Path, out: Path, *options: str) -> dict[str, object]:
    args = ["send", str(path), "--emulator", "--from", "+911234567890", "--out", str(out)]
    result = runner.invoke(cli, [*args, *options])
    assert result.exit_code == 0, result.output
    run: dict[str, object] = load_results(out).attrs["run"].settings
    return run


def test_the_defaults_are_whatsapps(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    run = send(runner, write_csv(CLEAN), tmp_path / "r.parquet", "--per-recipient-interval", "0")
    assert run["rate_limit"] == 80.0
    assert run["concurrency"] is None
    assert run["max_concurrency"] == 256


def test_options_reach_send(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    run = send(
        runner,
        write_csv(CLEAN),
        tmp_path / "r.parquet",
        *("--rate", "none", "--concurrency", "3", "--max-concurrency", "9"),
        *("--per-recipient-interval", "0.2"),
    )
    assert (run["rate_limit"], run["concurrency"], run["max_concurrency"]) == (None, 3, 9)
    assert run["per_recipient_interval"] == 0.2
    run = send(
        runner, write_csv(CLEAN), tmp_path / "s.parquet", "--rate", "1000",
        "--per-recipient-interval", "0",
    )  # fmt: skip
    assert run["rate_limit"] == 1000.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--rate", "0.5"], "at least 1 message per second, or none"),
        (["--rate", "fast"], "'fast' is not a rate"),
        (["--rate", "inf"], "at least 1 message per second"),
        (["--concurrency", "0"], "--concurrency"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--per-recipient-interval", "-1"], "--per-recipient-interval"),
    ],
)
def test_bad_values_exit_2_naming_the_option(
    runner: CliRunner, write_csv, options: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["send", str(write_csv(CLEAN)), "--emulator", *options])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_says_where_the_default_comes_from(runner: CliRunner) -> None:
    text = " ".join(runner.invoke(cli, ["send", "--help"]).output.split())
    assert "80 is WhatsApp's default per business number" in text
    assert "--rate 1000 after an upgrade" in text
    assert "--rate none for no limit" in text


A, B = "+911234567890", "+919876543210"
MANY = "to,body\n" + "".join(f"+9198{i:08d},Hi {i}\n" for i in range(80))


def arrivals(emu: Emulator, sender: str) -> list[float]:
    ledger = emu.messages[emu.messages["from"] == sender]
    return list((ledger["received_at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds())


@pytest.mark.slow
def test_several_numbers_from_the_command_line(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    # --from A,B pins each recipient; --rate N is per number, --rate A=N one number's own.
    out = tmp_path / "r.parquet"
    with Emulator(latency=0.02, callbacks=False) as emu:
        args = ["send", str(write_csv(MANY)), "--sid", emu.sid, "--api-key", emu.api_key,
                "--base-url", emu.url, "--out", str(out), "--from", f"{B},{A}",
                "--rate", "8", "--rate", f"{A}=1000", "--per-recipient-interval", "0"]  # fmt: skip
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        fast, slow = arrivals(emu, A), arrivals(emu, B)
        ledger = dict(zip(emu.messages["to"], emu.messages["from"], strict=True))
    results = load_results(out)
    assert dict(zip(results["to"], results["sender"], strict=True)) == ledger
    assert max_in_any_window(slow) <= 8
    assert max_in_any_window(fast) > 8
    settings = results.attrs["run"].settings
    assert (settings["rate_limit"], settings["sender_rates"]) == (8.0, {A: 1000.0})


def test_the_account_rate_reaches_send(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    run = send(runner, write_csv(CLEAN), tmp_path / "r.parquet", "--account-rate", "50",
               "--per-recipient-interval", "0")  # fmt: skip
    assert run["account_rate"] == 50.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--rate", "+911234567890=0.5"], "at least 1 message per second"),
        (["--rate", "abc=10"], "NUMBER=N"),
        (["--rate", "10", "--rate", "20"], "one rate for every number"),
        (["--account-rate", "0"], "--account-rate"),
    ],
)
def test_bad_rates_per_number_exit_2_naming_the_option(
    runner: CliRunner, write_csv, options: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["send", str(write_csv(CLEAN)), "--emulator", *options])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_invalid_number_in_from_is_refused_in_one_line_naming_it(
    runner: CliRunner, write_csv
) -> None:
    args = ["send", str(write_csv(CLEAN)), "--emulator", "--from", f"{A},+91abc"]
    result = runner.invoke(cli, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "--from '+91abc'" in lines[0]


def test_one_number_given_two_rates_is_refused(runner: CliRunner, sample_csv: Path) -> None:
    """Review of #21: the last of two rates for one number won without a word."""
    outcome = runner.invoke(
        cli,
        [
            "send",
            str(sample_csv),
            "--emulator",
            "--from",
            "+911234567890,+919876543210",
            "--rate",
            "+911234567890=5",
            "--rate",
            "+911234567890=50",
        ],
    )
    assert outcome.exit_code == 2
    assert "given two rates" in outcome.output
