"""The messages as their recipients will read them: a template's header, body, footer and
link with the row's parameters filled in (:meth:`ValidationReport.preview`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..catalogue import MEDIA_FORMATS
from ..message_objects import split_params
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
        if not isinstance(name, str) or not name.strip():
            names.append(pd.NA)
            shown.append(row.get("body") if isinstance(row.get("body"), str) else pd.NA)
            continue
        key = (name.strip(), lang)
        names.append(f"{key[0]} ({lang if isinstance(lang, str) else 'no language'})")
        if not isinstance(lang, str) or key not in table.index:
            shown.append(pd.NA)
            continue
        shown.append(_render(table.loc[key], row))
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
    return "\n".join(parts)
