"""Media messages and media and authentication templates: loaded, validated, sent."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import ROOT, SENDER

import kwa_batch as kb
from kwa_batch.emulator.server import Emulator
from kwa_batch.validation import validate

PRIYA = "+919876543210"


@pytest.mark.parametrize(
    ("row", "code", "column"),
    [
        ({"type": "media"}, "KWA002", "media_url"),
        ({"type": "media", "media_url": "cdn/invoice.pdf"}, "KWA026", "media_url"),
        (
            {"type": "mediatemplate", "media_url": "https://x.example/a.pdf"},
            "KWA002",
            "template_name",
        ),
        (
            {"type": "authenticationtemplate", "template_name": "login_code"},
            "KWA002",
            "verification_code",
        ),
        (
            {"type": "authenticationtemplate", "verification_code": "123456"},
            "KWA002",
            "template_name",
        ),
        (
            {"type": "mediatemplate", "template_name": "x", "param_url": "a\tb"},
            "KWA006",
            "param_url",
        ),
        ({"type": "video", "media_url": "https://x.example/a.mp4"}, "KWA003", "type"),
    ],
)
def test_what_each_type_needs(row: dict[str, str], code: str, column: str) -> None:
    report = validate(pd.DataFrame([{"to": PRIYA, **row}]), sender=SENDER)
    assert (report.errors["error_code"].tolist(), report.errors["column"].tolist()) == (
        [code],
        [column],
    )


def test_a_media_message_needs_an_open_window_like_text() -> None:
    df = pd.DataFrame({"to": [PRIYA], "type": ["media"], "media_url": ["https://x.example/a.jpg"]})
    windows = pd.DataFrame(
        {"business_number": pd.Series([], dtype="str"), "recipient": pd.Series([], dtype="str"),
         "expires_at": pd.Series([], dtype="datetime64[us, UTC]")}
    )  # fmt: skip
    report = validate(df, sender=SENDER, windows=windows)
    assert report.errors["error_code"].tolist() == ["KWA012"]


def test_they_are_sent_with_their_fields(write_csv, fresh_emulator: Emulator) -> None:
    path = write_csv(
        "to,type,template_name,lang_code,params,Media URL,caption,param_header,param_url,"
        "verification_code\n"
        f"{PRIYA},media,,,,https://cdn.example.com/a.jpg,Your parcel,,,\n"
        f'{PRIYA},mediatemplate,order_invoice,en,"Priya,A1005",https://cdn.example.com/A1005.pdf,,,,\n'
        f'{PRIYA},mediatemplate,delivery_update,en,"9:00,11:00",,,A1005,A1005,\n'
        f"{PRIYA},authenticationtemplate,login_code,en,,,,,,482913\n"
    )
    df = kb.load_recipients(path)
    assert "media_url" in df.columns  # the API's own name, however the header spells it
    report = validate(df, sender=SENDER, templates=ROOT / "sample_data" / "templates.csv")
    assert report.ok, report.errors
    # Four messages to one customer: no pair-rate spacing here, the test is about fields.
    client = fresh_emulator.client()
    results = kb.send(report, client, progress=False, per_recipient_interval=0)
    assert (results["status"] == "sent").all()
    ledger = fresh_emulator.messages.set_index("type")
    assert ledger.loc["media", "caption"] == "Your parcel"
    invoice = ledger.loc["mediatemplate"].iloc[0]
    assert invoice["media_url"] == "https://cdn.example.com/A1005.pdf"
    assert ledger.loc["authenticationtemplate", "verification_code"] == "482913"


def test_an_authentication_template_counts_its_code_as_the_parameter() -> None:
    df = pd.DataFrame(
        {"to": [PRIYA, PRIYA], "type": ["authenticationtemplate"] * 2,
         "template_name": ["login_code", "spring_sale"], "verification_code": ["482913", "1"]}
    )  # fmt: skip
    report = validate(df, sender=SENDER, templates=ROOT / "sample_data" / "templates.csv")
    # spring_sale is paused, and takes 2 parameters, not one code.
    assert report.errors["error_code"].tolist() == ["KWA017", "KWA019"]
