"""Issue #20: the rich kinds of a row (reply buttons, lists, carousels, template buttons,
replies in context, message_json) checked before sending, refused on v1, and previewed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kwa_batch as kb
from kwa_batch.errors import Code, ConfigurationError
from kwa_batch.fields import message_frame, request_form
from kwa_batch.message_objects import messaging_object

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_data"
CATALOGUE = kb.load_templates(SAMPLES / "templates.csv")
SENDER = "+911234567890"
TO = "+919876543210"

#: A template with two quick-reply buttons and nothing else that takes a value.
TWO_REPLIES = {
    "name": "visit_confirm",
    "language": "en",
    "status": "APPROVED",
    "components": [
        {"type": "BODY", "text": "Hi {{1}}, see you on {{2}}?"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes"},
                {"type": "QUICK_REPLY", "text": "No"},
                {"type": "URL", "text": "Details", "url": "https://x.io/v/{{1}}"},
            ],
        },
    ],
}
FLOW = {
    "name": "book_flow",
    "language": "en",
    "status": "APPROVED",
    "components": [
        {"type": "BODY", "text": "Book your slot"},
        {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Book now"}]},
    ],
}


def _validate(rows: list[dict[str, Any]], **kwargs: Any) -> kb.ValidationReport:
    df = pd.DataFrame(rows, dtype="str")
    kwargs.setdefault("api_version", "v2")
    return kb.validate(df, sender=SENDER, **kwargs)


def _codes(report: kb.ValidationReport) -> list[tuple[str, str]]:
    return list(zip(report.errors["column"], report.errors["error_code"], strict=True))


def _objects(report: kb.ValidationReport) -> list[dict[str, Any]]:
    frame = message_frame(report.valid)
    return [messaging_object(row.to_dict(), row["to"]) for _, row in frame.iterrows()]


# -- The malformed rows of the "Done when" -------------------------------------------


def test_four_reply_buttons_are_refused() -> None:
    report = _validate([{"to": TO, "type": "interactive", "body": "Pick", "buttons": "a|b|c|d"}])
    assert _codes(report) == [("buttons", Code.RICH_COUNT)]
    assert "4 given" in report.errors["message"].iloc[0]
    assert report.errors["value"].iloc[0] == "a|b|c|d"


def test_a_25_character_title_is_refused_naming_it_and_the_limit() -> None:
    title = "Twenty-five characters!!!"
    assert len(title) == 25
    report = _validate([{"to": TO, "type": "interactive", "body": "Pick", "buttons": f"x={title}"}])
    assert _codes(report) == [("buttons", Code.RICH_LENGTH)]
    assert "25 characters; WhatsApp allows 20" in report.errors["message"].iloc[0]


def test_three_payloads_for_two_quick_reply_buttons_are_refused() -> None:
    row = {"to": TO, "template_name": "visit_confirm", "lang_code": "en", "params": "Ana,Fri",
           "param_url": "V1", "buttons": "yes|no|maybe"}  # fmt: skip
    report = _validate([row], templates={"data": [TWO_REPLIES]})
    assert _codes(report) == [("buttons", Code.BUTTONS_MISMATCH)]
    assert "quick_reply, quick_reply; buttons gives 3 values" in report.errors["message"].iloc[0]


def test_three_cards_for_a_two_card_template_are_refused() -> None:
    row = {"to": TO, "template_name": "monsoon_cards", "lang_code": "en", "params": "Ana"}
    for n in (1, 2, 3):
        row |= {f"card_{n}_media_url": f"https://x.io/{n}.jpg", f"card_{n}_params": f"{n}0%"}
    report = _validate([row], templates=CATALOGUE)
    assert _codes(report) == [("card_1_params", Code.CARDS_MISMATCH)]
    assert "has 2 cards; this row fills 3" in report.errors["message"].iloc[0]


def test_a_card_without_its_parameter_or_media_is_refused_by_column() -> None:
    row = {"to": TO, "template_name": "monsoon_cards", "lang_code": "en", "params": "Ana",
           "card_1_media_url": "https://x.io/1.jpg", "card_1_params": "10%",
           "card_2_params": "20%,extra"}  # fmt: skip
    report = _validate([row], templates=CATALOGUE)
    assert sorted(_codes(report)) == [
        ("card_2_media_url", Code.CARDS_MISMATCH),
        ("card_2_params", Code.CARDS_MISMATCH),
    ]


def test_a_flow_button_without_its_token_is_refused_and_with_it_is_sent() -> None:
    catalogue = {"data": [FLOW]}
    row = {"to": TO, "template_name": "book_flow", "lang_code": "en"}
    report = _validate([row], templates=catalogue)
    assert _codes(report) == [("buttons", Code.BUTTONS_MISMATCH)]
    assert "give its flow token" in report.errors["message"].iloc[0]
    report = _validate([row | {"buttons": "TOKEN-1"}], templates=catalogue)
    assert report.ok
    button = _objects(report)[0]["template"]["components"][0]
    token = {"type": "action", "action": {"flow_token": "TOKEN-1"}}
    assert button == {"type": "button", "sub_type": "flow", "index": "0", "parameters": [token]}


@pytest.mark.parametrize(
    ("row", "column", "code"),
    [
        ({"list": "A: " + "|".join(f"r{i}" for i in range(11)), "list_button": "Go"}, "list",
         Code.RICH_COUNT),
        ({"list": "; ".join(f"S{i}: r{i}" for i in range(11)), "list_button": "Go"}, "list",
         Code.RICH_COUNT),
        ({"list": "A: a-row-title-longer-than-24", "list_button": "Go"}, "list",
         Code.RICH_LENGTH),
        ({"list": "A: r1", "list_button": "A list button over 20 chars"}, "list_button",
         Code.RICH_LENGTH),
        ({"list": "A: r1"}, "list_button", Code.RICH_SHAPE),
        ({"list": "A: r1", "list_button": "Go", "buttons": "b"}, "list", Code.RICH_SHAPE),
        ({}, "buttons", Code.RICH_SHAPE),
        ({"buttons": "Yes|No", "body": "x" * 1025}, "body", Code.RICH_LENGTH),
        ({"buttons": "Yes|No", "body": None}, "body", Code.RICH_SHAPE),
    ],
)  # fmt: skip
def test_interactive_limits(row: dict[str, Any], column: str, code: str) -> None:
    report = _validate([{"to": TO, "type": "interactive", "body": "Pick", **row}])
    assert (column, code) in _codes(report), report.errors
    assert not report.valid.shape[0]


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "hologram", "hologram": {}}', "type is 'hologram'"),
        ('{"type": "text"}', "no 'text' object"),
        ('{"type": "interactive", "interactive": {"type": "button", "body": {"text": "Hi"}, '
         '"footer": {"text": "' + "f" * 61 + '"}, "action": {"buttons": [{"type": "reply", '
         '"reply": {"id": "a", "title": "A"}}]}}}', "61 characters"),
    ],
)  # fmt: skip
def test_message_json_is_parsed_and_shape_checked_per_row(written: str, says: str) -> None:
    report = _validate([{"to": TO, "message_json": written}, {"to": TO, "body": "fine"}])
    assert report.invalid.index.tolist() == [0]
    assert report.errors["column"].tolist() == ["message_json"]
    assert says in report.errors["message"].iloc[0]


def test_card_columns_with_a_gap_are_refused() -> None:
    row = {"to": TO, "template_name": "monsoon_cards", "params": "Ana",
           "card_1_media_url": "https://x.io/1.jpg", "card_3_params": "3"}  # fmt: skip
    report = _validate([row])
    assert _codes(report) == [("card_2_media_url", Code.RICH_SHAPE)]


def test_buttons_on_a_text_row_are_refused() -> None:
    report = _validate([{"to": TO, "body": "Hi", "buttons": "Yes|No"}])
    assert _codes(report) == [("buttons", Code.RICH_SHAPE)]


# -- v1 refuses per row what only v2 sends ---------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"type": "interactive", "body": "Pick", "buttons": "Yes|No"}, "buttons"),
        ({"type": "interactive", "body": "Pick", "list": "A: r", "list_button": "Go"}, "list"),
        ({"body": "Hi", "reply_to": "wamid.X"}, "reply_to"),
        ({"message_json": '{"type": "text", "text": {"body": "Hi"}}'}, "message_json"),
        ({"template_name": "new_collection", "params": "A,B",
          "media_url": "https://x.io/c.jpg", "buttons": "stop"}, "buttons"),
        ({"template_name": "monsoon_cards", "params": "Ana",
          "card_1_media_url": "https://x.io/1.jpg", "card_1_params": "1",
          "card_2_media_url": "https://x.io/2.jpg", "card_2_params": "2"}, "cards"),
    ],
)  # fmt: skip
def test_v1_refuses_v2_only_rows_and_v2_sends_them(row: dict[str, Any], column: str) -> None:
    rows = [{"to": TO, **row}, {"to": "+14155550123", "body": "plain text"}]
    v1 = _validate(rows, templates=CATALOGUE, api_version="v1")
    assert v1.invalid.index.tolist() == [0]
    assert _codes(v1) == [(column, Code.V2_ONLY)]
    assert "v2 only: send with api_version='v2'" in v1.errors["message"].iloc[0]
    v2 = _validate(rows, templates=CATALOGUE, api_version="V2")
    assert v2.ok, v2.errors
    assert kb.validate(pd.DataFrame(rows, dtype="str"), sender=SENDER).invalid.shape[0] == 1


def test_api_version_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="use 'v1' or 'v2'"):
        _validate([{"to": TO, "body": "Hi"}], api_version="v3")


# -- well-formed rows build the message objects WhatsApp documents ---------------------------


def test_the_sample_rich_campaign_builds_whatsapps_objects() -> None:
    df = kb.load_recipients(SAMPLES / "rich_campaign.csv")
    report = kb.validate(df, sender=SENDER, templates=CATALOGUE, api_version="v2")
    assert report.ok, report.errors
    text, template, buttons, listed, carousel, location = _objects(report)  # the last: a CTA
    assert text["text"]["body"].startswith("Hi Priya")
    assert template["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Arjun"},
                                        {"type": "text", "text": "A1006"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0",
         "parameters": [{"type": "payload", "payload": "deliver_A1006"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "pickup_A1006"}]},
        {"type": "button", "sub_type": "url", "index": "2",
         "parameters": [{"type": "text", "text": "A1006"}]},
        {"type": "button", "sub_type": "copy_code", "index": "3",
         "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}]},
    ]  # fmt: skip
    assert buttons["type"] == "interactive"
    assert buttons["interactive"] == {
        "type": "button",
        "body": {"text": "Did your parcel A1007 arrive in good shape?"},
        "action": {"buttons": [
            {"type": "reply", "reply": {"id": "ok_A1007", "title": "Yes, all good"}},
            {"type": "reply", "reply": {"id": "issue_A1007", "title": "No, a problem"}},
        ]},
    }  # fmt: skip
    assert listed["context"] == {"message_id": "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQzE2RDg4"}
    assert listed["interactive"] == {
        "type": "list",
        "body": {"text": "What can we help you with?"},
        "action": {"button": "Choose a topic", "sections": [
            {"title": "Orders", "rows": [{"id": "track", "title": "Track my order"},
                                         {"id": "return", "title": "Return an item"}]},
            {"title": "Account", "rows": [{"id": "address", "title": "Change my address"}]},
        ]},
    }  # fmt: skip
    body, cards = carousel["template"]["components"]
    assert body == {"type": "body", "parameters": [{"type": "text", "text": "Kavya"}]}
    assert cards == {"type": "carousel", "cards": [
        {"card_index": i, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": link}}]},
            {"type": "body", "parameters": [{"type": "text", "text": off}]}]}
        for i, (link, off) in enumerate([
            ("https://cdn.example.com/monsoon/raincoat.jpg", "20% off"),
            ("https://cdn.example.com/monsoon/umbrella.jpg", "15% off")])
    ]}  # fmt: skip
    assert location == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        **json.loads(df["message_json"].iloc[-1]),
    }
    assert report.valid["type"].tolist()[-1] == "interactive"  # the type came from the object


def test_message_json_passes_through_with_its_recipient_set() -> None:
    written = {"type": "location", "to": "1", "messaging_product": "x",
               "location": {"latitude": "19.07", "longitude": "72.87", "name": "Shop"}}  # fmt: skip
    report = _validate([{"to": TO, "message_json": json.dumps(written), "reply_to": "wamid.Y"}])
    assert report.ok, report.errors
    assert report.valid["type"].tolist() == ["location"]
    assert _objects(report) == [{
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "919876543210",
        "type": "location", "location": written["location"],
        "context": {"message_id": "wamid.Y"},
    }]  # fmt: skip
    assert report.preview()["message"].tolist() == ["(reply to wamid.Y)\n[location: Shop]"]


def test_payloads_may_be_left_out_and_an_empty_one_skips_its_button() -> None:
    row = {"to": TO, "template_name": "delivery_choice", "lang_code": "en",
           "params": "Ana,A1", "param_url": "A1", "buttons": "|pickup|CODE"}  # fmt: skip
    report = _validate([row], templates=CATALOGUE)
    assert report.ok, report.errors
    subs = [
        (c.get("sub_type"), c.get("index")) for c in _objects(report)[0]["template"]["components"]
    ]
    assert subs == [(None, None), ("quick_reply", "1"), ("url", "2"), ("copy_code", "3")]
    short = _validate([row | {"buttons": "today|pickup"}], templates=CATALOGUE)
    assert _codes(short) == [("buttons", Code.BUTTONS_MISMATCH)]  # the coupon code is needed


def test_the_catalogue_places_the_url_button_only_on_v2() -> None:
    row = {"to": TO, "template_name": "visit_confirm", "lang_code": "en", "params": "Ana,Fri",
           "param_url": "V1"}  # fmt: skip
    v2 = _validate([row], templates={"data": [TWO_REPLIES]})
    assert v2.valid["template_buttons"].tolist() == ["QUICK_REPLY|QUICK_REPLY|URL"]
    assert _objects(v2)[0]["template"]["components"][-1]["index"] == "2"
    v1 = _validate([row], templates={"data": [TWO_REPLIES]}, api_version="v1")
    assert "template_buttons" not in v1.valid.columns or v1.valid["template_buttons"].isna().all()


def test_v2_columns_never_reach_v1s_form_and_derived_ones_no_key() -> None:
    form = request_form([TO], {"type": "text", "body": "Hi", "reply_to": "w", "cards": "[]"})
    assert form == {"to": TO, "type": "text", "body": "Hi"}
    frame = pd.DataFrame({"to": [TO, TO], "type": ["template"] * 2, "template_name": ["t"] * 2,
                          "template_buttons": ["URL", "QUICK_REPLY|URL"]})  # fmt: skip
    keys = kb.fields.row_keys(message_frame(frame))
    assert keys.iloc[0] == keys.iloc[1]


def test_the_catalogue_reads_a_carousel_and_the_button_order() -> None:
    from_json = kb.load_templates(SAMPLES / "templates.json").set_index("template_name")
    assert from_json.loc["monsoon_cards", "card_count"] == 2
    assert from_json.loc["monsoon_cards", "card_params"] == "1|1"
    assert from_json.loc["monsoon_cards", "card_header"] == "IMAGE"
    order = from_json.loc["delivery_choice", "button_types"]
    assert order == "QUICK_REPLY|QUICK_REPLY|URL|COPY_CODE"


# -- the preview ------------------------------------------------------------------------------


def test_the_preview_shows_rich_rows_as_the_recipient_reads_them() -> None:
    df = kb.load_recipients(SAMPLES / "rich_campaign.csv")
    report = kb.validate(df, sender=SENDER, templates=CATALOGUE, api_version="v2")
    shown = report.preview(rows=6)["message"].tolist()
    assert shown[1].splitlines()[-1] == "[Deliver today] [Pick up in store] [Copy code SAVE10]"
    assert shown[1].splitlines()[-2] == "[https://shop.example.com/orders/A1006]"
    assert (
        shown[2] == "Did your parcel A1007 arrive in good shape?\n[Yes, all good] [No, a problem]"
    )
    assert shown[3].splitlines() == [
        "(reply to wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQzE2RDg4)",
        "What can we help you with?",
        "[Choose a topic]",
        "Orders: Track my order, Return an item",
        "Account: Change my address",
    ]
    assert shown[4].splitlines() == [
        "Kavya, pick your monsoon favourite:",
        "card 1: [image: https://cdn.example.com/monsoon/raincoat.jpg] 20% off",
        "card 2: [image: https://cdn.example.com/monsoon/umbrella.jpg] 15% off",
    ]
    assert shown[5].splitlines() == [
        "Monsoon sale",
        "Our monsoon sale ends on Sunday: up to 40% off.",
        "Kaleyra Shop",
        "[Shop the sale]",
    ]


def test_the_rich_codes_say_what_to_do() -> None:
    for code in (Code.V2_ONLY, Code.RICH_COUNT, Code.RICH_LENGTH, Code.RICH_SHAPE,
                 Code.BUTTONS_MISMATCH, Code.CARDS_MISMATCH):  # fmt: skip
        assert code.fix
        assert code.meaning
    assert "api_version='v2'" in Code.V2_ONLY.fix


def test_the_emulators_v2_checks_take_every_object_of_the_sample_rich_campaign() -> None:
    """The other side's view: the emulator's v2 checks (written apart from these builders)
    accept each message object, and each template against WhatsApp's catalogue JSON."""
    from kwa_batch.emulator.template_catalogue import EmulatedTemplates
    from kwa_batch.emulator.v2_checks import V2Send, check_send

    df = kb.load_recipients(SAMPLES / "rich_campaign.csv")
    report = kb.validate(df, sender=SENDER, templates=CATALOGUE, api_version="v2")
    served = EmulatedTemplates(json.loads((SAMPLES / "templates.json").read_text("utf-8")))
    for message in _objects(report):
        assert isinstance(check_send({"messaging_object": message}, "911234567890"), V2Send)
        if message["type"] == "template":
            assert served.failure_v2(message["template"]) is None, message


def test_on_v2_a_templates_buttons_need_the_catalogue() -> None:
    """Review of #20: without a catalogue the indexes were guessed and a required copy
    code could go missing."""
    rows = pd.DataFrame(
        {
            "to": ["+919876543210"],
            "type": ["template"],
            "template_name": ["delivery_choice"],
            "lang_code": ["en"],
            "params": ["A,B"],
            "buttons": ["d|p"],
        }
    )
    report = kb.validate(rows, sender="+911234567890", api_version="v2")
    assert report.errors["error_code"].tolist() == ["KWA039"]
    assert "need its catalogue" in report.errors["message"].iloc[0]


@pytest.mark.parametrize(
    ("extra", "column"),
    [({"template_name": "delivery_choice"}, "template_name"),
     ({"reply_to": "wamid.X"}, "reply_to")],
)  # fmt: skip
def test_a_message_json_row_refuses_what_its_object_would_silently_override(
    extra: dict[str, str], column: str
) -> None:
    obj = {"type": "text", "text": {"body": "Hi"}, "context": {"message_id": "wamid.Y"}}
    rows = pd.DataFrame({"to": ["+919876543210"], "message_json": [json.dumps(obj)], **{
        k: [v] for k, v in extra.items()}})  # fmt: skip
    report = kb.validate(rows, sender="+911234567890", api_version="v2")
    assert report.errors["column"].tolist() == [column]
    assert report.errors["error_code"].tolist() == ["KWA038"]


def test_v2_sends_a_media_link_as_the_approved_headers_kind_not_its_extension() -> None:
    """Review of #20: an IMAGE header's link without .jpg went as a document (132012)."""
    catalogue = kb.load_templates(
        {"data": [{"name": "promo", "language": "en", "status": "APPROVED", "components": [
            {"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Hi {{1}}"}]}]}
    )  # fmt: skip
    rows = pd.DataFrame(
        {
            "to": ["+919876543210"],
            "type": ["mediatemplate"],
            "template_name": ["promo"],
            "lang_code": ["en"],
            "params": ["Asha"],
            "media_url": ["https://cdn.io/render?id=42&fmt=jpg"],
        }
    )
    report = kb.validate(rows, sender="+911234567890", api_version="v2", templates=catalogue)
    assert report.ok, report.errors.to_string()
    fields = message_frame(report.valid).iloc[0].to_dict()
    header = messaging_object(fields, "+919876543210")["template"]["components"][0]
    assert header["parameters"][0]["type"] == "image"


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("list", "A: a=|b", "no title"),
        ("list", "A: x=1|x=2; B: x=3", "repeats"),
        ("list", "A: ; B: c", "has no rows"),
        ("buttons", "=Yes|No", "empty id"),
    ],
)
def test_interactive_rows_whatsapp_would_refuse_are_refused(
    column: str, value: str, said: str
) -> None:
    """Review of #20: these passed validation and the emulator (as WhatsApp) refused them."""
    row = {"to": ["+919876543210"], "type": ["interactive"], "body": ["Pick one"], column: [value]}
    if column == "list":
        row["list_button"] = ["Choose"]
    report = kb.validate(pd.DataFrame(row), sender="+911234567890", api_version="v2")
    assert not report.ok
    assert said in " ".join(report.errors["message"])


@pytest.mark.parametrize(
    ("obj", "said"),
    [
        ({"type": "text", "text": {"body": "x" * 5000}}, "5000 characters"),
        ({"type": "interactive", "interactive": []}, "interactive object"),
        ({"type": "image", "image": []}, "image.link"),
        ({"type": "text", "text": {"body": "Hi"}, "recipient_type": "group"}, "individual"),
        ({"type": "template", "template": {"name": 1}}, "template.name"),
    ],
)
def test_message_json_objects_whatsapp_would_refuse_are_refused(obj: dict, said: str) -> None:
    rows = pd.DataFrame({"to": ["+919876543210"], "message_json": [json.dumps(obj)]})
    report = kb.validate(rows, sender="+911234567890", api_version="v2")
    assert not report.ok
    assert said in " ".join(report.errors["message"])


def test_param_url_goes_to_the_dynamic_url_button_and_a_semicolon_splits_no_button() -> None:
    """Review of #20: with a static URL button first, the suffix went to index 0; a ';' in
    a quick reply's text made two buttons of it, and the indexes after it wrong."""
    catalogue = kb.load_templates(
        {"data": [{"name": "links", "language": "en", "status": "APPROVED", "components": [
            {"type": "BODY", "text": "Hi"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes; today"},
                {"type": "URL", "text": "Shop", "url": "https://s.io/shop"},
                {"type": "URL", "text": "Track", "url": "https://s.io/t/{{1}}"}]}]}]}
    )  # fmt: skip
    assert catalogue["button_types"].iloc[0] == "QUICK_REPLY|STATIC_URL|URL"
    rows = pd.DataFrame(
        {
            "to": ["+919876543210"],
            "type": ["template"],
            "template_name": ["links"],
            "lang_code": ["en"],
            "buttons": ["yes"],
            "param_url": ["A1"],
        }
    )
    report = kb.validate(rows, sender="+911234567890", api_version="v2", templates=catalogue)
    assert report.ok, report.errors.to_string()
    fields = message_frame(report.valid).iloc[0].to_dict()
    buttons = messaging_object(fields, "+919876543210")["template"]["components"]
    placed = [(b["sub_type"], b["index"]) for b in buttons if b["type"] == "button"]
    assert placed == [("quick_reply", "0"), ("url", "2")]
