"""load_suppression and suppressed_rows: numbers written any way, files, stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.errors import InputError
from kwa_batch.receipts.optouts import OptOutSource, opt_outs
from kwa_batch.receipts.store import CallbackStore, IncomingMessage
from kwa_batch.validation.phones import wa_id_forms
from kwa_batch.validation.suppression import (
    SUPPRESSION_COLUMNS,
    load_suppression,
    suppressed_rows,
)

PRIYA = "+919876543210"


def test_numbers_written_any_way_are_one_person() -> None:
    sup = load_suppression(
        ["+91 98765 43210", "919876543210", "+91-98765-43210", "098765 43210", 447911123456],
        default_region="IN",
    )
    assert list(sup.columns) == list(SUPPRESSION_COLUMNS)
    assert sup["number"].tolist() == ["+447911123456", PRIYA]
    assert sup["since"].isna().all()
    assert (sup["reason"] == "on the suppression list").all()


def test_series_set_and_tuple(tmp_path: Path) -> None:
    for source in (pd.Series([PRIYA, None]), {PRIYA}, (PRIYA,)):
        assert load_suppression(source)["number"].tolist() == [PRIYA]
    assert load_suppression().empty


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("dnc.txt", "+91 98765 43210\n\n+44 7911 123456\n"),
        ("dnc.csv", "phone\n+91 98765 43210\n+447911123456\n"),
        ("dnc.csv", "Name;Mobile No.\nPriya;+91 98765 43210\nOlivia;+44 7911 123456\n"),
        ("dnc.csv", "\ufeffto,reason\n+919876543210,\n+447911123456,complained\n"),
    ],
)
def test_files_of_numbers(write_csv, name: str, content: str) -> None:
    sup = load_suppression(write_csv(content, name=name))
    assert sup["number"].tolist() == ["+447911123456", PRIYA]


def test_a_file_s_since_and_reason_columns(write_csv) -> None:
    path = write_csv(
        "number,since,reason\n+919876543210,2026-11-02,asked by phone\n+447911123456,,\n",
        name="dnc.csv",
    )
    sup = load_suppression(path).set_index("number")
    assert sup.loc[PRIYA, "since"] == pd.Timestamp("2026-11-02", tz="UTC")
    assert sup.loc[PRIYA, "reason"] == "asked by phone"
    assert pd.isna(sup.loc["+447911123456", "since"])
    assert sup.loc["+447911123456", "reason"] == "on the suppression list dnc.csv"


def test_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "dnc.xlsx"
    pd.DataFrame({"Phone": ["+91 98765 43210", "+447911123456"]}).to_excel(path, index=False)
    assert load_suppression(path)["number"].tolist() == ["+447911123456", PRIYA]


def test_a_store_gives_its_opt_outs_and_sources_combine(tmp_path: Path, write_csv) -> None:
    path = tmp_path / "receipts.db"
    at = datetime(2026, 11, 30, 14, 2, tzinfo=UTC)
    with CallbackStore(path) as store:
        store.add_incoming(IncomingMessage("k", PRIYA, SENDER, at, at, "text", None, "STOP"))
    older = write_csv("number,since\n+919876543210,2026-10-01\n+12025550143,\n", name="old.csv")
    for source in (opt_outs(path), OptOutSource(path)):
        sup = load_suppression(source).set_index("number")
        assert sup.loc[PRIYA, "reason"] == "replied 'STOP'"
        assert sup.loc[PRIYA, "since"] == pd.Timestamp(at)
    # Validation sits below the receipts side: a path to a store is read by the caller.
    with pytest.raises(InputError, match=r"pass kb.OptOutSource\("):
        load_suppression(path)
    with pytest.raises(TypeError, match=r"kb\.OptOutSource\(path\)"):
        load_suppression(CallbackStore(path))
    both = load_suppression(OptOutSource(path), older).set_index("number")
    assert both.index.tolist() == ["+12025550143", PRIYA]
    # The earliest known date wins.
    assert both.loc[PRIYA, "since"] == pd.Timestamp("2026-10-01", tz="UTC")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("+919876543210\n98123\n", r"line 2: '98123'"),
        ("phone\n+919876543210\n9.19876543210E+11\n", r"line 3: '9\.19876543210E\+11'"),
        ("number,since\n+919876543210,next tuesday\n", "since 'next tuesday' is not a date"),
        ("name,city\nPriya,Pune\n", "not valid numbers: line 1: 'name'"),
    ],
)
def test_a_value_that_is_not_a_number_is_refused_never_dropped(
    write_csv, content: str, expected: str
) -> None:
    with pytest.raises(InputError, match=expected):
        load_suppression(write_csv(content, name="dnc.csv"))


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such suppression file"):
        load_suppression(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match="cannot read numbers to suppress from int"):
        load_suppression(919876543210)
    with pytest.raises(InputError, match="item 2: '12'"):
        load_suppression(["+919876543210", "12"])


def test_suppressed_rows_say_since_when_and_why() -> None:
    sup = pd.concat(
        [
            load_suppression(
                pd.DataFrame(
                    {"to": [PRIYA], "since": ["2026-11-30 14:02"], "reason": ["replied 'STOP'"]}
                )
            ),
            load_suppression(["+447911123456"]),
        ]
    )
    to = pd.Series([PRIYA, None, "+12025550143", "+447911123456"], index=[7, 8, 9, 10])
    mask, messages = suppressed_rows(to, sup)
    assert mask.tolist() == [True, False, False, True]
    assert messages.tolist() == [
        "this recipient opted out since 2026-11-30 14:02 UTC (replied 'STOP'): do not message "
        "them, remove the row",
        "this recipient opted out (on the suppression list): do not message them, remove the row",
    ]
    mask, messages = suppressed_rows(to, load_suppression())
    assert not mask.any()
    assert messages.empty


def test_a_journal_is_not_taken_for_a_receipts_store(tmp_path: Path) -> None:
    import sqlite3

    journal = tmp_path / "campaign.db"
    with sqlite3.connect(journal) as db:
        db.execute("CREATE TABLE runs (id INTEGER)")
    before = journal.read_bytes()
    with pytest.raises(InputError, match="is a SQLite file, not a list of numbers"):
        load_suppression(journal)
    assert journal.read_bytes() == before  # nothing was written into it


def test_an_unknown_header_gets_a_hint(write_csv) -> None:
    with pytest.raises(InputError, match="if line 1 is a header, name its column"):
        load_suppression(write_csv("Kunde\n+919876543210\n", name="dnc.csv"))


# -- issue 17: sources that cannot say "nobody" --------------------------------------------


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """A real .xlsx written by openpyxl: each sheet's rows, in order (an empty list: an
    empty sheet)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_every_sheet_of_a_workbook_is_read(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "do_not_contact.xlsx",
        {
            "Sheet1": [],
            "OptOuts": [["Name", "Phone", "Reason"], ["Priya", "+91 98765 43210", "STOP by SMS"]],
            "Notes": [],
            "More": [["+44 7911 123456"], [12025550143]],
        },
    )
    sup = load_suppression(path).set_index("number")
    assert sup.index.tolist() == ["+12025550143", "+447911123456", PRIYA]
    assert sup.loc[PRIYA, "reason"] == "STOP by SMS"
    assert (
        sup.loc["+447911123456", "reason"]
        == "on the suppression list do_not_contact.xlsx, sheet 'More'"
    )
    # The list reaches validation: the opted-out number is refused, not messaged.
    df = pd.DataFrame({"to": ["+91 98765 43210", "+91 98670 07788"], "body": ["Hi", "Hi"]})
    report = kb.validate(df, sender=SENDER, suppress=str(path))
    assert report.invalid["to"].tolist() == ["+91 98765 43210"]


def test_one_sheet_by_name(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "dnc.xlsx", {"Old": [["phone"], ["+447911123456"]], "OptOuts": [[PRIYA]]}
    )
    assert load_suppression(path, sheet="OptOuts")["number"].tolist() == [PRIYA]
    with pytest.raises(InputError, match=r"has no sheet 'Gone' \(it has: Old, OptOuts\)"):
        load_suppression(path, sheet="Gone")


def test_a_bad_value_names_the_sheet_the_line_and_the_value(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "dnc.xlsx",
        {"Sheet1": [], "OptOuts": [["phone"], [PRIYA], [None], ["call me maybe"]]},
    )
    with pytest.raises(InputError) as caught:
        load_suppression(path)
    message = str(caught.value)
    assert message.startswith("dnc.xlsx, sheet 'OptOuts': 1 value(s) are not valid numbers: ")
    assert "line 4: 'call me maybe'" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("dnc.csv", b"", "the file is empty"),
        ("dnc.txt", b"\n \n\t\n", "the file is empty"),
        ("dnc.csv", b"\xef\xbb\xbf", "the file is empty"),
        ("dnc.csv", "\r\n".encode("utf-16"), "the file is empty"),
        ("dnc.csv", b"phone\n", "it has a header and no numbers under it"),
        ("dnc.csv", b"name,phone,reason\nPriya,,\n", "it has a header and no numbers under it"),
    ],
)
def test_a_list_file_with_no_numbers_is_refused(
    write_csv, name: str, content: bytes, why: str
) -> None:
    path = write_csv(content, name=name)
    with pytest.raises(InputError) as caught:
        load_suppression(path)
    assert str(caught.value) == (
        f"{path}: a suppression list with no numbers would suppress nobody: {why}: put the "
        "numbers not to message in it (one a line, or in a column named 'phone' or "
        "'number'), or leave it out"
    )


def test_a_workbook_of_empty_sheets_is_refused_naming_them(tmp_path: Path) -> None:
    path = workbook(tmp_path / "dnc.xlsx", {"Sheet1": [], "OptOuts": [["Phone", "Reason"]]})
    with pytest.raises(InputError, match=r"none of its sheets \('Sheet1', 'OptOuts'\) holds a"):
        load_suppression(path)


def test_an_empty_python_list_is_taken_as_written() -> None:
    # Deliberate code, not a file that lost its rows: it suppresses nobody, as asked.
    for source in ([], (), pd.Series([], dtype="str"), pd.DataFrame({"to": []})):
        assert load_suppression(source).empty


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16", b""), ("utf-16-le", b"\xff\xfe"), ("utf-8", b"\xef\xbb\xbf"), ("cp1252", b"")],
)
def test_lists_in_the_encodings_recipient_files_load_in(
    write_csv, encoding: str, bom: bytes
) -> None:
    text = "phone;reason\r\n+91 98765 43210;résilié à la caisse\r\n+44 7911 123456;\r\n"
    path = write_csv(bom + text.encode(encoding), name="dnc.csv")
    sup = load_suppression(path).set_index("number")
    assert sup.index.tolist() == ["+447911123456", PRIYA]
    assert sup.loc[PRIYA, "reason"] == "résilié à la caisse"


@pytest.mark.parametrize(
    ("number", "forms"),
    [
        ("+5215512345678", ("+5215512345678", "+525512345678")),
        ("+525512345678", ("+525512345678", "+5215512345678")),
        ("+551187654321", ("+551187654321", "+5511987654321")),
        ("+5511987654321", ("+5511987654321", "+551187654321")),
        ("+551133334444", ("+551133334444",)),  # a São Paulo landline: no ninth digit
        ("+5511933334444", ("+5511933334444",)),
        (PRIYA, (PRIYA,)),
        ("+447911123456", ("+447911123456",)),
    ],
)
def test_wa_id_forms(number: str, forms: tuple[str, ...]) -> None:
    assert wa_id_forms(number) == forms


def test_a_wa_id_form_in_a_list_is_the_number_it_stands_for() -> None:
    sup = load_suppression(["5215512345678", "+55 11 8765 4321", "+52 1 55 1234 5678"])
    assert sup["number"].tolist() == ["+525512345678", "+5511987654321"]


def test_a_number_with_two_valid_forms_suppresses_both() -> None:
    # libphonenumber calls both valid: the old eight-digit form (a radio number once) and
    # the mobile with its ninth digit. An opt-out in one form holds the other too.
    for written in ("+55 11 7765 4321", "+55 11 97765 4321"):
        sup = load_suppression([written], ["+447911123456"])
        assert sup["number"].tolist() == ["+447911123456", "+551177654321", "+5511977654321"]
        assert sup.attrs["unreadable"] == ()
        to = pd.Series(["+551177654321", "+5511977654321", PRIYA])
        mask, _ = suppressed_rows(to, sup)
        assert mask.tolist() == [True, True, False]
