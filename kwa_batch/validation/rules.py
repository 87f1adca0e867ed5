"""The rules a row must pass to be sent, per message type, and what each failure means for
the user (its code and its fix).

The rules are one table of :class:`Check` (a name, the columns, a vectorised test):
:data:`TEXT_CHECKS` for text rows, :data:`TEMPLATE_CHECKS` for template rows and
:data:`MESSAGE_CHECKS` for rows of an unknown type. :func:`check_models` runs them over the
built messages (every problem of every row in one pass) and records each failure in the
validation's :class:`~kwa_batch.validation.report.Problems`.

The same table is offered as pandera models — ``MessageRow``, ``TextMessage``,
``TemplateMessage`` — built on first use, for a pipeline of your own
(``TextMessage.validate(frame, lazy=True)``). ``validate()`` runs the table directly: pandera
would cost more to import and run than all of a small file's validation, and a command
that checks 20 rows should start about as fast as pandas does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pc

from ..errors import Code, KwaBatchError
from ..fields import API_COLUMNS, BODY_MAX, KNOWN_TYPES, REF_MAX
from .compose import SPACE as _SPACE
from .compose import body_hint
from .phones import E164_PATTERN, SEVERAL_FIX
from .report import Problems
from .sender import invalid_sender_message, usable_senders

__all__ = [  # and, built on first use, the pandera models MessageRow, TextMessage,
    # TemplateMessage (see __getattr__)
    "JSON_CHECKS",
    "MESSAGE_CHECKS",
    "TEMPLATE_CHECKS",
    "TEXT_CHECKS",
    "Check",
    "check_models",
    "failures",
]


# Free-text fields; 'to', 'from', 'type' and 'channel' have a stricter shape, and the report
# names HTML or control characters in them when they fail it (see _record).
_FREE_TEXT = ("template_name", "params", "lang_code", "ref", "ref1", "ref2", "callback_url",
              "media_url", "param_header", "param_url", "verification_code", "buttons",
              "list", "list_button", "reply_to")  # fmt: skip
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


@dataclass(frozen=True)
class Check:
    """One rule a row must pass: ``test`` takes a column's values and says, row by row,
    whether each passes (True) or not.

    Attributes:
        name: the check's name (its error code and message are in ``_RULES``).
        columns: the columns it applies to, each on its own.
        test: the vectorised test.
        ignore_na: missing values pass (the check is about values that are there).
        doc: what it requires, with its code.
    """

    name: str
    columns: tuple[str, ...]
    test: Callable[[pd.Series], pd.Series]
    doc: str
    ignore_na: bool = True


def _params_filled(params: pd.Series) -> pd.Series:
    shaped = _regex(params, _PARAMS_SHAPE, full=True)
    return ~shaped | _regex(params, _PARAMS_FILLED, full=True)


#: The checks every row passes, whatever its type. Columns are the API's field names;
#: validate() normalised ``to`` and ``from`` to E.164 first: ``to`` is null where the number
#: could not be read (the report gives the reason), ``from`` is null where the row leaves
#: the sender to the client.
MESSAGE_CHECKS: tuple[Check, ...] = (
    Check(
        "phone_valid",
        ("to",),
        lambda to: _regex(to, E164_PATTERN, full=True),
        f"{Code.INVALID_TO} ({Code.MANGLED_NUMBER} when a spreadsheet mangled it): a valid "
        "number, in E.164.",
        ignore_na=False,
    ),
    Check(
        "sender_valid",
        ("from",),
        usable_senders,
        f"{Code.INVALID_FROM}: the sender, when there is one, is a valid number in E.164.",
    ),
    Check(
        "type_known",
        ("type",),
        lambda kind: kind.isin(KNOWN_TYPES),
        f"{Code.UNKNOWN_TYPE}: one of fields.KNOWN_TYPES.",
        ignore_na=False,
    ),
    Check(
        "channel_known",
        ("channel",),
        lambda channel: _regex(channel, f"(?i)[{_SPACE}]*whatsapp[{_SPACE}]*", full=True),
        f"{Code.UNKNOWN_TYPE}: WhatsApp, or empty.",
    ),
    Check(
        "no_html",
        _FREE_TEXT,
        lambda values: ~_html(values),
        f"{Code.HTML_IN_PARAMETER}: no HTML tag outside the body (the API refuses them).",
    ),
    Check(
        "control_chars",
        _FREE_TEXT,
        lambda values: ~_has_byte(values, _CONTROL_BYTES),
        f"{Code.CONTROL_CHARACTERS}: no tab, line break or other control character outside "
        "the body.",
    ),
    Check(
        "body_control_chars",
        ("body",),
        lambda body: ~_has_byte(body, _CONTROL_BYTES_IN_BODY),
        f"{Code.CONTROL_CHARACTERS}: a body may break lines and hold tabs, nothing else.",
    ),
    Check(
        "body_length",
        ("body",),
        lambda body: body.str.len() <= BODY_MAX,
        f"{Code.TOO_LONG}: at most 4,096 characters.",
    ),
    Check(
        "ref_length",
        ("ref", "ref1", "ref2"),
        lambda ref: ref.str.len() <= REF_MAX,
        f"{Code.TOO_LONG}: at most 255 characters each.",
    ),
    Check(
        "params_format",
        ("params",),
        lambda params: _regex(params, _PARAMS_SHAPE, full=True),
        f"{Code.BAD_PARAMS}: comma-separated, CSV-quoted where a value holds a comma.",
    ),
    Check(
        "params_empty",
        ("params",),
        _params_filled,
        f"{Code.BAD_PARAMS}: no empty parameter (WhatsApp refuses them).",
    ),
    Check(
        "lang_code_format",
        ("lang_code",),
        lambda lang_code: _regex(lang_code, _LANG_CODE, full=True),
        f"{Code.BAD_LANG_CODE}: a language code such as 'en' or 'pt_BR'.",
    ),
    Check(
        "url",
        ("callback_url",),
        lambda url: _regex(url, _URL, full=True),
        f"{Code.BAD_CALLBACK_URL}: a full http(s) URL.",
    ),
)
#: A text message also needs a ``body``.
TEXT_CHECKS = (
    *MESSAGE_CHECKS,
    Check(
        "body_required",
        ("body",),
        _filled,
        f"{Code.REQUIRED_EMPTY}: a text message has a body.",
        ignore_na=False,
    ),
)
#: A template message also names its template.
TEMPLATE_CHECKS = (
    *MESSAGE_CHECKS,
    Check(
        "template_required",
        ("template_name",),
        _filled,
        f"{Code.REQUIRED_EMPTY}: a template message names its template.",
        ignore_na=False,
    ),
)
_MEDIA_URL = Check(
    "media_url_format",
    ("media_url",),
    lambda url: _regex(url, _URL, full=True),
    f"{Code.BAD_MEDIA_URL}: a full http(s) link.",
)
#: A media message needs a link to its media (a session message, like text).
MEDIA_CHECKS = (
    *MESSAGE_CHECKS,
    _MEDIA_URL,
    Check(
        "media_required",
        ("media_url",),
        _filled,
        f"{Code.REQUIRED_EMPTY}: a media link.",
        ignore_na=False,
    ),
)
#: A media template may link its header's media.
MEDIA_TEMPLATE_CHECKS = (*TEMPLATE_CHECKS, _MEDIA_URL)
#: An authentication template also needs the code it sends.
AUTH_CHECKS = (
    *TEMPLATE_CHECKS,
    Check(
        "code_required",
        ("verification_code",),
        _filled,
        f"{Code.REQUIRED_EMPTY}: the code to send.",
        ignore_na=False,
    ),
)
# The checks of each message type, and the column that type requires.
_BY_TYPE: tuple[tuple[str | None, tuple[Check, ...], tuple[str, ...]], ...] = (
    ("text", TEXT_CHECKS, ("body",)),
    ("template", TEMPLATE_CHECKS, ("template_name",)),
    ("media", MEDIA_CHECKS, ("media_url",)),
    ("mediatemplate", MEDIA_TEMPLATE_CHECKS, ("template_name",)),
    ("authenticationtemplate", AUTH_CHECKS, ("template_name", "verification_code")),
    # An interactive row's body, buttons and list: validation/rich.py checks them.
    ("interactive", MESSAGE_CHECKS, ()),
    (None, MESSAGE_CHECKS, ()),  # an unknown type: the checks every row passes
)
#: A ``message_json`` row: its type and content come from its object (validation/rich.py
#: checks it); the rest of the row is checked as any row's.
JSON_CHECKS = tuple(check for check in MESSAGE_CHECKS if check.name != "type_known")


def failures(frame: pd.DataFrame, checks: Sequence[Check]) -> Iterator[tuple[str, str, Any]]:
    """``(check, column, failed labels)`` for every check a column of ``frame`` fails.

    A column the frame does not have is not checked; a check that ignores missing values
    looks only at the values that are there.
    """
    for check in checks:
        for column in check.columns:
            if column not in frame.columns:
                continue
            values = frame[column]
            if check.ignore_na:
                present = values.notna().to_numpy()
                if not present.any():
                    continue
                if not present.all():
                    values = values[present]
            passed = np.asarray(check.test(values), dtype=bool)
            if not passed.all():
                yield check.name, column, values.index[~passed].to_numpy()


_PANDERA_MODELS = {
    "MessageRow": (MESSAGE_CHECKS, "A message as it will be sent, whatever its type."),
    "TextMessage": (TEXT_CHECKS, "A text message: it needs a ``body``."),
    "TemplateMessage": (TEMPLATE_CHECKS, "A template message: it needs a ``template_name``."),
}


def __getattr__(name: str) -> Any:
    """``MessageRow``, ``TextMessage`` and ``TemplateMessage``: the same checks as pandera
    ``DataFrameModel`` classes, built on first use (validate() itself never imports
    pandera: it costs more than all of a small file's validation)."""
    if name not in _PANDERA_MODELS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    model = _pandera_model(name, *_PANDERA_MODELS[name])
    globals()[name] = model
    return model


def _pandera_model(name: str, checks: Sequence[Check], doc: str) -> Any:
    import pandera.pandas as pa
    from pandera.typing import Series

    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__doc__": doc, "__module__": __name__}
    for column in API_COLUMNS:
        attribute = "from_" if column == "from" else column
        annotations[attribute] = Series[str]
        namespace[attribute] = pa.Field(
            nullable=True, required=column in ("to", "type"), alias=column
        )
    for check in checks:

        def method(cls: Any, values: Any, _test: Any = check.test) -> Any:
            return _test(values)

        method.__name__ = check.name
        method.__doc__ = check.doc
        namespace[check.name] = pa.check(
            *check.columns, name=check.name, ignore_na=check.ignore_na
        )(method)
    namespace["__annotations__"] = annotations
    namespace["Config"] = type("Config", (), {"strict": False, "coerce": False})
    return type(name, (pa.DataFrameModel,), namespace)


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
    "type_known": _Rule(
        Code.UNKNOWN_TYPE,
        "unknown type: use text, template, media, mediatemplate, authenticationtemplate or "
        "interactive (or leave it empty)",
    ),
    "media_required": _Rule(
        Code.REQUIRED_EMPTY, "a media message needs media_url: give a full https link to the file"
    ),
    "media_url_format": _Rule(
        Code.BAD_MEDIA_URL, "media_url must be a full http:// or https:// link, without spaces"
    ),
    "code_required": _Rule(
        Code.REQUIRED_EMPTY, "an authentication template needs verification_code: the code to send"
    ),
    "channel_known": _Rule(
        Code.UNKNOWN_TYPE,
        "this toolkit sends WhatsApp messages only: use channel 'whatsapp' or leave it empty",
    ),
    "body_required": _Rule(
        Code.REQUIRED_EMPTY,
        "a text message needs a body: fill it, or give a template_name to send a template",
    ),
    "body_length": _Rule(Code.TOO_LONG, _length_message(BODY_MAX)),
    "body_control_chars": _Rule(
        Code.CONTROL_CHARACTERS,
        "the body holds control characters (other than line breaks and tabs): remove them",
    ),
    "template_required": _Rule(
        Code.REQUIRED_EMPTY,
        "a template message needs a template_name: give the name of an approved template",
    ),
    "no_html": _Rule(
        Code.HTML_IN_PARAMETER,
        lambda column, _: (
            f"HTML tags are not allowed in '{column}' (only in body): remove the <...> tags"
        ),
    ),
    "control_chars": _Rule(
        Code.CONTROL_CHARACTERS,
        lambda column, _: f"'{column}' holds control characters (tabs, line breaks…): remove them",
    ),
    "ref_length": _Rule(Code.TOO_LONG, _length_message(REF_MAX)),
    "params_format": _Rule(
        Code.BAD_PARAMS,
        "params must be comma-separated values; a value that holds a comma or a quote goes in "
        'double quotes, with "" for a quote inside (e.g. "Tan, Wei Ling",A1008)',
    ),
    "params_empty": _Rule(
        Code.BAD_PARAMS,
        "params has an empty value (two commas in a row, or one at an end): WhatsApp refuses "
        "empty template parameters, so fill it or remove the extra comma",
    ),
    "lang_code_format": _Rule(
        Code.BAD_LANG_CODE,
        "lang_code must look like 'en' or 'pt_BR' (the language in lower case, then _ and the "
        "country in capitals)",
    ),
    "url": _Rule(
        Code.BAD_CALLBACK_URL,
        "callback_url must be a full http:// or https:// URL, without spaces",
    ),
}


def check_models(
    prepared: pd.DataFrame,
    problems: Problems,
    phones: pd.DataFrame,
    from_reason: pd.Series,
    written_to: pd.Series,
    source_columns: Sequence[object] = (),
) -> None:
    """Run the checks of each row's type over the built messages (``prepared``, indexed
    0..n-1) and record every failure in ``problems``; ``source_columns`` (the input's)
    name a ``Message`` column in the fix of a missing body."""
    hint = body_hint(source_columns)
    kinds = prepared["type"]
    as_json = (
        prepared["message_json"].notna().to_numpy()
        if "message_json" in prepared.columns
        else np.zeros(len(prepared), dtype=bool)
    )
    groups = [*_BY_TYPE, ("message_json", JSON_CHECKS, ())]
    for kind, checks, needed in groups:
        if kind == "message_json":
            mask = as_json
        else:
            mask = (kinds == kind).to_numpy() if kind else ~kinds.isin(KNOWN_TYPES).to_numpy()
            mask = mask & ~as_json
        if not mask.any():
            continue
        subset = prepared if mask.all() else prepared[mask]
        # A column empty in every row passes its checks: leave it out, but for the ones
        # every row of this type must fill.
        kept = [
            c for c in subset.columns if c in ("to", "type", *needed) or subset[c].notna().any()
        ]
        for name, column, failed in failures(subset[kept], checks):
            if name == "body_required" and hint:
                message = f"{_RULES[name].message}{hint}"
                problems.add(
                    failed,
                    column,
                    name,
                    Code.REQUIRED_EMPTY,
                    message,
                    prepared[column].iloc[failed],
                )
                continue
            _record(name, column, failed, prepared, problems, phones, from_reason, written_to)


def _record(
    name: str,
    column: str,
    failed: np.ndarray[Any, Any],
    prepared: pd.DataFrame,
    problems: Problems,
    phones: pd.DataFrame,
    from_reason: pd.Series,
    written_to: pd.Series,
) -> None:
    values = prepared[column].iloc[failed]
    if name == "phone_valid":
        values = written_to.iloc[failed]
        reasons = phones["reason"].iloc[failed]
        mangled = phones["mangled"].to_numpy()[failed]
        several = phones["several"].to_numpy()[failed]
        if several.any():  # a cell of several numbers (KWA032): never split, never guessed
            message = reasons[several] + ": " + SEVERAL_FIX
            problems.add(failed[several], column, "phone_several", Code.SEVERAL_NUMBERS, message,
                         values[several])  # fmt: skip
            failed, reasons, values = failed[~several], reasons[~several], values[~several]
            mangled = mangled[~several]
        if not mangled.any():
            problems.add(failed, column, name, Code.INVALID_TO, reasons, values)
        else:
            plain = ~mangled
            problems.add(
                failed[plain], column, name, Code.INVALID_TO, reasons[plain], values[plain]
            )
            problems.add(
                failed[mangled],
                column,
                "phone_mangled",
                Code.MANGLED_NUMBER,
                reasons[mangled] + ": re-export the column as text; the number will not be guessed",
                values[mangled],
            )
    elif name == "sender_valid":
        reason = from_reason.iloc[failed].fillna("is not a valid number").reset_index(drop=True)
        message = reason.map(invalid_sender_message, na_action="ignore")
        problems.add(failed, column, name, Code.INVALID_FROM, message, values)
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
