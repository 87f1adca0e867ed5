"""A background job's dashboard: one picture of a run, as plain text and as HTML.

:class:`Board` is what the dashboard shows at one moment: the progress, the rate now
against the rate asked, the rows per status, the rows held back (with the message that says
until when) and the last errors with what to do about each (:func:`kwa_batch.actions.
describe`: :data:`kwa_batch.ERROR_CODES`' fix, else the outcome policy's), the delivery
funnel of a receipts store, and, once finished, the outcome's next step.

:func:`mimebundle` renders it as ``text/plain`` and ``text/html`` (no script, no style
fetched: a table, and a ``<progress>`` bar). :class:`LiveDisplay` shows it in a notebook's
cell through a display handle and replaces it about once a second: a display's data is
what a notebook saves and what ``nbconvert`` exports, so a saved notebook shows the last
state, never the blank gap a widget leaves without a kernel.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .actions import describe
from .outcome import RunOutcome
from .results import STATUSES
from .sending.progress import View

__all__ = ["Board", "LiveDisplay", "RateMeter", "mimebundle", "text"]

#: The funnel's steps shown, in order (the total row of :func:`kwa_batch.funnel`).
FUNNEL_STEPS = ("sent", "delivered", "read", "replied", "failed")
#: Seconds over which the rate now is measured.
RATE_WINDOW = 5.0


@dataclass(frozen=True)
class Board:
    """What a dashboard shows at one moment.

    Attributes:
        state: ``preparing``, ``sending``, ``stopping``, ``finished`` or ``failed``.
        view: the run's progress (:class:`~kwa_batch.sending.progress.View`).
        rate_now: messages finished per second over the last seconds (None: not known yet).
        elapsed: seconds since the job started.
        outcome: the run's outcome, once finished.
        error: why the job failed, in its one line.
        funnel: the funnel's total counts (``sent``, ``delivered``, ``read``...), when a
            receipts store was given.
        funnel_age: seconds since the funnel was counted (it is counted every few
            seconds, off the rendering path).
    """

    state: str
    view: View
    rate_now: float | None = None
    elapsed: float = 0.0
    outcome: RunOutcome | None = None
    error: str | None = None
    funnel: Mapping[str, int] | None = field(default=None)
    funnel_age: float | None = None


class RateMeter:
    """The rate now: rows finished per second over the last :data:`RATE_WINDOW` seconds."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._seen: deque[tuple[float, int]] = deque()

    def rate(self, view: View) -> float | None:
        """Note ``view`` and give the rate since the oldest view of the window."""
        self._seen.append((view.at, view.done))
        while len(self._seen) > 2 and view.at - self._seen[0][0] > self.window:
            self._seen.popleft()
        first_at, first_done = self._seen[0]
        if view.at - first_at < 0.5:
            return None
        return (view.done - first_done) / (view.at - first_at)


def _counts(board: Board) -> dict[str, int]:
    counts = board.outcome.counts if board.outcome is not None else board.view.counts
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def _rate(value: float | None, unit: str = "/s") -> str:
    return "no limit" if value is None else f"{value:,.0f}{unit}"


def _headline(board: Board) -> str:
    view = board.view
    took = f"{board.elapsed:,.0f} s"
    if board.state == "failed":
        return f"kwa_batch job: failed after {took}"
    if board.state == "preparing":
        return f"kwa_batch job: preparing (validating, reading the journal) for {took}"
    if board.outcome is not None:
        how = f"stopped ({board.outcome.stopped_by})" if board.outcome.stopped_by else "finished"
        return f"kwa_batch job: {how} after {took}, exit code {board.outcome.exit_code}"
    share = f" ({view.done / view.total:.0%})" if view.total else ""
    return f"kwa_batch job: {board.state}, {view.done:,} of {view.total:,} row(s){share}, {took}"


def _lines(board: Board) -> list[tuple[str, str]]:
    """The dashboard's lines after the headline, as (label, text)."""
    view, lines = board.view, []
    if view.headline:
        lines.append(("run", view.headline))
    if board.state in ("sending", "stopping"):
        now = "measuring" if board.rate_now is None else f"{board.rate_now:,.1f}/s"
        asked = _rate(view.rate_asked)
        rate = f"{now} now, {asked} asked"
        if view.rate_in_force is not None and view.rate_in_force != view.rate_asked:
            rate += f" ({_rate(view.rate_in_force)} in force after 'too fast' answers)"
        lines.append(("rate", rate))
    counts = _counts(board)
    lines.append(("rows", " · ".join(f"{k} {v:,}" for k, v in counts.items())))
    for code, (rows, message) in sorted(view.held.items()):
        lines.append(("held", f"{code}: {rows:,} row(s), {message}"))
    for error in view.errors:
        fix = describe(error.code)
        said = f"{error.code} ({error.status}, {error.rows:,} row(s)): {error.message}"
        lines.append(("error", f"{said} → {fix}" if fix else said))
    if board.funnel is not None:
        steps = " → ".join(f"{step} {board.funnel.get(step, 0):,}" for step in FUNNEL_STEPS)
        if board.funnel_age is not None:
            steps += f" (counted {board.funnel_age:,.0f} s ago)"
        lines.append(("funnel", steps))
    if board.error:
        lines.append(("error", board.error))
    if board.outcome is not None:
        lines.append(("next", board.outcome.next_step or board.outcome.steps()[0]))
    return lines


def text(board: Board) -> str:
    """The dashboard in plain text (what a notebook shows without HTML, and a terminal)."""
    body = [f"  {label:<7}{words}" for label, words in _lines(board)]
    return "\n".join([_headline(board), *body])


def _html(board: Board) -> str:
    view = board.view
    bar = ""
    if view.total:
        bar = (
            f'<progress value="{view.done}" max="{view.total}" style="width:100%">'
            f"{view.done}/{view.total}</progress>"
        )
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{html.escape(label)}</th>'
        f'<td style="text-align:left">{html.escape(words)}</td></tr>'
        for label, words in _lines(board)
    )
    return (
        f'<div class="kwa-batch-job"><strong>{html.escape(_headline(board))}</strong>'
        f"{bar}<table>{rows}</table></div>"
    )


def mimebundle(board: Board) -> dict[str, str]:
    """The dashboard as a display's data: ``text/plain`` and ``text/html``."""
    return {"text/plain": text(board), "text/html": _html(board)}


class LiveDisplay:
    """A dashboard in a notebook's cell, replaced about every ``every`` seconds.

    Args:
        board: gives the board to show now (called from the refreshing thread, and from
            whoever calls :meth:`update`).
        every: seconds between two refreshes.
    """

    def __init__(self, board: Callable[[], Board], every: float = 1.0) -> None:
        self._board = board
        self._every = every
        self._handle: Any = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def show(self) -> bool:
        """Display the dashboard in the cell that runs now and keep it fresh; False (and
        nothing shown) outside a notebook's kernel."""
        shell = _kernel_shell()
        if shell is None:
            return False
        from IPython import display as ipython_display

        display: Callable[..., Any] = ipython_display.display
        self._handle = display(mimebundle(self._board()), raw=True, display_id=True)
        self._thread = threading.Thread(target=self._refresh, name="kwa-dashboard", daemon=True)
        self._thread.start()
        return True

    def update(self) -> None:
        """Show the board as it is now (in the calling thread: a cell that waits for the
        job gets the last state into the notebook it saves)."""
        if self._handle is None:
            return
        bundle = mimebundle(self._board())
        with self._lock:
            self._handle.update(bundle, raw=True)

    def close(self) -> None:
        """Stop refreshing, after one last update from the calling thread."""
        self._closing.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.update()

    def _refresh(self) -> None:
        while not self._closing.wait(self._every):
            started = time.monotonic()
            self.update()
            # Never more than a tenth of the time: a large board slows its own refresh.
            self._closing.wait(max(0.0, (time.monotonic() - started) * 9))


def _kernel_shell() -> Any:
    """IPython's shell when running in a kernel that displays rich data, else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None
