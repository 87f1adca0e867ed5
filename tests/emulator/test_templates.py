"""The emulator plays the catalogue: the v2 list over HTTP, and template sends that do not
match failing afterwards with WhatsApp's code, through a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import ROOT, SENDER

import kwa_batch as kb
from kwa_batch.catalogue import load_templates
from kwa_batch.emulator.server import Emulator
from kwa_batch.emulator.template_catalogue import EmulatedTemplates
from kwa_batch.receipts.receiver import Receiver

SAMPLE_JSON = ROOT / "sample_data" / "templates.json"
CATALOGUE = load_templates(SAMPLE_JSON)
DEADLINE = 20.0


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(templates=SAMPLE_JSON, callbacks={"read": 0.0}) as running:
        yield running


def listing(emu: Emulator, key: str | None = None, **params: str) -> requests.Response:
    url = f"{emu.url}/v2/{emu.sid}/whatsapp/WABA-1/message_templates"
    return requests.get(url, params=params, headers={"api-key": key or emu.api_key}, timeout=10)


def test_the_list_pages_two_at_a_time(emu: Emulator) -> None:
    first = listing(emu, limit="2")
    assert first.status_code == 200
    body = first.json()
    assert [t["name"] for t in body["data"]] == ["order_shipped", "order_shipped"]
    assert set(body["paging"]) == {"cursors", "next"}
    second = requests.get(body["paging"]["next"], headers={"api-key": emu.api_key}, timeout=10)
    names = [t["name"] for t in second.json()["data"]]
    assert names == ["delivery_reminder", "delivery_reminder"]
    last = listing(emu, limit="1000").json()
    assert len(last["data"]) == len(CATALOGUE)
    assert "next" not in last["paging"]


@pytest.mark.parametrize(
    ("params", "key", "status", "code"),
    [
        ({}, "wrong", 401, "E401"),
        ({"limit": "0"}, None, 400, "E400"),
        ({"limit": "many"}, None, 400, "E400"),
        ({"after": "!!not-a-cursor"}, None, 400, "E400"),
    ],
)
def test_bad_list_requests(
    emu: Emulator, params: dict[str, str], key: str | None, status: int, code: str
) -> None:
    answer = listing(emu, key=key, **params)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert emu.api_key not in answer.text


def test_the_list_needs_get_and_the_right_sid(emu: Emulator) -> None:
    url = f"{emu.url}/v2/{emu.sid}/whatsapp/1/message_templates"
    assert requests.post(url, headers={"api-key": emu.api_key}, timeout=10).status_code == 405
    other = f"{emu.url}/v2/HXOTHER/whatsapp/1/message_templates"
    assert requests.get(other, headers={"api-key": emu.api_key}, timeout=10).status_code == 401


def test_without_a_catalogue_there_is_no_list(emulator: Emulator) -> None:
    url = f"{emulator.url}/v2/{emulator.sid}/whatsapp/1/message_templates"
    assert requests.get(url, headers={"api-key": emulator.api_key}, timeout=10).status_code == 404


# What each mismatch becomes, once WhatsApp has seen it.
SENDS = [
    ("order_shipped", "en", "Priya,A1005,2436.50", {}, None),
    ("order_shipped", "en", "Priya,A1005", {}, "132000"),
    ("order_shipped", "fr", "Priya,A1005,1", {}, "132001"),
    ("order_shipped", None, "Priya,A1005,1", {}, "132001"),  # two languages: which?
    ("spring_sale", None, "Priya,20%", {}, "132015"),  # its only language
    ("festive_offer", "en", "Priya,10%", {}, "132016"),
    ("winter_sale", "en", "Priya", {}, "132001"),
    ("no_such_template", "en", None, {}, "132001"),
    ("order_invoice", "en", "Priya,A1005", {}, "132012"),
    ("order_invoice", "en", "Priya,A1005", {"media_url": "https://x.example/i.pdf"}, None),
    ("delivery_update", "en", "9,11", {"param_url": "A1005"}, "132000"),
    ("delivery_update", "en", "9,11", {"param_url": "A1005", "param_header": "A1"}, None),
    ("delivery_reminder", "pt_BR", '"Silva, João",A1009,quarta', {}, None),
    ("delivery_reminder", "en", "Priya,A1005,Friday      morning", {}, "132018"),
]


def test_sends_that_do_not_match_fail_with_whatsapp_s_code(tmp_path: Path, emu: Emulator) -> None:
    assert emu.templates is not None
    emu.templates.clear()
    store = tmp_path / "receipts.db"
    numbers = [f"+9198765{i:05d}" for i in range(len(SENDS))]
    ids = []
    with Receiver(store) as receiver, emu.client(sender=SENDER) as client:
        for number, (name, lang, params, extra, _) in zip(numbers, SENDS, strict=True):
            result = client.send_message(
                number, type="template", template_name=name, lang_code=lang, params=params,
                callback_url=receiver.callback_url, extra=extra,
            )  # fmt: skip
            assert result.http_status == 200  # accepted, as the platform does
            ids.append(result.message_ids[number])
        assert emu.wait_for_callbacks(DEADLINE), emu.callback_stats
    receipts = kb.load_receipts(store).set_index("message_id")
    for message_id, (name, lang, _, _, code) in zip(ids, SENDS, strict=True):
        row = receipts.loc[message_id]
        if code is None:
            assert row["status"] == "delivered", (name, lang)
            assert pd.isna(row["error_code"])
        else:
            assert (row["status"], row["error_code"]) == ("failed", code), (name, lang)
    failures = emu.templates.failures
    expected = [(n, c) for n, (_, _, _, _, c) in zip(numbers, SENDS, strict=True) if c]
    assert list(zip(failures["to"], failures["error_code"], strict=True)) == expected
    assert failures["message_id"].isin(ids).all()


def test_failures_are_recorded_without_callbacks() -> None:
    with Emulator(templates=CATALOGUE, callbacks=False) as emu:
        with emu.client(sender=SENDER) as client:
            client.send_message(
                ["+919876543210", "+919876543211"], type="template", template_name="spring_sale"
            )
            client.send_message("+919876543212", body="free text is not a template")
        failures = emu.templates.failures if emu.templates else None
    assert failures is not None
    assert failures["to"].tolist() == ["+919876543210", "+919876543211"]
    assert failures["error_code"].tolist() == ["132015", "132015"]
    assert failures["template_name"].tolist() == ["spring_sale", "spring_sale"]


def test_the_catalogue_as_a_frame_json_or_path_serves_the_same_list() -> None:
    frames = [EmulatedTemplates(source) for source in (CATALOGUE, SAMPLE_JSON, str(SAMPLE_JSON))]
    lists = [sorted((t["name"], t["language"], t["status"]) for t in f.data) for f in frames]
    assert lists[0] == lists[1] == lists[2]
    with pytest.raises(ValueError, match="templates must be a catalogue frame"):
        EmulatedTemplates(42)


def test_reset_forgets_the_failures() -> None:
    with Emulator(templates=CATALOGUE, callbacks=False) as emu:
        emu.client(sender=SENDER).send_message(
            "+919876543210", type="template", template_name="spring_sale"
        )
        assert emu.templates is not None
        assert len(emu.templates.failures) == 1
        emu.reset()
        assert emu.templates.failures.empty


def test_a_csv_catalogue_is_served_with_its_buttons_in_order_and_its_cards() -> None:
    """#20: the emulator put a CSV catalogue's URL button first and dropped carousels, so
    it failed well-formed v2 sends (132018, 132012)."""
    catalogue = kb.load_templates(ROOT / "sample_data" / "templates.csv")
    with kb.Emulator(templates=catalogue) as emu, emu.client() as client:
        served = client.templates("123456789").set_index("template_name")
    assert served.loc["delivery_choice", "button_types"] == "QUICK_REPLY|QUICK_REPLY|URL|COPY_CODE"
    assert served.loc["monsoon_cards", "card_count"] == 2
    assert served.loc["monsoon_cards", "card_params"] == "1|1"
