"""How a run is stopped: Ctrl-C, SIGTERM and SIGHUP all press the same stop button.

cron, systemd and docker stop a process with SIGTERM, a closed terminal sends SIGHUP, a
person presses Ctrl-C (or the notebook's stop button, which is SIGINT too). Whichever comes,
the handler only counts it; the sending loop polls the count, so a signal never lands in the
middle of recording an outcome. The first press stops the run gracefully (no new requests,
the ones in flight awaited); a second stops waiting.

The same button serves the servers run from the command line (``kwa-batch receive``,
``kwa-batch emulator``), which stop on any of these signals.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["STOP_SIGNALS", "StopButton", "exit_status"]

log = logging.getLogger(__name__)

#: The signals that stop a run, by name (those this platform has).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def exit_status(signum: int) -> int:
    """The shell's exit status for a process stopped by ``signum``: 128 + its number
    (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + int(signum)


class StopButton:
    """A context manager that turns stop signals into a count the caller polls.

    Attributes:
        pressed: how many stop signals arrived.
        signals: their numbers, in order.

    Args:
        on_press: called (in the signal handler, so it must be quick and must not take
            locks) with the signal number and the count so far.
        first_warning: logged at the first press; the second press is logged too.
    """

    def __init__(
        self,
        *,
        on_press: Callable[[int, int], None] | None = None,
        first_warning: str | None = None,
    ) -> None:
        self.pressed = 0
        self.signals: list[int] = []
        self._on_press = on_press
        self._first_warning = first_warning
        self._previous: dict[int, Any] = {}

    @property
    def first(self) -> int | None:
        """The first stop signal that arrived, or None."""
        return self.signals[0] if self.signals else None

    def press(self, signum: int = signal.SIGINT) -> None:
        """Press the button (what a signal does; callable from code and tests too)."""
        self.signals.append(int(signum))
        self.pressed += 1
        if self.pressed == 1 and self._first_warning:
            log.warning("%s: %s", signal.Signals(signum).name, self._first_warning)
        if self._on_press is not None:
            self._on_press(int(signum), self.pressed)

    def _handle(self, signum: int, frame: Any) -> None:
        self.press(signum)

    def __enter__(self) -> StopButton:
        # Signal handlers can only be set from the main thread; elsewhere (a worker thread,
        # an embedded interpreter) the caller still has press() and its own stop flag.
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                try:
                    self._previous[signum] = signal.signal(signum, self._handle)
                except (ValueError, OSError):
                    continue
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
