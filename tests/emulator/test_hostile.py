"""The emulator under hostile requests: chunked bodies, unreadable bodies, HTML bombs, the
key in a request line (issue #10, "Servers"). Idle sockets and the connection cap are in
``tests/receipts/test_receiver_hostile.py``, for both servers.

Over real HTTP on 127.0.0.1, except the property tests of the bare WSGI application.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from kwa_batch.emulator.bodies import MAX_REQUEST_BYTES
from kwa_batch.emulator.request_checks import has_html_tag
from kwa_batch.emulator.server import Emulator

DEADLINE = 20.0  # seconds: only so that a broken server cannot hang the suite
FIELDS = {"to": "919876543210", "from": "911234567890", "type": "text", "channel": "whatsapp"}


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


def post_raw(emu: Emulator, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        emu.messages_url,
        data=body,
        headers={"api-key": emu.api_key, **headers},
        timeout=DEADLINE,
    )


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# -- chunked bodies -------------------------------------------------------------------------


def test_a_chunked_body_over_4_mib_gets_413_like_a_declared_one(emu: Emulator) -> None:
    body = "&".join(f"{k}={v}" for k, v in FIELDS.items()) + "&body=hi&ref2=" + "x" * (5 << 20)
    declared = post_raw(emu, body.encode())
    streamed = requests.post(
        emu.messages_url,
        data=chunks(body.encode()),
        headers={"api-key": emu.api_key},
        timeout=DEADLINE,
    )
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert streamed.json()["code"] == "E400"
    assert emu.message_count == 0


def test_a_chunked_body_of_exactly_4_mib_is_read(emu: Emulator) -> None:
    head = ("&".join(f"{k}={v}" for k, v in FIELDS.items()) + "&body=").encode()
    body = head + b"x" * (MAX_REQUEST_BYTES - len(head))
    answer = requests.post(
        emu.messages_url, data=chunks(body), headers={"api-key": emu.api_key}, timeout=DEADLINE
    )
    assert answer.status_code == 400  # read whole: the body is over 4,096 characters
    assert answer.json()["error"] == {
        "body": f"longer than 4096 characters ({len(body) - len(head)})"
    }


@pytest.mark.parametrize("size_line", [b"zz", b"-1", b"0x5", b"5;" + b"e" * 5000])
def test_a_malformed_chunked_body_gets_400_e400_at_once(emu: Emulator, size_line: bytes) -> None:
    head = (
        f"POST /v1/{emu.sid}/messages HTTP/1.1\r\nHost: x\r\napi-key: {emu.api_key}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", emu.port), timeout=DEADLINE) as sock:
        sock.sendall(head + size_line + b"\r\n")
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    answer = json.loads(data.partition(b"\r\n\r\n")[2])
    assert answer["code"] == "E400"
    assert "malformed chunked body" in answer["error"]["request"]


# -- what the checks cannot read ------------------------------------------------------------

UNREADABLE: dict[str, tuple[str, str]] = {
    "nested array": ('{"to": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
    "nested object": ('{"to": "1", "x": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}", "nested"),
    "lone surrogate in body": (json.dumps(FIELDS)[:-1] + ', "body": "\\ud800"}', "surrogate"),
    "lone surrogate in a name": ('{"\\udfff": "x", "to": "919876543210"}', "surrogate"),
    "lone surrogate in the key": ('{"api-key": "\\ud800"}', ""),
}


@pytest.mark.parametrize(("body", "reason"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_body_gets_a_4xx_never_500(emu: Emulator, body: str, reason: str) -> None:
    answer = post_raw(emu, body.encode(), **{"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert reason in json.dumps(answer.json()["error"])
    assert emu.message_count == 0


def test_a_long_boundary_is_refused(emu: Emulator) -> None:
    answer = post_raw(emu, b"--" + b"b" * 300_000 + b"\r\n")
    assert answer.status_code == 400
    assert "boundary" in answer.json()["error"]["request"]


_BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b: b"--" + b, st.binary(max_size=200)),
    st.builds(lambda b: b"{" + b, st.binary(max_size=200)),
    st.builds(
        lambda s, c: json.dumps({**FIELDS, "body": s, "ref": c}).replace("SURR", "\\ud83d"),
        st.text(max_size=30) | st.just("SURR"),
        st.text(max_size=30) | st.just("<a<a"),
    ).map(str.encode),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    body=_BODIES,
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
        ]
    ),
    query=st.text(max_size=40),
)
def test_no_request_gets_a_500(method: str, body: bytes, content_type: str, query: str) -> None:
    emu = _APP.setdefault("emu", Emulator(sid="HXFUZZ", api_key="fuzz-key", callbacks=False))
    assert isinstance(emu, Emulator)
    client = Client(emu.wsgi_app)
    headers = {"api-key": "fuzz-key", **({"Content-Type": content_type} if content_type else {})}
    answer = client.open(
        "/v1/HXFUZZ/messages", method=method, query_string=query, data=body, headers=headers
    )
    assert answer.status_code < 500, (body, answer.get_data())
    if answer.status_code == 200:
        assert not emu.messages.empty  # the ledger can hold what was accepted


_APP: dict[str, Any] = {}


# -- the HTML check -------------------------------------------------------------------------

_REGEX = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")  # the check it replaces, quadratic


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="<>/ \t\u00a0\u2003aZ1-=\"'", max_size=30))
def test_the_html_check_finds_what_the_regex_found(text: str) -> None:
    assert has_html_tag(text) == bool(_REGEX.search(text))


@pytest.mark.parametrize(
    "field",
    ["<a" * 200_000, "< " * 200_000, "</" * 200_000, "<" + " " * 400_000, "< /" * 130_000],
    ids=["<a<a", "< < ", "</</", "< spaces", "< /< /"],
)
def test_the_html_check_is_linear_on_hostile_fields(emu: Emulator, field: str) -> None:
    # 400 KB: the old regex took minutes on these (quadratic); the deadline only bounds a
    # regression, it times nothing.
    answer = requests.post(
        emu.messages_url,
        data={**FIELDS, "body": "hi", "ref1": field},
        headers={"api-key": emu.api_key},
        timeout=DEADLINE,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {"ref1": f"longer than 255 characters ({len(field)})"}


# -- the key stays out of the logs ----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "POST /v1/{sid}/messages?api-key={key}&to=919876543210 HTTP/1.1 junk",
        "GET /v1/{sid}/messages?api-key={key} HTTP/7.0",
        "GET /{key} NOT-HTTP",
    ],
)
def test_no_log_line_carries_the_key(
    emu: Emulator, caplog: pytest.LogCaptureFixture, line: str
) -> None:
    request = line.format(sid=emu.sid, key=emu.api_key) + "\r\nHost: x\r\n\r\n"
    with (
        caplog.at_level(logging.DEBUG),
        socket.create_connection(("127.0.0.1", emu.port), timeout=DEADLINE) as sock,
    ):
        sock.sendall(request.encode())
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert emu.api_key.encode() not in data  # nor in the answer
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert emu.api_key not in text
        assert "919876543210" not in text
