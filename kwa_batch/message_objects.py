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
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MEDIA_KINDS",
    "extra_info",
    "media_kind",
    "messaging_object",
    "split_params",
    "wa_number",
]

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


def wa_number(e164: str) -> str:
    """A number as WhatsApp's message objects write it: digits, no ``+``.

    >>> wa_number("+919876543210")
    '919876543210'
    """
    return e164.strip().lstrip("+")


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
        media_type = media_kind(media)
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
    suffix = _text(fields.get("param_url"))
    if kind == "authenticationtemplate" and code is not None:
        components.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": "0",
                "parameters": _parameters([code]),
            }
        )
    elif suffix is not None:
        index = str(fields.get("url_button_index") or 0)
        components.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": index,
                "parameters": _parameters([suffix]),
            }
        )
    template: dict[str, Any] = {"name": str(fields.get("template_name") or "").strip()}
    lang = _text(fields.get("lang_code"))
    if lang is not None:
        template["language"] = {"code": lang.strip()}
    if components:
        template["components"] = components
    return template


def messaging_object(fields: Mapping[str, Any], to: str) -> dict[str, Any]:
    """WhatsApp's message object for one validated row, to one recipient (E.164).

    Args:
        fields: the row's message fields (the API's column names: ``type``, ``body``,
            ``template_name``, ``params``, ``lang_code``, ``media_url``, ``caption``,
            ``param_header``, ``param_url``, ``verification_code``); missing ones as None.
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
    if kind in _TEMPLATES:
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
