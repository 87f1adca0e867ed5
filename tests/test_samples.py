"""The sample files agree with each other: a newcomer who combines them as the README does
meets only the mistakes each file holds on purpose, never one made by the samples disagreeing
(issue #18: the recipients' order_shipped rows had two parameters, the catalogue three)."""

from __future__ import annotations

import pytest
from conftest import ROOT, SENDER

import kwa_batch as kb

SAMPLES = ROOT / "sample_data"
#: The rows sample_data/recipients.csv gets wrong on purpose (README: "five bad rows").
RECIPIENTS_REFUSED = {17: "E13009", 18: "KWA004", 19: "E413", 20: "KWA001", 21: "KWA007"}


def _refused(report: kb.ValidationReport) -> dict[int, str]:
    first = report.errors.drop_duplicates("line")
    return {int(line): code for line, code in zip(first["line"], first["error_code"], strict=True)}


def test_the_two_catalogues_are_one() -> None:
    csv = kb.load_templates(SAMPLES / "templates.csv")
    assert csv.equals(kb.load_templates(SAMPLES / "templates.json"))


@pytest.mark.parametrize("catalogue", ["templates.csv", "templates.json"])
def test_the_catalogue_refuses_none_of_the_recipients_rows(catalogue: str) -> None:
    df = kb.load_recipients(SAMPLES / "recipients.csv")
    plain = kb.validate(df, sender=SENDER)
    assert _refused(plain) == RECIPIENTS_REFUSED
    templates = kb.load_templates(SAMPLES / catalogue)
    checked = kb.validate(df, sender=SENDER, templates=templates)
    assert _refused(checked) == RECIPIENTS_REFUSED, checked.errors[["line", "message"]]


def test_the_campaign_workbook_fits_the_catalogue() -> None:
    """The campaign notebook's template campaign: its refusals are the workbook's own
    (numbers, an empty name), none from the catalogue."""
    df = kb.load_recipients(SAMPLES / "campaign.xlsx")
    report = kb.validate(
        df,
        default_region="IN",
        sender=SENDER,
        template_name="order_shipped",
        params_from=["name", "order_id", "amount"],
        lang_code="en",
        templates=kb.load_templates(SAMPLES / "templates.csv"),
    )
    assert set(report.errors["error_code"]) == {"E13009", "KWA004", "KWA009"}


def test_the_rate_card_prices_every_sample_recipient() -> None:
    df = kb.load_recipients(SAMPLES / "recipients.csv")
    templates = kb.load_templates(SAMPLES / "templates.csv")
    report = kb.validate(df, sender=SENDER, templates=templates)
    found = kb.estimate(report, rates=SAMPLES / "rate_card.csv")
    assert found.attrs["summary"]["unpriced_messages"] == 0, found
    assert found["category"].isin(["service", "utility"]).all()


def test_the_suppression_list_reads_as_numbers() -> None:
    numbers = kb.load_suppression(SAMPLES / "do_not_contact.csv")
    assert len(numbers) == 2


def test_no_sample_row_names_a_callback_receiver() -> None:
    """Every run of the sample (the README's first command, the test suite) would post its
    callbacks to the receiver named there, a user's own included: none is named; a user who
    wants callbacks passes ``--callback-url`` with the URL their receiver prints."""
    tables = [
        kb.load_recipients(SAMPLES / name)
        for name in ("recipients.csv", "template_campaign.csv", "campaign.xlsx")
    ]
    for table in tables:
        if "callback_url" in table.columns:
            assert table["callback_url"].isna().all(), table["callback_url"].dropna().tolist()


def test_sending_the_sample_to_the_emulator_posts_no_callback() -> None:
    with kb.Emulator() as emu:  # callbacks on, as `send --emulator` has them
        report = kb.validate(kb.load_recipients(SAMPLES / "recipients.csv"), sender=SENDER)
        results = kb.send(report, emu.client(), progress=False)
        assert emu.wait_for_callbacks(10)
    assert (results["status"] == "sent").sum() == 15
    assert emu.messages["callback_url"].isna().all()
    assert emu.callback_stats == dict.fromkeys(emu.callback_stats, 0)
