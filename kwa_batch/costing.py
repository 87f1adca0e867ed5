"""What each message cost, as its callbacks said, beside what the rate card says it should.

:func:`costs` gives every row of a run's results two amounts:

- ``cost``, the actual one, from the message's callbacks (:func:`load_receipts`): the
  ``price`` a v1 callback gave; for a v2 callback, which gives no amount but ``billable``
  and ``pricing_category``, the rate card's price for that category and the recipient's
  region (a region the card does not list is priced as its calling code's main one, as
  :func:`kwa_batch.estimate` does). A row never sent, a message not billable, and a
  message that failed without a price cost 0 (WhatsApp bills delivered messages). Where
  nothing says what a message cost (no rate card to price a v2 category, no price in the
  callbacks, no receipt yet), ``cost`` is NA and ``cost_note`` says why: never 0.
- ``estimated_cost``, what :func:`kwa_batch.estimate` would have said of the row: the rate
  card's price for the category of its message (the template catalogue's category for a
  template, ``service`` for text and media) in its region; 0 for a rejected row (an
  estimate counts valid rows only); NA without a rate card, or when the category or the
  region's price is unknown.

Amounts are in the rate card's currency; a v1 callback's price is in the account's, so
give a card in the same currency to compare them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .catalogue import load_templates
from .pricing import UNKNOWN_REGION, billed_regions, categories_of, load_rate_card, regions_of
from .receipts.delivery import load_receipts
from .receipts.store import FINAL_STATUSES, CallbackStore, message_keys
from .results import Status, require_columns

__all__ = ["COST_COLUMNS", "NO_RATE_CARD", "costs", "rate_card", "template_catalogue"]

#: The columns :func:`costs` gives, in order.
COST_COLUMNS = ("cost", "estimated_cost", "cost_note")
#: Why a billable message has no cost when no rate card was given.
NO_RATE_CARD = "no rate card to price it (rates= (--rate-card))"


def rate_card(rates: str | Path | pd.DataFrame | None) -> pd.DataFrame | None:
    """The checked rate card (:func:`kwa_batch.pricing.load_rate_card`), or None."""
    return None if rates is None else load_rate_card(rates)


def template_catalogue(templates: Any) -> pd.DataFrame | None:
    """The template catalogue (:func:`kwa_batch.load_templates`), or None."""
    return None if templates is None else load_templates(templates)


def costs(
    results: pd.DataFrame,
    receipts: pd.DataFrame | str | Path | CallbackStore,
    *,
    rates: str | Path | pd.DataFrame | None = None,
    templates: Any = None,
) -> pd.DataFrame:
    """The actual and the estimated cost of each row of ``results`` (see the module).

    Args:
        results: a results frame (:func:`kwa_batch.send`, :func:`kwa_batch.load_results`)
            with ``to``, ``status`` and ``message_id``; its ``type`` and ``template_name``
            (a file exported with ``data=``) say what each message was, for the estimate.
        receipts: :func:`kwa_batch.load_receipts`'s frame, or a callback store.
        rates: the rate card (:func:`kwa_batch.pricing.load_rate_card`): prices v2
            categories and the estimate; None: those are NA.
        templates: the template catalogue (:func:`kwa_batch.load_templates`), for the
            category of each template row's estimate.

    Returns:
        A frame on ``results``' index with :data:`COST_COLUMNS`: ``cost`` and
        ``estimated_cost`` (``Float64``, NA when unknown) and ``cost_note`` (how the cost
        was found, or why it is NA).

    Raises:
        KwaBatchError: ``results`` lacks ``to``, ``status`` or ``message_id``.
        InputError: the rate card, the catalogue or the store is unusable.

    Example:
        >>> costs(results, "receipts.db", rates="rate_card.csv")  # doctest: +SKIP
    """
    require_columns(results, ("to", "status", "message_id"))
    table = receipts if isinstance(receipts, pd.DataFrame) else load_receipts(receipts)
    return row_costs(results, table, rate_card(rates), template_catalogue(templates))


def row_costs(
    results: pd.DataFrame,
    receipts: pd.DataFrame,
    card: pd.DataFrame | None,
    catalogue: pd.DataFrame | None,
) -> pd.DataFrame:
    """:func:`costs` over a loaded receipts frame, rate card and catalogue."""
    index = results.index
    # Matched on message_keys, as merge_receipts and the funnel match: "<uuid>" and
    # "<uuid>:0" are one message.
    found = (
        receipts.assign(_key=message_keys(receipts["message_id"]).to_numpy())
        .drop_duplicates("_key")
        .set_index("_key")
        .reindex(pd.Index(message_keys(results["message_id"]).array))
    )
    price = pd.Series(found["price"].array, index=index, dtype="Float64")
    billable = pd.Series(found["billable"].array, index=index, dtype="boolean")
    category = pd.Series(found["pricing_category"].array, index=index, dtype="str").str.lower()
    delivery = pd.Series(found["status"].array, index=index, dtype="str")
    own, main = regions_of(results["to"].astype("str"))
    cost = pd.Series(pd.NA, index=index, dtype="Float64")
    note = pd.Series(pd.NA, index=index, dtype="str")
    open_ = pd.Series(True, index=index)

    def settle(where: pd.Series, amount: Any, why: Any) -> None:
        nonlocal open_
        chosen = where.fillna(False).astype(bool) & open_
        cost[chosen] = amount[chosen] if isinstance(amount, pd.Series) else amount
        note[chosen] = why[chosen] if isinstance(why, pd.Series) else why
        open_ = open_ & ~chosen

    settle(results["message_id"].isna(), 0.0, "never sent: nothing billed")
    settle(delivery.isna(), pd.NA, "no receipt yet")
    settle(price.notna(), price, "the callbacks' price")
    settle(billable == False, 0.0, "not billable, the callbacks said")  # noqa: E712 (NA-aware)
    billed = (billable == True) & category.notna()  # noqa: E712
    if card is None:
        settle(billed, pd.NA, "billable as " + category.fillna("") + f": {NO_RATE_CARD}")
    else:
        listed, region = _card_prices(card, own, main, category)
        settle(billed & listed.notna(), listed, "the rate card's " + category.fillna("") + " price")
        settle(
            billed,
            pd.NA,
            "billable as " + category.fillna("") + " in " + region + ": not on the rate card",
        )
    settle(billable == True, pd.NA, "billable, but the callbacks gave no category")  # noqa: E712
    settle(delivery.isin(FINAL_STATUSES), 0.0, "not delivered: not billed")
    settle(pd.Series(True, index=index), pd.NA, "the callbacks gave no price")
    estimated = _estimated(results, own, main, card, catalogue)
    return pd.DataFrame({"cost": cost, "estimated_cost": estimated, "cost_note": note})


def _card_prices(
    card: pd.DataFrame, own: pd.Series, main: pd.Series, category: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """The rate card's price of each message (NA off the card) and the region it is
    priced as."""
    region = billed_regions(card, own, main, category.fillna(""))
    lookup = card.set_index(["region", "category"])["price"]
    keys = pd.MultiIndex.from_arrays([region.astype("object"), category.astype("object")])
    prices = pd.Series(lookup.reindex(keys).to_numpy(), index=own.index, dtype="Float64")
    return prices, region.where(region != UNKNOWN_REGION, "an unknown region")


def _estimated(
    results: pd.DataFrame,
    own: pd.Series,
    main: pd.Series,
    card: pd.DataFrame | None,
    catalogue: pd.DataFrame | None,
) -> pd.Series:
    """What the estimate says each row costs: NA without a card, 0 for a rejected row."""
    index = results.index
    if card is None:
        return pd.Series(pd.NA, index=index, dtype="Float64")
    category = planned_categories(results, catalogue)
    prices, _ = _card_prices(card, own, main, category.where(category != "unknown"))
    return prices.mask(results["status"] == Status.REJECTED, 0.0)


def planned_categories(results: pd.DataFrame, catalogue: pd.DataFrame | None) -> pd.Series:
    """What each row's message is billed as, as :func:`kwa_batch.estimate` decides it;
    ``unknown`` for every row when the results do not say what kind of message it was
    (no ``type`` nor ``template_name``: a frame from ``send()`` without its input)."""
    index = results.index
    if "type" not in results.columns and "template_name" not in results.columns:
        return pd.Series("unknown", index=index, dtype="str")
    names = (
        results["template_name"].astype("str").str.strip().replace("", pd.NA)
        if "template_name" in results.columns
        else pd.Series(pd.NA, index=index, dtype="str")
    )
    kind = (
        results["type"].astype("str").str.strip().replace("", pd.NA)
        if "type" in results.columns
        else pd.Series(pd.NA, index=index, dtype="str")
    )
    kind = kind.fillna(names.notna().map({True: "template", False: "text"}).astype("str"))
    messages = pd.DataFrame({"type": kind, "template_name": names}, index=index)
    return categories_of(messages, catalogue)
