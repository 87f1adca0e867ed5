"""The receiver under hostile clients: idle and slow sockets, bad chunked bodies, unreadable
requests, HEAD probes, secrets in request lines (issue #10, "Servers").

Everything goes over real HTTP on 127.0.0.1; the descriptor limit is set in a child
process. No assertion is timed: the deadlines only keep a broken server from hanging the
suite.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from kwa_batch._http.chunked import read_chunked
from kwa_batch.receipts.receiver import Receiver, make_app

TOKEN = "t0ken-Sekr1t-xyz"
STATUS = {"id": "5f2c9a52:0", "status": "delivered", "mobile": "919876543210"}
DEADLINE = 20.0  # seconds: only so that a broken server cannot hang the suite


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "receipts.db"


@pytest.fixture
def quick(store_path: Path) -> Iterator[Receiver]:
    """A receiver with a short read timeout, guarded by TOKEN."""
    with Receiver(store_path, token=TOKEN, read_timeout=0.5) as running:
        yield running


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.settimeout(DEADLINE)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def request_head(path: str = "/callback", **headers: str) -> bytes:
    lines = [f"POST {path}?token={TOKEN} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_serves(receiver: Receiver, message_id: str = "still-fine:0") -> None:
    answer = requests.get(
        receiver.callback_url, params={**STATUS, "id": message_id}, timeout=DEADLINE
    )
    assert answer.status_code == 200, answer.text


# -- read timeout ---------------------------------------------------------------------------


def test_an_idle_connection_is_closed_after_the_read_timeout(quick: Receiver) -> None:
    with connect(quick.port) as idle:
        assert read_all(idle) == b""  # closed by the server, without an answer
    assert_serves(quick)


def test_a_kept_alive_connection_is_closed_when_idle(quick: Receiver) -> None:
    with connect(quick.port) as sock:
        sock.sendall(f"GET /?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" not in data  # kept alive, then closed for idling


def test_a_slow_client_gets_408(quick: Receiver) -> None:
    stop = threading.Event()

    def trickle(sock: socket.socket) -> None:
        sock.sendall(f"POST /callback?token={TOKEN} HTTP/1.1\r\n".encode())
        for n in range(200):  # one header every 0.1 s: never done within the timeout
            if stop.wait(0.1):
                return
            try:
                sock.sendall(f"X-Slow-{n}: 1\r\n".encode())
            except OSError:
                return

    with connect(quick.port) as slow:
        thread = threading.Thread(target=trickle, args=(slow,), daemon=True)
        thread.start()
        try:
            data = read_all(slow)
        finally:
            stop.set()
            thread.join(DEADLINE)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close" in data
    assert quick.store.counts()["status_updates"] == 0
    assert_serves(quick)


def test_the_application_time_does_not_count(store_path: Path) -> None:
    from kwa_batch.emulator.server import Emulator

    with Emulator(latency=1.0, read_timeout=0.3) as emu:
        answer = requests.post(
            emu.messages_url,
            data={"to": "919876543210", "from": "911234567890", "type": "text"},
            headers={"api-key": emu.api_key},
            timeout=DEADLINE,
        )
    assert answer.status_code == 400  # answered (no channel), not cut by the read timeout


# -- the connection cap ---------------------------------------------------------------------


def test_at_the_cap_the_connection_idle_longest_is_closed(store_path: Path) -> None:
    with Receiver(store_path, max_connections=2, read_timeout=60) as receiver:
        with connect(receiver.port) as oldest:
            # Idle clearly longer than the next one, however busy the machine.
            wait_until(lambda: receiver._http.open_connections == 1)
            time.sleep(0.2)
            newer = connect(receiver.port)
            wait_until(lambda: receiver._http.open_connections == 2)
            assert_serves(receiver)  # a third connection: the oldest idle one makes room
            assert read_all(oldest) == b""
            newer.setblocking(False)
            with pytest.raises(BlockingIOError):
                newer.recv(1)  # still open
            newer.close()
        assert receiver.store.counts()["status_updates"] == 1


def test_at_the_cap_with_every_connection_busy_new_ones_get_503() -> None:
    from kwa_batch.emulator.server import Emulator

    with Emulator(latency=1.0, max_connections=1) as emu:
        fields = {"to": "919876543210", "from": "911234567890", "type": "text"}
        headers = {"api-key": emu.api_key}
        busy = threading.Thread(
            target=requests.post,
            args=(emu.messages_url,),
            kwargs={"data": fields, "headers": headers, "timeout": DEADLINE},
            daemon=True,
        )
        busy.start()
        wait_until(lambda: emu.requests_seen == 1)
        refused = requests.post(emu.messages_url, data=fields, headers=headers, timeout=DEADLINE)
        busy.join(DEADLINE)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == "E503"


# A server in a child process whose descriptors are limited to 256; it prints its port.
_CHILD = textwrap.dedent(
    """
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    from kwa_batch.receipts.receiver import Receiver
    from kwa_batch.emulator.server import Emulator
    server = (Receiver(sys.argv[2], read_timeout=600) if sys.argv[1] == "receiver"
              else Emulator(read_timeout=600, sid="HXIDLE", api_key="idle-key"))
    with server:
        print(server.port, flush=True)
        sys.stdin.read()
    """
)


@pytest.fixture
def limited(request: pytest.FixtureRequest, store_path: Path) -> Iterator[tuple[str, int]]:
    """(kind, port) of a receiver or an emulator in a child limited to 256 descriptors."""
    kind = request.param
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, str(store_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield kind, int(child.stdout.readline())
    finally:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.close()
        child.wait(DEADLINE)
        child.stdout.close()


@pytest.mark.parametrize("limited", ["receiver", "emulator"], indirect=True)
def test_300_idle_sockets_under_256_descriptors_do_not_starve_a_real_client(
    limited: tuple[str, int], store_path: Path
) -> None:
    kind, port = limited
    idle = [connect(port) for _ in range(300)]  # more than the child has descriptors
    try:
        if kind == "receiver":
            url = f"http://127.0.0.1:{port}/callback"
            answer = requests.get(url, params=STATUS, timeout=DEADLINE)
        else:
            url = f"http://127.0.0.1:{port}/v1/HXIDLE/messages"
            fields = {"to": "919876543210", "from": "911234567890", "type": "text",
                      "channel": "whatsapp", "body": "hi"}  # fmt: skip
            answer = requests.post(url, data=fields, headers={"api-key": "idle-key"}, timeout=60)
    finally:
        for sock in idle:
            sock.close()
    assert answer.status_code == 200, answer.text


# -- chunked bodies -------------------------------------------------------------------------

MALFORMED_CHUNKED = [
    b"zz\r\n",  # not hexadecimal
    b"-5\r\nabcde\r\n0\r\n\r\n",  # negative
    b"0x5\r\nabcde\r\n0\r\n\r\n",  # int(..., 16) would take these three
    b"+5\r\nabcde\r\n0\r\n\r\n",
    b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n",
    b"f" * 5000 + b"\r\n",  # a size line over 4 KiB
    b"3\r\nabcXY",  # a chunk not followed by CRLF
    b"\r\n",  # an empty size line
]


@pytest.mark.parametrize("body", MALFORMED_CHUNKED, ids=range(len(MALFORMED_CHUNKED)))
def test_a_malformed_chunked_body_gets_400_at_once(quick: Receiver, body: bytes) -> None:
    with connect(quick.port) as sock:
        sock.sendall(request_head(Transfer_Encoding="chunked") + body)
        data = read_all(sock)  # the server answers and closes, without waiting for more
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert "malformed chunked body" in json.loads(data.partition(b"\r\n\r\n")[2])["error"]
    assert_serves(quick)


def test_another_transfer_coding_gets_400(quick: Receiver) -> None:
    with connect(quick.port) as sock:
        sock.sendall(request_head(Transfer_Encoding="gzip, chunked") + b"0\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request\r\n")


@given(
    data=st.binary(max_size=300),
    sizes=st.lists(st.integers(1, 50), min_size=1),
    limit=st.integers(0, 400),
)
def test_read_chunked_decodes_what_was_encoded_within_its_limit(
    data: bytes, sizes: list[int], limit: int
) -> None:
    encoded, start = b"", 0
    while start < len(data):
        piece = data[start : start + sizes[start % len(sizes)]]
        encoded += f"{len(piece):X}\r\n".encode() + piece + b"\r\n"
        start += len(piece)
    encoded += b"0\r\nX-Trailer: 1\r\n\r\n"
    decoded, complete = read_chunked(io.BytesIO(encoded), limit)
    if len(data) <= limit:
        assert (decoded, complete) == (data, True)
    else:
        assert (decoded, complete) == (data[: limit + 1], False)


def test_conflicting_content_lengths_get_400(quick: Receiver) -> None:
    with connect(quick.port) as sock:
        sock.sendall(
            request_head().replace(
                b"\r\n\r\n", b"\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n"
            )
            + b"{}"
        )
        assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_chunked_with_a_content_length_is_answered_and_closed(quick: Receiver) -> None:
    body = json.dumps(STATUS).encode()
    smuggled = f"GET /callback?token={TOKEN}&id=smuggled:0&status=read HTTP/1.1\r\n\r\n"
    with connect(quick.port) as sock:
        sock.sendall(
            request_head(Transfer_Encoding="chunked", Content_Length="3")
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
            + smuggled.encode()
        )
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.count(b"HTTP/1.1") == 1  # what followed the body was not served
    assert b"Connection: close" in data


def chunked(data: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_chunked_body_is_capped_like_a_declared_one(store_path: Path) -> None:
    with Receiver(store_path, max_body=64) as small:
        exact = json.dumps({"id": "a:0", "status": "read"}).encode().ljust(64)
        headers = {"Content-Type": "application/json"}
        ok = requests.post(small.callback_url, data=chunked(exact), headers=headers, timeout=9)
        over = requests.post(small.callback_url, data=chunked(exact + b" "), timeout=9)
        assert (ok.status_code, over.status_code) == (200, 413)


# -- requests the application cannot read ---------------------------------------------------

UNREADABLE = {
    "nested array": "[" * 60_000,
    "nested in a field": '{"id": "a:0", "status": "read", "x": ' + "[" * 5000 + "]" * 5000 + "}",
    "lone surrogate in a value": '{"id": "a:0", "status": "read", "error": "\\ud800"}',
    "lone surrogate in a name": '{"id": "a:0", "status": "read", "\\udfff": "x"}',
    "lone surrogate in a reply": '{"from": "919876543210", "body": "hi \\udbff"}',
    # PostgreSQL's text holds no NUL: refused whatever the store, so that both answer alike.
    "NUL in a value": '{"id": "a:0", "status": "read", "error": "a\\u0000b"}',
    "NUL in a reply": '{"from": "919876543210", "body": "hi\\u0000"}',
    "huge integer": '{"id": "a:0", "status": "read", "ref": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_body_gets_400_never_500(quick: Receiver, body: str) -> None:
    answer = requests.post(
        quick.callback_url,
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=DEADLINE,
    )
    assert answer.status_code == 400, answer.text
    assert quick.store.counts() == {"status_updates": 0, "incoming_messages": 0}


@pytest.mark.parametrize(
    "timestamp",
    ["9999-12-31T23:59:59", "9999-12-31T23:59:59-12:00", "253402300799", "9e15", "0001-01-01"],
)
def test_an_absurd_time_is_replaced_by_the_receipt_time(quick: Receiver, timestamp: str) -> None:
    answer = requests.post(
        quick.callback_url, json={**STATUS, "timestamp": timestamp}, timeout=DEADLINE
    )
    assert answer.status_code == 200, answer.text
    from kwa_batch.receipts.delivery import load_receipts

    receipt = load_receipts(quick.store).iloc[0]
    assert receipt["delivered_at"].year < 9999


_JSON_ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["\\ud800", "9999-12-31T23:59:59-12:00", "1e400", "<a<a", "\x00"]),
)
_NAMES = st.sampled_from(
    ["id", "status", "timestamp", "from", "created_at", "mobile", "error", "ref", "body", "x"]
)


def _json_text(value: object) -> str:
    # Strings from the sampled list are written raw so that "\ud800" stays an escape.
    if isinstance(value, str) and value.startswith("\\u"):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}": {_json_text(v)}' for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    document=st.dictionaries(
        _NAMES,
        # A few levels and leaves are enough to put every kind of value under every name;
        # hypothesis's default (100 leaves a value) spent seconds drawing, not requesting.
        st.recursive(
            _JSON_ATOMS,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_NAMES, inner, max_size=4),
            max_leaves=8,
        ),
    ),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", ""]
    ),
    raw=st.binary(max_size=64),
    query=st.text(max_size=40),
)
def test_no_request_gets_a_500(
    tmp_path_factory: pytest.TempPathFactory,
    method: str,
    document: dict[str, object],
    content_type: str,
    raw: bytes,
    query: str,
) -> None:
    client = Client(_fuzz_app(tmp_path_factory))
    for body in (_json_text(document).encode(), raw, b"--" + raw):
        answer = client.open(
            "/callback",
            method=method,
            query_string=query,
            data=body,
            headers={"Content-Type": content_type} if content_type else {},
        )
        assert answer.status_code < 500, (body, answer.get_data())
        if method == "HEAD":
            assert answer.status_code == 200


_APPS: dict[str, object] = {}


def _fuzz_app(factory: pytest.TempPathFactory) -> object:
    if "app" not in _APPS:
        _APPS["app"] = make_app(factory.mktemp("fuzz") / "receipts.db")
    return _APPS["app"]


# -- HEAD, and what the logs show -----------------------------------------------------------


def test_head_never_stores_a_callback(quick: Receiver) -> None:
    answer = requests.head(quick.callback_url, params=STATUS, timeout=DEADLINE)
    assert answer.status_code == 200
    assert quick.store.counts() == {"status_updates": 0, "incoming_messages": 0}


@pytest.mark.parametrize(
    "line",
    [
        f"GET /callback?token={TOKEN}&mobile=919876543210 HTTP/1.1 junk",
        f"GET /callback?token={TOKEN} HTTP/9.9",
        f"GET /{TOKEN}/x?id=1 BOGUS/1.1",
        f"\x00\x01 /callback?token={TOKEN}",
    ],
)
def test_no_log_line_carries_the_token(
    quick: Receiver, caplog: pytest.LogCaptureFixture, line: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        with connect(quick.port) as sock:
            sock.sendall(line.encode("latin-1") + b"\r\nHost: x\r\n\r\n")
            data = read_all(sock)
        with connect(quick.port) as sock:  # and in a header line of a bad request
            sock.sendall(f"GET /callback HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n".encode())
            sock.sendall(b"Bad Header Without Colon\r\n" * 200 + b"\r\n")
            read_all(sock)
    assert data.startswith(b"HTTP/1.1 4")
    assert any(r.name.startswith("kwa_batch") for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert TOKEN not in text
        assert "919876543210" not in text


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("read_timeout", 0),
        ("read_timeout", -1),
        ("read_timeout", float("nan")),
        ("read_timeout", float("inf")),
        ("max_connections", 0),
        ("max_connections", True),
        ("max_connections", 1.5),
    ],
)
def test_bad_server_settings_are_refused(store_path: Path, setting: str, value: object) -> None:
    with pytest.raises(ValueError, match=setting):
        Receiver(store_path, **{setting: value})  # type: ignore[arg-type]
