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
   ``text``/``template``/``media``/``mediatemplate``/``authenticationtemplate`` (any
   case); a text without ``body``; a ``body`` over 4,096 characters (WhatsApp's limit,
   not in the document); a template without ``template_name``; a media message without
   ``media_url`` or a ``media`` file part, an authentication template without
   ``verification_code`` (:mod:`kwa_batch.emulator.media`); a ``ref``, ``ref1`` or
   ``ref2`` over 255 characters.
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
``E401`` (SID or key), ``E404`` (path), ``E405`` (method), ``E429`` and ``E503`` (faults
and the rate limit, below), ``E500`` (the fault ``"500"``, or a bug in the emulator
itself).

Each accepted recipient becomes one ledger row (:attr:`Emulator.messages`); a refused
request adds nothing. :attr:`Emulator.requests_seen` counts every request to
``/v1/<any SID>/messages``, refused ones included. Every answer is delayed by ``latency``
seconds plus a uniform random ``0..jitter`` seconds, *after* the message is recorded, as
a slow real server would: a client that gives up waiting cannot know whether it was sent.

Faults
------
``Emulator(faults={name: probability})`` makes the server misbehave the way a real one
sometimes does; :meth:`Emulator.inject` queues a fault for the next valid requests, for
tests that need it exactly. Faults only strike requests that passed authentication (a 401
stays a 401). Two happen *before* the message is processed, so nothing is recorded and a
client may safely send it again:

* ``"429"``: HTTP 429 ``E429`` with a ``Retry-After`` header of ``retry_after`` seconds.
* ``"503"``: HTTP 503 ``E503`` (no ``Retry-After``).

Three happen *after* the message is processed (it is in the ledger), so the client cannot
tell whether it was sent and must not blindly send it again; they strike only valid
requests (a 400 stays a 400):

* ``"500"``: HTTP 500 ``E500``.
* ``"reset"``: the connection is aborted without any answer (TCP RST: ``SO_LINGER`` 0);
  the client sees a connection reset after its request went out.
* ``"late"``: the normal 200 answer, ``late_delay`` seconds later than usual (meant to be
  longer than the client's read timeout).

Probabilities are per request and in ``[0, 1]``. ``429`` and ``503`` are drawn (one draw,
disjoint ranges, so their probabilities add up to at most 1) for every authenticated
request, before the body is checked: a bad request may get a 429 first, as behind a
real gateway. ``500``, ``reset`` and ``late`` are drawn the same way (adding up to at most
1) for valid requests, after the rate limit. Draws come from a generator seeded with
``seed``: a client sending one request at a time sees the same faults on the same
requests every run; concurrent clients see the same sequence of draws dealt out in
arrival order. Injected faults are served first, in the order queued, each to the next
valid request (a ``"429"`` or ``"503"`` injected is served after the checks, to a valid
request, still without recording it); while any is queued no fault is drawn.

``rate_limit`` is the server's own limit in messages per second (a request to n recipients
counts n), over any one-second window of arrival times, counting only the messages it
accepted. A valid request that would exceed it gets HTTP 429 ``E429`` with ``Retry-After``
set to the seconds until enough capacity frees, and is not processed. A request with more
recipients than the whole limit is accepted only when the window is empty.

``Retry-After`` is written in seconds: an integer when whole (``"1"``), else a decimal
rounded up to the millisecond (``"0.25"``); HTTP allows only integers, so a client must
parse it as a float (:class:`~kwa_batch.sending.client.KaleyraClient` does).

:attr:`Emulator.faults_injected` counts each fault served and
:attr:`Emulator.rate_limited` the requests refused by the rate limit; :meth:`Emulator.reset`
zeroes them.

Callbacks
---------
A message with a ``callback_url`` gets the callbacks Kaleyra would post there, from
background threads (:mod:`kwa_batch.emulator.callbacks`): ``sent``, then ``delivered``,
then ``read``, or ``sent`` then ``failed`` with a code, in proportions and with delays set
by ``callbacks=`` and drawn from ``seed``; a read message may be answered by its
recipient, and :meth:`Emulator.reply` posts a reply on demand. They go **only to loopback
hosts** (``127.0.0.1``, ``::1``, ``localhost``): any other host is skipped and logged,
never contacted. :meth:`Emulator.wait_for_callbacks` waits for them;
:meth:`Emulator.stop` drops those not posted yet. A message without ``callback_url``
costs nothing more.

Limits
------
``throughput=`` (messages per second per sender number) and ``pair_interval=`` (seconds
between two messages to one recipient) play WhatsApp's limits, answered by a ``failed``
callback with 130429 or 131056 (``limit_answer="api"``: a 429), and counted in
``emu.limits.violations``: see :mod:`kwa_batch.emulator.limits`. ``latency`` may be changed
while serving (``emu.latency = 0.5``): it is read for every answer.

Serving
-------
Werkzeug's threaded server with real HTTP/1.1 keep-alive, from a background thread
(:mod:`kwa_batch._http.serving`). Werkzeug's access log is silenced (it would print phone
numbers); this module logs through :mod:`logging` with numbers masked to their last four
digits, and no log line carries the key.

Idle and slow clients cannot starve real ones: a client has ``read_timeout`` seconds (10
by default) for its request line and as many again for the rest of its request, a
kept-alive connection as long for its next request; at most ``max_connections`` are open,
and a new one at the cap closes the connection idle longest (every connection busy: ``503
E503`` with ``Retry-After: 1``). The server reads the body before the checks: a chunked
body is capped at 4 MiB like a declared one (413), and a malformed one (a size line that
is not hexadecimal...) gets ``400 E400`` at once. Any request the emulator cannot read
gets a 4xx, never a 500 (a 500 is the fault ``"500"``, or a bug).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
import phonenumbers
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from .._http.serving import ABORT, CAN_ABORT, DEFAULT_READ_TIMEOUT, BackgroundServer, Served
from ..privacy import mask_phone
from .bodies import MAX_REQUEST_BYTES, EmulatorRequest, read_fields
from .callbacks import CallbackPoster, CallbackSettings
from .limits import LIMIT_CODES, EmulatedLimits
from .media import MEDIA_FIELDS, MEDIA_TYPES, media_errors
from .template_catalogue import EmulatedTemplates

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..sending.client import KaleyraClient

__all__ = ["FAULTS", "LEDGER_COLUMNS", "MAX_RECIPIENTS", "Emulator"]

log = logging.getLogger(__name__)

#: Recipients one request may name (comma-joined ``to``).
MAX_RECIPIENTS = 100
#: Characters allowed in ``ref``, ``ref1`` and ``ref2`` (the document's limit).
MAX_REF_LENGTH = 255
#: Characters allowed in a text ``body`` (WhatsApp's limit).
MAX_BODY_LENGTH = 4096

#: Fault names accepted by ``Emulator(faults=...)`` and :meth:`Emulator.inject`.
FAULTS = ("429", "503", "500", "reset", "late")
# Faults served before the message is processed (nothing recorded), and after.
_BEFORE = ("429", "503")
_AFTER = ("500", "reset", "late")

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
    *MEDIA_FIELDS,
    "received_at",
)
# Fields copied into the ledger as given (the others are normalised first).
_KEPT_FIELDS = ("body", "template_name", "params", "lang_code", "ref", "ref1", "ref2",
                "callback_url", "source", *MEDIA_FIELDS)  # fmt: skip

_ENDPOINT = re.compile(r"/v1/([^/]+)/messages/?")
# What a tag looks like, for the E413 check: ``<``, optional white space, an optional
# ``/``, optional white space, an ASCII letter, and a ``>`` somewhere after it (what the
# regex ``<\s*/?\s*[A-Za-z][^>]*>`` finds, without its quadratic backtracking).
_SPACES = re.compile(r"\s*")
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
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
    "E429": "Too many requests: slow down and retry after Retry-After seconds.",
    "E503": "Service temporarily unavailable: retry later.",
    "E13008": "Invalid or in-correct input of the From number.",
    "E13009": "Invalid or in-correct input of the TO number.",
    "E500": "Internal server error",
    **LIMIT_CODES,
}

# Probabilities that add up to 1 within this are taken as 1 (0.1 + 0.2 + 0.7 > 1 in floats).
_SUM_TOLERANCE = 1e-9


def _seconds_text(seconds: float) -> str:
    """``Retry-After`` text: whole seconds as an integer, else rounded up to the millisecond."""
    millis = max(math.ceil(round(seconds * 1000, 6)), 0)
    whole, rest = divmod(millis, 1000)
    return str(whole) if rest == 0 else f"{whole}.{rest:03d}".rstrip("0")


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


def _server_refusal(status: int, reason: str) -> bytes:
    """The body of an answer the server gives before the emulator sees the request."""
    code = "E503" if status == 503 else "E400"
    return json.dumps(_Refusal(status, code, {"request": reason}).payload()).encode()


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


def _has_html_tag(text: str) -> bool:
    """True when ``text`` holds something shaped like an HTML tag; linear in its length.

    Each ``<`` is looked at once and the white space after it skipped once (the next
    ``<`` is searched from where the skip stopped), so no input costs more than a pass.

    >>> _has_html_tag("a <b> c"), _has_html_tag("< / a >"), _has_html_tag("1 < 2 > 0")
    (True, True, False)
    """
    last_close = text.rfind(">")
    if last_close < 0:
        return False
    start = text.find("<", 0, last_close)
    while start >= 0:
        at = _SPACES.match(text, start + 1).end()  # type: ignore[union-attr]
        if at < last_close and text[at] == "/":
            at = _SPACES.match(text, at + 1).end()  # type: ignore[union-attr]
        if at < last_close and text[at] in _ASCII_LETTERS:
            return True  # a letter, and a '>' after it
        start = text.find("<", at, last_close)
    return False


def _check_fields(fields: Mapping[str, str]) -> _Refusal | _Accepted:
    """Run stages 4-7 of the module docstring on authenticated, trimmed, non-empty fields."""
    html = {
        name: "HTML tags are not allowed in this parameter"
        for name in _ordered(fields)
        if name != "body" and _has_html_tag(fields[name])
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
    elif kind in MEDIA_TYPES:  # media messages and templates (emulator/media.py)
        errors.update(media_errors(kind, fields))
    else:
        errors["type"] = (
            f"unsupported message type {fields['type']!r}: use text, template, media, "
            "mediatemplate or authenticationtemplate"
        )
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


# -- the emulator -------------------------------------------------------------------------


def _validated_faults(faults: Mapping[str, float] | None) -> dict[str, float]:
    """Check ``{fault name: probability}``; return it with names as strings, in FAULTS order."""
    if faults is None:
        return {}
    if not isinstance(faults, Mapping):
        raise ValueError(
            f"faults must map fault names to probabilities, e.g. {{'429': 0.05}}, not {faults!r}"
        )
    known = ", ".join(FAULTS)
    checked: dict[str, float] = {}
    for name, probability in faults.items():
        key = str(name)
        if key not in FAULTS:
            raise ValueError(f"unknown fault {name!r}: use one of {known}")
        try:
            value = float(probability)
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"fault {key!r}: the probability must be a number from 0 to 1, not {probability!r}"
            )
        checked[key] = value
    for stage in (_BEFORE, _AFTER):
        total = sum(checked.get(name, 0.0) for name in stage)
        if total > 1.0 + _SUM_TOLERANCE:
            raise ValueError(
                f"faults {', '.join(stage)} strike the same requests (one draw): their "
                f"probabilities add up to {total:g}, at most 1 is possible"
            )
    return {name: checked[name] for name in FAULTS if name in checked}


def _cuts(
    probabilities: Mapping[str, float], names: Iterable[str]
) -> tuple[tuple[float, str], ...]:
    """Cumulative upper bounds of each fault's range of [0, 1), skipping probability 0."""
    cuts: list[tuple[float, str]] = []
    total = 0.0
    for name in names:
        probability = probabilities.get(name, 0.0)
        if probability > 0:
            total += probability
            cuts.append((total, name))
    return tuple(cuts)


def _rate(rate_limit: float | None) -> float | None:
    """The server's own limit in messages per second: more than 0, finite, or None."""
    if rate_limit is None:
        return None
    limit = float(rate_limit)
    if not (limit > 0 and math.isfinite(limit)):
        raise ValueError(
            f"rate_limit must be more than 0 messages per second (or None), not {rate_limit!r}"
        )
    return limit


def _check_account(sid: str | None, api_key: str | None) -> None:
    if sid is not None and not sid.strip():
        raise ValueError("sid must not be empty")
    if api_key is not None and not api_key:
        raise ValueError("api_key must not be empty")


def _non_negative(name: str, value: float) -> float:
    seconds = float(value)
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be zero or more seconds, not {value!r}")
    return seconds


class Emulator(Served):
    """A Kaleyra-compatible WhatsApp endpoint on 127.0.0.1, with a ledger of what it accepted.

    Args:
        host: the address to listen on (keep it on loopback).
        port: the port; 0 picks a free one when the server starts.
        sid: the account SID the endpoint answers to (default: a fresh ``HXEMU...``).
        api_key: the key it expects (default: a random token; read it from ``api_key``).
        latency: seconds each answer is delayed, after the message is recorded.
        jitter: up to this many seconds more per answer (uniform random, seeded).
        faults: ``{fault: probability}`` with names from :data:`FAULTS` (``"429"``,
            ``"503"``, ``"500"``, ``"reset"``, ``"late"``) and probabilities in
            ``[0, 1]``; see "Faults" in the module's documentation.
        rate_limit: the server's own limit in messages per second (a request to n
            recipients counts n) over any one-second window; None: no limit.
        retry_after: seconds announced in ``Retry-After`` by the fault ``"429"``.
        late_delay: seconds added to the delay of a ``"late"`` answer.
        seed: makes request ids (and the default SID), jitter, fault draws and the
            callbacks' outcomes reproducible.
        callbacks: the callbacks posted to a message's ``callback_url`` (loopback hosts
            only): True for the defaults of
            :class:`~kwa_batch.emulator.callbacks.CallbackSettings` (every message
            ``sent`` then ``delivered``, GET, no delay), a mapping of settings to change
            (``{"delay": 0.05, "delivered": 0.95, "read": 0.7, "method": "POST"}``), or
            False for none. See "Callbacks" in the module's documentation.
        read_timeout: seconds a client has for its request line, then for the rest of
            its request; see "Serving" in the module's documentation.
        max_connections: connections open at once (None: half the free file
            descriptors, at most 1,000); at the cap the connection idle longest is closed.
        templates: a template catalogue to play (a frame from
            :func:`kwa_batch.load_templates`, WhatsApp's JSON or a ``.json`` path): it
            serves the v2 template list, and template sends that do not match it get a
            ``failed`` callback with WhatsApp's code (:mod:`kwa_batch.emulator.template_catalogue`).
        throughput, pair_interval, limit_answer: WhatsApp's limits per sender number (off
            by default; see :mod:`kwa_batch.emulator.limits`), counted in ``limits``.

    Raises:
        ValueError: a negative or non-finite number of seconds, a rate limit of 0 or less,
            an unknown fault, a probability outside ``[0, 1]``, or a callback setting
            that :class:`~kwa_batch.emulator.callbacks.CallbackSettings` refuses.

    Example:
        >>> with Emulator(sid="HXEMUDOC") as emu:  # doctest: +SKIP
        ...     emu.url
        'http://127.0.0.1:54321'
        >>> Emulator(faults={"429": 0.05, "reset": 0.01}, seed=7)  # doctest: +SKIP
    """

    _kind = "emulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sid: str | None = None,
        api_key: str | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        faults: Mapping[str, float] | None = None,
        rate_limit: float | None = None,
        retry_after: float = 1.0,
        late_delay: float = 5.0,
        seed: int | None = None,
        callbacks: CallbackSettings | Mapping[str, Any] | bool = True,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_connections: int | None = None,
        templates: Any = None,
        throughput: float | None = None,
        pair_interval: float | None = None,
        limit_answer: str = "callback",
    ) -> None:
        latency = _non_negative("latency", latency)
        jitter = _non_negative("jitter", jitter)
        retry_after = _non_negative("retry_after", retry_after)
        late_delay = _non_negative("late_delay", late_delay)
        rate_limit = _rate(rate_limit)
        _check_account(sid, api_key)
        self.host = host
        self._rng = random.Random(seed)
        self.sid = sid.strip() if sid is not None else "HXEMU" + f"{self._rng.getrandbits(40):010X}"
        self.api_key = api_key if api_key is not None else secrets.token_hex(16)
        self.latency = latency
        self.jitter = jitter
        self.rate_limit: float | None = rate_limit
        self.retry_after = retry_after
        self.late_delay = late_delay
        self.seed = seed
        settings = CallbackSettings.coerce(callbacks)
        self._callbacks_on = settings is not None
        self._poster = CallbackPoster(settings or CallbackSettings(), seed=seed)
        #: The template catalogue played (:mod:`kwa_batch.emulator.template_catalogue`), or None.
        self.templates = None if templates is None else EmulatedTemplates(templates)
        self.limits = EmulatedLimits(
            throughput=throughput, pair_interval=pair_interval, answer=limit_answer
        )

        self._lock = threading.Lock()  # guards the ledger, the counters and the id generator
        # One entry per accepted request: (request_id, recipients, sender, type, channel,
        # *_KEPT_FIELDS, received_at), numbers as digits; :attr:`messages` expands it to one
        # row per recipient (a tuple per request, not per message: 1,000,000 messages sent
        # 100 a request take about 75 MB, not 330).
        self._ledger: list[tuple[Any, ...]] = []
        self._message_count = 0
        self._requests_seen = 0

        # Faults: separate generators, so that ids stay the same whatever the faults.
        self._fault_rng = random.Random(None if seed is None else f"{seed}/faults")
        self._jitter_rng = random.Random(None if seed is None else f"{seed}/jitter")
        self._fault_lock = threading.Lock()  # guards the queue, the draws, counters, window
        self._faults: dict[str, float] = {}
        self._before: tuple[tuple[float, str], ...] = ()
        self._after: tuple[tuple[float, str], ...] = ()
        self.faults = faults or {}
        self._queue: deque[str] = deque()
        self._served = dict.fromkeys(FAULTS, 0)
        self._rate_limited = 0
        self._window: deque[tuple[float, int]] = deque()  # (arrival, messages) in the last second
        self._window_total = 0

        self._http = BackgroundServer(
            self.wsgi_app,
            host=host,
            port=int(port),
            name="kwa-emulator",
            error_body=json.dumps(_Refusal(500, "E500", {}).payload()).encode(),
            refusal=_server_refusal,
            max_body=MAX_REQUEST_BYTES,
            read_timeout=read_timeout,
            max_connections=max_connections,
            secrets=(self.api_key,),
        )
        self._stopping = threading.Event()  # wakes "late" answers when the server stops

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served (the one picked, once started with ``port=0``)."""
        return self._http.port

    @property
    def url(self) -> str:
        """The base URL a client uses, e.g. ``http://127.0.0.1:54321``.

        Raises:
            RuntimeError: the emulator was never started with port 0 (no port known yet).
        """
        return self._http.url

    @property
    def messages_url(self) -> str:
        """The full endpoint URL, ``{url}/v1/{sid}/messages``."""
        return f"{self.url}/v1/{self.sid}/messages"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._http.running

    def __repr__(self) -> str:
        parts = [
            self.url if self.running else "not started",
            f"sid={self.sid!r}",
            "api_key=<hidden>",
            f"latency={self.latency}",
        ]
        if self.jitter:
            parts.append(f"jitter={self.jitter}")
        if self._faults:
            parts.append(f"faults={self._faults}")
        if self.rate_limit is not None:
            parts.append(f"rate_limit={self.rate_limit:g}")
        parts.append(f"messages={self._message_count}")
        return f"Emulator({', '.join(parts)})"

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a daemon thread (no-op when already running); return self.

        Raises:
            OSError: the port cannot be bound (e.g. already in use).
        """
        self._stopping.clear()
        if self._http.start():
            log.info("Kaleyra emulator listening on %s (SID %s)", self.url, self.sid)
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive connections and join the thread (idempotent).

        Answers held back by the fault ``"late"`` are released (to closed connections);
        callbacks not posted yet are dropped (:meth:`wait_for_callbacks` first to keep
        them).
        """
        port = self._http.port
        self._stopping.set()
        stopped = self._http.stop()
        self._poster.stop()
        if stopped:
            log.info("Kaleyra emulator on port %s stopped", port)

    # -- what it saw ----------------------------------------------------------------------

    @property
    def messages(self) -> pd.DataFrame:
        """The ledger: one row per accepted message (per recipient), oldest first.

        Columns are :data:`LEDGER_COLUMNS`; ``to`` and ``from`` are E.164 with ``+``;
        ``type`` and ``channel`` lower-cased; other fields as received, NA when absent;
        ``received_at`` is a tz-aware UTC timestamp. String columns use pandas' ``string``
        dtype. Messages answered with a fault after processing (``500``, ``reset``,
        ``late``) are here: they were accepted.
        """
        import pyarrow as pa  # here, not at the top: the server itself does not need it

        with self._lock:
            requests = list(self._ledger)
        counts = np.fromiter((len(r[1]) for r in requests), dtype=np.intp, count=len(requests))
        # Row -> request; None when every request had one recipient (nothing to repeat).
        rows = (
            None
            if len(counts) == 0 or (counts == 1).all()
            else pa.array(np.repeat(np.arange(len(requests), dtype=np.int64), counts))
        )

        def strings(
            values: list[str | None], *, repeat: bool = True
        ) -> pd.api.extensions.ExtensionArray:
            array = pa.array(values, type=pa.large_string())  # 3x faster than pd.array(list)
            if repeat and rows is not None:
                array = array.take(rows)
            return pd.array(array, dtype="string")

        columns: dict[str, Any] = {
            "message_id": strings(
                [f"{r[0]}:{n}" for r in requests for n in range(len(r[1]))], repeat=False
            ),
            "request_id": strings([r[0] for r in requests]),
            "to": strings(["+" + d for r in requests for d in r[1]], repeat=False),
            "from": strings(["+" + r[2] for r in requests]),
        }
        for i, name in enumerate(LEDGER_COLUMNS[4:-1], start=3):
            columns[name] = strings([r[i] for r in requests])
        received = pd.DatetimeIndex([r[-1] for r in requests], dtype="datetime64[us, UTC]")
        columns["received_at"] = (received if rows is None else received.take(rows)).array
        return pd.DataFrame(columns)

    @property
    def message_count(self) -> int:
        """Rows in :attr:`messages` (accepted messages), without building the DataFrame."""
        return self._message_count

    @property
    def requests_seen(self) -> int:
        """HTTP requests received on ``/v1/<any SID>/messages``, whatever their outcome."""
        with self._lock:
            return self._requests_seen

    @property
    def faults(self) -> dict[str, float]:
        """The fault probabilities in force, ``{name: probability}`` (a copy).

        Assign a new mapping to change them while serving (it is validated as in the
        constructor); :meth:`clear_faults` sets them all to 0.
        """
        return dict(self._faults)

    @faults.setter
    def faults(self, faults: Mapping[str, float]) -> None:
        checked = _validated_faults(faults)
        before, after = _cuts(checked, _BEFORE), _cuts(checked, _AFTER)
        with self._fault_lock:
            self._faults, self._before, self._after = checked, before, after

    @property
    def faults_injected(self) -> dict[str, int]:
        """How many times each fault was served (every name of :data:`FAULTS`, 0 included)."""
        with self._fault_lock:
            return dict(self._served)

    @property
    def rate_limited(self) -> int:
        """Requests refused with 429 by :attr:`rate_limit` (not counted as faults)."""
        with self._fault_lock:
            return self._rate_limited

    @property
    def queued_faults(self) -> tuple[str, ...]:
        """Faults queued by :meth:`inject` and not served yet, next first."""
        with self._fault_lock:
            return tuple(self._queue)

    def inject(self, fault: str, times: int = 1) -> None:
        """Serve ``fault`` to the next ``times`` valid requests, after any already queued.

        Injected faults come before random draws (none is drawn while any is queued). A
        valid request is one that passes authentication and every check: a queued
        ``"429"`` or ``"503"`` is served to it without recording it, a ``"500"``,
        ``"reset"`` or ``"late"`` after recording it.

        Raises:
            ValueError: an unknown fault name, or ``times`` less than 1.
        """
        name = str(fault)
        if name not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {', '.join(FAULTS)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number, 1 or more, not {times!r}")
        with self._fault_lock:
            self._queue.extend([name] * times)

    def clear_faults(self) -> None:
        """No more faults: empty the :meth:`inject` queue and set every probability to 0.

        The counters (:attr:`faults_injected`) and the rate limit are kept.
        """
        with self._fault_lock:
            self._queue.clear()
        self.faults = {}

    def reset(self) -> None:
        """Forget every accepted message and zero the counters.

        Also empties the :meth:`inject` queue, the rate limit's window and the pending
        callbacks; the fault probabilities, the rate limit and the callback settings stay
        in force.
        """
        with self._lock:
            self._ledger.clear()
            self._message_count = 0
            self._requests_seen = 0
        with self._fault_lock:
            self._queue.clear()
            self._served = dict.fromkeys(FAULTS, 0)
            self._rate_limited = 0
            self._window.clear()
            self._window_total = 0
        self._poster.clear()
        if self.templates is not None:
            self.templates.clear()
        self.limits.reset()

    # -- callbacks ------------------------------------------------------------------------

    @property
    def callbacks(self) -> CallbackSettings | None:
        """The callback settings in force (None: the emulator posts no status callbacks)."""
        return self._poster.settings if self._callbacks_on else None

    @property
    def callback_stats(self) -> dict[str, int]:
        """Callbacks ``posted`` (answered 2xx), ``failed``, ``pending``, ``dropped`` by
        :meth:`stop`, and messages ``skipped`` for a ``callback_url`` that is not loopback.
        """
        return self._poster.stats

    def wait_for_callbacks(self, timeout: float | None = 10.0) -> bool:
        """Block until every callback planned so far was posted; False if ``timeout`` ran out.

        Example:
            >>> results = send(report, emu.client())  # doctest: +SKIP
            >>> emu.wait_for_callbacks()  # doctest: +SKIP
            True
        """
        return self._poster.wait(timeout)

    def reply(
        self,
        from_number: str,
        to_business: str,
        body: str,
        url: str,
        *,
        name: str | None = None,
        delay: float = 0.0,
    ) -> bool:
        """Post an incoming-message callback to ``url``: ``from_number`` wrote ``body``.

        It plays a recipient answering the business number ``to_business`` (which opens
        their 24-hour window). Numbers are E.164, with or without ``+``. Works whatever
        the callback settings; returns False when ``url`` is not a loopback address (the
        callback is skipped and logged).

        Raises:
            ValueError: a number that is not plausible E.164, or a negative ``delay``.

        Example:
            >>> emu.reply("+919876543210", "+911234567890", "Yes please", receiver.callback_url)
            ... # doctest: +SKIP
            True
        """
        customer, business = _e164_digits(from_number), _e164_digits(to_business)
        if customer is None or business is None:
            wrong = from_number if customer is None else to_business
            raise ValueError(f"not a plausible E.164 number: {wrong!r}")
        return self._poster.reply(
            customer, business, body, url, name=name, delay=_non_negative("delay", delay)
        )

    def client(self, **kwargs: Any) -> KaleyraClient:
        """Return a :class:`~kwa_batch.sending.client.KaleyraClient` aimed at this emulator.

        Keyword arguments go to the client (``sender=``, ``timeout=``...). No sender is
        set by default: pass one, as with the real API.
        """
        from ..sending.client import KaleyraClient

        return KaleyraClient(self.sid, self.api_key, base_url=self.url, **kwargs)

    # -- the WSGI application -------------------------------------------------------------

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI callable serving the endpoint (mountable in any WSGI server).

        Mounted elsewhere than in :meth:`start`'s server, the fault ``"reset"`` raises
        :class:`ConnectionAbortedError` (after recording the message) instead of
        dropping the connection.
        """
        refusal_or_payload, fault = self._answer(EmulatorRequest(environ))
        delay = self.latency
        if self.jitter > 0:
            delay += self._jitter_rng.random() * self.jitter
        if fault == "late":
            self._stopping.wait(delay + self.late_delay)
        elif delay > 0:
            time.sleep(delay)
        if fault == "reset":
            if not environ.get(CAN_ABORT):
                raise ConnectionAbortedError(
                    "fault 'reset': the emulator dropped the connection after recording the message"
                )
            environ[ABORT] = True
            return []
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

    def _answer(self, request: Request) -> tuple[_Refusal | dict[str, Any], str | None]:
        """Route, authenticate, check and record one request (stages 1-7 of the docstring).

        Returns the answer and the fault that changes how it is delivered (``"reset"`` or
        ``"late"``; the others are answers of their own).
        """
        listed = self.templates and self.templates.route(request, self.sid, self.api_key)
        if listed:
            status, answer = listed
            return (
                answer if status == 200 else _Refusal(status, answer["code"], answer["error"])
            ), None
        match = _ENDPOINT.fullmatch(request.path)
        if match is None:
            return _Refusal(404, "E404", {"path": "no such endpoint: use /v1/<SID>/messages"}), None
        with self._lock:
            self._requests_seen += 1
        if request.method not in ("GET", "POST"):
            return _Refusal(
                405,
                "E405",
                {"method": f"{request.method} is not allowed: use POST (or GET)"},
                headers=(("Allow", "GET, POST"),),
            ), None

        fields, body_problem = read_fields(request)
        key = request.headers.get(_KEY_FIELD, "").strip() or fields.pop(_KEY_FIELD, "").strip()
        fields.pop(_KEY_FIELD, None)
        if match.group(1) != self.sid:
            return _Refusal(401, "E401", {"sid": "unknown account SID in the URL"}), None
        if not key:
            return _Refusal(
                401, "E401", {_KEY_FIELD: "missing: send it in the api-key header"}
            ), None
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            return _Refusal(401, "E401", {_KEY_FIELD: "invalid for this SID"}), None

        # Faults that refuse a request unprocessed: drawn before the checks.
        if self._before and not self._queue:
            drawn = self._draw_before()
            if drawn is not None:
                return drawn, None
        if body_problem is not None:
            return _Refusal(body_problem.status, "E400", {"request": body_problem.reason}), None

        outcome = _check_fields(fields)
        if isinstance(outcome, _Refusal):
            log.debug("refused %s: %s", outcome.code, ", ".join(outcome.errors))
            return outcome, None
        fault: str | None = None
        if self._queue or self._after or self.rate_limit is not None:
            admitted = self._admit(len(outcome.recipients))
            if isinstance(admitted, _Refusal):
                return admitted, None
            fault = admitted
        limited = self.limits.admit(outcome.sender, outcome.recipients)
        if limited.refusal is not None:
            code, reason, wait = limited.refusal
            headers = (("Retry-After", _seconds_text(wait)),)
            return _Refusal(429, code, {"request": reason}, headers=headers), None
        failure = self.templates and self.templates.failure(outcome.type, fields)
        payload = self._record(outcome, limited.failures, failure or None)
        if fault == "500":
            return self._fault_refusal("500"), None
        return payload, fault

    # -- faults ---------------------------------------------------------------------------

    def _fault_refusal(self, fault: str) -> _Refusal:
        if fault == "429":
            seconds = _seconds_text(self.retry_after)
            return _Refusal(
                429,
                "E429",
                {"request": f"too many requests (fault 429): retry after {seconds} seconds"},
                headers=(("Retry-After", seconds),),
            )
        if fault == "503":
            return _Refusal(503, "E503", {"request": "service unavailable (fault 503)"})
        return _Refusal(
            500, "E500", {"request": "internal error (fault 500), after processing the request"}
        )

    @staticmethod
    def _pick(cuts: tuple[tuple[float, str], ...], draw: float) -> str | None:
        for upper, name in cuts:
            if draw < upper:
                return name
        return None

    def _draw_before(self) -> _Refusal | None:
        """Draw the faults served before the checks (``429``, ``503``)."""
        with self._fault_lock:
            fault = self._pick(self._before, self._fault_rng.random()) if self._before else None
            if fault is None:
                return None
            self._served[fault] += 1
        log.debug("fault %s served before processing", fault)
        return self._fault_refusal(fault)

    def _admit(self, messages: int) -> _Refusal | str | None:
        """Decide a valid request's fate: a refusal (not processed), a fault, or None.

        In order: a queued ``429``/``503``; the rate limit; a queued fault served after
        processing; a random one.
        """
        with self._fault_lock:
            head = self._queue[0] if self._queue else None
            if head in _BEFORE:
                self._queue.popleft()
                self._served[head] += 1
                return self._fault_refusal(head)
            limit = self.rate_limit
            if limit is not None:
                wait = self._take_capacity(messages, limit)
                if wait is not None:
                    self._rate_limited += 1
                    seconds = _seconds_text(wait)
                    return _Refusal(
                        429,
                        "E429",
                        {
                            "request": f"over the limit of {limit:g} messages per second: "
                            f"retry after {seconds} seconds"
                        },
                        headers=(("Retry-After", seconds),),
                    )
            if head is not None:
                self._queue.popleft()
            elif self._after:
                head = self._pick(self._after, self._fault_rng.random())
            if head is not None:
                self._served[head] += 1
        if head is not None:
            log.debug("fault %s served after processing", head)
        return head

    def _take_capacity(self, messages: int, limit: float) -> float | None:
        """Count ``messages`` in the one-second window, or return the seconds to wait.

        Called with the fault lock held.
        """
        now = time.monotonic()
        window = self._window
        horizon = now - 1.0
        while window and window[0][0] <= horizon:
            self._window_total -= window.popleft()[1]
        if self._window_total + messages <= limit or not window:
            window.append((now, messages))
            self._window_total += messages
            return None
        excess = self._window_total + messages - limit
        freed = 0
        for arrived, count in window:
            freed += count
            if freed >= excess:
                return arrived + 1.0 - now
        return window[-1][0] + 1.0 - now  # more than the whole limit: wait for an empty window

    # -- the ledger -----------------------------------------------------------------------

    def _record(
        self,
        accepted: _Accepted,
        failures: Mapping[int, tuple[str, str]] | None = None,
        failure: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Append the request to the ledger and build the document's success answer."""
        now = datetime.now(UTC)
        kept = accepted.kept
        recipients = accepted.recipients
        count = len(recipients)
        with self._lock:
            request_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            self._ledger.append(
                (
                    request_id,
                    recipients,
                    accepted.sender,
                    accepted.type,
                    accepted.channel,
                    *[kept[name] for name in _KEPT_FIELDS],
                    now,
                )
            )
            self._message_count += count
        if failure is not None and self.templates is not None:
            self.templates.note(request_id, recipients, kept, failure)
        callback_url = kept["callback_url"]
        if callback_url is not None and self._callbacks_on:
            refs = {name: kept[name] for name in ("ref", "ref1", "ref2")}
            self._poster.message_accepted(
                request_id,
                recipients,
                accepted.sender,
                refs,
                callback_url,
                failures,
                failure=failure,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "accepted %s %s message(s) to %s",
                count,
                accepted.type,
                ",".join(mask_phone(r) for r in recipients),
            )
        return {
            "id": request_id,
            "type": accepted.type,
            "body": (kept["body"] or "") if accepted.type == "text" else "",
            "createdDateTime": now.strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "totalCount": count,
            "data": [
                {"message_id": f"{request_id}:{n}", "recipient": recipient}
                for n, recipient in enumerate(recipients)
            ],
            "error": {},
        }
