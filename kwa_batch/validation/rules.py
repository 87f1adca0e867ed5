"""The rules a row must pass to be sent: pandera models per message type, and what each
failure means for the user (its code and its fix).

:class:`TextMessage` checks text rows, :class:`TemplateMessage` template rows and
:class:`MessageRow` rows of an unknown type; :func:`check_models` runs them lazily over the
built messages (every problem of every row in one pass) and records each failure in the
validation's :class:`~kwa_batch.validation.report.Problems`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors
from pandera.typing import Series

from ..errors import KwaBatchError
from ..fields import BODY_MAX, KNOWN_TYPES, REF_MAX
from .compose import SPACE as _SPACE
from .phones import E164_PATTERN, normalize_phone
from .report import Problems

__all__ = [
    "MessageRow",
    "TemplateMessage",
    "TextMessage",
    "check_models",
]


# Free-text fields; 'to', 'from', 'type' and 'channel' have a stricter shape, and the report
# names HTML or control characters in them when they fail it (see _record).
_FREE_TEXT = ("template_name", "params", "lang_code", "ref", "ref1", "ref2", "callback_url")
_SHAPED = ("to", "from", "type", "channel")
# RE2 patterns (pyarrow runs them); no \s, \d or \w, which RE2 reads as ASCII only.
_HTML_TAG = rf"<[{_SPACE}]*/?[{_SPACE}]*[A-Za-z!][^<>]*>"
_URL = rf"https?://[^{_SPACE}/?#]+[^{_SPACE}]*"
# A params value: comma-separated fields, each plain (no quote, no comma) or double-quoted
# CSV style with "" for a quote inside; "filled" when every field has a visible character.
_PARAM_FIELD = r'(?:"(?:[^"]|"")*"|[^",]*)'
_PARAMS_SHAPE = rf"{_PARAM_FIELD}(?:,{_PARAM_FIELD})*"
_PARAM_FILLED = rf'(?:"(?:[^"]|"")*(?:[^"{_SPACE}]|"")(?:[^"]|"")*"|[^",]*[^",{_SPACE}][^",]*)'
_PARAMS_FILLED = rf"{_PARAM_FILLED}(?:,{_PARAM_FILLED})*"
_LANG_CODE = r"[a-z]{2,3}(?:_[A-Z]{2})?"


# ---------------------------------------------------------------------------------------
# The models: what a row must look like to be sent.


def _check(*columns: str, ignore_na: bool = True) -> Callable[[Any], Any]:
    """A vectorised pandera check named after its method (the name the report keys on).

    ``n_failure_cases=1``: the report is built from each check's full boolean output, so
    pandera need not collect and format every failing value (slow on large frames).
    """

    def decorate(method: Any) -> Any:
        name = method.__name__
        return pa.check(*columns, name=name, ignore_na=ignore_na, n_failure_cases=1)(method)

    return decorate


def _arrow(values: pd.Series) -> pa_arrow.Array | pa_arrow.ChunkedArray:
    return pa_arrow.array(values.array)


def _bools(result: Any, index: pd.Index) -> pd.Series:
    out = np.asarray(result.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return pd.Series(out, index=index)


def _regex(values: pd.Series, pattern: str, *, full: bool = False) -> pd.Series:
    """Whether each value matches ``pattern`` (anywhere, or ``full``y); NA never does.

    Run in pyarrow (RE2) directly: the checks below use no construct where RE2 and
    Python's ``re`` differ. A column that is empty, or one value repeated (a campaign-wide
    setting), is checked once.
    """
    array = _arrow(values)
    if array.null_count == len(array):
        return pd.Series(np.zeros(len(array), dtype=bool), index=values.index)
    expression = f"^(?:{pattern})$" if full else pattern
    present = pc.drop_null(array)
    first = present[0]
    if bool(pc.all(pc.equal(present, first)).as_py()):
        hit = bool(pc.match_substring_regex(pa_arrow.array([first.as_py()]), expression)[0].as_py())
        return _bools(pc.is_valid(array), values.index) & hit
    return _bools(pc.match_substring_regex(array, expression), values.index)


def _byte_table(codes: Any) -> np.ndarray[Any, Any]:
    table = np.zeros(256, dtype=bool)
    table[list(codes)] = True
    return table


_CONTROL_BYTES = _byte_table([*range(0x20), 0x7F])
_CONTROL_BYTES_IN_BODY = _byte_table(  # a body may break lines and hold tabs
    [b for b in [*range(0x20), 0x7F] if b not in (0x09, 0x0A, 0x0D)]
)
_LESS_THAN = _byte_table([ord("<")])


def _has_byte(values: pd.Series, table: np.ndarray[Any, Any]) -> pd.Series:
    """Whether each value holds a byte of ``table`` (its UTF-8 bytes, read with numpy).

    Exact for ASCII bytes, which never occur inside a multi-byte UTF-8 character; much
    faster than a regular expression on a large clean column.
    """
    array = _arrow(values)
    chunks = array.chunks if isinstance(array, pa_arrow.ChunkedArray) else [array]
    out = np.zeros(len(array), dtype=bool)
    start = 0
    for chunk in chunks:
        chunk = chunk.cast(pa_arrow.large_string())
        n = len(chunk)
        buffers = chunk.buffers()
        if n and buffers[2] is not None:
            offsets = np.frombuffer(buffers[1], dtype=np.int64)[chunk.offset : chunk.offset + n + 1]
            data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
            hits = np.flatnonzero(table[data])
            if len(hits):
                rows = np.searchsorted(offsets, hits + offsets[0], side="right") - 1
                out[start + rows] = True
        start += n
    out &= np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)
    return pd.Series(out, index=values.index)


def _html(values: pd.Series) -> pd.Series:
    """Whether each value holds an HTML tag (only values with a '<' are searched)."""
    candidates = _has_byte(values, _LESS_THAN)
    if not candidates.any():
        return candidates
    found = _regex(values[candidates], _HTML_TAG)
    out = candidates.copy()
    out[candidates] = found.to_numpy()
    return out


def _filled(values: pd.Series) -> pd.Series:
    """Whether each value holds something other than whitespace."""
    array = _arrow(values)
    empty = pc.or_kleene(pc.equal(pc.utf8_length(array), 0), pc.utf8_is_space(array))
    return _bools(pc.invert(empty), values.index)


class MessageRow(pa.DataFrameModel):
    """A message as it will be sent, whatever its type: the checks every row must pass.

    Columns are the API's field names. :func:`validate` normalised ``to`` and ``from`` to
    E.164 first: ``to`` is null where the number could not be read (the report gives the
    reason), ``from`` is null where the row leaves the sender to the client.
    """

    to: Series[str] = pa.Field(nullable=True)
    type: Series[str] = pa.Field(nullable=True)
    # Optional: validate() leaves out a column that is empty in every row it checks.
    from_: Series[str] = pa.Field(nullable=True, required=False, alias="from")
    channel: Series[str] = pa.Field(nullable=True, required=False)
    body: Series[str] = pa.Field(nullable=True, required=False)
    template_name: Series[str] = pa.Field(nullable=True, required=False)
    params: Series[str] = pa.Field(nullable=True, required=False)
    lang_code: Series[str] = pa.Field(nullable=True, required=False)
    ref: Series[str] = pa.Field(nullable=True, required=False)
    ref1: Series[str] = pa.Field(nullable=True, required=False)
    ref2: Series[str] = pa.Field(nullable=True, required=False)
    callback_url: Series[str] = pa.Field(nullable=True, required=False)

    class Config:
        strict = False
        coerce = False

    @_check("to", ignore_na=False)
    def phone_valid(cls, to: Series[str]) -> pd.Series:
        """E13009 (KWA004 when a spreadsheet mangled it): a valid number, in E.164."""
        return _regex(to, E164_PATTERN, full=True)

    @_check("from")
    def sender_valid(cls, sender: Series[str]) -> pd.Series:
        """E13008: the sender, when there is one, is a valid number in E.164."""
        # Senders are few distinct values (usually one): check each once.
        distinct = [v for v in sender.dropna().unique() if normalize_phone(v).e164 == v]
        return sender.isin(distinct)

    @_check("type", ignore_na=False)
    def type_known(cls, kind: Series[str]) -> pd.Series:
        """KWA003: 'text' or 'template'."""
        return kind.isin(KNOWN_TYPES)

    @_check("channel")
    def channel_known(cls, channel: Series[str]) -> pd.Series:
        """KWA003: WhatsApp, or empty."""
        return _regex(channel, f"(?i)[{_SPACE}]*whatsapp[{_SPACE}]*", full=True)

    @_check(*_FREE_TEXT)
    def no_html(cls, values: Series[str]) -> pd.Series:
        """E413: no HTML tag outside the body (the API refuses them)."""
        return ~_html(values)

    @_check(*_FREE_TEXT)
    def control_chars(cls, values: Series[str]) -> pd.Series:
        """KWA006: no tab, line break or other control character outside the body."""
        return ~_has_byte(values, _CONTROL_BYTES)

    @_check("body")
    def body_control_chars(cls, body: Series[str]) -> pd.Series:
        """KWA006: a body may break lines and hold tabs, nothing else."""
        return ~_has_byte(body, _CONTROL_BYTES_IN_BODY)

    @_check("body")
    def body_length(cls, body: Series[str]) -> pd.Series:
        """KWA001: at most 4,096 characters."""
        return body.str.len() <= BODY_MAX

    @_check("ref", "ref1", "ref2")
    def ref_length(cls, ref: Series[str]) -> pd.Series:
        """KWA001: at most 255 characters each."""
        return ref.str.len() <= REF_MAX

    @_check("params")
    def params_format(cls, params: Series[str]) -> pd.Series:
        """KWA010: comma-separated, CSV-quoted where a value holds a comma."""
        return _regex(params, _PARAMS_SHAPE, full=True)

    @_check("params")
    def params_empty(cls, params: Series[str]) -> pd.Series:
        """KWA010: no empty parameter (WhatsApp refuses them)."""
        return ~_regex(params, _PARAMS_SHAPE, full=True) | _regex(params, _PARAMS_FILLED, full=True)

    @_check("lang_code")
    def lang_code_format(cls, lang_code: Series[str]) -> pd.Series:
        """KWA011: a language code such as 'en' or 'pt_BR'."""
        return _regex(lang_code, _LANG_CODE, full=True)

    @_check("callback_url")
    def url(cls, url: Series[str]) -> pd.Series:
        """KWA005: a full http(s) URL."""
        return _regex(url, _URL, full=True)


class TextMessage(MessageRow):
    """A text message: it needs a ``body`` (at most 4,096 characters)."""

    @_check("body", ignore_na=False)
    def body_required(cls, body: Series[str]) -> pd.Series:
        """KWA002: a text message has a body."""
        return _filled(body)


class TemplateMessage(MessageRow):
    """A template message: it needs the ``template_name`` of an approved template."""

    @_check("template_name", ignore_na=False)
    def template_required(cls, name: Series[str]) -> pd.Series:
        """KWA002: a template message names its template."""
        return _filled(name)


# ---------------------------------------------------------------------------------------
# What each check's failure means for the user: its code and how to fix it.

_Message = Callable[[str, pd.Series], "str | pd.Series"]


@dataclass(frozen=True)
class _Rule:
    code: str
    message: str | _Message


def _length_message(limit: int) -> _Message:
    def message(column: str, values: pd.Series) -> pd.Series:
        lengths = values.str.len().astype("Int64").astype("str")
        return (
            f"'{column}' has "
            + lengths
            + f" characters; the limit is {limit:,}: shorten it"
            + (" (or split the message)" if column == "body" else "")
        )

    return message


_RULES: dict[str, _Rule] = {
    "type_known": _Rule("KWA003", "unknown type: use 'text' or 'template' (or leave it empty)"),
    "channel_known": _Rule(
        "KWA003",
        "this toolkit sends WhatsApp messages only: use channel 'whatsapp' or leave it empty",
    ),
    "body_required": _Rule(
        "KWA002",
        "a text message needs a body: fill it, or give a template_name to send a template",
    ),
    "body_length": _Rule("KWA001", _length_message(BODY_MAX)),
    "body_control_chars": _Rule(
        "KWA006",
        "the body holds control characters (other than line breaks and tabs): remove them",
    ),
    "template_required": _Rule(
        "KWA002",
        "a template message needs a template_name: give the name of an approved template",
    ),
    "no_html": _Rule(
        "E413",
        lambda column, _: (
            f"HTML tags are not allowed in '{column}' (only in body): remove the <...> tags"
        ),
    ),
    "control_chars": _Rule(
        "KWA006",
        lambda column, _: f"'{column}' holds control characters (tabs, line breaks…): remove them",
    ),
    "ref_length": _Rule("KWA001", _length_message(REF_MAX)),
    "params_format": _Rule(
        "KWA010",
        "params must be comma-separated values; a value that holds a comma or a quote goes in "
        'double quotes, with "" for a quote inside (e.g. "Tan, Wei Ling",A1008)',
    ),
    "params_empty": _Rule(
        "KWA010",
        "params has an empty value (two commas in a row, or one at an end): WhatsApp refuses "
        "empty template parameters, so fill it or remove the extra comma",
    ),
    "lang_code_format": _Rule(
        "KWA011",
        "lang_code must look like 'en' or 'pt_BR' (the language in lower case, then _ and the "
        "country in capitals)",
    ),
    "url": _Rule(
        "KWA005",
        "callback_url must be a full http:// or https:// URL, without spaces",
    ),
}


def check_models(
    prepared: pd.DataFrame,
    problems: Problems,
    phones: pd.DataFrame,
    from_reason: pd.Series,
    written_to: pd.Series,
) -> None:
    kinds = prepared["type"]
    for model, mask, needed in (
        (TextMessage, (kinds == "text").to_numpy(), "body"),
        (TemplateMessage, (kinds == "template").to_numpy(), "template_name"),
        (MessageRow, ~kinds.isin(KNOWN_TYPES).to_numpy(), None),
    ):
        if not mask.any():
            continue
        subset = prepared if mask.all() else prepared[mask]
        # A column empty in every row passes its checks: leave it out (pandera's work per
        # column adds up), but for the ones a model requires.
        kept = [c for c in subset.columns if c in ("to", "type", needed) or subset[c].notna().any()]
        subset = subset[kept]
        try:
            # inplace: nothing is coerced, so pandera need not copy the frame first.
            model.validate(subset, lazy=True, inplace=True)
        except SchemaErrors as exc:
            for error in exc.schema_errors:
                _record(error, prepared, problems, phones, from_reason, written_to)


def _record(
    error: Any,
    prepared: pd.DataFrame,
    problems: Problems,
    phones: pd.DataFrame,
    from_reason: pd.Series,
    written_to: pd.Series,
) -> None:
    check = error.check
    name = getattr(check, "name", None) or str(check)
    column = str(getattr(error.schema, "name", "") or "*")
    output = error.check_output
    if output is None or not isinstance(output, pd.Series):
        raise KwaBatchError(f"validation could not run check {name!r} on {column!r}: {error}")
    failed = output.index[~output.to_numpy(dtype=bool, na_value=False)].to_numpy()
    if len(failed) == 0:
        return
    values = prepared[column].iloc[failed] if column in prepared.columns else None
    assert values is not None
    if name == "phone_valid":
        values = written_to.iloc[failed]
        reasons = phones["reason"].iloc[failed]
        mangled = phones["mangled"].to_numpy()[failed]
        if not mangled.any():
            problems.add(failed, column, name, "E13009", reasons, values)
        else:
            plain = ~mangled
            problems.add(failed[plain], column, name, "E13009", reasons[plain], values[plain])
            problems.add(
                failed[mangled],
                column,
                "phone_mangled",
                "KWA004",
                reasons[mangled] + ": re-export the column as text; the number will not be guessed",
                values[mangled],
            )
    elif name == "sender_valid":
        reason = from_reason.iloc[failed].fillna("is not a valid number").reset_index(drop=True)
        message = (
            "the sender " + reason + ": use your WhatsApp business number with + and country code"
        )
        problems.add(failed, column, name, "E13008", message, values)
    else:
        _add_rule(problems, name, failed, column, values)
    if column in _SHAPED:
        # A value that fails its shape may also hold HTML (E413, as the API would answer)
        # or control characters: say so too, they are what to remove.
        for check, test in (
            ("no_html", _html),
            ("control_chars", lambda v: _has_byte(v, _CONTROL_BYTES)),
        ):
            hit = test(values).to_numpy()
            if hit.any():
                _add_rule(problems, check, failed[hit], column, values[hit])


def _add_rule(
    problems: Problems, name: str, failed: np.ndarray[Any, Any], column: str, values: pd.Series
) -> None:
    rule = _RULES.get(name)
    if rule is None:  # a check without a rule is a bug here, not the user's problem
        raise KwaBatchError(f"validation check {name!r} has no error code")
    message_value = rule.message if isinstance(rule.message, str) else rule.message(column, values)
    if isinstance(message_value, pd.Series):
        message_value = message_value.reset_index(drop=True)
    problems.add(failed, column, name, rule.code, message_value, values)
