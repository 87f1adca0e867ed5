"""Exports: numbers stay text, nothing becomes a formula, and every format reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER
from openpyxl import load_workbook

from kwa_batch import (
    Emulator,
    InputError,
    KwaBatchError,
    export_results,
    load_recipients,
    send,
    validate,
)
from kwa_batch.export import load_results
from kwa_batch.outcome import RunOutcome
from kwa_batch.results import ResultsBuilder


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
            datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC),
            datetime(2026, 11, 25, 10, 1, tzinfo=UTC),
            None,
            None,
        ],
        "request_id": ["abc", None, None, None],
    }
    builder = ResultsBuilder(pd.RangeIndex(4))
    builder.fill(
        list(range(4)),
        [dict(zip(records, row, strict=True)) for row in zip(*records.values(), strict=True)],
    )
    frame = builder.frame()
    frame.attrs["run"] = RunOutcome.of(
        frame, settings={"base_url": "http://127.0.0.1:1", "rate_limit": 80.0}
    )
    return frame


@pytest.fixture(scope="module")
def real_results(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results of the sample file sent to the emulator, with its input."""
    df = load_recipients(Path(__file__).resolve().parent.parent / "sample_data" / "recipients.csv")
    with Emulator() as emu:
        out = send(validate(df, sender=SENDER), emu.client(), progress=False)
    return df, out


def test_results_frame_has_contract_dtypes() -> None:
    frame = results()
    assert str(frame["http_status"].dtype) == "Int64"
    assert str(frame["attempts"].dtype) == "Int64"
    assert isinstance(frame["sent_at"].dtype, pd.DatetimeTZDtype)
    assert str(frame["sent_at"].dt.tz) == "UTC"


def test_xlsx_keeps_numbers_as_text_and_writes_no_formula(tmp_path: Path) -> None:
    path = export_results(results(), tmp_path / "out.xlsx")
    book = load_workbook(path)
    assert book.sheetnames == ["Results", "Summary", "Errors", "Run"]
    sheet = book["Results"]
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["line", "status", "to", "error_code", "error_message", "fix"]
    assert header[-1] == "row"  # the frame's index, last and hidden: load_results reads it
    cells = {
        (r, header[c - 1]): sheet.cell(r, c) for r in range(2, 6) for c in range(1, len(header) + 1)
    }
    assert cells[(2, "to")].value == "+919876543210"
    assert cells[(2, "to")].data_type == "s"
    assert cells[(4, "to")].value == '=HYPERLINK("http://evil")'
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    assert cells[(2, "sent_at (UTC)")].value == datetime(2026, 11, 25, 10, 0, 0, 123000)
    assert cells[(4, "http_status")].value is None
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:O5"  # sender, last of the technical columns
    assert sheet.column_dimensions["C"].width >= len('=HYPERLINK("http://evil")')
    errors = book["Errors"]
    assert errors.max_row == 4  # header + the failed and the two rejected rows
    header = [c.value for c in errors[1]]
    assert header[header.index("error_message") + 1] == "fix"  # the fix beside the reason
    assert "E.164" in errors.cell(2, header.index("fix") + 1).value
    summary = [[c.value for c in row][:3] for row in book["Summary"].iter_rows()]
    assert ["sent", 1, 0.25] in summary
    assert ["rejected", 2, 0.5] in summary
    assert ["rate_limit", 80, None] in summary  # run facts typed: a number stays a number
    assert ["exit_code", 1, None] in summary


def test_xlsx_round_trip(real_results, tmp_path: Path) -> None:
    _, sent = real_results
    back = load_results(export_results(sent, tmp_path / "r.xlsx"))
    pd.testing.assert_frame_equal(back, sent, check_index_type=False)


def test_parquet_round_trip_keeps_types_and_run(real_results, tmp_path: Path) -> None:
    _, sent = real_results
    back = load_results(export_results(sent, tmp_path / "r.parquet"))
    pd.testing.assert_frame_equal(back, sent)
    assert back.attrs["run"] == sent.attrs["run"]


def test_csv_round_trip_except_neutralised_cells(real_results, tmp_path: Path) -> None:
    _, sent = real_results
    back = load_results(export_results(sent, tmp_path / "r.csv"))
    pd.testing.assert_frame_equal(back, sent, check_index_type=False)


def test_input_columns_go_alongside_the_outcome(real_results, tmp_path: Path) -> None:
    df, sent = real_results
    path = export_results(sent, tmp_path / "r.xlsx", data=df)
    back = load_results(path)
    assert list(back.columns[: len(sent.columns)]) == list(sent.columns)
    assert back.loc[1, "to_as_written"] == "+91 98450 12345"
    assert back.loc[1, "to"] == "+919845012345"
    assert back.loc[0, "name"] == "Priya Sharma"
    with pytest.raises(KwaBatchError, match="same index"):
        export_results(sent, tmp_path / "x.xlsx", data=df.head(3))


def test_csv_has_bom_neutralises_formulas_and_keeps_phones(tmp_path: Path) -> None:
    path = export_results(results(), tmp_path / "out.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    back = load_recipients(path)
    assert back["to"].tolist()[:2] == ["+919876543210", "+447911123456"]
    assert back.loc[2, "to"] == '\'=HYPERLINK("http://evil")'
    assert back.loc[2, "error_message"] == "'-1+1 is not a number"
    assert back.loc[3, "error_message"] == "'@mention"
    (sent_at,) = [c for c in back.columns if str(c).lower() == "sent_at (utc)"]
    assert back.loc[0, sent_at] == "2026-11-25 10:00:00.123000"


def test_control_characters_become_visible_in_xlsx(tmp_path: Path) -> None:
    frame = results()
    frame.loc[1, "error_message"] = "bell\x07 here"
    path = export_results(frame, tmp_path / "out.xlsx")
    assert load_workbook(path)["Results"]["E3"].value == "bell\\x07 here"  # error_message


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KwaBatchError, match=r"use a \.xlsx, \.csv or \.parquet"):
        export_results(results(), tmp_path / "out.json")


def test_load_results_refuses_other_files(tmp_path: Path, sample_csv: Path) -> None:
    from kwa_batch import InputError

    with pytest.raises(InputError, match="not a kwa_batch results file"):
        load_results(sample_csv)
    with pytest.raises(InputError, match="no such file"):
        load_results(tmp_path / "missing.xlsx")


def test_csv_keeps_phone_numbers_as_written_in_the_input_columns(
    real_results, tmp_path: Path
) -> None:
    df, sent = real_results
    back = load_recipients(export_results(sent, tmp_path / "r.csv", data=df))
    assert back.loc[1, "to_as_written"] == "+91 98450 12345"
    assert back.loc[3, "to_as_written"] == "+1 (202) 555-0143"


def test_every_code_a_run_can_produce_has_a_fix() -> None:
    from kwa_batch import describe_code

    for code in (
        "E401",
        "HTTP403",
        "E429",
        "E500",
        "HTTP502",
        "E400",
        "INFLIGHT",
        "DROPPED",
        "NORECIPIENT",
        "INTERRUPTED",
        "TIMEOUT",
        "CONNECT",
        "NOTSENT",
    ):
        assert describe_code(code), code
    assert describe_code("XYZ") == ""


@pytest.mark.parametrize("written", ["+1", "-5", "+91 (98765) 43210", "+44.7911/123456", "(0)-1"])
def test_a_value_that_cannot_hold_a_formula_reads_back_as_written(
    tmp_path: Path, written: str
) -> None:
    """One formula-injection rule: digits, spaces and + ( ) - . / are never altered, so
    ``load_recipients`` reads every exported ``to`` back as it was written."""
    builder = ResultsBuilder(pd.RangeIndex(2))
    builder.fill(
        [0, 1], [{"to": written, "status": "rejected"}, {"to": "=1+1", "status": "rejected"}]
    )
    path = export_results(builder.frame(), tmp_path / "out.csv")
    back = load_recipients(path)
    assert back.loc[0, "to"] == written
    assert back.loc[1, "to"] == "'=1+1"  # a formula stays neutralised


def test_the_report_and_the_results_share_the_rule(tmp_path: Path) -> None:
    df = pd.DataFrame({"to": ["+1", "=HYPERLINK(1)"], "body": ["Hi", "Hi"]})
    report = validate(df, sender=SENDER)
    saved = pd.read_csv(report.save(tmp_path / "problems.csv"), dtype=str, encoding="utf-8-sig")
    assert set(saved["value"]) == {"+1", "'=HYPERLINK(1)"}


def test_a_workbook_a_colleague_can_use(tmp_path: Path, write_csv) -> None:
    source = write_csv(
        "Phone,Name,Amount,Order ID,Pincode\n"
        "+919876543210,Priya,2436.50,00123,560001\n"
        "+44 7911 123456,Olivia,12,00124,\n"
        "12,Bad,7,00125,560002\n"
    )
    df = load_recipients(source)
    with Emulator() as emu:
        results = send(df, emu.client(sender=SENDER), body_template="Hi {name}", progress=False)
    path = export_results(results, tmp_path / "r.xlsx", data=df)
    book = load_workbook(path)
    sheet = book["Results"]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["line", "status", "to"]
    assert [sheet.cell(r, 1).value for r in (2, 3, 4)] == [2, 3, 4]  # the file's lines
    assert "sent_at (UTC)" in header
    column = {name: header.index(name) + 1 for name in header}
    amount = [sheet.cell(r, column["Amount"]).value for r in (2, 3, 4)]  # headers as written
    assert amount == [2436.5, 12, 7]  # numbers a colleague can sum
    assert sheet.cell(2, column["Order ID"]).value == "00123"  # an id stays text
    assert sheet.cell(2, column["Pincode"]).value == "560001"
    for name in ("Results", "Summary", "Errors"):
        setup = book[name].page_setup
        assert setup.orientation == "landscape"
        assert setup.fitToWidth == 1
        assert book[name].print_title_rows == "$1:$1"
    errors = book["Errors"]
    errors_header = [c.value for c in errors[1]]
    assert errors_header[0] == "line"
    assert errors.cell(2, 1).value == 4
    back = load_results(path)
    assert back["line"].tolist() == [2, 3, 4]
    assert str(back["sent_at"].dtype) == "datetime64[us, UTC]"


def test_the_summary_has_a_delivery_block_once_receipts_are_merged(tmp_path: Path) -> None:
    merged = results().assign(delivery_status=pd.array(["read", None, None, None], dtype="string"))
    path = export_results(merged, tmp_path / "m.xlsx")
    rows = [[c.value for c in r] for r in load_workbook(path)["Summary"].iter_rows()]
    start = next(i for i, r in enumerate(rows) if r[0] == "delivery")
    assert rows[start + 3][:2] == ["read", 1]


def test_load_results_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "results.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"not a regular file|FIFO|pipe"):
        load_results(fifo)


def computed_by_a_spreadsheet() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and their input, whose free texts a spreadsheet would compute (``-2+3`` shows
    ``1``), next to phone numbers and plain numbers that must stay as written."""
    builder = ResultsBuilder(pd.RangeIndex(3))
    builder.fill(
        [0, 1, 2],
        [
            {"to": "+919876543210", "status": "sent", "message_id": "-1+1:0", "attempts": 1},
            {"to": "+91-98765-43210", "status": "failed", "error_code": "E400",
             "error_message": "+1-1 refused", "http_status": 400},
            {"to": "-2+3", "status": "rejected", "error_code": "E13009",
             "error_message": "@SUM(A1)"},
        ],
    )  # fmt: skip
    data = pd.DataFrame(
        {
            "to": ["+919876543210", "+91-98765-43210", "-2+3"],
            "from": ["+911234567890", "+91 12345 67890", pd.NA],
            "body": ["-2+3", "=HYPERLINK(1)", "\t=1+1"],
            "ref": ["+5", "@here", "-"],
            "params": ["@a,b", "x", "+919876543210"],
            "amount": ["-5", "12.50", "+2.5"],
            "alt_phone": ["+44-7911-123456", "+1 (202) 555-0143", pd.NA],
        },
        dtype="string",
    )
    return builder.frame(), data


def test_csv_neutralises_free_text_and_keeps_phones_and_numbers(tmp_path: Path) -> None:
    import csv

    sent, data = computed_by_a_spreadsheet()
    path = export_results(sent, tmp_path / "out.csv", data=data)
    with open(path, encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["body"] for r in rows] == ["'-2+3", "'=HYPERLINK(1)", "'\t=1+1"]
    assert [r["ref"] for r in rows] == ["+5", "'@here", "'-"]
    assert [r["params"] for r in rows] == ["'@a,b", "x", "+919876543210"]
    assert [r["error_message"] for r in rows] == ["", "'+1-1 refused", "'@SUM(A1)"]
    assert rows[0]["message_id"] == "'-1+1:0"  # the server's ids are text like any other
    # Phone columns exactly as written; plain numbers as written; typed columns untouched.
    assert [r["to"] for r in rows] == ["+919876543210", "+91-98765-43210", "-2+3"]
    assert [r["to_as_written"] for r in rows] == [r["to"] for r in rows]
    assert [r["from"] for r in rows] == ["+911234567890", "+91 12345 67890", ""]
    assert [r["alt_phone"] for r in rows] == ["+44-7911-123456", "+1 (202) 555-0143", ""]
    assert [r["amount"] for r in rows] == ["-5", "12.50", "+2.5"]
    assert [r["http_status"] for r in rows] == ["", "400", ""]
    back = load_recipients(path)
    assert back["to"].tolist() == ["+919876543210", "+91-98765-43210", "-2+3"]


def test_xlsx_writes_the_same_texts_as_text_never_as_formulas(tmp_path: Path) -> None:
    sent, data = computed_by_a_spreadsheet()
    path = export_results(sent, tmp_path / "out.xlsx", data=data)
    book = load_workbook(path)  # not read-only: data_type is the type stored in the file
    for title in ("Results", "Errors"):
        sheet = book[title]
        header = [c.value for c in sheet[1]]
        column = {name: [row[header.index(name)] for row in sheet.iter_rows(min_row=2)]
                  for name in ("body", "ref", "to", "amount", "error_message")}  # fmt: skip
        rows = len(column["to"])
        assert [c.value for c in column["body"]] == ["-2+3", "=HYPERLINK(1)", "\t=1+1"][-rows:]
        assert [c.value for c in column["to"]][-1] == "-2+3"
        for name in ("body", "ref", "to", "error_message"):
            assert {c.data_type for c in column[name] if c.value is not None} == {"s"}, name
        assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    assert book["Results"]["A1"].value == "line"


def test_a_carriage_return_is_neutralised_and_stays_in_its_row(tmp_path: Path) -> None:
    import csv

    sent, data = computed_by_a_spreadsheet()
    data["ref"] = pd.array(["\r-1", "a\rb", "x"], dtype="string")
    path = export_results(sent, tmp_path / "out.csv", data=data)
    with open(path, encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["ref"] for r in rows] == ["'\r-1", "a\rb", "x"]
