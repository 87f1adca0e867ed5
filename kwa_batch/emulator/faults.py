"""The emulator's misbehaviour on purpose: faults, queued or drawn, and the API's rate limit.

(``Emulator`` is :class:`kwa_batch.emulator.server.Emulator`; :class:`Misbehaviour` is its
engine, and :class:`~kwa_batch.emulator.behaviour.FaultSettings` its settings.)

``Emulator(faults={name: probability})`` makes the server misbehave the way a real one
sometimes does; :meth:`Emulator.inject` queues a fault for the next valid requests, for
tests that need it exactly. Faults only strike requests that passed authentication (a 401
stays a 401). Two happen *before* the message is processed, so nothing is recorded and a
client may safely send it again:

* ``"429"``: HTTP 429 ``E429`` with a ``Retry-After`` header of ``retry_after`` seconds.
* ``"503"``: HTTP 503 ``E503`` (no ``Retry-After``).

Three happen *after* the message is processed (it is in the ledger), so the client cannot
tell whether it was sent and must not blindly send it again; they strike only valid
requests (a 400 stays a 400):

* ``"500"``: HTTP 500 ``E500``.
* ``"reset"``: the connection is aborted without any answer (TCP RST: ``SO_LINGER`` 0);
  the client sees a connection reset after its request went out.
* ``"late"``: the normal 200 answer, ``late_delay`` seconds later than usual (meant to be
  longer than the client's read timeout).

Probabilities are per request and in ``[0, 1]``. ``429`` and ``503`` are drawn (one draw,
disjoint ranges, so their probabilities add up to at most 1) for every authenticated
request, before the body is checked: a bad request may get a 429 first, as behind a
real gateway. ``500``, ``reset`` and ``late`` are drawn the same way (adding up to at most
1) for valid requests, after the rate limit. Draws come from a generator seeded with
``seed``: a client sending one request at a time sees the same faults on the same
requests every run; concurrent clients see the same sequence of draws dealt out in
arrival order. Injected faults are served first, in the order queued, each to the next
valid request (a ``"429"`` or ``"503"`` injected is served after the checks, to a valid
request, still without recording it); while any is queued no fault is drawn.

``rate_limit`` is the server's own limit in messages per second (a request to n recipients
counts n), over any one-second window of arrival times, counting only the messages it
accepted. A valid request that would exceed it gets HTTP 429 ``E429`` with ``Retry-After``
set to the seconds until enough capacity frees, and is not processed. A request with more
recipients than the whole limit is accepted only when the window is empty.

:attr:`Emulator.faults_injected` counts each fault served and
:attr:`Emulator.rate_limited` the requests refused by the rate limit; :meth:`Emulator.reset`
zeroes them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace

from .answers import Refusal, seconds_text
from .behaviour import AFTER_PROCESSING, BEFORE_PROCESSING, FAULTS, FaultSettings, LimitSettings

__all__ = ["FaultControls", "Misbehaviour"]

log = logging.getLogger(__name__)


def _cuts(
    probabilities: Mapping[str, float], names: Iterable[str]
) -> tuple[tuple[float, str], ...]:
    """Cumulative upper bounds of each fault's range of [0, 1), skipping probability 0."""
    cuts: list[tuple[float, str]] = []
    total = 0.0
    for name in names:
        probability = probabilities.get(name, 0.0)
        if probability > 0:
            total += probability
            cuts.append((total, name))
    return tuple(cuts)


def _pick(cuts: tuple[tuple[float, str], ...], draw: float) -> str | None:
    for upper, name in cuts:
        if draw < upper:
            return name
    return None


class Misbehaviour:
    """The faults and the rate limit of one emulator, thread-safe.

    Args:
        settings: the fault probabilities, ``retry_after`` and ``late_delay``.
        rate_limit: the API's own limit in messages per second (None: no limit).
        seed: seeds the draws (one sequence per seed, whatever the request ids).
    """

    def __init__(self, settings: FaultSettings, rate_limit: float | None, seed: int | None) -> None:
        self._rng = random.Random(None if seed is None else f"{seed}/faults")
        self._lock = threading.Lock()  # guards the queue, the draws, counters, window
        self._before: tuple[tuple[float, str], ...] = ()
        self._after: tuple[tuple[float, str], ...] = ()
        self.settings = settings
        self.rate_limit = rate_limit
        self._queue: deque[str] = deque()
        self._served = dict.fromkeys(FAULTS, 0)
        self._rate_limited = 0
        self._window: deque[tuple[float, int]] = deque()  # (arrival, messages) in the last second
        self._window_total = 0

    @property
    def settings(self) -> FaultSettings:
        """The fault settings in force; assign new ones to change them while serving."""
        return self._settings

    @settings.setter
    def settings(self, settings: FaultSettings) -> None:
        probabilities = settings.probabilities
        before = _cuts(probabilities, BEFORE_PROCESSING)
        after = _cuts(probabilities, AFTER_PROCESSING)
        with self._lock:
            self._settings, self._before, self._after = settings, before, after

    @property
    def served(self) -> dict[str, int]:
        """How many times each fault was served (every name of ``FAULTS``, 0 included)."""
        with self._lock:
            return dict(self._served)

    @property
    def rate_limited(self) -> int:
        """Requests refused with 429 by the rate limit (not counted as faults)."""
        with self._lock:
            return self._rate_limited

    @property
    def queued(self) -> tuple[str, ...]:
        """Faults queued by :meth:`inject` and not served yet, next first."""
        with self._lock:
            return tuple(self._queue)

    def inject(self, fault: str, times: int = 1) -> None:
        """Serve ``fault`` to the next ``times`` valid requests, after any already queued.

        Raises:
            ValueError: an unknown fault name, or ``times`` less than 1.
        """
        name = str(fault)
        if name not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {', '.join(FAULTS)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number, 1 or more, not {times!r}")
        with self._lock:
            self._queue.extend([name] * times)

    def clear_queue(self) -> None:
        """Empty the :meth:`inject` queue."""
        with self._lock:
            self._queue.clear()

    def reset(self) -> None:
        """Empty the queue and the rate limit's window, and zero the counters."""
        with self._lock:
            self._queue.clear()
            self._served = dict.fromkeys(FAULTS, 0)
            self._rate_limited = 0
            self._window.clear()
            self._window_total = 0

    def refusal(self, fault: str) -> Refusal:
        """The answer of the fault ``"429"``, ``"503"`` or ``"500"``."""
        if fault == "429":
            seconds = seconds_text(self._settings.retry_after)
            return Refusal(
                429,
                "E429",
                {"request": f"too many requests (fault 429): retry after {seconds} seconds"},
                headers=(("Retry-After", seconds),),
            )
        if fault == "503":
            return Refusal(503, "E503", {"request": "service unavailable (fault 503)"})
        return Refusal(
            500, "E500", {"request": "internal error (fault 500), after processing the request"}
        )

    def before_checks(self) -> Refusal | None:
        """Draw the faults served before the checks (``429``, ``503``), unless any fault is
        queued; None when none strikes."""
        with self._lock:
            if not self._before or self._queue:
                return None
            fault = _pick(self._before, self._rng.random())
            if fault is None:
                return None
            self._served[fault] += 1
        log.debug("fault %s served before processing", fault)
        return self.refusal(fault)

    def admit(self, messages: int) -> Refusal | str | None:
        """Decide a valid request's fate: a refusal (not processed), a fault to serve after
        processing it, or None.

        In order: a queued ``429``/``503``; the rate limit; a queued fault served after
        processing; a random one.
        """
        with self._lock:
            if not (self._queue or self._after or self.rate_limit is not None):
                return None
            head = self._queue[0] if self._queue else None
            if head in BEFORE_PROCESSING:
                self._queue.popleft()
                self._served[head] += 1
                return self.refusal(head)
            limit = self.rate_limit
            if limit is not None:
                wait = self._take_capacity(messages, limit)
                if wait is not None:
                    self._rate_limited += 1
                    seconds = seconds_text(wait)
                    return Refusal(
                        429,
                        "E429",
                        {
                            "request": f"over the limit of {limit:g} messages per second: "
                            f"retry after {seconds} seconds"
                        },
                        headers=(("Retry-After", seconds),),
                    )
            if head is not None:
                self._queue.popleft()
            elif self._after:
                head = _pick(self._after, self._rng.random())
            if head is not None:
                self._served[head] += 1
        if head is not None:
            log.debug("fault %s served after processing", head)
        return head

    def _take_capacity(self, messages: int, limit: float) -> float | None:
        """Count ``messages`` in the one-second window, or return the seconds to wait.

        Called with the lock held.
        """
        now = time.monotonic()
        window = self._window
        horizon = now - 1.0
        while window and window[0][0] <= horizon:
            self._window_total -= window.popleft()[1]
        if self._window_total + messages <= limit or not window:
            window.append((now, messages))
            self._window_total += messages
            return None
        excess = self._window_total + messages - limit
        freed = 0
        for arrived, count in window:
            freed += count
            if freed >= excess:
                return arrived + 1.0 - now
        return window[-1][0] + 1.0 - now  # more than the whole limit: wait for an empty window


class FaultControls:
    """The fault settings, the rate limit and their counters as
    :class:`~kwa_batch.emulator.server.Emulator` shows them (``emu.faults``,
    ``emu.inject(...)``, ``emu.rate_limit``...), over its :class:`Misbehaviour`."""

    _misbehaviour: Misbehaviour

    @property
    def rate_limit(self) -> float | None:
        """The API's own limit in messages per second (None: none); assignable."""
        return self._misbehaviour.rate_limit

    @rate_limit.setter
    def rate_limit(self, limit: float | None) -> None:
        self._misbehaviour.rate_limit = LimitSettings(rate_limit=limit).rate_limit

    @property
    def fault_settings(self) -> FaultSettings:
        """The fault settings in force (probabilities, ``retry_after``, ``late_delay``)."""
        return self._misbehaviour.settings

    @property
    def faults(self) -> dict[str, float]:
        """The fault probabilities in force, ``{name: probability}`` (a copy).

        Assign a new mapping to change them while serving (it is validated as in the
        constructor); :meth:`clear_faults` sets them all to 0.
        """
        return dict(self._misbehaviour.settings.probabilities)

    @faults.setter
    def faults(self, faults: Mapping[str, float]) -> None:
        self._misbehaviour.settings = replace(self.fault_settings, probabilities=faults)

    @property
    def retry_after(self) -> float:
        """Seconds announced in ``Retry-After`` by the fault ``"429"``; assignable."""
        return self.fault_settings.retry_after

    @retry_after.setter
    def retry_after(self, seconds: float) -> None:
        self._misbehaviour.settings = replace(self.fault_settings, retry_after=seconds)

    @property
    def late_delay(self) -> float:
        """Seconds added to the delay of a ``"late"`` answer; assignable."""
        return self.fault_settings.late_delay

    @late_delay.setter
    def late_delay(self, seconds: float) -> None:
        self._misbehaviour.settings = replace(self.fault_settings, late_delay=seconds)

    @property
    def faults_injected(self) -> dict[str, int]:
        """How many times each fault was served (every fault name, 0 included)."""
        return self._misbehaviour.served

    @property
    def rate_limited(self) -> int:
        """Requests refused with 429 by :attr:`rate_limit` (not counted as faults)."""
        return self._misbehaviour.rate_limited

    @property
    def queued_faults(self) -> tuple[str, ...]:
        """Faults queued by :meth:`inject` and not served yet, next first."""
        return self._misbehaviour.queued

    def inject(self, fault: str, times: int = 1) -> None:
        """Serve ``fault`` to the next ``times`` valid requests, after any already queued.

        Injected faults come before random draws (none is drawn while any is queued). A
        valid request is one that passes authentication and every check: a queued
        ``"429"`` or ``"503"`` is served to it without recording it, a ``"500"``,
        ``"reset"`` or ``"late"`` after recording it.

        Raises:
            ValueError: an unknown fault name, or ``times`` less than 1.
        """
        self._misbehaviour.inject(fault, times)

    def clear_faults(self) -> None:
        """No more faults: empty the :meth:`inject` queue and set every probability to 0.

        The counters (:attr:`faults_injected`) and the rate limit are kept.
        """
        self._misbehaviour.clear_queue()
        self.faults = {}
