"""The conversation-window rule: free text only to recipients who wrote in the last 24 hours.

WhatsApp lets a business send free text (``type == "text"``) only within 24 hours of the
recipient's last message to that business number; otherwise the conversation must start
with an approved template. :func:`closed_window_rows` says which validated text rows have
no open window in a frame of windows (:func:`kwa_batch.open_windows` makes one from the
callbacks a receiver stored), so that ``validate(..., windows=...)`` refuses them with
:data:`CLOSED_WINDOW_CODE` before sending.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from ..errors import Code
from ..fields import SESSION_TYPES

__all__ = [
    "CLOSED_WINDOW_CODE",
    "CLOSED_WINDOW_MESSAGE",
    "WINDOW",
    "closed_window_rows",
    "moment",
]

#: How long a recipient's message keeps the conversation open for free text.
WINDOW = pd.Timedelta(hours=24)
#: The error code of a text row to a recipient without an open window (see errors.py).
CLOSED_WINDOW_CODE = Code.WINDOW_CLOSED
#: The reason given for such a row.
CLOSED_WINDOW_MESSAGE = (
    "no open 24-hour conversation window with this recipient (they have not written to "
    "this business number in the last 24 hours): free text would be refused, send an "
    "approved template instead"
)

_E164 = r"\+[1-9][0-9]{6,14}"


def moment(now: datetime | pd.Timestamp | str | None) -> pd.Timestamp:
    """``now`` as a UTC timestamp (the real time when None; naive times are taken as UTC)."""
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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
    at = moment(now)
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
    judged = (
        kind.isin(SESSION_TYPES).fillna(False).astype(bool) & to_ok & (sender_ok | sender.isna())
    )

    live = windows.loc[(pd.to_datetime(windows["expires_at"], utc=True) > at).to_numpy()]
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
