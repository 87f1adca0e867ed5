"""--suppress on the command line: every sheet, no empty lists, any encoding, receipts
stores as live sources with wa_id forms, and opt-outs that cannot be read said once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SENDER

from kwa_batch.cli import cli
from kwa_batch.receipts.optouts import OptOutSource
from kwa_batch.receipts.receiver import parse_callback
from kwa_batch.receipts.store import CallbackStore

RECIPIENTS = "to,body\n+91 98765 43210,Hi\n+52 55 1234 5678,Hola\n+44 7911 123456,Hello\n"


@pytest.fixture
def recipients(tmp_path: Path) -> Path:
    path = tmp_path / "recipients.csv"
    path.write_text(RECIPIENTS, encoding="utf-8")
    return path


def store_with(path: Path | str, *replies: tuple[str, str]) -> Path | str:
    """A receipts store holding these replies (number as Kaleyra sends it, body), stored as
    the receiver stores them."""
    at = datetime(2026, 11, 30, 14, 2, tzinfo=UTC)
    with CallbackStore(path) as store:
        for i, (number, body) in enumerate(replies):
            fields = {"from": number, "body": body, "created_at": at.isoformat(), "id": str(i)}
            store.add_incoming(parse_callback(fields, received_at=at))
    return path


def validate(runner: CliRunner, recipients: Path, *suppress: Path | str) -> tuple[int, str, str]:
    args = ["validate", str(recipients), "--from", SENDER]
    for path in suppress:
        args += ["--suppress", str(path)]
    result = runner.invoke(cli, args)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_an_optouts_sheet_after_an_empty_first_one(
    runner: CliRunner, recipients: Path, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Sheet1"
    sheet = book.create_sheet("OptOuts")
    sheet.append(["Phone", "Reason"])
    sheet.append(["+91 98765 43210", "asked by phone"])
    book.save(tmp_path / "do_not_contact.xlsx")
    code, out, _ = validate(runner, recipients, tmp_path / "do_not_contact.xlsx")
    assert code == 1, out
    assert "3 row(s), 2 valid, 1 invalid" in out
    assert "KWA025" in out
    assert "asked by phone" in out


@pytest.mark.parametrize("content", ["", "phone\n", "phone,reason\n\n"])
def test_a_list_with_no_numbers_exits_2_in_one_line(
    runner: CliRunner, recipients: Path, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text(content, encoding="utf-8")
    code, out, err = validate(runner, recipients, path)
    assert code == 2
    assert out == ""
    assert err.startswith(
        f"Error: {path}: a suppression list with no numbers would suppress nobody"
    )
    assert err.count("\n") == 1


def test_a_utf16_list(runner: CliRunner, recipients: Path, tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_bytes("Téléphone;Raison\r\n+91 98765 43210;STOP\r\n".encode("utf-16"))
    code, out, err = validate(runner, recipients, path)
    # 'Téléphone' (read right) is no known header: the message says so.
    assert code == 2
    assert "line 1: 'Téléphone'" in err
    assert "if line 1 is a header, name its column of numbers 'phone'" in err
    path.write_bytes("phone;raison\r\n+91 98765 43210;STOP\r\n".encode("utf-16"))
    code, out, _ = validate(runner, recipients, path)
    assert code == 1, out
    assert "3 row(s), 2 valid, 1 invalid" in out


def test_a_store_s_wa_id_forms_and_an_unreadable_opt_out(
    runner: CliRunner, recipients: Path, store_target: str
) -> None:
    store = store_with(
        store_target, ("5215512345678", "STOP"), ("1234567", "STOP"), ("+1234567", "Hi")
    )
    code, out, err = validate(runner, recipients, store)
    # The Mexican wa_id holds +52 55 1234 5678; the unreadable one does not stop the
    # command, and is said once, on one line.
    assert code == 1, out
    assert "3 row(s), 2 valid, 1 invalid" in out
    assert "replied 'STOP'" in out
    assert err == (
        "Warning: --suppress: 1 opt-out(s) name a number that cannot be read (***4567): they "
        "suppress nobody; check what the receiver stores as the sender ('from') and the "
        "recipient ('mobile')\n"
    )


def test_a_store_with_no_opt_outs_yet_is_accepted(
    runner: CliRunner, recipients: Path, tmp_path: Path
) -> None:
    store = store_with(tmp_path / "receipts.db", ("+919876543210", "Thanks!"))
    code, out, err = validate(runner, recipients, store)
    assert code == 0, out
    assert err == ""


def test_a_store_is_given_as_a_live_source(
    recipients: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kwa_batch.cli.options import campaign_lists
    from kwa_batch.validation import suppression

    store = store_with(tmp_path / "receipts.db", ("+919876543210", "STOP"))
    listed = tmp_path / "dnc.txt"
    listed.write_text("+44 7911 123456\n", encoding="utf-8")
    given: list[object] = []
    load = suppression.load_suppression

    def spy(*sources: object, **options: object) -> object:
        given.extend(sources)
        return load(*sources, **options)

    monkeypatch.setattr(suppression, "load_suppression", spy)
    found, live = campaign_lists(None, (str(store), str(listed)), None)["suppress"]
    assert found["number"].tolist() == ["+447911123456", "+919876543210"]
    assert isinstance(live, OptOutSource)  # read again while sending (issue #17)
    assert live.path == store
    assert isinstance(given[0], OptOutSource)
    assert given[0].path == store
    assert given[1] == listed
