"""Pacing a run: how many requests in flight, which one next, and when it may leave.

A user knows their limits, not their latency. Given a rate (messages per second), the
:class:`Pacer` keeps as many requests in flight as that rate needs, from what it observes:

- **Rate-driven concurrency** (:class:`ConcurrencyController`): by Little's law, reaching
  *rate* messages per second with requests of *k* recipients that take *L* seconds needs
  ``rate * L / k`` requests in flight. *L* and *k* are moving averages of what the run sees
  (latency grows fast and shrinks slowly: underestimating it costs throughput,
  overestimating it only idle threads), plus two mean deviations and 25 % of headroom, up
  to ``max_concurrency``. ``concurrency=`` pins it instead.
- **The exact limit** (:class:`~kwa_batch.sending.limiter.SlidingWindow`): each message
  holds its place from the moment its request reached the wire (the client says when), and
  the window's margin follows the spread of the round trips observed from that moment
  (see :mod:`~kwa_batch.sending.limiter` for why this keeps the *arrivals* within the
  rate), and **backpressure**
  (:class:`~kwa_batch.sending.limiter.Backpressure`): a 429 or a 130429 halves the rate in
  force, which then climbs back.
- **Per-recipient spacing** (:class:`RecipientSpacing`, :class:`Lookahead`): two messages to
  one number leave at least ``per_recipient_interval`` seconds apart (WhatsApp's pair rate,
  about one per 6 s, error 131056). A request whose recipient is not ready is skipped over,
  not waited on: the next ready request goes instead, and the skipped one when its turn
  comes.

- **Several processes** (a journal on PostgreSQL, :mod:`~kwa_batch.sending.pg_journal`):
  each request reserves its moment in a schedule the processes share (:class:`SharedPace`),
  which stands for the local windows, so that a number's rate holds across them all, with
  a margin of at least :data:`SHARED_MARGIN`; concurrency, spacing and backpressure stay
  local.

- **Several sender numbers**: each number has its own limit (a lane of the :class:`Pacer`:
  its window and backpressure, at :meth:`Pacing.rate_for` that number), and an optional
  ``account_rate`` one more window across them all; a request waits for both, and a number
  with requests already waiting is skipped over (:class:`Lookahead`), not waited on.

The settings are one public value, :class:`Pacing` (``kb.Pacing``), checked when it is made;
the :class:`Pacer` of a run is built from it. Its defaults are WhatsApp's (see
``kaleyra-facts.md``, "WhatsApp's platform rules", from Meta's documentation): 80 messages
per second per business number (up to 1,000 after an upgrade: ``Pacing(rate_limit=1000)``),
one message per 6 s to one recipient, requests of up to 100 recipients (Kaleyra's cap).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..config import check_api_version
from ..errors import ConfigurationError
from ..fields import MAX_RECIPIENTS_PER_REQUEST
from .limiter import (
    MAX_MARGIN,
    MIN_MARGIN,
    PRIOR_MARGIN,
    Backpressure,
    Clock,
    SlidingWindow,
    departing,
    recipients_per_request,
)

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_PER_RECIPIENT_INTERVAL",
    "DEFAULT_RATE",
    "THROTTLE_CODES",
    "ConcurrencyController",
    "Lookahead",
    "Pacer",
    "Pacing",
    "RecipientSpacing",
    "SharedPace",
]

#: WhatsApp's default throughput per business number, messages per second (Meta's docs).
DEFAULT_RATE = 80.0
#: WhatsApp's pair rate: about one message per 6 s to the same recipient (error 131056).
DEFAULT_PER_RECIPIENT_INTERVAL = 6.0
#: The most requests in flight that rate-driven concurrency opens (rate 150 at 1 s of
#: latency, one recipient a request, needs about 190).
DEFAULT_MAX_CONCURRENCY = 256
#: Requests in flight when there is no rate to drive concurrency (``rate_limit=None``).
UNLIMITED_CONCURRENCY = 16
#: WhatsApp's "too fast" codes: throughput reached, pair rate reached.
THROTTLE_CODES = frozenset({"130429", "131056"})

_HEADROOM = 1.25
_PRIOR_LATENCY = 0.1  # seconds, before any answer came back
_ALPHA_UP, _ALPHA_DOWN = 0.5, 0.1
_LOOKAHEAD = 10_000
_RANGE_SECONDS = 2.0  # the round trips whose spread sets the margin
_MARGIN_EVERY = 0.1  # seconds between two computations of the margin
_SPREAD_SAFETY = 1.25  # the margin covers this many times the spread (see margin())
_WAITING_PER_NUMBER = 2  # requests waiting for one number's limit before it is skipped
#: The least margin of the schedule shared by several processes: each message holds 5 %
#: more than 1/rate of it, which covers a process woken up to 50 ms late (its places cannot
#: be moved to the moment it reached the wire, as the local window's are; one woken later
#: than :data:`SHARED_TOLERANCE` takes a new moment).
SHARED_MARGIN = 0.05
#: How late after its moment a request of the shared schedule may still leave; later, it
#: takes a new moment (at most :data:`_SHARED_TRIES` times).
SHARED_TOLERANCE = 0.02
_SHARED_TRIES = 20
_SHARED_QUEUED = 3


class SharedPace(Protocol):
    """A schedule of departures shared by several processes (a journal on PostgreSQL)."""

    def reserve(self, lanes: Sequence[tuple[str, float]], count: int, margin: float) -> float:
        """Reserve the moment ``count`` messages may leave within each lane's rate
        (``(lane, messages per second)``); the seconds until then."""
        ...


def _sender_key(number: str) -> str:
    """A sender as its digits with ``+`` (how ``sender_rates`` and the pacer name it)."""
    digits = "".join(c for c in str(number) if c.isdigit())
    return f"+{digits}" if digits else ""


def _whole(value: object) -> bool:
    """A whole number, 1 or more (a NumPy integer too; not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def _at_least(value: object, least: float) -> bool:
    """A finite number, ``least`` or more (a NumPy number too; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value)) and float(value) >= least


@dataclass(frozen=True)
class Pacing:
    """How fast a run sends: the rate, the requests in flight, the spacing per recipient, and
    how many recipients one request carries. Shared by :func:`kwa_batch.send`,
    :func:`kwa_batch.estimate` and ``kwa-batch send``'s options; checked when it is made.

    Args:
        rate_limit: at most this many messages per second per sender number, over any
            one-second window (a request to 100 recipients counts 100). Default 80,
            WhatsApp's default throughput per business number (1,000 after an upgrade);
            None: no limit. A 429 (or WhatsApp's 130429) lowers the rate in force for a
            while, then it climbs back.
        concurrency: requests in flight at once, pinned. Default None: as many as
            ``rate_limit`` needs at the latency observed, up to ``max_concurrency`` (16
            without a rate limit).
        max_concurrency: the most requests in flight rate-driven concurrency opens (default
            256).
        per_recipient_interval: seconds between two messages to the same number (default 6,
            WhatsApp's pair rate, error 131056); rows waiting for it are skipped over, not
            waited on. 0: no spacing.
        max_recipients_per_request: rows sharing one message go in one request of at most
            this many recipients (default 100, Kaleyra's cap; 1 sends each row on its own).
            At a rate, requests are made a little smaller when that packs each second
            better: see :attr:`request_size`. Kaleyra's v1 only: a v2 client sends one
            recipient a request (:meth:`size_for`).

    Raises:
        ConfigurationError: a value out of range, naming the setting, the value and what
            to give instead.

    Example:
        >>> Pacing(rate_limit=1000, per_recipient_interval=0)  # doctest: +ELLIPSIS
        Pacing(rate_limit=1000.0, concurrency=None, max_concurrency=256, ...)
        >>> Pacing(rate_limit=20, sender_rates={"+911234567890": 1000}).rate_for("+911234567890")
        1000.0
        >>> Pacing(rate_limit=150).request_size  # two requests of 75 fill a second
        75
    """

    rate_limit: float | None = DEFAULT_RATE
    concurrency: int | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    per_recipient_interval: float = DEFAULT_PER_RECIPIENT_INTERVAL
    max_recipients_per_request: int = MAX_RECIPIENTS_PER_REQUEST
    sender_rates: Mapping[str, float] | tuple[tuple[str, float], ...] = ()
    account_rate: float | None = None

    def __post_init__(self) -> None:
        rates = dict(self.sender_rates)
        for number, value in rates.items():
            if not _at_least(value, 1) or not _sender_key(number):
                self._refuse(
                    "sender_rates",
                    {number: value},
                    "give a sender number (+ and country code) and at least 1 message per second",
                )
        # Kept as written (a national number is read with the run's region, by send()).
        keyed = tuple(sorted((str(k).strip(), float(v)) for k, v in rates.items()))
        object.__setattr__(self, "sender_rates", keyed)
        if self.account_rate is not None:
            if not _at_least(self.account_rate, 1):
                self._refuse(
                    "account_rate",
                    self.account_rate,
                    "give at least 1 message per second across the numbers, or None",
                )
            object.__setattr__(self, "account_rate", float(self.account_rate))
        rate = self.rate_limit
        if rate is not None and not _at_least(rate, 1):
            self._refuse(
                "rate_limit", rate, "give at least 1 message per second, or None for no limit"
            )
        if self.concurrency is not None and not _whole(self.concurrency):
            self._refuse(
                "concurrency",
                self.concurrency,
                "give a whole number, at least 1 (or None: driven by the rate)",
            )
        if not _whole(self.max_concurrency):
            self._refuse("max_concurrency", self.max_concurrency, "give a whole number, at least 1")
        if not _at_least(self.per_recipient_interval, 0):
            self._refuse(
                "per_recipient_interval",
                self.per_recipient_interval,
                "give zero or more seconds (0: no spacing)",
            )
        most = self.max_recipients_per_request
        if not _whole(most) or most > MAX_RECIPIENTS_PER_REQUEST:
            self._refuse(
                "max_recipients_per_request",
                most,
                f"give a whole number between 1 and {MAX_RECIPIENTS_PER_REQUEST} (Kaleyra's cap)",
            )
        # Plain Python numbers, one type each, for the journal and the run's record (80 is 80.0).
        if rate is not None:
            object.__setattr__(self, "rate_limit", float(rate))
        object.__setattr__(self, "per_recipient_interval", float(self.per_recipient_interval))
        for name in ("concurrency", "max_concurrency", "max_recipients_per_request"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))

    @staticmethod
    def _refuse(name: str, value: object, fix: str) -> None:
        raise ConfigurationError(f"Pacing({name}={value!r}): {fix}")

    def _own_rates(self) -> dict[str, float]:
        """``sender_rates`` as a mapping by ``+digits`` (kept a sorted tuple of pairs:
        hashable)."""
        return {_sender_key(k): float(v) for k, v in dict(self.sender_rates).items()}

    def rate_for(self, sender: str | None) -> float | None:
        """The rate of one sender number: its own in ``sender_rates``, else ``rate_limit``.

        >>> Pacing(rate_limit=20, sender_rates={"+91 1234": 1000}).rate_for("+911234")
        1000.0
        """
        if sender:
            own = self._own_rates().get(_sender_key(sender))
            if own is not None:
                return own
        return self.rate_limit

    def total_rate(self, senders: Iterable[str | None]) -> float | None:
        """Messages per second that ``senders`` reach together: the sum of their rates,
        at most ``account_rate`` (None: no limit at all).

        >>> Pacing(rate_limit=20).total_rate(["+911", "+912"])
        40.0
        """
        rates = [self.rate_for(s) for s in set(senders)] or [self.rate_limit]
        total = None if any(r is None for r in rates) else sum(r for r in rates if r)
        if self.account_rate is None:
            return total
        return self.account_rate if total is None else min(total, self.account_rate)

    @property
    def request_size(self) -> int:
        """The most recipients one request carries: ``max_recipients_per_request``, lowered
        at a rate so that whole requests fill each one-second window (a window of 150 holds
        one request of 100 and no second, but two of 75). What :func:`kwa_batch.send` plans
        with, and :func:`kwa_batch.estimate` counts.

        >>> Pacing().request_size, Pacing(rate_limit=None).request_size
        (80, 100)
        """
        rates = [*self._own_rates().values(), self.rate_limit, self.account_rate]
        slowest = min((r for r in rates if r is not None), default=None)
        if slowest is None:
            return self.max_recipients_per_request
        return recipients_per_request(slowest, self.max_recipients_per_request)

    def size_for(self, api_version: str) -> int:
        """The most recipients one request carries through Kaleyra's ``api_version``:
        :attr:`request_size` for v1; 1 for v2, which takes one recipient per request
        whatever ``max_recipients_per_request`` says. What :func:`kwa_batch.send` plans with
        for a client of that version, and :func:`kwa_batch.estimate` counts.

        >>> Pacing().size_for("v1"), Pacing().size_for("v2")
        (80, 1)
        """
        return self.request_size if check_api_version(api_version) == "v1" else 1


class ConcurrencyController:
    """How many requests should be in flight to reach a rate, from the latencies observed.

    The latency is a moving average of the round trips (departure to answer) plus two
    mean deviations; while answers are late (after a jump in latency, or before the first
    one), twice the median age of the requests in flight stands in for it, so the pool
    grows at once rather than one round trip later.

    Args:
        max_concurrency: the most it ever says.
        pinned: a fixed answer (``concurrency=``), whatever the latency.
        clock: seconds, monotonic.

    Example:
        >>> c = ConcurrencyController(256)
        >>> for _ in range(50):
        ...     c.observe(0.25, 1)
        >>> c.target(150.0)
        48
    """

    def __init__(
        self, max_concurrency: int, *, pinned: int | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.max_concurrency = max_concurrency
        self.pinned = pinned
        self.latency = _PRIOR_LATENCY
        self.deviation = 0.0
        self.recipients = 1.0
        self.observed = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._outstanding: list[float] = []  # departures not answered yet, about in order
        self._recent: deque[tuple[float, float]] = deque()  # (answered at, trip from the wire)
        self._margin = (-math.inf, PRIOR_MARGIN)  # (computed at, value)

    def departed(self, at: float) -> None:
        """A request left at ``at`` (its answer is awaited)."""
        with self._lock:
            self._outstanding.append(at)

    def settled(self, at: float) -> None:
        """The request that left at ``at`` ended, with an answer or without."""
        with self._lock, contextlib.suppress(ValueError):
            self._outstanding.remove(at)

    def observe(self, latency: float, recipients: int, from_wire: float | None = None) -> None:
        """One request took ``latency`` seconds from departure to answer (for the pool), of
        which ``from_wire`` from the moment it reached the wire (for the margin; default:
        all of it)."""
        now = self._clock()
        with self._lock:
            if self.observed == 0:
                self.latency, self.deviation, self.recipients = latency, latency / 2, recipients
            else:
                alpha = _ALPHA_UP if latency > self.latency else _ALPHA_DOWN
                self.deviation += 0.25 * (abs(latency - self.latency) - self.deviation)
                self.latency += alpha * (latency - self.latency)
                self.recipients += 0.1 * (recipients - self.recipients)
            self.observed += 1
            recent = self._recent
            recent.append((now, latency if from_wire is None else from_wire))
            while recent[0][0] < now - _RANGE_SECONDS:
                recent.popleft()

    def target(self, rate: float | None) -> int:
        """Requests to keep in flight for ``rate`` messages per second (None: no limit)."""
        if self.pinned is not None:
            return self.pinned
        if rate is None:
            return min(UNLIMITED_CONCURRENCY, self.max_concurrency)
        now = self._clock()
        with self._lock:
            seconds = self.latency + 2 * self.deviation
            outstanding = self._outstanding
            if outstanding:
                seconds = max(seconds, 2 * (now - outstanding[len(outstanding) // 2]))
            needed = rate * seconds / max(self.recipients, 1.0) * _HEADROOM
        return max(1, min(self.max_concurrency, math.ceil(needed) + 1))

    def margin(self) -> float:
        """The window's margin, from the round trips of the last two seconds counted from the
        wire: ``MIN_MARGIN + 1.25 * spread``.

        The *spread* is the most a round trip was slower than one that left after it: what
        lets an earlier message arrive late among later ones. (A latency that rises is no
        spread: the later ones arrive later still; one that falls is.) The spread on the way
        to the server is part of it, but the slowest on its way may have been a little
        quicker on its way back: a quarter more, plus
        :data:`~kwa_batch.sending.limiter.MIN_MARGIN`, covers that. Before eight answers
        :data:`~kwa_batch.sending.limiter.PRIOR_MARGIN`; at most
        :data:`~kwa_batch.sending.limiter.MAX_MARGIN`.
        """
        now = self._clock()
        with self._lock:
            at, value = self._margin
            if now - at < _MARGIN_EVERY:
                return value
            if self.observed < 8 or not self._recent:
                value = PRIOR_MARGIN
            else:
                slowest, spread = -math.inf, 0.0
                for _, trip in sorted((answered - trip, trip) for answered, trip in self._recent):
                    slowest = max(slowest, trip)  # in the order they left
                    spread = max(spread, slowest - trip)
                value = min(MAX_MARGIN, MIN_MARGIN + _SPREAD_SAFETY * spread)
            self._margin = (now, value)
            return value


class RecipientSpacing:
    """Keeps messages to one number at least ``interval`` seconds apart, as they arrive.

    A number is *busy* from the moment a request to it is taken until it finishes; then
    *spaced* for ``interval`` seconds from the moment it finished, if it may have reached
    the platform (it left, and was sent or is unknown). The end of a request, not its
    departure, is the anchor: its answer is the one moment the client knows the message
    has arrived, so the next one arrives at least ``interval`` later whatever the delays
    on the way (at the cost of one round trip per repeated number; other rows go
    meanwhile). A request that surely did not reach it (refused, not sent) gives the
    number back as it was.
    """

    def __init__(self, interval: float, *, clock: Clock = time.monotonic) -> None:
        self.interval = interval = float(interval)
        self.enabled = interval > 0
        self._clock = clock
        self._last: dict[str, float] = {}  # number -> when its last message finished
        self._order: deque[tuple[float, str]] = deque()  # (finished, number), to forget
        self._busy: dict[str, bool] = {}  # number -> its request has left (at least once)
        self._lock = threading.Lock()

    def ready_at(self, numbers: Sequence[str]) -> float:
        """When every number may receive again (``inf`` while one is busy)."""
        at = -math.inf
        if not self.enabled:
            return at
        with self._lock:
            for number in numbers:
                if number in self._busy:
                    return math.inf
                last = self._last.get(number)
                if last is not None:
                    at = max(at, last + self.interval)
        return at

    def take(self, numbers: Sequence[str]) -> None:
        """A request to ``numbers`` was handed to a worker."""
        if not self.enabled:
            return
        with self._lock:
            for number in numbers:
                self._busy[number] = False

    def departed(self, numbers: Sequence[str]) -> None:
        """An attempt of that request left."""
        if not self.enabled:
            return
        with self._lock:
            for number in numbers:
                if number in self._busy:
                    self._busy[number] = True

    def finish(self, numbers: Sequence[str], *, reached: bool) -> None:
        """The request finished; ``reached``: it may have reached the platform."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            self._forget(now)
            for number in numbers:
                left = self._busy.pop(number, False)
                if reached and left:
                    self._last[number] = now
                    self._order.append((now, number))

    def _forget(self, now: float) -> None:
        """Drop numbers whose spacing is over (memory stays bounded by rate x interval)."""
        horizon = now - self.interval
        order, last = self._order, self._last
        while order and order[0][0] <= horizon:
            at, number = order.popleft()
            if last.get(number) == at:
                del last[number]


class _HasNumbers(Protocol):
    @property
    def numbers(self) -> list[str]: ...


T = TypeVar("T", bound=_HasNumbers)


class Lookahead(Generic[T]):
    """The next request whose recipients are ready, skipping over those that are not.

    Reads the planned requests lazily, holding at most ``lookahead`` skipped ones (a file
    of thousands of rows for one number then waits, rather than reading everything).
    ``busy`` says a request's sender number is saturated (its limit has requests waiting
    already): it is skipped over too, so that one number's queue never holds up another's.
    """

    def __init__(
        self,
        planned: Iterable[T],
        spacing: RecipientSpacing,
        *,
        lookahead: int = _LOOKAHEAD,
        busy: Callable[[T], bool] | None = None,
    ) -> None:
        self._planned: Iterator[T] = iter(planned)
        self._spacing = spacing
        self._busy = busy
        self._held: deque[T] = deque()
        self._lookahead = lookahead
        self.exhausted = False

    def push_front(self, requests: Sequence[T]) -> None:
        """Put requests back at the head (e.g. a grouped request split after a refusal)."""
        self._held.extendleft(reversed(requests))

    def __bool__(self) -> bool:
        """True while requests remain (held or still planned)."""
        if self._held:
            return True
        self._fill(1)
        return bool(self._held)

    def _fill(self, size: int) -> bool:
        while len(self._held) < size and not self.exhausted:
            request = next(self._planned, None)
            if request is None:
                self.exhausted = True
                return False
            self._held.append(request)
        return len(self._held) >= size

    def take(self, now: float) -> T | None:
        """The first request ready at ``now`` (marked busy), or None."""
        spacing = self._spacing
        index = 0
        while index < len(self._held) or self._fill(index + 1):
            if index >= self._lookahead:
                return None
            request = self._held[index]
            if self._busy is not None and self._busy(request):
                index += 1  # its sender number has requests waiting already: another goes
                continue
            if spacing.ready_at(request.numbers) <= now:
                del self._held[index]
                spacing.take(request.numbers)
                return request
            index += 1
        return None

    def next_ready(self) -> float:
        """When the first held request may go (``inf``: it waits for one in flight)."""
        return min((self._spacing.ready_at(r.numbers) for r in self._held), default=math.inf)

    def rest(self) -> list[T]:
        """Every request not taken (held, then still planned); empties the lookahead."""
        rest = [*self._held, *self._planned]
        self._held.clear()
        self.exhausted = True
        return rest


class _Lane:
    """One sender number's limit: its window and its backpressure."""

    def __init__(self, rate: float | None, clock: Clock) -> None:
        self.window = SlidingWindow(rate, clock=clock) if rate is not None else None
        self.backpressure = Backpressure(rate, clock=clock) if rate else None
        self.waiting = 0  # requests in acquire() for this number now

    def rate_in_force(self) -> float | None:
        return self.backpressure.rate_in_force() if self.backpressure is not None else None


class Pacer:
    """The pacing of one run: the limits, the rates in force, concurrency and spacing.

    Each sender number has its own limit (a *lane*: a window and a backpressure, at
    :meth:`Pacing.rate_for` that number), made when the number first sends; an
    ``account_rate`` adds one window that every request waits for too.

    Args:
        pacing: the settings (checked when they were made); default ``Pacing()``.
        clock: seconds, monotonic.
    """

    def __init__(self, pacing: Pacing | None = None, *, clock: Clock = time.monotonic) -> None:
        pacing = pacing if pacing is not None else Pacing()
        self.pacing = pacing
        rate_limit = pacing.rate_limit
        self._lanes: dict[str | None, _Lane] = {None: _Lane(rate_limit, clock)}
        self._lanes_lock = threading.Lock()
        account = pacing.account_rate
        self.account = SlidingWindow(account, clock=clock) if account is not None else None
        self.controller = ConcurrencyController(
            pacing.max_concurrency, pinned=pacing.concurrency, clock=clock
        )
        self.spacing = RecipientSpacing(pacing.per_recipient_interval, clock=clock)
        self._clock = clock
        self._wire: dict[float, float] = {}  # departure -> when its request reached the wire
        # departure -> its places: (window, stamp), the number's and the account's
        self._places: dict[float, list[tuple[SlidingWindow, float]]] = {}
        self.peak_in_flight = 0
        self.lowest_rate = math.inf if rate_limit is None else float(rate_limit)
        #: The schedule shared with other processes, if any (see :meth:`acquire`).
        self.shared: SharedPace | None = None
        #: Moments of the shared schedule given up: woken too late for them.
        self.shared_late = 0

    @property
    def window(self) -> SlidingWindow | None:
        """The window of a run without several numbers (the default lane's)."""
        return self._lanes[None].window

    @property
    def backpressure(self) -> Backpressure | None:
        """The backpressure of the default lane."""
        return self._lanes[None].backpressure

    def expect(self, senders: Iterable[str]) -> None:
        """The run sends from these numbers: one lane each, from now (so that the
        concurrency counts them all from the first request)."""
        for sender in senders:
            self._lane(sender)

    def _lane(self, sender: str | None) -> _Lane:
        key = _sender_key(sender) if sender else None
        lane = self._lanes.get(key)
        if lane is None:
            with self._lanes_lock:
                lane = self._lanes.get(key)
                if lane is None:
                    lane = _Lane(self.pacing.rate_for(key), self._clock)
                    self._lanes[key] = lane
        return lane

    @property
    def rate_limit(self) -> float | None:
        """The configured rate of a number without its own (None: no limit)."""
        return self.window.rate if self.window is not None else None

    def rate_in_force(self) -> float | None:
        """The rate allowed now across the numbers sending (each lowered after "too fast"
        answers, the sum at most the account's), None without a limit."""
        lanes = [lane for key, lane in self._lanes.items() if key is not None]
        lanes = lanes or [self._lanes[None]]
        rates = [lane.rate_in_force() for lane in lanes]
        total = None if any(r is None for r in rates) else sum(r for r in rates if r)
        if self.account is None:
            return total
        return self.account.rate if total is None else min(total, self.account.rate)

    def target(self) -> int:
        """Requests to keep in flight now. With a shared schedule, :data:`_SHARED_QUEUED`
        more per sender number (unless pinned): the round trip measured starts at the
        moment in the schedule, so the requests waiting for theirs must be added, or a
        number's moments pass unused while this process waits for answers."""
        target = self.controller.target(self.rate_in_force())
        if self.shared is None or self.controller.pinned is not None:
            return target
        numbers = max(1, len(self._lanes) - 1)  # the default lane, and one per number
        return min(target + _SHARED_QUEUED * numbers, self.controller.max_concurrency)

    def requests(self, planned: Iterable[T]) -> Lookahead[T]:
        """The planned requests, handed out in an order that respects the spacing."""
        return Lookahead(planned, self.spacing, busy=self._sender_busy)

    def _sender_busy(self, request: object) -> bool:
        """Whether the request's sender number already has requests waiting for its limit
        (with several numbers only: one number's backlog must not hold up the others')."""
        if len(self._lanes) <= 2:  # the default lane and at most one number
            return False
        lane = self._lane(getattr(request, "fields", {}).get("from"))
        return lane.waiting >= _WAITING_PER_NUMBER

    def acquire(
        self, numbers: Sequence[str], stop: threading.Event, sender: str | None = None
    ) -> float | None:
        """Wait for the limit of ``sender`` (the number the request goes from), then for
        the account's; return the departure time, None if ``stop`` was set. With a
        schedule shared by several processes (:attr:`shared`), for its moment in that.

        Raises:
            JournalWriteError: the shared schedule could not be written.
        """
        if self.shared is not None:
            return self._acquire_shared(numbers, stop, sender)
        lane = self._lane(sender)
        places: list[tuple[SlidingWindow, float]] = []
        at: float | None = self._clock()
        margin = self.controller.margin()
        if lane.window is not None:
            lane.window.margin = margin
            with self._lanes_lock:
                lane.waiting += 1
            try:
                at = lane.window.acquire(len(numbers), stop, lane.rate_in_force)
            finally:
                with self._lanes_lock:
                    lane.waiting -= 1
            if at is not None:
                places.append((lane.window, at))
        if at is not None and self.account is not None:
            self.account.margin = margin
            at = self.account.acquire(len(numbers), stop)
            if at is not None:
                places.append((self.account, at))
                at = self._both_held(places, lane, len(numbers), stop)
        if at is not None:
            self.spacing.departed(numbers)
            self.controller.departed(at)
            if places:
                self._places[at] = places
        return at

    def _both_held(
        self,
        places: list[tuple[SlidingWindow, float]],
        lane: _Lane,
        count: int,
        stop: threading.Event,
    ) -> float | None:
        """The number's place and the account's, each held from the moment the later of the
        two let the request go (``places``: the number's, if it has a window, then the
        account's; updated in place). A place freed while the request waited for the other
        window (a wait of more than a second) is taken again, waiting for room: never
        assumed, so neither limit is passed in any second."""
        for _ in range(100):  # each round ends with both held, or one freed: bounded
            if len(places) == 1:  # no limit of its own: the account's alone
                return places[0][1]
            (number_window, number_at), (account, account_at) = places
            moved = number_window.restamp(number_at)
            if moved is not None:
                places[0] = (number_window, moved)
                return account_at
            # The number's place freed while the account held the request: wait for it again.
            again = number_window.acquire(count, stop, lane.rate_in_force)
            if again is None:
                return None
            places[0] = (number_window, again)
            moved = account.restamp(account_at)
            if moved is not None:
                places[1] = (account, moved)
                return again
            again = account.acquire(count, stop)
            if again is None:
                return None
            places[1] = (account, again)
        return places[1][1]

    def _acquire_shared(
        self, numbers: Sequence[str], stop: threading.Event, sender: str | None
    ) -> float | None:
        """:meth:`acquire` with a schedule shared by several processes, which stands for
        the local windows: reserve the request's moment in its sender number's lane (at the
        rate in force here) and the account's, by the database's clock, and wait for it.
        A local window after it would move some requests later than their moment, next to
        another process's, and bunch their arrivals."""
        assert self.shared is not None
        lanes: list[tuple[str, float]] = []
        rate = self._lane(sender).rate_in_force()
        if rate is not None:
            lanes.append((f"number:{_sender_key(sender) if sender else ''}", rate))
        if self.account is not None:
            lanes.append(("account", self.account.rate))
        for _ in range(_SHARED_TRIES):
            if not lanes:
                break
            margin = max(SHARED_MARGIN, self.controller.margin())
            # The delay is counted from the end of the statement (after any wait for the
            # other processes' reservations), which is about when its answer arrives.
            delay = self.shared.reserve(lanes, len(numbers), margin)
            slot = self._clock() + max(delay, 0.0)
            if delay > 0 and stop.wait(delay):
                return None
            if self._clock() - slot <= SHARED_TOLERANCE:
                break
            # Woken too late (a busy machine): sent now, it could arrive next to the
            # message of the moment after its own; the moment is given up for a later one.
            self.shared_late += 1
        at = self._clock()
        self.spacing.departed(numbers)
        self.controller.departed(at)
        return at

    def leaving(self, departed: float) -> None:
        """The request that was let go at ``departed`` is about to be written, in this thread.

        A delay in between (more than :data:`~kwa_batch.sending.limiter.MIN_MARGIN`) moves
        its place in each of its windows to now (see :meth:`SlidingWindow.restamp`); and
        once the HTTP client has handed the request to the socket (it calls
        :func:`~kwa_batch.sending.limiter.written`), to that moment, which is also where its
        round trip starts for the margin.
        """
        places = self._places.pop(departed, [])
        if not places:
            return
        if self._clock() - departed > MIN_MARGIN:
            for i, (window, place) in enumerate(places):
                moved = window.restamp(place)
                places[i] = (window, place if moved is None else moved)

        def on_the_wire() -> None:
            for window, place in places:
                window.restamp(place)
            self._wire[departed] = self._clock()

        departing(on_the_wire)

    def answered(self, departed: float, recipients: int, *, observed: bool = True) -> None:
        """The attempt that left at ``departed`` ended: with an HTTP answer (any answer) when
        ``observed``, else without one (a timeout, a dropped connection: not a latency).

        Called in the thread that sent it."""
        departing(None)
        self._places.pop(departed, None)
        wire = self._wire.pop(departed, None)
        self.controller.settled(departed)
        if observed:
            now = self._clock()
            trip = None if wire is None else now - wire
            self.controller.observe(now - departed, recipients, trip)

    def throttled(self, retry_after: float | None = None, sender: str | None = None) -> None:
        """The platform said "too fast" (HTTP 429, or WhatsApp's 130429) to ``sender``."""
        backpressure = self._lane(sender).backpressure
        if backpressure is not None:
            backpressure.throttled(retry_after)
            self.lowest_rate = min(self.lowest_rate, backpressure.rate_in_force())

    def in_flight(self, count: int) -> None:
        """The loop has ``count`` requests in flight (for the peak in :meth:`stats`)."""
        self.peak_in_flight = max(self.peak_in_flight, count)

    def stats(self) -> dict[str, float | int | None]:
        """What the pacing did: ``peak_in_flight``, ``throttles`` ("too fast" answers, all
        numbers), ``lowest_rate`` in force on one number (None without a limit),
        ``latency`` (seconds, averaged); with a schedule shared by several processes,
        ``late_moments`` (moments given up: this process woke too late for them)."""
        pressures = [lane.backpressure for lane in self._lanes.values()]
        limited = [bp for bp in pressures if bp is not None]
        return {
            "peak_in_flight": self.peak_in_flight,
            "throttles": sum(bp.throttles for bp in limited),
            "lowest_rate": round(self.lowest_rate, 1) if limited else None,
            "latency": round(self.controller.latency, 4),
        } | ({"late_moments": self.shared_late} if self.shared is not None else {})

    def finished(self, numbers: Sequence[str], *, reached: bool) -> None:
        """A request finished (see :meth:`RecipientSpacing.finish`)."""
        self.spacing.finish(numbers, reached=reached)

    def postfix(self, in_flight: int) -> str:
        """A short summary for a progress bar, in words: ``≤80/s, 12 in flight`` (the
        rate in force, at most, and how many requests are out waiting for their answer).

        >>> Pacer(Pacing(rate_limit=150)).postfix(12), Pacer(Pacing(rate_limit=None)).postfix(16)
        ('≤150/s, 12 in flight', '16 in flight')
        """
        rate = self.rate_in_force()
        waiting = f"{in_flight} in flight"
        return waiting if rate is None else f"≤{rate:.0f}/s, {waiting}"
