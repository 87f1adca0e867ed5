"""``kwa-batch send``'s pacing options: --rate N|none, --concurrency, --max-concurrency,
--per-recipient-interval (through the emulator, results read back from the file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kwa_batch import load_results
from kwa_batch.cli import cli

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
