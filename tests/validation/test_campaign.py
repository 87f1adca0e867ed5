"""campaign_findings: the catalogue and the suppression list over built messages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import ROOT

from kwa_batch.validation.campaign import as_suppression, campaign_findings
from kwa_batch.validation.suppression import load_suppression

CSV = ROOT / "sample_data" / "templates.csv"


def test_template_fields_come_from_the_input_however_named() -> None:
    prepared = pd.DataFrame(
        {"to": ["+919876543210", "+919876543211"], "type": ["template", "template"],
         "template_name": ["order_invoice", "order_invoice"], "params": ["A,B", "A,B"],
         "lang_code": [None, None]}
    )  # fmt: skip
    df = pd.DataFrame({"Media URL": ["https://x.example/i.pdf", None]}, index=[5, 6])
    check = campaign_findings(prepared, df, templates=CSV)
    assert [(f.code, f.positions.tolist()) for f in check.findings] == [("KWA020", [1])]
    assert check.lang_code is not None
    assert check.lang_code.tolist() == ["en", "en"]


def test_suppressed_rows_are_found(tmp_path: Path) -> None:
    prepared = pd.DataFrame({"to": ["+919876543210", None, "+447911123456"]})
    dnc = tmp_path / "dnc.txt"
    dnc.write_text("+44 7911 123456\n")
    check = campaign_findings(prepared, prepared, suppress=[dnc])
    [finding] = check.findings
    assert (finding.code, finding.column, finding.positions.tolist()) == ("KWA025", "to", [2])
    assert "dnc.txt" in finding.message[0]


def test_a_list_of_sources_or_of_numbers(tmp_path: Path) -> None:
    dnc = tmp_path / "dnc.txt"
    dnc.write_text("+44 7911 123456\n")
    frame = load_suppression(["+919876543210"])
    both = as_suppression([str(dnc), frame])
    assert both["number"].tolist() == ["+447911123456", "+919876543210"]
    assert as_suppression(["+919876543210"])["number"].tolist() == ["+919876543210"]
    assert as_suppression(frame) is frame
