"""The open connections of one HTTP server: their deadlines, the cap, and whom to drop.

:class:`Connections` is the book :class:`kwa_batch._http.serving.ThreadedServer` keeps so that
idle or slow clients cannot starve real ones (see :mod:`kwa_batch._http.serving` for the rules).
A connection is *waiting* (for its next request line), *reading* (the headers and body of
a request) or *busy* (the application is answering). Waiting and reading connections have
a deadline; busy ones have none. Dropping a connection shuts down its reading side: the
thread serving it sees the end of the stream at once, answers 408 or 503 when a request
was under way, and closes it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

__all__ = ["EVICTED", "TIMED_OUT", "Connections", "default_max_connections"]

log = logging.getLogger(__name__)

#: Why a connection was dropped: too slow, or closed to make room for a new one.
TIMED_OUT = "read timeout"
EVICTED = "closed to make room"
# The most connections (threads) a server opens by default, however many descriptors.
_DEFAULT_CAP = 1000
# A warning about dropped connections at most this often (an attack would flood the log).
_WARN_EVERY = 10.0
_WAITING, _READING, _BUSY = "waiting", "reading", "busy"


def default_max_connections() -> int:
    """Half the file descriptors this process has free now, at most 1,000 (at least 1).

    Half, so that two servers in one process (an emulator posting to a receiver) and the
    files and sockets the application opens still fit.
    """
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return _DEFAULT_CAP
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return _DEFAULT_CAP
    return max(1, min(_DEFAULT_CAP, (soft - _open_descriptors()) // 2))


def _open_descriptors() -> int:
    for folder in ("/proc/self/fd", "/dev/fd"):
        with suppress(OSError):
            return len(os.listdir(folder))
    return 0


@dataclass
class _State:
    phase: str
    since: float  # time.monotonic() when the phase began
    deadline: float | None
    dropped: str | None = None


class Connections:
    """Open connections, their deadlines and the cap (thread-safe).

    Args:
        limit: the most connections open at once.
        timeout: seconds for a request line, then for the rest of the request.
        debug: where to write a debug line (the server's redacting logger).
    """

    def __init__(self, limit: int, timeout: float, debug: Callable[..., None]) -> None:
        self.limit = limit
        self.timeout = timeout
        self._debug = debug
        self._open: dict[socket.socket, _State] = {}
        self._lock = threading.Lock()
        self._dropped_since_warning = 0
        self._last_warning = -_WARN_EVERY

    @property
    def count(self) -> int:
        """Connections open and not being dropped."""
        with self._lock:
            return sum(1 for state in self._open.values() if state.dropped is None)

    def admit(self, sock: socket.socket) -> bool:
        """Register a new connection; at the cap, drop the one idle longest to make room.

        Returns False when every open connection is busy with a request: the caller
        refuses the new one (503).
        """
        now = time.monotonic()
        with self._lock:
            live = sum(1 for state in self._open.values() if state.dropped is None)
            if live >= self.limit and not self._drop_idlest(now):
                self._note_dropped(now, f"at the cap of {self.limit} connections, all busy")
                return False
            self._open[sock] = _State(_WAITING, now, now + self.timeout)
        return True

    def waiting(self, sock: socket.socket) -> None:
        """``sock`` waits for its next request line: a fresh deadline."""
        self._enter(sock, _WAITING)

    def reading(self, sock: socket.socket) -> None:
        """The request line came: the headers and the body get a deadline of their own."""
        self._enter(sock, _READING)

    def busy(self, sock: socket.socket) -> str | None:
        """The request is read: no deadline while the application answers.

        Returns why the connection was dropped while it was read, if it was.
        """
        self._enter(sock, _BUSY)
        return self.dropped(sock)

    def dropped(self, sock: socket.socket) -> str | None:
        """Why ``sock`` was dropped (:data:`TIMED_OUT`, :data:`EVICTED`), or None."""
        with self._lock:
            state = self._open.get(sock)
            return state.dropped if state is not None else None

    def _enter(self, sock: socket.socket, phase: str) -> None:
        now = time.monotonic()
        with self._lock:
            state = self._open.get(sock)
            if state is None or state.dropped is not None:
                return
            state.phase, state.since = phase, now
            state.deadline = None if phase == _BUSY else now + self.timeout

    def forget(self, sock: socket.socket) -> None:
        """``sock`` is closed (or about to be)."""
        with self._lock:
            self._open.pop(sock, None)

    def reap(self) -> None:
        """Drop every connection past its deadline."""
        now = time.monotonic()
        with self._lock:
            overdue = [
                (sock, state)
                for sock, state in self._open.items()
                if state.dropped is None and state.deadline is not None and state.deadline <= now
            ]
            for sock, state in overdue:
                self._drop(sock, state, TIMED_OUT)
        for _sock, state in overdue:
            self._debug(
                "info", "dropped a connection %s after %.1f s", state.phase, now - state.since
            )

    def out_of_descriptors(self, exc: OSError) -> None:
        """``accept()`` failed: when for want of descriptors, drop the idlest connection.

        Sleeps a moment when nothing could be dropped, so that the accept loop does not
        spin on a listening socket it cannot serve.
        """
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            return
        now = time.monotonic()
        with self._lock:
            made_room = self._drop_idlest(now)
            self._note_dropped(now, "out of file descriptors")
        if not made_room:
            time.sleep(0.01)

    def shutdown_all(self) -> None:
        """Shut every connection down (the server stops)."""
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _drop_idlest(self, now: float) -> bool:
        """Drop the connection waiting longest, else the one reading longest (lock held)."""
        candidates = [
            (state.phase != _WAITING, state.since, id(sock), sock, state)
            for sock, state in self._open.items()
            if state.dropped is None and state.phase != _BUSY
        ]
        if not candidates:
            return False
        *_, sock, state = min(candidates, key=lambda c: c[:3])
        self._drop(sock, state, EVICTED)
        self._note_dropped(now, f"at the cap of {self.limit} connections")
        return True

    @staticmethod
    def _drop(sock: socket.socket, state: _State, reason: str) -> None:
        state.dropped = reason
        state.deadline = None
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RD)

    def _note_dropped(self, now: float, why: str) -> None:
        """Count a dropped or refused connection; warn at most every few seconds (lock held)."""
        self._dropped_since_warning += 1
        if now - self._last_warning >= _WARN_EVERY:
            log.warning(
                "%s: %d connection(s) closed or refused to serve new clients "
                "(idle clients are dropped first)",
                why,
                self._dropped_since_warning,
            )
            self._dropped_since_warning = 0
            self._last_warning = now

    def __repr__(self) -> str:
        return f"Connections(open={self.count}, limit={self.limit}, timeout={self.timeout})"
