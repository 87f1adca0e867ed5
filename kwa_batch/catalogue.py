"""The template catalogue: which WhatsApp templates exist, in which languages, and what
each one needs; loaded from a file the user keeps or from WhatsApp's template JSON.

It sits with the loaders, below validation: the client returns its frame
(:meth:`~kwa_batch.sending.client.KaleyraClient.templates`), and the client must not
reach validation (the emulator, which builds clients, never uses the client's checks).

WhatsApp checks a template message only after Kaleyra has answered ``sent``: a wrong
parameter count, a language the template was not approved in or a paused template come
back later as a ``failed`` callback (132000, 132001, 132015…). :func:`load_templates`
gives the catalogue those checks need, one row per template and language;
:mod:`kwa_batch.validation.template_checks` checks rows against it before sending.

Sources:

- a CSV or XLSX file with columns ``template_name``, ``lang_code``, ``status``, ``body``
  (placeholders ``{{1}}``, ``{{2}}``…) and optionally ``category``, ``header_format``
  (NONE, TEXT, IMAGE, VIDEO, DOCUMENT), ``header_text``, ``footer`` and ``url_button`` (a
  link; ``{{1}}`` in it makes it dynamic), ``buttons`` (the buttons in their order,
  ``TYPE: text`` joined by ``;``: ``QUICK_REPLY: Yes; URL: https://…; FLOW: Book``), and for
  a carousel ``card_params`` (each card's body placeholders, ``|``-separated: ``1|1`` for
  two cards of one) and ``card_header`` (IMAGE or VIDEO). Cells are read as text, exactly as
  written;
- a JSON file, or the parsed object, in WhatsApp's template format as Kaleyra's v2 API
  returns it: ``{"data": [{"name", "language", "status", "category", "components":
  [...]}]}``, a ``CAROUSEL`` component's ``cards`` read for their count, header format and
  body placeholders. Unknown fields are ignored and statuses may come in any case;
- a DataFrame of either shape of columns.

Within bounds: only a regular file is read (a FIFO, a device or a folder is refused before it
is opened), up to :data:`MAX_CATALOGUE_BYTES`; JSON nested deeper than
:data:`~kwa_batch._http.bounded.MAX_JSON_DEPTH` levels, a text field longer than
:data:`MAX_TEXT_CHARS`, more than :data:`MAX_PARTS` components or buttons in a template, or a
value of the wrong type (a list where text is expected) are refused in one line naming the
template; a CSV or XLSX file is read by :mod:`kwa_batch.loading.reading`, as every user's
table is (its encoding detected; a workbook's first sheet, within its limits).

Example:
    >>> catalogue = load_templates("sample_data/templates.csv")  # doctest: +SKIP
    >>> catalogue.loc[0, ["template_name", "lang_code", "status", "body_params"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError, KwaBatchError
from .fields import BODY_MAX
from .loading.files import FileKind, check_regular_file, read_regular_file
from .loading.reading import read_table
from .message_objects import VALUE_BUTTONS
from .tables import Sheet, csv_unguard, write_csv, write_xlsx

__all__ = [
    "CATALOGUE_FILE",
    "HEADER_FORMATS",
    "MAX_CATALOGUE_BYTES",
    "MAX_PARTS",
    "MAX_TEXT_CHARS",
    "MEDIA_FORMATS",
    "STATIC_URL",
    "TEMPLATE_COLUMNS",
    "count_placeholders",
    "load_templates",
    "save_templates",
]

#: Columns of :func:`load_templates`, in order.
TEMPLATE_COLUMNS = (
    "template_name",
    "lang_code",
    "category",
    "status",
    "body",
    "header_format",
    "header_text",
    "footer",
    "url_button",
    "buttons",
    "card_header",
    "card_params",
    "body_params",
    "header_params",
    "url_params",
    "button_types",
    "card_count",
)
# The button types of WhatsApp's template JSON.
#: A URL button without a ``{{1}}`` in its link (``button_types``): nothing to give it.
STATIC_URL = "STATIC_URL"
_BUTTON_KINDS = frozenset(
    {
        *VALUE_BUTTONS,
        "URL",
        STATIC_URL,
        "PHONE_NUMBER",
        "OTP",
        "CATALOG",
        "MPM",
        "SPM",
        "VOICE_CALL",
    }
)
#: Header formats WhatsApp knows (``NONE``: no header).
HEADER_FORMATS = ("NONE", "TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION")
#: Headers that show a file, which the message must link (``media_url``).
MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_REQUIRED = ("template_name", "lang_code", "status", "body")
# Other names a user's file may give a column (compared lower-cased, spaces as _).
_ALIASES = {
    "name": "template_name",
    "template": "template_name",
    "language": "lang_code",
    "lang": "lang_code",
    "language_code": "lang_code",
    "text": "body",
    "body_text": "body",
    "header": "header_text",
    "header_type": "header_format",
    "url": "url_button",
    "button_url": "url_button",
}
_TEXT_COLUMNS = TEMPLATE_COLUMNS[:12]

#: The largest catalogue read (a file, or every page of the API's list): a real account's
#: few hundred templates take well under 1 MiB.
MAX_CATALOGUE_BYTES = 32 * 2**20
#: The longest text of a template's field: Kaleyra's longest message body (WhatsApp's own
#: limits are lower: 1,024 characters for a body, 60 for a header or a footer).
MAX_TEXT_CHARS = BODY_MAX
# The longest ``buttons`` summary (Excel's limit for a cell, so that it saves as .xlsx).
_MAX_BUTTONS_CHARS = 32_767
#: The most components, or buttons, one template may list (WhatsApp: a header, a body, a
#: footer and one set of at most 10 buttons).
MAX_PARTS = 64
#: What a catalogue file is, for the messages that refuse one, and how large it may be.
CATALOGUE_FILE = FileKind(
    "template catalogue",
    "save the catalogue as a .json, .csv or .xlsx file first",
    MAX_CATALOGUE_BYTES,
    "keep only your account's templates (kwa-batch templates writes them)",
    f"one row per template (columns {', '.join(_REQUIRED)}, then any others)",
)
_SUFFIXES = (".json", ".csv", ".txt", ".tsv", ".xlsx", ".xlsm")


def count_placeholders(text: str | None) -> int:
    """How many distinct ``{{n}}`` placeholders ``text`` holds (0 for None).

    >>> count_placeholders("Hi {{1}}, order {{2}} ({{1}})")
    2
    """
    return len(set(_PLACEHOLDER.findall(text))) if text else 0


def load_templates(
    source: str | Path | pd.DataFrame | Mapping[str, Any] | list[Any],
) -> pd.DataFrame:
    """The template catalogue, one row per template and language.

    Args:
        source: a ``.csv``/``.xlsx`` file of templates, a ``.json`` file or parsed object
            in WhatsApp's format (``{"data": [...]}`` or the list itself), or a DataFrame.

    Returns:
        A frame with :data:`TEMPLATE_COLUMNS`: text columns (``status`` and ``category``
        lower case, ``header_format`` upper case, NA when absent) and the integer counts
        ``body_params``, ``header_params`` (a TEXT header's) and ``url_params`` (a URL
        button's), ``card_count`` (a carousel's cards, 0 for other templates),
        ``button_types`` (the buttons' types in order, ``|``-separated, e.g.
        ``QUICK_REPLY|URL``; NA without buttons), sorted by name and language.

    Raises:
        InputError: the file is missing or unreadable, a required column is missing, a
            template has no name, body or language, an unknown header format, or the same
            template and language twice; the message names the row and the fix.

    Example:
        >>> frame = load_templates({"data": [{"name": "hello", "language": "en",
        ...     "status": "APPROVED", "components": [{"type": "BODY", "text": "Hi {{1}}"}]}]})
        >>> frame.loc[0, "status"], int(frame.loc[0, "body_params"])
        ('approved', 1)
    """
    if isinstance(source, pd.DataFrame):
        return _from_table(source, "the catalogue frame", [f"row {i}" for i in source.index])
    if isinstance(source, Mapping | list):
        return _from_whatsapp(source, "the template JSON")
    file = Path(source)
    if not file.exists() and not file.is_symlink():
        raise InputError(f"{file}: no such template catalogue file")
    check_regular_file(file, CATALOGUE_FILE)  # a FIFO or a device: refused, never opened
    suffix = file.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(f"{file}: a template catalogue is a .csv, .xlsx or .json file")
    if suffix == ".json":
        document = _parse_json(read_regular_file(file, CATALOGUE_FILE), str(file))
        return _from_whatsapp(document, str(file))
    table = read_table(file, CATALOGUE_FILE)
    frame = table.frame()
    if table.sheet is None:  # the formula rule's guard, as save_templates writes it
        for position in range(frame.shape[1]):
            frame.isetitem(position, csv_unguard(frame.iloc[:, position]))
    return _from_table(frame, str(file), table.labels())


def _parse_json(raw: bytes, where: str) -> Any:
    """A JSON document, its nesting measured before it is parsed (Python's parser fails on
    deep nesting with a RecursionError)."""
    from ._http.bounded import MAX_JSON_DEPTH, json_depth  # (requests is loaded only when needed)

    if not raw.strip():
        raise InputError(f"{where}: the file is empty: export the templates again")
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise InputError(
            f"{where}: nests {depth:,} levels deep, more than the {MAX_JSON_DEPTH} a catalogue "
            "may (WhatsApp's template JSON nests 7): not a template catalogue; export it again"
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = str(exc)[:200]
        raise InputError(f"{where}: not valid JSON ({reason}): export it again") from None


def save_templates(catalogue: pd.DataFrame, path: str | Path) -> Path:
    """Write a catalogue to ``.csv`` (UTF-8) or ``.xlsx`` (every cell text), the way
    :func:`load_templates` reads it back.

    Written by :mod:`kwa_batch.tables`, as every table this package writes: atomically (a
    failed write leaves the file as it was), and in a CSV with the formula rule (a body
    that starts with ``=`` is written ``'=…``; :func:`load_templates` removes that ``'``).

    Raises:
        InputError: the extension is not .csv or .xlsx, or the file cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InputError(f"cannot write a catalogue to {target.name!r}: use .csv or .xlsx")
    frame = catalogue[[c for c in TEMPLATE_COLUMNS if c in catalogue.columns]]
    try:
        if suffix == ".csv":
            return write_csv(frame, target)
        return write_xlsx(target, [Sheet("Templates", frame)])
    except KwaBatchError as exc:
        raise InputError(str(exc)) from None


# -- a table of templates ---------------------------------------------------------------


def _key(name: object) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def _from_table(table: pd.DataFrame, where: str, labels: list[str]) -> pd.DataFrame:
    renamed: dict[Any, str] = {}
    for column in table.columns:
        key = _key(column)
        name = _ALIASES.get(key, key)
        if name in TEMPLATE_COLUMNS and name not in renamed.values():
            renamed[column] = name
    frame = table[list(renamed)].rename(columns=renamed).reset_index(drop=True)
    missing = [name for name in _REQUIRED if name not in frame.columns]
    if missing:
        found = ", ".join(str(c)[:40] for c in table.columns[:20]) or "none"
        raise InputError(
            f"{where} has no {', '.join(repr(m) for m in missing)} column: a catalogue needs "
            f"{', '.join(_REQUIRED)} (found: {found})"
        )
    for name in _TEXT_COLUMNS:
        if name not in frame.columns:
            frame[name] = pd.Series(pd.NA, index=frame.index, dtype="str")
        else:
            try:
                text = frame[name].astype("str").str.strip()
            except (ValueError, TypeError) as exc:  # a cell str() refuses (a huge integer)
                raise InputError(f"{where}: column {name} cannot be read as text ({exc})") from None
            frame[name] = text.mask(text == "")
    return _finish(frame, labels, where)


def _finish(frame: pd.DataFrame, labels: list[str], where: str) -> pd.DataFrame:
    """Normalise, check and count a frame with every text column of the catalogue."""
    for name in _TEXT_COLUMNS:
        limit = _MAX_BUTTONS_CHARS if name == "buttons" else MAX_TEXT_CHARS
        lengths = frame[name].str.len().fillna(0).to_numpy()
        if (lengths > limit).any():
            i = int((lengths > limit).argmax())
            raise InputError(
                f"{where}, {labels[i]}: {name} is {int(lengths[i]):,} characters long, more "
                f"than the {limit:,} a template's field may hold (WhatsApp allows 1,024 in a "
                "body): not a template; shorten it"
            )
    for name in _REQUIRED:
        empty = frame[name].isna().to_numpy()
        if empty.any():
            first = labels[int(empty.argmax())]
            raise InputError(
                f"{where}, {first}: {name} is empty: every template needs a name, a "
                "language, a status and a body (fill it or remove the row)"
            )
    frame["status"] = frame["status"].str.lower().str.replace(r"[\s-]+", "_", regex=True)
    frame["category"] = frame["category"].str.lower()
    header = frame["header_format"].str.upper()
    header = header.mask(header.isna() & frame["header_text"].notna(), "TEXT")
    frame["header_format"] = header.fillna("NONE")
    unknown = ~frame["header_format"].isin(HEADER_FORMATS).to_numpy()
    if unknown.any():
        i = int(unknown.argmax())
        raise InputError(
            f"{where}, {labels[i]}: header_format {frame['header_format'].iloc[i]!r} is not "
            f"one of {', '.join(HEADER_FORMATS)}"
        )
    twice = frame.duplicated(["template_name", "lang_code"], keep="first").to_numpy()
    if twice.any():
        i = int(twice.argmax())
        name, lang = frame["template_name"].iloc[i], frame["lang_code"].iloc[i]
        raise InputError(
            f"{where}, {labels[i]}: template {name!r} in {lang!r} appears twice: keep one row "
            "per template and language"
        )
    frame["buttons"] = frame["buttons"].where(
        frame["buttons"].notna(), ("URL: " + frame["url_button"]).where(frame["url_button"].notna())
    )
    frame["body_params"] = frame["body"].map(count_placeholders).astype("int64")
    header_text = frame["header_text"].where(frame["header_format"] == "TEXT")
    frame["header_params"] = header_text.map(count_placeholders, na_action="ignore")
    frame["header_params"] = frame["header_params"].fillna(0).astype("int64")
    frame["url_params"] = frame["url_button"].map(count_placeholders, na_action="ignore")
    frame["url_params"] = frame["url_params"].fillna(0).astype("int64")
    frame["button_types"] = frame["buttons"].map(_button_types, na_action="ignore").astype("str")
    card_params = frame["card_params"].str.replace(r"\s+", "", regex=True)
    bad = card_params.notna() & ~card_params.str.fullmatch(r"[0-9]{1,2}(?:\|[0-9]{1,2}){0,9}")
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise InputError(
            f"{where}, {labels[i]}: card_params {frame['card_params'].iloc[i]!r} is not each "
            "card's count of body placeholders, |-separated (e.g. 1|1 for two cards of one)"
        )
    frame["card_params"] = card_params
    frame["card_count"] = card_params.str.count(r"\|").add(1).fillna(0).astype("int64")
    frame["card_header"] = frame["card_header"].str.upper()
    out = frame[list(TEMPLATE_COLUMNS)]
    out = out.astype(dict.fromkeys(_TEXT_COLUMNS, "str"))
    out = out.sort_values(["template_name", "lang_code"], kind="stable").reset_index(drop=True)
    out.attrs["source"] = where
    return out


# -- WhatsApp's template JSON -------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _text(value: Any, field: str, where: str) -> str | None:
    """A text field: None when absent or blank; anything but text is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(
            f"{where}: {field!r} is {_kind(value)}, not text: WhatsApp's template JSON writes "
            "it as a string; export the templates again"
        )
    text = value.strip()
    return text or None


def _list(value: Any, field: str, where: str) -> list[Any]:
    """A list field of at most MAX_PARTS items: [] when absent; anything else is refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(
            f"{where}: {field!r} is {_kind(value)}, not a list: export the templates again"
        )
    if len(value) > MAX_PARTS:
        raise InputError(
            f"{where}: {len(value):,} {field}, more than the {MAX_PARTS} a template may have "
            "(WhatsApp: a header, a body, a footer and at most 10 buttons): not a template"
        )
    return value


def _language(value: Any, where: str) -> str | None:
    # Older exports write {"code": "en"}; current ones a plain "en".
    if isinstance(value, Mapping):
        return _text(value.get("code") or value.get("policy_code"), "language code", where)
    return _text(value, "language", where)


def _items(document: Any, where: str) -> list[Any]:
    if isinstance(document, Mapping):
        for key in ("data", "message_templates", "templates"):
            if isinstance(document.get(key), list):
                return list(document[key])
        if "name" in document and "components" in document:
            return [document]
    elif isinstance(document, list):
        return document
    raise InputError(
        f'{where} is not WhatsApp\'s template format: expected {{"data": [{{"name", '
        f'"language", "status", "components"...}}]}} (found {_kind(document)})'
    )


def _from_whatsapp(document: Any, where: str) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    labels: list[str] = []
    for position, item in enumerate(_items(document, where), start=1):
        if not isinstance(item, Mapping):
            raise InputError(f"{where}, template {position}: not an object but {_kind(item)}")
        name = item.get("name")
        shown = f"{name[:40]!r}" if isinstance(name, str) and name.strip() else "no name"
        label = f"template {position} ({shown})"
        here = f"{where}, {label}"
        record: dict[str, Any] = {
            "template_name": _text(name, "name", here),
            "lang_code": _language(item.get("language", item.get("lang_code")), here),
            "category": _text(item.get("category"), "category", here),
            "status": _text(item.get("status"), "status", here),
        }
        record.update(_components(_list(item.get("components"), "components", here), here))
        records.append(record)
        labels.append(label)
    frame = pd.DataFrame(records, columns=list(_TEXT_COLUMNS), dtype="str")
    return _finish(frame, labels, where)


def _components(components: list[Any], where: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    buttons: list[str] = []
    for component in components:
        if not isinstance(component, Mapping):
            continue
        kind = (_text(component.get("type"), "type", where) or "").upper()
        if kind == "BODY":
            found["body"] = _text(component.get("text"), "text", where)
        elif kind == "HEADER":
            found["header_format"] = _text(component.get("format"), "format", where) or "TEXT"
            found["header_text"] = _text(component.get("text"), "text", where)
        elif kind == "FOOTER":
            found["footer"] = _text(component.get("text"), "text", where)
        elif kind == "BUTTONS":
            listed = _list(component.get("buttons"), "buttons", where)
            buttons.extend(_buttons(listed, found, where))
        elif kind == "CAROUSEL":
            _carousel(component, found, where)
    found["buttons"] = "; ".join(buttons) or None
    return found


def _button_types(summary: str) -> str | None:
    """The button types of a ``buttons`` summary, in order (``QUICK_REPLY: Yes; URL: …``
    gives ``QUICK_REPLY|URL``); a part that names no type WhatsApp has is a quick reply."""
    kinds = []
    for part in summary.split(";"):
        if not part.strip():
            continue
        head, _, rest = part.partition(":")
        head = head.strip().upper().replace(" ", "_")
        if head == "URL" and rest.strip() and "{{" not in rest:
            head = STATIC_URL  # no suffix to give: param_url goes to the dynamic one
        kinds.append(head if head in _BUTTON_KINDS else "QUICK_REPLY")
    return "|".join(kinds) or None


def _carousel(component: Mapping[str, Any], found: dict[str, Any], where: str) -> None:
    """A ``CAROUSEL`` component: its cards' header format and body placeholders."""
    counts: list[str] = []
    for card in _list(component.get("cards"), "cards", where):
        body = None
        for part in (
            _list(card.get("components"), "components", where) if isinstance(card, Mapping) else []
        ):
            if not isinstance(part, Mapping):
                continue
            kind = (_text(part.get("type"), "type", where) or "").upper()
            if kind == "BODY":
                body = _text(part.get("text"), "text", where)
            elif kind == "HEADER" and "card_header" not in found:
                found["card_header"] = _text(part.get("format"), "format", where)
        counts.append(str(count_placeholders(body)))
    found["card_params"] = "|".join(counts) or None


def _buttons(buttons: list[Any], found: dict[str, Any], where: str) -> Iterable[str]:
    for button in buttons:
        if not isinstance(button, Mapping):
            continue
        kind = (_text(button.get("type"), "type", where) or "BUTTON").upper()
        url = _text(button.get("url"), "url", where)
        shown = url or _text(button.get("phone_number"), "phone_number", where)
        shown = shown or _text(button.get("text"), "text", where) or ""
        if kind == "URL" and url and ("url_button" not in found or "{{" in url):
            found["url_button"] = url  # the dynamic one when there are two
        # "; " separates the buttons in the summary: a ';' in a button's text would split it.
        yield f"{kind}: {shown.replace(';', ',')}".rstrip(": ")
