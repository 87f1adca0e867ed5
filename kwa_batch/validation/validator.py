"""``validate()``: every row checked before anything is sent.

``validate`` works in three steps, each vectorised over the whole frame:

1. **Build** each message as the API will receive it: ``to`` and ``from`` normalised to
   E.164 (:mod:`~kwa_batch.validation.phones`), campaign-wide settings filled into rows
   that leave them empty, ``params`` and ``body`` built from other columns when asked
   (:mod:`~kwa_batch.validation.compose`), ``type`` inferred.
2. **Check** the built rows against the check table of
   :mod:`~kwa_batch.validation.rules`, lazily, so that every problem of every row is found
   in one pass.
3. **Report**: each failure becomes one line of the long-form ``errors`` frame (row, line in
   the file, column, value, check, code, and a message that tells the fix), with the facts
   only the whole frame knows: ragged rows from the file (``KWA008``), empty values a
   message was built from (``KWA009``), closed conversation windows (``KWA012``) and
   repeated rows (``KWA007``). A row with any error is invalid and is never sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pc

from ..errors import Code, ConfigurationError, InputError
from ..fields import API_COLUMNS, MESSAGE_COLUMNS
from ..results import ARM_COLUMN
from .arms import by_arm, shown
from .compose import (
    build_body,
    build_params,
    choose,
    empty_strings,
    is_blank,
    placeholders,
    resolve_column,
    strings,
)
from .duplicates import EarlierMessages, message_hashes
from .phones import check_region, normalize_phones
from .report import Problems, ValidationReport, assemble, file_lines, row_reasons
from .rich import check_api_version, check_rich, gather
from .rules import check_models
from .sender import (
    invalid_sender_message,
    joined_senders,
    pin_senders,
    read_sender,
    split_senders,
)
from .window_checks import CLOSED_WINDOW_CODE, CLOSED_WINDOW_MESSAGE, closed_window_rows

__all__ = ["validate"]

_FILLED = ("body", "params", "template_name", "lang_code", "callback_url", "cards",
           "template_buttons", "header_format", "card_header_format")  # fmt: skip


@dataclass
class _Built:
    """The messages as the API will receive them, positionally (0..n-1), as strings."""

    columns: dict[str, pd.Series]
    built_from: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)


def validate(
    df: pd.DataFrame,
    *,
    default_region: str | None = None,
    sender: str | Sequence[str] | None = None,
    params_from: Sequence[str] | str | Mapping[str, Sequence[str] | str] | None = None,
    body_template: str | Mapping[str, str] | None = None,
    template_name: str | Mapping[str, str] | None = None,
    lang_code: str | Mapping[str, str] | None = None,
    callback_url: str | None = None,
    windows: pd.DataFrame | None = None,
    templates: Any = None,
    suppress: Any = None,
    api_version: str = "v1",
    earlier: EarlierMessages | None = None,
) -> ValidationReport:
    """Check every row before sending; return which rows are valid and why others are not.

    Args:
        df: recipients, one row each, with the API's column names (``to`` required).
        default_region: ISO country code for numbers written without ``+`` (``"IN"``).
        sender: the ``from`` number for rows that leave it empty; several (a list, or
            comma-separated) pin each such row to one of them by its recipient (see
            :mod:`kwa_batch.validation.sender`).
        params_from: columns whose values, in this order, make a template's ``params``
            (CSV-quoted where a value holds a comma), for rows whose ``params`` is empty.
        body_template: a text body with ``{column}`` placeholders, e.g.
            ``"Hi {name}, order {order_id} has shipped"``, for rows whose ``body`` is empty.
        template_name, lang_code, callback_url: campaign-wide values for rows that leave
            these empty. A row's ``type`` is ``template`` when it has a template name.
            ``params_from``, ``body_template``, ``template_name`` and ``lang_code`` may
            be given per arm of an experiment (:func:`kwa_batch.assign`), as a mapping of
            arm to value: ``template_name={"A": "promo_a", "B": "promo_b"}`` fills each
            arm's rows with its own (see :mod:`kwa_batch.validation.arms`).
        windows: the open 24-hour conversation windows (:func:`kwa_batch.open_windows`);
            text rows to recipients without one are refused with ``KWA012`` (WhatsApp only
            lets a business start a conversation with a template).
        templates: the template catalogue (:func:`kwa_batch.load_templates`, or a file it
            reads): template rows must match it (``KWA013``-``KWA024``); an empty
            ``lang_code`` takes the template's only language.
        suppress: numbers not to message (:func:`kwa_batch.load_suppression`: numbers, a
            file of them, :func:`kwa_batch.opt_outs`' frame, or a list of these): their
            rows are refused with ``KWA025``, saying since when and why.
        api_version: the version of Kaleyra's API the rows will be sent with, ``"v1"`` (the
            default) or ``"v2"``. On v1, every row only v2 can send (interactive buttons or
            lists, carousels, template buttons, ``reply_to``, ``message_json``) is refused
            with ``KWA035``; on v2, with a catalogue, each template row carries its
            template's button order (``template_buttons``), which places its buttons.
        earlier: the messages of the earlier parts of the same file, for a file validated
            in parts (:func:`kwa_batch.send_file`): a row that repeats one of them is
            refused (``KWA007``, naming its line), and the valid rows are added to it.

    Returns:
        ValidationReport with ``.valid`` (normalised), ``.invalid``, ``.errors``, ``.ok``.

    Raises:
        InputError: there is no ``to`` column, or a cell cannot be read as text.
        ConfigurationError: a setting cannot be used: unknown region, a column named by
            ``params_from`` or a placeholder of ``body_template`` that does not exist.
        ValueError: the frame's index repeats labels.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"to": ["+919876543210", "12"], "body": ["Hi", "Hi"]})
        >>> report = validate(df, sender="+911234567890")
        >>> report
        <ValidationReport: 2 rows, 1 valid, 1 invalid>
        >>> report.errors.loc[0, "error_code"]
        'E13009'
    """
    sender = joined_senders(sender)
    arguments = {
        "default_region": default_region,
        "sender": sender,
        "params_from": params_from,
        "body_template": body_template,
        "template_name": template_name,
        "lang_code": lang_code,
        "callback_url": callback_url,
        "windows": windows,
        "templates": templates,
        "suppress": suppress,
        "api_version": check_api_version(api_version),
    }
    _check_frame(df)
    region = check_region(default_region)
    if isinstance(params_from, str):
        params_from = _columns_list(params_from)
    elif isinstance(params_from, Mapping):
        params_from = {arm: _columns_list(given) for arm, given in params_from.items()}
    problems = Problems()
    built = _build(df, problems, params_from, body_template, template_name, lang_code, callback_url)
    written_to = built.columns["to"]
    phones, from_reason = _normalise_numbers(built.columns, region, sender)
    prepared = pd.DataFrame(built.columns)
    check_models(prepared, problems, phones, from_reason, written_to, df.columns)
    check_rich(
        prepared, problems, arguments["api_version"], catalogue=arguments["templates"] is not None
    )
    _ragged_rows(df, problems)
    # A message built from an empty value reports the empty value, not what it made.
    for column, empty in built.built_from.items():
        _drop_rows(problems, empty, column=column, unless="value_required")
    if windows is not None:  # free text needs an open 24-hour conversation window
        closed = closed_window_rows(prepared, windows).to_numpy()
        problems.add(
            np.flatnonzero(closed),
            "to",
            "window_open",
            CLOSED_WINDOW_CODE,
            CLOSED_WINDOW_MESSAGE,
            prepared["to"][closed],
        )
    if templates is not None or suppress is not None:  # the catalogue and the opt-outs
        _campaign(prepared, df, problems, arguments, region)
    if earlier is not None:  # first: a repeat names the file's first row, in any part
        keyed = _mark_earlier(prepared, problems, earlier)
    _mark_duplicates(prepared, problems, df)
    if earlier is not None:
        _remember(keyed, problems, df, earlier)
    report = _verdict(df, prepared, problems, region, arguments)
    if suppress is not None:  # receipts stores: read again while sending (see send())
        from .campaign import live_sources

        report.live_opt_outs = live_sources(suppress)
    return report


def _campaign(
    prepared: pd.DataFrame,
    df: pd.DataFrame,
    problems: Problems,
    arguments: dict[str, Any],
    region: str | None,
) -> None:
    """What the platform would refuse after saying ``sent`` (see validation/campaign.py);
    the catalogue and the list, once read, replace the arguments (no second read)."""
    from .campaign import campaign_findings  # only for campaigns that give them

    found = campaign_findings(
        prepared, df, templates=arguments["templates"], suppress=arguments["suppress"],
        default_region=region,
    )  # fmt: skip
    for f in found.findings:
        problems.add(f.positions, f.column, f.check, f.code, f.message, f.values)
    if found.lang_code is not None:
        prepared["lang_code"] = found.lang_code
    if found.template_buttons is not None and arguments["api_version"] == "v2":
        prepared["template_buttons"] = found.template_buttons  # v2 places the buttons by it
        for name in ("header_format", "card_header_format"):  # and sends media as these
            prepared[name] = getattr(found, name)
    arguments["templates"], arguments["suppress"] = found.catalogue, found.suppression


def _check_frame(df: pd.DataFrame) -> None:
    """Refuse a frame that cannot be validated at all."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate() takes a DataFrame, not {type(df).__name__}")
    if "to" not in df.columns:
        raise InputError(
            "no 'to' column: name the column of phone numbers 'to' "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    if ARM_COLUMN not in df.columns:  # an experiment's holdout must never be sent by a typo
        near = [str(c) for c in df.columns if str(c).strip().lower() == ARM_COLUMN]
        if near:
            raise InputError(
                f"column {near[0]!r} looks like an experiment's arm column, which must be named "
                f"exactly {ARM_COLUMN!r} (else its holdout would be sent): rename it "
                f"(df.rename(columns={{{near[0]!r}: {ARM_COLUMN!r}}}))"
            )
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()] if c in API_COLUMNS})
    if repeated:
        raise InputError(
            f"the frame has more than one column named {', '.join(map(repr, repeated))}: "
            "keep one of each"
        )
    if not df.index.is_unique:
        raise ValueError(
            "the frame's index has repeated labels, so results could not be matched back to "
            "rows: call df.reset_index(drop=True) first"
        )


def _columns_list(given: Sequence[str] | str) -> list[str]:
    """``params_from`` as a list of column names (a string: comma-separated)."""
    if isinstance(given, str):
        return [p.strip() for p in given.split(",") if p.strip()]
    return list(given)


def _build(
    df: pd.DataFrame,
    problems: Problems,
    params_from: Sequence[str] | Mapping[str, Sequence[str]] | None,
    body_template: str | Mapping[str, str] | None,
    template_name: str | Mapping[str, str] | None,
    lang_code: str | Mapping[str, str] | None,
    callback_url: str | None,
) -> _Built:
    """Step 1: the API's columns as strings, campaign settings and built fields filled in
    (each given for every row, or per arm: :func:`~kwa_batch.validation.arms.by_arm`)."""
    params_parts = [
        (rows, [resolve_column(df, name, "params_from") for name in names])
        for rows, names in by_arm(df, "params_from", params_from)
        if names
    ]
    body_parts = []
    for rows, template in by_arm(df, "body_template", body_template):
        pieces = placeholders(template)
        named = [name for _, name in pieces if name is not None]
        sources = {name: resolve_column(df, name, "body_template") for name in named}
        body_parts.append((rows, pieces, sources))
    n = len(df)
    columns: dict[str, pd.Series] = {}
    for name in API_COLUMNS:
        if name in df.columns:
            columns[name] = strings(df[name], name).reset_index(drop=True)
        else:
            columns[name] = empty_strings(n)
    for name, setting in (
        ("template_name", template_name),
        ("lang_code", lang_code),
        ("callback_url", callback_url),
    ):
        blank = is_blank(columns[name])
        for rows, value in by_arm(df, name, setting):
            if value is not None and value != "" and (blank & rows).any():
                columns[name] = columns[name].mask(blank & rows, value)
    kind = columns["type"].str.strip().str.lower()
    inferred = choose(is_blank(columns["template_name"]), "text", "template")
    columns["type"] = kind.where(~is_blank(kind), inferred)
    # Carousel cards gathered from their columns; a message_json row typed by its object.
    columns["cards"] = empty_strings(n)
    columns["template_buttons"] = empty_strings(n)
    columns["header_format"] = empty_strings(n)
    columns["card_header_format"] = empty_strings(n)
    for refusal in gather(df, columns):
        problems.add(np.array([refusal.position]), refusal.column, refusal.check, refusal.code,
                     refusal.message, pd.Series([refusal.value], dtype="str"))  # fmt: skip

    built = _Built(columns)
    if params_parts:
        wanted = (columns["type"] == "template").to_numpy() & is_blank(columns["params"])
        built.built_from["params"] = np.zeros(n, dtype=bool)
        for part, params_columns in params_parts:
            columns["params"], empty = build_params(
                df, params_columns, wanted & part, columns["params"], problems
            )
            built.built_from["params"] |= empty
    if body_parts:
        wanted = (columns["type"] == "text").to_numpy() & is_blank(columns["body"])
        built.built_from["body"] = np.zeros(n, dtype=bool)
        for part, pieces, sources in body_parts:
            columns["body"], empty = build_body(
                df, pieces, sources, wanted & part, columns["body"], problems
            )
            built.built_from["body"] |= empty
    return built


def _normalise_numbers(
    columns: dict[str, pd.Series], region: str | None, sender: str | None
) -> tuple[pd.DataFrame, pd.Series]:
    """Recipient and sender in E.164 (in ``columns``); the sender given fills rows without
    their own. Returns the recipients' readings and the reason of each unusable sender."""
    n = len(columns["to"])
    phones = normalize_phones(columns["to"], region)
    columns["to"] = phones["e164"]
    row_from = columns["from"]
    own_from = ~is_blank(row_from)
    from_values = row_from
    from_e164 = empty_strings(n)
    from_reason = empty_strings(n)
    if own_from.any():
        checked = normalize_phones(row_from, region)
        from_e164 = checked["e164"].where(own_from)
        from_reason = checked["reason"].where(own_from)
    several = split_senders(sender)
    if len(several) > 1:
        use = ~own_from
        pinned = pin_senders(phones["e164"], _checked_senders(several, region))
        from_values = row_from.mask(use, pinned)
        from_e164 = from_e164.mask(use, pinned)
    elif sender:
        check = read_sender(sender, region)
        use = ~own_from
        from_values = row_from.mask(use, sender)
        if check.ok:
            from_e164 = from_e164.mask(use, check.e164)
        else:
            from_reason = from_reason.mask(use, check.reason)
    has_from = own_from | bool(sender)
    columns["from"] = from_e164.where(from_e164.notna(), from_values.where(has_from))
    return phones, from_reason


def _checked_senders(senders: list[str], region: str | None) -> list[str]:
    """Several senders in E.164; one that is not a usable number is refused, named."""
    checked = []
    for sender in senders:
        check = read_sender(sender, region)
        if not check.ok:
            raise ConfigurationError(
                f"sender {sender!r} (one of {len(senders)}): {invalid_sender_message(check.reason)}"
            )
        checked.append(str(check.e164))
    return checked


def _ragged_rows(df: pd.DataFrame, problems: Problems) -> None:
    """Rows of the file with too many or too few fields: their shape is their only problem
    (their cells may sit in the wrong columns)."""
    malformed = df.attrs.get("malformed") or {}
    if not malformed:
        return
    labels = list(malformed)
    where = df.index.get_indexer(pd.Index(labels, dtype=object))
    found = where >= 0
    reasons = pd.Series(
        [malformed[label] for label, ok in zip(labels, found, strict=True) if ok],
        dtype="str",
    )
    ragged = np.zeros(len(df), dtype=bool)
    ragged[where[found]] = True
    _drop_rows(problems, ragged)
    problems.add(
        where[found],
        "*",
        "row_shape",
        Code.MALFORMED_ROW,
        reasons + ": check its quotes and delimiters",
        empty_strings(int(found.sum())),
    )


def _verdict(
    df: pd.DataFrame,
    prepared: pd.DataFrame,
    problems: Problems,
    region: str | None,
    arguments: dict[str, Any],
) -> ValidationReport:
    """Step 3: the long-form errors, the invalid rows with their reasons, the valid rows."""
    errors, positions = assemble(problems, df)
    is_bad = problems.mask(len(df))
    invalid = _rows(df, is_bad)
    first_code, reasons_text = row_reasons(errors, positions)
    invalid = invalid.assign(error_code=first_code, errors=reasons_text)
    sender = arguments["sender"]
    valid = _valid_frame(df, prepared, ~is_bad, sender_given=bool(sender))
    for frame in (valid, invalid):
        frame.attrs = dict(df.attrs)
    params_from = arguments["params_from"]
    windows = arguments["windows"]
    settings = {
        **arguments,
        "default_region": region,
        "params_from": shown(params_from) if params_from else None,
        **{k: shown(arguments[k]) for k in ("body_template", "template_name", "lang_code")},
        "windows": None if windows is None else len(windows),
        **{
            k: None if arguments[k] is None else len(arguments[k])
            for k in ("templates", "suppress")
        },
    }
    return ValidationReport(
        data=df,
        valid=valid,
        invalid=invalid,
        errors=errors,
        default_region=region,
        sender=sender,
        settings=settings,
        arguments=arguments,
    )


def _drop_rows(
    problems: Problems,
    rows: np.ndarray[Any, Any],
    *,
    column: str | None = None,
    unless: str | None = None,
) -> None:
    """Forget the problems found so far in ``rows`` (a mask): all of them, or those of one
    ``column`` but for the check named ``unless``."""
    kept = []
    for part in problems.parts:
        concerned = (column is None or part["column"] == column) and part["check"] != unless
        drop = rows[part["pos"]] if concerned else np.zeros(len(part["pos"]), dtype=bool)
        if drop.any():
            part = dict(part)
            for key in ("code", "message", "value"):
                if isinstance(part[key], pd.Series):
                    part[key] = part[key][~drop]
            part["pos"] = part["pos"][~drop]
            if not len(part["pos"]):
                continue
        kept.append(part)
    problems.parts = kept


def _mark_duplicates(prepared: pd.DataFrame, problems: Problems, df: pd.DataFrame) -> None:
    n = len(prepared)
    candidate = ~problems.mask(n)
    if candidate.sum() < 2:
        return
    # Only rows whose number repeats can repeat a message; numbers compare as integers.
    numbers = pc.cast(
        pc.utf8_slice_codeunits(pa_arrow.array(prepared["to"][candidate].array), 1),
        pa_arrow.int64(),
    )
    repeats = pd.Series(numbers.to_numpy(zero_copy_only=False)).duplicated(keep=False).to_numpy()
    if not repeats.any():
        return
    candidate[np.flatnonzero(candidate)[~repeats]] = False
    keys = ["to", *MESSAGE_COLUMNS]
    subset = prepared.loc[candidate, keys]
    used = [c for c in keys if subset[c].notna().any()]
    if len(used) == 1:
        joined = subset[used[0]]
    else:
        parts = []
        for name in used:
            array = pa_arrow.array(subset[name].array)
            if isinstance(array, pa_arrow.ChunkedArray):
                array = array.combine_chunks()
            parts.append(array.cast(pa_arrow.large_string()).fill_null("\x1e"))
        joined_array = pc.binary_join_element_wise(
            *parts, pa_arrow.scalar("\x1f", type=pa_arrow.large_string())
        )
        joined = pd.Series(pd.array(joined_array, dtype="str"))
    codes, _ = pd.factorize(joined)
    _, first_index = np.unique(codes, return_index=True)
    first_of = first_index[codes]
    repeated = first_of != np.arange(len(codes))
    if not repeated.any():
        return
    positions = np.flatnonzero(candidate)
    dup_positions = positions[repeated]
    firsts = positions[first_of[repeated]]
    lines = file_lines(df, df.index[firsts])
    where = [
        f"line {line}" if pd.notna(line) else f"row {label}"
        for line, label in zip(lines, df.index[firsts], strict=True)
    ]
    message = pd.Series(
        [
            f"the same message to the same recipient appears earlier ({w}): remove this row"
            for w in where
        ],
        dtype="str",
    )
    problems.add(
        dup_positions,
        "to",
        "duplicate",
        Code.DUPLICATE_ROW,
        message,
        prepared["to"].iloc[dup_positions],
    )


def _mark_earlier(
    prepared: pd.DataFrame, problems: Problems, earlier: EarlierMessages
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Refuse the rows that repeat a message of an earlier part (as :func:`_mark_duplicates`
    refuses those that repeat one of this part); the positions and hashes of the others."""
    positions = np.flatnonzero(~problems.mask(len(prepared)))
    hashes = message_hashes([prepared[name].iloc[positions] for name in ("to", *MESSAGE_COLUMNS)])
    found = earlier.find(hashes)
    repeat = found >= 0
    if repeat.any():
        message = pd.Series(
            [
                "the same message to the same recipient appears earlier "
                f"({f'line {line}' if line else 'an earlier part'}): remove this row"
                for line in found[repeat]
            ],
            dtype="str",
        )
        problems.add(
            positions[repeat],
            "to",
            "duplicate",
            Code.DUPLICATE_ROW,
            message,
            prepared["to"].iloc[positions[repeat]],
        )
    return positions[~repeat], hashes[~repeat]


def _remember(
    keyed: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    problems: Problems,
    df: pd.DataFrame,
    earlier: EarlierMessages,
) -> None:
    """Add this part's valid rows to the messages of the earlier parts."""
    positions, hashes = keyed
    valid = ~problems.mask(len(df))[positions]
    lines = file_lines(df, df.index[positions[valid]])
    earlier.add(hashes[valid], pd.array(lines, dtype="Int64").fillna(0).to_numpy(np.int64))


def _rows(df: pd.DataFrame, mask: np.ndarray[Any, Any]) -> pd.DataFrame:
    """``df[mask]``, column by column (pyarrow filters a column faster than pandas takes a
    frame), with the index and attrs kept."""
    if mask.all():
        return df.copy(deep=False)
    index = df.index[mask]
    out = pd.DataFrame({i: df.iloc[:, i][mask] for i in range(df.shape[1])}, index=index)
    out.columns = df.columns
    out.attrs = dict(df.attrs)
    return out


def _valid_frame(
    df: pd.DataFrame, prepared: pd.DataFrame, keep: np.ndarray[Any, Any], *, sender_given: bool
) -> pd.DataFrame:
    """The rows that pass, as they will be sent: the input's columns, with the API's
    columns replaced by (or extended with) the built ones."""
    out = _rows(df, keep)
    built = {}
    for name in API_COLUMNS:
        values = prepared[name]
        wanted = (
            name in df.columns
            or name == "type"
            or (name == "from" and sender_given)
            or (name in _FILLED and bool(values.notna().any()))
        )
        if wanted:
            kept = values[keep]
            kept.index = out.index
            built[name] = kept
    return out.assign(**built)
