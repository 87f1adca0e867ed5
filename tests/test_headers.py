"""Reading a file's header as the API's fields: columns=, the common exports, header case,
the sheet to read (issue #14, "Files as people have them")."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from kwa_batch import InputError, load_recipients, validate

DATA = Path(__file__).resolve().parent / "data"
SENDER = "+911234567890"


def test_columns_maps_any_field_from_any_column(write_csv) -> None:
    path = write_csv("Phone 1 - Value,Message,Order Ref\n+91 98765 43210,Hello,A1\n")
    df = load_recipients(
        path, columns={"to": "Phone 1 - Value", "body": "Message", "ref": "Order Ref"}
    )
    assert list(df.columns) == ["to", "body", "ref"]
    assert df.attrs["columns"] == {"to": "Phone 1 - Value", "body": "Message", "ref": "Order Ref"}
    report = validate(df, sender=SENDER)
    assert report.ok
    assert report.valid.loc[0, "to"] == "+919876543210"


def test_columns_wins_over_an_alias_and_keeps_the_other_phone_column(write_csv) -> None:
    df = load_recipients(
        write_csv("Mobile,WhatsApp No,body\n+447911123456,+919876543210,Hi\n"),
        columns={"to": "Mobile"},
    )
    assert list(df.columns) == ["to", "WhatsApp No", "body"]
    assert df.loc[0, "to"] == "+447911123456"


_CONTACTS = "Name,Phone 1 - Value,Message\nPriya,+919876543210,Hi\n"


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        (
            _CONTACTS,
            {"to": "Phone 9 - Value"},
            "columns= maps 'to' to the column 'Phone 9 - Value', which the file does not have; "
            "its columns are: 'Name', 'Phone 1 - Value', 'Message'",
        ),
        (_CONTACTS, {"to": "phone 1 - value"}, "did you mean 'Phone 1 - Value'?"),
        (_CONTACTS, {"recipient": "Name"}, "columns= maps 'recipient', which is not an API field"),
        (
            _CONTACTS,
            {"to": "Phone 1 - Value", "body": "Phone 1 - Value"},
            "columns= maps both 'to' and 'body' to the column 'Phone 1 - Value'",
        ),
        (_CONTACTS, {"To": "Name", "to": "Phone 1 - Value"}, "maps the field 'to' twice"),
        (
            "Name,Phone,body\nPriya,+919876543210,Hi\n",
            {"body": "Name"},
            "columns= maps 'body' to 'Name', but the file also has the column 'body' (column 3)",
        ),
    ],
)
def test_columns_refuses_what_it_cannot_map(write_csv, text, columns, message: str) -> None:
    with pytest.raises(InputError) as info:
        load_recipients(write_csv(text), columns=columns)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_columns_must_be_a_mapping(write_csv) -> None:
    with pytest.raises(InputError, match="takes a dict of API field to column"):
        load_recipients(write_csv("to\n+919876543210\n"), columns=["to"])  # type: ignore[arg-type]


def test_google_contacts_export_loads_without_a_flag(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kwa_batch"):
        df = load_recipients(DATA / "google_contacts.csv")
    assert df.columns[10] == "to"
    assert "Phone 2 - Value" in df.columns
    assert df.loc[0, "to"] == "+91 98765 43210"
    note = df.attrs["notes"][0]
    assert note.startswith("'Phone 1 - Value' taken as the recipient column")
    assert "'Phone 2 - Value'" in note
    assert note in caplog.text
    report = validate(df, sender=SENDER, body_template="Hi {Given Name}")
    assert list(report.valid.index) == [0, 2]
    several = report.errors.set_index("row").loc[1]
    assert several["error_code"] == "KWA032"
    assert several["message"] == (
        "holds several numbers in one cell: put one number per row (a row for each "
        "recipient), or map the column that holds one with --column to=NAME / "
        "columns={'to': NAME}"
    )


def test_outlook_export_takes_the_mobile_phone() -> None:
    df = load_recipients(DATA / "outlook_contacts.csv")
    assert df.loc[:, "to"].tolist() == ["+91 98765 43210", "+44 7911 123456"]
    assert "Business Phone" in df.columns
    assert "Title" in df.columns
    (note,) = df.attrs["notes"]
    assert "'Mobile Phone' taken as the recipient column (a mobile column" in note
    # Only the other columns that hold numbers are named: the empty ones are no choice.
    assert "'Business Phone', 'Home Phone'" in note
    assert "Other Phone" not in note


@pytest.mark.parametrize(
    "header",
    ["Contact No", "Contact Number", "WhatsApp Number", "WhatsApp No", "Mobile No.", "Phone"],
)
def test_common_names_of_the_recipient_column(write_csv, header: str) -> None:
    df = load_recipients(write_csv(f"Name,{header}\nPriya,+919876543210\n"))
    assert list(df.columns) == ["Name", "to"]
    assert df.attrs["notes"] == []


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("Phone,WhatsApp Number", "WhatsApp Number"),  # WhatsApp first
        ("Mobile,WhatsApp", "WhatsApp"),
        ("Phone,Mobile", "Mobile"),  # then mobile
        ("Business Phone,Cell", "Cell"),
        ("Phone 2 - Value,Phone 1 - Value", "Phone 1 - Value"),  # Google's first phone
    ],
)
def test_a_whatsapp_or_mobile_column_is_preferred_and_said(write_csv, header, chosen) -> None:
    df = load_recipients(write_csv(f"{header}\n+919876543210,+447911123456\n"))
    position = header.split(",").index(chosen)
    assert df.columns[position] == "to"
    assert df.attrs["notes"][0].startswith(f"{chosen!r} taken as the recipient column")


@pytest.mark.parametrize(
    "header", ["Phone,Telephone", "Mobile,Cell", "Contact No,Phone 1 - Value", "Home Phone,Tel"]
)
def test_equal_candidates_are_refused_with_the_choices(write_csv, header: str) -> None:
    a, b = header.split(",")
    with pytest.raises(InputError) as info:
        load_recipients(write_csv(f"{header}\n+919876543210,+447911123456\n"))
    assert f"'{a}' and '{b}' could each be the recipient column" in str(info.value)
    assert "--column to=NAME / columns={'to': NAME}" in str(info.value)


def test_an_empty_candidate_is_no_choice(write_csv) -> None:
    df = load_recipients(write_csv("Phone,Telephone\n,+447911123456\n,+919876543210\n"))
    assert list(df.columns) == ["Phone", "to"]
    assert df.attrs["notes"] == []


def test_no_recipient_column_says_how_to_map_one(write_csv) -> None:
    with pytest.raises(InputError) as info:
        load_recipients(write_csv("Name,Email\nPriya,p@example.com\n"))
    assert "no recipient column" in str(info.value)
    assert "--column to=NAME" in str(info.value)
    assert "(found: 'Name', 'Email')" in str(info.value)


def test_the_users_headers_are_kept_as_written(write_csv) -> None:
    df = load_recipients(
        write_csv("To, Name ,Template Name,Order ID,AMOUNT\n+919876543210,Priya,t,A1,2436.50\n")
    )
    assert list(df.columns) == ["to", "Name", "template_name", "Order ID", "AMOUNT"]


def test_placeholders_and_params_find_a_header_whatever_its_case(write_csv) -> None:
    df = load_recipients(write_csv("to,Name,Order ID\n+919876543210,Priya,A1\n"))
    report = validate(df, sender=SENDER, body_template="Hi {name}, order {order id}")
    assert report.valid.loc[0, "body"] == "Hi Priya, order A1"
    report = validate(df, sender=SENDER, template_name="t", params_from=["NAME", "order_id"])
    assert report.valid.loc[0, "params"] == "Priya,A1"


def test_headers_differing_only_in_case_are_both_kept_and_must_be_named_exactly(
    write_csv,
) -> None:
    from kwa_batch import ConfigurationError

    df = load_recipients(write_csv("to,Name,NAME\n+919876543210,Priya,PRIYA\n"))
    assert list(df.columns) == ["to", "Name", "NAME"]
    assert validate(df, sender=SENDER, body_template="Hi {NAME}").valid.loc[0, "body"] == (
        "Hi PRIYA"
    )
    with pytest.raises(ConfigurationError, match="could be any of the columns 'Name', 'NAME'"):
        validate(df, sender=SENDER, body_template="Hi {name}")


def _instructions_first(path: Path, second: list[list[object]] | None = None) -> Path:
    book = Workbook()
    first = book.active
    first.title = "Instructions"
    first.append(["Fill in the Recipients sheet: one row per customer"])
    first.append(["Write numbers with + and the country code"])
    recipients = book.create_sheet("Recipients")
    for row in second or [["Mobile", "Name"], ["+919876543210", "Priya"]]:
        recipients.append(row)
    book.create_sheet("Lists")
    book.save(path)
    return path


def test_instructions_first_names_the_other_sheets(tmp_path: Path) -> None:
    path = _instructions_first(tmp_path / "campaign.xlsx")
    with pytest.raises(InputError) as info:
        load_recipients(path)
    message = str(info.value)
    assert "no recipient column" in message
    assert (
        "(read from the first sheet, 'Instructions'; the workbook also has 'Recipients', "
        "'Lists': read another with --sheet NAME / sheet_name=)"
    ) in message
    df = load_recipients(path, sheet_name="Recipients")
    assert list(df.columns) == ["to", "Name"]


@pytest.mark.parametrize(
    ("rows", "refusal"), [([], "the sheet is empty"), ([["Title only"]], "no rows")]
)
def test_an_empty_first_sheet_names_the_other_sheets(tmp_path: Path, rows, refusal) -> None:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.create_sheet("Recipients").append(["to"])
    path = tmp_path / "r.xlsx"
    book.save(path)
    with pytest.raises(InputError, match=refusal) as info:
        load_recipients(path)
    assert "the workbook also has 'Recipients'" in str(info.value)


def test_a_sheet_asked_for_is_not_second_guessed(tmp_path: Path) -> None:
    path = _instructions_first(tmp_path / "campaign.xlsx")
    with pytest.raises(InputError) as info:
        load_recipients(path, sheet_name="Instructions")
    assert "also has" not in str(info.value)


def test_notes_survive_validation_and_frames_stay_plain(write_csv) -> None:
    df = load_recipients(write_csv("Phone,Mobile\n+447911123456,+919876543210\n"))
    report = validate(df, sender=SENDER, body_template="Hi")
    assert report.valid.attrs["notes"] == df.attrs["notes"]
    assert isinstance(df, pd.DataFrame)


def test_a_sheet_for_a_csv_file_is_said_not_dropped(
    write_csv, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_csv("to\n+919876543210\n")
    with caplog.at_level(logging.WARNING, logger="kwa_batch"):
        df = load_recipients(path, sheet_name="Recipients")
    assert len(df) == 1
    assert f"{path}: --sheet 'Recipients' / sheet_name= is for .xlsx workbooks" in caplog.text
