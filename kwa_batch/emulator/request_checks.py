"""The emulator's checks of a request to ``/v1/<SID>/messages``, from Kaleyra's document.

They are the emulator's own: it never imports the client's validation (a bug on one side
must not hide on the other). :mod:`kwa_batch.emulator.server` runs stages 1-3 (route,
key, body) and :func:`check_fields` the rest.

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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import phonenumbers

from .answers import Refusal
from .media import MEDIA_FIELDS, MEDIA_TYPES, media_errors

__all__ = [
    "KEPT_FIELDS",
    "MAX_BODY_LENGTH",
    "MAX_RECIPIENTS",
    "MAX_REF_LENGTH",
    "Accepted",
    "check_fields",
    "e164_digits",
    "has_html_tag",
]

#: Recipients one request may name (comma-joined ``to``).
MAX_RECIPIENTS = 100
#: Characters allowed in ``ref``, ``ref1`` and ``ref2`` (the document's limit).
MAX_REF_LENGTH = 255
#: Characters allowed in a text ``body`` (WhatsApp's limit).
MAX_BODY_LENGTH = 4096
#: Fields kept as given (the others are normalised first), in the ledger's order.
KEPT_FIELDS = ("body", "template_name", "params", "lang_code", "ref", "ref1", "ref2",
               "callback_url", "source", *MEDIA_FIELDS)  # fmt: skip

# What a tag looks like, for the E413 check: ``<``, optional white space, an optional
# ``/``, optional white space, an ASCII letter, and a ``>`` somewhere after it (what the
# regex ``<\s*/?\s*[A-Za-z][^>]*>`` finds, without its quadratic backtracking).
_SPACES = re.compile(r"\s*")
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_E164_SHAPE = re.compile(r"\+?[1-9][0-9]{6,14}")
# Fields in the document's order: errors name them in this order, then any others.
_DOCUMENTED_ORDER = ("to", "type", "channel", "from", "callback_url", "ref", "ref1", "ref2",
                     "body", "template_name", "params", "lang_code", "source")  # fmt: skip


@functools.lru_cache(maxsize=16384)
def _plausible_digits(digits: str) -> bool:
    """True when ``+digits`` is a possible number for its country code (libphonenumber)."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def e164_digits(value: str) -> str | None:
    """Return the digits of a plausible E.164 number written with or without ``+``."""
    text = value.strip()
    if not _E164_SHAPE.fullmatch(text):
        return None
    digits = text.lstrip("+")
    return digits if _plausible_digits(digits) else None


@dataclass(frozen=True)
class Accepted:
    """A request that passed every check, normalised for the ledger.

    ``api_version`` is the API it came by (``v1``, or ``v2`` from :mod:`.v2_checks`, whose
    ``message_object`` is WhatsApp's message object as JSON text)."""

    recipients: list[str]  # digits, without '+'
    sender: str  # digits, without '+'
    type: str
    channel: str
    kept: dict[str, str | None] = field(default_factory=dict)
    api_version: str = "v1"
    message_object: str | None = None


def _ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    documented = [name for name in _DOCUMENTED_ORDER if name in names]
    return documented + sorted(names.difference(_DOCUMENTED_ORDER))


def has_html_tag(text: str) -> bool:
    """True when ``text`` holds something shaped like an HTML tag; linear in its length.

    Each ``<`` is looked at once and the white space after it skipped once (the next
    ``<`` is searched from where the skip stopped), so no input costs more than a pass.

    >>> has_html_tag("a <b> c"), has_html_tag("< / a >"), has_html_tag("1 < 2 > 0")
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


def check_fields(fields: Mapping[str, str]) -> Refusal | Accepted:
    """Run stages 4-7 of the module docstring on authenticated, trimmed, non-empty fields."""
    html = {
        name: "HTML tags are not allowed in this parameter"
        for name in _ordered(fields)
        if name != "body" and has_html_tag(fields[name])
    }
    if html:
        return Refusal(400, "E413", html)

    to = fields.get("to")
    if to is None:
        return Refusal(400, "E13009", {"to": "missing"})
    numbers = [part.strip() for part in to.split(",")]
    if len(numbers) > MAX_RECIPIENTS:
        return Refusal(
            400,
            "E400",
            {"to": f"too many recipients: {len(numbers)} (at most {MAX_RECIPIENTS} a request)"},
        )
    recipients = [e164_digits(number) for number in numbers]
    bad = [n or "(empty)" for n, d in zip(numbers, recipients, strict=True) if d is None]
    if bad:
        return Refusal(400, "E13009", {"to": "invalid number: " + ", ".join(bad)})

    sender_text = fields.get("from")
    if sender_text is None:
        return Refusal(400, "E13008", {"from": "missing"})
    sender = e164_digits(sender_text)
    if sender is None:
        return Refusal(400, "E13008", {"from": f"invalid number: {sender_text}"})

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
        return Refusal(400, "E400", errors)

    return Accepted(
        recipients=[d for d in recipients if d is not None],
        sender=sender,
        type=kind,
        channel=channel,
        kept={name: fields.get(name) for name in KEPT_FIELDS},
    )
