"""Template rows checked against the catalogue (:func:`kwa_batch.catalogue.load_templates`);
:mod:`.preview` shows the messages as their recipients will read them.

:func:`check_templates` finds, for every template row at once (grouped by template and
language, never a Python loop per row), what WhatsApp would refuse after Kaleyra said
``sent``:

=======  ==================================================  ========================
code     refusal                                             WhatsApp, if sent anyway
=======  ==================================================  ========================
KWA013   no template of that name                            132001
KWA014   empty ``lang_code``, the template has several       (Kaleyra's default)
KWA015   the template does not exist in that language        132001
KWA016   not approved (pending, rejected…)                   132001
KWA017   paused                                              132015
KWA018   disabled                                            132016
KWA019   ``params`` count ≠ the body's placeholders          132000
KWA020   a media header without ``media_url``                132012
KWA021   ``media_url`` of the wrong kind for the header      132012
KWA022   a text header's placeholder without ``param_header``  132000
KWA023   a dynamic URL button without ``param_url``          132000
KWA024   a parameter with a line break, tab or 5+ spaces     132018
KWA039   ``buttons``: more values than the template's         131009, 132018
         quick-reply/flow/copy-code buttons, or a flow or
         copy-code button without its value
KWA040   carousel cards: not the template's number, a         132012, 132000
         card's parameters or media missing
=======  ==================================================  ========================

``buttons`` and the carousel's cards (``cards``, gathered from ``card_N_media_url`` and
``card_N_params``) are checked row by row, only on the rows that fill them or whose template
needs them (a campaign's rich rows are few).

An empty ``lang_code`` takes the template's only language (:attr:`TemplateCheck.lang_code`
gives it back, to be sent). ``params`` is checked for more than four spaces in a row;
tabs, line breaks and empty values in it are :func:`kwa_batch.validate`'s own checks
(``KWA006``, ``KWA010``). ``param_header`` and ``param_url`` are checked for all three.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pc

from ..catalogue import MEDIA_FORMATS, TEMPLATE_COLUMNS, load_templates
from ..errors import Code
from ..message_objects import VALUE_BUTTONS, read_cards, split_buttons, split_params

__all__ = ["TEMPLATE_TYPES", "Finding", "TemplateCheck", "catalogue_frame", "check_templates"]

#: Message types that name a template.
TEMPLATE_TYPES = ("template", "mediatemplate", "authenticationtemplate")
#: File extensions that show a media kind (another extension is not judged).
MEDIA_EXTENSIONS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "IMAGE"),
    **dict.fromkeys(("mp4", "3gp", "3gpp", "mov"), "VIDEO"),
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt"), "DOCUMENT"),
}
_STATUS_CODES = {"paused": Code.TEMPLATE_PAUSED, "disabled": Code.TEMPLATE_DISABLED}
_QUOTED = r'"(?:[^"]|"")*"'
# RE2 patterns (pyarrow runs them), with the characters themselves: RE2 has no \u escape.
_BAD_SPACING = "[ \u00a0]{5,}"
_BAD_PARAM = "[\t\r\n]|[ \u00a0]{5,}"


@dataclass(frozen=True)
class Finding:
    """Rows (positions 0…n-1) that fail one check, with the code and a message each."""

    positions: np.ndarray[Any, Any]
    column: str
    check: str
    code: str
    message: pd.Series
    values: pd.Series


@dataclass
class TemplateCheck:
    """What :func:`check_templates` found.

    Attributes:
        findings: the refusals, one :class:`Finding` per check that failed somewhere.
        lang_code: each row's language, with the template's only language filled in
            where the row left it empty (positional, like the input).
        template_buttons: each row's template's button types in order (the catalogue's
            ``button_types``; NA where the template has none or was not found).
    """

    findings: list[Finding] = field(default_factory=list)
    lang_code: pd.Series | None = None
    template_buttons: pd.Series | None = None
    header_format: pd.Series | None = None
    card_header_format: pd.Series | None = None

    def mask(self, n: int) -> np.ndarray[Any, Any]:
        """Which of ``n`` rows are refused."""
        out = np.zeros(n, dtype=bool)
        for finding in self.findings:
            out[finding.positions] = True
        return out


def _column(
    messages: pd.DataFrame, name: str, positions: np.ndarray[Any, Any] | None = None
) -> pd.Series:
    """A column as stripped strings, NA when empty, indexed 0…; only ``positions`` if given."""
    n = len(messages) if positions is None else len(positions)
    if name not in messages.columns:
        return pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="str")
    values = messages[name] if positions is None else messages[name].iloc[positions]
    text = values.reset_index(drop=True).astype("str").str.strip()
    return text.mask(text == "")


def catalogue_frame(catalogue: pd.DataFrame | Any) -> pd.DataFrame:
    """``catalogue`` as :func:`load_templates`' frame (itself when it is one already)."""
    return _catalogue(catalogue)


def _catalogue(catalogue: pd.DataFrame | Any) -> pd.DataFrame:
    if isinstance(catalogue, pd.DataFrame) and set(TEMPLATE_COLUMNS) <= set(catalogue.columns):
        return catalogue
    return load_templates(catalogue)


def _plural(counts: pd.Series, word: str) -> pd.Series:
    text = counts.astype("str") + f" {word}"
    return text.where(counts == 1, text + "s")


def check_templates(messages: pd.DataFrame, catalogue: Any) -> TemplateCheck:
    """Check the template rows of ``messages`` against ``catalogue``.

    Args:
        messages: rows with the API's columns (``type``, ``template_name``, ``lang_code``,
            ``params``) and, where used, ``media_url``, ``param_header``, ``param_url``;
            rows whose ``type`` is not a template type (or is empty without a
            ``template_name``) are left alone.
        catalogue: a frame from :func:`load_templates`, or anything it loads.

    Returns:
        TemplateCheck: the findings (positions 0…n-1 of ``messages``) and the languages.

    Example:
        >>> catalogue = load_templates({"data": [{"name": "order_shipped", "language": "en",
        ...     "status": "approved", "components": [{"type": "BODY", "text": "{{1}} {{2}}"}]}]})
        >>> rows = pd.DataFrame({"template_name": ["order_shipped"], "params": ["a,b,c"]})
        >>> print(check_templates(rows, catalogue).findings[0].message[0])
        order_shipped (en) takes 2 parameters; this row has 3: give one value per {{n}} of its body
    """
    table = _catalogue(catalogue)
    n = len(messages)
    kinds, kind_values = _codes(messages, "type")
    names, name_values = _codes(messages, "template_name")
    langs, lang_values = _codes(messages, "lang_code")
    written_lang = (
        messages["lang_code"].reset_index(drop=True).astype("str")
        if "lang_code" in messages.columns
        else pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="str")
    )
    out = TemplateCheck(lang_code=written_lang)
    # Index -1 (a missing value) takes the last entry of each table.
    typed = np.array([v is None or v.lower() in TEMPLATE_TYPES for v in kind_values] + [True])
    named = np.array([v is not None for v in name_values] + [False])
    sel = np.flatnonzero(typed[kinds] & named[names])
    if not len(sel):
        return out

    # Each distinct (name, language) as written is one group, looked up once.
    width = len(lang_values) + 1
    groups, inverse = np.unique(
        names[sel].astype(np.int64) * width + langs[sel] + 1, return_inverse=True
    )
    lookup = _Lookup(table)
    verdicts = [
        lookup.resolve(name_values[g // width], lang_values[g % width - 1] if g % width else None)
        for g in groups
    ]
    for code in {v.code for v in verdicts if v.code is not None}:
        ids = [i for i, v in enumerate(verdicts) if v.code == code]
        rows = np.isin(inverse, ids)
        first = verdicts[ids[0]]
        message = np.array([v.message for v in verdicts], dtype=object)[inverse[rows]]
        _add(out, sel[rows], first.column, first.check, code, pd.Series(message, dtype="str"),
             _column(messages, first.column, sel[rows]))  # fmt: skip
    filled = np.array([v.filled for v in verdicts], dtype=bool)[inverse]
    if filled.any():
        resolved = np.array([v.lang for v in verdicts], dtype=object)[inverse[filled]]
        whole = written_lang.to_numpy(dtype=object, na_value=None)
        whole[sel[filled]] = resolved
        out.lang_code = pd.Series(pd.array(whole, dtype="str"))
    ci = np.array([v.ci for v in verdicts], dtype=np.int64)
    found = ci[inverse] >= 0
    if found.any():
        where = np.array([v.where for v in verdicts], dtype=object)[inverse[found]]
        matched = _Found(table, ci[inverse[found]], sel[found], where, messages)
        _check_found(out, matched)
        layout = np.full(n, None, dtype=object)
        layout[sel[found]] = matched.entry("button_types")
        out.template_buttons = pd.Series(pd.array(layout, dtype="str"))
        for name, entry in (
            ("header_format", "header_format"),
            ("card_header_format", "card_header"),
        ):
            media = np.full(n, None, dtype=object)
            media[sel[found]] = matched.entry(entry)
            setattr(out, name, pd.Series(pd.array(media, dtype="str")))
    return out


def _codes(messages: pd.DataFrame, column: str) -> tuple[np.ndarray[Any, Any], list[str | None]]:
    """``column`` factorised: a code per row (-1 when missing) and each distinct value,
    stripped (None when empty). Done on the distinct values only: a campaign has few."""
    if column not in messages.columns:
        return np.full(len(messages), -1, dtype=np.int64), []
    codes, uniques = pd.factorize(messages[column].astype("str"))
    cleaned = [str(value).strip() or None for value in uniques]
    return np.asarray(codes, dtype=np.int64), cleaned


@dataclass(frozen=True)
class _Verdict:
    """What the catalogue says of one (name, language) as written."""

    ci: int = -1  # the catalogue row, or -1
    lang: str | None = None  # the language, once resolved
    filled: bool = False  # the language was empty and is the template's only one
    where: str = ""  # "name (lang)"
    code: str | None = None  # a refusal before the content checks
    column: str = ""
    check: str = ""
    message: str | None = None


class _Lookup:
    """The catalogue by name and by (name, language)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.names = [str(n) for n in table["template_name"].unique()]
        self.rows = {
            (str(n), str(lang)): i
            for i, (n, lang) in enumerate(
                zip(table["template_name"], table["lang_code"], strict=True)
            )
        }
        self.languages: dict[str, list[str]] = {}
        for name, lang in self.rows:
            self.languages.setdefault(name, []).append(lang)

    def resolve(self, name: str | None, lang: str | None) -> _Verdict:
        assert name is not None
        languages = sorted(self.languages.get(name, []))
        if not languages:
            message = _unknown_name(name, self.names)
            return _Verdict(code=Code.TEMPLATE_UNKNOWN, column="template_name",
                            check="template_known", message=message)  # fmt: skip
        listed = ", ".join(languages)
        if lang is None and len(languages) > 1:
            message = (
                f"lang_code is empty and {name} exists in {len(languages)} languages "
                f"({listed}): fill lang_code with one of them"
            )
            return _Verdict(code=Code.LANGUAGE_AMBIGUOUS, column="lang_code",
                            check="language_chosen", message=message)  # fmt: skip
        filled = lang is None
        lang = languages[0] if lang is None else lang
        ci = self.rows.get((name, lang), -1)
        if ci < 0:
            message = (
                f"{name} has no '{lang}' version (languages: {listed}): use one of them, or have "
                "it approved in this one"
            )
            return _Verdict(code=Code.LANGUAGE_UNKNOWN, column="lang_code", check="language_known",
                            message=message)  # fmt: skip
        return _Verdict(ci=ci, lang=lang, filled=filled, where=f"{name} ({lang})")


class _Found:
    """Rows whose template was found: their catalogue entry's columns, taken per row."""

    def __init__(
        self,
        table: pd.DataFrame,
        ci: np.ndarray[Any, Any],
        pos: np.ndarray[Any, Any],
        where: np.ndarray[Any, Any],
        messages: pd.DataFrame,
    ) -> None:
        self.table, self.ci, self.pos, self._where = table, ci, pos, where
        self.messages = messages

    def entry(self, column: str) -> np.ndarray[Any, Any]:
        """The catalogue's ``column`` for each row."""
        values: np.ndarray[Any, Any] = self.table[column].to_numpy()[self.ci]
        return values

    def given(self, column: str, mask: np.ndarray[Any, Any] | None = None) -> pd.Series:
        """The row's own ``column`` (stripped, NA when empty), for all rows or ``mask``."""
        return _column(self.messages, column, self.pos if mask is None else self.pos[mask])

    def where(self, mask: np.ndarray[Any, Any]) -> pd.Series:
        """``name (lang)`` for the rows of ``mask``."""
        return pd.Series(self._where[mask], dtype="str")


def _sub(values: pd.Series, mask: np.ndarray[Any, Any]) -> pd.Series:
    """``values[mask]``, indexed 0…k-1 (so that columns of one subset line up)."""
    return values[mask].reset_index(drop=True)


def _matches(values: pd.Series, pattern: str) -> np.ndarray[Any, Any]:
    """Whether each value matches ``pattern`` (RE2, in pyarrow); NA never does."""
    hit = pc.match_substring_regex(pa_arrow.array(values.array), pattern)
    out: np.ndarray[Any, Any] = np.asarray(
        hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
    )
    return out


def _field_counts(params: pd.Series) -> np.ndarray[Any, Any]:
    """Fields in each ``params`` value, CSV style (0 when empty)."""
    array = pa_arrow.array(params.array)
    fields = pc.add(pc.count_substring(array, ","), 1).fill_null(0)
    out: np.ndarray[Any, Any] = np.array(fields.to_numpy(zero_copy_only=False), dtype=np.int64)
    quoted = np.asarray(pc.match_substring(array, '"').fill_null(False), dtype=bool)
    if quoted.any():  # only quoted values need the regular expression, and only they
        unquoted = pc.replace_substring_regex(array.filter(pa_arrow.array(quoted)), _QUOTED, "x")
        out[quoted] = np.asarray(pc.count_substring(unquoted, ","), dtype=np.int64) + 1
    return out


def _check_found(out: TemplateCheck, found: _Found) -> None:
    """Status, parameters, header and button of rows whose template was found."""
    status = found.entry("status")
    refused = status != "approved"
    if refused.any():
        shown = pd.Series(status[refused], dtype="str")
        codes = shown.map(_STATUS_CODES).fillna(Code.TEMPLATE_NOT_APPROVED).to_numpy()
        message = found.where(refused) + " is " + shown.str.replace("_", " ") + ", not approved: "
        message = message + "WhatsApp would refuse it"
        for code in pd.unique(codes):
            pick = codes == code
            positions = found.pos[refused][pick]
            written = _column(found.messages, "template_name", positions)
            _add(out, positions, "template_name", "template_approved", str(code),
                 _sub(message, pick), written)  # fmt: skip

    params = found.given("params")
    fields = _field_counts(params)
    # An authentication template's one placeholder is filled with verification_code.
    auth = (found.given("type").str.lower() == "authenticationtemplate").to_numpy(na_value=False)
    if auth.any():
        code = found.given("verification_code", auth)
        fields[auth] = code.notna().to_numpy().astype(np.int64)
    expected = found.entry("body_params").astype(np.int64)
    wrong = fields != expected
    if wrong.any():
        message = (
            found.where(wrong) + " takes " + _plural(pd.Series(expected[wrong]), "parameter")
            + "; this row has " + pd.Series(fields[wrong]).astype("str")
            + ": give one value per {{n}} of its body"
        )  # fmt: skip
        _add(
            out,
            found.pos[wrong],
            "params",
            "params_count",
            Code.PARAMS_COUNT,
            message,
            _sub(params, wrong),
        )
    spaced = _matches(params, _BAD_SPACING)
    if spaced.any():
        _add(out, found.pos[spaced], "params", "params_spacing", Code.PARAM_SPACING,
             found.where(spaced) + ": a parameter holds more than four spaces in a row: "
             "WhatsApp refuses it, remove them", _sub(params, spaced))  # fmt: skip
    _check_media(out, found)
    _check_placeholder(out, found, "header_params", "param_header", Code.HEADER_PARAM_MISSING,
                       " has a header with a placeholder (", "header_text",
                       "): fill param_header with its value")  # fmt: skip
    _check_placeholder(out, found, "url_params", "param_url", Code.URL_PARAM_MISSING,
                       " has a dynamic link button (", "url_button",
                       "): fill param_url with what replaces {{1}}")  # fmt: skip
    _check_buttons(out, found)
    _check_cards(out, found)


def _refusals(
    out: TemplateCheck, check: str, code: str, found: list[tuple[int, str, str, str]]
) -> None:
    """Row-by-row refusals ``(position, column, message, value)``, one finding per column."""
    for column in dict.fromkeys(column for _, column, _, _ in found):
        mine = [item for item in found if item[1] == column]
        _add(out, np.array([p for p, _, _, _ in mine], dtype=np.int64), column, check, code,
             pd.Series([m for _, _, m, _ in mine], dtype="str"),
             pd.Series([v for _, _, _, v in mine], dtype="str"))  # fmt: skip


def _check_buttons(out: TemplateCheck, found: _Found) -> None:
    """A row's ``buttons`` against its template's: at most one value per quick-reply, flow
    and copy-code button (a quick reply's payload may be left out; the others may not)."""
    given = found.given("buttons")
    types = pd.Series(found.entry("button_types"), dtype="str")
    needs = types.str.contains("FLOW|COPY_CODE", regex=True).fillna(False).to_numpy(dtype=bool)
    refused: list[tuple[int, str, str, str]] = []
    for i in np.flatnonzero(given.notna().to_numpy() | needs):
        cell = given.iloc[i]
        values = split_buttons(cell)
        kinds = str(types.iloc[i]).split("|") if pd.notna(types.iloc[i]) else []
        slots = [kind for kind in kinds if kind in VALUE_BUTTONS]
        where = str(found.where(np.arange(len(given)) == i).iloc[0])
        shown = "" if pd.isna(cell) else str(cell)
        if len(values) > len(slots):
            has = ", ".join(kind.lower() for kind in slots) or "no such button"
            message = (
                f"{where}'s buttons that take a value are: {has}; buttons gives "
                f"{len(values)} values: give at most one per button, |-separated, in order"
            )
            refused.append((int(found.pos[i]), "buttons", message, shown))
            continue
        for j, kind in enumerate(slots):
            if kind != "QUICK_REPLY" and (j >= len(values) or not values[j]):
                what = "flow token" if kind == "FLOW" else "coupon code"
                message = (
                    f"{where}'s button {j + 1} is a {kind.lower().replace('_', '-')} button: "
                    f"give its {what} as value {j + 1} of buttons (|-separated, quick-reply "
                    "payloads before it may be empty)"
                )
                refused.append((int(found.pos[i]), "buttons", message, shown))
                break
    _refusals(out, "template_buttons", Code.BUTTONS_MISMATCH, refused)


def _check_cards(out: TemplateCheck, found: _Found) -> None:
    """A row's carousel cards against the approved template's: their number, each card's
    parameters, and a media header's link."""
    given = found.given("cards")
    count = found.entry("card_count").astype(np.int64)
    layout = found.entry("card_params")
    header = found.entry("card_header")
    refused: list[tuple[int, str, str, str]] = []
    for i in np.flatnonzero(given.notna().to_numpy() | (count > 0)):
        cards = read_cards(given.iloc[i])
        where = str(found.where(np.arange(len(given)) == i).iloc[0])
        position = int(found.pos[i])
        if len(cards) != count[i]:
            if count[i] == 0:
                message = f"{where} is not a carousel: empty the card_N_ columns"
            else:
                message = (
                    f"{where} has {count[i]} cards; this row fills {len(cards)}: fill "
                    f"card_1_... to card_{count[i]}_..., one set per card of the template"
                )
            refused.append((position, "card_1_params", message, str(len(cards))))
            continue
        params = str(layout[i]).split("|") if isinstance(layout[i], str) else []
        for number, card in enumerate(cards, start=1):
            wanted = int(params[number - 1]) if number <= len(params) else 0
            values = split_params(card["params"])
            if len(values) != wanted:
                message = (
                    f"{where}'s card {number} takes {wanted} parameter"
                    f"{'' if wanted == 1 else 's'}; card_{number}_params has {len(values)}: "
                    "give one value per {{n}} of the card's body"
                )
                refused.append((position, f"card_{number}_params", message, card["params"] or ""))
            if header[i] in MEDIA_FORMATS and not card["media_url"]:
                kind = str(header[i]).lower()
                message = (
                    f"{where}'s cards show {_article(kind)}: fill card_{number}_media_url with "
                    f"a full https link to card {number}'s {kind}"
                )
                refused.append((position, f"card_{number}_media_url", message, ""))
    _refusals(out, "template_cards", Code.CARDS_MISMATCH, refused)


def _check_placeholder(
    out: TemplateCheck,
    found: _Found,
    count: str,
    column: str,
    code: str,
    says: str,
    shows: str,
    fix: str,
) -> None:
    """A header or link placeholder needs its value, on one line."""
    needed = found.entry(count) > 0
    if not needed.any():
        return  # a value the template does not take is not sent: not checked either
    given = found.given(column, needed)
    pos = found.pos[needed]
    needs = given.isna().to_numpy()
    if needs.any():
        message = found.where(needed)[needs].reset_index(drop=True) + says
        message = message + pd.Series(found.entry(shows)[needed][needs], dtype="str") + fix
        _add(out, pos[needs], column, f"{column}_required", code, message, _sub(given, needs))
    bad = _matches(given, _BAD_PARAM)
    if bad.any():
        _add(out, pos[bad], column, "param_spacing", Code.PARAM_SPACING,
             _sub(found.where(needed), bad) + f": {column} holds a line break, a tab or more "
             "than four spaces in a row: WhatsApp refuses it, write it on one line",
             _sub(given, bad))  # fmt: skip


def _check_media(out: TemplateCheck, found: _Found) -> None:
    """A media header needs a link to a file of its kind."""
    is_media = np.isin(found.entry("header_format"), MEDIA_FORMATS)
    if not is_media.any():
        return
    media = found.given("media_url", is_media)
    pos = found.pos[is_media]
    fmt = pd.Series(found.entry("header_format")[is_media], dtype="str")
    kind = fmt.str.lower()
    where = found.where(is_media).reset_index(drop=True)
    link = _matches(media, r"^https?://[^ \t/]+")
    lacking = ~link
    if lacking.any():
        _add(out, pos[lacking], "media_url", "media_required", Code.MEDIA_MISSING,
             _sub(where, lacking) + " has " + _sub(kind, lacking).map(_article) + " header: "
             "fill media_url with a full https link to the " + _sub(kind, lacking),
             _sub(media, lacking))  # fmt: skip
    found_extension = pc.extract_regex(
        pa_arrow.array(media.array), r"\.(?P<ext>[A-Za-z0-9]{2,5})(?:[?#].*)?$"
    )
    extension = pd.Series(
        pd.array(pc.utf8_lower(pc.struct_field(found_extension, "ext")), dtype="str")
    )
    shown_kind = extension.map(MEDIA_EXTENSIONS)
    mismatch = link & shown_kind.notna().to_numpy() & (shown_kind != fmt).to_numpy()
    if mismatch.any():
        _add(out, pos[mismatch], "media_url", "media_kind", Code.MEDIA_KIND,
             _sub(where, mismatch) + "'s header is " + _sub(kind, mismatch).map(_article)
             + ", but media_url links a ." + _sub(extension, mismatch) + " file ("
             + _sub(shown_kind, mismatch).str.lower().map(_article) + "): link "
             + _sub(kind, mismatch).map(_article), _sub(media, mismatch))  # fmt: skip


def _unknown_name(value: str, names: list[str]) -> str:
    text = f"no template named {value!r} in the catalogue"
    lowered = {str(n).lower(): str(n) for n in names}
    close = lowered.get(value.lower()) or next(
        iter(difflib.get_close_matches(value, [str(n) for n in names], n=1, cutoff=0.75)), None
    )
    hint = f": did you mean {close!r}?" if close else ": use an approved template's name"
    return text + hint


def _add(
    out: TemplateCheck,
    positions: np.ndarray[Any, Any],
    column: str,
    check: str,
    code: str,
    message: pd.Series,
    values: pd.Series,
) -> None:
    if not len(positions):
        return
    out.findings.append(
        Finding(
            positions=np.asarray(positions, dtype=np.int64),
            column=column,
            check=check,
            code=code,
            message=message.reset_index(drop=True).astype("str"),
            values=values.reset_index(drop=True).astype("str"),
        )
    )


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word
