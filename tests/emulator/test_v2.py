"""The emulator plays Kaleyra's v2 beside v1: its checks, its answers, WA-401 between the
two versions, its template list with buttons and cards, and its v2-shaped callbacks landing
in a real Receiver.

Real HTTP on 127.0.0.1 with ``requests``; bodies built by hand or with
:func:`kwa_batch.message_objects.messaging_object`. Nothing waits on a clock: the callback
tests wait for the emulator to have posted them (``wait_for_callbacks``).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from kwa_batch.cli import cli
from kwa_batch.emulator.behaviour import VersionSettings
from kwa_batch.emulator.server import Emulator
from kwa_batch.message_objects import messaging_object
from kwa_batch.receipts.receiver import Receiver
from kwa_batch.receipts.store import CallbackStore

SENDER = "911234567890"
CUSTOMER = "+919876543210"
DEADLINE = 20.0

# A WABA with every button kind and a carousel (WhatsApp's template JSON).
CATALOGUE: dict[str, Any] = {
    "data": [
        {
            "name": "spring_offer",
            "language": "en",
            "status": "APPROVED",
            "category": "MARKETING",
            "components": [
                {"type": "BODY", "text": "Hi {{1}}, {{2}} off today"},
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "QUICK_REPLY", "text": "Interested"},
                        {"type": "QUICK_REPLY", "text": "Stop promotions"},
                        {"type": "URL", "text": "Shop", "url": "https://shop.example/{{1}}"},
                        {"type": "COPY_CODE", "example": "SPRING10"},
                    ],
                },
            ],
        },
        {
            "name": "book_visit",
            "language": "en",
            "status": "APPROVED",
            "category": "UTILITY",
            "components": [
                {"type": "BODY", "text": "Book your visit"},
                {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Book"}]},
            ],
        },
        {
            "name": "two_cards",
            "language": "en",
            "status": "APPROVED",
            "category": "MARKETING",
            "components": [
                {"type": "BODY", "text": "Our picks"},
                {
                    "type": "CAROUSEL",
                    "cards": [
                        {"components": [{"type": "HEADER", "format": "IMAGE"}]},
                        {"components": [{"type": "HEADER", "format": "IMAGE"}]},
                    ],
                },
            ],
        },
        {
            "name": "paused_one",
            "language": "en",
            "status": "PAUSED",
            "components": [{"type": "BODY", "text": "Paused"}],
        },
    ]
}


def post(emu: Emulator, body: Any, *, sender: str = SENDER, key: str | None = None,
         sid: str | None = None) -> requests.Response:  # fmt: skip
    """A v2 send, as Kaleyra documents it."""
    url = f"{emu.url}/v2/{sid or emu.sid}/whatsapp/{sender}/messages"
    headers = {"api-key": emu.api_key if key is None else key}
    if isinstance(body, bytes):
        return requests.post(url, data=body, headers=headers, timeout=10)
    return requests.post(url, json=body, headers=headers, timeout=10)


def send_body(message: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {"messaging_object": message, "extra_info": extra}


def text(body: str = "Hello", to: str = CUSTOMER) -> dict[str, Any]:
    return messaging_object({"type": "text", "body": body}, to)


def buttons(*titles: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": CUSTOMER[1:],
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Shall we deliver tomorrow?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": f"b{i}", "title": title}}
                    for i, title in enumerate(titles)
                ]
            },
        },
    }


def a_list(rows: int, title: str = "Row") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": CUSTOMER[1:],
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pick a slot"},
            "action": {
                "button": "Slots",
                "sections": [
                    {"title": "Morning", "rows": [{"id": f"r{i}", "title": title}]}
                    for i in range(rows)
                ],
            },
        },
    }


def template(name: str, *components: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER[1:],
        "type": "template",
        "template": {"name": name, "language": {"code": "en"}, "components": list(components)},
    }


def body_params(*values: str) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}


def button(sub_type: str, index: int, *parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "button", "sub_type": sub_type, "index": str(index),
            "parameters": list(parameters)}  # fmt: skip


def quick(index: int, payload: str) -> dict[str, Any]:
    return button("quick_reply", index, {"type": "payload", "payload": payload})


def cards(n: int) -> dict[str, Any]:
    card = {"card_index": 0, "components": [{"type": "header", "parameters": [
        {"type": "image", "image": {"link": "https://cdn.example/a.jpg"}}]}]}  # fmt: skip
    return {"type": "carousel", "cards": [{**card, "card_index": i} for i in range(n)]}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=5, callbacks=False, templates=CATALOGUE) as running:
        yield running


# -- answers --------------------------------------------------------------------------------


def test_a_text_is_accepted_with_a_wamid_in_whatsapp_s_shape(emu: Emulator) -> None:
    answer = post(emu, send_body(text("Hi there"), ref="CUST-1"))
    assert answer.status_code == 202
    payload = answer.json()
    assert payload["code"] == "WA202"
    wamid = payload["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    base64.urlsafe_b64decode(wamid[6:] + "=" * (-len(wamid[6:]) % 4))  # base64, as WhatsApp's
    row = emu.messages.set_index("message_id").loc[wamid]
    assert (row["api_version"], row["type"], row["body"], row["ref"]) == (
        "v2", "text", "Hi there", "CUST-1",
    )  # fmt: skip
    assert (row["to"], row["from"]) == (CUSTOMER, "+" + SENDER)
    assert json.loads(row["message_object"])["text"]["body"] == "Hi there"


@pytest.mark.parametrize(
    ("shape", "where"),
    [("whatsapp", ("messages", 0, "id")), ("v1", ("data", 0, "message_id")), ("id", ("id",))],
)
def test_the_three_answer_shapes(shape: str, where: tuple[Any, ...]) -> None:
    with Emulator(seed=1, callbacks=False, v2_answer=shape) as emu:
        answer = post(emu, send_body(text()))
    assert answer.status_code == 202
    found: Any = answer.json()
    for step in where:
        found = found[step]
    assert found == emu.messages["message_id"].iloc[0]
    assert found.startswith("wamid.")
    others = {"messages", "data", "id"} - {where[0]}
    assert not others & set(answer.json())


def test_a_seed_gives_the_same_wamids() -> None:
    ids = []
    for _ in range(2):
        with Emulator(seed=9, callbacks=False) as emu:
            ids.append([post(emu, send_body(text())).json()["messages"][0]["id"] for _ in "ab"])
    assert ids[0] == ids[1]
    assert ids[0][0] != ids[0][1]


def test_a_wrong_sid_or_key_is_rbc001(emu: Emulator) -> None:
    for answer in (
        post(emu, send_body(text()), key="wrong"),
        post(emu, send_body(text()), key=""),
        post(emu, send_body(text()), sid="HXOTHER"),
    ):
        assert (answer.status_code, answer.json()["code"]) == (401, "RBC001")
        assert emu.api_key not in answer.text


# -- the checks -----------------------------------------------------------------------------


def _changed(message: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(message)
    *parents, last = path.split(".")
    holder = out
    for name in parents:
        holder = holder[name]
    if value is None:
        del holder[last]
    else:
        holder[last] = value
    return out


@pytest.mark.parametrize(
    ("message", "where"),
    [
        (_changed(text(), "messaging_product", "sms"), "messaging_object.messaging_product"),
        (_changed(text(), "messaging_product", None), "messaging_object.messaging_product"),
        (_changed(text(), "recipient_type", "group"), "messaging_object.recipient_type"),
        (_changed(text(), "to", None), "messaging_object.to"),
        (_changed(text(), "to", "919876543210,919876543211"), "messaging_object.to"),
        (_changed(text(), "to", "12345"), "messaging_object.to"),
        (_changed(text(), "type", "telegram"), "messaging_object.type"),
        (_changed(text(), "text", None), "messaging_object.text"),
        (_changed(text(), "text.body", "x" * 4097), "messaging_object.text.body"),
        (
            {
                **messaging_object(
                    {"type": "media", "media_url": "https://c.example/a.jpg"}, CUSTOMER
                ),
                "image": {"caption": "no link"},
            },
            "messaging_object.image.link",
        ),
        (
            _changed(template("spring_offer"), "template.language", None),
            "messaging_object.template.language",
        ),
        (
            template("spring_offer", button("url", 12)),
            "messaging_object.template.components[0].index",
        ),
        (template("two_cards", cards(11)), "messaging_object.template.components[0].cards"),
        (buttons("One", "Two", "Three", "Four"), "messaging_object.interactive.action.buttons"),
        (buttons("x" * 21), "messaging_object.interactive.action.buttons[0].reply.title"),
        (buttons(), "messaging_object.interactive.action.buttons"),
        (
            _changed(
                buttons("A", "B"),
                "interactive.action.buttons",
                [
                    {"type": "reply", "reply": {"id": "same", "title": "A"}},
                    {"type": "reply", "reply": {"id": "same", "title": "B"}},
                ],
            ),
            "messaging_object.interactive.action.buttons[1].reply.id",
        ),
        (_changed(buttons("A"), "interactive.body", None), "messaging_object.interactive.body"),
        (a_list(11), "messaging_object.interactive.action.sections"),
        (a_list(2, "y" * 25), "messaging_object.interactive.action.sections[0].rows[0].title"),
        (_changed(text(), "context", {"id": "x"}), "messaging_object.context.message_id"),
    ],
)
def test_each_check_refuses_with_wa400_naming_where(
    emu: Emulator, message: dict[str, Any], where: str
) -> None:
    before = emu.message_count
    answer = post(emu, send_body(message))
    assert (answer.status_code, answer.json()["code"]) == (400, "WA400"), answer.text
    assert list(answer.json()["error"]) == [where]
    assert emu.message_count == before


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "body"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),  # deeper than json can read: no 500
        (b"[1, 2]", "body"),
        (json.dumps({"extra_info": {}}).encode(), "messaging_object"),
        (
            json.dumps({"messaging_object": text(), "extra_info": {"ref": "r" * 256}}).encode(),
            "extra_info.ref",
        ),
    ],
)
def test_bodies_it_cannot_take_are_wa400(emu: Emulator, body: bytes, where: str) -> None:
    answer = post(emu, body)
    assert (answer.status_code, answer.json()["code"]) == (400, "WA400")
    assert list(answer.json()["error"]) == [where]


def test_a_sender_that_is_no_number_is_wa400(emu: Emulator) -> None:
    answer = post(emu, send_body(text()), sender="12")
    assert (answer.status_code, answer.json()["code"]) == (400, "WA400")


def test_rich_messages_within_whatsapp_s_limits_are_accepted(emu: Emulator) -> None:
    reply_in_context = {**text("Sure"), "context": {"message_id": "wamid.ABC"}}
    for message in (buttons("Yes", "No", "x" * 20), a_list(10, "y" * 24), reply_in_context):
        answer = post(emu, send_body(message))
        assert answer.status_code == 202, answer.text


# -- the catalogue --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            template(
                "spring_offer",
                body_params("Asha", "10%"),
                quick(0, "YES"),
                button("url", 2, {"type": "text", "text": "A-1"}),
            ),
            None,
        ),
        (
            template(
                "spring_offer",
                body_params("Asha", "10%"),
                button("url", 2, {"type": "text", "text": "A-1"}),
                button("copy_code", 3, {"type": "coupon_code", "coupon_code": "S10"}),
            ),
            None,
        ),
        (template("nope", body_params("Asha")), "132001"),
        (template("paused_one"), "132015"),
        (
            template(
                "spring_offer",
                body_params("Asha"),
                button("url", 2, {"type": "text", "text": "A-1"}),
            ),
            "132000",
        ),
        (template("spring_offer", body_params("Asha", "10%")), "132000"),  # URL suffix missing
        (
            template(
                "spring_offer",
                body_params("Asha", "10%"),
                quick(2, "YES"),
                button("url", 2, {"type": "text", "text": "A-1"}),
            ),
            "132018",
        ),
        (
            template(
                "spring_offer",
                body_params("Asha", "10%"),
                quick(7, "YES"),
                button("url", 2, {"type": "text", "text": "A-1"}),
            ),
            "132018",
        ),
        (
            template(
                "spring_offer",
                body_params("Asha\nB", "10%"),
                button("url", 2, {"type": "text", "text": "A-1"}),
            ),
            "132018",
        ),
        (
            template(
                "book_visit", button("flow", 0, {"type": "action", "action": {"flow_token": "T-1"}})
            ),
            None,
        ),
        (template("book_visit", button("flow", 0, {"type": "action", "action": {}})), "131009"),
        (template("book_visit"), "131009"),
        (template("two_cards", cards(2)), None),
        (template("two_cards", cards(3)), "132012"),
        (template("two_cards", cards(1)), "132012"),
        (template("two_cards"), "132012"),
    ],
)
def test_templates_are_held_to_the_catalogue(
    emu: Emulator, message: dict[str, Any], code: str | None
) -> None:
    answer = post(emu, send_body(message))
    assert answer.status_code == 202, answer.text  # WhatsApp's verdict comes after
    wamid = answer.json()["messages"][0]["id"]
    failures = emu.templates.failures if emu.templates is not None else None
    assert failures is not None
    found = failures.loc[failures["message_id"] == wamid, "error_code"].tolist()
    assert found == ([] if code is None else [code])


def test_the_list_serves_buttons_and_cards(emu: Emulator) -> None:
    answer = requests.get(
        f"{emu.url}/v2/{emu.sid}/whatsapp/1234/message_templates",
        headers={"api-key": emu.api_key},
        timeout=10,
    )
    served = {t["name"]: t for t in answer.json()["data"]}
    kinds = [b["type"] for b in served["spring_offer"]["components"][1]["buttons"]]
    assert kinds == ["QUICK_REPLY", "QUICK_REPLY", "URL", "COPY_CODE"]
    assert served["spring_offer"]["components"][1]["buttons"][2]["url"].endswith("{{1}}")
    assert served["book_visit"]["components"][1]["buttons"][0]["type"] == "FLOW"
    assert len(served["two_cards"]["components"][1]["cards"]) == 2


def test_a_json_catalogue_from_the_command_line_keeps_its_cards(tmp_path: Path) -> None:
    from kwa_batch.cli.servers import _emulator

    path = tmp_path / "waba.json"
    path.write_text(json.dumps(CATALOGUE), encoding="utf-8")
    emu = _emulator("127.0.0.1", 0, None, None, 0.0, 0.0, (), 1.0, 5.0, None, None, (),
                    templates=str(path))  # fmt: skip
    assert emu.templates is not None
    served = {t["name"]: t for t in emu.templates.data}
    assert served["two_cards"]["components"][1]["type"] == "CAROUSEL"
    assert served["book_visit"]["components"][1]["buttons"][0]["type"] == "FLOW"


def test_a_frame_s_buttons_column_becomes_buttons() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "template_name": ["offer"],
            "lang_code": ["en"],
            "status": ["APPROVED"],
            "body": ["Hi {{1}}"],
            "url_button": ["https://shop.example/{{1}}"],
            "buttons": ["QUICK_REPLY: Yes; COPY_CODE: Copy; FLOW: Book"],
        }
    )
    with Emulator(callbacks=False, templates=frame) as emu:
        assert emu.templates is not None
        served = emu.templates.data[0]["components"][-1]["buttons"]
        assert [b["type"] for b in served] == ["URL", "QUICK_REPLY", "COPY_CODE", "FLOW"]
        message = template("offer", body_params("Asha"),
                           button("url", 0, {"type": "text", "text": "x"}))  # fmt: skip
        assert post(emu, send_body(message)).status_code == 202
        assert emu.templates.failures["error_code"].tolist() == ["131009"]  # the flow's token


# -- versions -------------------------------------------------------------------------------


def v1_send(emu: Emulator, sender: str) -> requests.Response:
    return requests.post(
        emu.messages_url,
        data={"to": CUSTOMER, "from": sender, "type": "text", "body": "Hi", "channel": "whatsapp"},
        headers={"api-key": emu.api_key},
        timeout=10,
    )


def test_a_number_answers_only_its_version() -> None:
    on_v2, on_v1, both = "+911234567890", "+911234567891", "+911234567892"
    with Emulator(callbacks=False, versions={on_v2: "v2", on_v1: "v1"}) as emu:
        refused = v1_send(emu, on_v2)
        assert (refused.status_code, refused.json()["code"]) == (401, "WA-401")
        assert "associated with different Version" in refused.json()["message"]
        assert "v2" in refused.json()["error"]["from"]
        refused = post(emu, send_body(text()), sender=on_v1[1:])
        assert (refused.status_code, refused.json()["code"]) == (401, "WA-401")
        assert "v1" in refused.json()["error"]["from"]
        assert emu.message_count == 0
        assert v1_send(emu, on_v1).status_code == 200
        assert post(emu, send_body(text()), sender=on_v2[1:]).status_code == 202
        assert v1_send(emu, both).status_code == 200
        assert post(emu, send_body(text()), sender=both[1:]).status_code == 202
        assert emu.messages["api_version"].tolist() == ["v1", "v2", "v1", "v2"]


def test_version_settings_and_their_short_forms() -> None:
    emu = Emulator(v2_numbers=["+911234567890"], v2_answer="id")
    assert emu.versions == VersionSettings({"911234567890": "v2"}, answer="id")
    assert Emulator().versions.of("911234567890") is None  # every number answers both
    with pytest.raises(ValueError, match="v3"):
        Emulator(versions={"+911234567890": "v3"})
    with pytest.raises(ValueError, match=r"E\.164"):
        Emulator(v2_numbers=["12"])
    with pytest.raises(ValueError, match="shape"):
        Emulator(v2_answer="xml")
    with pytest.raises(TypeError, match="one place"):
        Emulator(versions=VersionSettings(), v2_answer="id")


def test_the_command_line_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from kwa_batch.cli import servers

    seen: dict[str, Any] = {}

    def instead_of_serving(emu: Emulator, start: Any, show: Any) -> None:
        seen["versions"] = emu.versions
        start()
        try:
            show()
        finally:
            emu.stop()

    monkeypatch.setattr(servers, "serve_until_stopped", instead_of_serving)
    result = CliRunner().invoke(
        cli,
        ["emulator", "--v2-number", "+911234567890", "--v1-number", "+911234567891",
         "--v2-answer", "v1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = {"911234567890": "v2", "911234567891": "v1"}
    assert seen["versions"] == VersionSettings(expected, answer="v1")
    assert "+911234567890 v2" in result.output
    bad = CliRunner().invoke(cli, ["emulator", "--v2-number", "12"])
    assert bad.exit_code != 0
    assert "--v2-number" in bad.output


# -- callbacks ------------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "receipts.db", token="v2-token") as running:
        yield running


def test_v2_callbacks_land_in_a_receiver_as_statuses_and_replies(
    receiver: Receiver, tmp_path: Path
) -> None:
    settings = {"delivered": 1.0, "read": 1.0, "button": 1.0}
    with Emulator(seed=3, callbacks=settings, templates=CATALOGUE, v2_numbers=[SENDER]) as emu:
        wamids = []
        for n, message in enumerate(
            [
                buttons("Tomorrow", "Friday"),
                template(
                    "spring_offer",
                    body_params("Asha", "10%"),
                    quick(0, "YES"),
                    quick(1, "STOP_PROMOS"),
                    button("url", 2, {"type": "text", "text": "A-1"}),
                ),
                template("nope", body_params("x")),
            ]
        ):
            answer = post(emu, send_body(message, ref=f"ROW-{n}",
                                         callback_url=receiver.callback_url))  # fmt: skip
            assert answer.status_code == 202, answer.text
            wamids.append(answer.json()["messages"][0]["id"])
        assert emu.wait_for_callbacks(DEADLINE), emu.callback_stats
        assert emu.callback_stats["failed"] == 0
        # A reply by hand, to a declared v2 number: v2-shaped too.
        assert emu.reply(CUSTOMER, "+" + SENDER, "Thanks", receiver.callback_url,
                         reply_to=wamids[0])  # fmt: skip
        assert emu.wait_for_callbacks(DEADLINE)
    store = CallbackStore(tmp_path / "receipts.db")
    statuses = store.status_updates()
    assert receiver.stats["refused"] == 0
    by_id = statuses.groupby("message_id")["status"].agg(sorted).to_dict()
    assert by_id[wamids[0]] == ["delivered", "read", "sent"]
    assert by_id[wamids[1]] == ["delivered", "read", "sent"]
    assert by_id[wamids[2]] == ["failed", "sent"]
    failed = statuses[statuses["status"] == "failed"].iloc[0]
    assert failed["error_code"] == "132001"
    assert set(statuses["ref"]) == {"ROW-0", "ROW-1", "ROW-2"}
    assert set(statuses["business"].dropna()) == {"+" + SENDER}
    delivered = statuses[statuses["status"] == "delivered"]
    assert set(delivered["pricing_category"]) == {"service", "marketing"}
    replies = store.incoming_messages().set_index("reply_to")
    tap = replies.loc[wamids[0]]
    assert len(replies) == 3
    assert replies.loc[wamids[1], "type"] == "button"
    assert replies.loc[wamids[1], "payload"] in ("YES", "STOP_PROMOS")
    assert replies.loc[wamids[1], "body"] in ("Interested", "Stop promotions")
    typed = tap[tap["type"] == "text"].iloc[0]
    assert typed["body"] == "Thanks"
    chosen = tap[tap["type"] == "interactive"].iloc[0]
    assert (chosen["body"], chosen["payload"]) in (("Tomorrow", "b0"), ("Friday", "b1"))
    assert set(store.incoming_messages()["customer"]) == {CUSTOMER}
    store.close()


def test_v1_messages_keep_v1_callbacks(receiver: Receiver, tmp_path: Path) -> None:
    with Emulator(seed=3, callbacks=True) as emu:
        requests.post(
            emu.messages_url,
            data={"to": CUSTOMER, "from": "+" + SENDER, "type": "text", "body": "Hi",
                  "channel": "whatsapp", "callback_url": receiver.callback_url},
            headers={"api-key": emu.api_key},
            timeout=10,
        )  # fmt: skip
        assert emu.wait_for_callbacks(DEADLINE)
        message_id = emu.messages["message_id"].iloc[0]
    store = CallbackStore(tmp_path / "receipts.db")
    assert set(store.status_updates()["message_id"]) == {message_id}
    assert not message_id.startswith("wamid.")
    store.close()


def test_the_ledger_reads_a_template_s_name_language_and_parameters(emu: Emulator) -> None:
    row = {"type": "template", "template_name": "spring_offer", "lang_code": "en",
           "params": 'Asha,"10%, today"', "param_url": "A-1", "url_button_index": 2}  # fmt: skip
    answer = post(emu, send_body(messaging_object(row, CUSTOMER)))
    assert answer.status_code == 202, answer.text
    ledger = emu.messages.set_index("message_id")
    sent = ledger.loc[answer.json()["messages"][0]["id"]]
    assert (sent["type"], sent["template_name"], sent["lang_code"]) == (
        "template", "spring_offer", "en",
    )  # fmt: skip
    assert sent["params"] == 'Asha,"10%, today"'
    assert emu.templates is not None
    assert answer.json()["messages"][0]["id"] not in set(emu.templates.failures["message_id"])
