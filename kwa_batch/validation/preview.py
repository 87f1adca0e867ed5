"""The messages as their recipients will read them: a template's header, body, footer and
buttons with the row's parameters filled in, a carousel's cards, an interactive message's
reply buttons or list, a ``message_json`` row's object (:meth:`ValidationReport.preview`).

Buttons show as ``[title]``, a list as its button then its sections (``Section: row,
row``), a card as ``card N: [image: link] parameters``, a reply in context starts with
``(reply to <message id>)``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..catalogue import MEDIA_FORMATS
from ..message_objects import (
    messaging_object,
    read_cards,
    read_message_json,
    split_buttons,
    split_params,
)
from .template_checks import catalogue_frame, check_templates

__all__ = ["render_messages"]


def render_messages(messages: pd.DataFrame, catalogue: Any = None, rows: int = 5) -> pd.DataFrame:
    """The first ``rows`` messages as their recipients will read them.

    A template row shows its header, body and footer with the parameters filled in; a text
    row its body; a template row whose template is not in the catalogue (or without a
    catalogue) shows NA.

    Returns:
        A frame indexed like the first ``rows`` of ``messages``, with ``to``, ``template``
        (``name (lang)``, NA for text) and ``message``.

    Example:
        >>> from kwa_batch import load_templates
        >>> catalogue = load_templates({"data": [{"name": "hi", "language": "en",
        ...     "status": "approved", "components": [{"type": "BODY", "text": "Hi {{1}}!"}]}]})
        >>> render_messages(pd.DataFrame({"template_name": ["hi"], "params": ["Ana"]}),
        ...                 catalogue)["message"].tolist()
        ['Hi Ana!']
    """
    head = messages.head(rows)
    frame = catalogue_frame(catalogue if catalogue is not None else {"data": []})
    table = frame.set_index(["template_name", "lang_code"])
    langs = check_templates(head, frame).lang_code
    shown: list[Any] = []
    names: list[Any] = []
    for i, (_, row) in enumerate(head.iterrows()):  # a few rows: a loop is fine
        name = row.get("template_name")
        lang = langs.iloc[i] if langs is not None else None
        if _session(row):
            names.append(pd.NA)
            shown.append(_reply_prefix(row) + _render_session(row))
            continue
        if not isinstance(name, str) or not name.strip():
            names.append(pd.NA)
            body = row.get("body")
            shown.append(_reply_prefix(row) + body if isinstance(body, str) else pd.NA)
            continue
        key = (name.strip(), lang)
        names.append(f"{key[0]} ({lang if isinstance(lang, str) else 'no language'})")
        if not isinstance(lang, str) or key not in table.index:
            shown.append(pd.NA)
            continue
        shown.append(_reply_prefix(row) + _render(table.loc[key], row))
    return pd.DataFrame(
        {
            "to": head["to"] if "to" in head.columns else pd.NA,
            "template": pd.array(names, dtype="str"),
            "message": pd.array(shown, dtype="str"),
        },
        index=head.index,
    )


def _fill(text: str, values: list[str]) -> str:
    for number, value in enumerate(values, start=1):
        text = text.replace("{{" + str(number) + "}}", value)
    return text


def _render(template: pd.Series, row: pd.Series) -> str:
    parts = []
    header = template["header_format"]
    if header == "TEXT" and isinstance(template["header_text"], str):
        value = row.get("param_header")
        parts.append(_fill(template["header_text"], [value] if isinstance(value, str) else []))
    elif header in MEDIA_FORMATS:
        link = row.get("media_url")
        parts.append(f"[{header.lower()}: {link if isinstance(link, str) else 'missing'}]")
    parts.append(_fill(str(template["body"]), split_params(row.get("params"))))
    if isinstance(template["footer"], str):
        parts.append(template["footer"])
    if isinstance(template["url_button"], str):
        value = row.get("param_url")
        parts.append(
            "[" + _fill(template["url_button"], [value] if isinstance(value, str) else []) + "]"
        )
    others = _template_buttons(template, row)
    if others:
        parts.append(others)
    for number, card in enumerate(read_cards(row.get("cards")), start=1):
        kind = str(template.get("card_header") or "media").lower()
        media = f"[{kind}: {card['media_url']}] " if card["media_url"] else ""
        parts.append(f"card {number}: {media}{', '.join(split_params(card['params']))}".rstrip())
    return "\n".join(parts)


def _text(row: pd.Series, name: str) -> str | None:
    value = row.get(name)
    return value if isinstance(value, str) and value.strip() else None


def _session(row: pd.Series) -> bool:
    """A row previewed from its message object: message_json, or interactive."""
    kind = _text(row, "type")
    return _text(row, "message_json") is not None or (kind or "").lower() == "interactive"


def _reply_prefix(row: pd.Series) -> str:
    reply_to = _text(row, "reply_to")
    return f"(reply to {reply_to.strip()})\n" if reply_to is not None else ""


def _template_buttons(template: pd.Series, row: pd.Series) -> str:
    """A template's buttons other than its link, ``[title]`` each (a copy-code button with
    the row's code, a flow button with its title)."""
    summary = template.get("buttons")
    if not isinstance(summary, str):
        return ""
    values = iter(split_buttons(row.get("buttons")))
    shown = []
    for part in summary.split(";"):
        kind, _, title = (p.strip() for p in part.partition(":"))
        kind = kind.upper()
        if kind == "URL":
            continue  # shown on its own line, with the row's suffix
        if kind in ("QUICK_REPLY", "FLOW", "COPY_CODE"):
            value = next(values, "")
            title = f"Copy code {value}".strip() if kind == "COPY_CODE" else title or value
        shown.append(f"[{title or kind.lower()}]")
    return " ".join(shown)


def _render_session(row: pd.Series) -> str:
    """An interactive or message_json row, from the message object it sends."""
    fields = {str(k): v for k, v in row.items() if isinstance(v, str)}
    try:
        read_message_json(fields.get("message_json"))
        message = messaging_object(fields, "0")
    except (ValueError, RecursionError):
        return "[message_json: not valid JSON]"
    kind = message.get("type")
    inner = message.get(str(kind))
    body: dict[str, Any] = inner if isinstance(inner, dict) else {}
    if kind == "text":
        return str(body.get("body", ""))
    if kind != "interactive":
        caption = body.get("caption") or body.get("link") or body.get("name") or ""
        return f"[{kind}{': ' if caption else ''}{caption}]"
    parts = []
    for part in ("header", "body", "footer"):
        value = body.get(part)
        if isinstance(value, dict) and isinstance(value.get("text"), str):
            parts.append(value["text"])
    found = body.get("action")
    action: dict[str, Any] = found if isinstance(found, dict) else {}
    if body.get("type") == "button":
        titles = [b.get("reply", {}).get("title", "") for b in action.get("buttons", [])]
        parts.append(" ".join(f"[{title}]" for title in titles))
    elif body.get("type") == "cta_url":
        parameters = action.get("parameters")
        shown = parameters.get("display_text") if isinstance(parameters, dict) else None
        parts.append(f"[{shown or 'link'}]")
    elif body.get("type") == "list":
        parts.append(f"[{action.get('button', '')}]")
        for section in action.get("sections", []):
            rows = ", ".join(str(r.get("title", "")) for r in section.get("rows", []))
            title = section.get("title")
            parts.append(f"{title}: {rows}" if title else rows)
    return "\n".join(parts)
