"""A campaign's funnel: what became of its rows, per template, per country and in total.

:func:`funnel` counts, for each group of rows, how many there were, how many the API took
(``sent``), were ``delivered`` (read ones included), ``read``, ``replied`` to, ``failed``
(refused by the API, or a ``failed`` / ``not-sent`` callback), were ``not_sent``,
``rejected``, are ``unknown`` or an experiment's ``holdout`` (never sent, on purpose);
the failures split by their code (``code_131026``...) and
by the action the outcome policy gives the code (``action_retry``..., see
:mod:`kwa_batch.actions`); and the actual ``cost`` against the ``estimated_cost`` (see
:mod:`kwa_batch.costing`), with how many rows have no known cost (``unpriced``) and why
(``cost_note``).

A row's template is its ``template_name`` (a results file exported with ``data=`` carries
the input's columns), ``(no template)`` when it has none; its country is the ISO region of
its number (``(unknown)`` for a number that is not in international form, such as a
rejected row's).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .actions import Action
from .costing import COST_COLUMNS, rate_card, row_costs, template_catalogue
from .errors import KwaBatchError
from .pricing import UNKNOWN_REGION, regions_of
from .receipts.delivery import load_receipts, merge_receipts
from .receipts.follow_up import FOLLOW_UP_COLUMNS, follow_up
from .receipts.replies import replies
from .receipts.store import FINAL_STATUSES, CallbackStore, opened_store
from .results import Status, require_columns

__all__ = [
    "ACTION_PREFIX",
    "CODE_PREFIX",
    "FUNNEL_COSTS",
    "FUNNEL_COUNTS",
    "NO_CODE",
    "NO_COUNTRY",
    "NO_TEMPLATE",
    "TOTAL",
    "campaign_rows",
    "count_funnel",
    "funnel",
]

#: The counts of a funnel, in order (the columns after the group).
FUNNEL_COUNTS = (
    "rows", "sent", "delivered", "read", "replied", "failed", "not_sent", "rejected", "unknown",
    "holdout",
)  # fmt: skip
#: The cost columns of a funnel, last.
FUNNEL_COSTS = ("cost", "estimated_cost", "unpriced", "cost_note")
#: The failures with each code are counted in a column named so: ``code_131026``.
CODE_PREFIX = "code_"
#: The failures whose code calls for each action: ``action_retry``.
ACTION_PREFIX = "action_"
#: The group of rows without a template.
NO_TEMPLATE = "(no template)"
#: The country of a number that is not in international form.
NO_COUNTRY = "(unknown)"
#: A failure that came without a code.
NO_CODE = "(no code)"
#: The index of the total row.
TOTAL = ("total", "all")
_GROUPS = {"template": "template_name", "country": "to"}
# Rate cards give prices to a few decimals: sums keep 8 (float noise rounded off).
_DIGITS = 8


def funnel(
    results: pd.DataFrame,
    receipts: str | Path | CallbackStore,
    *,
    rates: str | Path | pd.DataFrame | None = None,
    templates: Any = None,
    by: str | Iterable[str] = ("template", "country"),
) -> pd.DataFrame:
    """Count a campaign's rows from sent to replied, with its failures and its cost.

    Args:
        results: a results frame (:func:`kwa_batch.send`, :func:`kwa_batch.load_results`)
            with ``to``, ``status`` and ``message_id``; with ``template_name`` when the
            file was exported with ``data=``.
        receipts: the callback store (a path, or a :class:`~kwa_batch.receipts.store.
            CallbackStore`): its status updates and the replies in it.
        rates: the rate card: prices v2 callbacks (``billable`` and a category, no
            amount) and the estimate; None: those are NA, with the reason.
        templates: the template catalogue, for the category of each template row's
            estimate.
        by: the groups, each a section of the frame: ``template``, ``country``, or a
            column of ``results``; the total row comes last.

    Returns:
        A frame indexed by ``(by, value)`` (``funnel.loc["template"]`` is the table per
        template, ``funnel.loc[TOTAL]`` the total): :data:`FUNNEL_COUNTS`, a
        ``cost``, ``estimated_cost`` (``Float64``: NA when no row's is known, never 0 for
        lack of a price) and ``unpriced``, a ``code_…`` column per failure code and an
        ``action_…`` column per action, and ``cost_note`` last (:data:`FUNNEL_COSTS`).

    Raises:
        KwaBatchError: ``results`` lacks a column it needs, or ``by`` names none.
        InputError: the store, the rate card or the catalogue is unusable.

    Example:
        >>> kb.funnel(results, "receipts.db", rates="rate_card.csv")  # doctest: +SKIP
    """
    rows = campaign_rows(results, receipts, rate_card(rates), template_catalogue(templates))
    return count_funnel(rows, by)


def campaign_rows(
    results: pd.DataFrame,
    receipts: str | Path | CallbackStore,
    card: pd.DataFrame | None,
    catalogue: pd.DataFrame | None,
) -> pd.DataFrame:
    """The results with what the callbacks say of each row: the delivery columns
    (:func:`kwa_batch.merge_receipts`), :data:`~kwa_batch.costing.COST_COLUMNS`, ``replied``,
    and what the row needs now (``action`` and ``reason``, as :func:`kwa_batch.follow_up`
    gives them)."""
    require_columns(results, ("to", "status", "message_id", "sent_at"))
    if not results.index.is_unique:
        raise KwaBatchError(
            "the results' index has repeated labels: the funnel counts each row once, by "
            "label; pass the frame send() returned or load_results() read (one label a row)"
        )
    added = (*COST_COLUMNS, "replied", *FOLLOW_UP_COLUMNS)
    plain = results.drop(columns=[c for c in added if c in results.columns])
    if "error_code" not in plain.columns:  # a frame of its own, with only what is needed
        plain = plain.assign(error_code=pd.array([pd.NA] * len(plain), dtype="string"))
    with opened_store(receipts) as store:
        table = load_receipts(store)
        replied = replies(plain, store)["replied"]
    out = merge_receipts(plain, table).join(row_costs(plain, table, card, catalogue))
    out["replied"] = replied
    # What each row needs now, by the outcome policy as follow_up applies it (a 131049 to
    # a US number is final there, not retry).
    plan = follow_up(plain, table)
    out["action"] = plan["action"]
    out["reason"] = plan["reason"]
    out.attrs = dict(results.attrs)
    return out


def count_funnel(rows: pd.DataFrame, by: str | Iterable[str]) -> pd.DataFrame:
    """The funnel of :func:`campaign_rows`' frame, grouped ``by`` (see :func:`funnel`)."""
    keys = (by,) if isinstance(by, str) else tuple(by)
    labels = {key: _labels(rows, key) for key in keys}
    status = rows["status"]
    delivery = rows["delivery_status"]
    api_failed = (status == Status.FAILED).fillna(False)
    delivery_failed = delivery.isin(FINAL_STATUSES).fillna(False) & ~api_failed
    failed = api_failed | delivery_failed
    facts = pd.DataFrame(
        {
            "rows": True,
            "sent": status == Status.SENT,
            "delivered": delivery.isin(("delivered", "read")),
            "read": delivery == "read",
            "replied": rows["replied"],
            "failed": failed,
            "not_sent": status == Status.NOT_SENT,
            "rejected": status == Status.REJECTED,
            "unknown": status == Status.UNKNOWN,
            "holdout": status == Status.HOLDOUT,
        },
        index=rows.index,
    )
    facts = facts.fillna(False).astype("int64")
    code = (rows["error_code"].where(api_failed, rows["delivery_error_code"]).astype("str")).fillna(
        NO_CODE
    )[failed]
    action = rows["action"][failed].astype("str")
    codes = code.value_counts()
    code_order = sorted(codes.index, key=lambda c: (-int(codes[c]), str(c)))
    action_order = [a.value for a in Action if a.value in set(action)]
    sections = [(key, labels[key]) for key in keys]
    sections.append((TOTAL[0], pd.Series(TOTAL[1], index=rows.index, dtype="str")))
    frames = []
    for key, label in sections:
        part = facts.groupby(label, sort=False).sum()
        for prefix, values, order in (
            (CODE_PREFIX, code, code_order),
            (ACTION_PREFIX, action, action_order),
        ):
            counted = (
                pd.crosstab(label[values.index], values)
                .reindex(index=part.index, columns=order, fill_value=0)
                .fillna(0)
                .astype("int64")
            )
            counted.columns = [f"{prefix}{c}" for c in order]
            part = part.join(counted)
        part = part.join(_costs(rows, label))
        splits = [c for c in part.columns if c.startswith((CODE_PREFIX, ACTION_PREFIX))]
        money = [c for c in FUNNEL_COSTS if c != "cost_note"]
        part = part[[*FUNNEL_COUNTS, *money, *splits, "cost_note"]]
        part = part.sort_values("rows", ascending=False, kind="stable")
        part = part.sort_index(key=lambda i: i.isin((NO_TEMPLATE, NO_COUNTRY)), kind="stable")
        part.index = pd.MultiIndex.from_arrays(
            [[key] * len(part), list(part.index)], names=["by", "value"]
        )
        frames.append(part)
    out = pd.concat(frames)
    for name in out.columns:
        if name.startswith((CODE_PREFIX, ACTION_PREFIX)):
            out[name] = out[name].fillna(0).astype("int64")
    return out


def _labels(rows: pd.DataFrame, key: str) -> pd.Series:
    """Each row's group for ``key``."""
    column = _GROUPS.get(key, key)
    if key == "country":
        own, _ = regions_of(rows["to"].astype("str"))
        return own.where(own != UNKNOWN_REGION, NO_COUNTRY)
    if key == "template" and column not in rows.columns:
        return pd.Series(NO_TEMPLATE, index=rows.index, dtype="str")
    if column not in rows.columns:
        raise KwaBatchError(
            f"by={key!r}: the results have no such column; group by template, country, or "
            "a column of the results (a file exported with data= carries the input's)"
        )
    text = rows[column].astype("str").str.strip().replace("", pd.NA)
    return text.fillna(NO_TEMPLATE if key == "template" else "(none)")


def _costs(rows: pd.DataFrame, label: pd.Series) -> pd.DataFrame:
    """The cost columns of each group: the sums (NA when no row's is known), the rows
    without a known cost, and why (the reasons with their counts)."""
    grouped = rows[["cost", "estimated_cost"]].groupby(label, sort=False)
    # Sums of prices, rounded past their last digit (0.0014 + 0.0054 is not 0.00680000001).
    out = grouped.sum(min_count=1).astype("Float64").round(_DIGITS)
    unpriced = rows["cost"].isna()
    out["unpriced"] = unpriced.groupby(label, sort=False).sum().astype("int64")
    notes = rows.loc[unpriced, "cost_note"].fillna("")
    reasons = notes.groupby(label[unpriced], sort=False).value_counts()
    said: dict[Any, list[str]] = {}
    for (group, reason), count in reasons.items():
        said.setdefault(group, []).append(f"{reason} ({int(count)})")
    unestimated = rows["estimated_cost"].isna().groupby(label, sort=False).sum()
    for group, count in unestimated.items():
        if count:
            said.setdefault(group, []).append(f"without an estimate ({int(count)})")
    out["cost_note"] = pd.Series(
        {group: "; ".join(parts) for group, parts in said.items()}, dtype="str"
    ).reindex(out.index)
    return out
