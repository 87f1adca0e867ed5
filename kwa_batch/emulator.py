"""A local Kaleyra-compatible server: real HTTP on 127.0.0.1, playing the v1 WhatsApp endpoint.

:class:`Emulator` answers ``POST`` and ``GET /v1/<SID>/messages`` the way Kaleyra's API
document ("Send a Text Message through WhatsApp") describes, and keeps a ledger of every
message it accepted (:attr:`Emulator.messages`, a DataFrame). It is what a newcomer runs
first and what the benchmarks measure, so it checks requests on its own, from the
document: it never imports the client's validation (a bug on one side must not hide on
the other).

Example:
    >>> with Emulator() as emu:  # doctest: +SKIP
    ...     result = emu.client(sender="+911234567890").send_message(
    ...         "+919876543210", body="Hi, your order has been shipped"
    ...     )
    ...     emu.messages[["to", "type", "body"]]

What a request may look like
----------------------------
* ``POST`` with a ``multipart/form-data``, ``application/x-www-form-urlencoded`` or JSON
  body, or ``GET`` with the fields as query parameters. Query parameters are read for a
  ``POST`` too; a body field wins over a query parameter of the same name, and a field
  given twice counts with its last value.
* The body is parsed by what it *is*, not only by what ``Content-Type`` says: ``curl
  --form`` with an explicit ``--header 'Content-Type: application/json'`` (as the
  document's samples do) sends a multipart body under that header with ``; boundary=...``
  appended, so a ``boundary`` parameter, or a body that starts with ``--``, means
  multipart whatever the media type. A body that starts with ``{`` (or is declared JSON)
  is JSON: a JSON object whose values are strings, numbers, booleans or lists (joined with
  commas). Anything else is read as URL-encoded.
* The key comes in the ``api-key`` header or as an ``api-key`` field (production clients
  send it as a form field). A field that is empty or only white space counts as absent.
  Surrounding white space is ignored in the key, the numbers, ``channel`` and ``type``, so
  that a ``+`` that a query string decoded to a space (``to=+9198...``) does no harm;
  other fields (``body``, ``ref``...) are kept exactly as received.

Checks, in this order (the first failing stage answers; later stages are not run)
-------------------------------------------------------------------------------
1. Route: any other path answers 404 ``E404``; a method other than GET or POST on the
   endpoint answers 405 ``E405`` (with ``Allow: GET, POST``).
2. Authentication: an unknown SID in the path, then a missing or wrong key, answers 401
   ``E401``. The key is never echoed. (The body is read first, since the key may travel
   in it.)
3. Body: a declared-JSON body that is not valid JSON or not an object, a multipart body
   that cannot be parsed, or a body over 4 MiB answers 400 ``E400`` (HTTP 413 for the
   size).
4. HTML: a tag (``<b>``, ``</a >``, ``<img src=x>``...) in any field except ``body``
   answers 400 ``E413``, naming every such field.
5. ``to``: missing, more than 100 comma-joined recipients (400 ``E400``), or any number
   that is not plausible E.164 (400 ``E13009``, nothing is accepted). A number may come
   with or without ``+``; it must match ``\\+?[1-9]\\d{6,14}`` and be a *possible* number
   for its country code according to libphonenumber (length and country code, not full
   validity).
6. ``from``: missing or not plausible E.164 (one number, same rule) answers 400
   ``E13008``.
7. The rest, reported together as 400 ``E400`` with one entry per field:
   ``channel`` missing or not ``whatsapp`` (any case); ``type`` missing or other than
   ``text``/``template`` (any case); a text without ``body``; a ``body`` over 4,096
   characters (WhatsApp's limit, not in the document); a template without
   ``template_name``; a ``ref``, ``ref1`` or ``ref2`` over 255 characters.
   ``params``, ``lang_code``, ``callback_url``, ``source`` (e.g. ``sandbox``) and
   ``preview_url`` are accepted as given; unknown fields are ignored.

What it answers
---------------
Every answer is JSON (``Content-Type: application/json``). Success is HTTP 200 with the
document's shape, one ``data`` entry per recipient in the order given, ``recipient``
without ``+``::

    {"id": "<uuid4>", "type": "text", "body": "<body, or '' for a template>",
     "createdDateTime": "2020-01-29 06:22:21+00:00", "totalCount": 2,
     "data": [{"message_id": "<id>:0", "recipient": "919876543210"},
              {"message_id": "<id>:1", "recipient": "14155550123"}],
     "error": {}}

Kaleyra has not published the exact body of an error, and integrations show two shapes,
so every error carries both: a ``code`` and ``message`` (the document's description), and
an ``error`` object of ``{field: reason}``::

    HTTP 400 {"code": "E13009", "message": "Invalid or in-correct input of the TO number.",
              "error": {"to": "invalid number: 12345"}, "data": []}

Codes: ``E13009`` (to), ``E13008`` (from), ``E413`` (HTML tags), ``E400`` (any other bad
or missing field, too many recipients, unreadable body; HTTP 413 for an oversized body),
``E401`` (SID or key), ``E404`` (path), ``E405`` (method), ``E500`` (a bug in the
emulator itself).

Each accepted recipient becomes one ledger row (:attr:`Emulator.messages`); a refused
request adds nothing. :attr:`Emulator.requests_seen` counts every request to
``/v1/<any SID>/messages``, refused ones included. Every answer is delayed by ``latency``
seconds *after* the message is recorded, as a slow real server would: a client that
gives up waiting cannot know whether it was sent.

Serving
-------
Werkzeug's threaded server, one thread per connection, with HTTP/1.1 keep-alive. Werkzeug
3 forces ``Connection: close`` on every answer (and reads for 10 ms after each one to
drain the socket), so the handler here replaces its ``run_wsgi`` with one that reads
exactly the request body, answers with ``Content-Length`` in a single write, and keeps the
connection open. Werkzeug's access log is silenced (it would print phone numbers); this
module logs through :mod:`logging` with numbers masked to their last four digits.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import random
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Self, cast
from urllib.parse import parse_qsl

import pandas as pd
import phonenumbers
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.serving import DechunkedInput, ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request
from werkzeug.wsgi import LimitedStream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .client import KaleyraClient

__all__ = ["LEDGER_COLUMNS", "MAX_RECIPIENTS", "Emulator"]

log = logging.getLogger(__name__)

#: Recipients one request may name (comma-joined ``to``).
MAX_RECIPIENTS = 100
#: Characters allowed in ``ref``, ``ref1`` and ``ref2`` (the document's limit).
MAX_REF_LENGTH = 255
#: Characters allowed in a text ``body`` (WhatsApp's limit).
MAX_BODY_LENGTH = 4096
#: Bytes accepted in a request body.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: Columns of :attr:`Emulator.messages`, in order.
LEDGER_COLUMNS = (
    "message_id",
    "request_id",
    "to",
    "from",
    "type",
    "channel",
    "body",
    "template_name",
    "params",
    "lang_code",
    "ref",
    "ref1",
    "ref2",
    "callback_url",
    "source",
    "received_at",
)
_TEXT_COLUMNS = LEDGER_COLUMNS[:-1]
# Fields copied into the ledger as given (the others are normalised first).
_KEPT_FIELDS = ("body", "template_name", "params", "lang_code", "ref", "ref1", "ref2",
                "callback_url", "source")  # fmt: skip

_ENDPOINT = re.compile(r"/v1/([^/]+)/messages/?")
_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")
_E164_SHAPE = re.compile(r"\+?[1-9][0-9]{6,14}")
_KEY_FIELD = "api-key"
# Fields in the document's order: errors name them in this order, then any others.
_DOCUMENTED_ORDER = ("to", "type", "channel", "from", "callback_url", "ref", "ref1", "ref2",
                     "body", "template_name", "params", "lang_code", "source")  # fmt: skip

_MESSAGES = {
    "E400": "Invalid or missing parameters.",
    "E401": "Invalid API key or SID",
    "E404": "Not found",
    "E405": "Method not allowed",
    "E413": "Invalid or In-Correct input for passing HTML tags in parameters.",
    "E13008": "Invalid or in-correct input of the From number.",
    "E13009": "Invalid or in-correct input of the TO number.",
    "E500": "Internal error in the emulator",
}

# How often the background server checks for stop(): the cost of stop() is up to this.
_POLL_INTERVAL = 0.05
# A request body left unread by the application is drained up to this many bytes to keep
# the connection; beyond it the connection is closed instead.
_DRAIN_LIMIT = 64 * 1024


def _mask(number: str) -> str:
    """Mask a phone number to its last four digits (logs must not carry personal data)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


@functools.lru_cache(maxsize=16384)
def _plausible_digits(digits: str) -> bool:
    """True when ``+digits`` is a possible number for its country code (libphonenumber)."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def _e164_digits(value: str) -> str | None:
    """Return the digits of a plausible E.164 number written with or without ``+``."""
    text = value.strip()
    if not _E164_SHAPE.fullmatch(text):
        return None
    digits = text.lstrip("+")
    return digits if _plausible_digits(digits) else None


# -- the checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    """An error answer: HTTP status, code, and ``{field: reason}``."""

    status: int
    code: str
    errors: dict[str, str]
    headers: tuple[tuple[str, str], ...] = ()

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": _MESSAGES[self.code],
            "error": self.errors,
            "data": [],
        }


@dataclass(frozen=True)
class _Accepted:
    """A request that passed every check, normalised for the ledger."""

    recipients: list[str]  # digits, without '+'
    sender: str  # digits, without '+'
    type: str
    channel: str
    kept: dict[str, str | None] = field(default_factory=dict)


def _ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    documented = [name for name in _DOCUMENTED_ORDER if name in names]
    return documented + sorted(names.difference(_DOCUMENTED_ORDER))


def _check_fields(fields: Mapping[str, str]) -> _Refusal | _Accepted:
    """Run stages 4-7 of the module docstring on authenticated, trimmed, non-empty fields."""
    html = {
        name: "HTML tags are not allowed in this parameter"
        for name in _ordered(fields)
        if name != "body" and _HTML_TAG.search(fields[name])
    }
    if html:
        return _Refusal(400, "E413", html)

    to = fields.get("to")
    if to is None:
        return _Refusal(400, "E13009", {"to": "missing"})
    numbers = [part.strip() for part in to.split(",")]
    if len(numbers) > MAX_RECIPIENTS:
        return _Refusal(
            400,
            "E400",
            {"to": f"too many recipients: {len(numbers)} (at most {MAX_RECIPIENTS} a request)"},
        )
    recipients = [_e164_digits(number) for number in numbers]
    bad = [n or "(empty)" for n, d in zip(numbers, recipients, strict=True) if d is None]
    if bad:
        return _Refusal(400, "E13009", {"to": "invalid number: " + ", ".join(bad)})

    sender_text = fields.get("from")
    if sender_text is None:
        return _Refusal(400, "E13008", {"from": "missing"})
    sender = _e164_digits(sender_text)
    if sender is None:
        return _Refusal(400, "E13008", {"from": f"invalid number: {sender_text}"})

    errors: dict[str, str] = {}
    channel = fields.get("channel", "").strip().lower()
    if not channel:
        errors["channel"] = "missing"
    elif channel != "whatsapp":
        errors["channel"] = f"unsupported channel {fields['channel']!r}: use whatsapp"
    kind = fields.get("type", "").strip().lower()
    body = fields.get("body")
    if not kind:
        errors["type"] = "missing"
    elif kind == "text":
        if body is None:
            errors["body"] = "missing: a text message needs a body"
        elif len(body) > MAX_BODY_LENGTH:
            errors["body"] = f"longer than {MAX_BODY_LENGTH} characters ({len(body)})"
    elif kind == "template":
        if "template_name" not in fields:
            errors["template_name"] = "missing: a template message needs template_name"
    else:
        errors["type"] = f"unsupported message type {fields['type']!r}: use text or template"
    for name in ("ref", "ref1", "ref2"):
        value = fields.get(name)
        if value is not None and len(value) > MAX_REF_LENGTH:
            errors[name] = f"longer than {MAX_REF_LENGTH} characters ({len(value)})"
    if errors:
        return _Refusal(400, "E400", errors)

    return _Accepted(
        recipients=[d for d in recipients if d is not None],
        sender=sender,
        type=kind,
        channel=channel,
        kept={name: fields.get(name) for name in _KEPT_FIELDS},
    )


# -- reading a request --------------------------------------------------------------------


class _BadBody(Exception):
    """The request body cannot be read; answered after authentication."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _Request(Request):
    max_content_length = MAX_REQUEST_BYTES


def _last_values(multi: MultiDict[str, str]) -> dict[str, str]:
    return {key: values[-1] for key, values in multi.lists() if values}


def _json_value(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
    ):
        return ",".join(str(item) for item in value)
    raise _BadBody(f"field {name!r} must be a string, a number or a list of them")


def _parse_body(raw: bytes, content_type: str) -> dict[str, str]:
    """Read form fields from a body, by what it is rather than by what it claims to be."""
    if not raw.strip():
        return {}
    mimetype, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if boundary is None and raw.startswith(b"--"):
        boundary = raw[2 : raw.find(b"\n")].strip().decode("latin-1")
    if boundary:
        try:
            form, _files = MultiPartParser(max_form_memory_size=MAX_REQUEST_BYTES).parse(
                io.BytesIO(raw), boundary.encode("latin-1"), len(raw)
            )
        except (ValueError, RequestEntityTooLarge) as exc:
            raise _BadBody(f"the multipart body cannot be parsed ({exc})") from None
        return _last_values(form)
    declared_json = mimetype == "application/json" or mimetype.endswith("+json")
    if declared_json or raw.lstrip().startswith(b"{"):
        try:
            document = json.loads(raw)
        except ValueError:
            if declared_json:
                raise _BadBody("the body is not valid JSON") from None
        else:
            if not isinstance(document, dict):
                raise _BadBody("the JSON body must be an object of fields")
            converted = {name: _json_value(name, value) for name, value in document.items()}
            return {name: value for name, value in converted.items() if value is not None}
    text = raw.decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True))


def _read_fields(request: Request) -> tuple[dict[str, str], _BadBody | None]:
    """Query parameters overlaid with body fields; empty or blank ones count as absent."""
    fields = _last_values(request.args)
    problem: _BadBody | None = None
    try:
        raw = request.get_data(cache=False)
        fields.update(_parse_body(raw, request.headers.get("Content-Type", "")))
    except RequestEntityTooLarge:
        problem = _BadBody(f"the request body is larger than {MAX_REQUEST_BYTES} bytes", 413)
    except _BadBody as exc:
        problem = exc
    kept = {name.strip(): value for name, value in fields.items() if value.strip()}
    return {name: value for name, value in kept.items() if name}, problem


# -- the server ---------------------------------------------------------------------------


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler with real keep-alive, one write per answer, and no access log."""

    protocol_version = "HTTP/1.1"
    server: _Server

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
            log.exception("the emulator failed on a request")
            status = "500 Internal Server Error"
            body = json.dumps(_Refusal(500, "E500", {}).payload()).encode()
            headers = [("Content-Type", "application/json")]
            self.close_connection = True

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
    raise RuntimeError("the emulator's handler does not support the WSGI write() callable")


class _Server(ThreadedWSGIServer):
    """Werkzeug's threaded server on a socket we bound, tracking open connections."""

    def __init__(self, sock: socket.socket, app: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, handler=_Handler, fd=sock.fileno())

    def track(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)

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


# -- the emulator -------------------------------------------------------------------------


class Emulator:
    """A Kaleyra-compatible WhatsApp endpoint on 127.0.0.1, with a ledger of what it accepted.

    Args:
        host: the address to listen on (keep it on loopback).
        port: the port; 0 picks a free one when the server starts.
        sid: the account SID the endpoint answers to (default: a fresh ``HXEMU...``).
        api_key: the key it expects (default: a random token; read it from ``api_key``).
        latency: seconds each answer is delayed, after the message is recorded.
        seed: makes request ids (and the default SID) reproducible.

    Example:
        >>> with Emulator(sid="HXEMUDOC") as emu:  # doctest: +SKIP
        ...     emu.url
        'http://127.0.0.1:54321'
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sid: str | None = None,
        api_key: str | None = None,
        latency: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be zero or more seconds, not {latency!r}")
        if sid is not None and not sid.strip():
            raise ValueError("sid must not be empty")
        if api_key is not None and not api_key:
            raise ValueError("api_key must not be empty")
        self.host = host
        self._port = int(port)
        self._rng = random.Random(seed)
        self.sid = sid.strip() if sid is not None else "HXEMU" + f"{self._rng.getrandbits(40):010X}"
        self.api_key = api_key if api_key is not None else secrets.token_hex(16)
        self.latency = float(latency)
        self.seed = seed

        self._lock = threading.Lock()  # guards the ledger, the counters and the id generator
        self._ledger: list[tuple[Any, ...]] = []
        self._requests_seen = 0

        self._state_lock = threading.Lock()  # guards starting and stopping
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served (the one picked, once started with ``port=0``)."""
        server = self._server
        return int(server.port) if server is not None else self._port

    @property
    def url(self) -> str:
        """The base URL a client uses, e.g. ``http://127.0.0.1:54321``."""
        port = self.port
        if port == 0:
            raise RuntimeError("the emulator is not started: call start() or use `with`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def messages_url(self) -> str:
        """The full endpoint URL, ``{url}/v1/{sid}/messages``."""
        return f"{self.url}/v1/{self.sid}/messages"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None

    def __repr__(self) -> str:
        where = self.url if self.running else "not started"
        return (
            f"Emulator({where}, sid={self.sid!r}, api_key=<hidden>, latency={self.latency}, "
            f"messages={len(self._ledger)})"
        )

    # -- life cycle -----------------------------------------------------------------------

    def _make_server(self) -> _Server:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self._port), family=family, backlog=128)
        try:
            return _Server(sock, self.wsgi_app)
        finally:
            sock.close()  # the server holds its own duplicate

    def start(self) -> Self:
        """Start serving in a daemon thread (no-op when already running); return self.

        Raises:
            OSError: the port cannot be bound (e.g. already in use).
        """
        with self._state_lock:
            if self._server is not None:
                return self
            server = self._make_server()
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"kwa-emulator-{server.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        log.info("Kaleyra emulator listening on %s (SID %s)", self.url, self.sid)
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive connections and join the thread (idempotent)."""
        with self._state_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        log.info("Kaleyra emulator on port %s stopped", server.port)

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (or :meth:`stop` from another thread), then stop cleanly.

        Starts the server if it is not running yet, so a CLI may call :meth:`start`, show
        :attr:`url`, and then call this to block.
        """
        self.start()
        try:
            while (thread := self._thread) is not None and thread.is_alive():
                thread.join(0.5)
        except KeyboardInterrupt:
            log.info("interrupted: stopping the emulator")
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it saw ----------------------------------------------------------------------

    @property
    def messages(self) -> pd.DataFrame:
        """The ledger: one row per accepted message (per recipient), oldest first.

        Columns are :data:`LEDGER_COLUMNS`; ``to`` and ``from`` are E.164 with ``+``;
        ``type`` and ``channel`` lower-cased; other fields as received, NA when absent;
        ``received_at`` is a tz-aware UTC timestamp. String columns use pandas' ``string``
        dtype.
        """
        with self._lock:
            rows = list(self._ledger)
        frame = pd.DataFrame(
            {
                name: pd.array([row[i] for row in rows], dtype="string")
                for i, name in enumerate(_TEXT_COLUMNS)
            }
        )
        frame["received_at"] = pd.Series([row[-1] for row in rows], dtype="datetime64[us, UTC]")
        return frame

    @property
    def requests_seen(self) -> int:
        """HTTP requests received on ``/v1/<any SID>/messages``, whatever their outcome."""
        with self._lock:
            return self._requests_seen

    def reset(self) -> None:
        """Forget every accepted message and zero the counters."""
        with self._lock:
            self._ledger.clear()
            self._requests_seen = 0

    def client(self, **kwargs: Any) -> KaleyraClient:
        """Return a :class:`~kwa_batch.client.KaleyraClient` aimed at this emulator.

        Keyword arguments go to the client (``sender=``, ``timeout=``...). No sender is
        set by default: pass one, as with the real API.
        """
        from .client import KaleyraClient

        return KaleyraClient(self.sid, self.api_key, base_url=self.url, **kwargs)

    # -- the WSGI application -------------------------------------------------------------

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI callable serving the endpoint (mountable in any WSGI server)."""
        refusal_or_payload = self._answer(_Request(environ))
        if self.latency > 0:
            time.sleep(self.latency)
        if isinstance(refusal_or_payload, _Refusal):
            status, payload = refusal_or_payload.status, refusal_or_payload.payload()
            extra = list(refusal_or_payload.headers)
        else:
            status, payload, extra = 200, refusal_or_payload, []
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra],
        )
        return [body]

    def _answer(self, request: Request) -> _Refusal | dict[str, Any]:
        """Route, authenticate, check and record one request (stages 1-7 of the docstring).

        Fault injection (429, 503, dropped connections...) belongs here: before
        :func:`_check_fields` for faults that refuse unprocessed requests, after
        :meth:`_record` for those that lose the answer of a processed one.
        """
        match = _ENDPOINT.fullmatch(request.path)
        if match is None:
            return _Refusal(404, "E404", {"path": "no such endpoint: use /v1/<SID>/messages"})
        with self._lock:
            self._requests_seen += 1
        if request.method not in ("GET", "POST"):
            return _Refusal(
                405,
                "E405",
                {"method": f"{request.method} is not allowed: use POST (or GET)"},
                headers=(("Allow", "GET, POST"),),
            )

        fields, body_problem = _read_fields(request)
        key = request.headers.get(_KEY_FIELD, "").strip() or fields.pop(_KEY_FIELD, "").strip()
        fields.pop(_KEY_FIELD, None)
        if match.group(1) != self.sid:
            return _Refusal(401, "E401", {"sid": "unknown account SID in the URL"})
        if not key:
            return _Refusal(401, "E401", {_KEY_FIELD: "missing: send it in the api-key header"})
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            return _Refusal(401, "E401", {_KEY_FIELD: "invalid for this SID"})
        if body_problem is not None:
            return _Refusal(body_problem.status, "E400", {"request": body_problem.reason})

        outcome = _check_fields(fields)
        if isinstance(outcome, _Refusal):
            log.debug("refused %s: %s", outcome.code, ", ".join(outcome.errors))
            return outcome
        return self._record(outcome)

    def _record(self, accepted: _Accepted) -> dict[str, Any]:
        """Append one ledger row per recipient and build the document's success answer."""
        now = datetime.now(UTC)
        kept = accepted.kept
        sender = "+" + accepted.sender
        with self._lock:
            request_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            message_ids = [f"{request_id}:{n}" for n in range(len(accepted.recipients))]
            self._ledger.extend(
                (
                    message_id,
                    request_id,
                    "+" + recipient,
                    sender,
                    accepted.type,
                    accepted.channel,
                    *(kept[name] for name in _KEPT_FIELDS),
                    now,
                )
                for message_id, recipient in zip(message_ids, accepted.recipients, strict=True)
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "accepted %s %s message(s) to %s",
                len(message_ids),
                accepted.type,
                ",".join(_mask(r) for r in accepted.recipients),
            )
        return {
            "id": request_id,
            "type": accepted.type,
            "body": (kept["body"] or "") if accepted.type == "text" else "",
            "createdDateTime": now.strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "totalCount": len(message_ids),
            "data": [
                {"message_id": message_id, "recipient": recipient}
                for message_id, recipient in zip(message_ids, accepted.recipients, strict=True)
            ],
            "error": {},
        }
