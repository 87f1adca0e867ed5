"""KaleyraClient against the real emulator, and tolerant parsing of recorded answers."""

from __future__ import annotations

import socket

import pytest
from conftest import SENDER

from kwa_batch import (
    AmbiguousSendError,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    Emulator,
    InvalidResponseError,
    KaleyraClient,
    RateLimitError,
    ServerError,
)
from kwa_batch.sending.client import parse_response


def test_text_message_is_accepted(emulator: Emulator) -> None:
    with emulator.client(sender=SENDER) as client:
        result = client.send_message("+919876543210", body="Hi, your order has shipped", ref="C1")
    assert result.http_status == 200
    assert result.request_id
    assert result.message_ids == {"+919876543210": f"{result.request_id}:0"}
    ledger = emulator.messages
    row = ledger[ledger["message_id"] == result.message_ids["+919876543210"]].iloc[0]
    assert row["to"] == "+919876543210"
    assert row["from"] == SENDER
    assert row["body"] == "Hi, your order has shipped"
    assert row["ref"] == "C1"


def test_template_with_params_list(emulator: Emulator) -> None:
    with emulator.client(sender=SENDER) as client:
        result = client.send_message(
            "+447911123456",
            type="template",
            template_name="order_shipped",
            params=["Tan, Wei Ling", "A1008"],
            lang_code="en",
        )
    ledger = emulator.messages
    row = ledger[ledger["message_id"] == result.message_ids["+447911123456"]].iloc[0]
    assert row["template_name"] == "order_shipped"
    assert row["params"] == '"Tan, Wei Ling",A1008'


def test_several_recipients_map_back_in_order(emulator: Emulator) -> None:
    numbers = ["+919876543210", "+447911123456", "+12025550143"]
    with emulator.client(sender=SENDER) as client:
        result = client.send_message(numbers, body="Broadcast")
    assert list(result.message_ids) == numbers
    assert [result.message_ids[n] for n in numbers] == [
        f"{result.request_id}:{i}" for i in range(3)
    ]
    assert result.message_id_for("919876543210") == f"{result.request_id}:0"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "+12"}, "E13009"),
        ({"sender": "+1"}, "E13008"),
        ({"ref": "<b>x</b>"}, "E413"),
    ],
)
def test_api_errors_carry_the_code(emulator: Emulator, fields: dict[str, str], code: str) -> None:
    to = fields.pop("to", "+919876543210")
    with emulator.client(sender=SENDER) as client, pytest.raises(ApiError) as info:
        client.send_message(to, body="Hi", **fields)
    assert info.value.code == code
    assert info.value.http_status == 400
    assert info.value.raw


def test_wrong_key_is_an_authentication_error_without_the_key(emulator: Emulator) -> None:
    secret = "wrong-key-0123456789"
    client = KaleyraClient(emulator.sid, secret, sender=SENDER, base_url=emulator.url)
    with pytest.raises(AuthenticationError) as info:
        client.send_message("+919876543210", body="Hi")
    assert info.value.http_status == 401
    assert secret not in str(info.value)
    assert secret not in info.value.raw
    assert secret not in repr(client)
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_is_safe_to_retry() -> None:
    client = KaleyraClient("HX", "k", sender=SENDER, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectError, match="nothing was sent"):
        client.send_message("+919876543210", body="Hi")


def test_read_timeout_is_ambiguous_and_the_message_was_accepted() -> None:
    with Emulator(latency=0.5) as emu:
        client = emu.client(sender=SENDER, timeout=(2, 0.1))
        with pytest.raises(AmbiguousSendError, match="may have been sent"):
            client.send_message("+919876543210", body="Hi")
        client.close()
        assert len(emu.messages) == 1  # processed although we never heard back


def test_missing_sender_is_a_configuration_error(emulator: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="no sender"):
        emulator.client().send_message("+919876543210", body="Hi")


# Recorded answers in the shapes seen in the wild -> what the client makes of them.
@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (200, '{"id": "u1:0"}', {}, {"+919876543210": "u1:0"}),
        (
            202,
            '{"id": "u2", "data": [{"message_id": "u2:0", "recipient": "919876543210"}], '
            '"error": {}}',
            {},
            {"+919876543210": "u2:0"},
        ),
        (
            400,
            '{"error": {"to": "invalid number"}}',
            {},
            (ApiError, "HTTP400", "to: invalid number"),
        ),
        (
            400,
            '{"code": "E13009", "message": "Invalid TO"}',
            {},
            (ApiError, "E13009", "Invalid TO"),
        ),
        (400, '{"error": {"code": "E413", "message": "html"}}', {}, (ApiError, "E413", "html")),
        (401, "Unauthorized", {}, (AuthenticationError, "HTTP401", "Unauthorized")),
        (429, "", {"Retry-After": "3"}, (RateLimitError, "HTTP429", "empty body")),
        (500, "<html>oops</html>", {}, (ServerError, "HTTP500", "oops")),
        (200, "<html>proxy</html>", {}, (InvalidResponseError, "BADRESPONSE", "not JSON")),
        (200, '{"error": {"to": "invalid"}, "data": []}', {}, (ApiError, "HTTP200", "invalid")),
    ],
)
def test_parse_response_is_tolerant(status, body, headers, expected) -> None:
    if isinstance(expected, dict):
        assert parse_response(status, body, headers, ["+919876543210"]).message_ids == expected
        return
    kind, code, text = expected
    with pytest.raises(kind) as info:
        parse_response(status, body, headers, ["+919876543210"])
    assert type(info.value) is kind
    assert info.value.code == code
    assert text in str(info.value)
    if status == 429:
        assert info.value.retry_after == 3.0
