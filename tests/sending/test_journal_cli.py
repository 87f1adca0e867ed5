"""What `kwa-batch send --journal` says and how it exits when its journal fails mid-run (a
full disk): the results are written, one line says why, exit 3."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import SENDER

from kwa_batch import Emulator
from kwa_batch.cli import cli


def run(emulator: Emulator, *args: str) -> Result:
    env = {
        "KALEYRA_SID": emulator.sid,
        "KALEYRA_API_KEY": emulator.api_key,
        "KALEYRA_BASE_URL": emulator.url,
        "KALEYRA_FROM": SENDER,
    }
    return CliRunner().invoke(cli, ["send", *args], env=env)


def campaign(path: Path, rows: int) -> Path:
    pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(rows)], "body": [f"Hi {i}" for i in range(rows)]}
    ).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("small_tmpfs", ["512k"], indirect=True)
def test_a_journal_that_fills_the_disk_stops_the_run_with_exit_3(
    emulator: Emulator, small_tmpfs: Path, tmp_path: Path
) -> None:
    rows = 3000
    recipients = campaign(tmp_path / "in.csv", rows)
    out = tmp_path / "r.csv"
    emulator.reset()
    result = run(
        emulator, str(recipients), "--journal", str(small_tmpfs / "j.db"), "--out", str(out), "-q"
    )
    assert result.exit_code == 3, result.output
    error, hint = result.output.splitlines()
    assert error == (
        f"Error: journal {small_tmpfs / 'j.db'} cannot be written any more (the disk is full): "
        "what it recorded before is intact; stop sending, free some space or move the journal, "
        f"then run again with it (results: {out})"
    )
    results = pd.read_csv(out, dtype=str)
    pending = int((results["status"] == "not_sent").sum())
    assert (
        hint
        == f"Incomplete: send again with the same journal to send the {pending:,} not_sent row(s)."
    )
    assert len(results) == rows  # every row, with what became of it
    assert set(results["status"]) == {"sent", "not_sent"}
    assert set(results.loc[results["status"] == "sent", "to"]) == set(emulator.messages["to"])


@pytest.mark.parametrize("small_tmpfs", ["512k"], indirect=True)
def test_results_go_elsewhere_when_the_full_disk_is_theirs_too(
    emulator: Emulator, small_tmpfs: Path, tmp_path: Path
) -> None:
    recipients = campaign(tmp_path / "in.csv", 3000)
    out = small_tmpfs / "r.csv"
    emulator.reset()
    result = run(
        emulator, str(recipients), "--journal", str(small_tmpfs / "j.db"), "--out", str(out), "-q"
    )
    assert result.exit_code == 3, result.output
    saved = result.output.split("the results were saved to ")[1].split(" instead.")[0]
    assert f"(results: {saved})" in result.output
    results = pd.read_csv(saved, dtype=str)
    assert len(results) == 3000
    assert set(results.loc[results["status"] == "sent", "to"]) == set(emulator.messages["to"])
    Path(saved).unlink()
