"""``kb.start``: a campaign sent in the background, while the notebook stays usable.

:func:`start` takes :func:`kwa_batch.send`'s arguments and returns a :class:`Job` at once;
``send`` runs in a thread of this process (the kernel), watched by a
:class:`~kwa_batch.sending.progress.Progress`. In a notebook the cell shows the job's
dashboard (:mod:`kwa_batch.dashboard`), refreshed about once a second; it is plain display
data, so a saved notebook keeps the last state.

- ``job.stop()`` stops it as Ctrl-C stops ``send``: no new requests, those in flight
  awaited, the rows left ``not_sent`` (``NOTSENT``), the outcome ``stopped_by="SIGINT"``;
  a second ``job.stop()`` stops waiting (rows still in flight are then ``unknown``).
- ``job.wait()`` returns the results (raising what stopped the job, if anything did);
  ``job.results`` is the results so far, one row per input row, the rows not sent yet
  ``not_sent`` with ``NOTSENT`` and a message saying so; ``job.done``, ``job.outcome``.
- One run per journal: a second ``start`` on the journal of a job still running in this
  kernel is refused in one line (another process's run on it is refused by the journal's
  own lock, raised by ``wait()``). Starting again on the journal once the job ended, after
  a kernel restart too, resumes the campaign: nothing is sent twice.

Jobs still running when the interpreter exits (a kernel restarted or shut down) are
stopped the same way, their requests in flight awaited for a few seconds.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .campaign_funnel import TOTAL, funnel
from .dashboard import FUNNEL_STEPS, Board, LiveDisplay, RateMeter, mimebundle, text
from .database import is_database_url, redact
from .errors import ConfigurationError, KwaBatchError
from .outcome import RunOutcome
from .receipts.store import CallbackStore
from .results import ResultsBuilder, Status
from .sending.progress import NOT_YET, Progress, held_in, watching
from .sending.run import send
from .sending.watch import CallbackSource
from .validation import ValidationReport

__all__ = ["Job", "start"]

#: Seconds between two readings of the receipts store for the dashboard's funnel.
FUNNEL_EVERY = 5.0
#: Seconds a job still running at exit is given to finish its requests in flight.
EXIT_GRACE = 5.0
_PREPARING = "not sent yet: the job is still validating the rows and reading the journal"
_STOPPED_PREPARING = (
    "stopped before sending: the job was still validating the rows; it ends once it has, "
    "sending nothing (job.wait() gives its results; start again to send them)"
)
#: Seconds :meth:`Job.stop` waits for a job still validating before it returns.
STOP_WAIT = 1.0

# The jobs of this process still sending: by journal (one job a journal), else by id.
_running: dict[object, Job] = {}
_running_lock = threading.Lock()


def _journal_key(journal: str | Path) -> str:
    """One key per journal, whatever name points to it."""
    if is_database_url(journal):
        return str(journal)
    return os.path.realpath(os.fspath(journal))


def _journal_name(journal: str | Path) -> str:
    return redact(str(journal)) if is_database_url(journal) else str(journal)


class Job:
    """A campaign sending in the background (see :func:`start`).

    Attributes:
        journal: the journal given to :func:`start` (None without one).
    """

    def __init__(
        self,
        data: pd.DataFrame | ValidationReport,
        client: Any,
        *,
        journal: str | Path | None,
        receipts: CallbackSource | None,
        options: dict[str, Any],
    ) -> None:
        self.journal = journal
        self._data = data
        self._receipts = receipts
        self._progress = Progress()
        self._done = threading.Event()
        self._results: pd.DataFrame | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._meter = RateMeter()
        self._funnel: tuple[dict[str, int], float] | None = None  # the last count, and when
        self._funnel_at = 0.0  # when a count was last asked for
        self._funnel_lock = threading.Lock()
        self._counting = False
        self._held: dict[str, tuple[int, str]] | None = None  # once ended: as the rows say
        self._display: LiveDisplay | None = None
        self._slot: object = _journal_key(journal) if journal is not None else id(self)
        self._thread = threading.Thread(
            target=self._run,
            args=(client, options),
            name="kwa-job",
            daemon=True,  # a kernel that exits is not kept alive: see _stop_at_exit
        )

    def _begin(self, show: bool) -> None:
        if show:
            display = LiveDisplay(self.board)
            if display.show():
                self._display = display
        self._thread.start()

    def _run(self, client: Any, options: dict[str, Any]) -> None:
        try:
            with watching(self._progress):
                self._results = send(
                    self._data,
                    client,
                    journal=self.journal,
                    receipts=self._receipts,
                    progress=False,  # the dashboard is the progress bar
                    **options,
                )
            self._held = held_in(self._results)  # counted once, here, not on each render
        except BaseException as exc:  # raised again by wait() and results, never lost
            self._error = exc
        finally:
            self._ended = time.monotonic()
            with _running_lock:
                if _running.get(self._slot) is self:
                    del _running[self._slot]
            self._done.set()
            if self._display is not None:
                self._display.close()  # the end, for a notebook watched live

    # -- reading it -----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """The job has ended (finished, stopped, or failed: :meth:`wait` says which)."""
        return self._done.is_set()

    @property
    def outcome(self) -> RunOutcome | None:
        """The run's :class:`~kwa_batch.RunOutcome` once it ended (None before, and when
        it failed)."""
        if not self.done or self._results is None:
            return None
        outcome = self._results.attrs.get("run")
        return outcome if isinstance(outcome, RunOutcome) else None

    @property
    def results(self) -> pd.DataFrame:
        """The results so far: one row per input row, those not sent yet ``not_sent``
        (``NOTSENT``, "not sent yet"); once the job ended, what :meth:`wait` returns.

        Raises:
            Exception: what stopped the job, when it failed.
        """
        while not self.done:
            if self._progress.view().phase == "preparing":
                return self._not_yet(_STOPPED_PREPARING if self._progress.stops else _PREPARING)
            so_far = self._progress.results_so_far(timeout=0.5)
            if so_far is not None:
                return so_far
            # Not copied: the loop is busy (asked again) or has ended (the job ends soon).
        return self._final()

    def wait(self, timeout: float | None = None) -> pd.DataFrame:
        """Wait for the job to end and return its results (as :func:`kwa_batch.send`).

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
            Exception: what stopped the job, when it failed (a refused journal, a
                configuration error...), as ``send`` raises it.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(
                f"the job is still sending after {timeout:g} s ({self._progress.view().done:,} "
                "row(s) done): wait longer, or stop it with job.stop()"
            )
        return self._final()

    def stop(self, timeout: float | None = None) -> pd.DataFrame:
        """Stop sending, as Ctrl-C stops :func:`kwa_batch.send`, and return the results.

        No new request leaves from the moment it is asked; those in flight are awaited (up
        to 10 s; calling ``stop`` again stops waiting, and rows still in flight become
        ``unknown``); the rows left are ``not_sent`` with ``NOTSENT``. Starting again with
        the same journal sends them. A job still validating its rows is not waited for
        beyond :data:`STOP_WAIT` seconds: ``stop`` returns every row ``not_sent`` and the
        job ends in the background once validated, sending nothing (:meth:`wait` gives its
        results then).

        Raises:
            TimeoutError: not stopped after ``timeout`` seconds.
        """
        if not self.done:
            self._progress.stop()
            if self._progress.view().phase == "preparing":  # validating: may take long
                grace = STOP_WAIT if timeout is None else min(timeout, STOP_WAIT)
                if not self._done.wait(grace) and self._progress.view().phase == "preparing":
                    return self._not_yet(_STOPPED_PREPARING)
        return self.wait(timeout)

    def _final(self) -> pd.DataFrame:
        if self._display is not None:
            self._display.close()  # the last state, sent from the cell that asks
        if self._error is not None:
            raise self._error
        assert self._results is not None
        return self._results

    def _not_yet(self, message: str) -> pd.DataFrame:
        """Every row ``not_sent`` with ``message``, before the run has validated them."""
        data = self._data.data if isinstance(self._data, ValidationReport) else self._data
        builder = ResultsBuilder(data.index)
        code, _ = NOT_YET
        row = {"status": Status.NOT_SENT.value, "error_code": code.value, "error_message": message}
        for name, value in row.items():  # whole columns at once: a big list stops quickly
            builder.data[name] = [value] * len(data)
        frame = builder.frame()
        if "to" in data.columns:
            frame["to"] = data["to"].astype("string")
        return frame

    # -- the dashboard --------------------------------------------------------------------

    def board(self) -> Board:
        """The dashboard's content now: cheap whatever the campaign's size (the counts
        are kept as rows finish; the funnel is the last one counted, with its age)."""
        view = self._progress.view()
        ended = self._ended if self.done else None
        now = time.monotonic()
        elapsed = (ended or now) - self._started
        self._funnel_now()
        counted = self._funnel  # one read: the counts and their time go together
        shown, age = (counted[0], now - counted[1]) if counted is not None else (None, None)
        if self.done and self._error is not None:
            error = str(self._error) or type(self._error).__name__
            return Board("failed", view, elapsed=elapsed, error=error, funnel=shown, funnel_age=age)
        outcome = self.outcome
        state = "finished" if outcome is not None else view.phase
        if outcome is not None and self._held is not None:  # the rows as they ended
            view = dataclasses.replace(view, held=self._held)
        rate = self._meter.rate(view) if state in ("sending", "stopping") else None
        return Board(state, view, rate, elapsed, outcome, funnel=shown, funnel_age=age)

    def _funnel_now(self) -> None:
        """Have the funnel counted again in a thread of its own, off the rendering path,
        at most every :data:`FUNNEL_EVERY` seconds (and once the job ended: callbacks keep
        coming after the last message left); one count at a time."""
        if not isinstance(self._receipts, CallbackStore):
            return
        now = time.monotonic()
        with self._funnel_lock:
            ended = self._ended is not None and self._funnel_at < self._ended
            if self._counting or (not ended and now - self._funnel_at < FUNNEL_EVERY):
                return
            self._counting, self._funnel_at = True, now
        threading.Thread(target=self._count_funnel, name="kwa-funnel", daemon=True).start()

    def _count_funnel(self) -> None:
        """Count the funnel of the rows so far (the results, once ended) and the store."""
        try:
            ended = self.done
            frame = self._results if ended else self._progress.results_so_far(0.5)
            if frame is None or not isinstance(self._receipts, CallbackStore):
                return
            try:
                counted = funnel(frame, self._receipts, by="country")
            except KwaBatchError:
                return  # a store it cannot read now: the send itself says why, if it matters
            total = counted.loc[TOTAL]
            self._funnel = ({name: int(total[name]) for name in FUNNEL_STEPS}, time.monotonic())
        finally:
            with self._funnel_lock:
                self._counting = False
        if ended and self._display is not None:
            self._display.update()  # the saved notebook's last state has the last count

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return mimebundle(self.board())

    def __repr__(self) -> str:
        return text(self.board()).splitlines()[0]


def start(
    data: pd.DataFrame | ValidationReport,
    client: Any,
    *,
    journal: str | Path | None = None,
    receipts: CallbackSource | None = None,
    progress: bool = True,
    **options: Any,
) -> Job:
    """Send in the background: :func:`kwa_batch.send` in a thread, a :class:`Job` at once.

    Args:
        data, client, journal, receipts: as :func:`kwa_batch.send` takes them.
        progress: show the job's dashboard in the notebook's cell (progress, the rate now
            against the rate asked, rows per status, rows held and until when, the last
            errors with their fixes, the delivery funnel when ``receipts`` is given),
            refreshed about once a second. Outside a notebook nothing is shown: read
            ``job`` (its ``repr``, :meth:`Job.board`) or wait for it.
        **options: every other argument of :func:`kwa_batch.send` (``pacing``,
            ``schedule``, ``retries``, ``sender``, ``rate_limit=``..., and
            :func:`kwa_batch.validate`'s for a DataFrame).

    Returns:
        The :class:`Job`: ``job.stop()``, ``job.wait()``, ``job.results``, ``job.done``,
        ``job.outcome``.

    Raises:
        ConfigurationError: a job of this kernel is still sending with this journal.

    Example:
        >>> job = kb.start(report, emu.client(), journal="run.db")  # doctest: +SKIP
        >>> results = job.wait()  # doctest: +SKIP
    """
    job = Job(data, client, journal=journal, receipts=receipts, options=options)
    with _running_lock:
        other = _running.get(job._slot)
        if other is not None and not other.done and journal is not None:
            raise ConfigurationError(
                f"journal {_journal_name(journal)} is in use by a job of this kernel that is "
                "still sending: wait for it (job.wait()) or stop it (job.stop()) and start "
                "again; two runs on one journal could send the same message twice"
            )
        _running[job._slot] = job
    job._begin(progress)
    return job


def running() -> Sequence[Job]:
    """The jobs of this process still sending."""
    with _running_lock:
        return [job for job in _running.values() if not job.done]


def _stop_at_exit() -> None:
    """Stop the jobs still sending, their requests in flight awaited for a few seconds."""
    for job in running():
        job._progress.stop()
    deadline = time.monotonic() + EXIT_GRACE
    for job in running():
        job._done.wait(max(0.0, deadline - time.monotonic()))


# Before the interpreter joins the sending threads at exit (concurrent.futures' own hook is
# registered so), else a job would send its whole campaign before an atexit hook runs.
getattr(threading, "_register_atexit", atexit.register)(_stop_at_exit)
