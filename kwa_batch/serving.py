"""A WSGI application served from a background thread on a local port, with real keep-alive.

Used by the emulator and by the callback receiver. :class:`BackgroundServer` binds the
socket (port 0 picks a free one), serves from a daemon thread, and stops cleanly: it shuts
down kept-alive connections too, whose threads would otherwise keep serving.

Werkzeug's threaded server runs one thread per connection. Werkzeug 3 forces
``Connection: close`` on every answer (and reads for 10 ms after each one to drain the
socket), so :class:`KeepAliveHandler` replaces its ``run_wsgi`` with one that reads exactly
the request body, answers with ``Content-Length`` in a single write, and keeps the
connection open. Werkzeug's access log is silenced: it would print phone numbers and
secrets passed in query strings.

An application may drop a connection without answering (TCP RST), as the emulator's
``"reset"`` fault does: when ``environ[CAN_ABORT]`` is true it sets ``environ[ABORT] =
True`` and returns no body.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from contextlib import suppress
from typing import IO, TYPE_CHECKING, Any, Self, cast

from werkzeug.serving import DechunkedInput, ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "ABORT",
    "CAN_ABORT",
    "BackgroundServer",
    "KeepAliveHandler",
    "Served",
    "ThreadedServer",
]

log = logging.getLogger(__name__)

#: WSGI environ key set to True when the server can drop a connection on request.
CAN_ABORT = "kwa_batch.serving.can_abort"
#: WSGI environ key an application sets to True to drop the connection without an answer.
ABORT = "kwa_batch.serving.abort"
# How often the background server checks for stop(): the cost of stop() is up to this.
_POLL_INTERVAL = 0.05
# A request body left unread by the application is drained up to this many bytes to keep
# the connection; beyond it the connection is closed instead.
_DRAIN_LIMIT = 64 * 1024
_DEFAULT_ERROR_BODY = json.dumps({"error": "internal server error"}).encode()


class KeepAliveHandler(WSGIRequestHandler):
    """Werkzeug's handler with real keep-alive, one write per answer, and no access log."""

    protocol_version = "HTTP/1.1"
    server: ThreadedServer

    def setup(self) -> None:
        super().setup()
        # Answers are one write; without this Nagle's algorithm can hold it back.
        with suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Do nothing: the access log would print phone numbers on every request."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("http %s: " + message, type, *args)

    def run_wsgi(self) -> None:
        # "Expect: 100-continue" was answered by http.server's parse_request already.
        environ = self.environ = self.make_environ()

        stream: LimitedStream | DechunkedInput | None = None
        if "wsgi.input_terminated" in environ:  # chunked: werkzeug wrapped it already
            stream = environ["wsgi.input"]
        else:
            length_text = self.headers.get("Content-Length")
            try:
                length = int(length_text) if length_text is not None else 0
            except ValueError:
                length = -1
            if length < 0:
                self.send_error(400, "Bad Content-Length")
                return
            stream = LimitedStream(cast("IO[bytes]", self.rfile), length)
            environ["wsgi.input"] = stream
            environ["wsgi.input_terminated"] = True

        environ[CAN_ABORT] = True
        status = "500 Internal Server Error"
        headers: list[tuple[str, str]] = []

        def start_response(
            status_line: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal status, headers
            status, headers = status_line, list(response_headers)
            return _no_write

        try:
            chunks = self.server.app(environ, start_response)
            try:
                body = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("the application failed on a request")
            status = "500 Internal Server Error"
            body = self.server.error_body
            headers = [("Content-Type", "application/json")]
            self.close_connection = True

        if environ.get(ABORT):
            self._abort()
            return
        if not self._drained(stream):
            self.close_connection = True

        lines = [
            f"{self.protocol_version} {status}\r\n",
            f"Server: {self.version_string()}\r\n",
            f"Date: {self.date_time_string()}\r\n",
        ]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        if not any(name.lower() == "content-length" for name, _ in headers):
            lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _abort(self) -> None:
        """Drop the connection without an answer: RST (linger 0), not a graceful FIN."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.abort_on_close(self.connection)

    @staticmethod
    def _drained(stream: LimitedStream | DechunkedInput | None) -> bool:
        """Consume what the application left of the body, so the next request starts clean."""
        try:
            if isinstance(stream, LimitedStream):
                if stream.limit - stream.tell() > _DRAIN_LIMIT:
                    return False
                stream.exhaust()
                return True
            if isinstance(stream, DechunkedInput):
                drained = 0
                while drained <= _DRAIN_LIMIT:
                    chunk = stream.read(8192)
                    if not chunk:
                        return True
                    drained += len(chunk)
                return False
        except OSError:
            return False
        return True


def _no_write(data: bytes) -> None:
    raise RuntimeError("this handler does not support the WSGI write() callable")


class ThreadedServer(ThreadedWSGIServer):
    """Werkzeug's threaded server on a socket we bound, tracking open connections."""

    def __init__(
        self, sock: socket.socket, app: Any, *, error_body: bytes = _DEFAULT_ERROR_BODY
    ) -> None:
        self.error_body = error_body
        self._open: set[socket.socket] = set()
        self._aborted: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, handler=KeepAliveHandler, fd=sock.fileno())

    def track(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)

    def abort_on_close(self, connection: socket.socket) -> None:
        """Close ``connection`` without shutting it down first (so linger 0 sends RST)."""
        with self._open_lock:
            self._aborted.add(connection)

    def shutdown_request(self, request: Any) -> None:
        if self._aborted:
            with self._open_lock:
                aborted = request in self._aborted
                self._aborted.discard(request)
            if aborted:
                self.close_request(request)  # no shutdown(SHUT_WR): it would send a FIN
                return
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down kept-alive connections, whose threads would otherwise keep serving."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("http %s: " + message, type, *args)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving a connection", exc_info=True)


class BackgroundServer:
    """A :class:`ThreadedServer` for ``app`` on ``host:port``, served from a daemon thread.

    Args:
        app: the WSGI application.
        host: the address to listen on.
        port: the port; 0 picks a free one when the server starts.
        name: names the thread and the log lines (``"kwa-emulator"``...).
        error_body: the JSON body answered with HTTP 500 when ``app`` raises.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str,
        port: int,
        name: str,
        error_body: bytes = _DEFAULT_ERROR_BODY,
    ) -> None:
        self.app = app
        self.host = host
        self._port = int(port)
        self.name = name
        self.error_body = error_body
        self._lock = threading.Lock()  # guards starting and stopping
        self._server: ThreadedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port served (the one picked, once started with ``port=0``)."""
        server = self._server
        return int(server.port) if server is not None else self._port

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts in brackets).

        Raises:
            RuntimeError: the server was never started with port 0 (no port known yet).
        """
        port = self.port
        if port == 0:
            raise RuntimeError(f"the {self.name} is not started: call start() or use `with`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None

    def start(self) -> bool:
        """Bind and serve in a daemon thread; False when it was running already.

        Raises:
            OSError: the port cannot be bound (e.g. already in use).
        """
        with self._lock:
            if self._server is not None:
                return False
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.create_server((self.host, self._port), family=family, backlog=128)
            try:
                server = ThreadedServer(sock, self.app, error_body=self.error_body)
            finally:
                sock.close()  # the server holds its own duplicate
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"{self.name}-{server.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return True

    def stop(self) -> bool:
        """Stop serving, close kept-alive connections and join the thread.

        Returns False when it was not running (idempotent).
        """
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return False
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        return True

    def wait(self) -> None:
        """Block while the server runs (until :meth:`stop` from another thread).

        A ``KeyboardInterrupt`` propagates to the caller, who stops the server.
        """
        while (thread := self._thread) is not None and thread.is_alive():
            thread.join(0.5)


class Served:
    """What a server object built on a :class:`BackgroundServer` (held in ``_http``) shares:
    blocking service until Ctrl-C, and use as a context manager. Subclasses provide
    ``start()`` and ``stop()``, and name themselves in ``_kind`` for the log."""

    _http: BackgroundServer
    _kind = "server"

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (or :meth:`stop` from another thread), then stop cleanly.

        Starts the server if it is not running yet, so a CLI may call :meth:`start`, show
        its URL, and then call this to block.
        """
        self.start()
        try:
            self._http.wait()
        except KeyboardInterrupt:
            log.info("interrupted: stopping the %s", self._kind)
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
