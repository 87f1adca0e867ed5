"""Template rows checked against the catalogue (:func:`.templates.load_templates`), and the
message as the recipient will read it.

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
=======  ==================================================  ========================

An empty ``lang_code`` takes the template's only language (:attr:`TemplateCheck.lang_code`
gives it back, to be sent). ``params`` is checked for more than four spaces in a row;
tabs, line breaks and empty values in it are :func:`kwa_batch.validate`'s own checks
(``KWA006``, ``KWA010``). ``param_header`` and ``param_url`` are checked for all three.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .templates import MEDIA_FORMATS, TEMPLATE_COLUMNS, load_templates

__all__ = ["TEMPLATE_TYPES", "Finding", "TemplateCheck", "check_templates", "render_messages"]

#: Message types that name a template.
TEMPLATE_TYPES = ("template", "mediatemplate", "authenticationtemplate")
#: File extensions that show a media kind (another extension is not judged).
MEDIA_EXTENSIONS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "IMAGE"),
    **dict.fromkeys(("mp4", "3gp", "3gpp", "mov"), "VIDEO"),
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt"), "DOCUMENT"),
}
_STATUS_CODES = {"paused": "KWA017", "disabled": "KWA018"}
_QUOTED = r'"(?:[^"]|"")*"'
_BAD_SPACING = r"[ \u00a0]{5,}"
_BAD_PARAM = r"[\t\r\n]|[ \u00a0]{5,}"


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
    """

    findings: list[Finding] = field(default_factory=list)
    lang_code: pd.Series | None = None

    def mask(self, n: int) -> np.ndarray[Any, Any]:
        """Which of ``n`` rows are refused."""
        out = np.zeros(n, dtype=bool)
        for finding in self.findings:
            out[finding.positions] = True
        return out


def _column(messages: pd.DataFrame, name: str) -> pd.Series:
    n = len(messages)
    if name not in messages.columns:
        return pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="str")
    text = messages[name].reset_index(drop=True).astype("str").str.strip()
    return text.mask(text == "")


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
    name = _column(messages, "template_name")
    kind = _column(messages, "type").str.lower()
    lang = _column(messages, "lang_code")
    out = TemplateCheck(lang_code=lang)
    rows = (kind.isin(TEMPLATE_TYPES) | kind.isna()) & name.notna()
    if not rows.any():
        return out
    m = pd.DataFrame({"name": name[rows], "lang": lang[rows]})
    m["pos"] = np.flatnonzero(rows.to_numpy())

    # 1. The name.
    names = pd.Index(table["template_name"].unique())
    unknown = ~m["name"].isin(names)
    if unknown.any():
        hints = {value: _unknown_name(value, names) for value in m.loc[unknown, "name"].unique()}
        _add(out, m[unknown], "template_name", "template_known", "KWA013",
             m.loc[unknown, "name"].map(hints), m.loc[unknown, "name"])  # fmt: skip
    m = m[~unknown]

    # 2. The language: an empty one takes the template's only language.
    languages = table.groupby("template_name")["lang_code"].agg(lambda s: ", ".join(sorted(s)))
    counts = table.groupby("template_name")["lang_code"].size()
    empty = m["lang"].isna()
    only = empty & (m["name"].map(counts) == 1)
    if only.any():
        single = table.drop_duplicates("template_name").set_index("template_name")["lang_code"]
        m.loc[only, "lang"] = m.loc[only, "name"].map(single)
        filled = lang.copy()
        filled.iloc[m.loc[only, "pos"].to_numpy()] = m.loc[only, "lang"].to_numpy()
        out.lang_code = filled
    several = empty & ~only
    if several.any():
        picked = m[several]
        message = (
            "lang_code is empty and " + picked["name"] + " exists in "
            + _plural(picked["name"].map(counts), "language") + " ("
            + picked["name"].map(languages) + "): fill lang_code with one of them"
        )  # fmt: skip
        _add(out, picked, "lang_code", "language_chosen", "KWA014", message, picked["lang"])
    m = m[~several]

    # 3. The template in that language.
    keyed = m.merge(
        table, left_on=["name", "lang"], right_on=["template_name", "lang_code"], how="left"
    )
    missing = keyed["template_name"].isna()
    if missing.any():
        lost = keyed[missing]
        message = (
            lost["name"] + " has no '" + lost["lang"] + "' version (languages: "
            + lost["name"].map(languages) + "): use one of them, or have it approved in this one"
        )  # fmt: skip
        _add(out, lost, "lang_code", "language_known", "KWA015", message, lost["lang"])
    found = keyed[~missing].reset_index(drop=True)
    if not found.empty:
        _check_found(out, found, messages)
    return out


def _unknown_name(value: str, names: pd.Index) -> str:
    text = f"no template named {value!r} in the catalogue"
    lowered = {str(n).lower(): str(n) for n in names}
    close = lowered.get(value.lower()) or next(
        iter(difflib.get_close_matches(value, [str(n) for n in names], n=1, cutoff=0.75)), None
    )
    hint = f": did you mean {close!r}?" if close else ": use an approved template's name"
    return text + hint


def _add(
    out: TemplateCheck,
    rows: pd.DataFrame,
    column: str,
    check: str,
    code: str,
    message: pd.Series,
    values: pd.Series,
) -> None:
    if rows.empty:
        return
    out.findings.append(
        Finding(
            positions=rows["pos"].to_numpy(dtype=np.int64),
            column=column,
            check=check,
            code=code,
            message=message.reset_index(drop=True).astype("str"),
            values=values.reset_index(drop=True).astype("str"),
        )
    )


def _check_found(out: TemplateCheck, found: pd.DataFrame, messages: pd.DataFrame) -> None:
    """Status, parameters, header and button of rows whose template was found."""
    found = found.astype(dict.fromkeys(("body_params", "header_params", "url_params"), "int64"))
    where = found["name"] + " (" + found["lang"] + ")"
    pos = found["pos"].to_numpy()
    status = found["status"]
    refused = status != "approved"
    if refused.any():
        codes = status[refused].map(_STATUS_CODES).fillna("KWA016")
        shown = status[refused].str.replace("_", " ")
        message = where[refused] + " is " + shown + ", not approved: WhatsApp would refuse it"
        for code in codes.unique():
            pick = (codes == code).to_numpy()
            _add(out, found[refused][pick], "template_name", "template_approved", code,
                 message[pick], found.loc[refused, "name"][pick])  # fmt: skip

    def given(name: str) -> pd.Series:
        return _column(messages, name).iloc[pos].reset_index(drop=True)

    params = given("params")
    fields = params.fillna("").str.replace(_QUOTED, "x", regex=True).str.count(",") + 1
    fields = fields.where(params.notna(), 0).astype("int64")
    wrong = fields != found["body_params"]
    message = (
        where + " takes " + _plural(found["body_params"], "parameter") + "; this row has "
        + fields.astype("str") + ": give one value per {{n}} of its body"
    )  # fmt: skip
    _add(out, found[wrong], "params", "params_count", "KWA019", message[wrong], params[wrong])
    spaced = params.str.contains(_BAD_SPACING, regex=True).fillna(False).astype(bool)
    _add(out, found[spaced], "params", "params_spacing", "KWA024",
         where[spaced] + ": a parameter holds more than four spaces in a row: WhatsApp refuses "
         "it, remove them", params[spaced])  # fmt: skip
    _check_header(out, found, where, given("media_url"), given("param_header"))
    url = given("param_url")
    needs_url = (found["url_params"] > 0) & url.isna()
    _add(out, found[needs_url], "param_url", "param_url_required", "KWA023",
         where[needs_url] + " has a dynamic link button (" + found["url_button"][needs_url]
         + "): fill param_url with what replaces {{1}}", url[needs_url])  # fmt: skip
    _bad_values(out, found, where, "param_url", url)


def _check_header(
    out: TemplateCheck,
    found: pd.DataFrame,
    where: pd.Series,
    media: pd.Series,
    header: pd.Series,
) -> None:
    fmt = found["header_format"]
    is_media = fmt.isin(MEDIA_FORMATS)
    link = media.str.match(r"https?://[^\s/]+", na=False).astype(bool)
    lacking = is_media & ~link
    kind = fmt.str.lower()
    _add(out, found[lacking], "media_url", "media_required", "KWA020",
         where[lacking] + " has " + kind[lacking].map(_article) + " header: fill media_url "
         "with a full https link to the " + kind[lacking], media[lacking])  # fmt: skip
    extension = media.str.extract(r"\.([A-Za-z0-9]{2,5})(?:[?#].*)?$", expand=False).str.lower()
    shown_kind = extension.map(MEDIA_EXTENSIONS)
    mismatch = is_media & link & shown_kind.notna() & (shown_kind != fmt)
    _add(out, found[mismatch], "media_url", "media_kind", "KWA021",
         where[mismatch] + "'s header is " + kind[mismatch].map(_article) + ", but media_url "
         "links a ." + extension[mismatch] + " file ("
         + shown_kind[mismatch].str.lower().map(_article) + "): link "
         + kind[mismatch].map(_article), media[mismatch])  # fmt: skip
    needs = (found["header_params"] > 0) & header.isna()
    _add(out, found[needs], "param_header", "param_header_required", "KWA022",
         where[needs] + " has a header with a placeholder (" + found["header_text"][needs]
         + "): fill param_header with its value", header[needs])  # fmt: skip
    _bad_values(out, found, where, "param_header", header)


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _bad_values(
    out: TemplateCheck, found: pd.DataFrame, where: pd.Series, column: str, values: pd.Series
) -> None:
    raw = values.where(values.notna())
    bad = raw.str.contains(_BAD_PARAM, regex=True).fillna(False).astype(bool)
    _add(out, found[bad], column, "param_spacing", "KWA024",
         where[bad] + f": {column} holds a line break, a tab or more than four spaces in a row: "
         "WhatsApp refuses it, write it on one line", values[bad])  # fmt: skip


# -- the message as the recipient reads it ------------------------------------------------


def split_params(params: str | None) -> list[str]:
    """``params`` as values (CSV style: ``"Tan, Wei Ling",A1008``)."""
    if params is None or (isinstance(params, float) and params != params) or params is pd.NA:
        return []
    return next(csv.reader([str(params)]), [])


def render_messages(messages: pd.DataFrame, catalogue: Any, rows: int = 5) -> pd.DataFrame:
    """The first ``rows`` messages as their recipients will read them.

    A template row shows its header, body and footer with the parameters filled in; a text
    row its body; a row whose template is not in the catalogue shows NA.

    Returns:
        A frame indexed like the first ``rows`` of ``messages``, with ``to``, ``template``
        (``name (lang)``, NA for text) and ``message``.

    Example:
        >>> catalogue = load_templates({"data": [{"name": "hi", "language": "en",
        ...     "status": "approved", "components": [{"type": "BODY", "text": "Hi {{1}}!"}]}]})
        >>> render_messages(pd.DataFrame({"template_name": ["hi"], "params": ["Ana"]}),
        ...                 catalogue)["message"].tolist()
        ['Hi Ana!']
    """
    head = messages.head(rows)
    table = _catalogue(catalogue).set_index(["template_name", "lang_code"])
    langs = check_templates(head, table.reset_index()).lang_code
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
