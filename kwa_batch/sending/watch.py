"""The receipts store, watched while the run sends: WhatsApp or Kaleyra saying "stop".

A status callback can say that nothing more should leave the sending number until a person
acts: WhatsApp is restricting it for spam (131048), the account is blocked or locked (368,
131031), the portfolio's or the account's daily limit is reached (131064, WAV2101), the
balance is gone (E110)... — the ``stop`` codes of the outcome policy
(:data:`kwa_batch.actions.STOP_CODES`). Another says that a template was paused or disabled
for low quality (132015, 132016: :data:`kwa_batch.actions.TEMPLATE_CODES`). A campaign of a
million rows sends for hours, and each message sent after such a callback makes it worse.

:class:`ReceiptsWatch` reads the store (``send(receipts=...)``, the CLI's ``--receipts``)
every :data:`WATCH_SECONDS` in a background thread, only what was stored since its last
read; :class:`~kwa_batch.sending.departure.Departure` consults it as each request leaves:

- **a stop code** for a message from one of the run's sender numbers (a callback that names
  no business number counts too; one that names another number does not) closes the
  campaign: the rows still queued are ``not_sent`` ``KWA033``, their message naming the code,
  what it means and what a person must check; the run ends with exit 3;
- **a template code** for a message this run sent holds the rest of that template's rows
  (``KWA034``; every language of it), while the other templates' rows go on. A template
  callback for a message of another run is not tied to a template, and holds nothing.

Only callbacks **received after the run started** count: a 131048 from last week, which a
person has acted on since, does not stop today's run, and the run after a stop sends the rows
it left (so run it only once the cause is dealt with). A store that can no longer be read
stops the run, as for the live opt-outs: sending on blind could send past a stop.

The store is taken through a small protocol (:class:`CallbackSource`), which
:class:`kwa_batch.receipts.store.CallbackStore` provides: sending sits below the receipts
side and never imports it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from ..actions import STOP_CODES, TEMPLATE_CODES, Rule, rule_for

__all__ = ["WATCH_SECONDS", "CallbackSource", "ReceiptsWatch", "StopCode"]

log = logging.getLogger(__name__)

#: Seconds between two reads of the receipts store while the run sends.
WATCH_SECONDS = 1.0
# Seconds before each new try of a read that failed (then the run stops).
_RETRIES = (0.1, 0.3)
_WHO = {"whatsapp": "WhatsApp", "kaleyra v1": "Kaleyra", "kaleyra v2": "Kaleyra"}


@runtime_checkable
class CallbackSource(Protocol):
    """What :class:`ReceiptsWatch` reads: an open
    :class:`~kwa_batch.receipts.store.CallbackStore` (``version()`` is used when present)."""

    def updates_with_codes(
        self, codes: Collection[str], since: datetime, after: int = 0
    ) -> tuple[pd.DataFrame, int]:
        """Status updates with these codes, received since ``since``, stored after row
        ``after``; and the last row read."""
        ...


@dataclass(frozen=True)
class StopCode:
    """A callback with a code that stops the sending number (or holds a template).

    Attributes:
        code: the code as the callback gave it (``131048``).
        rule: its rule in the outcome policy (meaning, what to do).
        received_at: when the receiver stored it.
        message_id: the message it was about.
        business: the business number it names, or None.
    """

    code: str
    rule: Rule
    received_at: datetime
    message_id: str
    business: str | None = None

    @property
    def who(self) -> str:
        """Who said it: ``WhatsApp`` or ``Kaleyra``."""
        return _WHO.get(self.rule.source, "Kaleyra")

    @property
    def what_to_do(self) -> str:
        """What a person must do, without the rule's ``stop:`` lead."""
        return re.sub(r"^stop:\s*", "", self.rule.what_to_do)

    def headline(self) -> str:
        """The sentence a person reads: what was said, when, and what to check.

        >>> from datetime import UTC, datetime
        >>> stop = StopCode("131048", rule_for("131048"), datetime(2026, 12, 6, 4, 31, 2,
        ...                 tzinfo=UTC), "m:0")
        >>> stop.headline().split(";")[0]
        'WhatsApp said 131048 (spam rate limit: the number is being restricted) in a callback received 2026-12-06 04:31:02 UTC'
        """  # noqa: E501
        return (
            f"{self.who} said {self.code} ({self.rule.meaning}) in a callback received "
            f"{self.received_at:%Y-%m-%d %H:%M:%S} UTC; {self.what_to_do}"
        )


def _digits(number: object) -> str:
    return re.sub(r"\D", "", str(number))


class ReceiptsWatch:
    """A receipts store read again while the run sends (see the module).

    Args:
        store: the store (:class:`CallbackSource`).
        senders: the run's sender numbers (any form: compared by their digits).
        since: when the run started: earlier callbacks do not count.
        every: seconds between two reads.

    Attributes:
        stop_code: the first stop code seen for one of the senders, or None.
        failure: why the store could no longer be read (then the run stops), or None.
    """

    def __init__(
        self,
        store: CallbackSource,
        senders: Iterable[str],
        since: datetime,
        every: float = WATCH_SECONDS,
    ) -> None:
        self.store = store
        self.senders = frozenset(_digits(s) for s in senders if s)
        self.since = since
        self.every = every
        self.stop_code: StopCode | None = None
        self.failure: str | None = None
        # message id -> the template code said about it (replaced whole on each change).
        self.template_codes: dict[str, StopCode] = {}
        self._after = 0
        self._seen: Any = None
        self._codes = frozenset(STOP_CODES | TEMPLATE_CODES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ReceiptsWatch({self.store!r}, every={self.every})"

    def start(self) -> ReceiptsWatch:
        """Read once now (an unreadable store raises), then every ``every`` seconds."""
        self._read()
        self._thread = threading.Thread(target=self._loop, name="kwa-receipts", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _version(self) -> Any:
        version = getattr(self.store, "version", None)
        return version() if callable(version) else None

    def _read(self) -> None:
        seen = self._version()  # before reading: a change meanwhile is read next time
        if seen is not None and seen == self._seen:
            return
        found, self._after = self.store.updates_with_codes(self._codes, self.since, self._after)
        self._seen = seen
        if found.empty:
            return
        templates = dict(self.template_codes)
        for row in found.itertuples(index=False):
            code = str(row.error_code)
            business = None if pd.isna(row.business) else str(row.business)
            said = StopCode(code, rule_for(code), row.received_at, str(row.message_id), business)
            if code in TEMPLATE_CODES:
                templates.setdefault(said.message_id, said)
            elif self.stop_code is None:
                if business is not None and _digits(business) not in self.senders:
                    log.info("%s for another business number: not this run's", code)
                    continue
                self.stop_code = said  # one assignment: readers see None or the stop
                log.error("the run stops: %s", said.headline())
        self.template_codes = templates

    def _loop(self) -> None:
        pause = self.every
        while not self._stop.wait(pause):
            if self.stop_code is not None:
                return  # the run is closed: nothing more to watch for
            started = time.monotonic()
            try:
                self._read_again()
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.failure = (
                    f"the receipts store {self.store!r} could not be read again ({exc}): the "
                    "rest was not sent, so that nothing leaves after a callback saying stop; "
                    "run the same command again"
                )
                log.error("%s", self.failure)
                return
            # A store so large that reading it takes long is read less often.
            pause = max(self.every, 9 * (time.monotonic() - started))

    def _read_again(self) -> None:
        """:meth:`_read`, tried again twice after a failure (a store locked for a moment)."""
        for wait in _RETRIES:
            try:
                self._read()
                return
            except Exception:
                if self._stop.wait(wait):
                    raise
        self._read()
