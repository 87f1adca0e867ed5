"""A run watched from another thread: what a background job and its dashboard read.

:func:`~kwa_batch.sending.run.send` asks :func:`current` for the watcher of the thread it
runs in and calls its hooks: :meth:`RunWatcher.began` once the rows are validated,
:meth:`RunWatcher.sending` when the sending loop starts, :meth:`RunWatcher.finished` for
each request that finished, :meth:`RunWatcher.tick` each time the loop looks for finished
requests (at least ten times a second). Nobody watches by default: the hooks of the base
class do nothing, at the cost of a method call each. :func:`watching` sets a watcher for the
calls made within (a context variable: the thread that runs ``send`` sets it, and nothing
else sees it), so ``send``'s signature stays what it is.

:class:`Progress` is the watcher of :func:`kwa_batch.start`: counters the dashboard reads
(outcome counts, rows held by code with the message that says until when, the last errors),
a stop that presses the run's stop button (the one Ctrl-C presses: no new requests, the
ones in flight awaited), and the results so far, copied by the sending loop's own thread
between two of its updates, so that no row is seen half written.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ERROR_CODES, Code, Policy
from ..results import ResultsBuilder, Status

if TYPE_CHECKING:
    import pandas as pd

    from .pacing import Pacer

__all__ = ["Error", "Progress", "RunWatcher", "View", "current", "held_in", "watching"]

#: What the rows not settled yet say, in the results so far.
NOT_YET = (Code.NOTSENT, "not sent yet: the job is still sending")
#: How many of the last errors a :class:`Progress` keeps.
LAST_ERRORS = 5


class RunWatcher:
    """The hooks a run calls as it goes; these do nothing (nobody watches).

    Attributes:
        stop_again: how to stop waiting for the requests in flight once stopped, in the
            words of whoever watches (None: a signal's, "press Ctrl-C again").
    """

    stop_again: str | None = None

    def began(
        self, results: ResultsBuilder, finish: Callable[[ResultsBuilder], pd.DataFrame]
    ) -> None:
        """The run validated its rows: ``results`` is filled as they settle (by the
        sending loop's thread), ``finish`` turns it (or a copy) into a results frame."""

    def sending(
        self,
        *,
        total: int,
        headline: str,
        counts: Mapping[str, int],
        pacer: Pacer,
        stop: Callable[[], None],
    ) -> None:
        """The sending loop starts: ``total`` rows to send, ``counts`` (updated in place)
        of those finished per status, ``stop`` presses the run's stop button."""

    def finished(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The rows of a request finished with these results fields (the loop's thread)."""

    def tick(self) -> None:
        """The loop's thread is between two updates of the results (often)."""


_NOBODY = RunWatcher()
_CURRENT: ContextVar[RunWatcher | None] = ContextVar("kwa_batch_run_watcher", default=None)


def current() -> RunWatcher:
    """The watcher of runs in this context (one that does nothing by default)."""
    return _CURRENT.get() or _NOBODY


@contextmanager
def watching(watcher: RunWatcher) -> Iterator[RunWatcher]:
    """Runs started within are watched by ``watcher``."""
    token = _CURRENT.set(watcher)
    try:
        yield watcher
    finally:
        _CURRENT.reset(token)


@dataclass(frozen=True)
class Error:
    """One of the last errors: the status of its rows, the code, the message, how many."""

    status: str
    code: str
    message: str
    rows: int


@dataclass(frozen=True)
class View:
    """A run's progress at one moment (:meth:`Progress.view`).

    Attributes:
        phase: ``preparing`` (validating, reading the journal), ``sending``, ``stopping``.
        total: rows this run sends (after the journal and the holds decided before sending).
        done: of those, rows finished (with any status).
        counts: rows per result status: those settled before sending (rejected, from the
            journal, held) and those finished since.
        headline: what the run set out to do.
        rate_asked: the rate asked for (messages per second; None: no limit).
        rate_in_force: the rate allowed now (lower after "too fast" answers).
        held: ``not_sent`` rows by code, with the message of the last one (which says until
            when, or what to do).
        errors: the last errors, newest last.
        at: when (``time.monotonic()``).
    """

    phase: str
    total: int = 0
    done: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    headline: str = ""
    rate_asked: float | None = None
    rate_in_force: float | None = None
    held: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    errors: tuple[Error, ...] = ()
    at: float = 0.0


class Progress(RunWatcher):
    """What a run did so far, for another thread to read; and its stop."""

    stop_again = "call job.stop() again"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: ResultsBuilder | None = None
        self._finish: Callable[[ResultsBuilder], pd.DataFrame] | None = None
        self._before: dict[str, int] = {}
        self._counts: Mapping[str, int] = {}
        self._total = 0
        self._headline = ""
        self._pacer: Pacer | None = None
        self._press: Callable[[], None] | None = None
        self._stops = 0
        self._held: dict[str, tuple[int, str]] = {}
        self._errors: deque[Error] = deque(maxlen=LAST_ERRORS)
        self._reading = threading.Lock()  # one copy asked for at a time
        self._wanted = threading.Event()
        self._copied = threading.Event()
        self._copy: ResultsBuilder | None = None

    # -- the run's side (its thread) ------------------------------------------------------

    def began(
        self, results: ResultsBuilder, finish: Callable[[ResultsBuilder], pd.DataFrame]
    ) -> None:
        self._results, self._finish = results, finish

    def sending(
        self,
        *,
        total: int,
        headline: str,
        counts: Mapping[str, int],
        pacer: Pacer,
        stop: Callable[[], None],
    ) -> None:
        before: dict[str, int] = {}
        held: dict[str, tuple[int, str]] = {}
        if self._results is not None:  # settled before sending: rejected, journal, held
            data = self._results.data
            for status, code, message in zip(
                data["status"], data["error_code"], data["error_message"], strict=True
            ):
                if status is None:
                    continue
                before[status] = before.get(status, 0) + 1
                if status == Status.NOT_SENT and _held(code):
                    held[code] = (held.get(code, (0, ""))[0] + 1, str(message or ""))
        with self._lock:
            self._before, self._held = before, held
            self._counts, self._total, self._headline = counts, total, headline
            self._pacer = pacer
            self._press = stop
            stops = self._stops
        for _ in range(stops):  # stopped while it was getting ready
            stop()

    def finished(self, rows: Sequence[Mapping[str, Any]]) -> None:
        failed = [row for row in rows if row.get("error_code") not in (None, Code.NOTSENT)]
        if not failed:
            return
        with self._lock:
            for row in failed:
                code, message = str(row["error_code"]), str(row.get("error_message") or "")
                if row["status"] == Status.NOT_SENT and _held(code):
                    count = self._held.get(code, (0, ""))[0]
                    self._held[code] = (count + 1, message)
                    continue
                last = self._errors[-1] if self._errors else None
                if last is not None and (last.code, last.message) == (code, message):
                    self._errors[-1] = Error(last.status, code, message, last.rows + 1)
                else:
                    self._errors.append(Error(str(row["status"]), code, message, 1))

    def tick(self) -> None:
        if self._wanted.is_set() and self._results is not None:
            clone = copy.copy(self._results)
            clone.data = {name: list(values) for name, values in self._results.data.items()}
            self._copy = clone
            self._wanted.clear()
            self._copied.set()

    # -- the reader's side (any thread) ---------------------------------------------------

    def stop(self) -> int:
        """Press the run's stop button (now, or as soon as it starts sending); how many
        times it was pressed. The first press stops the run as Ctrl-C does (no new
        requests, those in flight awaited); a second stops waiting for them."""
        with self._lock:
            self._stops += 1
            press = self._press
            stops = self._stops
        if press is not None:
            press()
        return stops

    @property
    def stops(self) -> int:
        """How many times :meth:`stop` was called."""
        return self._stops

    def view(self) -> View:
        """The progress now."""
        with self._lock:
            counts = dict(self._before)
            live = dict(self._counts)
            held = dict(self._held)
            errors = tuple(self._errors)
            pacer, total, headline = self._pacer, self._total, self._headline
        for status, n in live.items():
            counts[status] = counts.get(status, 0) + n
        if pacer is None:
            return View("preparing", counts=counts, held=held, errors=errors, at=time.monotonic())
        return View(
            "stopping" if self._stops else "sending",
            total=total,
            done=sum(live.values()),
            counts=counts,
            headline=headline,
            rate_asked=pacer.rate_limit,
            rate_in_force=_rate_in_force(pacer),
            held=held,
            errors=errors,
            at=time.monotonic(),
        )

    def results_so_far(self, timeout: float = 2.0) -> pd.DataFrame | None:
        """One row per input row: those settled with their results, the others
        ``not_sent`` (:data:`NOT_YET`); None when the sending loop is not running (not
        yet, or no more) and cannot copy them within ``timeout`` seconds."""
        if self._results is None or self._finish is None:
            return None
        with self._reading:
            self._copied.clear()
            self._wanted.set()
            if not self._copied.wait(timeout):
                self._wanted.clear()
                return None
            clone, self._copy = self._copy, None
        assert clone is not None
        data = clone.data
        code, message = NOT_YET
        for i, status in enumerate(data["status"]):
            if status is None:
                data["status"][i] = Status.NOT_SENT.value
                data["error_code"][i] = code.value
                data["error_message"][i] = message
                data["attempts"][i] = 0
        return self._finish(clone)


def held_in(results: pd.DataFrame) -> dict[str, tuple[int, str]]:
    """The rows of a results frame held back, by code: how many, and the last one's message
    (which says until when, or what to do)."""
    codes = results["error_code"]
    held = results["status"].eq(Status.NOT_SENT).fillna(False) & codes.map(_held).astype(bool)
    rows = results.loc[held, ["error_code", "error_message"]].astype("object")
    grouped = rows.groupby("error_code", sort=True)["error_message"]
    return {str(code): (len(messages), str(messages.iloc[-1] or "")) for code, messages in grouped}


def _held(code: object) -> bool:
    """A ``not_sent`` row with this code is held back (quiet hours, daily limit, a held
    template, expired, opted out...), rather than stopped or failed to reach the API."""
    entry = ERROR_CODES.get(str(code))
    return entry is not None and entry.policy in (Policy.WAIT, Policy.NEVER)


def _rate_in_force(pacer: Pacer) -> float | None:
    """The pacer's rate now, read from another thread (None while its lanes change)."""
    try:
        return pacer.rate_in_force()
    except RuntimeError:  # a lane added during the read: the next view has it
        return None
