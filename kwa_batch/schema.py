"""Validation of recipient rows before anything is sent: ``validate()`` → ``ValidationReport``.

Every check is a vectorised rule over a column; each failure becomes one line of the
report's long-form ``errors`` frame (row, line in the file, column, value, check, code, and
a message that tells the fix). A row with any error is invalid and is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import ValidationError, describe_code
from .phones import normalize_phones
from .recipients import line_numbers

__all__ = [
    "BODY_MAX",
    "MESSAGE_COLUMNS",
    "REF_MAX",
    "ValidationReport",
    "validate",
]

REF_MAX = 255
BODY_MAX = 4096
#: The columns that make a message: two rows alike in all of them but ``to`` are the same
#: message (and can share one request).
MESSAGE_COLUMNS = (
    "from",
    "type",
    "channel",
    "body",
    "template_name",
    "params",
    "lang_code",
    "ref",
    "ref1",
    "ref2",
    "callback_url",
)
_TEXT_FIELDS = ("template_name", "params", "lang_code", "ref", "ref1", "ref2", "callback_url")
_HTML_TAG = r"<\s*/?\s*[A-Za-z!][^<>]*>"
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
_CONTROL_STRICT = r"[\x00-\x1f\x7f]"
_URL = r"https?://[^\s/?#]+[^\s]*"
_KNOWN_TYPES = ("text", "template")
_ERROR_COLUMNS = ["row", "line", "column", "value", "check", "error_code", "message"]


@dataclass
class ValidationReport:
    """The verdict on every row: which will be sent, which will not, and why.

    Attributes:
        data: the input frame, as given.
        valid: rows that pass, with ``to``/``from`` normalised to E.164 and ``type`` filled.
        invalid: rows that fail, as given, with ``error_code`` (the first) and ``errors``
            (every reason) columns.
        errors: one line per problem: ``row`` (the input's index label), ``line`` (in the
            file), ``column``, ``value``, ``check``, ``error_code``, ``message``.
        default_region, sender: the settings the rows were checked with.
    """

    data: pd.DataFrame
    valid: pd.DataFrame
    invalid: pd.DataFrame
    errors: pd.DataFrame
    default_region: str | None = None
    sender: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every row is valid."""
        return bool(self.invalid.empty)

    def summary(self) -> pd.DataFrame:
        """Counts of problems by error code, with what each means and how to fix it."""
        if self.errors.empty:
            return pd.DataFrame(
                {"rows": pd.Series(dtype="int64"), "meaning": pd.Series(dtype="str")}
            ).rename_axis("error_code")
        counts = self.errors.groupby("error_code")["row"].nunique().rename("rows")
        out = counts.to_frame()
        out["meaning"] = pd.array([describe_code(c) for c in out.index], dtype="str")
        return out.sort_values("rows", ascending=False)

    def raise_for_errors(self) -> None:
        """Raise :class:`ValidationError` describing the first problems, if any row is invalid."""
        if self.ok:
            return
        first = self.errors.head(3)
        lines = "; ".join(_describe(row) for row in first.itertuples(index=False))
        more = len(self.errors) - len(first)
        tail = f" (and {more} more)" if more > 0 else ""
        raise ValidationError(f"{len(self.invalid)} invalid row(s): {lines}{tail}")

    def __repr__(self) -> str:
        return (
            f"<ValidationReport: {len(self.data)} rows, {len(self.valid)} valid, "
            f"{len(self.invalid)} invalid>"
        )

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>ValidationReport</b>: {len(self.data)} rows, "
            f"<span style='color:#1a7f37'>{len(self.valid)} valid</span>, "
            f"<span style='color:#cf222e'>{len(self.invalid)} invalid</span></p>"
        )
        if self.errors.empty:
            return head
        shown = self.errors.head(20)
        table = shown.to_html(index=False, escape=True, na_rep="")
        more = (
            f"<p>… and {len(self.errors) - len(shown)} more problems</p>"
            if len(self.errors) > len(shown)
            else ""
        )
        return str(head + table + more)


def _describe(row: Any) -> str:
    where = f"line {row.line}" if pd.notna(row.line) else f"row {row.row}"
    return f"{where}, column {row.column!r} = {row.value!r}: {row.message}"


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (series.str.strip() == "")


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name].astype("str")
    return pd.Series(pd.array([None] * len(df), dtype="str"), index=df.index)


class _Problems:
    """Collects failures column by column, vectorised."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.parts: list[pd.DataFrame] = []

    def add(
        self,
        mask: pd.Series,
        column: str,
        check: str,
        code: str,
        message: str | pd.Series,
        values: pd.Series | None = None,
    ) -> None:
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        index = self.df.index[mask.to_numpy()]
        source = values if values is not None else _column(self.df, column)
        msg = message[mask] if isinstance(message, pd.Series) else message
        self.parts.append(
            pd.DataFrame(
                {
                    "row": index,
                    "column": column,
                    "value": source[mask].to_numpy(),
                    "check": check,
                    "error_code": code,
                    "message": msg if isinstance(msg, str) else msg.to_numpy(),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            out = pd.DataFrame({c: pd.Series(dtype="str") for c in _ERROR_COLUMNS})
            out["row"] = pd.Series(dtype="object")
            out["line"] = pd.Series(dtype="Int64")
            return out
        out = pd.concat(self.parts, ignore_index=True)
        lines = line_numbers(self.df)
        out["line"] = pd.array(lines.reindex(out["row"]).to_numpy(), dtype="Int64")
        order = {label: i for i, label in enumerate(self.df.index)}
        out["_pos"] = out["row"].map(order)
        out = out.sort_values(["_pos"], kind="stable").drop(columns="_pos")
        for name in ("column", "value", "check", "error_code", "message"):
            out[name] = out[name].astype("str")
        return out[_ERROR_COLUMNS].reset_index(drop=True)


def validate(
    df: pd.DataFrame,
    *,
    default_region: str | None = None,
    sender: str | None = None,
) -> ValidationReport:
    """Check every row before sending; return which rows are valid and why others are not.

    Args:
        df: recipients, one row each, with the API's column names (``to`` required).
        default_region: ISO country code for numbers written without ``+`` (``"IN"``).
        sender: the ``from`` number for rows that leave it empty.

    Returns:
        ValidationReport with ``.valid`` (normalised), ``.invalid``, ``.errors``, ``.ok``.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"to": ["+919876543210", "12"], "body": ["Hi", "Hi"]})
        >>> report = validate(df, sender="+911234567890")
        >>> report
        <ValidationReport: 2 rows, 1 valid, 1 invalid>
        >>> report.errors.loc[0, "error_code"]
        'E13009'
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate() takes a DataFrame, not {type(df).__name__}")
    if "to" not in df.columns:
        from .errors import InputError

        raise InputError(
            "no 'to' column: name the column of phone numbers 'to' "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    if not df.index.is_unique:
        raise ValueError(
            "the frame's index has repeated labels, so results could not be matched back to "
            "rows: call df.reset_index(drop=True) first"
        )
    problems = _Problems(df)

    malformed = df.attrs.get("malformed") or {}
    if malformed:
        positions = {label: i for i, label in enumerate(df.index)}
        bad = pd.Series([positions.get(label) in malformed for label in df.index], index=df.index)
        reasons = pd.Series(
            [malformed.get(positions.get(label), "") for label in df.index], index=df.index
        )
        problems.add(bad, "*", "row_shape", "KWA008", reasons + ": check its quotes and delimiters")

    # Recipient.
    to = _column(df, "to")
    phones = normalize_phones(to, default_region)
    bad_to = phones["e164"].isna()
    mangled = phones["mangled"]
    problems.add(
        bad_to & mangled,
        "to",
        "phone_mangled",
        "KWA004",
        phones["reason"] + ": re-export the column as text; the number will not be guessed",
    )
    problems.add(
        bad_to & ~mangled,
        "to",
        "phone_valid",
        "E13009",
        phones["reason"].fillna(""),
    )

    # Sender: the row's own, else the argument.
    row_from = _column(df, "from")
    from_values = row_from.where(~_blank(row_from), sender) if sender else row_from
    has_from = ~_blank(from_values)
    senders = normalize_phones(from_values.where(has_from), None)
    bad_from = has_from & senders["e164"].isna()
    problems.add(
        bad_from,
        "from",
        "phone_valid",
        "E13008",
        "the sender " + senders["reason"].fillna("") + ": use your WhatsApp business number "
        "with + and country code",
        values=from_values,
    )

    # Type and channel.
    template_name = _column(df, "template_name")
    kind = _column(df, "type").str.strip().str.lower()
    inferred = pd.Series("text", index=df.index, dtype="str").where(
        _blank(template_name), "template"
    )
    kind = kind.where(~_blank(kind), inferred)
    problems.add(
        ~kind.isin(_KNOWN_TYPES),
        "type",
        "type_known",
        "KWA003",
        "unknown type: use 'text' or 'template' (or leave it empty)",
    )
    channel = _column(df, "channel")
    problems.add(
        ~_blank(channel) & (channel.str.strip().str.lower() != "whatsapp"),
        "channel",
        "channel_known",
        "KWA003",
        "this toolkit sends WhatsApp messages only: use channel 'whatsapp' or leave it empty",
    )

    # Body and template.
    body = _column(df, "body")
    problems.add(
        (kind == "text") & _blank(body),
        "body",
        "body_required",
        "KWA002",
        "a text message needs a body: fill it, or give a template_name to send a template",
    )
    body_len = body.str.len().astype("Int64")
    problems.add(
        body_len > BODY_MAX,
        "body",
        "body_length",
        "KWA001",
        "the body has " + body_len.astype("str") + f" characters; the limit is {BODY_MAX:,}",
    )
    problems.add(
        body.str.contains(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", regex=True),
        "body",
        "control_chars",
        "KWA006",
        "the body holds control characters (other than line breaks and tabs): remove them",
    )
    problems.add(
        (kind == "template") & _blank(template_name),
        "template_name",
        "template_required",
        "KWA002",
        "a template message needs a template_name: give the name of an approved template",
    )

    # Every field but body: no HTML, no control characters, refs at most 255 characters.
    for name in ("to", "from", *_TEXT_FIELDS):
        values = from_values if name == "from" else _column(df, name)
        problems.add(
            values.str.contains(_HTML_TAG, regex=True),
            name,
            "no_html",
            "E413",
            f"HTML tags are not allowed in '{name}' (only in body): remove the <…> tags",
            values=values,
        )
        problems.add(
            values.str.contains(_CONTROL_STRICT, regex=True),
            name,
            "control_chars",
            "KWA006",
            f"'{name}' holds control characters (tabs, line breaks…): remove them",
            values=values,
        )
    for name in ("ref", "ref1", "ref2"):
        values = _column(df, name)
        length = values.str.len().astype("Int64")
        problems.add(
            length > REF_MAX,
            name,
            "ref_length",
            "KWA001",
            f"'{name}' has " + length.astype("str") + f" characters; the limit is {REF_MAX}",
        )
    callback = _column(df, "callback_url")
    problems.add(
        ~_blank(callback) & ~callback.str.strip().str.fullmatch(_URL),
        "callback_url",
        "url",
        "KWA005",
        "callback_url must be a full http:// or https:// URL",
    )

    # Assemble the normalised frame, then reject repeats of a row already seen.
    normalised = df.copy()
    normalised["to"] = phones["e164"].where(~bad_to, to)
    if has_from.any() or "from" in df.columns:
        normalised["from"] = senders["e164"].where(~bad_from, from_values)
    normalised["type"] = kind
    errors_so_far = problems.frame()
    invalid_rows = set(errors_so_far["row"])
    candidate = (
        ~df.index.isin(list(invalid_rows))
        if invalid_rows
        else pd.Series(True, index=df.index).to_numpy()
    )
    keys = [c for c in ("to", *MESSAGE_COLUMNS) if c in normalised.columns]
    dup = pd.Series(False, index=df.index)
    if candidate.any():
        subset = normalised.loc[candidate, keys]
        dup.loc[subset.index] = subset.duplicated(keep="first").to_numpy()
    if dup.any():
        first_pos = _first_occurrence(normalised.loc[candidate, keys], df)
        problems.add(
            dup,
            "to",
            "duplicate",
            "KWA007",
            "the same message to the same recipient appears earlier (" + first_pos + "): "
            "remove this row",
        )
    errors = problems.frame()
    bad_labels = pd.Index(errors["row"].unique())
    is_bad = df.index.isin(bad_labels)
    invalid = df.loc[is_bad].copy()
    if not invalid.empty:
        grouped = errors.groupby("row", sort=False)
        first_code = grouped["error_code"].first()
        reasons = grouped.apply(
            lambda g: "; ".join(
                f"{c}: {m}" for c, m in zip(g["column"], g["message"], strict=True)
            ),
            include_groups=False,
        )
        invalid["error_code"] = pd.array(first_code.reindex(invalid.index).to_numpy(), dtype="str")
        invalid["errors"] = pd.array(reasons.reindex(invalid.index).to_numpy(), dtype="str")
    valid = normalised.loc[~is_bad].copy()
    return ValidationReport(
        data=df,
        valid=valid,
        invalid=invalid,
        errors=errors,
        default_region=default_region,
        sender=sender,
    )


def _first_occurrence(keyed: pd.DataFrame, df: pd.DataFrame) -> pd.Series:
    """For each row of ``keyed``, where its first identical row is ("line 3" or "row 2")."""
    lines = line_numbers(df)
    labelled = keyed.astype("object").fillna("\x00").assign(_label=keyed.index)
    firsts = labelled.groupby(list(keyed.columns), sort=False)["_label"].transform("first")
    where = [
        f"line {lines.get(label)}" if pd.notna(lines.get(label)) else f"row {label}"
        for label in firsts
    ]
    out = pd.Series("", index=df.index, dtype="str")
    out.loc[keyed.index] = where
    return out
