"""Delivery receipts: what became of each message after the API accepted it.

"Accepted by the API" (``status == "sent"`` in the results) is not "delivered". Kaleyra
reports each message's progress to its ``callback_url``; a :class:`~kwa_batch.Receiver`
stores those callbacks, and this module turns them into one receipt per message
(:func:`load_receipts`) and puts them next to each row of a run's results
(:func:`merge_receipts`).

Example:
    >>> results = kb.load_results("results.xlsx")  # doctest: +SKIP
    >>> merged = kb.merge_receipts(results, kb.load_receipts("receipts.db"))  # doctest: +SKIP
    >>> merged["delivery_status"].value_counts(dropna=False)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import KwaBatchError
from ..results import DELIVERY_COLUMNS
from .store import FINAL_STATUSES, STATUS_RANK, CallbackStore, message_keys
from .store import opened_store as _opened_store

__all__ = [
    "RECEIPT_COLUMNS",
    "load_receipts",
    "merge_receipts",
]

#: Columns of :func:`load_receipts`, in order.
RECEIPT_COLUMNS = (
    "message_id",
    "status",
    "recipient",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "error_code",
    "error",
    "ref",
    "ref1",
    "ref2",
    "price",
    "billable",
    "pricing_category",
    "business",
    "updated_at",
)

_TIME = "datetime64[us, UTC]"
_TEXT = ("message_id", "status", "recipient", "error_code", "error", "ref", "ref1", "ref2",
         "pricing_category", "business")  # fmt: skip
_DTYPES = {"price": "Float64", "billable": "boolean"}
_STEP_TIMES = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at"}


def load_receipts(store: str | Path | CallbackStore) -> pd.DataFrame:
    """One receipt per message from a callback store: its delivery status and when.

    A message's status is the furthest it got, whatever order the callbacks came in:
    ``sent < delivered < read``, and ``failed`` or ``not-sent`` is final (the first of
    them received wins). Each step keeps the time of its own callback, so a message read
    before its ``delivered`` callback arrived has a ``read_at`` and, later, a
    ``delivered_at`` too.

    Args:
        store: the SQLite file a :class:`~kwa_batch.Receiver` writes, or an open
            :class:`~kwa_batch.receipts.store.CallbackStore`.

    Returns:
        A DataFrame with the columns :data:`RECEIPT_COLUMNS`, one row per message id, in
        the order their first callback arrived: text as strings, times as UTC timestamps
        (``failed_at`` is the time of the final ``failed`` or ``not-sent``; ``error_code``
        and ``error`` come with it), ``price`` (the highest any of its callbacks said),
        ``billable``, ``pricing_category`` and ``business`` (the sending number), NA where
        no callback said.

    Raises:
        InputError: the store does not exist or is not a callback store.

    Example:
        >>> receipts = load_receipts("receipts.db")  # doctest: +SKIP
        >>> receipts["status"].value_counts()  # doctest: +SKIP
    """
    with _opened_store(store) as opened:
        updates = opened.status_updates()
    return _receipts(updates)


def _receipts(updates: pd.DataFrame) -> pd.DataFrame:
    """Derive one receipt per message from its status updates (oldest received first)."""
    if updates.empty:
        return pd.DataFrame(
            {
                name: pd.Series(dtype="str" if name in _TEXT else _DTYPES.get(name, _TIME))
                for name in RECEIPT_COLUMNS
            }
        )
    rank = updates["status"].map(STATUS_RANK).fillna(0).astype("int64")
    # The winning update of each message: highest rank, then the first received.
    winners = (
        updates.assign(_rank=rank, _order=range(len(updates)))
        .sort_values(["_rank", "_order"], ascending=[False, True], kind="stable")
        .drop_duplicates("message_id")
        .set_index("message_id")
    )
    grouped = updates.groupby("message_id", sort=False)
    ids = pd.Index(updates["message_id"].unique(), name="message_id")
    firsts = (
        grouped[["recipient", "ref", "ref1", "ref2", "pricing_category", "business", "billable"]]
        .first()
        .reindex(ids)
    )
    times = updates.pivot(index="message_id", columns="status", values="at")
    winners = winners.reindex(ids)
    final = winners["status"].isin(FINAL_STATUSES)
    out = pd.DataFrame({"message_id": ids.array}, index=ids)
    out["status"] = winners["status"]
    out["recipient"] = firsts["recipient"]
    for status, column in _STEP_TIMES.items():
        out[column] = (
            times[status].reindex(ids).astype(_TIME)
            if status in times.columns
            else pd.Series(pd.NaT, index=ids, dtype=_TIME)
        )
    out["failed_at"] = winners["at"].where(final).astype(_TIME)
    out["error_code"] = winners["error_code"].where(final)
    out["error"] = winners["error"].where(final)
    for name in ("ref", "ref1", "ref2"):
        out[name] = firsts[name]
    # The price a callback gave (Kaleyra may say it on sent and again on delivered: the
    # highest said, never a sum of repeats).
    out["price"] = grouped["price"].max().reindex(ids).astype("Float64")
    out["billable"] = firsts["billable"].astype("boolean")
    out["pricing_category"] = firsts["pricing_category"]
    out["business"] = firsts["business"]
    out["updated_at"] = grouped["received_at"].max().reindex(ids).astype(_TIME)
    for name in _TEXT:
        out[name] = out[name].astype("str")
    return out.reset_index(drop=True)


def merge_receipts(
    results: pd.DataFrame, receipts: pd.DataFrame | str | Path | CallbackStore
) -> pd.DataFrame:
    """Put each message's delivery status next to its row of ``results``, by message id.

    Args:
        results: a results frame (:func:`kwa_batch.send`, :func:`kwa_batch.load_results`)
            with a ``message_id`` column.
        receipts: :func:`load_receipts`'s frame, or a store to load it from.

    Returns:
        A copy of ``results`` (same index, same row order, same ``attrs``) with
        :data:`DELIVERY_COLUMNS`: ``delivery_status`` (``sent``, ``delivered``, ``read``,
        ``failed``, ``not-sent``), ``delivered_at`` and ``read_at`` (UTC timestamps) and
        ``delivery_error_code``; NA for rows with no receipt yet (and for rows never
        sent). Merging again replaces them, so a later, fuller store can be merged into
        already-merged results.

    Raises:
        KwaBatchError: ``results`` has no ``message_id`` column.

    Example:
        >>> merged = merge_receipts(results, "receipts.db")  # doctest: +SKIP
        >>> merged[["to", "status", "delivery_status", "read_at"]]  # doctest: +SKIP
    """
    if "message_id" not in results.columns:
        raise KwaBatchError(
            "the results have no message_id column: pass the frame send() returned, or a "
            "file kwa-batch send wrote"
        )
    if not isinstance(receipts, pd.DataFrame):
        receipts = load_receipts(receipts)
    # Matched on message_keys: "<uuid>" and "<uuid>:0" are one message.
    keyed = receipts.assign(_key=message_keys(receipts["message_id"]).to_numpy())
    table = keyed.drop_duplicates("_key").set_index("_key")
    ids = message_keys(results["message_id"])
    matched = table.reindex(pd.Index(ids.array))
    out = results.drop(columns=[c for c in DELIVERY_COLUMNS if c in results.columns])
    out["delivery_status"] = pd.array(matched["status"].array, dtype="string")
    out["delivered_at"] = pd.array(matched["delivered_at"].array, dtype=_TIME)
    out["read_at"] = pd.array(matched["read_at"].array, dtype=_TIME)
    out["delivery_error_code"] = pd.array(matched["error_code"].array, dtype="string")
    out.attrs = dict(results.attrs)
    return out
