"""The emulator's template catalogue: the v2 template list, and template sends that do
not match it failing the way WhatsApp fails them.

``Emulator(templates=catalogue)`` plays a WhatsApp Business Account with these templates:

- ``GET /v2/<SID>/whatsapp/<any WABA id>/message_templates`` (``api-key`` header) answers
  WhatsApp's format, ``{"data": [...], "paging": {"cursors": {"before", "after"},
  "next"}}``, ``limit`` templates a page (25 by default) from the ``after`` cursor on.
  :attr:`EmulatedTemplates.paging` chooses what the answer gives to reach the next page:
  ``"both"`` (default), ``"next"`` only or ``"cursors"`` only (Kaleyra's pages do not say
  which; clients must cope with either);
- a template message (``type=template``) is accepted as usual (HTTP 200, in the ledger),
  then, when it does not match the catalogue, its callbacks are ``sent`` and ``failed``
  with WhatsApp's code: 132001 (no such template, or not in that language, or not
  approved), 132015 (paused), 132016 (disabled), 132000 (the number of ``params`` is not
  the body's number of placeholders; a header or link placeholder without
  ``param_header``/``param_url``), 132012 (a media header without ``media_url``), 132018
  (a parameter with a line break, a tab or more than four spaces in a row).
  :attr:`EmulatedTemplates.failures` lists them, callbacks or not;
- a v2 template message (WhatsApp's ``template`` object, :meth:`EmulatedTemplates.failure_v2`)
  is held to the same rules, read from its components (the ``body`` component's
  parameters, the ``header``'s), and to the template's buttons and cards: a ``button``
  component's ``index`` must name a button of the template whose type its ``sub_type``
  plays (``quick_reply`` a QUICK_REPLY, ``url`` a URL or OTP, ``copy_code`` a COPY_CODE,
  ``flow`` a FLOW), else 132018; a dynamic URL button without its parameter is 132000; a
  FLOW button without a ``flow_token`` in its ``action`` parameter is 131009; a carousel
  whose number of ``cards`` is not the template's (or missing) is 132012.

The list serves each template as the catalogue has it: WhatsApp's JSON passes unchanged
(``BUTTONS`` of any type, ``CAROUSEL`` with its ``cards``); a frame's ``buttons`` column
(``"QUICK_REPLY: Yes; COPY_CODE: Copy; FLOW: Book"``) becomes a ``BUTTONS`` component.

It reads the catalogue on its own (a frame with the columns of
:func:`kwa_batch.load_templates`, WhatsApp's JSON, or a path to a ``.json`` file) and
matches sends with its own small rules: it never imports the client's validation.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import re
import secrets
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from werkzeug.wrappers import Request

__all__ = [
    "FAILURE_REASONS",
    "SAMPLE_CATALOGUE",
    "TEMPLATE_KINDS",
    "EmulatedTemplates",
    "sample_catalogue",
]

#: WhatsApp's codes for a template message that does not match, with their text.
FAILURE_REASONS = {
    "131009": "Parameter value is not valid",
    "132000": "Number of parameters does not match the expected number of params",
    "132001": "Template name does not exist in the translation",
    "132012": "Parameter format does not match format in the created template",
    "132015": "Template is paused due to low quality so it cannot be sent in a template message",
    "132016": "Template has been paused too many times due to low quality and is now "
    "permanently disabled",
    "132018": "There was an issue with the parameters in your template",
}
#: Message types that send a template (the others are left alone).
TEMPLATE_KINDS = ("template", "mediatemplate", "authenticationtemplate")
_PATH = re.compile(r"/v2/([^/]+)/whatsapp/([^/]+)/message_templates/?")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_BAD_VALUE = re.compile(r"[\t\r\n]| {5,}")
_MEDIA = ("IMAGE", "VIDEO", "DOCUMENT")
_DEFAULT_LIMIT = 25
_MAX_LIMIT = 1000
_PAGING = ("both", "next", "cursors")
_FAILURE_COLUMNS = ("message_id", "to", "template_name", "lang_code", "error_code", "error", "at")
#: The sample catalogue shipped inside the package (package data, so that an installed
#: ``kwa-batch templates --emulator`` finds it): the same file as ``sample_data/templates.json``.
SAMPLE_CATALOGUE = "sample_templates.json"


def sample_catalogue() -> dict[str, Any]:
    """The sample template catalogue (WhatsApp's JSON) that ``kwa-batch templates
    --emulator`` plays, read from the installed package (``importlib.resources``)."""
    text = (
        resources.files("kwa_batch.emulator").joinpath(SAMPLE_CATALOGUE).read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass(frozen=True)
class _Template:
    status: str
    body: int
    header_format: str
    header: int
    url: int
    category: str | None  # lower case, as WhatsApp bills it
    buttons: tuple[tuple[str, bool, str], ...] = ()  # (TYPE, dynamic URL, text), in order
    cards: int = 0  # a carousel's cards (0: not a carousel)


def _count(text: Any) -> int:
    return len(set(_PLACEHOLDER.findall(text))) if isinstance(text, str) else 0


def _cell(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _from_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """WhatsApp template objects from a catalogue frame."""
    out = []
    for record in frame.to_dict("records"):
        get = {str(k): _cell(v) for k, v in record.items()}.get
        components: list[dict[str, Any]] = []
        header = (get("header_format") or ("TEXT" if get("header_text") else "NONE")).upper()
        if header != "NONE":
            part: dict[str, Any] = {"type": "HEADER", "format": header}
            if header == "TEXT" and get("header_text"):
                part["text"] = get("header_text")
            components.append(part)
        components.append({"type": "BODY", "text": get("body") or ""})
        if get("footer"):
            components.append({"type": "FOOTER", "text": get("footer")})
        buttons = [{"type": "URL", "text": "Open", "url": get("url_button")}]
        buttons = buttons if get("url_button") else []
        for written in (get("buttons") or "").split("; "):  # "URL: …; QUICK_REPLY: Stop"
            kind, _, text = written.partition(": ")
            if kind.strip() and kind.strip().upper() != "URL":
                buttons.append({"type": kind.strip().upper(), "text": text.strip()})
        if buttons:
            components.append({"type": "BUTTONS", "buttons": buttons})
        out.append(
            {
                "name": get("template_name") or get("name"),
                "language": get("lang_code") or get("language"),
                "status": (get("status") or "").upper(),
                "category": (get("category") or "").upper() or None,
                "id": str(zlib.crc32(f"{get('template_name')}/{get('lang_code')}".encode())),
                "components": components,
            }
        )
    return out


def _objects(catalogue: Any) -> list[dict[str, Any]]:
    if isinstance(catalogue, pd.DataFrame):
        return _from_frame(catalogue)
    if isinstance(catalogue, str | Path):
        catalogue = json.loads(Path(catalogue).read_text(encoding="utf-8-sig"))
    if isinstance(catalogue, Mapping):
        catalogue = catalogue.get("data")
    if not isinstance(catalogue, list):
        raise ValueError(
            "templates must be a catalogue frame, WhatsApp's template JSON "
            '({"data": [...]}) or a path to a .json file'
        )
    return [dict(item) for item in catalogue if isinstance(item, Mapping)]


def _summary(item: Mapping[str, Any]) -> _Template:
    body = header = url = cards = 0
    header_format = "NONE"
    buttons: list[tuple[str, bool, str]] = []
    for part in item.get("components") or []:
        if not isinstance(part, Mapping):
            continue
        kind = str(part.get("type", "")).upper()
        if kind == "BODY":
            body = _count(part.get("text"))
        elif kind == "HEADER":
            header_format = str(part.get("format") or "TEXT").upper()
            header = _count(part.get("text")) if header_format == "TEXT" else 0
        elif kind == "BUTTONS":
            for b in part.get("buttons") or []:
                if not isinstance(b, Mapping):
                    continue
                button_type = str(b.get("type", "")).upper()
                dynamic = button_type == "URL" and _count(b.get("url")) > 0
                url += _count(b.get("url")) if button_type == "URL" else 0
                buttons.append((button_type, dynamic, str(b.get("text") or "")))
        elif kind == "CAROUSEL":
            cards = sum(isinstance(card, Mapping) for card in part.get("cards") or [])
    category = str(item.get("category") or "").strip().lower() or None
    status = str(item.get("status", "")).strip().upper()
    return _Template(status, body, header_format, header, url, category, tuple(buttons), cards)


def _language(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("code")
    return str(value or "").strip()


class EmulatedTemplates:
    """The templates an :class:`~kwa_batch.Emulator` knows; see the module docstring.

    Args:
        catalogue: a catalogue frame, WhatsApp's template JSON, or a ``.json`` path.

    Raises:
        ValueError: the catalogue is none of these.
    """

    def __init__(self, catalogue: Any) -> None:
        self.data = _objects(catalogue)
        self.paging = "both"
        self._by_key: dict[tuple[str, str], _Template] = {}
        self._languages: dict[str, list[str]] = {}
        for item in self.data:
            name, lang = str(item.get("name") or "").strip(), _language(item.get("language"))
            self._by_key[(name, lang)] = _summary(item)
            self._languages.setdefault(name, []).append(lang)
        self._lock = threading.Lock()
        self._failures: list[tuple[Any, ...]] = []

    def __repr__(self) -> str:
        return f"EmulatedTemplates({len(self.data)} templates)"

    # -- the v2 list ----------------------------------------------------------------------

    def route(self, request: Request, sid: str, api_key: str) -> tuple[int, dict[str, Any]] | None:
        """Answer a request for the template list: ``(HTTP status, JSON payload)``; None
        when the path is not the template list's. Errors carry ``code`` and ``error``."""
        match = _PATH.fullmatch(request.path)
        if match is None:
            return None
        if request.method != "GET":
            return 405, {"code": "E405", "error": {"method": "use GET"}}
        key = request.headers.get("api-key", "").strip()
        if match.group(1) != sid:
            return 401, {"code": "E401", "error": {"sid": "unknown account SID in the URL"}}
        if not key or not secrets.compare_digest(key.encode(), api_key.encode()):
            return 401, {"code": "E401", "error": {"api-key": "missing or invalid for this SID"}}
        try:
            limit = int(request.args.get("limit", _DEFAULT_LIMIT))
            start = _offset(request.args.get("after"))
        except ValueError as exc:
            return 400, {"code": "E400", "error": {"request": str(exc)}}
        if not 1 <= limit <= _MAX_LIMIT:
            return 400, {"code": "E400", "error": {"limit": f"must be from 1 to {_MAX_LIMIT}"}}
        page = self.data[start : start + limit]
        paging: dict[str, Any] = {}
        if self.paging in ("both", "cursors"):
            paging["cursors"] = {"before": _cursor(start), "after": _cursor(start + len(page))}
        more = start + len(page) < len(self.data)
        if more and self.paging in ("both", "next"):
            base = request.host_url.rstrip("/") + request.path
            paging["next"] = f"{base}?limit={limit}&after={_cursor(start + len(page))}"
        return 200, {"data": page, "paging": paging}

    # -- template sends -------------------------------------------------------------------

    def category(self, kind: str, fields: Mapping[str, str]) -> str | None:
        """The catalogue's category of a template message (``marketing``, ``utility``,
        ``authentication``, lower case); None for a template it does not know, or a
        message that is not a template."""
        found = self._find(kind, fields)
        return None if found is None else found.category

    def _find(self, kind: str, fields: Mapping[str, str]) -> _Template | None:
        if kind not in TEMPLATE_KINDS:
            return None
        name = fields.get("template_name", "").strip()
        languages = self._languages.get(name) or []
        lang = fields.get("lang_code", "").strip()
        if not lang and len(languages) == 1:
            lang = languages[0]
        return self._by_key.get((name, lang))

    def failure(self, kind: str, fields: Mapping[str, str]) -> tuple[str, str] | None:
        """WhatsApp's ``(code, reason)`` for a template message that does not match the
        catalogue; None when it matches, or is not a template message."""
        if kind not in TEMPLATE_KINDS:
            return None
        found = self._find(kind, fields)
        if found is None:
            return _reason("132001")
        if found.status != "APPROVED":
            return _reason({"PAUSED": "132015", "DISABLED": "132016"}.get(found.status, "132001"))
        params = next(csv.reader([fields["params"]]), []) if fields.get("params") else []
        if kind == "authenticationtemplate":  # the code fills the body's one placeholder
            params = [fields["verification_code"]] if fields.get("verification_code") else []
        if len(params) != found.body:
            return _reason("132000")
        media = fields.get("media_url") or fields.get("media")  # a link or a file part
        if found.header_format in _MEDIA and not media:
            return _reason("132012")
        extras = [fields.get("param_header")] if found.header else []
        extras += [fields.get("param_url")] if found.url else []
        if any(value is None for value in extras):
            return _reason("132000")
        values = [*params, *(v for v in extras if v is not None)]
        if any(not v.strip() or _BAD_VALUE.search(v) for v in values):
            return _reason("132018")
        return None

    def _find_v2(self, template: Mapping[str, Any]) -> _Template | None:
        name = str(template.get("name") or "").strip()
        return self._by_key.get((name, _language(template.get("language"))))

    def category_v2(self, template: Mapping[str, Any]) -> str | None:
        """:meth:`category` of a v2 ``template`` object (WhatsApp's)."""
        found = self._find_v2(template)
        return None if found is None else found.category

    def button_text(self, template: Mapping[str, Any], index: int) -> str | None:
        """The text of the button at ``index`` of a v2 ``template``'s catalogue entry."""
        found = self._find_v2(template)
        if found is None or not 0 <= index < len(found.buttons):
            return None
        return found.buttons[index][2] or None

    def failure_v2(self, template: Mapping[str, Any]) -> tuple[str, str] | None:
        """WhatsApp's ``(code, reason)`` for a v2 ``template`` object that does not match
        the catalogue (the module docstring lists the rules); None when it matches."""
        found = self._find_v2(template)
        if found is None:
            return _reason("132001")
        if found.status != "APPROVED":
            return _reason({"PAUSED": "132015", "DISABLED": "132016"}.get(found.status, "132001"))
        parts = [p for p in template.get("components") or [] if isinstance(p, Mapping)]
        by_type: dict[str, list[Mapping[str, Any]]] = {}
        for part in parts:
            by_type.setdefault(str(part.get("type", "")).lower(), []).append(part)
        body = _values(by_type.get("body"))
        header = by_type.get("header") or []
        header_values = _values(header)
        if len(body) != found.body:
            return _reason("132000")
        if found.header_format in _MEDIA:
            media = (
                [
                    p
                    for p in header[0].get("parameters") or []
                    if isinstance(p, Mapping) and str(p.get("type", "")).upper() in _MEDIA
                ]
                if header
                else []
            )
            if not media:
                return _reason("132012")
        elif len(header_values) != found.header:
            return _reason("132000")
        carousel = by_type.get("carousel") or []
        if found.cards or carousel:
            cards = carousel[0].get("cards") if carousel else None
            if not isinstance(cards, list) or len(cards) != found.cards:
                return _reason("132012")
        url_values: list[str] = []
        given: set[int] = set()
        if found.category == "authentication" and not found.buttons:
            by_type.pop("button", None)  # a catalogue that lists no OTP button: take the code
        for part in by_type.get("button") or []:
            index = (
                int(str(part.get("index", "0"))) if str(part.get("index", "0")).isdigit() else -1
            )
            sub_type = str(part.get("sub_type", "")).upper()
            if not 0 <= index < len(found.buttons) or sub_type not in _PLAYS.get(
                found.buttons[index][0], (found.buttons[index][0],)
            ):
                return _reason("132018")
            given.add(index)
            parameters = [p for p in part.get("parameters") or [] if isinstance(p, Mapping)]
            if sub_type == "FLOW" and not any(
                isinstance(p.get("action"), Mapping) and p["action"].get("flow_token")
                for p in parameters
            ):
                return _reason("131009")
            if found.buttons[index][1]:
                texts = _values([part])
                if not texts:
                    return _reason("132000")
                url_values += texts
        for index, (button_type, dynamic, _) in enumerate(found.buttons):
            if index in given:
                continue
            if dynamic:
                return _reason("132000")
            if button_type == "FLOW":
                return _reason("131009")
        values = [*body, *header_values, *url_values]
        if any(not v.strip() or _BAD_VALUE.search(v) for v in values):
            return _reason("132018")
        return None

    def note(self, request_id: str, recipients: list[str], fields: Mapping[str, Any],
             failure: tuple[str, str], message_ids: list[str] | None = None) -> None:  # fmt: skip
        """Record the failure of an accepted request (numbers as digits; ``message_ids``
        v2's wamids, else ``<request id>:<n>``)."""
        now = datetime.now(UTC)
        with self._lock:
            for n, recipient in enumerate(recipients):
                message_id = message_ids[n] if message_ids else f"{request_id}:{n}"
                self._failures.append(
                    (message_id, "+" + recipient, fields.get("template_name"),
                     fields.get("lang_code"), *failure, now)
                )  # fmt: skip

    @property
    def failures(self) -> pd.DataFrame:
        """The accepted template messages that failed, one row per recipient, oldest first:
        ``message_id``, ``to``, ``template_name``, ``lang_code``, ``error_code``,
        ``error`` and ``at`` (UTC)."""
        with self._lock:
            rows = list(self._failures)
        frame = pd.DataFrame(rows, columns=list(_FAILURE_COLUMNS))
        text = [c for c in _FAILURE_COLUMNS if c != "at"]
        frame = frame.astype(dict.fromkeys(text, "str"))
        frame["at"] = pd.to_datetime(frame["at"], utc=True).astype("datetime64[us, UTC]")
        return frame

    def clear(self) -> None:
        """Forget the failures recorded so far."""
        with self._lock:
            self._failures.clear()


# The button types of a template each ``sub_type`` of a send may fill.
_PLAYS = {"URL": ("URL",), "OTP": ("URL", "COPY_CODE"), "QUICK_REPLY": ("QUICK_REPLY",),
          "COPY_CODE": ("COPY_CODE",), "FLOW": ("FLOW",)}  # fmt: skip


def _values(parts: list[Mapping[str, Any]] | None) -> list[str]:
    """The text parameters of components (a parameter of another type counts as text)."""
    out: list[str] = []
    for part in parts or []:
        for parameter in part.get("parameters") or []:
            if isinstance(parameter, Mapping):
                kind = str(parameter.get("type", "text"))
                value = parameter.get(kind) if kind != "text" else parameter.get("text")
                out.append(value if isinstance(value, str) else str(value or "x"))
    return out


def _reason(code: str) -> tuple[str, str]:
    return code, FAILURE_REASONS[code]


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeError):
        raise ValueError(f"invalid after cursor {cursor[:40]!r}") from None
    if not re.fullmatch(r"o:[0-9]{1,9}", text):
        raise ValueError(f"invalid after cursor {cursor[:40]!r}")
    return int(text[2:])
