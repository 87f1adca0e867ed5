"""What the command line prints fits the terminal: words are never cut at its edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kwa_batch.cli import cli


def test_at_80_columns_no_line_breaks_mid_word(
    sample_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal 80 columns wide: the banner and every rejection wrap at spaces, the
    continuation lines indented under the message (a newcomer saw words cut in half)."""
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(
        cli, ["send", str(sample_csv), "--emulator", "--out", str(tmp_path / "r.xlsx")]
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    # Only a word longer than the line (the temporary folder's path) may pass the edge.
    too_long = [line for line in lines if len(line) > 80 and " " in line.strip()]
    assert too_long == []
    text = " ".join(line.strip() for line in lines)
    assert "nothing leaves this machine" in text
    assert "a spreadsheet turned the number into a float" in text
    continued = [line for line in lines if line.startswith(" " * 30) and line.strip()]
    assert continued, "long rejections continue on indented lines"


def test_a_pipe_keeps_one_line_per_problem(sample_csv: Path, tmp_path: Path) -> None:
    """Without a terminal (cron, a log file) nothing is wrapped: one problem, one line."""
    result = CliRunner().invoke(cli, ["validate", str(sample_csv)])
    lines = [line for line in result.output.splitlines() if "KWA004" in line and "line 18" in line]
    assert len(lines) == 1, result.output
    assert "the number will not be guessed" in lines[0]


def test_the_summary_by_code_does_not_offer_region_to_every_bad_number(tmp_path: Path) -> None:
    """'98765' has too few digits: no --region can help it, and the summary by code said
    "or pass --region for numbers written nationally" to every E13009 row; it now points to
    each row's own reason, and keeps --region for numbers without a country code."""
    path = tmp_path / "r.csv"
    path.write_text("to,body\n98765,Hi\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    summary = result.output.split("By error code:")[1]
    assert "each row's message says what is wrong" in summary
    assert "numbers written nationally" not in summary
    assert "without its country code: pass --region" in summary
