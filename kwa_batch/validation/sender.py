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

**Several senders** (``sender=["+91A", "+91B"]``, ``sender="+91A,+91B"``, ``--from
+91A,+91B``): each row without its own ``from`` is *pinned* to one of them by a stable hash
of its recipient's E.164 number (:func:`pin_senders`: rendezvous hashing, the sender with
the highest sha256 of recipient and sender, so the order they are given in does not matter).
A customer hears from the same number in every run and every campaign, so the 24-hour
windows and the pair spacing stay per pair. Adding a number moves only the recipients it
wins, about 1/(N+1) of them; removing one moves only its own. A row's own ``from`` still
wins.

Everything that picks, checks or compares a sender calls this module; the client (which
must not reach validation) and the planner name the same fix, :data:`NO_SENDER_FIX`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pandas as pd

from ..config import NO_SENDER_FIX
from .phones import PhoneCheck, normalize_phone

__all__ = [
    "INVALID_SENDER_FIX",
    "NO_SENDER_FIX",
    "choose_sender",
    "invalid_sender_message",
    "joined_senders",
    "pin_senders",
    "read_sender",
    "same_sender",
    "split_senders",
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


def split_senders(sender: str | Sequence[str] | None) -> list[str]:
    """The senders given, as a list: a comma-separated string or a list (blanks dropped).

    >>> split_senders("+911234567890, +919876543210"), split_senders(None)
    (['+911234567890', '+919876543210'], [])
    """
    if sender is None:
        return []
    parts = sender.split(",") if isinstance(sender, str) else [str(s) for s in sender]
    return [part.strip() for part in parts if part.strip()]


def joined_senders(sender: str | Sequence[str] | None) -> str | None:
    """One string for the senders given (comma-separated), None when none is: how a report
    and a run's record carry them.

    >>> joined_senders(["+911234567890", "+919876543210"])
    '+911234567890,+919876543210'
    """
    return ",".join(split_senders(sender)) or None


def pin_senders(recipients: pd.Series, senders: Sequence[str]) -> pd.Series:
    """The sender each recipient (E.164) is pinned to, by rendezvous hashing: the sender
    whose ``sha256(recipient|sender)`` is highest. Neither the order the senders are given
    in nor the run changes it, and adding a sender moves only the recipients it wins, about
    1/(N+1) of them; removing one moves only its own.

    >>> pin_senders(pd.Series(["+919876543210"]), ["+912", "+911"]).tolist() == \
    ...     pin_senders(pd.Series(["+919876543210"]), ["+911", "+912"]).tolist()
    True
    """
    ordered = sorted(set(senders))

    def pick(number: object) -> str | None:
        if not isinstance(number, str) or not number:
            return None

        def weight(sender: str) -> int:
            digest = hashlib.sha256(f"{number}|{sender}".encode()).digest()
            return int.from_bytes(digest[:8], "big")

        return max(ordered, key=weight)

    # Each distinct recipient hashed once.
    distinct = recipients.dropna().unique()
    mapping = {number: pick(number) for number in distinct}
    return recipients.map(mapping).astype("str")
