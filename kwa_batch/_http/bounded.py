"""HTTP answers within bounds: whole before one overall deadline, no larger than a cap, and
JSON no deeper than a limit.

requests' ``timeout`` bounds each wait for the next bytes, not the answer: a server that
sends one byte every half second (a "slow drip") keeps a read going for as long as it likes,
through the status line, the headers or the body. :class:`BoundedSession` is a
``requests.Session`` whose answers must arrive whole before one deadline, counted from the
moment the session is made and shared by every request it sends (every page of a list).
At the deadline a watchdog shuts the connection's socket down, so that a read blocked on a
drip (or a TLS handshake) returns at once; the caller gets one
:class:`~kwa_batch.errors.AmbiguousSendError` (code ``TIMEOUT``) that says so.

Each answer is also read in full within ``max_bytes`` (and all of the session's answers
within ``max_total_bytes``), and one that is JSON may nest at most ``max_depth`` levels:
Python's parser gives up on ``[[[[…`` with a ``RecursionError``, not a ``ValueError``
(:func:`json_depth` measures it without parsing). Both are an
:class:`~kwa_batch.errors.InvalidResponseError` (code ``BADRESPONSE``).

Redirects are never followed (an API answer is not a redirect, and the key would follow it).

Example:
    >>> from kwa_batch.sending.client import KaleyraClient
    >>> client = KaleyraClient("HX1", "key", session_factory=lambda: BoundedSession(deadline=60))
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import AmbiguousSendError, Code, InvalidResponseError

__all__ = [
    "DEFAULT_DEADLINE",
    "MAX_ANSWER_BYTES",
    "MAX_JSON_DEPTH",
    "BoundedSession",
    "json_depth",
]

#: Seconds a session's requests may take in all, by default.
DEFAULT_DEADLINE = 60.0
#: The largest answer read, by default.
MAX_ANSWER_BYTES = 32 * 2**20
#: The deepest JSON read: WhatsApp's template list nests 7 levels, Kaleyra's answers fewer.
MAX_JSON_DEPTH = 64

# A JSON string (the unrolled form of "(?:[^"\\]|\\.)*": linear, and fast).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENING = np.array([ord("["), ord("{")], dtype=np.uint8)
_CLOSING = np.array([ord("]"), ord("}")], dtype=np.uint8)
_CHUNK = 64 * 1024


def json_depth(text: str | bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (0 for a scalar), brackets
    inside strings not counted; linear in time, whatever the text holds.

    Bytes are decoded as :func:`json.loads` would (UTF-8, 16 or 32, by their first bytes).

    >>> json_depth('{"data": [{"name": "a[b"}]}'), json_depth("[" * 5), json_depth("3")
    (3, 5, 0)
    """
    if isinstance(text, bytes):
        text = text.decode(json.detect_encoding(text), "replace")
    if "[" not in text and "{" not in text:
        return 0
    structure = _STRING.sub("", text).encode("utf-8", "replace")
    codes = np.frombuffer(structure, dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int8) - np.isin(codes, _CLOSING).astype(np.int8)
    steps = steps[steps != 0]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0)) if steps.size else 0


# -- the watchdog ---------------------------------------------------------------------------


class _Watch:
    """The sockets of one request, shut down when its deadline passes (a duplicate of each
    descriptor is kept, so that the socket is found even inside a TLS handshake)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._descriptors: list[int] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        try:
            descriptor = os.dup(sock.fileno())
        except OSError:
            return
        with self._lock:
            self._descriptors.append(descriptor)
            if self.expired:
                _shut(descriptor)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for descriptor in self._descriptors:
                _shut(descriptor)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            descriptors, self._descriptors = self._descriptors, []
        for descriptor in descriptors:
            os.close(descriptor)


def _shut(descriptor: int) -> None:
    """Shut a socket down for reading and writing: a read blocked on it returns at once."""
    try:
        sock = socket.socket(fileno=descriptor)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the other side
    finally:
        sock.detach()  # the descriptor is closed by _Watch.close


_current = threading.local()


def _watch_socket(sock: socket.socket | None) -> None:
    watch: _Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_socket(sock)
        return sock

    def getresponse(self) -> Any:  # a connection kept alive from an earlier request
        _watch_socket(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_socket(sock)
        return sock

    def getresponse(self) -> Any:
        _watch_socket(self.sock)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


# -- the session ----------------------------------------------------------------------------


class BoundedSession(requests.Session):
    """A ``requests.Session`` whose answers arrive whole, before one overall deadline, within
    a size cap and a JSON depth (see the module's docstring).

    Args:
        deadline: seconds every request of this session may take in all, counted from now.
        max_bytes: the largest answer (after decompression).
        max_total_bytes: the most all of its answers may hold together (None: no cap).
        max_depth: the deepest JSON answer.

    Raises (from its requests):
        AmbiguousSendError: the deadline passed before the answer was whole (code TIMEOUT).
        InvalidResponseError: an answer over a cap, or JSON nested too deeply (BADRESPONSE).
    """

    def __init__(
        self,
        *,
        deadline: float = DEFAULT_DEADLINE,
        max_bytes: int = MAX_ANSWER_BYTES,
        max_total_bytes: int | None = None,
        max_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        super().__init__()
        if not deadline > 0:
            raise ValueError(f"deadline must be a number of seconds above 0, not {deadline!r}")
        self.deadline = float(deadline)
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.max_depth = max_depth
        self.ends_at = time.monotonic() + self.deadline
        self.received = 0

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Send ``request`` and read its answer whole, within the bounds."""
        remaining = self.ends_at - time.monotonic()
        if remaining <= 0:
            raise self._late(request.url)
        adapter = self.get_adapter(request.url)
        if isinstance(adapter, HTTPAdapter):  # pools made from now on watch their sockets
            adapter.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS
        kwargs["stream"] = True
        kwargs["allow_redirects"] = False
        kwargs["timeout"] = _within(kwargs.get("timeout"), remaining)
        watch = _Watch(remaining)
        outer = getattr(_current, "watch", None)
        _current.watch = watch
        try:
            response = super().send(request, **kwargs)
            try:
                body = self._read(response)
            finally:
                response.close()
        except requests.exceptions.RequestException:
            if watch.expired or time.monotonic() >= self.ends_at - 0.01:
                raise self._late(request.url) from None
            raise
        finally:
            _current.watch = outer
            watch.close()
        response._content = body  # what requests' own reading leaves (the body is read)
        depth = json_depth(body)
        if depth > self.max_depth:
            raise InvalidResponseError(
                f"the answer from {_origin(request.url)} nests {depth:,} levels deep, more "
                f"than the {self.max_depth} any answer of the API has: it cannot be read",
                code=Code.BADRESPONSE,
                http_status=response.status_code,
            )
        return response

    def _read(self, response: Any) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._large(response, int(declared))
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise self._large(response, size)
            if self.max_total_bytes is not None and self.received + size > self.max_total_bytes:
                raise InvalidResponseError(
                    f"the answers from {_origin(response.url)} pass "
                    f"{_mib(self.max_total_bytes)} in all: stopped reading",
                    code=Code.BADRESPONSE,
                    http_status=response.status_code,
                )
            if time.monotonic() >= self.ends_at:
                raise self._late(response.url)
            chunks.append(chunk)
        self.received += size
        return b"".join(chunks)

    def _large(self, response: Any, size: int) -> InvalidResponseError:
        return InvalidResponseError(
            f"the answer from {_origin(response.url)} is over {_mib(self.max_bytes)} "
            f"({size:,} bytes so far): stopped reading",
            code=Code.BADRESPONSE,
            http_status=response.status_code,
        )

    def _late(self, url: str) -> AmbiguousSendError:
        return AmbiguousSendError(
            f"{_origin(url)} gave no complete answer within the overall deadline of "
            f"{self.deadline:g} s: try again later, or allow longer with deadline= (--deadline)",
            code=Code.TIMEOUT,
        )


def _within(timeout: Any, remaining: float) -> Any:
    """requests' ``timeout`` with no wait longer than the time left."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    elif timeout is None or isinstance(timeout, int | float):
        connect = read = timeout
    else:  # an urllib3 Timeout: left as given (the watchdog still ends the request)
        return timeout
    return (
        remaining if connect is None else min(connect, remaining),
        remaining if read is None else min(read, remaining),
    )


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the server"


def _mib(count: int) -> str:
    return f"{count / 2**20:g} MiB"
