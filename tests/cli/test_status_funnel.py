"""`kwa-batch status` prints the campaign's funnel and writes it to the workbook."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hand_counted import EXPECTED, RATE_CARD, TEMPLATES, data_frame, fill_store, results_frame
from openpyxl import load_workbook

import kwa_batch as kb
from kwa_batch.cli import cli


@pytest.fixture
def campaign(tmp_path: Path) -> tuple[Path, Path]:
    results = kb.export_results(results_frame(), tmp_path / "results.xlsx", data=data_frame())
    return results, fill_store(tmp_path / "receipts.db")


def table_row(lines: list[str], label: str) -> list[str]:
    return next(line for line in lines if line.strip().startswith(label)).split()


def test_status_prints_the_funnel_and_writes_its_sheet(
    runner: CliRunner, campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    results, store = campaign
    out = tmp_path / "status.xlsx"
    outcome = runner.invoke(
        cli,
        ["status", str(results), "--receipts", str(store), "--rates", str(RATE_CARD),
         "--templates", str(TEMPLATES), "--out", str(out)],
    )  # fmt: skip
    assert outcome.exit_code == 1, outcome.output  # as the run: failed and rejected rows
    lines = outcome.output.splitlines()
    assert "Funnel (per template, per country, and in total):" in lines
    header = table_row(lines, "rows")
    assert header == ["rows", "sent", "delivered", "read", "replied", "failed", "not", "sent",
                      "rejected", "cost", "estimated"]  # fmt: skip
    for key, expected in EXPECTED.items():
        label = "total" if key[0] == "total" else key[1]
        cells = table_row(lines, label)[len(label.split()) :]
        assert [int(c) for c in cells[:8]] == list(expected["counts"]), key
        assert float(cells[8]) == pytest.approx(expected["cost"], abs=5e-5), key
        assert float(cells[9]) == pytest.approx(expected["estimated"], abs=5e-5), key
    assert "  failed 131049         1  retry: WhatsApp's per-user marketing limit" in (
        outcome.output
    )
    assert "Failed rows by action: 1 retry, 1 final, 1 stop" in lines
    assert "Cost: 0.0597 actual, 0.1574 estimated; 2 row(s) without a known cost" in (
        outcome.output
    )
    book = load_workbook(out, read_only=True)
    funnel = list(book["Funnel"].iter_rows(values_only=True))
    book.close()
    total = dict(zip(funnel[0], funnel[-1], strict=False))
    assert (total["by"], total["value"], total["rows"], total["replied"]) == ("total", "all", 12, 3)
    assert total["cost"] == pytest.approx(0.0597)
    written = kb.load_results(out)
    assert written["template_name"].equals(data_frame()["template_name"].astype("string"))
    assert pd.isna(written.loc[11, "cost"])


def test_status_without_a_rate_card_says_why_costs_are_unknown(
    runner: CliRunner, campaign: tuple[Path, Path], tmp_path: Path
) -> None:
    results, store = campaign
    outcome = runner.invoke(
        cli, ["status", str(results), "--receipts", str(store), "--out", str(tmp_path / "s.csv")]
    )
    assert outcome.exit_code == 1, outcome.output
    text = " ".join(outcome.output.split())  # unwrapped
    assert "Cost: 0.0028 actual, - estimated; 4 row(s) without a known cost" in text
    assert "billable as marketing: no rate card to price it (--rate-card) (1)" in text
    assert "rates=" not in text
    assert table_row(outcome.output.splitlines(), "GB")[-2:] == ["-", "-"]
