"""The daily messaging limit's moving 24 hours: who counts, and when each leaves.

WhatsApp limits a business number to so many unique recipients of business-initiated
conversations in any 24 hours. One :class:`DailyWindow` holds that count for both moments
it is decided at: when the run is planned (:func:`kwa_batch.sending.schedule.apply_holds`:
which rows may go, and from when the others have room) and as each request leaves
(:class:`kwa_batch.sending.departure.Departure`: the same rule, against the clock of that
moment, with what the run sent since).

A recipient counts from the last time a message may have gone to them (sent, in flight or
unknown: see :mod:`kwa_batch.sending.history`) until 24 hours later; a recipient already
counted goes again without taking more room.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

__all__ = ["DAY", "DailyWindow"]

#: The length of the window.
DAY = timedelta(hours=24)


class DailyWindow:
    """The unique recipients counted in the 24 hours before a moment, and the room left.

    Args:
        limit: how many unique recipients the 24 hours may hold.
        recent: recipient -> when a message to them may last have gone.

    >>> from datetime import UTC
    >>> t = datetime(2026, 12, 1, 9, tzinfo=UTC)
    >>> window = DailyWindow(2, {"+441": t - timedelta(hours=23)})
    >>> window.admit(["+441", "+442", "+443"], t)
    [True, True, False]
    >>> window.rooms(1, admitted=1, now=t)[0] == t + timedelta(hours=1)
    True
    """

    def __init__(self, limit: int, recent: dict[str, datetime]) -> None:
        self.limit = limit
        self.latest = dict(recent)
        self._order: deque[tuple[datetime, str]] = deque(
            sorted((at, number) for number, at in recent.items())
        )

    def _expire(self, now: datetime) -> None:
        edge = now - DAY
        while self._order and self._order[0][0] <= edge:
            at, number = self._order.popleft()
            if self.latest.get(number) == at:
                del self.latest[number]

    def counted(self, number: str, now: datetime) -> bool:
        """Whether this recipient is in the window at ``now`` (goes again without room)."""
        self._expire(now)
        return number in self.latest

    def admit(self, numbers: Sequence[str], now: datetime) -> list[bool]:
        """Which of these recipients may go at ``now``, in order (nothing is recorded):
        those counted already, then new ones while there is room."""
        self._expire(now)
        room = self.limit - len(self.latest)
        new: set[str] = set()
        out = []
        for number in numbers:
            if number in self.latest or number in new:
                out.append(True)
            elif room > 0:
                new.add(number)
                room -= 1
                out.append(True)
            else:
                out.append(False)
        return out

    def record(self, numbers: Iterable[str], now: datetime) -> None:
        """These recipients were sent a message at ``now``."""
        for number in numbers:
            self.latest[number] = now
            self._order.append((now, number))

    def room_from(self, now: datetime) -> datetime:
        """When the first counted recipient leaves the window (``now`` if none counts)."""
        self._expire(now)
        return self._order[0][0] + DAY if self._order else now

    def rooms(self, waiting: int, *, admitted: int, now: datetime) -> list[datetime]:
        """When each of ``waiting`` recipients over the limit gets room, in their order,
        once ``admitted`` new ones are sent at ``now``: the k-th waits for the k-th counted
        one to leave (those counted already first, then those sent now, 24 h after now);
        past a full window's worth, a day more for each round of the limit.

        >>> from datetime import UTC
        >>> t = datetime(2026, 12, 1, 9, tzinfo=UTC)
        >>> rooms = DailyWindow(1, {}).rooms(3, admitted=1, now=t)
        >>> [room - t for room in rooms] == [DAY, 2 * DAY, 3 * DAY]
        True
        """
        self._expire(now)
        leaving = sorted([*self.latest.values(), *([now] * admitted)])
        if not leaving:  # nobody counts, so nobody waits
            return [now] * waiting
        # Someone waits only when the window is full: its last ``limit`` recipients leave
        # in turn, and each place they free is taken again for 24 hours.
        free = max(0, len(leaving) - self.limit)
        places = len(leaving) - free
        return [leaving[free + k % places] + DAY * (k // places + 1) for k in range(waiting)]
