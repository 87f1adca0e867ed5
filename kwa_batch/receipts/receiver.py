"""The callback receiver: a WSGI application that stores Kaleyra's callbacks as they come.

Kaleyra reports each message's progress, and each reply from a recipient, to the message's
``callback_url``. :class:`Receiver` serves :class:`CallbackApp` on a local port from a
background thread (``kwa-batch receive`` runs one until Ctrl-C); the same application
runs under any WSGI server, e.g. behind TLS in production::

    KWA_RECEIVER_STORE=postgresql://kwa@db/campaigns KWA_RECEIVER_TOKEN=... \\
        gunicorn --workers 2 --bind 127.0.0.1:8080 'kwa_batch.receipts.receiver:app_from_env()'

(``kwa-batch receive --store postgresql://… --workers N`` does that itself:
:mod:`kwa_batch.receipts.receiver_workers`. A SQLite file has one writer at a time: give it
one process.)

What it accepts
---------------
Callbacks on any path, as ``GET`` with query parameters or ``POST`` with a JSON object,
a form-encoded or a multipart body (query parameters are read for a ``POST`` too; a body
field wins). Two kinds, told apart by their fields:

* a **status update** has ``id`` (the ``message_id`` of the send answer) and ``status``
  (``sent``, ``delivered``, ``read``, ``failed``, ``not-sent``; others are kept but never
  replace these), and may carry ``mobile`` or ``phone_number`` (the recipient),
  ``error_code``, ``error`` (text, or an object with ``code`` and ``message``), ``ref``,
  ``ref1``, ``ref2``, ``price`` (what the message cost; a value that is not a number of
  zero or more is left out), ``billable`` and ``pricing_category``, ``wanumber`` (the
  business number that sent it) and ``timestamp`` (Unix seconds or milliseconds, or ISO 8601; a time
  that cannot be read, before 2000 or more than a day ahead is replaced by the time of
  receipt);
* an **incoming message** has ``from`` (the recipient who wrote) and may carry
  ``wanumber`` (the business number written to), ``created_at`` (Unix seconds or ISO
  8601), ``type``, ``name``, ``body``, ``media_url``, ``reply_to`` (or ``context_id``: the
  ``message_id`` of the message it answers) and ``payload`` (or ``button_payload``: a
  quick-reply button's payload).

A ``POST`` with a JSON **document** holds WhatsApp's own objects, several in one callback
(:func:`parse_callbacks`):

* **Kaleyra's v2 shape**: ``meta_object.value`` with ``statuses[]`` (each: ``id`` the
  wamid, ``status``, ``timestamp``, ``recipient_id``, ``errors[]`` with ``code``,
  ``title``, ``message`` and ``error_data.details``, ``conversation``, ``pricing`` with
  ``billable`` and ``category``), ``messages[]`` (each: ``from``, ``id``, ``timestamp``,
  ``type``, and ``text.body``, ``button`` with ``text`` and ``payload``, ``interactive``
  with a ``button_reply`` or ``list_reply`` of ``id`` and ``title``, a media object's
  ``caption``; ``context.id`` the wamid it answers), ``contacts[]`` (the customer's
  ``profile.name``) and ``metadata.display_phone_number`` (the business number); and at
  the top, ``extra_info`` with ``message_id`` and ``ref``/``ref1``/``ref2``, which belong
  to the status of that id (or to the only status);
* **WhatsApp Cloud API's webhook**: ``entry[].changes[].value``, each value as above.

A status becomes a status update (the first error's code and words, ``billable`` and the
pricing category kept); a message an incoming message whose ``body`` is its text, its
button's text, its choice's title or its caption, whose ``payload`` is the button's payload
or the choice's id, and whose ``reply_to`` is ``context.id``; a repeat of a message (by its
WhatsApp id) is the same one. A document of another kind (a template's status) stores
nothing and is answered 200. At most :data:`MAX_ITEMS` (1,000) statuses, messages or
changes a callback.

Each is stored once (:mod:`kwa_batch.receipts.store`), however often it comes, before the
answer ``200 {"ok": true, "stored": <true when new>}`` goes back (for a document, also
``"items"``: how many it held, and ``"new"``: how many were not stored before). ``GET /`` without
callback fields is a health check: ``200 {"status": "ok"}`` while the store is usable
(``503`` otherwise), no token needed. ``HEAD`` on any path is that health check too: it
never stores a callback, whatever its query.

What it refuses
---------------
Every refusal is a JSON ``{"error": reason}`` and one log line (without the token or
phone numbers); the server carries on.

* With a token configured, a callback without it (in ``?token=``, an ``X-Kwa-Token``
  header or ``Authorization: Bearer``) gets 401, a wrong one 403; tokens are compared in
  constant time and never logged. Prefer the header behind a proxy: access logs record
  query strings.
* A body over ``max_body`` bytes (64 KiB by default) gets 413.
* A body that cannot be read (invalid JSON, a JSON value that is not an object, not
  UTF-8), fields that make neither kind of callback, or a document with anything in it
  that cannot be read (a value of the wrong type, a status without ``id``, a ``from``
  that is no number: the reason names where, e.g. ``meta_object.value.messages[0].from``),
  get 400; nothing of it is stored.
* A document of more than :data:`MAX_ITEMS` statuses, messages or changes gets 413.
* A method other than GET, HEAD or POST gets 405.
* A store that cannot be written gets 503, so that the sender tries again later.
* Whatever else cannot be read (JSON nested too deeply, a lone surrogate such as
  ``"\\ud800"``) gets 400: a 500 means a bug.

Served by :class:`Receiver` (:mod:`kwa_batch._http.serving`), a client has ``read_timeout``
seconds for its request line and as many for the rest of its request; at most
``max_connections`` are open, a new one at the cap closing the connection idle longest;
chunked bodies are capped like declared ones and a malformed one gets 400 at once. No log
line carries the token. Under gunicorn, its own ``--timeout``/``--keep-alive`` and worker
limits play that part.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from traceback import format_exc
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, quote

from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from .._http.serving import DEFAULT_READ_TIMEOUT, BackgroundServer, Served, redact
from ..config import CALLBACK_PATH, ENV_STORE, ENV_TOKEN
from ..errors import ConfigurationError, KwaBatchError
from ..privacy import mask_phone
from .store import CallbackStore, IncomingMessage, StatusUpdate, message_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "CALLBACK_PATH",
    "ENV_STORE",
    "ENV_TOKEN",
    "MAX_BODY",
    "MAX_ITEMS",
    "TOKEN_HEADER",
    "CallbackApp",
    "CallbackError",
    "Receiver",
    "TooManyItems",
    "app_from_env",
    "callback_url_of",
    "is_document",
    "make_app",
    "parse_callback",
    "parse_callbacks",
]

log = logging.getLogger(__name__)

#: Bytes accepted in a callback's body (a callback is a few hundred bytes).
MAX_BODY = 64 * 1024
#: The header that may carry the token (besides ``Authorization: Bearer`` and ``?token=``).
TOKEN_HEADER = "X-Kwa-Token"
# CALLBACK_PATH (the path :attr:`Receiver.callback_url` names; any path other than ``/``
# is accepted) and ENV_STORE/ENV_TOKEN (read by :func:`app_from_env` and
# ``kwa-batch receive``) live in kwa_batch.config, which the command line reads cheaply.

_TOKEN_FIELD = "token"
_MAX_ID = 256
_MAX_FIELD = 16 * 1024
_STATUS_SHAPE = re.compile(r"[a-z][a-z-]{0,31}")
_NOT_DIGITS = re.compile(r"\D")
# Times before this are not real callback times (a "0" or a typo): the receipt time is used.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# Nor are times this far after the receipt (year 9999, a clock gone wrong).
_LATEST_AHEAD = timedelta(days=1)
# A store that cannot be written: answered 503, so that Kaleyra may try again later.
_STORAGE_ERRORS = (sqlite3.Error, OSError, KwaBatchError)
_INTERNAL_ERROR = "internal error: the callback was not stored"


class CallbackError(KwaBatchError):
    """The fields do not make a callback we can store; the message says why."""


# -- reading a callback -------------------------------------------------------------------


def _number(value: str | None) -> str | None:
    """``+digits`` for a phone number written with or without ``+``, else None."""
    if not value:
        return None
    digits = _NOT_DIGITS.sub("", value)
    return "+" + digits if 7 <= len(digits) <= 15 and digits[0] != "0" else None


def _time(value: str | None, fallback: datetime) -> datetime:
    """A callback's time: Unix seconds (or milliseconds) or ISO 8601, in UTC.

    ``fallback`` (the receipt time) when there is none, or it cannot be read, or it is
    before 2000 or more than a day after ``fallback``: no real callback time is.
    """
    if not value:
        return fallback
    text = value.strip()
    parsed: datetime
    try:
        number = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            parsed = parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            return fallback
    else:
        if not math.isfinite(number):
            return fallback
        if number > 1e11:  # milliseconds
            number /= 1000
        try:
            parsed = datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return fallback
    if parsed < _EARLIEST or parsed - fallback > _LATEST_AHEAD:
        return fallback
    return parsed


def _price(value: str | None) -> float | None:
    """A callback's price: a finite number of zero or more (else None: never a guess)."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _flag(value: str | None) -> bool | None:
    """``true``/``false`` (or 1/0) as a bool; anything else None."""
    if value is None:
        return None
    text = value.strip().lower()
    return True if text in ("true", "1", "yes") else False if text in ("false", "0", "no") else None


def _optional(fields: Mapping[str, str], name: str, limit: int = _MAX_FIELD) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if len(value) > limit:
        raise CallbackError(f"field {name!r} is longer than {limit} characters")
    return value


def parse_callback(
    fields: Mapping[str, str], *, received_at: datetime | None = None
) -> StatusUpdate | IncomingMessage:
    """Read one callback's fields (non-empty strings) as a status update or incoming message.

    For a web framework of your own: pass the query parameters or the decoded body, and
    store the result with :meth:`CallbackStore.add_status` or
    :meth:`CallbackStore.add_incoming`.

    Args:
        fields: the callback's fields, without the token.
        received_at: when it arrived (default: now); the time used when the callback
            carries none (or one that cannot be read).

    Raises:
        CallbackError: the fields make neither kind of callback (see the module docs).

    Example:
        >>> parse_callback({"id": "3f2a:0", "status": "Delivered"}).status
        'delivered'
    """
    received = received_at or datetime.now(UTC)
    message_id = fields.get("id") or fields.get("message_id")
    status = fields.get("status")
    if status is not None and message_id is not None:
        message_id = message_id.strip()
        if len(message_id) > _MAX_ID or not message_id.isprintable():
            raise CallbackError(f"'id' must be printable and at most {_MAX_ID} characters")
        normal = status.strip().lower().replace("_", "-").replace(" ", "-")
        if not _STATUS_SHAPE.fullmatch(normal):
            raise CallbackError("'status' is not a status (letters and '-', at most 32)")
        return StatusUpdate(
            message_id=message_id,
            status=normal,
            at=_time(fields.get("timestamp"), received),
            received_at=received,
            recipient=_number(fields.get("mobile") or fields.get("phone_number")),
            error_code=_optional(fields, "error_code", _MAX_ID),
            error=_optional(fields, "error"),
            ref=_optional(fields, "ref"),
            ref1=_optional(fields, "ref1"),
            ref2=_optional(fields, "ref2"),
            price=_price(fields.get("price")),
            billable=_flag(fields.get("billable")),
            pricing_category=_optional(fields, "pricing_category", _MAX_ID),
            business=_number(fields.get("wanumber") or fields.get("business")),
        )
    if "from" in fields:
        customer = _number(fields["from"])
        if customer is None:
            raise CallbackError("'from' is not a phone number")
        canonical = json.dumps(sorted(fields.items()), ensure_ascii=False)
        return IncomingMessage(
            key=hashlib.sha256(canonical.encode()).hexdigest()[:32],
            customer=customer,
            business=_number(fields.get("wanumber")),
            at=_time(fields.get("created_at"), received),
            received_at=received,
            type=_optional(fields, "type", _MAX_ID),
            name=_optional(fields, "name"),
            body=_optional(fields, "body"),
            media_url=_optional(fields, "media_url"),
            reply_to=_optional(fields, "reply_to", _MAX_ID)
            or _optional(fields, "context_id", _MAX_ID),
            payload=_optional(fields, "payload") or _optional(fields, "button_payload"),
        )
    if status is not None or message_id is not None:
        missing = "id" if status is not None else "status"
        raise CallbackError(f"a status update needs both 'id' and 'status': no {missing!r}")
    raise CallbackError(
        "not a Kaleyra callback: expected a status update (id, status) or an incoming "
        "message (from, body...)"
    )


def _json_fields(document: Mapping[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in document.items():
        if value is None:
            continue
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            fields[name] = str(value)
        elif name == "error" and isinstance(value, dict):  # {"code": ..., "message": ...}
            if value.get("code") is not None:
                fields.setdefault("error_code", str(value["code"]))
            message = value.get("message") or value.get("title")
            fields[name] = str(message) if message else json.dumps(value, ensure_ascii=False)
        else:
            fields[name] = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return fields


# -- v2 and Cloud API documents -------------------------------------------------------------

#: Status updates and incoming messages accepted in one callback document; more gets 413.
MAX_ITEMS = 1000
_V2_KINDS = ("statuses", "messages")


def is_document(document: Mapping[str, Any]) -> bool:
    """True for a JSON body in Kaleyra's v2 shape (``meta_object``) or WhatsApp Cloud API's
    webhook shape (``entry[].changes[].value``), rather than v1's flat fields."""
    return "meta_object" in document or "entry" in document


class TooManyItems(CallbackError):
    """A callback document carries more than :data:`MAX_ITEMS` statuses and messages."""


def _values(document: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Each ``value`` object of the document, with where it is (for refusals)."""
    if "meta_object" in document:
        meta = document["meta_object"]
        if not isinstance(meta, dict):
            raise CallbackError("'meta_object' must be an object")
        value = meta.get("value", meta)
        if not isinstance(value, dict):
            raise CallbackError("'meta_object.value' must be an object")
        return [("meta_object.value", value)]
    entries = document.get("entry")
    if not isinstance(entries, list):
        raise CallbackError("'entry' must be a list of objects")
    found: list[tuple[str, Mapping[str, Any]]] = []
    for i, entry in enumerate(entries[: MAX_ITEMS + 1]):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise CallbackError(f"'entry[{i}].changes' must be a list of objects")
        for j, change in enumerate(changes[: MAX_ITEMS + 1]):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                raise CallbackError(f"'entry[{i}].changes[{j}].value' must be an object")
            found.append((f"entry[{i}].changes[{j}].value", value))
            if len(found) > MAX_ITEMS:
                raise TooManyItems(f"more than {MAX_ITEMS} changes in one callback")
    return found


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _text(obj: Mapping[str, Any], name: str, where: str, limit: int = _MAX_FIELD) -> str | None:
    """``obj[name]`` as text (a string, or a number written as one), or None when absent."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CallbackError(f"'{_at(where, name)}' must be text, not {type(value).__name__}")
    text = str(value)
    if len(text) > limit:
        raise CallbackError(f"'{_at(where, name)}' is longer than {limit} characters")
    _readable({_at(where, name): text})
    return text if text.strip() else None


def _object(obj: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    """``obj[name]`` when it is an object; empty when absent."""
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CallbackError(f"'{_at(where, name)}' must be an object, not {type(value).__name__}")
    return value


def _objects(value: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    items = value.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise CallbackError(f"'{_at(where, name)}' must be a list of objects")
    if len(items) > MAX_ITEMS:
        raise TooManyItems(f"'{_at(where, name)}' holds more than {MAX_ITEMS} items")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CallbackError(f"'{_at(where, name)}[{i}]' must be an object")
    return items


def _error_of(status: Mapping[str, Any], where: str) -> tuple[str | None, str | None]:
    """The first of a status's ``errors[]``: its code and its words (message or title, and
    ``error_data.details`` when they add something)."""
    errors = _objects(status, "errors", where)
    if not errors:
        return None, None
    first, at = errors[0], f"{where}.errors[0]"
    code = _text(first, "code", at, _MAX_ID)
    words = _text(first, "message", at) or _text(first, "title", at)
    details = _text(_object(first, "error_data", at), "details", f"{at}.error_data")
    if details and details != words:
        words = f"{words}: {details}" if words else details
    return code, words[:_MAX_FIELD] if words else None


def _same_id(a: str | None, b: str | None) -> bool:
    """Two message ids that name one message (``<uuid>`` and ``<uuid>:0`` alike)."""
    return a is not None and b is not None and message_key(a) == message_key(b)


def _v2_status(
    status: Mapping[str, Any],
    where: str,
    business: str | None,
    extra: Mapping[str, Any],
    only: bool,
    received: datetime,
) -> StatusUpdate:
    message_id = _text(status, "id", where, _MAX_ID)
    given = _text(extra, "message_id", "extra_info", _MAX_ID)
    if message_id is None and only:
        message_id = given
    given_fields = {
        "id": message_id,
        "status": _text(status, "status", where),
        "timestamp": _text(status, "timestamp", where),
        "mobile": _text(status, "recipient_id", where),
        "wanumber": business,
    }
    if not given_fields["id"] or not given_fields["status"]:
        missing = "id" if not given_fields["id"] else "status"
        raise CallbackError(f"'{where}' is a status without {missing!r}")
    given_fields["error_code"], given_fields["error"] = _error_of(status, where)
    pricing = _object(status, "pricing", where)
    billable = pricing.get("billable")
    if isinstance(billable, bool):
        given_fields["billable"] = "true" if billable else "false"
    given_fields["pricing_category"] = _text(pricing, "category", _at(where, "pricing"), _MAX_ID)
    # The refs of extra_info belong to the message it names (or to the only status).
    if only or _same_id(message_id, given):
        for name in ("ref", "ref1", "ref2"):
            given_fields[name] = _text(extra, name, "extra_info")
    fields = {name: value for name, value in given_fields.items() if value is not None}
    try:
        first = parse_callback(fields, received_at=received)
    except CallbackError as exc:
        raise CallbackError(f"'{where}': {exc}") from None
    assert isinstance(first, StatusUpdate)  # id and status given: always one
    return first


def _reply_of(message: Mapping[str, Any], kind: str | None, where: str) -> tuple[str | None, ...]:
    """What a message says (text, a button's text, a choice's title, a caption), and the
    payload it carries (a button's payload, a choice's id), and a media link."""
    if kind == "text":
        return _text(_object(message, "text", where), "body", f"{where}.text"), None, None
    if kind == "button":
        button = _object(message, "button", where)
        at = f"{where}.button"
        return _text(button, "text", at), _text(button, "payload", at), None
    if kind == "interactive":
        interactive = _object(message, "interactive", where)
        at = f"{where}.interactive"
        for name in ("button_reply", "list_reply"):
            choice = _object(interactive, name, at)
            if choice:
                return (
                    _text(choice, "title", f"{at}.{name}"),
                    _text(choice, "id", f"{at}.{name}"),
                    None,
                )
        return None, None, None
    if kind:
        media = _object(message, kind, where) if isinstance(message.get(kind), dict) else {}
        at = f"{where}.{kind}"
        link = _text(media, "url", at) or _text(media, "link", at)
        return _text(media, "caption", at), None, link
    return None, None, None


def _v2_message(
    message: Mapping[str, Any],
    where: str,
    business: str | None,
    names: Mapping[str, str],
    received: datetime,
) -> IncomingMessage:
    sender = _text(message, "from", where)
    if sender is None:
        raise CallbackError(f"'{where}' is a message without 'from'")
    customer = _number(sender)
    if customer is None:
        raise CallbackError(f"'{where}.from' is not a phone number")
    kind = _text(message, "type", where, _MAX_ID)
    body, payload, link = _reply_of(message, kind, where)
    context = _object(message, "context", where)
    reply_to = _text(context, "id", f"{where}.context", _MAX_ID)
    wamid = _text(message, "id", where, _MAX_ID)
    # A repeat of the message (WhatsApp's id, else its whole object) has the same key.
    identity = (
        f"wamid:{wamid}"
        if wamid
        else json.dumps([business, message], ensure_ascii=False, sort_keys=True, default=str)
    )
    return IncomingMessage(
        key=hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32],
        customer=customer,
        business=business,
        at=_time(_text(message, "timestamp", where), received),
        received_at=received,
        type=kind.lower() if kind else None,
        name=names.get(sender) or names.get(customer),
        body=body,
        media_url=link,
        reply_to=reply_to,
        payload=payload,
    )


def _parse_document(
    document: Mapping[str, Any], received: datetime
) -> list[StatusUpdate | IncomingMessage]:
    extra = _object(document, "extra_info", "")
    found: list[StatusUpdate | IncomingMessage] = []
    values = _values(document)
    for where, value in values:
        metadata = _object(value, "metadata", where)
        business = _number(_text(metadata, "display_phone_number", f"{where}.metadata"))
        statuses = _objects(value, "statuses", where)
        messages = _objects(value, "messages", where)
        if len(found) + len(statuses) + len(messages) > MAX_ITEMS:
            raise TooManyItems(f"more than {MAX_ITEMS} statuses and messages in one callback")
        only = len(values) == 1 and len(statuses) == 1
        for i, status in enumerate(statuses):
            at = f"{where}.statuses[{i}]"
            found.append(_v2_status(status, at, business, extra, only, received))
        names: dict[str, str] = {}
        for i, contact in enumerate(_objects(value, "contacts", where)):
            at = f"{where}.contacts[{i}]"
            wa_id = _text(contact, "wa_id", at)
            name = _text(_object(contact, "profile", at), "name", f"{at}.profile")
            if wa_id and name:
                names[wa_id] = name
        for i, message in enumerate(messages):
            found.append(_v2_message(message, f"{where}.messages[{i}]", business, names, received))
    return found


def parse_callbacks(
    fields_or_document: Mapping[str, Any], *, received_at: datetime | None = None
) -> list[StatusUpdate | IncomingMessage]:
    """Read one callback, in any format the receiver takes, as its status updates and
    incoming messages.

    Args:
        fields_or_document: v1's flat fields (non-empty strings, as for
            :func:`parse_callback`), or a decoded JSON body in Kaleyra's v2 shape
            (``meta_object.value.statuses[]`` / ``messages[]``, ``extra_info``) or WhatsApp
            Cloud API's (``entry[].changes[].value``).
        received_at: when it arrived (default: now).

    Returns:
        What it reports, in the order it says it: one item for v1, any number (none for a
        document of another kind, e.g. a template's status) for a document.

    Raises:
        CallbackError: something in it cannot be read (the message names where); a
            document with more than :data:`MAX_ITEMS` statuses and messages
            (:class:`TooManyItems`).

    Example:
        >>> [u.status for u in parse_callbacks({"meta_object": {"value": {"statuses": [
        ...     {"id": "wamid.1", "status": "read"}, {"id": "wamid.2", "status": "sent"}]}}})]
        ['read', 'sent']
    """
    received = received_at or datetime.now(UTC)
    if is_document(fields_or_document):
        return _parse_document(fields_or_document, received)
    fields = {str(k): v for k, v in fields_or_document.items()}
    return [parse_callback(fields, received_at=received)]


# -- the application ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def _refusal(status: int, reason: str, *headers: tuple[str, str]) -> _Answer:
    return _Answer(status, {"error": reason}, headers)


class CallbackApp:
    """The WSGI application that stores callbacks (see the module docs for the protocol).

    Args:
        store: the :class:`~kwa_batch.receipts.store.CallbackStore` (or its file, or its
            database's URL) to write.
        token: when set, every callback must carry it (``?token=``, ``X-Kwa-Token`` or
            ``Authorization: Bearer``).
        max_body: bytes accepted in a body; more gets 413.

    Attributes:
        stats: counts of ``stored``, ``repeated`` and ``refused`` callbacks (a copy).
    """

    def __init__(
        self,
        store: str | Path | CallbackStore,
        *,
        token: str | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        if token is not None and not token:
            raise ValueError("token must not be empty (None: no token)")
        if max_body < 1:
            raise ValueError(f"max_body must be 1 byte or more, not {max_body!r}")
        self.store = store if isinstance(store, CallbackStore) else CallbackStore(store)
        self._token = token.encode() if token is not None else None
        self.max_body = int(max_body)
        self._stats = {"stored": 0, "repeated": 0, "refused": 0}
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        token = "<hidden>" if self._token is not None else None
        return f"CallbackApp({self.store!r}, token={token}, max_body={self.max_body})"

    @property
    def stats(self) -> dict[str, int]:
        """How many callbacks were stored, repeated (already stored) and refused."""
        with self._stats_lock:
            return dict(self._stats)

    def _secrets(self) -> list[str]:
        return [self._token.decode()] if self._token is not None else []

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self._stats[what] += 1

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        # One byte more than allowed is read, to tell "exactly the limit" from "over it"
        # (werkzeug stops silently at the limit of a chunked body).
        request.max_content_length = self.max_body + 1
        try:
            answer = self._answer(request)
        except Exception:
            trace = redact(format_exc(), self._secrets())
            log.error("the receiver failed on a callback:\n%s", trace)
            answer = _refusal(500, _INTERNAL_ERROR)
        if answer.status >= 400:
            self._count("refused")
        body = json.dumps(answer.payload).encode()
        start_response(
            f"{answer.status} {HTTP_STATUS_CODES.get(answer.status, 'Unknown')}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                *answer.headers,
            ],
        )
        # A HEAD answer has the headers of a GET's and no body (gunicorn sends what it is
        # given, and a body would be read as the next answer on a kept-alive connection).
        return [] if request.method == "HEAD" else [body]

    def _answer(self, request: Request) -> _Answer:
        client = request.remote_addr or "?"
        if request.method not in ("GET", "HEAD", "POST"):
            method = redact(request.method[:16], self._secrets())
            log.warning("refused a %r request from %s: method not allowed", method, client)
            return _refusal(405, "use GET or POST", ("Allow", "GET, HEAD, POST"))
        if request.method == "HEAD":  # a probe (a monitor, a link checker): never stored
            return self._health()
        query = {k: v[-1] for k, v in request.args.lists() if v}
        given = self._given_token(request, query.pop(_TOKEN_FIELD, None))
        if request.method == "GET" and request.path == "/" and not _filled(query):
            return self._health()

        if self._token is not None:
            if given is None:
                log.warning("refused a callback from %s: no token", client)
                return _refusal(
                    401,
                    f"a token is required: ?token=, {TOKEN_HEADER} or Authorization: Bearer",
                    ("WWW-Authenticate", 'Bearer realm="kwa-batch"'),
                )
            if not hmac.compare_digest(given.encode(), self._token):
                log.warning("refused a callback from %s: wrong token", client)
                return _refusal(403, "wrong token")

        fields = dict(query)
        document: Mapping[str, Any] | None = None
        if request.method == "POST":
            length = request.content_length
            if length is not None and length > self.max_body:
                log.warning("refused a callback from %s: body of %s bytes", client, length)
                return _refusal(413, f"the body is larger than {self.max_body} bytes")
            try:
                body, document = self._body_fields(request)
                fields.update(body)
            except RequestEntityTooLarge:
                log.warning("refused a callback from %s: body too large", client)
                return _refusal(413, f"the body is larger than {self.max_body} bytes")
            except CallbackError as exc:
                log.warning("refused a callback from %s: %s", client, exc)
                return _refusal(400, str(exc))
            except RecursionError:
                log.warning("refused a callback from %s: JSON nested too deeply", client)
                return _refusal(400, "the JSON body is nested too deeply")
            fields.pop(_TOKEN_FIELD, None)
        try:
            if document is not None:
                callbacks = parse_callbacks(document)
            else:
                callbacks = [parse_callback(_readable(_filled(fields)))]
            _storable(callbacks)
        except TooManyItems as exc:
            log.warning("refused a callback from %s: %s", client, exc)
            return _refusal(413, str(exc))
        except CallbackError as exc:
            log.warning("refused a callback from %s: %s", client, exc)
            return _refusal(400, str(exc))
        except RecursionError:
            log.warning("refused a callback from %s: JSON nested too deeply", client)
            return _refusal(400, "the JSON body is nested too deeply")
        new = 0
        for callback in callbacks:
            try:
                if isinstance(callback, StatusUpdate):
                    stored = self.store.add_status(callback)
                else:
                    stored = self.store.add_incoming(callback)
            except _STORAGE_ERRORS as exc:
                log.error("could not store a callback from %s: %s", client, exc)
                return _refusal(503, "the callback could not be stored: try again later")
            new += stored
            self._count("stored" if stored else "repeated")
            _log_stored(callback, stored)
        if document is None:
            return _Answer(200, {"ok": True, "stored": bool(new)})
        if not callbacks:
            log.info("a callback from %s with no status or message: nothing stored", client)
        return _Answer(200, {"ok": True, "stored": bool(new), "items": len(callbacks), "new": new})

    def _given_token(self, request: Request, from_query: str | None) -> str | None:
        header = request.headers.get(TOKEN_HEADER)
        if header:
            return header.strip()
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return from_query or None

    def _body_fields(self, request: Request) -> tuple[dict[str, str], Mapping[str, Any] | None]:
        """The body's fields, or (for a v2 or Cloud API JSON document) none and the document."""
        try:
            raw = request.get_data(cache=False)
        except (OSError, ClientDisconnected):  # gunicorn's reader of a malformed chunked body
            raise CallbackError("the body cannot be read (a malformed chunked body?)") from None
        if len(raw) > self.max_body:
            raise RequestEntityTooLarge()
        if not raw.strip():
            return {}, None
        boundary = request.mimetype_params.get("boundary")
        if request.mimetype == "multipart/form-data" and boundary:
            parser = MultiPartParser(max_form_memory_size=self.max_body)
            try:
                form, _files = parser.parse(io.BytesIO(raw), boundary.encode("latin-1"), len(raw))
            except (ValueError, UnicodeError):
                raise CallbackError("the multipart body cannot be parsed") from None
            return {k: v[-1] for k, v in form.lists() if v}, None
        declared_json = request.mimetype == "application/json" or request.mimetype.endswith("+json")
        if declared_json or raw.lstrip().startswith((b"{", b"[")):
            try:
                document = json.loads(raw)
            except ValueError:
                raise CallbackError("the body is not valid JSON") from None
            if not isinstance(document, dict):
                raise CallbackError("the JSON body must be an object of fields")
            if is_document(document):
                return {}, document
            return _json_fields(document), None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackError("the body is not UTF-8 text") from None
        return dict(parse_qsl(text, keep_blank_values=True)), None

    def _health(self) -> _Answer:
        try:
            self.store.counts()
        except _STORAGE_ERRORS as exc:
            log.error("health check: the store is not usable: %s", exc)
            return _refusal(503, "the store is not usable")
        return _Answer(200, {"status": "ok"})


def _filled(fields: Mapping[str, str]) -> dict[str, str]:
    """Fields with names and values trimmed of white space; empty ones count as absent."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        key = name.strip()
        if key and key != _TOKEN_FIELD and value.strip():
            out[key] = value
    return out


def _readable(fields: dict[str, str]) -> dict[str, str]:
    """``fields`` when every name and value is valid Unicode (JSON may carry "\\ud800").

    Raises:
        CallbackError: a lone surrogate, which the store (UTF-8) cannot hold.
    """
    for name, value in fields.items():
        try:
            name.encode("utf-8")
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = name[:40].encode("utf-8", "backslashreplace").decode()
            raise CallbackError(
                f"field {shown!r} is not valid Unicode (a lone surrogate): send UTF-8 text"
            ) from None
    return fields


def _storable(callbacks: list[StatusUpdate | IncomingMessage]) -> None:
    """Refuse a callback with a NUL character in a value, which PostgreSQL's text cannot
    hold (refused with a file too: every store answers a callback alike).

    Raises:
        CallbackError: naming the field.
    """
    for callback in callbacks:
        for name, value in vars(callback).items():
            if isinstance(value, str) and "\x00" in value:
                raise CallbackError(f"field {name!r} holds a NUL character (\\u0000): send text")


def _log_stored(callback: StatusUpdate | IncomingMessage, new: bool) -> None:
    again = "" if new else " (repeat, already stored)"
    if isinstance(callback, StatusUpdate):
        to = f" to {mask_phone(callback.recipient)}" if callback.recipient else ""
        code = f" {callback.error_code}" if callback.error_code else ""
        log.info("%s%s: message %s%s%s", callback.status, code, callback.message_id, to, again)
    else:
        to = f" to {mask_phone(callback.business)}" if callback.business else ""
        kind = f"{callback.type} " if callback.type else ""
        log.info("incoming %smessage from %s%s%s", kind, mask_phone(callback.customer), to, again)


def make_app(
    store: str | Path | CallbackStore, *, token: str | None = None, max_body: int = MAX_BODY
) -> CallbackApp:
    """The receiver as a WSGI application, for a production server (gunicorn, waitress).

    Example:
        >>> app = make_app("receipts.db", token=os.environ["KWA_RECEIVER_TOKEN"])  # doctest: +SKIP
        >>> waitress.serve(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    return CallbackApp(store, token=token, max_body=max_body)


def callback_url_of(base_url: str, token: str | None) -> str:
    """The ``callback_url`` of a receiver at ``base_url``: :data:`CALLBACK_PATH`, and the
    token when there is one (keep it secret like the token)."""
    url = base_url + CALLBACK_PATH
    return url if token is None else f"{url}?{_TOKEN_FIELD}={quote(token)}"


def app_from_env() -> CallbackApp:
    """:func:`make_app` with the store and token from ``KWA_RECEIVER_STORE`` / ``_TOKEN``.

    For ``gunicorn 'kwa_batch.receipts.receiver:app_from_env()'``.

    Raises:
        ConfigurationError: ``KWA_RECEIVER_STORE`` is not set.
    """
    path = os.environ.get(ENV_STORE, "").strip()
    if not path:
        raise ConfigurationError(
            f"set {ENV_STORE} to the SQLite file or the database URL that stores the callbacks"
        )
    return make_app(path, token=os.environ.get(ENV_TOKEN) or None)


class Receiver(Served):
    """A callback receiver on ``host:port`` (a real HTTP server in a background thread).

    Args:
        store: the SQLite file to store callbacks in (created when missing), a
            PostgreSQL database's URL (its tables made on first use), or an open
            :class:`~kwa_batch.receipts.store.CallbackStore`.
        host: the address to listen on; the default keeps it on this machine.
        port: the port; 0 picks a free one when it starts.
        token: when set, callbacks must carry it (see the module docs).
        max_body: bytes accepted in a callback's body.
        read_timeout: seconds a client has for its request line, then for the rest of
            its request (an idle kept-alive connection as long for its next one).
        max_connections: connections open at once (None: half the free file
            descriptors, at most 1,000). At the cap, a new connection closes the one
            idle longest; when all are busy it gets 503 with ``Retry-After: 1``.

    Example:
        >>> with Receiver("receipts.db") as receiver, Emulator() as emu:  # doctest: +SKIP
        ...     results = send(df.assign(callback_url=receiver.callback_url), emu.client())
        ...     emu.wait_for_callbacks()
        >>> merge_receipts(results, load_receipts("receipts.db"))  # doctest: +SKIP
    """

    _kind = "receiver"

    def __init__(
        self,
        store: str | Path | CallbackStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        max_body: int = MAX_BODY,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_connections: int | None = None,
    ) -> None:
        self._owns_store = not isinstance(store, CallbackStore)
        self.app = CallbackApp(store, token=token, max_body=max_body)
        self.store = self.app.store
        self.host = host
        self._token = token
        self._http = BackgroundServer(
            self.app,
            host=host,
            port=port,
            name="kwa-receiver",
            error_body=json.dumps({"error": _INTERNAL_ERROR}).encode(),
            # One byte over the limit reaches the application, which answers 413.
            max_body=self.app.max_body,
            read_timeout=read_timeout,
            max_connections=max_connections,
            secrets=[token] if token else [],
        )

    @property
    def wsgi_app(self) -> CallbackApp:
        """The WSGI application served (mountable in any WSGI server)."""
        return self.app

    @property
    def port(self) -> int:
        """The port served (the one picked, once started with ``port=0``)."""
        return self._http.port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (``GET`` it: the health check)."""
        return self._http.url

    @property
    def callback_url(self) -> str:
        """The URL to give Kaleyra as ``callback_url``; it holds the token, when there is one.

        Keep it secret like the token; show it with the token masked.
        """
        return callback_url_of(self.url, self._token)

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._http.running

    @property
    def stats(self) -> dict[str, int]:
        """How many callbacks were stored, repeated (already stored) and refused."""
        return self.app.stats

    def __repr__(self) -> str:
        where = self.url if self.running else "not started"
        token = "<hidden>" if self._token is not None else None
        return f"Receiver({where}, store={self.store.shown!r}, token={token})"

    def start(self) -> Self:
        """Open the store and serve in a daemon thread (no-op when running); return self.

        Raises:
            InputError: the store file is not a callback store.
            OSError: the port cannot be bound, or the store file cannot be created.
        """
        if self._http.running:
            return self
        self.store.counts()  # opens (or creates) it now: a bad path fails here, not later
        if self._http.start():
            log.info("receiving Kaleyra callbacks on %s into %s", self.url, self.store.shown)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; close the store if it opened it (idempotent)."""
        port = self._http.port
        if self._http.stop():
            log.info("callback receiver on port %s stopped", port)
        if self._owns_store:
            self.store.close()
