"""The emulator's checks of a v2 send: WhatsApp's message object, as Kaleyra would take it.

A v2 send is ``POST /v2/<SID>/whatsapp/<sender digits>/messages`` with the ``api-key``
header and a JSON body ``{"messaging_object": {...}, "extra_info": {...}}``
(``kaleyra-facts.md``, "Kaleyra's WhatsApp API v2"). The checks here are the emulator's
own, written from WhatsApp Cloud API's documented shapes and limits: it never imports the
client's validation (a bug on one side must not hide on the other). Every refusal is HTTP
400 ``WA400``, with ``{where: reason}`` (``where`` a path in the body, e.g.
``messaging_object.interactive.action.buttons[3]``); the first problem found answers.

What is checked
---------------
* the body: a JSON object with a ``messaging_object`` object; ``extra_info``, when given,
  an object of strings (``ref``, ``ref1``, ``ref2`` at most 255 characters;
  ``callback_url``, the emulator's stand-in for a callback profile, see
  :mod:`.endpoint`);
* ``messaging_product`` is ``"whatsapp"``; ``recipient_type``, when given,
  ``"individual"``; ``to`` one plausible E.164 number (a comma-joined ``to`` is refused:
  one recipient a request);
* ``type`` one of ``text``, ``template``, ``interactive``, ``image``, ``video``, ``audio``,
  ``document``, ``sticker``, and its object present:

  - ``text.body``: present, at most 4,096 characters;
  - a media object: a ``link`` (http/https) or an ``id``; a ``caption`` at most 1,024;
  - ``template``: a ``name`` and a ``language.code``; ``components`` a list of objects
    with a ``type`` (``header``, ``body``, ``button``, ``carousel``), a button with a
    ``sub_type`` and an ``index`` (0 to 9), a carousel at most 10 ``cards``. Whether it
    matches the catalogue played is decided after acceptance, as WhatsApp does
    (:meth:`~.template_catalogue.EmulatedTemplates.failure_v2`);
  - ``interactive``: ``type`` ``button``, ``list``, ``cta_url``, ``flow``, ``product``,
    ``product_list``; ``body.text`` at most 1,024 characters (needed but for products),
    a text ``header`` at most 60, ``footer.text`` at most 60; reply buttons 1 to 3, each
    ``{"type": "reply", "reply": {"id", "title"}}``, titles at most 20 characters, ids
    at most 256 and all different; a list's ``action.button`` at most 20 characters, 1 to
    10 ``sections`` holding 1 to 10 ``rows`` in all, row titles at most 24 characters,
    descriptions at most 72, ids all different;
* ``context``, when given, an object with a ``message_id`` (a reply in context).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .answers import Refusal
from .request_checks import MAX_BODY_LENGTH, MAX_REF_LENGTH, Accepted, e164_digits

__all__ = ["MESSAGE_TYPES", "V2Send", "check_send"]

#: The message types the emulator's v2 takes.
MESSAGE_TYPES = ("text", "template", "interactive", "image", "video", "audio", "document",
                 "sticker")  # fmt: skip
_MEDIA = ("image", "video", "audio", "document", "sticker")
_INTERACTIVE = ("button", "list", "cta_url", "flow", "product", "product_list")
_COMPONENTS = ("header", "body", "button", "carousel")
# WhatsApp's limits (Cloud API reference: interactive messages).
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_LIST_ROWS = 10
MAX_LIST_SECTIONS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_INTERACTIVE_BODY = 1024
MAX_HEADER_FOOTER = 60
MAX_CAPTION = 1024
MAX_CARDS = 10
MAX_BUTTON_INDEX = 9
_MAX_ID = 256


@dataclass(frozen=True)
class V2Send:
    """A v2 send that passed the checks: the ledger's view (:class:`Accepted`), the message
    object as received, and the buttons a played customer may tap, ``(title, payload)``."""

    accepted: Accepted
    message: dict[str, Any]
    buttons: tuple[tuple[str, str], ...] = ()


class _Refused(Exception):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where, self.reason = where, reason


def _object(value: Any, where: str, *, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise _Refused(where, "missing" if value is None else "must be an object")
    return dict(value)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Refused(where, "missing" if value is None else "must be a list")
    return value


def _text(holder: Mapping[str, Any], name: str, where: str, limit: int | None = None) -> str:
    value = holder.get(name)
    at = f"{where}.{name}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Refused(at, "missing")
    if not isinstance(value, str):
        raise _Refused(at, "must be a string")
    if limit is not None and len(value) > limit:
        raise _Refused(at, f"longer than {limit} characters ({len(value)})")
    return value


def _optional_text(
    holder: Mapping[str, Any], name: str, where: str, limit: int | None = None
) -> str | None:
    return None if holder.get(name) is None else _text(holder, name, where, limit)


def check_send(document: Any, sender: str) -> Refusal | V2Send:
    """Check a v2 send's decoded JSON body from ``sender`` (digits); see the module
    docstring. Returns the ``WA400`` refusal, or the send."""
    try:
        return _check(document, sender)
    except _Refused as refused:
        return Refusal(400, "WA400", {refused.where: refused.reason})


def _check(document: Any, sender: str) -> V2Send:
    body = _object(document, "body")
    message = _object(body.get("messaging_object"), "messaging_object")
    extra = _object(body.get("extra_info"), "extra_info", required=False)
    where = "messaging_object"
    for name, value in extra.items():
        if value is not None and not isinstance(value, str):
            raise _Refused(f"extra_info.{name}", "must be a string")
    refs = {
        n: _optional_text(extra, n, "extra_info", MAX_REF_LENGTH) for n in ("ref", "ref1", "ref2")
    }
    if message.get("messaging_product") != "whatsapp":
        raise _Refused(f"{where}.messaging_product", 'must be "whatsapp"')
    if message.get("recipient_type", "individual") != "individual":
        raise _Refused(f"{where}.recipient_type", 'must be "individual"')
    to = _text(message, "to", where)
    if "," in to:
        raise _Refused(f"{where}.to", "one recipient a request: send one request per number")
    recipient = e164_digits(to)
    if recipient is None:
        raise _Refused(f"{where}.to", f"invalid number: {to[:40]}")
    kind = _text(message, "type", where)
    if kind not in MESSAGE_TYPES:
        raise _Refused(
            f"{where}.type",
            f"unsupported type {kind[:40]!r}: use one of {', '.join(MESSAGE_TYPES)}",
        )
    content = _object(message.get(kind), f"{where}.{kind}")
    kept: dict[str, str | None] = {
        **refs,
        "callback_url": _optional_text(extra, "callback_url", "extra_info"),
    }
    buttons: tuple[tuple[str, str], ...] = ()
    at = f"{where}.{kind}"
    if kind == "text":
        kept["body"] = _text(content, "body", at, MAX_BODY_LENGTH)
    elif kind in _MEDIA:
        kept["media_url"] = _media(content, at)
        kept["caption"] = _optional_text(content, "caption", at, MAX_CAPTION)
    elif kind == "template":
        kept.update(_template(content, at))
    else:
        kept["body"], buttons = _interactive(content, at)
    context = message.get("context")
    if context is not None:
        _text(_object(context, f"{where}.context"), "message_id", f"{where}.context", _MAX_ID)
    accepted = Accepted(
        recipients=[recipient],
        sender=sender,
        type=kind,
        channel="whatsapp",
        kept=kept,
        api_version="v2",
        message_object=json.dumps(message, ensure_ascii=False, sort_keys=True),
    )
    return V2Send(accepted, message, buttons)


def _media(content: Mapping[str, Any], at: str) -> str | None:
    link = _optional_text(content, "link", at)
    if link is None and content.get("id") is None:
        raise _Refused(f"{at}.link", "missing: a media object needs a link or an id")
    if link is not None and not link.strip().lower().startswith(("http://", "https://")):
        raise _Refused(f"{at}.link", f"not an http(s) link: {link[:60]}")
    return link


def _template(content: Mapping[str, Any], at: str) -> dict[str, str | None]:
    name = _text(content, "name", at, 512)
    language = _object(content.get("language"), f"{at}.language")
    lang = _text(language, "code", f"{at}.language")
    components = content.get("components")
    params: list[str] = []
    if components is not None:
        for i, component in enumerate(_list(components, f"{at}.components")):
            where = f"{at}.components[{i}]"
            part = _object(component, where)
            kind = _text(part, "type", where).lower()
            if kind not in _COMPONENTS:
                raise _Refused(f"{where}.type", f"unknown component {kind[:40]!r}")
            if kind == "button":
                _text(part, "sub_type", where)
                index = part.get("index")
                if not str(index).isdigit() or int(str(index)) > MAX_BUTTON_INDEX:
                    raise _Refused(f"{where}.index", f"must be 0 to {MAX_BUTTON_INDEX}")
            if kind == "carousel":
                cards = _list(part.get("cards"), f"{where}.cards")
                if not 1 <= len(cards) <= MAX_CARDS:
                    raise _Refused(f"{where}.cards", f"1 to {MAX_CARDS} cards ({len(cards)})")
            parameters = part.get("parameters")
            if parameters is not None:
                for j, parameter in enumerate(_list(parameters, f"{where}.parameters")):
                    _text(
                        _object(parameter, f"{where}.parameters[{j}]"),
                        "type",
                        f"{where}.parameters[{j}]",
                    )
                if kind == "body":
                    params = [str(p.get("text", "")) for p in parameters]
    return {"template_name": name, "lang_code": lang, "params": _csv(params) if params else None}


def _csv(values: list[str]) -> str:
    return ",".join(
        '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v for v in values
    )


def _interactive(
    content: Mapping[str, Any], at: str
) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    kind = _text(content, "type", at)
    if kind not in _INTERACTIVE:
        raise _Refused(
            f"{at}.type",
            f"unsupported interactive type {kind[:40]!r}: use {', '.join(_INTERACTIVE)}",
        )
    needs_body = kind not in ("product", "product_list")
    body = _object(content.get("body"), f"{at}.body", required=needs_body)
    text = _text(body, "text", f"{at}.body", MAX_INTERACTIVE_BODY) if body or needs_body else None
    header = _object(content.get("header"), f"{at}.header", required=False)
    if header.get("type", "text") == "text" and header:
        _text(header, "text", f"{at}.header", MAX_HEADER_FOOTER)
    footer = _object(content.get("footer"), f"{at}.footer", required=False)
    if footer:
        _text(footer, "text", f"{at}.footer", MAX_HEADER_FOOTER)
    action = _object(content.get("action"), f"{at}.action")
    where = f"{at}.action"
    if kind == "button":
        return text, _reply_buttons(action, where)
    if kind == "list":
        _list_rows(action, where)
    return text, ()


def _reply_buttons(action: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    buttons = _list(action.get("buttons"), f"{where}.buttons")
    if not 1 <= len(buttons) <= MAX_REPLY_BUTTONS:
        raise _Refused(
            f"{where}.buttons", f"1 to {MAX_REPLY_BUTTONS} reply buttons ({len(buttons)})"
        )
    found: list[tuple[str, str]] = []
    for i, button in enumerate(buttons):
        at = f"{where}.buttons[{i}]"
        item = _object(button, at)
        if item.get("type") != "reply":
            raise _Refused(f"{at}.type", 'must be "reply"')
        reply = _object(item.get("reply"), f"{at}.reply")
        title = _text(reply, "title", f"{at}.reply", MAX_BUTTON_TITLE)
        button_id = _text(reply, "id", f"{at}.reply", _MAX_ID)
        if any(button_id == seen for _, seen in found):
            raise _Refused(f"{at}.reply.id", f"{button_id[:40]!r} used twice: ids must differ")
        found.append((title, button_id))
    return tuple(found)


def _list_rows(action: Mapping[str, Any], where: str) -> None:
    _text(action, "button", where, MAX_BUTTON_TITLE)
    sections = _list(action.get("sections"), f"{where}.sections")
    if not 1 <= len(sections) <= MAX_LIST_SECTIONS:
        raise _Refused(f"{where}.sections", f"1 to {MAX_LIST_SECTIONS} sections ({len(sections)})")
    ids: set[str] = set()
    for i, section in enumerate(sections):
        at = f"{where}.sections[{i}]"
        rows = _list(_object(section, at).get("rows"), f"{at}.rows")
        if not rows:
            raise _Refused(f"{at}.rows", "a section needs at least one row")
        for j, row in enumerate(rows):
            row_at = f"{at}.rows[{j}]"
            item = _object(row, row_at)
            _text(item, "title", row_at, MAX_ROW_TITLE)
            _optional_text(item, "description", row_at, MAX_ROW_DESCRIPTION)
            row_id = _text(item, "id", row_at, 200)
            if row_id in ids:
                raise _Refused(f"{row_at}.id", f"{row_id[:40]!r} used twice: ids must differ")
            ids.add(row_id)
    if len(ids) > MAX_LIST_ROWS:
        raise _Refused(f"{where}.sections", f"at most {MAX_LIST_ROWS} rows in all ({len(ids)})")
