"""The campaign's rules, decided again at the moment each request leaves.

A campaign of 100,000 rows at 80/s takes 21 minutes, a million three and a half hours: the
holds of :mod:`~kwa_batch.sending.schedule` (expiry, ``not_before``, quiet hours, the daily
limit) and the opt-outs cannot be decided once, when the run starts. :class:`Departure` decides
them for each request twice: when a worker picks it up (so that a row that may not go does
not wait for the rate limit at all) and again right after the rate limit let it go, just
before the journal marks it in flight and it is written to the wire — against the clock of
that moment (:func:`kwa_batch.sending.clock.now`).

- **Expiry**: from the expiry on, nothing leaves; the rows still queued are ``not_sent``
  ``KWA029`` (never sent, not even by a later run).
- **not_before**: before it nothing leaves (``KWA028``).
- **Quiet hours**, in every time zone of the number (``KWA027``, ``KWA031``): judged per set
  of zones and kept until the verdict can change (the next start of the quiet hours in any
  of the zones), so the check costs a dictionary look-up per recipient.
- **The daily limit** (``KWA030``): a moving 24-hour window of unique recipients, started
  from the journals (sent, in flight, unknown: see :mod:`~kwa_batch.sending.history`) and
  updated, under a lock, by every business-initiated request that leaves: two workers can
  never both take the last place.
- **Opt-outs that arrive while the run sends** (``KWA025``): a live source (a receipts store
  given to ``validate(suppress=...)``, see :class:`LiveOptOuts`) is read again every
  :data:`OPT_OUT_SECONDS` in a background thread (skipped while the store says, by its
  ``version()``, that nothing changed); a STOP stored at minute 10 holds that
  customer's rows still queued at minute 10 (a store so large that a read takes more than a
  fifth of a second is read less often: reading never takes more than a tenth of the time).
  A read that fails stops the run (the rows left are ``not_sent``): sending on without
  knowing who opted out could message one of them.
- **Callbacks that say stop** (``KWA033``) **or hold a template** (``KWA034``), received
  while the run sends: a receipts store given to ``send(receipts=...)`` is watched by
  :class:`~kwa_batch.sending.watch.ReceiptsWatch`; a stop code (131048...) closes the
  campaign, a paused or disabled template holds that template's rows.

A request whose recipients all may go leaves; one whose recipients all may not is finished at
once with their codes; a grouped request with both is split (see
:func:`~kwa_batch.sending.run.send`), and each part is decided again when it leaves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from ..errors import Code
from . import clock
from .daily_limit import DailyWindow
from .schedule import (
    BUSINESS_INITIATED,
    EXPIRED,
    LIMIT,
    NOT_YET,
    Holds,
    quiet_verdict,
    when,
    zones_of,
)
from .watch import ReceiptsWatch, StopCode

__all__ = ["OPT_OUT_SECONDS", "Departure", "LiveOptOuts", "Verdict"]

log = logging.getLogger(__name__)

#: Seconds between two reads of a live opt-out source.
OPT_OUT_SECONDS = 2.0
#: The code of a row to a number that opted out while the run was sending.
OPTED_OUT = Code.OPTED_OUT
#: The code of the rows left when a live opt-out source could no longer be read.
UNREADABLE = Code.NOTSENT
#: The code of the rows left when a callback said to stop sending from the number.
STOPPED = Code.STOPPED
#: The code of a template's rows held when a callback said it was paused or disabled.
TEMPLATE_HELD = Code.TEMPLATE_HELD
# A quiet-hours verdict is kept at most this long, whatever its zones say (leap seconds,
# tz database quirks): a bound on how stale it can be.
_KEEP = timedelta(minutes=15)
_HELD_AGAIN = timedelta(seconds=1)
# Seconds before each new try of a live opt-out read that failed (then the run stops).
_RETRIES = (0.1, 0.3)


@dataclass(frozen=True)
class Verdict:
    """Why a row may not leave now: its code and the message for the results."""

    code: str
    message: str


class LiveOptOuts:
    """Opt-out sources read again while the run sends.

    Args:
        sources: objects whose ``opt_outs()`` returns :func:`kwa_batch.opt_outs`' frame (an
            open :class:`~kwa_batch.receipts.store.CallbackStore`, or
            :class:`kwa_batch.receipts.optouts.OptOutSource` for a store's path).
        default_region: for numbers written nationally (as in validation).
        every: seconds between two reads.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        default_region: str | None = None,
        every: float = OPT_OUT_SECONDS,
    ) -> None:
        self.sources = tuple(sources)
        self.default_region = default_region
        self.every = every
        self.failure: str | None = None
        self._numbers: dict[str, str] = {}
        self._seen: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LiveOptOuts({list(self.sources)!r}, every={self.every})"

    def start(self) -> LiveOptOuts:
        """Read once now (an unreadable source raises), then every ``every`` seconds."""
        self._numbers = self._read()
        self._thread = threading.Thread(target=self._loop, name="kwa-opt-outs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)  # a read under way ends on its own (daemon)

    def message(self, number: str) -> str | None:
        """Why this number may not be messaged now (None: it may)."""
        return self._numbers.get(number)

    def _version(self) -> tuple[Any, ...] | None:
        """The sources' tokens (``version()``), or None when one has none: then always read."""
        tokens = []
        for source in self.sources:
            version = getattr(source, "version", None)
            if not callable(version):
                return None
            tokens.append(version())
        return tuple(tokens)

    def _read(self) -> dict[str, str]:
        from ..validation.suppression import load_suppression

        self._seen = self._version()  # before reading: a change meanwhile is read next time
        frame = load_suppression(*self.sources, default_region=self.default_region)
        stamps = pd.to_datetime(frame["since"], utc=True)  # empty: not typed as times
        since = stamps.dt.strftime(" since %Y-%m-%d %H:%M UTC").fillna("")
        texts = (
            "this recipient opted out" + since + " (" + frame["reason"] + "), while the run "
            "was sending: not sent; remove the row"
        )
        return dict(zip(frame["number"], texts, strict=True))

    def _loop(self) -> None:
        pause = self.every
        while not self._stop.wait(pause):
            started = time.monotonic()
            try:
                if self._seen is not None and self._version() == self._seen:
                    continue  # nothing changed since the last read
                found = self._read_again()
            except Exception as exc:
                if self._stop.is_set():
                    return  # the run ended meanwhile: nothing left to hold
                self.failure = (
                    f"the opt-outs of {', '.join(map(repr, self.sources))} could not be read "
                    f"again ({exc}): the rest was not sent, so that nobody who opted out is "
                    "messaged; run the same command again"
                )
                log.error("%s", self.failure)
                return
            self._numbers = found  # one assignment: readers see the old or the new dict
            # A store so large that reading it takes long is read less often: the reads
            # never take more than a tenth of the sending's time.
            pause = max(self.every, 9 * (time.monotonic() - started))

    def _read_again(self) -> dict[str, str]:
        """:meth:`_read`, tried again twice after a failure (a store locked for a moment)."""
        for wait in _RETRIES:
            try:
                return self._read()
            except Exception:
                if self._stop.wait(wait):
                    raise
        return self._read()


class Departure:
    """Decides, at the moment a request leaves, which of its rows may go (see the module).

    Args:
        holds: the run's holds (anchored to the journal's first run).
        recent: recipient → when a message to them may last have gone (history and journal).
        opt_outs: live opt-out sources, started (or None).
        watch: the receipts store watched for stop and template codes, started (or None).
    """

    def __init__(
        self,
        holds: Holds,
        recent: dict[str, datetime] | None = None,
        opt_outs: LiveOptOuts | None = None,
        watch: ReceiptsWatch | None = None,
    ) -> None:
        self.holds = holds
        self.opt_outs = opt_outs
        self.watch = watch
        # Message id -> template name, for the template messages this run sent.
        self._template_of: dict[str, str] = {}
        limit = holds.daily_limit
        self._window = DailyWindow(limit, recent or {}) if limit is not None else None
        # Zones -> (verdict, when it was decided, until when it holds).
        self._quiet: dict[tuple[ZoneInfo, ...], tuple[Verdict | None, datetime, datetime]] = {}
        self._lock = threading.Lock()
        #: Rows held at departure, by code.
        self.counts: dict[str, int] = {}

    def closed(self) -> Verdict | None:
        """A verdict for every row left, now (expired, not started, a callback said stop,
        opt-outs or receipts unreadable), or None."""
        now = clock.now()
        holds = self.holds
        if self.opt_outs is not None and self.opt_outs.failure is not None:
            return Verdict(UNREADABLE, self.opt_outs.failure)
        if self.watch is not None:
            if self.watch.stop_code is not None:
                return _stopped(self.watch.stop_code)
            if self.watch.failure is not None:
                return Verdict(UNREADABLE, self.watch.failure)
        if holds.expires is not None and now >= holds.expires:
            return Verdict(EXPIRED, f"the campaign expired at {when(holds.expires)}: never sent")
        if holds.not_before is not None and now < holds.not_before:
            return Verdict(NOT_YET, f"the campaign starts at {when(holds.not_before)}")
        return None

    def seconds_open(self) -> float:
        """Seconds until the campaign expires (``inf`` without an expiry; 0 once it has)."""
        if self.holds.expires is None:
            return math.inf
        return max(0.0, (self.holds.expires - clock.now()).total_seconds())

    def sent(self, message_ids: Iterable[str | None], template: str | None) -> None:
        """Note the message ids of a template's request that was sent: a callback that says
        the template was paused or disabled is tied to the template by them."""
        if template is None or self.watch is None:
            return
        for message_id in message_ids:
            if message_id is not None:
                self._template_of[message_id] = template

    def template_held(self, template: str | None) -> Verdict | None:
        """Why this template's rows may not leave now (paused or disabled), or None."""
        if template is None or self.watch is None or not self.watch.template_codes:
            return None
        for message_id, said in self.watch.template_codes.items():
            if self._template_of.get(message_id) == template:
                return Verdict(
                    TEMPLATE_HELD,
                    f"template {template!r} held: {said.who} said {said.code} "
                    f"({said.rule.meaning}) in a callback received "
                    f"{said.received_at:%Y-%m-%d %H:%M:%S} UTC, while the run was sending; "
                    "check its status in WhatsApp Manager, then run the same command again "
                    "(a paused template comes back after 3 or 6 hours; a disabled one does "
                    "not: use another template)",
                )
        return None

    def check(self, numbers: Sequence[str], message_type: str | None) -> list[Verdict | None]:
        """The verdict on each recipient of a request about to leave (None: it may go); a
        template's hold is asked apart (:meth:`template_held`), before.

        When every recipient may go, the business-initiated ones take their place in the
        daily limit's window (atomically): the caller must then send the request.
        """
        closed = self.closed()
        if closed is not None:
            return [closed] * len(numbers)
        now = clock.now()
        verdicts: list[Verdict | None] = [None] * len(numbers)
        if self.opt_outs is not None:
            for i, number in enumerate(numbers):
                text = self.opt_outs.message(number)
                if text is not None:
                    verdicts[i] = Verdict(OPTED_OUT, text)
        if self.holds.quiet_hours is not None:
            for i, number in enumerate(numbers):
                if verdicts[i] is None:
                    verdicts[i] = self._quiet_verdict(number, now)
        business = (message_type or "text").lower() in BUSINESS_INITIATED
        if self._window is None or not business:
            return verdicts
        with self._lock:
            now = clock.now()
            go = [i for i, v in enumerate(verdicts) if v is None]
            admitted = self._window.admit([numbers[i] for i in go], now)
            for i, ok in zip(go, admitted, strict=True):
                if not ok:
                    verdicts[i] = Verdict(
                        LIMIT,
                        f"daily messaging limit of {self._window.limit:,} unique recipients in "
                        f"24 h reached while the run was sending: room from "
                        f"{when(self._window.room_from(now))}",
                    )
            if all(v is None for v in verdicts):
                self._window.record(numbers, now)
        return verdicts

    def count(self, verdicts: Sequence[Verdict | None]) -> None:
        """Count these rows as held at departure (for the run's ``held`` counts)."""
        with self._lock:
            for verdict in verdicts:
                if verdict is not None:
                    self.counts[verdict.code] = self.counts.get(verdict.code, 0) + 1

    def _quiet_verdict(self, number: str, now: datetime) -> Verdict | None:
        zones = zones_of(number)
        cached = self._quiet.get(zones)
        if cached is not None and cached[1] <= now < cached[2]:  # the clock may step back
            return cached[0]
        quiet = self.holds.quiet_hours
        assert quiet is not None
        code, message = quiet_verdict(zones, quiet, now, self.holds.expires)
        if code is None:
            # It may go until the quiet hours start in one of its zones.
            starts = [quiet.next_start(now.astimezone(zone)) for zone in zones]
            until = min([*starts, now + _KEEP])
            verdict = None
        else:
            until, verdict = now + _HELD_AGAIN, Verdict(code, message)
        self._quiet[zones] = (verdict, now, until)
        return verdict


def _stopped(said: StopCode) -> Verdict:
    """The verdict on every row left after a callback said to stop sending."""
    return Verdict(
        STOPPED,
        f"stopped: {said.headline()}; not sent: run the same command again once a person has "
        "acted (this callback does not stop the next run)",
    )
