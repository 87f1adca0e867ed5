"""Issue #20's "Done when": the sample rich campaign (text, a template with body parameters,
quick-reply payloads, a dynamic URL and a copy-code button, interactive reply buttons, a
list, a carousel and a message_json row) goes out through v2 to an independent v2 server
(tests/v2_server.py, written from the facts file) as WhatsApp's message objects, with the
right parameters and button indexes, and every row ends sent with its wamid whatever the
answer's shape."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from v2_server import KEY, SHAPES, SID, V2Server

import kwa_batch as kb

SENDER = "+911234567890"
CAMPAIGN = ROOT / "sample_data" / "rich_campaign.csv"
TEMPLATES = ROOT / "sample_data" / "templates.csv"


def _sent_objects(server: V2Server) -> dict[str, dict]:
    return {r.body["messaging_object"]["to"]: r.body for r in server.accepted}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_rich_campaign_goes_out_as_whatsapps_objects(shape: str) -> None:
    df = kb.load_recipients(CAMPAIGN)
    report = kb.validate(
        df, sender=SENDER, api_version="v2", templates=kb.load_templates(TEMPLATES)
    )
    assert report.ok, report.errors[["line", "column", "error_code", "message"]].to_string()
    with V2Server(shape=shape) as server:
        client = kb.KaleyraClient(SID, KEY, base_url=server.url, sender=SENDER, api_version="v2")
        results = kb.send(report, client, progress=False)
    assert results["status"].tolist() == ["sent"] * len(df)
    assert results["message_id"].str.startswith("wamid.").all()
    assert len(server.accepted) == len(df)  # one recipient a request
    sent = _sent_objects(server)

    template = sent["919845012345"]["messaging_object"]["template"]
    assert template["name"] == "delivery_choice"
    body, *buttons = template["components"]
    assert [p["text"] for p in body["parameters"]] == ["Arjun", "A1006"]
    shown = [(b["sub_type"], b["index"], b["parameters"][0]) for b in buttons]
    assert shown == [
        ("quick_reply", "0", {"type": "payload", "payload": "deliver_A1006"}),
        ("quick_reply", "1", {"type": "payload", "payload": "pickup_A1006"}),
        ("url", "2", {"type": "text", "text": "A1006"}),
        ("copy_code", "3", {"type": "coupon_code", "coupon_code": "SAVE10"}),
    ]
    assert sent["919845012345"]["extra_info"]["ref"] == "CUST-1006"

    reply_buttons = sent["14155550123"]["messaging_object"]["interactive"]
    assert reply_buttons["type"] == "button"
    assert [b["reply"] for b in reply_buttons["action"]["buttons"]] == [
        {"id": "ok_A1007", "title": "Yes, all good"},
        {"id": "issue_A1007", "title": "No, a problem"},
    ]

    listed = sent["447911123456"]["messaging_object"]
    assert listed["context"] == {"message_id": "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQzE2RDg4"}
    sections = listed["interactive"]["action"]["sections"]
    assert [s["title"] for s in sections] == ["Orders", "Account"]
    assert sum(len(s["rows"]) for s in sections) == 3

    carousel = sent["919812345678"]["messaging_object"]["template"]["components"]
    cards = next(c for c in carousel if c["type"] == "carousel")["cards"]
    assert [c["card_index"] for c in cards] == [0, 1]

    given = json.loads(df.loc[5, "message_json"])
    passed = sent["5511987654321"]["messaging_object"]
    assert passed["interactive"] == given["interactive"]
    assert passed["to"] == "5511987654321"
