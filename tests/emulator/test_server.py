"""The emulator plays Kaleyra's v1 WhatsApp endpoint as the API document describes.

Everything here goes over real HTTP on 127.0.0.1 (no mocks). Tests that look at the
ledger use ``emu``, the session emulator reset for the test.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest
import requests
from werkzeug.test import Client

from kwa_batch.emulator.ledger import LEDGER_COLUMNS
from kwa_batch.emulator.server import Emulator
from kwa_batch.errors import ApiError, AuthenticationError
from kwa_batch.sending.client import KaleyraClient

TO = "+919876543210"
SENDER = "+911234567890"
CREATED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00")
DOCUMENTED_KEYS = {"id", "type", "body", "createdDateTime", "totalCount", "data", "error"}


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The session emulator with an empty ledger."""
    emulator.reset()
    return emulator


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def text_fields(**overrides: Any) -> dict[str, str]:
    """A valid text request; an override of None removes the field."""
    fields = {"to": TO, "from": SENDER, "type": "text", "channel": "whatsapp", "body": "Hello"}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def template_fields(**overrides: Any) -> dict[str, str]:
    fields = text_fields(type="template", body=None, template_name="order_update")
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def post(
    http: requests.Session,
    emu: Emulator,
    data: dict[str, str] | None = None,
    *,
    key: str | None = "header",
    **kwargs: Any,
) -> requests.Response:
    """POST to the emulator; ``key="header"`` sends the right key as the api-key header."""
    headers = dict(kwargs.pop("headers", {}))
    if key == "header":
        headers["api-key"] = emu.api_key
    elif key is not None:
        headers["api-key"] = key
    url = kwargs.pop("url", emu.messages_url)
    return http.post(url, data=data, headers=headers, timeout=5, **kwargs)


def assert_refused(response: requests.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    payload = response.json()
    assert payload["code"] == code
    assert payload["message"]
    assert field in payload["error"], payload
    assert payload["data"] == []


# -- success ------------------------------------------------------------------------------


def test_success_answer_has_the_documented_shape(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(body="Hi, your order has been shipped"))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    payload = response.json()
    assert set(payload) == DOCUMENTED_KEYS
    assert uuid.UUID(payload["id"]).version == 4
    assert payload["type"] == "text"
    assert payload["body"] == "Hi, your order has been shipped"
    assert CREATED.fullmatch(payload["createdDateTime"])
    assert payload["totalCount"] == 1
    assert payload["data"] == [{"message_id": payload["id"] + ":0", "recipient": TO[1:]}]
    assert payload["error"] == {}


def test_accepted_message_is_in_the_ledger(emu: Emulator, http: requests.Session) -> None:
    before = pd.Timestamp.now(tz="UTC")
    payload = post(http, emu, text_fields(to="919876543210", ref="Customer 7")).json()

    ledger = emu.messages
    assert list(ledger.columns) == list(LEDGER_COLUMNS)
    assert len(ledger) == 1
    row = ledger.iloc[0]
    assert row["message_id"] == payload["id"] + ":0"
    assert row["request_id"] == payload["id"]
    assert row["to"] == TO  # stored as E.164 with '+', though sent without
    assert row["from"] == SENDER
    assert (row["type"], row["channel"], row["body"], row["ref"]) == (
        "text",
        "whatsapp",
        "Hello",
        "Customer 7",
    )
    for absent in ("template_name", "params", "lang_code", "ref1", "ref2", "callback_url"):
        assert pd.isna(row[absent])
    assert before - pd.Timedelta(seconds=1) <= row["received_at"] <= pd.Timestamp.now(tz="UTC")
    assert all(ledger[c].dtype == "string" for c in LEDGER_COLUMNS[:-1])
    assert str(ledger["received_at"].dt.tz) == "UTC"


def test_empty_ledger_has_the_columns_and_dtypes(emu: Emulator) -> None:
    ledger = emu.messages
    assert ledger.empty
    assert list(ledger.columns) == list(LEDGER_COLUMNS)
    assert all(ledger[c].dtype == "string" for c in LEDGER_COLUMNS[:-1])
    assert str(ledger["received_at"].dt.tz) == "UTC"


def test_several_recipients_answer_in_order(emu: Emulator, http: requests.Session) -> None:
    numbers = ["+919876543210", "14155550123", " +447911123456"]
    payload = post(http, emu, text_fields(to=",".join(numbers))).json()

    assert payload["totalCount"] == 3
    assert [d["recipient"] for d in payload["data"]] == [
        "919876543210",
        "14155550123",
        "447911123456",
    ]
    assert [d["message_id"] for d in payload["data"]] == [f"{payload['id']}:{n}" for n in range(3)]
    assert emu.messages["to"].tolist() == ["+919876543210", "+14155550123", "+447911123456"]
    assert emu.messages["request_id"].unique().tolist() == [payload["id"]]


def test_hundred_recipients_accepted_hundred_and_one_refused(
    emu: Emulator, http: requests.Session
) -> None:
    numbers = [f"+9198765{n:05d}" for n in range(101)]
    assert post(http, emu, text_fields(to=",".join(numbers[:100]))).json()["totalCount"] == 100

    response = post(http, emu, text_fields(to=",".join(numbers)))
    assert_refused(response, 400, "E400", "to")
    assert "101" in response.json()["error"]["to"]
    assert len(emu.messages) == 100


def test_template_message(emu: Emulator, http: requests.Session) -> None:
    fields = template_fields(params='Raman,"12, Main Road"', lang_code="en", source="sandbox")
    payload = post(http, emu, fields).json()

    assert (payload["type"], payload["body"]) == ("template", "")
    row = emu.messages.iloc[0]
    assert (row["template_name"], row["params"], row["lang_code"], row["source"]) == (
        "order_update",
        'Raman,"12, Main Road"',
        "en",
        "sandbox",
    )
    assert pd.isna(row["body"])


@pytest.mark.parametrize("channel", ["whatsapp", "WhatsApp", "WHATSAPP", " whatsapp "])
def test_channel_is_case_insensitive(emu: Emulator, http: requests.Session, channel: str) -> None:
    assert post(http, emu, text_fields(channel=channel)).status_code == 200
    assert emu.messages["channel"].tolist() == ["whatsapp"]


def test_preview_url_and_unknown_fields_are_tolerated(
    emu: Emulator, http: requests.Session
) -> None:
    response = post(http, emu, text_fields(preview_url="true", custom="x"))
    assert response.status_code == 200


def test_html_in_body_is_accepted_verbatim(emu: Emulator, http: requests.Session) -> None:
    body = "<b>Sale</b> <a href='https://example.com'>today</a>"
    assert post(http, emu, text_fields(body=body)).json()["body"] == body
    assert emu.messages["body"].tolist() == [body]


def test_free_text_is_kept_verbatim(emu: Emulator, http: requests.Session) -> None:
    body = "  Dear customer,\n\tyour order has shipped.  \n"
    fields = text_fields(to=f" {TO} ", channel=" WhatsApp ", type=" Text ", body=body, ref=" r ")
    assert post(http, emu, fields).json()["body"] == body
    row = emu.messages.iloc[0]
    assert (row["to"], row["channel"], row["type"]) == (TO, "whatsapp", "text")
    assert (row["body"], row["ref"]) == (body, " r ")


def test_blank_optional_fields_count_as_absent(emu: Emulator, http: requests.Session) -> None:
    assert post(http, emu, text_fields(ref="", ref1="  ", callback_url="")).status_code == 200
    assert emu.messages[["ref", "ref1", "callback_url"]].isna().all(axis=None)


def test_body_of_4096_characters_accepted_4097_refused(
    emu: Emulator, http: requests.Session
) -> None:
    assert post(http, emu, text_fields(body="a" * 4096)).status_code == 200
    assert_refused(post(http, emu, text_fields(body="a" * 4097)), 400, "E400", "body")


# -- the document's error codes -----------------------------------------------------------


@pytest.mark.parametrize(
    "to",
    [
        "12345",  # too short
        "+0919876543210",  # country code cannot start with 0
        "+9999999999",  # no such country code
        "+9198765432101234",  # too long
        "98765-43210",
        "+91 98765 43210",  # spaces inside a number
        "abc",
        "+919876543210,123",  # one bad number refuses the whole request
        "+919876543210,",  # an empty entry
    ],
)
def test_bad_to_is_e13009(emu: Emulator, http: requests.Session, to: str) -> None:
    response = post(http, emu, text_fields(to=to))
    assert_refused(response, 400, "E13009", "to")
    assert response.json()["message"] == "Invalid or in-correct input of the TO number."
    assert emu.messages.empty


def test_missing_to_is_e13009(emu: Emulator, http: requests.Session) -> None:
    assert_refused(post(http, emu, text_fields(to=None)), 400, "E13009", "to")


@pytest.mark.parametrize("sender", ["12", "abc", "+0911234567890", f"{SENDER},{TO}", None, ""])
def test_bad_or_missing_from_is_e13008(
    emu: Emulator, http: requests.Session, sender: str | None
) -> None:
    response = post(http, emu, text_fields(**{"from": sender}))
    assert_refused(response, 400, "E13008", "from")
    assert response.json()["message"] == "Invalid or in-correct input of the From number."
    assert emu.messages.empty


@pytest.mark.parametrize(
    "field",
    [
        "to",
        "from",
        "type",
        "channel",
        "ref",
        "ref1",
        "ref2",
        "template_name",
        "params",
        "lang_code",
        "callback_url",
        "source",
    ],
)
@pytest.mark.parametrize("tag", ["<b>", "</b >", "<img src=x onerror=alert(1)>", "< script>"])
def test_html_in_any_field_but_body_is_e413(
    emu: Emulator, http: requests.Session, field: str, tag: str
) -> None:
    fields = template_fields(params="A", lang_code="en", ref="r", ref1="r", ref2="r",
                             callback_url="https://example.com/cb", source="sandbox")  # fmt: skip
    fields[field] = f"{tag}{fields[field]}"
    response = post(http, emu, fields)
    assert_refused(response, 400, "E413", field)
    assert list(response.json()["error"]) == [field]
    assert emu.messages.empty


def test_not_html_is_not_e413(emu: Emulator, http: requests.Session) -> None:
    fields = text_fields(ref="1 < 2 and 3 > 2", ref1="<3", ref2="x<1>", template_name="a<>b")
    assert post(http, emu, fields).status_code == 200


def test_e413_names_every_field_with_tags(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(ref="<i>a</i>", ref2="<p>", body="<b>ok</b>"))
    assert response.json()["error"].keys() == {"ref", "ref2"}


@pytest.mark.parametrize("field", ["ref", "ref1", "ref2"])
def test_ref_255_characters_accepted_256_refused(
    emu: Emulator, http: requests.Session, field: str
) -> None:
    assert post(http, emu, text_fields(**{field: "é" * 255})).status_code == 200
    response = post(http, emu, text_fields(**{field: "x" * 256}))
    assert_refused(response, 400, "E400", field)
    assert "255" in response.json()["error"][field]
    assert len(emu.messages) == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (text_fields(to="123", **{"from": "1"}), "E13009"),  # to before from
        (text_fields(to="123", ref="<b>x</b>"), "E413"),  # HTML before to
        (text_fields(channel=None, **{"from": "1"}), "E13008"),  # from before the rest
        (text_fields(to="123", channel="sms"), "E13009"),
    ],
)
def test_checks_run_in_the_documented_order(
    emu: Emulator, http: requests.Session, fields: dict[str, str], code: str
) -> None:
    assert post(http, emu, fields).json()["code"] == code


# -- other refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (text_fields(channel=None), "channel"),
        (text_fields(channel="sms"), "channel"),
        (text_fields(type=None), "type"),
        (text_fields(type="image"), "type"),
        (text_fields(body=None), "body"),
        (text_fields(body="   "), "body"),
        (template_fields(template_name=None), "template_name"),
    ],
)
def test_missing_or_unsupported_fields_are_e400(
    emu: Emulator, http: requests.Session, fields: dict[str, str], field: str
) -> None:
    assert_refused(post(http, emu, fields), 400, "E400", field)
    assert emu.messages.empty


def test_several_field_errors_are_reported_together(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(channel="sms", body=None, ref1="x" * 300))
    assert response.json()["error"].keys() == {"channel", "body", "ref1"}


def test_unknown_path_is_404_json(emu: Emulator, http: requests.Session) -> None:
    response = http.get(f"{emu.url}/v2/{emu.sid}/messages", timeout=5)
    assert_refused(response, 404, "E404", "path")
    assert emu.requests_seen == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_json(emu: Emulator, http: requests.Session, method: str) -> None:
    response = http.request(method, emu.messages_url, data=text_fields(), timeout=5)
    assert_refused(response, 405, "E405", "method")
    assert response.headers["Allow"] == "GET, POST"


def test_malformed_json_is_e400_after_authentication(emu: Emulator, http: requests.Session) -> None:
    bad = b'{"to": "+919876543210", '
    json_type = {"Content-Type": "application/json"}
    assert_refused(post(http, emu, bad, headers=json_type), 400, "E400", "request")  # type: ignore[arg-type]
    assert_refused(post(http, emu, bad, key=None, headers=json_type), 401, "E401", "api-key")  # type: ignore[arg-type]
    assert_refused(post(http, emu, b"[1, 2]", headers=json_type), 400, "E400", "request")  # type: ignore[arg-type]


def test_oversized_body_is_413(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(body="a" * (5 * 1024 * 1024)))
    assert_refused(response, 413, "E400", "request")


# -- authentication -----------------------------------------------------------------------


def test_missing_key_is_401(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(), key=None)
    assert_refused(response, 401, "E401", "api-key")
    assert response.json()["message"] == "Invalid API key or SID"


def test_wrong_key_is_401(emu: Emulator, http: requests.Session) -> None:
    assert_refused(post(http, emu, text_fields(), key="0" * 32), 401, "E401", "api-key")


def test_wrong_sid_is_401(emu: Emulator, http: requests.Session) -> None:
    url = f"{emu.url}/v1/HXAP1XXXXXX17XX/messages"
    assert_refused(post(http, emu, text_fields(), url=url), 401, "E401", "sid")


def test_key_as_a_form_field_is_accepted(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(**{"api-key": emu.api_key}), key=None)
    assert response.status_code == 200
    assert len(emu.messages) == 1


def test_key_as_a_json_field_is_accepted(emu: Emulator, http: requests.Session) -> None:
    response = http.post(
        emu.messages_url, json={**text_fields(), "api-key": emu.api_key}, timeout=5
    )
    assert response.status_code == 200


def test_the_key_never_appears_in_an_answer(emu: Emulator, http: requests.Session) -> None:
    with_key = {"api-key": emu.api_key}
    responses = [
        post(http, emu, text_fields(**with_key), key=None),
        post(http, emu, text_fields(to="1", **with_key), key=None),
        post(http, emu, text_fields(ref=f"<b>{emu.api_key}</b>", **with_key), key=None),
        post(http, emu, text_fields(), key=emu.api_key + "x"),
        post(http, emu, text_fields(**with_key), key=None, url=f"{emu.url}/v1/HXWRONG/messages"),
        http.put(emu.messages_url, data=with_key, timeout=5),
        http.get(f"{emu.url}/{emu.api_key}", timeout=5),
    ]
    assert [r.status_code for r in responses] == [200, 400, 400, 401, 401, 405, 404]
    for response in responses:
        assert emu.api_key not in response.text
        assert emu.api_key not in str(response.headers)


# -- request encodings --------------------------------------------------------------------


def test_get_with_query_parameters_and_plus_decoded_as_space(
    emu: Emulator, http: requests.Session
) -> None:
    # Written as the document writes it: the '+' of E.164 left raw in the query string.
    url = (
        f"{emu.messages_url}?channel=whatsapp&to=+919876543210,+14155550123&from=+911234567890"
        "&type=text&body=Hi%2C%20there&callback_url=https://example.com/cb"
    )
    response = http.get(url, headers={"api-key": emu.api_key}, timeout=5)

    assert response.status_code == 200, response.text
    assert [d["recipient"] for d in response.json()["data"]] == ["919876543210", "14155550123"]
    assert emu.messages["to"].tolist() == ["+919876543210", "+14155550123"]
    assert emu.messages["body"].unique().tolist() == ["Hi, there"]
    assert emu.messages["callback_url"].unique().tolist() == ["https://example.com/cb"]


def test_get_with_key_in_query(emu: Emulator, http: requests.Session) -> None:
    params = {**text_fields(), "api-key": emu.api_key}
    assert http.get(emu.messages_url, params=params, timeout=5).status_code == 200


def test_json_body(emu: Emulator, http: requests.Session) -> None:
    payload = {**text_fields(), "to": [TO, 14155550123], "preview_url": True}
    response = http.post(
        emu.messages_url, json=payload, headers={"api-key": emu.api_key}, timeout=5
    )
    assert response.status_code == 200, response.text
    assert emu.messages["to"].tolist() == [TO, "+14155550123"]


def test_json_body_without_content_type(emu: Emulator, http: requests.Session) -> None:
    body = json.dumps(text_fields()).encode()
    response = post(http, emu, body, headers={"Content-Type": "text/plain"})  # type: ignore[arg-type]
    assert response.status_code == 200, response.text


def test_urlencoded_body(emu: Emulator, http: requests.Session) -> None:
    response = post(http, emu, text_fields(body="a&b=c ü"))
    assert response.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert response.status_code == 200
    assert emu.messages["body"].tolist() == ["a&b=c ü"]


def test_multipart_body(emu: Emulator, http: requests.Session) -> None:
    files = {name: (None, value) for name, value in text_fields(body="ü multipart").items()}
    response = post(http, emu, files=files)
    assert response.request.headers["Content-Type"].startswith("multipart/form-data")
    assert response.status_code == 200
    assert emu.messages["body"].tolist() == ["ü multipart"]


def _curl_like_multipart(fields: dict[str, str], boundary: str) -> bytes:
    """A body as curl --form writes it under a non-multipart Content-Type header."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: attachment; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; boundary=------------------------3d093e19b814cbc5",
        "application/x-www-form-urlencoded; boundary=------------------------3d093e19b814cbc5",
        "application/x-www-form-urlencoded",  # no boundary given: the body starts with --
        "",
    ],
)
def test_multipart_body_under_another_content_type(
    emu: Emulator, http: requests.Session, content_type: str
) -> None:
    body = _curl_like_multipart(text_fields(), "------------------------3d093e19b814cbc5")
    response = post(http, emu, body, headers={"Content-Type": content_type})  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert emu.messages["to"].tolist() == [TO]


def test_chunked_body(emu: Emulator, http: requests.Session) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"to=%2B919876543210&from=911234567890"
        yield b"&type=text&channel=WhatsApp&body=chunked"

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = post(http, emu, chunks(), headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert emu.messages["body"].tolist() == ["chunked"]


def test_wsgi_app_can_be_mounted_without_a_server() -> None:
    emu = Emulator(sid="HXEMUWSGI", api_key="k")
    response = Client(emu.wsgi_app).post(
        "/v1/HXEMUWSGI/messages", data=text_fields(), headers={"api-key": "k"}
    )
    assert response.status_code == 200
    assert len(emu.messages) == 1


# -- the ledger and the counters ----------------------------------------------------------


def test_refused_requests_add_nothing_but_are_counted(
    emu: Emulator, http: requests.Session
) -> None:
    post(http, emu, text_fields())
    post(http, emu, text_fields(to="1"))
    post(http, emu, text_fields(), key="wrong")
    post(http, emu, text_fields(), url=f"{emu.url}/v1/HXWRONG/messages")
    http.put(emu.messages_url, timeout=5)
    post(http, emu, text_fields(to=f"{TO},+14155550123"))
    http.get(f"{emu.url}/elsewhere", timeout=5)  # not the endpoint: not counted

    assert len(emu.messages) == 3
    assert emu.requests_seen == 6


def test_reset_clears_the_ledger_and_the_counter(emu: Emulator, http: requests.Session) -> None:
    post(http, emu, text_fields())
    emu.reset()
    assert emu.messages.empty
    assert emu.requests_seen == 0
    post(http, emu, text_fields())
    assert len(emu.messages) == 1


def test_concurrent_requests_are_all_recorded(emu: Emulator) -> None:
    def worker(n: int) -> list[str]:
        with requests.Session() as session:
            return [post(session, emu, text_fields(ref=f"{n}-{i}")).json()["id"] for i in range(20)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(worker, range(8)) for i in batch]

    assert len(set(ids)) == 160
    ledger = emu.messages
    assert len(ledger) == 160
    assert ledger["message_id"].is_unique
    assert emu.requests_seen == 160


def test_seed_makes_ids_reproducible() -> None:
    def first_id(emu: Emulator) -> str:
        response = Client(emu.wsgi_app).post(
            f"/v1/{emu.sid}/messages", data=text_fields(), headers={"api-key": "k"}
        )
        return str(json.loads(response.get_data())["id"])

    one, two = Emulator(seed=7, api_key="k"), Emulator(seed=7, api_key="k")
    assert one.sid == two.sid
    assert one.sid.startswith("HXEMU")
    assert first_id(one) == first_id(two)
    assert Emulator().sid != Emulator().sid


# -- serving ------------------------------------------------------------------------------


def test_latency_delays_each_answer() -> None:
    with Emulator(latency=0.2) as emu, requests.Session() as session:
        started = time.perf_counter()
        response = post(session, emu, text_fields())
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        assert elapsed >= 0.2
        assert len(emu.messages) == 1


def test_latency_comes_after_the_message_is_recorded() -> None:
    with Emulator(latency=1.0) as emu, requests.Session() as session:
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.post(
                emu.messages_url, data=text_fields(), headers={"api-key": emu.api_key}, timeout=0.3
            )
        assert len(emu.messages) == 1  # processed, though the client never heard back


def test_keep_alive_reuses_one_connection(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"),
        requests.Session() as session,
    ):
        responses = [post(session, emu, text_fields()) for _ in range(3)]
        # An unread body on another path must not break the connection either.
        responses.append(session.get(f"{emu.url}/nope", data=b"x" * 1000, timeout=5))
        responses.append(post(session, emu, text_fields()))
    opened = [r for r in caplog.records if r.getMessage().startswith("Starting new HTTP")]
    assert len(opened) == 1
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 200]
    assert all("close" not in r.headers.get("Connection", "") for r in responses)


def _raw_request(emu: Emulator, version: str = "HTTP/1.1", expect: bool = False) -> bytes:
    body = b"to=919876543210&from=911234567890&type=text&channel=whatsapp&body=hi"
    head = (
        f"POST /v1/{emu.sid}/messages {version}\r\nHost: 127.0.0.1\r\napi-key: {emu.api_key}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        + ("Expect: 100-continue\r\n" if expect else "")
        + "\r\n"
    )
    return head.encode() + body


def _read_answers(sock: socket.socket, count: int) -> bytes:
    """Read until ``count`` complete JSON answers have arrived (or the peer closes)."""
    data = b""
    sock.settimeout(5)
    while data.count(b'"error": {}}') < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_pipelined_requests_on_one_connection(emu: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emu.port)) as sock:
        sock.sendall(_raw_request(emu) * 3)
        data = _read_answers(sock, 3)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert b"Connection: close" not in data
    assert len(emu.messages) == 3


def test_expect_100_continue_is_answered_once(emu: Emulator) -> None:
    request = _raw_request(emu, expect=True)
    head, body = request.split(b"\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", emu.port)) as sock:
        sock.sendall(head + b"\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        data = _read_answers(sock, 1)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(emu.messages) == 1


def test_http_1_0_connection_is_closed_after_the_answer(emu: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emu.port)) as sock:
        sock.sendall(_raw_request(emu, version="HTTP/1.0"))
        data = _read_answers(sock, 1)
        assert sock.recv(1024) == b""  # closed by the server
    assert b"Connection: close\r\n" in data
    assert len(emu.messages) == 1


def test_a_large_unread_body_keeps_the_connection(emu: Emulator) -> None:
    # The server reads the body before the application runs: what the application leaves
    # unread does not stay on the connection.
    with requests.Session() as session:
        response = session.put(emu.messages_url, data=b"x" * 200_000, timeout=5)
        assert response.status_code == 405
        assert "close" not in response.headers.get("Connection", "")
        assert post(session, emu, text_fields()).status_code == 200


def test_stop_closes_kept_alive_connections_and_is_idempotent() -> None:
    emu = Emulator().start()
    url = emu.messages_url
    with requests.Session() as session:
        assert post(session, emu, text_fields()).status_code == 200
        emu.stop()
        emu.stop()
        assert not emu.running
        with pytest.raises(requests.exceptions.ConnectionError):
            session.post(url, data=text_fields(), headers={"api-key": emu.api_key}, timeout=2)


def test_start_is_idempotent_and_restart_works() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.url
    try:
        assert emu.start() is emu
        url = emu.url
        assert emu.start().url == url
        emu.stop()
        emu.start()
        assert emu.running
    finally:
        emu.stop()


def test_serve_forever_blocks_until_stopped() -> None:
    emu = Emulator()
    thread = threading.Thread(target=emu.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not emu.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert thread.is_alive()
    emu.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_busy_port_raises_oserror(emulator: Emulator) -> None:
    with pytest.raises(OSError, match="in use"):
        Emulator(port=emulator.port).start()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        Emulator(latency=-1)
    with pytest.raises(ValueError, match="sid"):
        Emulator(sid=" ")


# -- reprs and the client -----------------------------------------------------------------


def test_repr_hides_the_key() -> None:
    emu = Emulator(api_key="s3cret-key-1234", sid="HXEMUREPR")
    assert "s3cret" not in repr(emu)
    assert "1234" not in repr(emu)
    assert "api_key=<hidden>" in repr(emu)
    assert "HXEMUREPR" in repr(emu)
    with emu:
        assert emu.url in repr(emu)
        assert "s3cret" not in repr(emu)


def test_client_is_aimed_at_the_emulator(emu: Emulator) -> None:
    with emu.client(sender=SENDER) as client:
        assert client.messages_url == emu.messages_url
        assert client.sender == SENDER
        text = repr(client)
        assert emu.api_key not in text
        assert "<hidden>" in text
        result = client.send_message([TO, "+14155550123"], body="Hi", ref="order-1")

    assert result.http_status == 200
    assert result.message_ids == {
        TO: f"{result.request_id}:0",
        "+14155550123": f"{result.request_id}:1",
    }
    assert emu.messages["ref"].tolist() == ["order-1", "order-1"]


def test_client_has_no_default_sender(emu: Emulator) -> None:
    with emu.client() as client:
        assert client.sender is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"to": "12345"}, "E13009"), ({"sender": "1"}, "E13008"), ({"ref": "<b>"}, "E413")],
)
def test_client_raises_the_api_error(emu: Emulator, fields: dict[str, str], code: str) -> None:
    to = fields.pop("to", TO)
    with emu.client(sender=SENDER) as client, pytest.raises(ApiError) as raised:
        client.send_message(to, body="Hi", **fields)
    assert raised.value.code == code
    assert raised.value.http_status == 400
    assert emu.messages.empty


def test_client_with_a_wrong_key_raises_authentication_error(emu: Emulator) -> None:
    with (
        KaleyraClient(emu.sid, "not-the-key", base_url=emu.url, sender=SENDER) as client,
        pytest.raises(AuthenticationError) as raised,
    ):
        client.send_message(TO, body="Hi")
    assert raised.value.code == "E401"
    assert raised.value.http_status == 401
