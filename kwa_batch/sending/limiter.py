"""How many messages may leave now: an exact one-second window, and backpressure (AIMD).

:class:`SlidingWindow` lets at most ``rate`` messages leave in any one-second window of
departure times (a request to *n* recipients counts *n*). The platform counts *arrivals*,
so what has to hold is: no ``rate + 1`` messages arrive within one second. Two messages
whose departures are ``1 + margin`` seconds apart arrive less than a second apart only when
the first took more than ``margin`` longer on its way than the second. So each message
holds its place for one second plus ``margin``, and ``margin`` has to cover the *spread* of
the departure-to-arrival delay (not the delay itself). Two things keep that spread small
and covered:

- **The departure is the moment the request reaches the wire.** A message let go by the
  limiter may still wait before its bytes reach the socket: a journal write, building the
  request, a new connection, a thread waiting for the GIL, a garbage collection (measured
  at 50/s: 1 ms usually, 5-50 ms now and then, 100-230 ms at worst). A pause that holds
  several requests sends them together after it: their arrivals bunch while their places
  in the window are spread over the pause. So the place of a message moves to the moment
  its bytes were handed to the socket (:meth:`SlidingWindow.restamp`, called by the pacer
  when the HTTP client says so through :func:`written`; and before that, when the sender
  says the request is about to be written). Moving a place later never makes an earlier
  decision wrong: the places of the messages let go meanwhile counted it sooner.
- **The margin covers what remains**, from the wire to the server's count (the network,
  a server that stops reading for a moment), which the client cannot see apart but is part
  of the round trip: :mod:`kwa_batch.sending.pacing` sets the margin from the round trips
  it observes *from the wire*: ``MIN_MARGIN + 1.25 x`` their range over the last two
  seconds (a quarter more and 5 ms: the slowest on its way may have been a little quicker
  on its way back than the quickest), at most :data:`MAX_MARGIN` (:data:`PRIOR_MARGIN`
  before enough answers). A message slow on its way is answered before the message a
  second after it leaves (at latencies below a second), which then waits for the wider
  margin.

Before, places were held from the limiter's stamp and the margin was the plain range,
capped at 50 ms: a pause of 120 ms (before the wire or at the server) let 53-54 messages
arrive in one second at 50/s, and a small spike just above the range, 51.

The margin costs throughput only while round trips spread: a run reaches
``rate / (1 + margin)``, 0.99x on a quiet connection, 0.8x at worst (round trips spread by
200 ms or more; a spread of more than :data:`MAX_MARGIN` on the way to the server, or a
latency above a second, is not covered).

The window alone would let ``rate`` messages leave at once, then none for a second: a burst
that queues at the server and spreads the arrival delays (so the margin would have to be
larger). So the window also paces (``smooth=True``): messages leave ``(1 + margin) / rate``
seconds apart on a theoretical schedule (GCRA, as ATM networks and many rate limiters do),
each allowed up to :data:`TOLERANCE` early so that a thread woken a little late does not
lose its slot for good. The schedule alone never fills the window; the window remains the
guarantee.

:class:`Backpressure` is the rate in force: the platform's "too fast" (HTTP 429, WhatsApp's
130429) multiplies it by ``decrease`` (not below ``floor``), at most once per ``hold``
seconds (a burst of refusals from one window is one signal); after ``hold`` seconds it climbs
back by ``increase`` messages per second every second, up to the configured rate: additive
increase, multiplicative decrease, as TCP does for congestion.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import ConfigurationError

__all__ = [
    "MAX_MARGIN",
    "MIN_MARGIN",
    "PRIOR_MARGIN",
    "Backpressure",
    "SlidingWindow",
    "departing",
    "max_in_any_window",
    "recipients_per_request",
    "written",
]

#: Seconds a message holds its place beyond one second, at most: 250 ms (a run reaches at
#: least 1 / 1.25 = 0.8x the rate, while round trips spread that much).
MAX_MARGIN = 0.25
#: The margin before enough round trips are observed: 50 ms.
PRIOR_MARGIN = 0.05
#: The least margin, whatever the round trips look like (what their range misses, clock and
#: scheduling granularity): 5 ms, 0.5 % of throughput.
MIN_MARGIN = 0.005
#: Seconds a message may leave before its place on the smooth schedule.
TOLERANCE = 0.02

Clock = Callable[[], float]
# Seconds between two looks at the stop event (and at a rate in force that may rise).
_POLL = 0.25


_departing = threading.local()


def departing(callback: Callable[[], None] | None) -> None:
    """Call ``callback`` once this thread's next request has been handed to the socket.

    None forgets a callback that was not called (the request never reached the wire). The
    pacer sets it; the HTTP client calls :func:`written`.
    """
    _departing.callback = callback


def written() -> None:
    """The request this thread is sending has just been handed to the socket, whole.

    Called by :class:`~kwa_batch.sending.client.KaleyraClient` after writing each request;
    runs (once) what :func:`departing` set, if anything.
    """
    callback: Callable[[], None] | None = getattr(_departing, "callback", None)
    if callback is not None:
        _departing.callback = None
        callback()


def _check_rate(rate: float) -> float:
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(rate, bool) or not (value >= 1 and math.isfinite(value)):
        raise ConfigurationError(
            f"rate_limit must be at least 1 message per second (or None for no limit), not {rate!r}"
        )
    return value


def recipients_per_request(rate: float, most: int) -> int:
    """The largest group size up to ``most`` whose requests pack a one-second window well.

    A window of 150 holds one request of 100 and no second one (0.67x the rate); two of 75
    fill it. So the groups are ``floor(rate / ceil(rate / most))``.

    >>> recipients_per_request(150, 100), recipients_per_request(80, 100)
    (75, 80)
    >>> recipients_per_request(1000, 100), recipients_per_request(250, 100)
    (100, 83)
    """
    rate = _check_rate(rate)
    requests = math.ceil(rate / most)
    return max(1, min(most, math.floor(rate / requests)))


def max_in_any_window(
    times: Sequence[float], counts: Sequence[int] | None = None, width: float = 1.0
) -> int:
    """The most messages in any half-open window ``(t - width, t]`` of ``times``.

    ``counts`` gives the messages at each time (1 each by default). For checking a run's
    timestamps (the limiter's departures, or the server's arrivals).

    >>> max_in_any_window([0.0, 0.5, 1.0, 1.2]), max_in_any_window([0.0, 1.0], [3, 4])
    (3, 4)
    """
    order = sorted(range(len(times)), key=times.__getitem__)
    stamps = [times[i] for i in order]
    weights = [1 if counts is None else counts[i] for i in order]
    prefix = [0]
    for weight in weights:
        prefix.append(prefix[-1] + weight)
    best = 0
    for end in range(len(stamps)):
        # The window ending at this stamp (and everything at the same instant).
        last = bisect.bisect_right(stamps, stamps[end])
        first = bisect.bisect_right(stamps, stamps[end] - width)
        best = max(best, prefix[last] - prefix[first])
    return best


class SlidingWindow:
    """At most ``rate`` messages leave in any window of ``1 + margin`` seconds.

    Shared by the worker threads. ``budget`` (the rate in force, at most ``rate``) may be
    passed to :meth:`acquire` to admit fewer; a request larger than the budget leaves only
    into an empty window. A request larger than ``rate`` is refused: plan smaller requests
    (see :func:`recipients_per_request`).

    Args:
        rate: messages per second, 1 or more.
        margin: seconds each message holds its place beyond one second (settable).
        smooth: also space messages evenly (see the module's documentation).
        clock: seconds, monotonic (a seam for tests).

    Raises:
        ConfigurationError: ``rate`` below 1 or not finite.
    """

    def __init__(
        self,
        rate: float,
        *,
        margin: float = PRIOR_MARGIN,
        smooth: bool = True,
        clock: Clock = time.monotonic,
    ):
        self.rate = _check_rate(rate)
        self.margin = margin
        self.smooth = smooth
        self._due = -math.inf  # when the next message is due on the smooth schedule
        self._clock = clock
        self._sent: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()  # acquire()'s queue, first = next

    def in_window(self) -> int:
        """Messages holding a place now."""
        with self._lock:
            self._expire(self._clock())
            return self._in_window

    def _expire(self, now: float) -> None:
        horizon = now - 1.0 - self.margin
        sent = self._sent
        while sent and sent[0][0] <= horizon:
            self._in_window -= sent.popleft()[1]

    def try_acquire(self, count: int, budget: float | None = None) -> tuple[float | None, float]:
        """Take ``count`` places now if they fit.

        Returns:
            ``(departure time, 0.0)`` when taken, else ``(None, seconds to wait)``.

        Raises:
            ValueError: ``count`` is more than ``rate`` (it could never leave).
        """
        if count > self.rate:
            raise ValueError(
                f"a request to {count} recipients cannot fit a rate of {self.rate:g} messages "
                "per second: plan requests of at most that many recipients"
            )
        limit = self.rate if budget is None else min(budget, self.rate)
        with self._lock:
            now = self._clock()
            if self.smooth and now < self._due - TOLERANCE:
                return None, self._due - TOLERANCE - now
            self._expire(now)
            sent = self._sent
            if self._in_window + count <= limit or not sent:
                sent.append((now, count))
                self._in_window += count
                self._due = max(now, self._due) + count * (1.0 + self.margin) / limit
                return now, 0.0
            # The wait until enough places free (or the window empties, for a large request).
            excess = self._in_window + count - limit
            hold = 1.0 + self.margin
            freed = 0
            for at, n in sent:
                freed += n
                if freed >= excess:
                    return None, max(at + hold - now, 1e-4)
            return None, max(sent[-1][0] + hold - now, 1e-4)

    def restamp(self, departure: float) -> float | None:
        """The message stamped ``departure`` only leaves now: hold its place from now.

        Whatever came between the limiter and the wire (a journal write, a pause of the
        process) would otherwise shorten the gap the platform sees. The place has not
        freed yet (that takes more than a second), so no later admission relied on it.

        Returns:
            The new stamp, or None when no place has that stamp (freed, or moved already).
        """
        with self._lock:
            now = self._clock()
            sent = self._sent
            # From the newest: the place was taken a moment ago (stamps are in order).
            for i in range(len(sent) - 1, -1, -1):
                at, count = sent[i]
                if at == departure:
                    del sent[i]
                    sent.append((now, count))  # the latest stamp: the deque stays in order
                    return now
                if at < departure:
                    break
            return None

    def acquire(
        self,
        count: int,
        stop: threading.Event,
        budget: Callable[[], float | None] | None = None,
    ) -> float | None:
        """Wait until ``count`` messages may leave; return the departure time, None if stopped.

        Waiters go first come, first served; only the first one watches the clock (the others
        sleep until it is their turn, so a hundred waiting threads cost nothing). ``budget``
        is asked again after every wait (the rate in force may change meanwhile).
        """
        turn = threading.Event()
        with self._lock:
            self._waiting.append(turn)
            if self._waiting[0] is turn:
                turn.set()
        try:
            while not turn.wait(_POLL):
                if stop.is_set():
                    return None
            while True:
                departure, wait = self.try_acquire(count, budget() if budget else None)
                if departure is not None:
                    return departure
                if stop.wait(min(wait, _POLL)):
                    return None
        finally:
            with self._lock:
                self._waiting.remove(turn)
                if self._waiting:
                    self._waiting[0].set()


class Backpressure:
    """The rate in force: lowered by "too fast" answers, climbing back while none come.

    Args:
        rate: the configured rate (the most the rate in force may be).
        decrease: the factor a throttle multiplies the rate in force by.
        floor: the least rate in force, messages per second.
        hold: seconds the lowered rate stays before climbing, and the least time between two
            decreases.
        increase: messages per second added each second while climbing (default: a tenth
            of ``rate``, so a halved rate is back in five seconds after the hold).
        clock: seconds, monotonic.

    Example:
        >>> t = [0.0]
        >>> bp = Backpressure(80, clock=lambda: t[0])
        >>> bp.throttled(); bp.rate_in_force()
        40.0
        >>> t[0] = 3.0; bp.rate_in_force()
        56.0
    """

    def __init__(
        self,
        rate: float,
        *,
        decrease: float = 0.5,
        floor: float = 1.0,
        hold: float = 1.0,
        increase: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.rate = _check_rate(rate)
        if not 0 < decrease < 1:
            raise ConfigurationError(f"decrease must be between 0 and 1, not {decrease!r}")
        self.decrease = decrease
        self.floor = min(max(floor, 1.0), self.rate)
        self.hold = hold
        self.increase = self.rate / 10 if increase is None else increase
        self._clock = clock
        self._lowered_to = self.rate
        self._lowered_at = -math.inf
        self._lock = threading.Lock()
        self.throttles = 0

    def _current(self, now: float) -> float:
        climbing = max(0.0, now - self._lowered_at - self.hold)
        return min(self.rate, self._lowered_to + self.increase * climbing)

    def rate_in_force(self) -> float:
        """Messages per second allowed now."""
        with self._lock:
            return self._current(self._clock())

    def throttled(self, retry_after: float | None = None) -> None:
        """The platform said "too fast": lower the rate in force (once per ``hold``).

        ``retry_after`` (seconds), when the answer gave one, lengthens this hold.
        """
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if now - self._lowered_at < self.hold:
                return
            self._lowered_to = max(self.floor, self._current(now) * self.decrease)
            self._lowered_at = now + max(0.0, (retry_after or 0.0) - self.hold)
