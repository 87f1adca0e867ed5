"""``--column FIELD=COLUMN`` and ``--sheet NAME`` on validate and send (issue #14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from kwa_batch.cli import cli

DATA = Path(__file__).resolve().parent.parent / "data"
SENDER = "+911234567890"


def test_validate_maps_columns(runner: CliRunner, write_csv) -> None:
    path = write_csv("Name,Phone 1 - Value,Message\nPriya,+91 98765 43210,Hi\n")
    args = ["validate", str(path), "--from", SENDER, "--column", "to=Phone 1 - Value"]
    result = runner.invoke(cli, [*args, "--column", "body=Message"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path}: 1 row(s), 1 valid, 0 invalid\n"


def test_without_the_body_mapping_the_fix_names_the_flag(runner: CliRunner, write_csv) -> None:
    path = write_csv("Mobile,Name,Message\n+919876543210,Priya,Hi\n")
    result = runner.invoke(cli, ["validate", str(path), "--from", SENDER])
    assert result.exit_code == 1
    assert (
        "a text message needs a body: fill it, or give a template_name to send a template; "
        "the file has a 'Message' column: map it with --column body=Message\n"
    ) in result.output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--column", "to"],
            "Error: --column 'to': write FIELD=COLUMN, e.g. --column to=\"Phone 1 - Value\" "
            "(the API field, then the header as the file writes it)\n",
        ),
        (
            ["--column", "to=Phone", "--column", "to=Mobile"],
            "Error: --column to is given twice: map each field once\n",
        ),
        (
            ["--column", "to=Phone 9 - Value"],
            "Error: {path}: --column maps 'to' to the column 'Phone 9 - Value', which the file "
            "does not have; its columns are: 'Name', 'Phone 1 - Value', 'Message'\n",
        ),
        (
            ["--column", "sender=Name"],
            "Error: --column maps 'sender', which is not an API field: map one of to, from, ",
        ),
    ],
)
def test_bad_mappings_are_one_line_and_exit_2(
    runner: CliRunner, write_csv, option: list[str], message: str
) -> None:
    path = write_csv("Name,Phone 1 - Value,Message\nPriya,+919876543210,Hi\n")
    result = runner.invoke(cli, ["validate", str(path), *option])
    assert result.exit_code == 2, result.output
    assert message.format(path=path) in result.output
    assert "Traceback" not in result.output


def test_the_chosen_recipient_column_is_a_note(runner: CliRunner) -> None:
    path = DATA / "google_contacts.csv"
    result = runner.invoke(
        cli, ["validate", str(path), "--from", SENDER, "--body-template", "Hi {Given Name}"]
    )
    assert result.exit_code == 1, result.output
    assert (
        "Note: 'Phone 1 - Value' taken as the recipient column (a phone column; the file also "
        "has 'Phone 2 - Value'): to send to another, use --column to=NAME\n"
    ) in result.output
    assert "KWA032  '+91 98765 43210 ::: +91 91234 56789' holds several numbers" in result.output


def _workbook(path: Path) -> Path:
    book = Workbook()
    book.active.title = "Instructions"
    book.active.append(["Put the recipients on the next sheet"])
    sheet = book.create_sheet("Recipients")
    sheet.append(["Mobile", "Name", "Message"])
    sheet.append(["+919876543210", "Priya", "Hi"])
    book.save(path)
    return path


def test_sheet_reads_another_sheet(runner: CliRunner, tmp_path: Path) -> None:
    path = _workbook(tmp_path / "campaign.xlsx")
    result = runner.invoke(cli, ["validate", str(path), "--from", SENDER])
    assert result.exit_code == 2
    assert result.output.endswith(
        "(read from the first sheet, 'Instructions'; the workbook also has 'Recipients': "
        "read another with --sheet NAME)\n"
    )
    result = runner.invoke(
        cli,
        [
            "validate",
            str(path),
            "--from",
            SENDER,
            "--sheet",
            "Recipients",
            "--column",
            "body=Message",
        ],
    )
    assert result.exit_code == 0, result.output


def test_send_takes_both_options(runner: CliRunner, tmp_path: Path) -> None:
    path = _workbook(tmp_path / "campaign.xlsx")
    out = tmp_path / "results.csv"
    result = runner.invoke(
        cli,
        [
            "send", str(path), "--emulator", "--quiet", "--out", str(out),
            "--sheet", "Recipients", "--column", "body=Message",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sent" in out.read_text(encoding="utf-8")


def test_sheet_on_a_csv_file_is_a_note(runner: CliRunner, write_csv) -> None:
    path = write_csv("to,body\n+919876543210,Hi\n")
    result = runner.invoke(cli, ["validate", str(path), "--from", SENDER, "--sheet", "X"])
    assert result.exit_code == 0, result.output
    assert (
        f"Note: {path}: --sheet 'X' is for .xlsx workbooks: a CSV file has one table, and it "
        "is read\n"
    ) in result.output
