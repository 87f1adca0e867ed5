"""The results workbook on paper (issue #18): what a reader needs first, long texts wrapped,
one readable page wide, and a Summary in plain words; files written before still read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter, range_boundaries

import kwa_batch as kb
from kwa_batch import Emulator, export_results, load_recipients, send, tables, validate
from kwa_batch.export import load_results
from kwa_batch.tables import Sheet, plain, write_xlsx

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "recipients.csv"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """The 20-row sample sent to the emulator, with its input, exported to a workbook."""
    df = load_recipients(SAMPLE)
    with Emulator() as emu:
        results = send(validate(df, sender=SENDER), emu.client(), progress=False)
    path = export_results(results, tmp_path_factory.mktemp("print") / "r.xlsx", data=df)
    return df, results, path


def header(sheet) -> list[str]:
    return [c.value for c in sheet[1]]


def printed_columns(sheet) -> int:
    """How many first columns the print area holds (all when it has none)."""
    if not sheet.print_area:
        return sheet.max_column
    area = sheet.print_area.split("!")[-1].replace("$", "")
    return range_boundaries(area)[2]


def test_the_outcome_and_the_customers_columns_come_first(sample) -> None:
    _, _, path = sample
    sheet = load_workbook(path)["Results"]
    names = header(sheet)
    assert names[:6] == ["line", "status", "to", "error_code", "error_message", "fix"]
    assert names[6] == "name"  # the customer's own column, before the message's and ours
    assert names.index("ref") < names.index("body") < names.index("message_id")
    assert names.index("to_as_written") < names.index("message_id")
    assert names.index("message_id") < names.index("request_id")
    # The 0-based row is kept for load_results, last and hidden: a reader has `line`.
    assert names[-1] == "row"
    assert sheet.column_dimensions[get_column_letter(len(names))].hidden
    assert "row" not in names[: printed_columns(sheet)]


@pytest.mark.parametrize("title", ["Results", "Errors"])
def test_tables_print_one_readable_page_wide_with_long_texts_wrapped(sample, title) -> None:
    _, _, path = sample
    sheet = load_workbook(path)[title]
    names = header(sheet)
    widths = [sheet.column_dimensions[get_column_letter(i + 1)].width for i in range(len(names))]
    assert max(widths) <= tables.MAX_WIDTH
    shown = printed_columns(sheet)
    assert names[6] == "name"
    assert shown >= 7  # the outcome and the customer's name on paper
    assert sum(widths[:shown]) <= tables.PAGE_WIDTH  # so the page is printed near normal size
    for name in ("error_message", "fix"):
        column = names.index(name) + 1
        cells = [sheet.cell(r, column) for r in range(2, sheet.max_row + 1)]
        long = [c for c in cells if isinstance(c.value, str) and len(c.value) > tables.MAX_WIDTH]
        assert long, name
        assert all(c.alignment.wrap_text for c in long), name
        # Each such row is as tall as its wrapped text (spreadsheets do not all size it).
        assert all((sheet.row_dimensions[c.row].height or 15) > 15 for c in long), name
    assert sheet[1][0].font.b  # a bold header…
    assert sheet.freeze_panes == "A2"  # …frozen on screen…
    assert sheet.print_title_rows == "$1:$1"  # …and repeated on every printed page
    assert sheet.auto_filter.ref == f"A1:{get_column_letter(len(names))}{sheet.max_row}"


@pytest.mark.parametrize("title", ["Results", "Summary", "Errors"])
def test_every_sheet_prints_landscape_one_page_wide_any_pages_tall(sample, title) -> None:
    _, _, path = sample
    sheet = load_workbook(path)[title]
    assert sheet.page_setup.orientation == "landscape"
    assert sheet.page_setup.fitToWidth == 1
    assert sheet.page_setup.fitToHeight == 0
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.print_options.gridLines


def test_the_summary_says_in_plain_words_what_happened_and_what_to_do(sample) -> None:
    _, _, path = sample
    sheet = load_workbook(path)["Summary"]
    rows = [[c.value for c in r] for r in sheet.iter_rows()]
    printed = range_boundaries(sheet.print_area.split("!")[-1].replace("$", ""))[3]
    on_paper = "\n".join(str(v) for r in rows[:printed] for v in r if v is not None)
    assert "15 of 20 rows were sent" in on_paper
    assert "5 rejected (refused before sending because of the row's data; never sent)" in on_paper
    assert "What to do next" in on_paper
    assert "Fix the 5 rejected or failed row(s)" in on_paper
    # The request size explained against the --help's 100, not shown as a bare 80.
    assert "up to 80 recipients per request (Kaleyra takes up to 100" in on_paper
    assert "peak_in_flight" not in on_paper
    assert "max_recipients_per_request" not in on_paper
    # The facts themselves stay in the file, below, for support and for load_results.
    assert ["max_recipients_per_request", 80] in [r[:2] for r in rows[printed:]]
    width = sum(sheet.column_dimensions[get_column_letter(i)].width for i in range(1, 5))
    words = [r[0] for r in rows[:printed] if isinstance(r[0], str) and r[1:] == [None] * 3]
    assert all(len(w) < width for w in words)  # each line within the printed columns


def test_next_steps_follow_the_run() -> None:
    from kwa_batch import RunOutcome
    from kwa_batch.export import _run_in_words

    def counts(**given: int) -> dict[str, int]:
        return {status: given.get(status, 0) for status in kb.STATUSES}

    def steps(journal: str | None, **statuses: int) -> str:
        settings = {"journal": journal} if journal else {}
        return " ".join(RunOutcome(counts(**statuses), settings=settings).steps())

    assert steps(None, sent=3).startswith("Nothing: every row was sent")
    assert "same journal (j.db)" in steps("j.db", sent=1, not_sent=2)
    assert "Send the 2 not_sent row(s) on their own" in steps(None, sent=1, not_sent=2)
    assert "--resend-unknown" in steps("j.db", unknown=1)
    assert "Fix the 2 rejected or failed row(s)" in steps(None, rejected=1, failed=1)
    expired = RunOutcome(counts(sent=1, not_sent=2), never_sent=2).steps()
    assert not any("not_sent" in step for step in expired)  # never to be sent: nothing to do
    said = dict(_run_in_words({"stopped_by": "SIGINT"}, {"sent": 1, "not_sent": 1}, []))
    assert "The run was interrupted (Ctrl-C) before it finished." in said["What happened"]
    facts = {"held": {"KWA029": 2}, "resume": {"already sent": 3}, "pacing": "text read back"}
    how = dict(_run_in_words(facts, {"sent": 3, "not_sent": 2}, []))["How the run went"]
    assert "Held back by the schedule or the limits: 2 KWA029 (" in " ".join(how)
    assert "The journal had 3 row(s) sent by an earlier run" in " ".join(how)


def test_a_round_trip_keeps_the_customers_own_fix_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"to": ["+919876543210", "12"], "fix": ["call back", "ignore"]})
    with Emulator() as emu:
        results = send(df, emu.client(sender=SENDER), body_template="Hi", progress=False)
    back = load_results(export_results(results, tmp_path / "r.xlsx", data=df))
    assert back["fix"].tolist() == ["call back", "ignore"]  # theirs, not the code's fix
    derived = load_results(export_results(results, tmp_path / "plain.xlsx"))
    assert "fix" not in derived.columns  # ours is derived from error_code: not read back
    pd.testing.assert_frame_equal(derived, results, check_index_type=False)


def test_workbooks_written_before_still_read(sample, tmp_path: Path) -> None:
    """The layout of earlier versions: the 0-based row first, no fix column."""
    _, results, _ = sample
    old = tmp_path / "old.xlsx"
    summary = [["status", "rows", "share"], [], ["run", "value"], ["concurrency", 8]]
    write_xlsx(old, [Sheet("Results", plain(results)), Sheet("Summary", rows=summary)])
    back = load_results(old)
    pd.testing.assert_frame_equal(back, results, check_index_type=False)
    assert back.attrs["run"].settings == {"concurrency": 8}  # the facts it had, kept


def test_the_validation_report_prints_where_what_and_the_fix_first(tmp_path: Path) -> None:
    report = validate(load_recipients(SAMPLE), sender=SENDER)
    sheet = load_workbook(report.save(tmp_path / "problems.xlsx"))["Problems"]
    names = header(sheet)
    assert names[:6] == ["line", "error_code", "column", "value", "message", "fix"]
    assert sheet.column_dimensions[get_column_letter(names.index("row") + 1)].hidden
    assert printed_columns(sheet) >= 6  # the fix on paper
    fix = [sheet.cell(r, 6) for r in range(2, sheet.max_row + 1)]
    assert all(c.alignment.wrap_text for c in fix if len(c.value) > tables.MAX_WIDTH)


def test_the_run_sheet_is_for_load_results_not_for_paper(tmp_path: Path) -> None:
    """The outcome's data sheet is hidden: not among a reader's tabs, not printed with the
    workbook; load_results still reads it."""
    df = pd.DataFrame({"to": ["+919876543210"], "body": ["Hi"]})
    with Emulator() as emu:
        results = send(df, emu.client(sender=SENDER), progress=False)
    path = export_results(results, tmp_path / "r.xlsx")
    book = load_workbook(path)
    states = {sheet.title: sheet.sheet_state for sheet in book.worksheets}
    assert states == {"Results": "visible", "Summary": "visible", "Errors": "visible",
                      "Run": "hidden"}  # fmt: skip
    assert load_results(path).attrs["run"].counts["sent"] == 1
