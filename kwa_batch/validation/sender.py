"""The sender rule: which ``from`` number a row goes out from, and when a sender can be used.

The first sender given wins:

1. the row's own ``from`` column;
2. the sender given to the call: ``validate(sender=)`` or ``send(sender=)`` (``--from`` on
   the command line), or else the one a report was validated with;
3. the client's: ``KaleyraClient(sender=)``, which ``KaleyraClient.from_env`` takes from
   ``KALEYRA_FROM`` (the command line reads it too, when ``--from`` is not given);
4. with ``kwa-batch … --emulator`` only: a demo number.

A sender is usable when it reads as a phone number (:func:`~kwa_batch.validation.phones.
normalize_phone`, in the default region) and is then sent in E.164. A row's own that is not
is refused (``E13008``); one given to the call fills the rows without their own, which are
refused with it when it is unusable (the command line stops before reading the file). Two
senders are the same when they are the same number, however written.

Everything that picks, checks or compares a sender calls this module; the client (which
must not reach validation) and the planner name the same fix, :data:`NO_SENDER_FIX`.
"""

from __future__ import annotations

import pandas as pd

from ..config import NO_SENDER_FIX
from .phones import PhoneCheck, normalize_phone

__all__ = [
    "INVALID_SENDER_FIX",
    "NO_SENDER_FIX",
    "choose_sender",
    "invalid_sender_message",
    "read_sender",
    "same_sender",
    "usable_senders",
]

#: What to do about a sender that is not a usable number.
INVALID_SENDER_FIX = (
    "use your WhatsApp business number with + and the country code (e.g. +911234567890)"
)


def choose_sender(*given: str | None) -> str | None:
    """The first sender given, in the order of the rule (None when none is).

    >>> choose_sender(None, "", "+911234567890", "+447911123456")
    '+911234567890'
    """
    return next((sender for sender in given if sender and sender.strip()), None)


def read_sender(sender: str, default_region: str | None = None) -> PhoneCheck:
    """The verdict on a sender: its E.164 form, or why it cannot be used.

    >>> read_sender("+91 12345 67890").e164
    '+911234567890'
    """
    return normalize_phone(sender, default_region)


def invalid_sender_message(reason: str) -> str:
    """The message of a row refused for its sender, from the reason the number is refused.

    >>> invalid_sender_message("is too short").split(": use")[0]
    'the sender is too short'
    """
    return f"the sender {reason}: {INVALID_SENDER_FIX}"


def same_sender(first: str | None, second: str | None, default_region: str | None = None) -> bool:
    """Whether two senders are the same number, however written (both empty: the same).

    >>> same_sender("+911234567890", "+91 12345 67890")
    True
    """
    if not first or not second:
        return not first and not second
    if first == second:
        return True
    one, other = read_sender(first, default_region), read_sender(second, default_region)
    return one.ok and one.e164 == other.e164


def usable_senders(senders: pd.Series) -> pd.Series:
    """Which values of a ``from`` column already in E.164 are usable senders (missing
    values are not)."""
    # Senders are few distinct values (usually one): each is checked once.
    distinct = [v for v in senders.dropna().unique() if read_sender(v).e164 == v]
    return senders.isin(distinct)
