"""24-hour conversation windows: which recipients may be sent free text right now.

WhatsApp lets a business send free text (``type == "text"``) only within 24 hours of the
recipient's last message to that business number; otherwise the conversation must start
with an approved template. Each incoming-message callback a :class:`~kwa_batch.Receiver`
stores opens (or extends) the window of its ``(business number, recipient)`` pair:

:func:`open_windows` lists the windows open now; ``validate(..., windows=...)`` then
refuses text rows to recipients without one
(:func:`kwa_batch.validation.window_checks.closed_window_rows`, code ``KWA012``: send a template
instead).

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

from ..validation.window_checks import WINDOW, moment
from .store import CallbackStore
from .store import opened_store as _opened_store

__all__ = ["WINDOW_COLUMNS", "open_windows"]

#: Columns of :func:`open_windows`, in order.
WINDOW_COLUMNS = ("business_number", "recipient", "last_message_at", "expires_at")

_TIME = "datetime64[us, UTC]"


def open_windows(
    store: str | Path | CallbackStore, now: datetime | pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """The conversation windows open at ``now``, one per (business number, recipient).

    Args:
        store: the SQLite file a :class:`~kwa_batch.Receiver` writes, or an open
            :class:`~kwa_batch.receipts.store.CallbackStore`.
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
    at = moment(now)
    with _opened_store(store) as opened:
        incoming = opened.incoming_messages()
    # A message cannot have been written after it arrived: a sender's clock running ahead
    # must not keep a window closed (or open) longer.
    written = incoming["at"].where(
        incoming["at"] <= incoming["received_at"], incoming["received_at"]
    )
    incoming = incoming.assign(at=written)[written <= at]
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
    out = out[out["expires_at"] > at]
    return out.sort_values(["recipient", "business_number"], kind="stable").reset_index(drop=True)
