"""A row's message as WhatsApp's own message object: what Kaleyra's v2 API sends.

Kaleyra's v2 API (``POST <host>/v2/<SID>/whatsapp/<sender>/messages``) carries WhatsApp
Cloud API's message object under ``messaging_object`` (see ``kaleyra-facts.md``, "Kaleyra's
WhatsApp API v2"). :func:`messaging_object` builds it from a row's fields, the same columns
v1 sends as a form, so one spreadsheet serves both versions:

========================  =========================================================
row                       message object
========================  =========================================================
``type=text``             ``{"type": "text", "text": {"body", "preview_url"}}``
``type=media``            ``{"type": "image" | "video" | "audio" | "document",
                          <kind>: {"link", "caption"}}`` (the kind from the link's
                          extension; a document otherwise)
``type=template``,        ``{"type": "template", "template": {"name", "language":
``mediatemplate``,        {"code"}, "components": [header, body, button...]}}``:
``authenticationtemplate``  ``param_header`` (text) or ``media_url`` (media) in the
                          header; ``params`` in the body; ``param_url`` the dynamic URL
                          button's suffix; ``verification_code`` the body's and the
                          copy-code button's parameter
``buttons`` (template)    one ``button`` component per value, in the template's
                          button order (``template_buttons``, from the catalogue):
                          ``quick_reply`` (``payload``), ``flow`` (``action.flow_token``)
                          or ``copy_code`` (``coupon_code``); without it, quick replies
                          from index 0 and the URL button after them
``cards`` (template)      ``{"type": "carousel", "cards": [{"card_index", "components":
                          [header, body]}]}``
``type=interactive``      ``{"type": "interactive", "interactive": {"type": "button" |
                          "list", "body": {"text"}, "action": {...}}}``: reply buttons
                          from ``buttons`` (``id=title``), a list from ``list`` and
                          ``list_button``
``message_json``          the object as written (``to``, ``messaging_product`` set)
``reply_to``              ``"context": {"message_id"}`` on any of these
========================  =========================================================

Nothing here checks a row: validation did (invalid rows never reach it). The module is
pure: no I/O, no pandas, so the client, the preview and the emulator's tests share it.

Example:
    >>> message = messaging_object({"type": "template", "template_name": "order_shipped",
    ...                             "lang_code": "en", "params": "Asha,A-1001"}, "+919876543210")
    >>> message["to"], message["template"]["components"][0]["parameters"][1]
    ('919876543210', {'type': 'text', 'text': 'A-1001'})
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MEDIA_KINDS",
    "VALUE_BUTTONS",
    "extra_info",
    "list_sections",
    "media_kind",
    "messaging_object",
    "read_cards",
    "read_message_json",
    "reply_buttons",
    "split_buttons",
    "split_params",
    "wa_number",
]

#: A template's button types whose value a row gives in ``buttons``, in the template's
#: order: a quick reply's payload, a flow button's token, a copy-code button's code.
VALUE_BUTTONS = ("QUICK_REPLY", "FLOW", "COPY_CODE")

#: Link extensions and the WhatsApp media kind they are sent as (anything else: document).
MEDIA_KINDS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "image"),
    **dict.fromkeys(("mp4", "3gp", "3gpp"), "video"),
    **dict.fromkeys(("aac", "amr", "mp3", "m4a", "ogg", "opus"), "audio"),
}
_TEMPLATES = ("template", "mediatemplate", "authenticationtemplate")


def _text(value: Any) -> str | None:
    """A filled field as text; None for missing (None, pandas' NA, NaN) or blank."""
    missing = type(value).__name__ == "NAType"  # pandas' NA, without importing pandas
    if value is None or missing or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def split_params(params: Any) -> list[str]:
    """A ``params`` cell as values (CSV style: ``"Tan, Wei Ling",A1008``); [] when empty.

    >>> split_params('"Tan, Wei Ling",A1008')
    ['Tan, Wei Ling', 'A1008']
    """
    text = _text(params)
    if text is None:
        return []
    return next(csv.reader([text]), [])


def split_buttons(cell: Any) -> list[str]:
    """A ``buttons`` cell as its values: ``|``-separated, each stripped; [] when empty.

    >>> split_buttons("yes | no")
    ['yes', 'no']
    """
    text = _text(cell)
    return [] if text is None else [part.strip() for part in text.split("|")]


def _choice(value: str) -> tuple[str, str]:
    """``id=title`` as (id, title); a value without ``=`` is its own id."""
    ident, equals, title = value.partition("=")
    return (ident.strip(), title.strip()) if equals else (value, value)


def reply_buttons(cell: Any) -> list[tuple[str, str]]:
    """An interactive row's reply buttons as ``(id, title)``: ``id=title``, or a title
    that is its own id.

    >>> reply_buttons("yes=Yes, please|Later")
    [('yes', 'Yes, please'), ('Later', 'Later')]
    """
    return [_choice(value) for value in split_buttons(cell)]


def list_sections(cell: Any) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """A ``list`` cell as sections of ``(id, title)`` rows: ``Section: row1|row2; Other:
    row3`` (a section without ``Title:`` has no title; a row ``id=title`` sets its id).

    >>> list_sections("Shoes: s1=Sneakers|Boots; Bags")
    [('Shoes', [('s1', 'Sneakers'), ('Boots', 'Boots')]), (None, [('Bags', 'Bags')])]
    """
    text = _text(cell)
    sections: list[tuple[str | None, list[tuple[str, str]]]] = []
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        title, colon, rows = part.partition(":")
        if not colon:
            title, rows = "", part
        sections.append((title.strip() or None, reply_buttons(rows)))
    return sections


def read_cards(cell: Any) -> list[dict[str, str | None]]:
    """The ``cards`` validation gathers from ``card_N_media_url`` / ``card_N_params``: JSON
    ``[{"media_url", "params"}, ...]`` in card order; [] when empty.

    >>> read_cards('[{"media_url": "https://x.io/a.jpg", "params": "20% off"}]')[0]["params"]
    '20% off'
    """
    text = _text(cell)
    if text is None:
        return []
    cards = json.loads(text)
    return [{"media_url": card.get("media_url"), "params": card.get("params")} for card in cards]


def read_message_json(cell: Any) -> Any:
    """A ``message_json`` cell parsed (None when empty); ValueError when it is no JSON."""
    text = _text(cell)
    return None if text is None else json.loads(text)


def wa_number(e164: str) -> str:
    """A number as WhatsApp's message objects write it: digits, no ``+``.

    >>> wa_number("+919876543210")
    '919876543210'
    """
    return e164.strip().lstrip("+")


def _approved_kind(approved: Any) -> str | None:
    """The media kind an approved header format names (IMAGE, VIDEO, DOCUMENT), else None."""
    text = (_text(approved) or "").strip().lower()
    return text if text in ("image", "video", "document") else None


def media_kind(url: str) -> str:
    """The WhatsApp media kind a link is sent as, from its extension (document otherwise).

    >>> media_kind("https://example.com/a/photo.JPG?x=1"), media_kind("https://x.io/f.pdf")
    ('image', 'document')
    """
    path = urlsplit(url).path
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return MEDIA_KINDS.get(extension, "document")


def _parameters(values: list[str]) -> list[dict[str, str]]:
    return [{"type": "text", "text": value} for value in values]


def _template(fields: Mapping[str, Any], kind: str) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    media = _text(fields.get("media_url"))
    header = _text(fields.get("param_header"))
    if media is not None:
        # The approved header's format decides (a link need not end in .jpg); else the link.
        media_type = _approved_kind(fields.get("header_format")) or media_kind(media)
        components.append(
            {"type": "header", "parameters": [{"type": media_type, media_type: {"link": media}}]}
        )
    elif header is not None:
        components.append({"type": "header", "parameters": _parameters([header])})
    body = split_params(fields.get("params"))
    code = _text(fields.get("verification_code"))
    if kind == "authenticationtemplate" and code is not None:
        body = [code]
    if body:
        components.append({"type": "body", "parameters": _parameters(body)})
    components.extend(_buttons(fields, kind, code))
    cards = read_cards(fields.get("cards"))
    if cards:
        components.append(
            {
                "type": "carousel",
                "cards": [
                    _card(i, c, fields.get("card_header_format")) for i, c in enumerate(cards)
                ],
            }
        )
    template: dict[str, Any] = {"name": str(fields.get("template_name") or "").strip()}
    lang = _text(fields.get("lang_code"))
    if lang is not None:
        template["language"] = {"code": lang.strip()}
    if components:
        template["components"] = components
    return template


def _button(index: int, kind: str, value: str) -> dict[str, Any]:
    """One template button's component: its value as its type takes it."""
    parameter: dict[str, Any]
    if kind == "FLOW":
        sub_type, parameter = "flow", {"type": "action", "action": {"flow_token": value}}
    elif kind == "COPY_CODE":
        sub_type, parameter = "copy_code", {"type": "coupon_code", "coupon_code": value}
    elif kind == "URL":
        sub_type, parameter = "url", {"type": "text", "text": value}
    else:
        sub_type, parameter = "quick_reply", {"type": "payload", "payload": value}
    return {"type": "button", "sub_type": sub_type, "index": str(index), "parameters": [parameter]}


def _buttons(fields: Mapping[str, Any], kind: str, code: str | None) -> list[dict[str, Any]]:
    """The button components of a template row, in the template's button order."""
    if kind == "authenticationtemplate" and code is not None:
        return [_button(0, "URL", code)]
    values = split_buttons(fields.get("buttons"))
    suffix = _text(fields.get("param_url"))
    layout = _text(fields.get("template_buttons"))
    types = layout.split("|") if layout is not None else ["QUICK_REPLY"] * len(values)
    slots = [i for i, t in enumerate(types) if t in VALUE_BUTTONS]
    out = [  # an empty value: a quick reply without a payload (it needs no component)
        (i, _button(i, types[i], value)) for i, value in zip(slots, values, strict=False) if value
    ]
    if suffix is not None:
        url_at = types.index("URL") if "URL" in types else len(types)
        if layout is None and _text(fields.get("url_button_index")) is not None:
            url_at = int(str(fields.get("url_button_index")))
        out.append((url_at, _button(url_at, "URL", suffix)))
    return [component for _, component in sorted(out, key=lambda pair: pair[0])]


def _card(index: int, card: Mapping[str, Any], approved: Any = None) -> dict[str, Any]:
    """One carousel card: its media header (of the approved cards' format, else the link's)
    and its body's parameters."""
    components: list[dict[str, Any]] = []
    media = _text(card.get("media_url"))
    if media is not None:
        media_type = _approved_kind(approved) or media_kind(media)
        components.append(
            {"type": "header", "parameters": [{"type": media_type, media_type: {"link": media}}]}
        )
    body = split_params(card.get("params"))
    if body:
        components.append({"type": "body", "parameters": _parameters(body)})
    return {"card_index": index, "components": components}


def _interactive(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An interactive row: reply buttons, or a list."""
    body = {"text": _text(fields.get("body")) or ""}
    sections = list_sections(fields.get("list"))
    if sections:
        action: dict[str, Any] = {
            "button": (_text(fields.get("list_button")) or "").strip(),
            "sections": [
                {
                    **({"title": title} if title is not None else {}),
                    "rows": [{"id": ident, "title": label} for ident, label in rows],
                }
                for title, rows in sections
            ],
        }
        return {"type": "list", "body": body, "action": action}
    buttons = [
        {"type": "reply", "reply": {"id": ident, "title": title}}
        for ident, title in reply_buttons(fields.get("buttons"))
    ]
    return {"type": "button", "body": body, "action": {"buttons": buttons}}


def messaging_object(fields: Mapping[str, Any], to: str) -> dict[str, Any]:
    """WhatsApp's message object for one validated row, to one recipient (E.164).

    Args:
        fields: the row's message fields (the API's column names: ``type``, ``body``,
            ``template_name``, ``params``, ``lang_code``, ``media_url``, ``caption``,
            ``param_header``, ``param_url``, ``verification_code``, ``buttons``,
            ``list``, ``list_button``, ``reply_to``, ``message_json``, ``cards``,
            ``template_buttons``); missing ones as None.
        to: the recipient, E.164 with or without ``+``.

    Returns:
        ``{"messaging_product": "whatsapp", "recipient_type": "individual", "to", "type",
        <type>: {...}}``: plain JSON-ready values.
    """
    kind = (_text(fields.get("type")) or "text").strip().lower()
    out: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_number(to),
    }
    written = read_message_json(fields.get("message_json"))
    if isinstance(written, Mapping):
        out = {**out, **written, "messaging_product": "whatsapp", "to": wa_number(to)}
    elif kind == "interactive":
        out["type"] = "interactive"
        out["interactive"] = _interactive(fields)
    elif kind in _TEMPLATES:
        out["type"] = "template"
        out["template"] = _template(fields, kind)
    elif kind == "media":
        link = _text(fields.get("media_url")) or ""
        media_type = media_kind(link)
        media: dict[str, Any] = {"link": link}
        caption = _text(fields.get("caption"))
        if caption is not None and media_type != "audio":
            media["caption"] = caption
        out["type"] = media_type
        out[media_type] = media
    else:
        body = _text(fields.get("body")) or ""
        out["type"] = "text"
        out["text"] = {"body": body, "preview_url": "http://" in body or "https://" in body}
    reply_to = _text(fields.get("reply_to"))
    if reply_to is not None and "context" not in out:
        out["context"] = {"message_id": reply_to.strip()}
    return out


def extra_info(fields: Mapping[str, Any]) -> dict[str, str]:
    """The v2 request's ``extra_info``: the row's ``ref``, ``ref1``, ``ref2`` that are filled
    (they come back in the callbacks, as in v1).

    >>> extra_info({"ref": "CUST-1", "ref1": None})
    {'ref': 'CUST-1'}
    """
    return {
        name: value
        for name in ("ref", "ref1", "ref2")
        if (value := _text(fields.get(name))) is not None
    }
