"""Replies tied to their rows: who answered which message of a campaign, and what they said.

A customer's reply (a text, a quick-reply button's tap, a list choice) arrives at the
:class:`~kwa_batch.Receiver` as an incoming message. :func:`replies` ties each one to the
row of the results whose message it answers:

1. **by the message it answers**, when the callback says (v2 ``context.id``, v1
   ``reply_to``): the row whose ``message_id`` is that id, ``<uuid>`` and ``<uuid>:0`` alike
   (:func:`~kwa_batch.receipts.store.message_key`). A reply that answers a message not in
   these results belongs to another campaign: it is tied to no row here;
2. **otherwise by the last message sent to that number before the reply** (rows ``sent``
   with a ``message_id`` and a ``sent_at``), from the same business number when both the
   reply and the row say which (the results' ``from`` column, when they have one).

Numbers match in each of the forms WhatsApp's ``wa_id`` writes them in
(:func:`~kwa_batch.validation.phones.wa_id_keys`: ``+52 1 55…`` is ``+52 55…``). A reply
that came before any message to its number is tied to nothing.

Everything is computed for whole columns (one ``merge_asof`` for the replies without an
id), so a million results and a million replies take seconds
(``benchmarks/bench_replies.py``).

Example:
    >>> tied = kb.replies(results, "receipts.db")  # doctest: +SKIP
    >>> results.join(tied)[["to", "replied", "reply", "opted_out"]]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import KwaBatchError
from ..results import require_columns
from ..validation.phones import wa_id_keys
from .optouts import stops_and_starts
from .store import CallbackStore, message_keys
from .store import opened_store as _opened_store

__all__ = ["REPLY_COLUMNS", "replies"]

#: Columns of :func:`replies`, in order.
REPLY_COLUMNS = ("replied", "replied_at", "reply", "reply_payload", "replies", "opted_out")

_TIME = "datetime64[us, UTC]"
_NEEDED = ("to", "status", "message_id", "sent_at")
_INCOMING_NEEDED = ("customer", "at")
_INCOMING_OPTIONAL = ("business", "body", "payload", "reply_to")
_SENT = "sent"


def replies(
    results: pd.DataFrame,
    receipts: str | Path | CallbackStore | pd.DataFrame,
    *,
    keywords: Iterable[str] | None = None,
    start_keywords: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Each row's replies: whether its recipient answered its message, when and what.

    Args:
        results: what :func:`kwa_batch.send` returned or :func:`kwa_batch.load_results`
            read; only ``to``, ``status``, ``message_id`` and ``sent_at`` are used (and
            ``from``, the business number, when present).
        receipts: the callback store (its file, or an open
            :class:`~kwa_batch.receipts.store.CallbackStore`), or its incoming messages as
            :meth:`~kwa_batch.receipts.store.CallbackStore.incoming_messages` gives them.
        keywords: the opt-out replies, as for :func:`kwa_batch.opt_outs`.
        start_keywords: the replies that lift an opt-out, as for :func:`kwa_batch.opt_outs`.

    Returns:
        A frame with the index of ``results`` and :data:`REPLY_COLUMNS`: ``replied`` (bool),
        ``replied_at`` (UTC, the first reply tied to the row), ``reply`` (its text, or the
        button's or choice's text), ``reply_payload`` (the button's payload or the choice's
        id), ``replies`` (how many replies are tied to the row) and ``opted_out`` (the
        recipient opted out after this row's message left, by a keyword or a stop button,
        and has not opted in since). NA where there is nothing to say.

    Raises:
        KwaBatchError: ``results`` or the incoming messages lack a column they need.
        InputError: the store does not exist or is not a callback store.

    Example:
        >>> tied = replies(results, "receipts.db")  # doctest: +SKIP
        >>> tied["replied"].mean()  # the reply rate  # doctest: +SKIP
    """
    require_columns(results, _NEEDED)
    incoming = _incoming(receipts)
    rows = _sent_rows(results)
    row_of_reply = _tied(incoming, rows)
    return _per_row(results, incoming, rows, row_of_reply, keywords, start_keywords)


def _incoming(receipts: str | Path | CallbackStore | pd.DataFrame) -> pd.DataFrame:
    """The incoming messages, with every column this module reads (NA when absent)."""
    if isinstance(receipts, pd.DataFrame):
        frame = receipts
        missing = [name for name in _INCOMING_NEEDED if name not in frame.columns]
        if missing:
            raise KwaBatchError(
                f"the incoming messages have no {', '.join(missing)} column(s): pass a store, "
                "or CallbackStore.incoming_messages()"
            )
    else:
        with _opened_store(receipts) as opened:
            frame = opened.incoming_messages()
    out = pd.DataFrame(
        {
            "number": _as_integers(wa_id_keys(_plus_digits(frame["customer"]))).array,
            "at": pd.to_datetime(frame["at"], utc=True).astype(_TIME).array,
        }
    )
    for name in _INCOMING_OPTIONAL:
        column = frame[name] if name in frame.columns else pd.Series(pd.NA, index=frame.index)
        out[name] = pd.array(column.astype("str").array, dtype="str")
    out["business"] = _as_integers(_plus_digits(out["business"]))
    out["reply_to"] = message_keys(out["reply_to"])
    return out


def _plus_digits(numbers: pd.Series) -> pd.Series:
    """``+`` and the digits of each number as written (NA stays NA): how the store and the
    results write numbers, whatever separators a frame from elsewhere has. Computed once
    for each distinct number."""
    codes, distinct = pd.factorize(numbers.astype("str"))
    digits = pd.Series(distinct, dtype="str").str.replace(r"\D", "", regex=True)
    done = ("+" + digits).where(digits.str.len() > 0).array
    return pd.Series(done.take(codes, allow_fill=True), index=numbers.index)


def _as_integers(numbers: pd.Series) -> pd.Series:
    """``+digits`` numbers as integers (NA stays NA): matched and grouped many times faster
    than text. E.164 has at most 15 digits; anything longer is NA (it matches nothing)."""
    array = pa.array(numbers.astype("str").array)
    digits = pc.utf8_slice_codeunits(array, 1)
    fits = pc.less_equal(pc.utf8_length(digits), 18)
    values = pc.cast(pc.if_else(fits, digits, pa.scalar(None, pa.string())), pa.int64())
    return pd.Series(pd.array(values, dtype="Int64"), index=numbers.index)


def _sent_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows whose message left (``sent`` with a message id): position, number, business
    number, message key and time."""
    sent = (results["status"].astype("str") == _SENT) & results["message_id"].notna()
    sent = sent.fillna(False).to_numpy(dtype=bool)
    picked = results.loc[sent, :] if sent.any() else results.iloc[:0]
    business = (
        _plus_digits(picked["from"])
        if "from" in picked.columns
        else pd.Series(pd.NA, index=picked.index, dtype="str")
    )
    return pd.DataFrame(
        {
            "row": np.flatnonzero(sent),
            "number": _as_integers(wa_id_keys(_plus_digits(picked["to"]))).array,
            "business": _as_integers(business).array,
            "key": message_keys(picked["message_id"]).array,
            # To the second: a callback's created_at is whole seconds, so a reply (a STOP)
            # in the second its message left would otherwise seem to come before it.
            "sent_at": pd.to_datetime(picked["sent_at"], utc=True)
            .dt.floor("s")
            .astype(_TIME)
            .array,
        }
    )


def _tied(incoming: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The position in the results of the row each reply answers, -1 for none."""
    tied = np.full(len(incoming), -1, dtype=np.int64)
    if rows.empty or incoming.empty:
        return tied
    # 1. By the message it answers.
    with_id = incoming["reply_to"].notna().to_numpy()
    by_key = rows.drop_duplicates("key").set_index("key")["row"]
    found = pd.Index(by_key.index).get_indexer(incoming.loc[with_id, "reply_to"])
    tied[with_id] = np.where(found >= 0, by_key.to_numpy()[found], -1)
    # 2. The others: by the last message to that number before the reply.
    timed = rows[rows["sent_at"].notna() & rows["number"].notna()]
    open_ = incoming[~with_id & incoming["number"].notna().to_numpy()]
    open_ = open_.assign(reply=np.flatnonzero(~with_id & incoming["number"].notna().to_numpy()))
    if open_.empty or timed.empty:
        return tied
    known = timed["business"].notna()
    unnamed_reply = open_["business"].isna()
    # A reply that names no business number: the last message to its number.
    candidates = [_last_before(open_[unnamed_reply], timed, ["number"])]
    # One that names it: the last message from that number, or from a row that names none.
    named = open_[~unnamed_reply]
    candidates.append(_last_before(named, timed[known], ["number", "business"]))
    candidates.append(_last_before(named, timed[~known], ["number"]))
    found = pd.concat(candidates, ignore_index=True)
    reply = found["reply"].to_numpy(dtype=np.int64)
    # For each reply, its candidate sent last.
    order = np.lexsort((_times(found["sent_at"]).view(np.int64), reply))
    last = order[_edges(reply[order], first=False)]
    tied[reply[last]] = found["row"].to_numpy(dtype=np.int64)[last]
    return tied


def _edges(keys: np.ndarray, *, first: bool) -> np.ndarray:
    """In sorted ``keys``, where each run of one key starts (or ends)."""
    if not len(keys):
        return np.zeros(0, dtype=bool)
    change = keys[1:] != keys[:-1]
    return np.append(True, change) if first else np.append(change, True)


def _last_before(replies: pd.DataFrame, rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """For each reply, the row sent last before it with the same ``by`` values (reply
    position, row position, sent time; replies with no such row left out)."""
    if replies.empty or rows.empty:
        return pd.DataFrame(
            {
                "reply": pd.Series(dtype=np.int64),
                "row": pd.Series(dtype=np.int64),
                "sent_at": pd.Series(dtype=_TIME),
            }
        )
    left = replies[["at", "reply", *by]].sort_values("at", kind="stable")
    right = rows[["sent_at", "row", *by]].sort_values("sent_at", kind="stable")
    matched = pd.merge_asof(
        left, right, left_on="at", right_on="sent_at", by=by, direction="backward"
    )
    matched = matched[matched["row"].notna()]
    return pd.DataFrame(
        {
            "reply": matched["reply"].to_numpy(dtype=np.int64),
            "row": matched["row"].to_numpy(dtype=np.int64),
            "sent_at": matched["sent_at"].array,
        }
    )


def _per_row(
    results: pd.DataFrame,
    incoming: pd.DataFrame,
    rows: pd.DataFrame,
    tied: np.ndarray,
    keywords: Iterable[str] | None,
    start_keywords: Iterable[str] | None,
) -> pd.DataFrame:
    size = len(results)
    hit = np.flatnonzero(tied >= 0)
    row = tied[hit]
    times = _times(incoming["at"])
    # The first reply of each row (the first received, of two at the same time).
    order = np.lexsort((times[hit].view(np.int64), row))
    first = order[_edges(row[order], first=True)]
    where, source = row[first], hit[first]
    count = np.bincount(row, minlength=size)
    replied_at = np.full(size, np.datetime64("NaT"), dtype="datetime64[us]")
    replied_at[where] = times[source]
    text = {name: np.full(size, None, dtype=object) for name in ("body", "payload")}
    for name, values in text.items():
        values[where] = incoming[name].to_numpy(dtype=object, na_value=None)[source]
    return pd.DataFrame(
        {
            "replied": count > 0,
            "replied_at": pd.Series(replied_at).dt.tz_localize("UTC").array,
            "reply": pd.array(text["body"], dtype="str"),
            "reply_payload": pd.array(text["payload"], dtype="str"),
            "replies": count.astype(np.int64),
            "opted_out": _opted_out(size, incoming, rows, keywords, start_keywords),
        },
        index=results.index,
    )


def _opted_out(
    size: int,
    incoming: pd.DataFrame,
    rows: pd.DataFrame,
    keywords: Iterable[str] | None,
    start_keywords: Iterable[str] | None,
) -> np.ndarray:
    """For each row, whether its recipient opted out after its message left and has not
    opted in since."""
    out = np.zeros(size, dtype=bool)
    stop, start = stops_and_starts(incoming, keywords=keywords, start_keywords=start_keywords)
    if not stop.any() or rows.empty:
        return out
    last_start = incoming.loc[start.to_numpy(), ["number", "at"]].groupby("number")["at"].max()
    stops = incoming.loc[stop.to_numpy(), ["number", "at"]]
    started = _times(last_start.reindex(pd.Index(stops["number"])))
    standing = ~(_times(stops["at"]) <= started)  # a start at or after the stop lifts it
    last_stop = stops[standing].groupby("number")["at"].max()
    stopped_at = _times(last_stop.reindex(pd.Index(rows["number"])))
    after = stopped_at >= _times(rows["sent_at"])  # NaT on either side: False
    out[rows["row"].to_numpy()[after]] = True
    return out


def _times(values: pd.Series) -> np.ndarray:
    """UTC times as numpy's (NaT where missing), to compare columns of different origins."""
    naive = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    times: np.ndarray = naive.to_numpy(dtype="datetime64[us]")
    return times
