"""A WSGI application served from a background thread on a local port, with real keep-alive.

Used by the emulator and by the callback receiver. :class:`BackgroundServer` binds the
socket (port 0 picks a free one), serves from a daemon thread, and stops cleanly: it shuts
down kept-alive connections too, whose threads would otherwise keep serving.

Werkzeug's threaded server runs one thread per connection. Werkzeug 3 forces
``Connection: close`` on every answer (and reads for 10 ms after each one to drain the
socket), so :class:`KeepAliveHandler` replaces its ``run_wsgi`` with one that reads exactly
the request body, answers with ``Content-Length`` in a single write, and keeps the
connection open. Werkzeug's access log is silenced: it would print phone numbers and
secrets passed in query strings; every other log line goes through :func:`redact`.

Idle, slow and hostile clients (:mod:`kwa_batch._http.connections` keeps the books):

* **Read timeout.** A connection waiting for a request gets ``read_timeout`` seconds for
  its request line, then ``read_timeout`` more for its headers and body; a kept-alive
  connection waiting for its next request too. Past it, an idle connection is closed
  without an answer, one caught mid-request gets ``408``. The application's own time
  (the emulator's latency) does not count.
* **Connection cap.** At most ``max_connections`` connections are open (by default half
  the file descriptors still free at start, at most 1,000). A new connection at the cap,
  or when the process is out of descriptors, **closes the connection idle longest** (one
  waiting for a request; failing that, the one slowest to send its request, which gets
  ``503``); when every connection is busy with a request, the new one gets ``503`` with
  ``Retry-After: 1`` at once. Real clients are never starved by idle ones.
* **Bodies** are read by the server before the application runs: ``Content-Length`` or
  ``Transfer-Encoding: chunked``, the latter decoded by
  :func:`kwa_batch._http.chunked.read_chunked`.
  A chunked body is capped like a declared one: past ``max_body`` bytes the application
  is handed ``max_body + 1`` bytes (its own size check answers 413) and the connection is
  closed. A malformed chunked body, another transfer coding, or a bad ``Content-Length``
  gets ``400`` at once.

An application may drop a connection without answering (TCP RST), as the emulator's
``"reset"`` fault does: when ``environ[CAN_ABORT]`` is true it sets ``environ[ABORT] =
True`` and returns no body.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import struct
import threading
import traceback
from collections.abc import Callable, Iterable
from contextlib import suppress
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, Self, cast
from urllib.parse import quote, quote_plus

from werkzeug.http import parse_set_header
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

from .chunked import BadChunkedBody, read_chunked
from .connections import TIMED_OUT, Connections, default_max_connections

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "ABORT",
    "CAN_ABORT",
    "DEFAULT_MAX_BODY",
    "DEFAULT_READ_TIMEOUT",
    "BackgroundServer",
    "KeepAliveHandler",
    "Served",
    "ThreadedServer",
    "json_refusal",
    "redact",
]

log = logging.getLogger(__name__)

#: WSGI environ key set to True when the server can drop a connection on request.
CAN_ABORT = "kwa_batch._http.serving.can_abort"
#: WSGI environ key an application sets to True to drop the connection without an answer.
ABORT = "kwa_batch._http.serving.abort"
#: Seconds a client has to send its request line, and then the rest of its request.
DEFAULT_READ_TIMEOUT = 10.0
#: Bytes of a chunked body the server reads before handing it over as too large.
DEFAULT_MAX_BODY = 1024 * 1024
# How often the background server checks for stop() and for overdue connections.
_POLL_INTERVAL = 0.05
# A request body left unread by the application is drained up to this many bytes to keep
# the connection; beyond it the connection is closed instead.
_DRAIN_LIMIT = 64 * 1024
_DEFAULT_ERROR_BODY = json.dumps({"error": "internal server error"}).encode()

# What a log line must not carry: query strings (tokens, phone numbers), key=value secrets
# and bearer credentials. Linear patterns only (no nested repetition).
_QUERY = re.compile(r"\?[^\s'\"]*")
_SECRET_PAIR = re.compile(
    r"(?i)\b(token|api[-_]?key|apikey|secret|password|authorization|x-kwa-token)([=:]\s*)"
    r"[^\s&'\",;]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\",;]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` fit for a log: without query strings, ``token=``-like values or ``secrets``.

    >>> redact("Bad request syntax ('GET /callback?token=s3cret&id=1 HTTP/1.1 x')")
    "Bad request syntax ('GET /callback?<query hidden> HTTP/1.1 x')"
    >>> redact("api-key: abc123, ok")
    'api-key: <hidden>, ok'
    """
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "<hidden>")
    text = _QUERY.sub("?<query hidden>", text)
    text = _SECRET_PAIR.sub(r"\1\2<hidden>", text)
    return _BEARER.sub(r"\1 <hidden>", text)


def json_refusal(status: int, reason: str) -> bytes:
    """The body of an answer the server gives on its own: ``{"error": reason}``."""
    return json.dumps({"error": reason}).encode()


class _Refused(Exception):
    """A request the server answers itself (400, 408, 413...), closing the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class KeepAliveHandler(WSGIRequestHandler):
    """Werkzeug's handler with real keep-alive, one write per answer, and no access log."""

    protocol_version = "HTTP/1.1"
    server: ThreadedServer

    def setup(self) -> None:
        super().setup()
        # A bound on every send and receive (a client that stops reading its answer); the
        # request deadlines themselves are kept by the server, to the 50 ms.
        self.connection.settimeout(2 * self.server.read_timeout)
        # Answers are one write; without this Nagle's algorithm can hold it back.
        with suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        self.server.connections.waiting(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        # The request line came: the headers and the body get a deadline of their own.
        self.server.connections.reading(self.connection)
        return super().parse_request()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Do nothing: the access log would print phone numbers on every request."""

    def log(self, type: str, message: str, *args: Any) -> None:
        self.server.log(type, message, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer an unreadable request (bad request line, headers...) in JSON and close.

        Always a 4xx: http.server's 505 for an unknown HTTP version becomes 400 (what the
        client sent is at fault, and a 5xx would read as a server failure).
        """
        self.log_error("code %d, message %s", code, message)
        code = code if code < 500 else 400
        self._answer_and_close(code, redact(message or _phrase(code), self.server.secrets))

    def _answer_and_close(self, code: int, reason: str, *headers: tuple[str, str]) -> None:
        self.close_connection = True
        body = self.server.refusal(code, reason)
        lines = [
            f"HTTP/1.1 {code} {_phrase(code)}\r\n",
            f"Server: {self.version_string()}\r\n",
            f"Date: {self.date_time_string()}\r\n",
            "Content-Type: application/json\r\n",
            f"Content-Length: {len(body)}\r\n",
            *(f"{name}: {value}\r\n" for name, value in headers),
            "Connection: close\r\n\r\n",
        ]
        with suppress(OSError):
            head = "".join(lines).encode("latin-1")
            self.wfile.write(head if getattr(self, "command", None) == "HEAD" else head + body)

    def run_wsgi(self) -> None:
        # "Expect: 100-continue" was answered by http.server's parse_request already.
        environ = self.environ = self.make_environ()
        refused: _Refused | None = None
        stream: LimitedStream | None = None
        try:
            stream = self._read_body(environ)
        except _Refused as exc:
            refused = exc
        dropped = self.server.connections.busy(self.connection)
        if dropped is not None:  # too slow, or closed to make room, in mid-request
            status = 408 if dropped == TIMED_OUT else 503
            refused = _Refused(status, f"the request was not read in time ({dropped})")
        if refused is not None:
            self.log_error("refused a request: %s", refused.reason)
            self._answer_and_close(refused.status, refused.reason)
            return
        self._run_app(environ, stream)

    def _read_body(self, environ: dict[str, Any]) -> LimitedStream | None:
        """Read the body into ``wsgi.input``; a declared one over ``max_body`` stays a stream.

        Returns the stream left on the socket, to drain after the answer (None: read all).
        """
        max_body = self.server.max_body
        lengths = set(self.headers.get_all("Content-Length") or [])
        if len(lengths) > 1:
            raise _Refused(400, "conflicting Content-Length headers")
        coding_text = ", ".join(self.headers.get_all("Transfer-Encoding") or [])
        codings = [c.lower() for c in parse_set_header(coding_text)]
        if codings:
            if codings != ["chunked"]:
                raise _Refused(400, "unsupported Transfer-Encoding: send chunked or Content-Length")
            if lengths:  # both: chunked wins, and the connection closes (RFC 9112, 6.3)
                self.close_connection = True
            try:
                data, complete = read_chunked(cast("IO[bytes]", self.rfile), max_body)
            except BadChunkedBody as exc:
                raise _Refused(400, f"malformed chunked body: {exc}") from None
            if not complete:
                self.close_connection = True  # the rest of the body is still on the socket
            self._hand_over(environ, data)
            return None
        length = _content_length(next(iter(lengths), None))
        if length is None:
            raise _Refused(400, "bad Content-Length: a number of bytes is expected")
        if length > max_body:  # the application refuses it unread (its limit is lower)
            stream = LimitedStream(cast("IO[bytes]", self.rfile), length)
            environ["wsgi.input"] = stream
            environ["wsgi.input_terminated"] = True
            return stream
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            raise _Refused(400, f"the body ended after {len(data)} of {length} bytes")
        self._hand_over(environ, data)
        return None

    @staticmethod
    def _hand_over(environ: dict[str, Any], data: bytes) -> None:
        environ["wsgi.input"] = io.BytesIO(data)
        environ["wsgi.input_terminated"] = True
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)

    def _run_app(self, environ: dict[str, Any], stream: LimitedStream | None) -> None:
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
            self.server.log("error", "the application failed on a request:\n%s", _traceback())
            status = "500 Internal Server Error"
            body = self.server.error_body
            headers = [("Content-Type", "application/json")]
            self.close_connection = True

        if environ.get(ABORT):
            self._abort()
            return
        if not self._drained(stream):
            self.close_connection = True
        self._write_answer(status, headers, body)

    def _write_answer(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
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
    def _drained(stream: LimitedStream | None) -> bool:
        """Consume what the application left of the body, so the next request starts clean."""
        if stream is None:
            return True
        try:
            if stream.limit - stream.tell() > _DRAIN_LIMIT:
                return False
            stream.exhaust()
        except OSError:
            return False
        return True


def _content_length(text: str | None) -> int | None:
    """The declared body length (0 when absent), or None when it is not a byte count."""
    if text is None:
        return 0
    value = text.strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _traceback() -> str:
    return traceback.format_exc(limit=20)


def _no_write(data: bytes) -> None:
    raise RuntimeError("this handler does not support the WSGI write() callable")


class ThreadedServer(ThreadedWSGIServer):
    """Werkzeug's threaded server on a socket we bound, guarding its connections.

    Args:
        sock: the bound, listening socket (the server serves a duplicate of it).
        app: the WSGI application.
        error_body: the JSON body answered with HTTP 500 when ``app`` raises.
        refusal: builds the body of the answers the server gives itself (400, 408, 503...).
        max_body: bytes of a body read before it is handed over as too large.
        read_timeout: seconds for a request line, then for the rest of the request.
        max_connections: connections open at once (see the module docs for what happens
            at the cap).
        secrets: strings never written to a log line (the emulator's key, a token).
    """

    def __init__(
        self,
        sock: socket.socket,
        app: Any,
        *,
        error_body: bytes = _DEFAULT_ERROR_BODY,
        refusal: Callable[[int, str], bytes] = json_refusal,
        max_body: int = DEFAULT_MAX_BODY,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_connections: int = 1000,
        secrets: Iterable[str] = (),
    ) -> None:
        self.error_body = error_body
        self.refusal = refusal
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.secrets = tuple(s for s in secrets if s)
        self.connections = Connections(max_connections, read_timeout, self.log)
        self._aborted: set[socket.socket] = set()
        self._aborted_lock = threading.Lock()
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, handler=KeepAliveHandler, fd=sock.fileno())

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            self.connections.out_of_descriptors(exc)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request):
            self._refuse_busy(request)
            return
        super().process_request(request, client_address)

    def _refuse_busy(self, request: socket.socket) -> None:
        """Answer 503 from the accepting thread (a few bytes to a fresh socket) and close."""
        body = self.refusal(503, "every connection is busy: retry in a second")
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        with suppress(OSError):
            request.settimeout(1.0)
            request.sendall(head.encode("latin-1") + body)
        self.close_request(request)

    def service_actions(self) -> None:
        """Called by ``serve_forever`` every poll: drop the connections past their deadline."""
        self.connections.reap()

    def abort_on_close(self, connection: socket.socket) -> None:
        """Close ``connection`` without shutting it down first (so linger 0 sends RST)."""
        with self._aborted_lock:
            self._aborted.add(connection)

    def shutdown_request(self, request: Any) -> None:
        self.connections.forget(request)
        if self._aborted:
            with self._aborted_lock:
                aborted = request in self._aborted
                self._aborted.discard(request)
            if aborted:
                self.close_request(request)  # no shutdown(SHUT_WR): it would send a FIN
                return
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down kept-alive connections, whose threads would otherwise keep serving."""
        self.connections.shutdown_all()

    def log(self, type: str, message: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            try:
                text = message % args if args else message
            except (TypeError, ValueError):
                text = f"{message} {args!r}"
            log.debug("http %s: %s", type, redact(text, self.secrets))

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.log("error", "error while serving a connection:\n%s", _traceback())


class BackgroundServer:
    """A :class:`ThreadedServer` for ``app`` on ``host:port``, served from a daemon thread.

    Args:
        app: the WSGI application.
        host: the address to listen on.
        port: the port; 0 picks a free one when the server starts.
        name: names the thread and the log lines (``"kwa-emulator"``...).
        error_body: the JSON body answered with HTTP 500 when ``app`` raises.
        refusal: builds the body of the answers the server gives itself, from the HTTP
            status and a reason (default: ``{"error": reason}``).
        max_body: bytes of a chunked body read before it is handed over as too large
            (set it to the application's own limit).
        read_timeout: seconds a client has for its request line, then for the rest of its
            request (see the module docs).
        max_connections: connections open at once; None: half the file descriptors free
            when the server starts, at most 1,000.
        secrets: strings that must never appear in a log line.

    Raises:
        ValueError: a ``read_timeout``, ``max_body`` or ``max_connections`` that is not
            positive.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str,
        port: int,
        name: str,
        error_body: bytes = _DEFAULT_ERROR_BODY,
        refusal: Callable[[int, str], bytes] = json_refusal,
        max_body: int = DEFAULT_MAX_BODY,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_connections: int | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        timeout = float(read_timeout)
        if not 0 < timeout < float("inf"):
            raise ValueError(
                f"read_timeout must be a number of seconds above 0, not {read_timeout!r}"
            )
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ValueError(f"max_body must be 1 byte or more, not {max_body!r}")
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be 1 or more (or None), not {max_connections!r}"
            )
        self.app = app
        self.host = host
        self._port = int(port)
        self.name = name
        self.error_body = error_body
        self.refusal = refusal
        self.max_body = max_body
        self.read_timeout = timeout
        self.max_connections = max_connections
        self._secrets = tuple(secrets)
        self._lock = threading.Lock()  # guards starting and stopping
        self._server: ThreadedServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"BackgroundServer({self.name!r}, host={self.host!r}, port={self.port})"

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

    @property
    def open_connections(self) -> int:
        """Connections open right now (0 when not running)."""
        server = self._server
        return server.connections.count if server is not None else 0

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
                server = ThreadedServer(
                    sock,
                    self.app,
                    error_body=self.error_body,
                    refusal=self.refusal,
                    max_body=self.max_body,
                    read_timeout=self.read_timeout,
                    max_connections=self.max_connections or default_max_connections(),
                    secrets=self._secrets,
                )
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
