"""Small real HTTP servers that answer as no API should: a byte every half second, an endless
list of slow pages, a body nested 200,000 levels deep. Each listens on 127.0.0.1 on a free
port, serves each connection on its own thread, and stops within its lifetime whatever the
client does."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: A one-template list as the catalogue API answers it, for the servers to serve.
LIST = json.dumps(
    {
        "data": [
            {
                "name": "hi",
                "language": "en",
                "status": "APPROVED",
                "components": [{"type": "BODY", "text": "Hi {{1}}"}],
            }
        ]
    }
).encode()

#: What a server does with one connection once the request's headers are read:
#: ``answer(connection, request bytes, stop event)``.
Answer = Callable[[socket.socket, bytes, threading.Event], None]


def response(body: bytes, status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer with a JSON body."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def whole(body: bytes) -> Answer:
    """Answer at once with ``body``."""

    def answer(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(response(body))

    return answer


def drip(
    body: bytes, *, at_once: int = 0, every: float = 0.5, log: list[str] | None = None
) -> Answer:
    """Answer ``body`` one byte every ``every`` seconds, after its first ``at_once`` bytes
    (0: from the status line; past the headers: the body only).

    ``log``, if given, records the exchange as the server saw it: ``"byte"`` for each byte
    dripped, then ``"whole"`` once the answer was sent to the end, or ``"stopped"`` when the
    server itself stopped (its block or lifetime ended) before that."""
    record = log if log is not None else []

    def answer(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        data = response(body)
        conn.sendall(data[:at_once])
        for byte in data[at_once:]:
            if stop.wait(every):
                record.append("stopped")
                return
            conn.sendall(bytes([byte]))
            record.append("byte")
        record.append("whole")

    return answer


def endless_pages(delay: float, served: list[int]) -> Answer:
    """Answer every page after ``delay`` seconds with one template and a ``paging.next`` to
    another page, for ever (each page quick, the list never ends)."""

    def answer(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        if stop.wait(delay):
            return
        served.append(1)
        host = request.split(b"\r\nHost: ", 1)[1].split(b"\r\n", 1)[0].decode()
        page = len(served)
        body = {
            "data": [
                {
                    "name": f"t{page}",
                    "language": "en",
                    "status": "APPROVED",
                    "components": [{"type": "BODY", "text": "Hi"}],
                }
            ],
            "paging": {"next": f"http://{host}/v2/page/{page}"},
        }
        conn.sendall(response(json.dumps(body).encode()))

    return answer


@contextmanager
def serving(
    answer: Answer, *, lifetime: float = 60.0, ended: list[str] | None = None
) -> Iterator[str]:
    """Serve ``answer`` on 127.0.0.1 (a free port); yields the base URL. Every thread ends
    when the block does, and within ``lifetime`` seconds in any case: ``ended``, if given,
    then gets ``"lifetime"`` (the server gave up on the client, not the client on it)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    ends = time.monotonic() + lifetime

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                answer(conn, request, stop)
            except OSError:  # the client gave up (what the tests want): nothing to do
                return

    def accept() -> None:
        while not stop.is_set() and time.monotonic() < ends:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=one, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()
        if not stop.is_set() and ended is not None:
            ended.append("lifetime")
        stop.set()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join(5)
        for thread in threads:
            thread.join(5)
        server.close()
