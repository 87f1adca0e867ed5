"""Several receiver processes behind one port: the callback receiver under gunicorn.

One process with a SQLite store takes about 600 callbacks a second; one upgraded number
sends about three callbacks per message at up to 1,000 messages a second. Past one
process, the store is a PostgreSQL database (SQLite has one writer at a time) and
:class:`ReceiverWorkers` serves :class:`~kwa_batch.receipts.receiver.CallbackApp` from
``workers`` gunicorn processes sharing one listening socket (``kwa-batch receive --store
postgresql://… --workers N``). Each worker opens its own connection to the database after
it starts; a callback is stored once whichever worker, on whichever machine, takes it.

The socket is bound before gunicorn starts (a port in use is one clear error, and port 0
picks a free one), then handed to gunicorn. Its workers are threaded (``gthread``: idle
keep-alive connections hold no thread). ``SIGTERM`` and ``SIGINT`` stop gracefully: the
socket closes, each worker finishes the requests it holds (up to
:data:`GRACEFUL_TIMEOUT_S`), then the master returns; no worker outlives it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from typing import Any, Self

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.gthread import ThreadWorker

from ..database import is_database_url
from .receiver import MAX_BODY, CallbackApp, callback_url_of
from .store import CallbackStore, store_name

__all__ = ["GRACEFUL_TIMEOUT_S", "ReceiverWorkers"]

log = logging.getLogger(__name__)

#: Seconds a worker has to finish its requests once asked to stop.
GRACEFUL_TIMEOUT_S = 10
#: Seconds an idle keep-alive connection is kept open.
KEEP_ALIVE_S = 5
_STATS = ("stored", "repeated", "refused")


class _GracefulWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker, with ``SIGINT`` (a Ctrl-C reaches the whole process
    group) as graceful as ``SIGTERM``: the requests in hand are answered."""

    def init_signals(self) -> None:
        super().init_signals()
        signal.signal(signal.SIGINT, self.handle_exit)


class _Arbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, with ``SIGINT`` stopping gracefully as ``SIGTERM`` does."""

    def handle_int(self) -> None:
        self.handle_term()


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], make_app: Callable[[], CallbackApp]) -> None:
        self._options = options
        self._make_app = make_app
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> CallbackApp:
        return self._make_app()  # in each worker, after it started: its own connection

    def run(self) -> None:
        _Arbiter(self).run()


class ReceiverWorkers:
    """The callback receiver in ``workers`` processes behind one ``host:port``.

    Args:
        store: the database's URL (``postgresql://…``), where every worker writes.
        host: the address to listen on.
        port: the port; 0 picks a free one when :meth:`bind` is called.
        workers: how many processes (2 or more; one process is
            :class:`~kwa_batch.receipts.receiver.Receiver`).
        threads: connections each process serves at once.
        token: when set, callbacks must carry it.
        max_body: bytes accepted in a callback's body.

    Example:
        >>> served = ReceiverWorkers("postgresql://kwa@db/campaigns", workers=4)  # doctest: +SKIP
        >>> served.bind().serve(lambda: print(served.callback_url))  # doctest: +SKIP
    """

    def __init__(
        self,
        store: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 2,
        threads: int = 4,
        token: str | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        if not is_database_url(store):
            raise ValueError(
                f"{store}: several receiver processes need a PostgreSQL store (a "
                "postgresql:// URL): SQLite has one writer at a time"
            )
        if workers < 2:
            raise ValueError(f"workers must be 2 or more, not {workers!r} (1: use Receiver)")
        if threads < 1:
            raise ValueError(f"threads must be 1 or more, not {threads!r}")
        CallbackApp(store, token=token, max_body=max_body)  # the same checks, at once
        self.store = store
        self.host = host
        self.workers = workers
        self.threads = threads
        self._token = token
        self._max_body = max_body
        self._port = port
        self._socket: socket.socket | None = None
        self._stats = multiprocessing.get_context("fork").Array("q", len(_STATS))

    def __repr__(self) -> str:
        token = "<hidden>" if self._token is not None else None
        shown = store_name(self.store)
        return (
            f"ReceiverWorkers({self.url}, store={shown!r}, workers={self.workers}, token={token})"
        )

    @property
    def port(self) -> int:
        """The port (the one picked, once bound with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def callback_url(self) -> str:
        """The URL to give Kaleyra as ``callback_url`` (it holds the token, if any)."""
        return callback_url_of(self.url, self._token)

    @property
    def stats(self) -> dict[str, int]:
        """Callbacks stored, repeated and refused by the workers that have stopped."""
        with self._stats.get_lock():
            return dict(zip(_STATS, (int(n) for n in self._stats[:]), strict=True))

    def bind(self) -> Self:
        """Open the store (creating its tables: a bad URL fails here), then bind the port.

        Raises:
            DatabaseError: the database cannot be used.
            OSError: the port cannot be bound.
        """
        CallbackStore(self.store).open().close()  # closed before the workers fork
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self._port, type=socket.SOCK_STREAM
        )[0]
        listening = socket.socket(family, kind, proto)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind(address)
            listening.listen(2048)
        except OSError:
            listening.close()
            raise
        listening.set_inheritable(True)
        self._socket = listening
        self._port = int(listening.getsockname()[1])
        return self

    def serve(self, ready: Callable[[], None] = lambda: None) -> None:
        """Serve from the workers until ``SIGTERM`` or ``SIGINT``; call ``ready`` once the
        master has started (connections made meanwhile wait in the socket's queue).

        Raises:
            RuntimeError: :meth:`bind` was not called.
        """
        if self._socket is None:
            raise RuntimeError("call bind() first")
        options = {
            "bind": [f"fd://{self._socket.fileno()}"],
            "workers": self.workers,
            "worker_class": _GracefulWorker,
            "threads": self.threads,
            "keepalive": KEEP_ALIVE_S,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "timeout": 30,
            "loglevel": "warning",
            "accesslog": None,
            "proc_name": "kwa-batch receive",
            "when_ready": lambda _arbiter: ready(),
            "worker_exit": self._worker_exit,
        }
        store, token, max_body = self.store, self._token, self._max_body
        application = _Application(
            options, lambda: CallbackApp(store, token=token, max_body=max_body)
        )
        master = os.getpid()
        self._socket.detach()  # gunicorn's now: it closes it when it stops
        self._socket = None
        try:
            application.run()
        except SystemExit as stopped:
            # The master ends with sys.exit; so does each worker, forked inside run():
            # a worker must end there, never return to the caller.
            if os.getpid() != master or stopped.code not in (0, None):
                raise

    def _worker_exit(self, _arbiter: Any, worker: Any) -> None:
        """In a worker that stops: add its counts to the master's, close its store."""
        app = getattr(worker, "wsgi", None)
        if not isinstance(app, CallbackApp):
            return
        counts = app.stats
        with self._stats.get_lock():
            for i, name in enumerate(_STATS):
                self._stats[i] += counts[name]
        app.store.close()
        log.debug("receiver worker %s stopped: %s", os.getpid(), counts)
