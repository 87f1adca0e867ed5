"""Exports: numbers stay text, nothing becomes a formula, CSV survives Excel and comes back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from kwa_batch import KwaBatchError, export_results, load_recipients
from kwa_batch.results import results_frame


def results() -> pd.DataFrame:
    records = {
        "to": ["+919876543210", "+447911123456", '=HYPERLINK("http://evil")', "0044 7911"],
        "status": ["sent", "failed", "rejected", "rejected"],
        "message_id": ["abc:0", None, None, None],
        "error_code": [None, "E13009", "E13009", "E13009"],
        "error_message": [None, "to: invalid", "-1+1 is not a number", "@mention"],
        "http_status": [200, 400, None, None],
        "attempts": [1, 1, 0, 0],
        "sent_at": [
            datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
            datetime(2026, 11, 25, 10, 1, tzinfo=UTC),
            None,
            None,
        ],
        "request_id": ["abc", None, None, None],
    }
    frame = results_frame(records, pd.RangeIndex(4))
    frame.attrs["run"] = {"base_url": "http://127.0.0.1:1", "concurrency": 8}
    return frame


def test_results_frame_has_contract_dtypes() -> None:
    frame = results()
    assert str(frame["http_status"].dtype) == "Int64"
    assert str(frame["attempts"].dtype) == "Int64"
    assert isinstance(frame["sent_at"].dtype, pd.DatetimeTZDtype)
    assert str(frame["sent_at"].dt.tz) == "UTC"


def test_xlsx_keeps_numbers_as_text_and_writes_no_formula(tmp_path: Path) -> None:
    path = export_results(results(), tmp_path / "out.xlsx")
    book = load_workbook(path)
    assert book.sheetnames == ["Results", "Summary", "Errors"]
    sheet = book["Results"]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["row", "to", "status"]
    cells = {
        (r, header[c - 1]): sheet.cell(r, c) for r in range(2, 6) for c in range(1, len(header) + 1)
    }
    assert cells[(2, "to")].value == "+919876543210"
    assert cells[(2, "to")].data_type == "s"
    assert cells[(4, "to")].value == '=HYPERLINK("http://evil")'
    assert all(cell.data_type != "f" for row in book["Results"].iter_rows() for cell in row)
    assert cells[(2, "sent_at")].value == datetime(2026, 11, 25, 10, 0)
    assert cells[(4, "http_status")].value is None
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:J5"
    errors = book["Errors"]
    assert errors.max_row == 4  # header + the failed and the two rejected rows
    summary = [[c.value for c in row][:3] for row in book["Summary"].iter_rows()]
    assert ["sent", 1, 0.25] in summary
    assert ["rejected", 2, 0.5] in summary


def test_csv_has_bom_neutralises_formulas_and_keeps_phones(tmp_path: Path) -> None:
    path = export_results(results(), tmp_path / "out.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = load_recipients(path)
    assert back["to"].tolist()[:2] == ["+919876543210", "+447911123456"]
    assert back.loc[2, "to"] == '\'=HYPERLINK("http://evil")'
    assert back.loc[2, "error_message"] == "'-1+1 is not a number"
    assert back.loc[3, "error_message"] == "'@mention"
    assert back.loc[0, "sent_at"] == "2026-11-25 10:00:00"


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KwaBatchError, match=r"use a \.xlsx or \.csv"):
        export_results(results(), tmp_path / "out.json")
