"""Media messages and media and authentication templates, as the emulator takes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from conftest import ROOT, SENDER

import kwa_batch as kb
from kwa_batch.emulator.server import Emulator
from kwa_batch.receipts.receiver import Receiver

PRIYA = "+919876543210"


def post(
    emu: Emulator, files: dict[str, tuple[str, bytes, str]] | None = None, **fields: str
) -> requests.Response:
    form = {"to": PRIYA, "from": SENDER, "channel": "whatsapp", **fields}
    return requests.post(
        emu.messages_url, data=form, files=files, headers={"api-key": emu.api_key}, timeout=10
    )


def ledger_row(emu: Emulator, answer: requests.Response) -> dict[str, object]:
    message_id = answer.json()["data"][0]["message_id"]
    ledger = emu.messages
    return ledger[ledger["message_id"] == message_id].iloc[0].to_dict()


def test_a_media_message_with_a_link_is_recorded(emulator: Emulator) -> None:
    answer = post(
        emulator, type="media", media_url="https://cdn.example.com/a.jpg", caption="Your invoice"
    )
    assert answer.status_code == 200, answer.text
    row = ledger_row(emulator, answer)
    assert (row["type"], row["media_url"], row["caption"]) == (
        "media",
        "https://cdn.example.com/a.jpg",
        "Your invoice",
    )


def test_a_media_file_part_as_production_gateways_send_it(emulator: Emulator) -> None:
    form = {
        "to": "919876543210",
        "from": SENDER.lstrip("+"),
        "channel": "WhatsApp",
        "type": "media",
        "caption": "Invoice A1005",
        "api-key": emulator.api_key,
    }
    answer = requests.post(
        emulator.messages_url,
        data=form,
        files={"media": ("invoice.pdf", b"%PDF-1.4 ...", "application/pdf")},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert ledger_row(emulator, answer)["caption"] == "Invoice A1005"


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"type": "media"}, "media_url", "needs media_url or a media file part"),
        ({"type": "media", "media_url": "cdn/a.jpg"}, "media_url", "not an http(s) link"),
        (
            {"type": "media", "media_url": "https://x.example/a.jpg", "caption": "x" * 1025},
            "caption",
            "longer than 1024",
        ),
        (
            {"type": "mediatemplate", "media_url": "https://x.example/a.jpg"},
            "template_name",
            "needs template_name",
        ),
        (
            {"type": "authenticationtemplate", "template_name": "login_code"},
            "verification_code",
            "missing",
        ),
        (
            {
                "type": "authenticationtemplate",
                "template_name": "login_code",
                "verification_code": "12 34",
            },
            "verification_code",
            "1 to 15 letters or digits",
        ),
        (
            {"type": "video"},
            "type",
            "use text, template, media, mediatemplate or authenticationtemplate",
        ),
    ],
)
def test_what_each_type_needs(
    emulator: Emulator, fields: dict[str, str], field: str, reason: str
) -> None:
    answer = post(emulator, **fields)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "E400"
    assert reason in body["error"][field]


def test_media_and_authentication_templates_against_the_catalogue(tmp_path: Path) -> None:
    sends = [
        (
            {
                "type": "mediatemplate",
                "template_name": "order_invoice",
                "lang_code": "en",
                "params": "Priya,A1005",
                "media_url": "https://cdn.example.com/A1005.pdf",
            },
            None,
        ),
        (
            {
                "type": "mediatemplate",
                "template_name": "order_invoice",
                "lang_code": "en",
                "params": "Priya,A1005",
                "param_header": "x",
            },
            "132012",
        ),
        (
            {
                "type": "mediatemplate",
                "template_name": "delivery_update",
                "lang_code": "en",
                "params": "9,11",
                "param_header": "A1005",
                "param_url": "A1005",
            },
            None,
        ),
        (
            {
                "type": "authenticationtemplate",
                "template_name": "login_code",
                "lang_code": "en",
                "verification_code": "482913",
            },
            None,
        ),
        (
            {
                "type": "authenticationtemplate",
                "template_name": "spring_sale",
                "lang_code": "en",
                "verification_code": "482913",
            },
            "132015",
        ),
    ]
    store = tmp_path / "receipts.db"
    with (
        Receiver(store) as receiver,
        Emulator(templates=ROOT / "sample_data" / "templates.json") as emu,
    ):
        ids = []
        for fields, _ in sends:
            answer = post(emu, callback_url=receiver.callback_url, **fields)
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["data"][0]["message_id"])
        assert emu.wait_for_callbacks(20)
    receipts = kb.load_receipts(store).set_index("message_id")
    for message_id, (fields, code) in zip(ids, sends, strict=True):
        row = receipts.loc[message_id]
        expected = ("delivered", None) if code is None else ("failed", code)
        got = (row["status"], None if row["error_code"] != row["error_code"] else row["error_code"])
        assert got == expected, fields
