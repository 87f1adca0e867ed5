"""The callback receiver stores Kaleyra's callbacks once each and withstands bad requests.

Everything goes over real HTTP on 127.0.0.1, except the tests of the bare WSGI
application (``make_app``), which is what a production server would mount.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from werkzeug.test import Client

from kwa_batch.errors import ConfigurationError
from kwa_batch.receipts.delivery import load_receipts
from kwa_batch.receipts.receiver import (
    MAX_BODY,
    TOKEN_HEADER,
    CallbackError,
    Receiver,
    app_from_env,
    make_app,
    parse_callback,
)
from kwa_batch.receipts.store import CallbackStore, IncomingMessage, StatusUpdate

TOKEN = "s3cret-t0ken"
MESSAGE_ID = "5f2c9a52-8d8e-4f8e-9a57-4c1b8f3a2d10:0"
STATUS = {"id": MESSAGE_ID, "status": "delivered", "mobile": "919876543210"}
# An incoming message as production gateways receive it (kaleyra-facts.md).
INCOMING = {
    "created_at": "1700000000",
    "type": "text",
    "from": "14133881111",
    "name": "John Cruz",
    "body": "Hello",
}


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "receipts.db"


@pytest.fixture
def receiver(store_path: Path) -> Iterator[Receiver]:
    with Receiver(store_path) as running:
        yield running


@pytest.fixture
def guarded(store_path: Path) -> Iterator[Receiver]:
    """A receiver that requires TOKEN."""
    with Receiver(store_path, token=TOKEN) as running:
        yield running


def counts(receiver: Receiver) -> dict[str, int]:
    return receiver.store.counts()


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Log records of this package (the test's own HTTP client logs its URLs too)."""
    return [r for r in caplog.records if r.name.startswith("kwa_batch")]


def assert_still_fine(http: requests.Session, receiver: Receiver) -> None:
    """The server answers the health check and stores a good callback after a bad request."""
    assert http.get(receiver.url, timeout=5).json() == {"status": "ok"}
    good = {**STATUS, "id": "still-fine:0"}
    answer = http.get(receiver.callback_url, params=good, timeout=5)
    assert answer.status_code == 200, answer.text


# -- accepting callbacks as Kaleyra sends them ---------------------------------------------


def test_health_check_answers_get_root_without_a_token(
    http: requests.Session, guarded: Receiver
) -> None:
    answer = http.get(guarded.url + "/", timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    assert http.head(guarded.url, timeout=5).status_code == 200
    assert counts(guarded) == {"status_updates": 0, "incoming_messages": 0}


def test_a_status_update_by_get_is_stored(http: requests.Session, receiver: Receiver) -> None:
    fields = {**STATUS, "timestamp": "1700000000", "ref": "CUST-1001"}
    answer = http.get(receiver.callback_url, params=fields, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"ok": True, "stored": True})
    receipt = load_receipts(receiver.store).iloc[0]
    assert receipt["message_id"] == MESSAGE_ID
    assert receipt["status"] == "delivered"
    assert receipt["recipient"] == "+919876543210"
    assert receipt["delivered_at"] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")
    assert receipt["ref"] == "CUST-1001"


@pytest.mark.parametrize("encoding", ["json", "form", "multipart", "query"])
def test_a_status_update_by_post_is_stored(
    http: requests.Session, receiver: Receiver, encoding: str
) -> None:
    fields = {**STATUS, "status": "read"}
    if encoding == "json":
        answer = http.post(receiver.callback_url, json=fields, timeout=5)
    elif encoding == "form":
        answer = http.post(receiver.callback_url, data=fields, timeout=5)
    elif encoding == "multipart":
        parts = {name: (None, value) for name, value in fields.items()}
        answer = http.post(receiver.callback_url, files=parts, timeout=5)
    else:
        answer = http.post(receiver.callback_url, params=fields, timeout=5)
    assert answer.status_code == 200, answer.text
    assert load_receipts(receiver.store)["status"].tolist() == ["read"]


def test_a_body_field_wins_over_a_query_parameter(
    http: requests.Session, receiver: Receiver
) -> None:
    http.post(receiver.callback_url + "?status=sent", json=STATUS, timeout=5).raise_for_status()
    assert load_receipts(receiver.store)["status"].tolist() == ["delivered"]


def test_a_failure_keeps_its_code_from_an_error_object(
    http: requests.Session, receiver: Receiver
) -> None:
    fields = {
        "id": MESSAGE_ID,
        "status": "failed",
        "error": {"code": 131026, "message": "Message undeliverable"},
        "timestamp": 1700000000,
    }
    http.post(receiver.callback_url, json=fields, timeout=5).raise_for_status()
    receipt = load_receipts(receiver.store).iloc[0]
    assert (receipt["status"], receipt["error_code"]) == ("failed", "131026")
    assert receipt["error"] == "Message undeliverable"
    assert receipt["failed_at"] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")


def test_an_incoming_message_is_stored(http: requests.Session, receiver: Receiver) -> None:
    answer = http.get(receiver.url + "/any/path", params=INCOMING, timeout=5)
    assert answer.status_code == 200, answer.text
    incoming = receiver.store.incoming_messages().iloc[0]
    assert incoming["customer"] == "+14133881111"
    assert pd.isna(incoming["business"])
    assert incoming["at"] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")
    assert (incoming["name"], incoming["body"], incoming["type"]) == ("John Cruz", "Hello", "text")


@pytest.mark.parametrize("fields", [STATUS, {**INCOMING, "wanumber": "911234567890"}])
def test_the_same_callback_twice_is_one_record(
    http: requests.Session, receiver: Receiver, fields: dict[str, str]
) -> None:
    answers = [http.get(receiver.callback_url, params=fields, timeout=5).json() for _ in range(3)]
    assert [a["stored"] for a in answers] == [True, False, False]
    assert sum(counts(receiver).values()) == 1
    assert receiver.stats == {"stored": 1, "repeated": 2, "refused": 0}


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["sent", "delivered", "read"], "read"),
        (["read", "sent", "delivered"], "read"),
        (["delivered", "sent"], "delivered"),
        (["sent", "failed", "delivered"], "failed"),
    ],
)
def test_status_never_goes_backwards_over_http(
    http: requests.Session, receiver: Receiver, order: list[str], expected: str
) -> None:
    for status in order:
        params = {**STATUS, "status": status}
        http.get(receiver.callback_url, params=params, timeout=5).raise_for_status()
    assert load_receipts(receiver.store)["status"].tolist() == [expected]


def test_everything_survives_a_restart(store_path: Path, http: requests.Session) -> None:
    with Receiver(store_path) as first:
        http.get(first.callback_url, params=STATUS, timeout=5).raise_for_status()
        http.get(first.callback_url, params=INCOMING, timeout=5).raise_for_status()
    with Receiver(store_path) as second:
        assert counts(second) == {"status_updates": 1, "incoming_messages": 1}
        repeat = http.get(second.callback_url, params=STATUS, timeout=5).json()
        assert repeat == {"ok": True, "stored": False}
        later = {**STATUS, "status": "read"}
        http.get(second.callback_url, params=later, timeout=5).raise_for_status()
    # ...and a receiver restarted in place (stop, start) too.
    second.start()
    try:
        assert http.get(second.url, timeout=5).status_code == 200
    finally:
        second.stop()
    assert load_receipts(store_path)["status"].tolist() == ["read"]


def test_concurrent_callbacks_are_all_stored(http: requests.Session, receiver: Receiver) -> None:
    def post(n: int) -> int:
        with requests.Session() as session:
            fields = {"id": f"msg-{n}:0", "status": "delivered", "mobile": "919876543210"}
            return session.post(receiver.callback_url, json=fields, timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(120)))
    assert statuses == [200] * 120
    assert counts(receiver)["status_updates"] == 120


def test_phone_numbers_are_masked_in_the_logs(
    http: requests.Session, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="kwa_batch"):
        http.get(receiver.callback_url, params=STATUS, timeout=5).raise_for_status()
        http.get(receiver.callback_url, params=INCOMING, timeout=5).raise_for_status()
    text = "\n".join(r.getMessage() for r in ours(caplog))
    assert "********3210" in text
    assert "*******1111" in text
    assert "9876543210" not in text
    assert "4133881111" not in text
    assert "Hello" not in text  # nor what people wrote


# -- the token ------------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["query", "header", "bearer"])
def test_a_callback_with_the_token_is_accepted(
    http: requests.Session, guarded: Receiver, way: str
) -> None:
    url, params, headers = guarded.url + "/callback", dict(STATUS), {}
    if way == "query":
        params["token"] = TOKEN
    elif way == "header":
        headers[TOKEN_HEADER] = TOKEN
    else:
        headers["Authorization"] = f"Bearer {TOKEN}"
    answer = http.get(url, params=params, headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    assert counts(guarded)["status_updates"] == 1
    assert "token" not in " ".join(map(str, load_receipts(guarded.store).iloc[0].dropna()))


def test_callback_url_carries_the_token(http: requests.Session, guarded: Receiver) -> None:
    assert guarded.callback_url.endswith(f"/callback?token={TOKEN}")
    assert http.post(guarded.callback_url, json=STATUS, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ({}, 401),
        ({"params": {"token": ""}}, 401),
        ({"params": {"token": "wrong"}}, 403),
        ({"params": {"token": TOKEN[:-1]}}, 403),
        ({"headers": {TOKEN_HEADER: "wrong"}}, 403),
        ({"headers": {"Authorization": "Bearer wrong"}}, 403),
        ({"headers": {"Authorization": f"Basic {TOKEN}"}}, 401),
        # The header wins: a right token in the query does not excuse a wrong header.
        ({"headers": {TOKEN_HEADER: "wrong"}, "params": {"token": TOKEN}}, 403),
    ],
)
def test_a_callback_without_the_right_token_is_refused(
    http: requests.Session,
    guarded: Receiver,
    caplog: pytest.LogCaptureFixture,
    how: dict[str, Any],
    status: int,
) -> None:
    params = {**STATUS, **how.get("params", {})}
    with caplog.at_level(logging.DEBUG):
        answer = http.post(
            guarded.url + "/callback",
            params=params,
            json=STATUS,
            headers=how.get("headers", {}),
            timeout=5,
        )
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert counts(guarded)["status_updates"] == 0
    assert any("refused a callback" in r.getMessage() for r in caplog.records)
    assert_still_fine(http, guarded)


def test_the_token_never_appears_in_logs_or_reprs(
    http: requests.Session, guarded: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="kwa_batch"):
        http.get(guarded.callback_url, params=STATUS, timeout=5).raise_for_status()
        http.get(guarded.url + "/callback", params={**STATUS, "token": "nope"}, timeout=5)
        http.get(guarded.callback_url + "&id=x", timeout=5)  # malformed, with the token
    assert len(ours(caplog)) >= 3
    for record in ours(caplog):
        assert TOKEN not in record.getMessage()
    assert TOKEN not in repr(guarded)
    assert TOKEN not in repr(guarded.app)


# -- bad requests ---------------------------------------------------------------------------


def test_an_oversized_body_is_refused(
    http: requests.Session, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    big = json.dumps({**STATUS, "error": "x" * (MAX_BODY + 1)})
    with caplog.at_level(logging.WARNING, logger="kwa_batch.receipts.receiver"):
        answer = http.post(
            receiver.callback_url,
            data=big,
            headers={"Content-Type": "application/json"},
            timeout=5,
        )
    assert answer.status_code == 413
    assert "larger than" in answer.json()["error"]
    assert caplog.records
    assert counts(receiver)["status_updates"] == 0
    assert_still_fine(http, receiver)


def test_an_oversized_chunked_body_is_refused(http: requests.Session, receiver: Receiver) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "a:0", "status": "read", "error": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    answer = http.post(receiver.callback_url, data=chunks(), timeout=5)
    assert answer.status_code == 413
    assert counts(receiver)["status_updates"] == 0
    assert_still_fine(http, receiver)


def test_a_small_max_body_is_honoured(store_path: Path, http: requests.Session) -> None:
    with Receiver(store_path, max_body=64) as small:
        assert http.post(small.callback_url, json=STATUS, timeout=5).status_code == 413
        exact = json.dumps({"id": "a:0", "status": "read"}).encode().ljust(64)
        headers = {"Content-Type": "application/json"}
        answer = http.post(small.callback_url, data=exact, headers=headers, timeout=5)
        assert answer.status_code == 200, answer.text
        assert http.post(small.callback_url, data=exact + b" ", timeout=5).status_code == 413
        assert http.get(small.callback_url, params=STATUS, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"id": "a:0", "status": ', "text/plain", "not valid JSON"),
        (b'[{"id": "a:0", "status": "read"}]', "application/json", "must be an object"),
        (b'"read"', "application/json", "must be an object"),
        (b"id=a%3A0&status=\xff\xfe", "application/x-www-form-urlencoded", "not UTF-8"),
        (b"", "application/json", "not a Kaleyra callback"),
        (b'{"hello": "world"}', "application/json", "not a Kaleyra callback"),
        (b'{"id": "a:0"}', "application/json", "no 'status'"),
        (b'{"status": "read"}', "application/json", "no 'id'"),
        (b'{"id": "a:0", "status": "r e@d!"}', "application/json", "not a status"),
        (b'{"id": "a:0", "status": "' + b"x" * 40 + b'"}', "application/json", "not a status"),
        (b'{"id": "' + b"7" * 300 + b'", "status": "read"}', "application/json", "'id' must"),
        (b'{"id": "a\\u0000:0", "status": "read"}', "application/json", "'id' must"),
        (b'{"from": "hello", "body": "Hi"}', "application/json", "'from' is not a phone"),
    ],
)
def test_a_malformed_callback_gets_400_and_a_log_line(
    http: requests.Session,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    reason: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="kwa_batch.receipts.receiver"):
        answer = http.post(
            receiver.callback_url, data=body, headers={"Content-Type": content_type}, timeout=5
        )
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert reason in caplog.records[0].getMessage()
    assert sum(counts(receiver).values()) == 0
    assert_still_fine(http, receiver)


def test_a_get_without_fields_off_root_is_not_a_callback(
    http: requests.Session, receiver: Receiver
) -> None:
    assert http.get(receiver.callback_url, timeout=5).status_code == 400


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_405(http: requests.Session, receiver: Receiver, method: str) -> None:
    answer = http.request(method, receiver.callback_url, json=STATUS, timeout=5)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, HEAD, POST"
    assert_still_fine(http, receiver)


# -- the bare WSGI application ---------------------------------------------------------------


def test_make_app_runs_under_any_wsgi_server(store_path: Path) -> None:
    client = Client(make_app(store_path, token=TOKEN))
    assert client.get("/").status_code == 200
    assert client.get("/callback", query_string=STATUS).status_code == 401
    answer = client.post("/callback", json=STATUS, headers={TOKEN_HEADER: TOKEN})
    assert answer.status_code == 200
    assert load_receipts(store_path)["status"].tolist() == ["delivered"]


def test_app_from_env(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KWA_RECEIVER_STORE", str(store_path))
    monkeypatch.setenv("KWA_RECEIVER_TOKEN", TOKEN)
    client = Client(app_from_env())
    assert client.get("/callback", query_string={**STATUS, "token": TOKEN}).status_code == 200
    assert client.get("/callback", query_string=STATUS).status_code == 401
    monkeypatch.delenv("KWA_RECEIVER_STORE")
    with pytest.raises(ConfigurationError, match="KWA_RECEIVER_STORE"):
        app_from_env()


def test_a_store_that_cannot_be_written_gets_503(tmp_path: Path) -> None:
    client = Client(make_app(tmp_path / "no such folder" / "receipts.db"))
    assert client.get("/callback", query_string=STATUS).status_code == 503
    assert client.get("/").status_code == 503


def test_a_file_that_is_not_a_store_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database " * 100)
    with pytest.raises(Exception, match="not a callback store"):
        Receiver(path).start()


@pytest.mark.parametrize(("setting", "value"), [("token", ""), ("max_body", 0)])
def test_bad_settings_are_refused(store_path: Path, setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=setting):
        Receiver(store_path, **{setting: value})


# -- reading one callback -------------------------------------------------------------------

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000.5", datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        ("1700000000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14 22:13:20+00:00", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-15 03:43:20+05:30", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14 22:13:20", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("yesterday", RECEIVED),
        ("0", RECEIVED),
        ("nan", RECEIVED),
        ("1e400", RECEIVED),
    ],
)
def test_callback_times_are_read_tolerantly(timestamp: str, expected: datetime) -> None:
    update = parse_callback({**STATUS, "timestamp": timestamp}, received_at=RECEIVED)
    assert isinstance(update, StatusUpdate)
    assert update.at == expected
    assert update.received_at == RECEIVED


@pytest.mark.parametrize(
    ("written", "status"),
    [("Delivered", "delivered"), (" READ ", "read"), ("not_sent", "not-sent"),
     ("Not Sent", "not-sent"), ("deleted", "deleted")],
)  # fmt: skip
def test_statuses_are_normalised(written: str, status: str) -> None:
    update = parse_callback({"id": "a:0", "status": written})
    assert isinstance(update, StatusUpdate)
    assert update.status == status


def test_an_incoming_message_names_its_business_number() -> None:
    message = parse_callback({**INCOMING, "wanumber": "+91 12345 67890"}, received_at=RECEIVED)
    assert isinstance(message, IncomingMessage)
    assert (message.customer, message.business) == ("+14133881111", "+911234567890")
    again = parse_callback({**INCOMING, "wanumber": "+91 12345 67890"})
    assert isinstance(again, IncomingMessage)
    assert again.key == message.key  # the same callback, whenever it comes


def test_parse_callback_refuses_what_is_no_callback() -> None:
    with pytest.raises(CallbackError, match="not a Kaleyra callback"):
        parse_callback({"hello": "world"})


def test_a_store_shared_by_two_connections_sees_both(store_path: Path) -> None:
    update = parse_callback(STATUS, received_at=RECEIVED)
    assert isinstance(update, StatusUpdate)
    with CallbackStore(store_path) as one, CallbackStore(store_path) as two:
        assert one.add_status(update)
        assert not two.add_status(update)
        assert two.counts()["status_updates"] == 1
