"""The receiver reads Kaleyra's v2 callbacks and WhatsApp Cloud API's webhook documents:
several statuses and messages in one, each stored once; what cannot be read is refused in
one line; v1's flat fields still work. Over real HTTP on 127.0.0.1."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from kwa_batch.receipts.delivery import load_receipts
from kwa_batch.receipts.receiver import (
    MAX_ITEMS,
    CallbackApp,
    CallbackError,
    Receiver,
    make_app,
    parse_callbacks,
)
from kwa_batch.receipts.store import IncomingMessage, StatusUpdate

DEADLINE = 10.0
BUSINESS = "911234567890"
CUSTOMER = "919876543210"
OTHER = "447911123456"


def v2_status(wamid: str, status: str, **more: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": status,
        "timestamp": "1764493200",
        "recipient_id": CUSTOMER,
        **more,
    }


def v2_document(statuses: list[Any] = (), messages: list[Any] = (), **top: Any) -> dict[str, Any]:  # type: ignore[assignment]
    """A callback in Kaleyra's v2 shape (kaleyra-facts.md, v2 section)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": "106540352242922"},
        "contacts": [{"wa_id": CUSTOMER, "profile": {"name": "Asha"}}],
    }
    if statuses:
        value["statuses"] = list(statuses)
    if messages:
        value["messages"] = list(messages)
    return {"meta_object": {"field": "messages", "value": value}, **top}


FAILED = v2_status(
    "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSMkY=",
    "failed",
    errors=[
        {
            "code": 131050,
            "title": "Unable to deliver the message",
            "message": "User stopped marketing messages",
            "error_data": {"details": "The user chose to stop marketing messages"},
        }
    ],
)
DELIVERED = v2_status(
    "wamid.HBgMOTE5ODc2NTQzMjExFQIAERgSNEE=",
    "delivered",
    conversation={"id": "c1", "origin": {"type": "marketing"}},
    pricing={"billable": True, "pricing_model": "PMP", "category": "marketing"},
)
TEXT = {
    "from": CUSTOMER,
    "id": "wamid.IN-1",
    "timestamp": "1764493300",
    "type": "text",
    "text": {"body": "Yes please"},
    "context": {"id": DELIVERED["id"]},
}
BUTTON = {
    "from": CUSTOMER,
    "id": "wamid.IN-2",
    "timestamp": "1764493400",
    "type": "button",
    "button": {"payload": "STOP_PROMOTIONS", "text": "Stop promotions"},
    "context": {"id": DELIVERED["id"]},
}
CHOICE = {
    "from": OTHER,
    "id": "wamid.IN-3",
    "timestamp": "1764493500",
    "type": "interactive",
    "interactive": {"type": "list_reply", "list_reply": {"id": "slot-2", "title": "Tuesday"}},
}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "receipts.db") as running:
        yield running


def post(receiver: Receiver, document: object) -> requests.Response:
    return requests.post(receiver.callback_url, json=document, timeout=DEADLINE)


def test_a_v2_callback_with_several_statuses_and_messages_stores_each_once(
    receiver: Receiver,
) -> None:
    document = v2_document(
        [FAILED, DELIVERED],
        [TEXT, BUTTON, CHOICE],
        extra_info={"message_id": DELIVERED["id"], "ref": "order-17", "ref1": "spring"},
    )
    answer = post(receiver, document)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "stored": True, "items": 5, "new": 5}
    assert post(receiver, document).json() == {"ok": True, "stored": False, "items": 5, "new": 0}
    assert receiver.store.counts() == {"status_updates": 2, "incoming_messages": 3}
    assert receiver.stats == {"stored": 5, "repeated": 5, "refused": 0}

    receipts = load_receipts(receiver.store).set_index("message_id")
    failed = receipts.loc[FAILED["id"]]
    assert failed["status"] == "failed"
    assert failed["error_code"] == "131050"
    assert failed["error"] == (
        "User stopped marketing messages: The user chose to stop marketing messages"
    )
    assert failed["recipient"] == "+" + CUSTOMER
    assert failed["business"] == "+" + BUSINESS
    assert str(failed["failed_at"]) == "2025-11-30 09:00:00+00:00"
    assert failed[["ref", "ref1"]].isna().all()  # extra_info named the other message
    delivered = receipts.loc[DELIVERED["id"]]
    assert delivered[["status", "ref", "ref1"]].tolist() == ["delivered", "order-17", "spring"]
    assert bool(delivered["billable"]) is True
    assert delivered["pricing_category"] == "marketing"

    incoming = receiver.store.incoming_messages().set_index("body")
    assert incoming.loc["Yes please", ["customer", "business", "type", "name"]].tolist() == [
        "+" + CUSTOMER, "+" + BUSINESS, "text", "Asha"
    ]  # fmt: skip
    assert incoming.loc["Yes please", "reply_to"] == DELIVERED["id"]
    assert incoming.loc["Stop promotions", ["payload", "reply_to"]].tolist() == [
        "STOP_PROMOTIONS", DELIVERED["id"]
    ]  # fmt: skip
    assert incoming.loc["Tuesday", ["customer", "payload"]].tolist() == ["+" + OTHER, "slot-2"]
    assert pd.isna(incoming.loc["Tuesday", "reply_to"])


def test_a_repeat_of_a_message_in_another_envelope_is_still_one(receiver: Receiver) -> None:
    post(receiver, v2_document(messages=[TEXT], extra_info={"ref": "a"}))
    answer = post(receiver, v2_document(messages=[TEXT, CHOICE]))
    assert answer.json()["new"] == 1
    assert receiver.store.counts()["incoming_messages"] == 2


def test_the_only_status_takes_extra_info_s_refs_and_message_id(receiver: Receiver) -> None:
    status = {k: v for k, v in DELIVERED.items() if k != "id"}
    document = v2_document([status], extra_info={"message_id": "k-1:0", "ref2": "batch-9"})
    assert post(receiver, document).status_code == 200
    receipt = load_receipts(receiver.store).iloc[0]
    assert receipt[["message_id", "ref2"]].tolist() == ["k-1:0", "batch-9"]


def test_whatsapp_cloud_api_s_webhook_shape_is_read_too(receiver: Receiver) -> None:
    value = v2_document([DELIVERED], [TEXT])["meta_object"]["value"]
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "waba-1", "changes": [{"field": "messages", "value": value}]},
            {"id": "waba-1", "changes": [{"field": "messages", "value": {"statuses": [FAILED]}}]},
        ],
    }
    answer = post(receiver, document)
    assert answer.json() == {"ok": True, "stored": True, "items": 3, "new": 3}
    assert receiver.store.counts() == {"status_updates": 2, "incoming_messages": 1}


def test_a_document_of_another_kind_stores_nothing_and_is_not_refused(
    receiver: Receiver,
) -> None:
    template_update = {
        "entry": [{"changes": [{"field": "message_template_status_update",
                                "value": {"event": "APPROVED", "message_template_id": 1}}]}]
    }  # fmt: skip
    answer = post(receiver, template_update)
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "stored": False, "items": 0, "new": 0}
    assert receiver.store.counts() == {"status_updates": 0, "incoming_messages": 0}


def test_v1_callbacks_still_work_by_get_and_post(receiver: Receiver) -> None:
    got = requests.get(
        receiver.callback_url,
        params={"id": "m-1:0", "status": "Delivered", "mobile": CUSTOMER},
        timeout=DEADLINE,
    )
    assert got.json() == {"ok": True, "stored": True}
    posted = post(receiver, {"from": CUSTOMER, "body": "STOP", "created_at": "1764493300"})
    assert posted.json() == {"ok": True, "stored": True}
    button = post(receiver, {"from": CUSTOMER, "body": "Stop promotions", "payload": "STOP_P"})
    assert button.json() == {"ok": True, "stored": True}
    assert receiver.store.counts() == {"status_updates": 1, "incoming_messages": 2}
    assert load_receipts(receiver.store)["status"].tolist() == ["delivered"]


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A v2 document with ``value`` put at ``path``."""
    start = v2_document([DELIVERED], [TEXT])
    if path[0] == "entry":  # Cloud API's shape
        start = {"object": "whatsapp_business_account", "entry": []}
    document = copy.deepcopy(start)
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


VALUE = ("meta_object", "value")
WRONG = {
    "meta_object is a list": (("meta_object",), [], "'meta_object' must be an object"),
    "value is text": ((*VALUE,), "x", "'meta_object.value' must be an object"),
    "statuses is an object": ((*VALUE, "statuses"), {}, "statuses' must be a list"),
    "a status is a number": ((*VALUE, "statuses", 0), 7, "statuses[0]' must be an object"),
    "a status without id": ((*VALUE, "statuses", 0), {"status": "read"}, "without 'id'"),
    "a status that is no status": ((*VALUE, "statuses", 0, "status"), "r e@d", "not a status"),
    "an id that is a list": ((*VALUE, "statuses", 0, "id"), ["a"], "must be text, not list"),
    "a message without from": ((*VALUE, "messages", 0, "from"), None, "without 'from'"),
    "from is no number": ((*VALUE, "messages", 0, "from"), "hello", "not a phone number"),
    "text is text": ((*VALUE, "messages", 0, "text"), "hi", "text' must be an object"),
    "errors is an object": ((*VALUE, "statuses", 0, "errors"), {}, "errors' must be a list"),
    "an id too long": ((*VALUE, "statuses", 0, "id"), "w" * 300, "longer than 256"),
    "a lone surrogate": ((*VALUE, "messages", 0, "text", "body"), "\ud800", "not valid Unicode"),
    "a NUL character": ((*VALUE, "messages", 0, "text", "body"), "hi\x00", "NUL character"),
    "entry is text": (("entry",), "x", "'entry' must be a list"),
    "changes is missing": (("entry",), [{"id": "w"}], "'entry[0].changes' must be a list"),
    "a change without value": (("entry",), [{"changes": [{}]}], "changes[0].value' must be"),
}


@pytest.mark.parametrize(("path", "value", "reason"), WRONG.values(), ids=WRONG.keys())
def test_what_cannot_be_read_is_refused_in_one_line_and_nothing_stored(
    receiver: Receiver, path: tuple[Any, ...], value: Any, reason: str
) -> None:
    body = json.dumps(_with(path, value)).encode("utf-8", "surrogatepass")
    answer = requests.post(
        receiver.callback_url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=DEADLINE,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert reason in error
    assert "\n" not in error
    assert receiver.store.counts() == {"status_updates": 0, "incoming_messages": 0}


@pytest.mark.parametrize("kind", ["statuses", "messages", "changes"])
def test_more_than_max_items_in_one_callback_is_refused_with_413(tmp_path: Path, kind: str) -> None:
    with Receiver(tmp_path / "r.db", max_body=1024 * 1024) as receiver:
        if kind == "statuses":
            document = v2_document(
                [{"id": f"w{i}", "status": "read"} for i in range(MAX_ITEMS + 1)]
            )
        elif kind == "messages":
            document = v2_document(messages=[{"from": CUSTOMER} for _ in range(MAX_ITEMS + 1)])
        else:
            document = {"entry": [{"changes": [{"value": {}}] * (MAX_ITEMS + 1)}]}
        answer = post(receiver, document)
        assert answer.status_code == 413, answer.text
        assert str(MAX_ITEMS) in answer.json()["error"]
        assert receiver.store.counts() == {"status_updates": 0, "incoming_messages": 0}
        # MAX_ITEMS exactly are fine.
        ok = v2_document([{"id": f"w{i}", "status": "read"} for i in range(MAX_ITEMS)])
        assert post(receiver, ok).json()["new"] == MAX_ITEMS


def test_a_deeply_nested_document_is_refused(receiver: Receiver) -> None:
    body = '{"meta_object": {"value": {"messages": [' + "[" * 5000 + "]" * 5000 + "]}}}"
    answer = requests.post(
        receiver.callback_url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=DEADLINE,
    )
    assert answer.status_code == 400
    assert receiver.store.counts() == {"status_updates": 0, "incoming_messages": 0}


def test_parse_callbacks_reads_v1_fields_and_documents_alike() -> None:
    (v1,) = parse_callbacks({"id": "m:0", "status": "READ"})
    assert isinstance(v1, StatusUpdate)
    assert v1.status == "read"
    found = parse_callbacks(v2_document([DELIVERED], [BUTTON, CHOICE]))
    assert [type(c) for c in found] == [StatusUpdate, IncomingMessage, IncomingMessage]
    tap = found[1]
    assert isinstance(tap, IncomingMessage)
    assert (tap.body, tap.payload, tap.reply_to, tap.type) == (
        "Stop promotions", "STOP_PROMOTIONS", DELIVERED["id"], "button"
    )  # fmt: skip
    with pytest.raises(CallbackError, match="messages\\[0\\]"):
        parse_callbacks(v2_document(messages=[{"from": "nobody"}]))


_ATOMS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["919876543210", "wamid.X", "read", "failed", "button", "text", "9e15"]),
)  # fmt: skip
_KEYS = st.sampled_from(
    ["id", "status", "from", "type", "text", "body", "button", "payload", "interactive",
     "button_reply", "list_reply", "title", "context", "errors", "code", "error_data",
     "details", "pricing", "billable", "category", "timestamp", "recipient_id", "image",
     "caption", "metadata", "display_phone_number", "contacts", "profile", "wa_id", "x"]
)  # fmt: skip
_VALUES = st.recursive(
    _ATOMS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_FUZZ_APP: dict[str, CallbackApp] = {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    statuses=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6), max_size=3) | _VALUES,
    messages=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6), max_size=3) | _VALUES,
    metadata=_VALUES,
    extra_info=_VALUES,
    cloud=st.booleans(),
)
def test_no_document_gets_a_500(
    tmp_path_factory: pytest.TempPathFactory,
    statuses: object,
    messages: object,
    metadata: object,
    extra_info: object,
    cloud: bool,
) -> None:
    if "app" not in _FUZZ_APP:
        _FUZZ_APP["app"] = make_app(tmp_path_factory.mktemp("fuzz") / "receipts.db")
    value = {"statuses": statuses, "messages": messages, "metadata": metadata}
    document: dict[str, object] = (
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}
        if cloud
        else {"meta_object": {"value": value}, "extra_info": extra_info}
    )
    answer = Client(_FUZZ_APP["app"]).post("/callback", json=document)
    assert answer.status_code in (200, 400), answer.get_data()
