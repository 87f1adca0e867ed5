"""24-hour conversation windows: which recipients may be sent free text right now.

WhatsApp lets a business send free text (``type == "text"``) only within 24 hours of the
recipient's last message to that business number; otherwise the conversation must start
with an approved template. Each incoming-message callback a :class:`~kwa_batch.Receiver`
stores opens (or extends) the window of its ``(business number, recipient)`` pair:

- :func:`open_windows` lists the windows open now;
- :func:`closed_window_rows` says which text rows of a validated frame have none, so they
  can be refused before sending with :data:`CLOSED_WINDOW_CODE` (send a template instead).

An incoming callback that does not name the business number (``wanumber``) opens the
recipient's window for every business number: with one number per account, as usual,
that is exact.

Example:
    >>> windows = open_windows("receipts.db")  # doctest: +SKIP
    >>> closed = closed_window_rows(report.valid, windows)  # doctest: +SKIP
    >>> report.valid[closed]  # text rows that need a template  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from .store import CallbackStore
from .store import opened_store as _opened_store

__all__ = [
    "CLOSED_WINDOW_CODE",
    "CLOSED_WINDOW_MESSAGE",
    "WINDOW",
    "WINDOW_COLUMNS",
    "closed_window_rows",
    "open_windows",
]

#: How long a recipient's message keeps the conversation open for free text.
WINDOW = pd.Timedelta(hours=24)
#: The error code of a text row to a recipient without an open window (see errors.py).
CLOSED_WINDOW_CODE = "KWA012"
#: The reason given for such a row.
CLOSED_WINDOW_MESSAGE = (
    "no open 24-hour conversation window with this recipient (they have not written to "
    "this business number in the last 24 hours): free text would be refused, send an "
    "approved template instead"
)
#: Columns of :func:`open_windows`, in order.
WINDOW_COLUMNS = ("business_number", "recipient", "last_message_at", "expires_at")

_TIME = "datetime64[us, UTC]"
_E164 = r"\+[1-9][0-9]{6,14}"


def _now(now: datetime | pd.Timestamp | str | None) -> pd.Timestamp:
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def open_windows(
    store: str | Path | CallbackStore, now: datetime | pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """The conversation windows open at ``now``, one per (business number, recipient).

    Args:
        store: the SQLite file a :class:`~kwa_batch.Receiver` writes, or an open
            :class:`~kwa_batch.callback_store.CallbackStore`.
        now: the moment to look at (default: now); naive times are taken as UTC.

    Returns:
        A DataFrame with :data:`WINDOW_COLUMNS`: ``business_number`` and ``recipient`` in
        E.164 with ``+`` (``business_number`` NA when the callbacks did not name it),
        ``last_message_at`` (the recipient's latest message) and ``expires_at`` (24 hours
        later, after ``now``), as UTC timestamps; sorted by recipient.

    Raises:
        InputError: the store does not exist or is not a callback store.

    Example:
        >>> open_windows("receipts.db").head()  # doctest: +SKIP
    """
    moment = _now(now)
    with _opened_store(store) as opened:
        incoming = opened.incoming_messages()
    # A message cannot have been written after it arrived: a sender's clock running ahead
    # must not keep a window closed (or open) longer.
    written = incoming["at"].where(
        incoming["at"] <= incoming["received_at"], incoming["received_at"]
    )
    incoming = incoming.assign(at=written)[written <= moment]
    last = (
        incoming.groupby(["business", "customer"], dropna=False, sort=False)["at"]
        .max()
        .reset_index()
    )
    expires = (last["at"] + WINDOW).astype(_TIME)
    out = pd.DataFrame(
        {
            "business_number": last["business"].astype("str"),
            "recipient": last["customer"].astype("str"),
            "last_message_at": last["at"].astype(_TIME),
            "expires_at": expires,
        }
    )
    out = out[out["expires_at"] > moment]
    return out.sort_values(["recipient", "business_number"], kind="stable").reset_index(drop=True)


def closed_window_rows(
    valid: pd.DataFrame,
    windows: pd.DataFrame,
    *,
    now: datetime | pd.Timestamp | str | None = None,
) -> pd.Series:
    """Which ``type == "text"`` rows have no open conversation window with their recipient.

    Meant for ``validate(..., windows=...)``: such a row would be refused by WhatsApp, so
    it is flagged with :data:`CLOSED_WINDOW_CODE` before sending. Template rows never are.

    Args:
        valid: validated rows, with ``to`` (and ``from``, when rows carry their own sender)
            in E.164 with ``+`` and ``type`` lower case. A row whose ``from`` is empty
            matches a window with any business number. Rows whose ``to`` or ``from`` is not
            E.164 are not flagged (validation reports those already).
        windows: :func:`open_windows`'s frame (``business_number``, ``recipient``,
            ``expires_at``). Windows that expired by ``now`` count as closed, so a frame
            loaded a while ago stays right.
        now: the moment of sending (default: now); naive times are taken as UTC.

    Returns:
        A boolean Series with ``valid``'s index: True for text rows without an open
        window.

    Example:
        >>> import pandas as pd
        >>> valid = pd.DataFrame({"to": ["+919876543210", "+14155550123"],
        ...                       "from": ["+911234567890"] * 2, "type": ["text", "text"]})
        >>> windows = pd.DataFrame({"business_number": ["+911234567890"],
        ...                         "recipient": ["+919876543210"],
        ...                         "expires_at": [pd.Timestamp("2100-01-01", tz="UTC")]})
        >>> closed_window_rows(valid, windows).tolist()
        [False, True]
    """
    moment = _now(now)
    to = valid["to"].astype("str")
    sender = (
        valid["from"].astype("str")
        if "from" in valid.columns
        else pd.Series(pd.NA, index=valid.index, dtype="str")
    )
    kind = (
        valid["type"].astype("str").str.strip().str.lower()
        if "type" in valid.columns
        else pd.Series("text", index=valid.index, dtype="str")
    )
    to_ok = to.str.fullmatch(_E164).fillna(False).astype(bool)
    sender_ok = sender.str.fullmatch(_E164).fillna(False).astype(bool)
    judged = (kind == "text").fillna(False).astype(bool) & to_ok & (sender_ok | sender.isna())

    live = windows.loc[(pd.to_datetime(windows["expires_at"], utc=True) > moment).to_numpy()]
    business = live["business_number"].astype("str")
    recipients = live["recipient"].astype("str")
    pairs = (business + " " + recipients).dropna()
    # A window whose business number is unknown counts for any sender; so does a row
    # without a sender of its own for any window of its recipient.
    any_business = recipients[business.isna()]
    open_ = (
        (sender + " " + to).isin(pairs)
        | to.isin(any_business)
        | (sender.isna() & to.isin(recipients))
    )
    return (judged & ~open_.fillna(False).astype(bool)).astype("bool")
