"""WhatsApp's limits per business number, played by the emulator.

Two limits of the WhatsApp platform (``kaleyra-facts.md``, "WhatsApp's platform rules",
from Meta's documentation) shape how fast a campaign may go:

- **Throughput**: about 80 messages per second per business number by default (up to
  1,000 after an upgrade); over it, error ``130429``.
- **Pair rate**: about one message per 6 s from one business number to one recipient;
  over it, error ``131056``.

:class:`EmulatedLimits` counts both over the *arrival* times of the messages the emulator
accepted, per sender number: the throughput over any one-second window (a request to *n*
recipients counts *n*, each recipient in turn), the pair rate from the last message of the
same pair. Both are off unless set (``Emulator(throughput=80, pair_interval=6)``).

How an excess is answered (``limit_answer``):

- ``"callback"`` (the default, what the platform does): Kaleyra relays to WhatsApp, so the
  API accepts the request (HTTP 200, a ``message_id`` per recipient, the message is in the
  ledger) and the message then fails: its ``callback_url`` gets one ``failed`` callback with
  ``error_code`` 130429 or 131056 (no ``sent`` before it). A message refused this way is not
  counted in the windows (it was not sent).
- ``"api"``: the request is refused as a whole before processing, HTTP 429 with the code
  (``130429`` or ``131056``) and ``Retry-After`` set to the seconds until it would pass;
  nothing is recorded, so a client may send it again. (A fault drawn for such a request by
  ``faults=`` is counted as served though not served.)

Either way :attr:`EmulatedLimits.violations` counts the messages over a limit, by code, so
that a test can assert that a sender stayed within them (``emu.limits.violations``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["LIMIT_ANSWERS", "LIMIT_CODES", "EmulatedLimits", "Verdict", "positive_or_none"]

#: How an excess may be answered (see the module's documentation).
LIMIT_ANSWERS = ("callback", "api")
#: WhatsApp's codes: throughput reached, pair rate reached; with their descriptions.
LIMIT_CODES = {
    "130429": "Rate limit hit: the business number's message throughput was reached.",
    "131056": "Pair rate limit hit: too many messages to the same recipient in a short time.",
}
_THROUGHPUT, _PAIR = LIMIT_CODES


@dataclass(frozen=True)
class Verdict:
    """What the limits make of one valid request.

    Attributes:
        failures: ``{position in to: (code, reason)}`` for the recipients whose message
            fails after being accepted (``"callback"`` answers).
        refusal: for ``"api"`` answers, ``(code, reason, retry_after seconds)`` when the
            request is refused as a whole; else None.
    """

    failures: dict[int, tuple[str, str]] = field(default_factory=dict)
    refusal: tuple[str, str, float] | None = None


_PASS = Verdict()


def positive_or_none(name: str, value: float | None, *, least: float, what: str) -> float | None:
    """``value`` as a finite number above 0 and at least ``least``, or None for no limit.

    Raises:
        ValueError: anything else, naming ``name`` and saying ``what`` it must be.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (number >= least and number > 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be {what}, or None for no limit, not {value!r}")
    return number


class EmulatedLimits:
    """Throughput and pair-rate limits per sender number, over arrival times.

    Args:
        throughput: messages per second per sender number (None: no limit).
        pair_interval: seconds between two messages to one recipient (None: no limit).
        answer: ``"callback"`` or ``"api"`` (see the module's documentation).
        clock: seconds, monotonic (a seam for tests).

    Raises:
        ValueError: a throughput below 1, a pair interval of 0 or less, an unknown answer.
    """

    def __init__(
        self,
        *,
        throughput: float | None = None,
        pair_interval: float | None = None,
        answer: str = "callback",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.throughput = positive_or_none(
            "throughput", throughput, least=1.0, what="at least 1 message per second"
        )
        self.pair_interval = positive_or_none(
            "pair_interval", pair_interval, least=0.0, what="more than 0 seconds"
        )
        if answer not in LIMIT_ANSWERS:
            raise ValueError(
                f"limit_answer must be one of {', '.join(LIMIT_ANSWERS)}, not {answer!r}"
            )
        self.answer = answer
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[tuple[float, int]]] = {}  # sender -> (arrival, n)
        self._totals: dict[str, int] = {}
        self._pairs: dict[tuple[str, str], float] = {}  # (sender, recipient) -> last arrival
        self._pair_order: deque[tuple[float, tuple[str, str]]] = deque()
        self._violations = dict.fromkeys(LIMIT_CODES, 0)
        self.peak = 0  # the most messages one sender had in a one-second window

    @property
    def active(self) -> bool:
        """True when some limit is set."""
        return self.throughput is not None or self.pair_interval is not None

    @property
    def violations(self) -> dict[str, int]:
        """Messages over a limit so far, ``{"130429": n, "131056": n}``."""
        with self._lock:
            return dict(self._violations)

    def reset(self) -> None:
        """Forget every arrival and zero the counters (the limits stay)."""
        with self._lock:
            self._windows.clear()
            self._totals.clear()
            self._pairs.clear()
            self._pair_order.clear()
            self._violations = dict.fromkeys(LIMIT_CODES, 0)
            self.peak = 0

    def admit(self, sender: str, recipients: Sequence[str]) -> Verdict:
        """Count a valid request from ``sender`` to ``recipients`` (digits) arriving now."""
        if not self.active:
            return _PASS
        with self._lock:
            now = self._clock()
            window = self._expire(sender, now)
            total = self._totals.get(sender, 0)
            failures: dict[int, tuple[str, str]] = {}
            waits: list[float] = []
            passed: list[str] = []
            for position, recipient in enumerate(recipients):
                pair_wait = self._pair_wait(sender, recipient, now)
                if pair_wait > 0:
                    failures[position] = (_PAIR, LIMIT_CODES[_PAIR])
                    waits.append(pair_wait)
                elif self.throughput is not None and total + 1 > self.throughput:
                    failures[position] = (_THROUGHPUT, LIMIT_CODES[_THROUGHPUT])
                    waits.append(self._window_wait(window, total + 1, now))
                else:
                    total += 1
                    passed.append(recipient)
            for code, _reason in failures.values():
                self._violations[code] += 1
            if failures and self.answer == "api":
                code = min(code for code, _ in failures.values())
                return Verdict(refusal=(code, LIMIT_CODES[code], max(waits)))
            self._count(sender, passed, now)
        return Verdict(failures=failures) if failures else _PASS

    def _expire(self, sender: str, now: float) -> deque[tuple[float, int]]:
        window = self._windows.setdefault(sender, deque())
        horizon = now - 1.0
        while window and window[0][0] <= horizon:
            self._totals[sender] -= window.popleft()[1]
        return window

    def _pair_wait(self, sender: str, recipient: str, now: float) -> float:
        if self.pair_interval is None:
            return 0.0
        last = self._pairs.get((sender, recipient))
        return 0.0 if last is None else max(0.0, last + self.pair_interval - now)

    def _window_wait(self, window: deque[tuple[float, int]], needed: int, now: float) -> float:
        """Seconds until ``needed`` messages fit the sender's window (called with the lock)."""
        assert self.throughput is not None
        excess = needed - self.throughput
        freed = 0
        for arrived, n in window:
            freed += n
            if freed >= excess:
                return max(arrived + 1.0 - now, 0.001)
        return 1.0

    def _count(self, sender: str, passed: list[str], now: float) -> None:
        if not passed:
            return
        self._windows[sender].append((now, len(passed)))
        total = self._totals.get(sender, 0) + len(passed)
        self._totals[sender] = total
        self.peak = max(self.peak, total)
        if self.pair_interval is not None:
            horizon = now - self.pair_interval
            order, pairs = self._pair_order, self._pairs
            while order and order[0][0] <= horizon:
                at, pair = order.popleft()
                if pairs.get(pair) == at:
                    del pairs[pair]
            for recipient in passed:
                pairs[(sender, recipient)] = now
                order.append((now, (sender, recipient)))
