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
  link; ``{{1}}`` in it makes it dynamic). Cells are read as text, exactly as written;
- a JSON file, or the parsed object, in WhatsApp's template format as Kaleyra's v2 API
  returns it: ``{"data": [{"name", "language", "status", "category", "components":
  [...]}]}``. Unknown fields are ignored and statuses may come in any case;
- a DataFrame of either shape of columns.

Example:
    >>> catalogue = load_templates("sample_data/templates.csv")  # doctest: +SKIP
    >>> catalogue.loc[0, ["template_name", "lang_code", "status", "body_params"]]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError

__all__ = [
    "HEADER_FORMATS",
    "MEDIA_FORMATS",
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
    "body_params",
    "header_params",
    "url_params",
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
_TEXT_COLUMNS = TEMPLATE_COLUMNS[:10]


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
        button's), sorted by name and language.

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
        return _from_table(source, "the catalogue frame", first_line=None)
    if isinstance(source, Mapping | list):
        return _from_whatsapp(source, "the template JSON")
    file = Path(source)
    if not file.is_file():
        raise InputError(f"{file}: no such template catalogue file")
    suffix = file.suffix.lower()
    try:
        if suffix == ".json":
            try:
                document = json.loads(file.read_text(encoding="utf-8-sig"))
            except (ValueError, UnicodeError) as exc:
                raise InputError(f"{file}: not valid JSON ({exc}): export it again") from None
            return _from_whatsapp(document, str(file))
        if suffix in (".xlsx", ".xlsm"):
            table = pd.read_excel(file, dtype=str, keep_default_na=False, engine="openpyxl")
        elif suffix in (".csv", ".txt", ".tsv"):
            text = file.read_text(encoding="utf-8-sig")
            table = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, sep=_delimiter(text)
            )
        else:
            raise InputError(f"{file}: a template catalogue is a .csv, .xlsx or .json file")
    except UnicodeError:
        raise InputError(f'{file}: not UTF-8 text: save it as "CSV UTF-8"') from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{file}: cannot be read as a template catalogue ({exc})") from None
    return _from_table(table, str(file), first_line=2)


def save_templates(catalogue: pd.DataFrame, path: str | Path) -> Path:
    """Write a catalogue to ``.csv`` (UTF-8) or ``.xlsx`` (every cell text), the way
    :func:`load_templates` reads it back.

    Raises:
        InputError: the extension is not .csv or .xlsx, or the file cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    frame = catalogue[[c for c in TEMPLATE_COLUMNS if c in catalogue.columns]]
    try:
        if suffix == ".csv":
            frame.to_csv(target, index=False, encoding="utf-8")
        elif suffix == ".xlsx":
            from openpyxl import Workbook

            book = Workbook()
            sheet = book.active
            assert sheet is not None
            sheet.title = "Templates"
            sheet.append(list(frame.columns))
            for record in frame.astype("object").itertuples(index=False, name=None):
                sheet.append([None if pd.isna(v) else v for v in record])
            for row in sheet.iter_rows(min_row=2):
                for cell in row:
                    if isinstance(cell.value, str):
                        cell.data_type = "s"  # text, never a formula
            book.save(target)
        else:
            raise InputError(f"cannot write a catalogue to {target.name!r}: use .csv or .xlsx")
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


# -- a table of templates ---------------------------------------------------------------


def _delimiter(text: str) -> str:
    """The header line's delimiter (bodies hold commas and semicolons: only the header,
    made of column names, tells)."""
    header = text.split("\n", 1)[0]
    return max(",;\t|", key=header.count)


def _key(name: object) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def _from_table(table: pd.DataFrame, where: str, *, first_line: int | None) -> pd.DataFrame:
    renamed: dict[Any, str] = {}
    for column in table.columns:
        key = _key(column)
        name = _ALIASES.get(key, key)
        if name in TEMPLATE_COLUMNS and name not in renamed.values():
            renamed[column] = name
    frame = table[list(renamed)].rename(columns=renamed).reset_index(drop=True)
    missing = [name for name in _REQUIRED if name not in frame.columns]
    if missing:
        raise InputError(
            f"{where} has no {', '.join(repr(m) for m in missing)} column: a catalogue needs "
            f"{', '.join(_REQUIRED)} (found: {', '.join(map(str, table.columns)) or 'none'})"
        )
    for name in _TEXT_COLUMNS:
        if name not in frame.columns:
            frame[name] = pd.Series(pd.NA, index=frame.index, dtype="str")
        else:
            text = frame[name].astype("str").str.strip()
            frame[name] = text.mask(text == "")
    labels = (
        [f"line {i + first_line}" for i in range(len(frame))]
        if first_line is not None
        else [f"row {label}" for label in table.index]
    )
    return _finish(frame, labels, where)


def _finish(frame: pd.DataFrame, labels: list[str], where: str) -> pd.DataFrame:
    """Normalise, check and count a frame with every text column of the catalogue."""
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
    out = frame[list(TEMPLATE_COLUMNS)]
    out = out.astype(dict.fromkeys(_TEXT_COLUMNS, "str"))
    out = out.sort_values(["template_name", "lang_code"], kind="stable").reset_index(drop=True)
    out.attrs["source"] = where
    return out


# -- WhatsApp's template JSON -------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text or None


def _language(value: Any) -> str | None:
    # Older exports write {"code": "en"}; current ones a plain "en".
    if isinstance(value, Mapping):
        value = value.get("code") or value.get("policy_code")
    return _text(value)


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
        '"language", "status", "components"...}]}'
    )


def _from_whatsapp(document: Any, where: str) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    labels: list[str] = []
    for position, item in enumerate(_items(document, where), start=1):
        if not isinstance(item, Mapping):
            raise InputError(f"{where}, template {position}: not an object but {item!r:.40}")
        record: dict[str, Any] = {
            "template_name": _text(item.get("name")),
            "lang_code": _language(item.get("language", item.get("lang_code"))),
            "category": _text(item.get("category")),
            "status": _text(item.get("status")),
        }
        record.update(_components(item.get("components")))
        records.append(record)
        labels.append(f"template {position} ({record['template_name'] or 'no name'})")
    frame = pd.DataFrame(records, columns=list(_TEXT_COLUMNS), dtype="str")
    return _finish(frame, labels, where)


def _components(components: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    buttons: list[str] = []
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, Mapping):
            continue
        kind = str(component.get("type", "")).strip().upper()
        if kind == "BODY":
            found["body"] = _text(component.get("text"))
        elif kind == "HEADER":
            found["header_format"] = _text(component.get("format")) or "TEXT"
            found["header_text"] = _text(component.get("text"))
        elif kind == "FOOTER":
            found["footer"] = _text(component.get("text"))
        elif kind == "BUTTONS":
            buttons.extend(_buttons(component.get("buttons"), found))
    found["buttons"] = "; ".join(buttons) or None
    return found


def _buttons(buttons: Any, found: dict[str, Any]) -> Iterable[str]:
    for button in buttons if isinstance(buttons, list) else []:
        if not isinstance(button, Mapping):
            continue
        kind = str(button.get("type", "")).strip().upper() or "BUTTON"
        shown = _text(button.get("url")) or _text(button.get("phone_number"))
        shown = shown or _text(button.get("text")) or ""
        if kind == "URL" and _text(button.get("url")) and "url_button" not in found:
            found["url_button"] = _text(button.get("url"))
        yield f"{kind}: {shown}".rstrip(": ")
