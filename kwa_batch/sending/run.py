"""``send()``: every valid row to the API, fast, within a rate limit, and nothing twice.

Rows that share one message go in one request of up to 100 recipients (v2: one; see
:mod:`~kwa_batch.sending.planner`); requests run on a thread pool, each thread with its own pooled
session (see :class:`~kwa_batch.sending.client.KaleyraClient`). The retry rule is *nothing twice*:

- safe to retry, with exponential backoff and jitter, up to ``max_attempts``: a connection
  that was never established, HTTP 429 (honouring ``Retry-After``) and HTTP 503 — the
  request was not processed;
- ambiguous (the request may have been processed): a read timeout, a connection dropped
  after sending, 500/502/504, an unreadable 2xx answer, a recipient missing from the
  answer — the rows become ``unknown`` and are not resent (``retry_ambiguous=True`` opts
  in, at the risk of sending twice);
- a grouped request refused as a whole with a 4xx (one bad recipient spoils it) was not
  processed: it is split and its recipients are sent one by one;
- a 401/403 (v2: ``RBC001``) stops the run at once: the remaining rows are ``not_sent``;
- so does ``WA-401`` (the sending number is on the other API version: v1 or v2);
- other 4xx answers are final: ``failed`` with the API's code.

With a ``journal``, every row's state is written before its request goes out and after the
answer (see :mod:`~kwa_batch.sending.journal`), so a run that was stopped or killed can be run again
with the same journal: rows already sent are skipped (their results come back), the rest
are sent, and rows that were in flight when it died are reported ``unknown``.

Ctrl-C (or the notebook's stop button), SIGTERM and SIGHUP stop the run the same way (see
:mod:`~kwa_batch.sending.stopping`): no new requests, the ones in flight awaited for up to
10 seconds, and the partial results returned with the rest ``not_sent``; a second signal
stops waiting (rows still in flight are then ``unknown``). ``results.attrs["run"]`` (a
:class:`~kwa_batch.outcome.RunOutcome`) says which signal stopped it.

The sender of every row is resolved once, before anything is sent: the row's ``from``, else
``send(sender=)`` or the sender the report was validated with, else the client's; rows
whose sender comes from ``send`` or the client are validated with it, so an invalid sender
rejects them locally (``E13008``) rather than at the API.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..actions import STOP_CODES, rule_for
from ..database import is_database_url, redact
from ..errors import (
    AmbiguousSendError,
    ApiError,
    ApiVersionError,
    AuthenticationError,
    Code,
    ConfigurationError,
    ConnectError,
    InvalidResponseError,
    JournalError,
    JournalWriteError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ..fields import message_frame, row_keys
from ..loading.recipients import line_numbers
from ..outcome import RunOutcome
from ..results import ARM_COLUMN, OUTCOME_FIELDS, STATUSES, ResultsBuilder, Status
from ..validation import ValidationReport, validate
from ..validation.arms import arm_cells
from ..validation.sender import choose_sender, joined_senders, read_sender, same_sender
from . import clock
from .client import KaleyraClient, SendResult
from .departure import Departure, LiveOptOuts, Verdict
from .journal import IN_FLIGHT, JournalRecord, RunJournal
from .pacing import THROTTLE_CODES, Pacer, Pacing
from .pg_journal import PostgresJournal, check_campaign, open_journal
from .planner import Request, plan_requests
from .progress import current as current_watcher
from .retries import Retries
from .schedule import (
    BUSINESS_INITIATED,
    EXPIRED,
    LIMIT,
    Held,
    Holds,
    Schedule,
    apply_holds,
    recent,
)
from .settings import setting_from
from .stopping import StopButton
from .watch import CallbackSource, ReceiptsWatch

__all__ = ["send"]

log = logging.getLogger(__name__)

_GRACE_SECONDS = 10.0
# A request that waited longer than this for the rate limit is checked again before it
# leaves (the campaign's rules at that moment: see departure.py); a shorter wait is the
# same moment, for rules whose resolution is a second.
_RECHECK_AFTER = 0.002
# Rows held at once when the campaign closes, written to the journal per transaction.
_CLOSE_CHUNK = 2_000
_POLL_SECONDS = 0.1
_NOT_SENT = (Code.NOTSENT, "the run stopped before this row was sent")
_INTERRUPTED = (Code.NOTSENT, "the run was interrupted before this row was sent")


@dataclass
class _Done:
    """What became of one request: one outcome shared by its rows, or a split."""

    request: Request
    status: str
    error_code: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    attempts: int = 0
    sent_at: datetime | None = None
    request_id: str | None = None
    message_ids: list[str | None] | None = None
    split: list[Request] | None = None


@dataclass
class _Run:
    """One call of :func:`send`: settings and the state shared by its worker threads."""

    client: KaleyraClient
    pacer: Pacer
    journal: RunJournal | None
    retries: Retries
    departure: Departure | None = None
    #: Rows another process of the campaign claimed (a shared journal): not sent by this
    #: one; their results are what the journal says at the end (:func:`_settle_taken`).
    taken: list[Request] = field(default_factory=list)
    #: Keys the shared journal refused for the daily limit counted over every process of
    #: the database (:meth:`PostgresJournal.claim`): held, never sent by this run.
    over_limit: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: tuple[str, str] | None = None
    journal_error: JournalWriteError | None = None
    retrying: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _pause(self, attempt: int, at_least: float | None = None) -> bool:
        """Sleep before the next attempt (never past the campaign's expiry: the attempt
        after it is held at once); False if the run was stopped meanwhile."""
        delay = self.retries.delay(attempt, at_least)
        if self.departure is not None:
            delay = min(delay, self.departure.seconds_open())
        with self._lock:
            self.retrying += 1
        try:
            return not self.stop.wait(delay)
        finally:
            with self._lock:
                self.retrying -= 1

    def record(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Journal these outcomes; if the journal fails (disk full), stop the run."""
        if self.journal is None or self.journal_error is not None:
            return
        try:
            self.journal.record(rows)
        except JournalWriteError as exc:
            self.journal_failed(exc)

    def journal_failed(self, exc: JournalWriteError) -> None:
        """Stop sending: outcomes could no longer be kept. In-flight requests are awaited."""
        with self._lock:
            if self.journal_error is None:
                self.journal_error = exc
                self.stop_reason = (Code.NOTSENT, f"the run stopped: {exc}")
                log.error("%s", exc)
        self.stop.set()

    def _stopped(self, request: Request, last: _Done | None, attempts: int) -> _Done:
        code, message = self.stop_reason or _NOT_SENT
        if last is not None and last.status == Status.NOT_SENT and last.error_code:
            message = f"{message}; last attempt: {last.error_message}"
        return _Done(request, Status.NOT_SENT, code, message, attempts=attempts)

    def _hold(self, request: Request, last: _Done | None, attempts: int) -> _Done | None:
        """The campaign's rules at this moment (see :mod:`~kwa_batch.sending.departure`):
        None when every row may go; else the request finished as held (every row held),
        or split into the rows that may go and the others, each decided again. A request
        whose last attempt may have been processed (``unknown``, retried ambiguously) stays
        ``unknown``: held now, it may still have gone then."""
        if self.departure is None:
            return None
        departure = self.departure
        template = None if departure.closed() else departure.template_held(_template(request))
        verdicts = (
            [template] * len(request)
            if template is not None
            else departure.check(request.numbers, request.fields.get("type"))
        )
        held = [i for i, verdict in enumerate(verdicts) if verdict is not None]
        if not held:
            return None
        if last is not None and last.status == Status.UNKNOWN:
            reason = next(v for v in verdicts if v is not None)
            last.error_message = f"{last.error_message} (not retried: {reason.message})"
            return last
        if len(held) < len(request) or len(set(verdicts)) > 1:
            go = [i for i, verdict in enumerate(verdicts) if verdict is None]
            parts = [request.subset(go)] if go else []
            return _Done(request, "split", split=[*parts, *request.subset(held).split()])
        self.departure.count(verdicts)
        return _held(request, [v for v in verdicts if v is not None], attempts)

    def _post(self, request: Request, departed: float) -> SendResult:
        """Post, telling the pacer how long the answer took and whether it said "too fast"."""
        self.pacer.leaving(departed)
        try:
            result = self.client.post(request.form(self.client.api_version))
        except TransportError:
            self.pacer.answered(departed, len(request), observed=False)
            raise
        except ApiError as exc:
            self.pacer.answered(departed, len(request))
            if isinstance(exc, RateLimitError) or exc.code in THROTTLE_CODES:
                retry_after = getattr(exc, "retry_after", None)
                self.pacer.throttled(retry_after, request.fields.get("from"))
            if exc.code in THROTTLE_CODES and not isinstance(exc, RateLimitError):
                raise RateLimitError(
                    exc.message, code=exc.code, http_status=exc.http_status, raw=exc.raw
                ) from exc  # WhatsApp's "too fast", passed on: not sent, safe to retry
            raise
        self.pacer.answered(departed, len(request))
        return result

    def _claim(self, request: Request, last: _Done | None, attempts: int) -> _Done | None:
        """With a journal shared by several processes: claim the request's rows (in flight
        from now). None when all are this run's; else the request done as a split into the
        rows claimed (sent next), the others left to the process that took them."""
        assert self.journal is not None
        limit = self._shared_limit(request)
        over: frozenset[str] = frozenset()
        try:
            if limit is not None and isinstance(self.journal, PostgresJournal):
                claim = self.journal.claim([(request.keys, request.numbers)], daily_limit=limit)
                taken, over = claim.taken, claim.over_limit
            else:
                taken = self.journal.mark_in_flight([(request.keys, request.numbers)])
        except JournalWriteError as exc:
            self.journal_failed(exc)
            return self._stopped(request, last, attempts)
        if not taken and not over:
            return None
        ours = [i for i, key in enumerate(request.keys) if key not in taken and key not in over]
        theirs = [i for i, key in enumerate(request.keys) if key in taken]
        held = [i for i, key in enumerate(request.keys) if key in over]
        with self._lock:
            if theirs:
                self.taken.append(request.subset(theirs))
            self.over_limit.update(over)
        if held and not ours and not theirs:
            return self._over_limit(request, attempts)
        parts = [request.subset(part) for part in (ours, held) if part]
        return _Done(request, "split", split=parts)  # the part held ends at its departure

    def _shared_limit(self, request: Request) -> int | None:
        """The daily limit a claim of this request counts across processes: the run's,
        for business-initiated messages; else None."""
        if self.departure is None or self.departure.holds.daily_limit is None:
            return None
        kind = request.fields.get("type")
        business = (kind if isinstance(kind, str) and kind else "text").lower()
        return self.departure.holds.daily_limit if business in BUSINESS_INITIATED else None

    def _over_limit(self, request: Request, attempts: int) -> _Done:
        """A request whose rows the shared journal refused for the daily limit: held."""
        assert self.departure is not None
        verdict = Verdict(
            LIMIT,
            f"daily messaging limit of {self.departure.holds.daily_limit:,} unique recipients "
            "in 24 h reached while the run was sending (counted over every process and "
            "campaign of the journal's database)",
        )
        self.departure.count([verdict] * len(request))
        return _held(request, [verdict], attempts)

    def deliver(self, request: Request) -> _Done:
        """Send one request, retrying only what is safe to retry."""
        last: _Done | None = None
        shared = self.journal is not None and self.journal.shared
        for attempt in range(1, self.retries.max_attempts + 1):
            if self.stop.is_set():
                return self._stopped(request, last, attempt - 1)
            if self.over_limit and self.over_limit.issuperset(request.keys):
                return self._over_limit(request, attempt - 1)
            held = self._hold(request, last, attempt - 1)  # before waiting for the rate
            if held is not None:
                return held
            if shared:
                # Claimed before waiting for the rate: a row another process took costs
                # one statement, not a place in this process's limit.
                claimed = self._claim(request, last, attempt - 1)
                if claimed is not None:
                    return claimed
            checked = time.monotonic()
            try:  # shared: the moment of the campaign's processes' schedule, after the claim
                departed = self.pacer.acquire(
                    request.numbers, self.stop, request.fields.get("from")
                )
            except JournalWriteError as exc:
                self.journal_failed(exc)
                departed = None
            if departed is None:
                return self._stopped(request, last, attempt - 1)
            if self.journal is not None and not shared:
                # Right before the request goes out (after any wait for the rate limit), so
                # that a run killed now reports as unknown only what may really have gone.
                try:
                    self.journal.mark_in_flight([(request.keys, request.numbers)])
                except JournalWriteError as exc:
                    self.journal_failed(exc)  # not recorded as going out: it must not go
                    self.pacer.answered(departed, len(request), observed=False)
                    return self._stopped(request, last, attempt - 1)
            if time.monotonic() - checked > _RECHECK_AFTER:
                # Again, at the moment it leaves: after the rate limit and the journal.
                held = self._hold(request, last, attempt - 1)
                if held is not None:
                    self.pacer.answered(departed, len(request), observed=False)
                    return held
            try:
                result = self._post(request, departed)
            except ConnectError as exc:
                last = _Done(request, Status.NOT_SENT, exc.code, str(exc), attempts=attempt)
                wait_at_least = None
            except RateLimitError as exc:
                last = _failure(request, Status.NOT_SENT, exc, attempt)
                wait_at_least = exc.retry_after
            except ServerError as exc:
                if not exc.is_safe_to_retry:
                    done = _failure(request, Status.UNKNOWN, exc, attempt)
                    done.error_message = (
                        f"{done.error_message} — the server failed while handling the request: "
                        "it may have been sent; check before resending"
                    )
                    if (
                        self.retries.retry_ambiguous
                        and attempt < self.retries.max_attempts
                        and self._pause(attempt)
                    ):
                        last = done
                        continue
                    return done
                last = _failure(request, Status.NOT_SENT, exc, attempt)
                wait_at_least = None
            except ApiVersionError as exc:
                # WA-401: the number is on the other API version; nothing more can go.
                with self._lock:
                    if self.stop_reason is None:
                        self.stop_reason = (
                            exc.code,
                            "the run stopped: the sending number is on the other Kaleyra API "
                            f"version ({exc.message})",
                        )
                self.stop.set()
                return _failure(request, Status.NOT_SENT, exc, attempt)
            except AuthenticationError as exc:
                with self._lock:
                    if self.stop_reason is None:
                        self.stop_reason = (
                            exc.code,
                            f"the run stopped: the API refused the credentials ({exc.message})",
                        )
                self.stop.set()
                return _failure(request, Status.NOT_SENT, exc, attempt)
            except InvalidResponseError as exc:
                return _failure(request, Status.UNKNOWN, exc, attempt)
            except ApiError as exc:
                if len(request) > 1 and 400 <= exc.http_status < 500:
                    log.info(
                        "a request to %d recipients was refused (%s): sending them one by one",
                        len(request),
                        exc.code,
                    )
                    return _Done(request, "split", split=request.split(), attempts=attempt)
                if exc.code in STOP_CODES:
                    # The account or the number may send nothing more until a person acts
                    # (WAV2101 daily limit, E110 balance...): every request after it would
                    # fail the same way, so the rest waits, as for a stop callback.
                    rule = rule_for(exc.code)
                    with self._lock:
                        if self.stop_reason is None:
                            self.stop_reason = (
                                exc.code,
                                f"the run stopped: Kaleyra answered {exc.code} ({rule.meaning}); "
                                f"{rule.what_to_do}",
                            )
                    self.stop.set()
                return _failure(request, Status.FAILED, exc, attempt)
            except AmbiguousSendError as exc:
                done = _Done(request, Status.UNKNOWN, exc.code, str(exc), attempts=attempt)
                if (
                    self.retries.retry_ambiguous
                    and attempt < self.retries.max_attempts
                    and self._pause(attempt)
                ):
                    last = done
                    continue
                return done
            else:
                return _success(request, result, attempt)
            # A safe failure: the rows were not processed; say so before waiting.
            self.record(_journal_rows(last))
            if attempt < self.retries.max_attempts and not self._pause(attempt, wait_at_least):
                return self._stopped(request, last, attempt)
        assert last is not None
        last.error_message = (
            f"{last.error_message} (gave up after {self.retries.max_attempts} attempts)"
        )
        return last


def _template(request: Request) -> str | None:
    """The template a request sends, or None (a text message)."""
    name = request.fields.get("template_name")
    return name if isinstance(name, str) and name else None


def _held(request: Request, verdicts: list[Verdict], attempts: int) -> _Done:
    """A request none of whose rows may leave now: ``not_sent`` with the verdict's code (one
    request per verdict: a request held for different reasons was split before)."""
    first = verdicts[0]
    return _Done(request, Status.NOT_SENT, first.code, first.message, attempts=attempts)


def _failure(request: Request, status: str, exc: ApiError, attempt: int) -> _Done:
    return _Done(
        request,
        status,
        exc.code,
        exc.message,
        http_status=exc.http_status,
        attempts=attempt,
        sent_at=clock.stamp(),
    )


def _success(request: Request, result: SendResult, attempt: int) -> _Done:
    return _Done(
        request,
        Status.SENT,
        http_status=result.http_status,
        attempts=attempt,
        sent_at=clock.stamp(),
        request_id=result.request_id,
        message_ids=[result.message_id_for(number) for number in request.numbers],
    )


_MISSING = (
    Code.NORECIPIENT,
    "the API accepted the request but its answer does not list this recipient: it may "
    "have been sent; check before resending",
)


def _row_fields(done: _Done) -> Iterator[dict[str, Any]]:
    """The result fields of each row of a finished request, in request order."""
    base = {
        "status": done.status,
        "message_id": None,
        "error_code": done.error_code,
        "error_message": done.error_message,
        "http_status": done.http_status,
        "attempts": done.attempts,
        "sent_at": done.sent_at,
        "request_id": done.request_id,
        "recipients": len(done.request),
    }
    if done.message_ids is None:
        for _ in done.request.numbers:
            yield base
        return
    for message_id in done.message_ids:
        if message_id is None:
            yield {
                **base,
                "status": Status.UNKNOWN,
                "error_code": _MISSING[0],
                "error_message": _MISSING[1],
            }
        else:
            yield {**base, "message_id": message_id}


def _journal_rows(done: _Done) -> Iterator[tuple[str, str, dict[str, Any]]]:
    return zip(done.request.keys, done.request.numbers, _row_fields(done), strict=True)


def send(
    data: pd.DataFrame | ValidationReport,
    client: KaleyraClient,
    *,
    pacing: Pacing | None = None,
    schedule: Schedule | None = None,
    retries: Retries | None = None,
    journal: str | Path | None = None,
    campaign: str | None = None,
    sender: str | Sequence[str] | None = None,
    receipts: CallbackSource | None = None,
    progress: bool = True,
    **options: Any,
) -> pd.DataFrame:
    """Send every valid row and return one result per input row.

    Args:
        data: recipients (validated first; invalid rows are never sent) or a
            :class:`ValidationReport`.
        client: where to send, e.g. ``KaleyraClient.from_env()`` or ``emulator.client()``.
        pacing: how fast: the rate (default 80 messages per second, WhatsApp's default),
            requests in flight, the spacing per recipient, recipients per request; a
            :class:`~kwa_batch.Pacing` (default ``Pacing()``).
        schedule: when: quiet hours in each recipient's time, a start, an expiry, a daily
            limit; a :class:`~kwa_batch.Schedule` (default: nothing held back). Held rows
            are ``not_sent`` with a code saying until when; each hold is decided again when
            a request is about to leave (see :mod:`kwa_batch.sending.departure`), as are the
            opt-outs of a receipts store the report was validated with (``suppress=store``),
            read again every 2 s.
        retries: what is retried, how often and how far apart; a
            :class:`~kwa_batch.Retries` (default ``Retries()``: 4 attempts of what is safe
            to retry, nothing that could send twice).
        journal: a SQLite file recording every row's state, so that running again with the
            same journal resumes without sending anything twice; or a PostgreSQL database
            (``"postgresql://user@host/db"``, with ``campaign``), which several processes, on
            one machine or several, share to send one campaign together: each row goes from
            the one process that claims it, each number's rate holds across them all (see
            :mod:`~kwa_batch.sending.pg_journal`).
        campaign: the campaign's name in a PostgreSQL journal (required with a URL,
            refused with a file).
        sender: the ``from`` number for rows that leave it empty (before the client's); it
            is validated like a row's own, so an invalid one rejects those rows (E13008).
            Several (a list, or comma-separated: ``--from +91A,+91B``): each such row is
            pinned to one by a stable hash of its recipient (the same number in every run
            and campaign; see :mod:`kwa_batch.validation.sender`), and each number sends at
            its own rate (``Pacing.rate_limit``, or its ``sender_rates``), all within
            ``Pacing.account_rate`` when set; the daily limit counts them all together (it
            is the business portfolio's). A row's own ``from`` wins. Invalid: refused,
            named (``ConfigurationError``).
        receipts: a receipts store to watch while sending (an open
            :class:`kwa_batch.CallbackStore`, or anything with its ``updates_with_codes``;
            the command line's ``--receipts`` takes the path), read every second (see
            :mod:`kwa_batch.sending.watch`). A callback received after the run started,
            with a ``stop`` code (131048 spam rate limit, 368 policy block, 131031 account
            locked, 131064 or WAV2101 daily limit, E110 no balance...:
            :data:`kwa_batch.actions.STOP_CODES`), for a message from the run's sender
            number, stops the sending within seconds: the rows left are ``not_sent``
            ``KWA033``, the outcome's ``stopped_on`` and next step say what a person must
            check, exit 3. A paused or disabled template (132015, 132016) for a message of
            this run holds that template's rows (``KWA034``); the others go on. A later run
            sends the rows left (the callbacks before it do not count).
        progress: show a progress bar (a widget in Jupyter, a text bar in a terminal).
        **options: each field of the settings objects as a keyword, as earlier versions
            took them (``rate_limit=1000``, ``quiet_hours="21:00-09:00"``,
            ``max_attempts=2``...): it sets that field of its object, the others keep their
            defaults; giving the object too is refused. For a DataFrame, the arguments of
            :func:`kwa_batch.validate` (``default_region``, ``params_from``,
            ``body_template``, ``template_name``, ``lang_code``, ``callback_url``,
            ``windows``, ``templates``, ``suppress``). ``now=`` is refused: a set clock only
            plans (:func:`kwa_batch.estimate`); a real send goes by the real clock.

    Returns:
        A DataFrame with the input's index and the columns of
        :data:`kwa_batch.results.RESULT_DTYPES`: ``to``, ``status``, ``message_id``,
        ``error_code``, ``error_message``, ``http_status``, ``attempts``, ``sent_at``,
        ``request_id``, ``recipients`` (in the request), ``from_journal`` (True for rows
        whose result came from an earlier run), ``line`` and ``sender`` (the number the
        row went, or would go, from); ``arm`` too when the input has one
        (:func:`kwa_batch.assign`): the rows of its ``holdout`` arm are never sent, and
        their status is ``holdout``. ``results.attrs["run"]`` is the run's
        :class:`~kwa_batch.RunOutcome`: its facts, counts, exit code and next step.

    Raises:
        ConfigurationError: some valid rows have no sender from any source, a setting is
            out of range or given twice, or the journal is in use by another run.

    Example:
        >>> with Emulator() as emu:  # doctest: +SKIP
        ...     results = send(report, emu.client(), pacing=Pacing(rate_limit=1000),
        ...                    schedule=Schedule(quiet_hours="21:00-09:00"), journal="run.db")
    """
    check_campaign(journal, campaign)  # before anything else: one line
    now = options.pop("now", None)
    if now is not None:
        raise ConfigurationError(
            f"now={now!r}: a set clock only plans (kb.estimate(now=...), kwa-batch send "
            "--dry-run --now); a real send goes by the real clock, so that quiet hours, the "
            "expiry and the daily limit hold when each message really leaves"
        )
    pacing = setting_from("send", "pacing", Pacing, pacing, options)
    schedule = setting_from("send", "schedule", Schedule, schedule, options)
    retries = setting_from("send", "retries", Retries, retries, options)
    if "default_region" in options and options["default_region"] is None:
        del options["default_region"]  # the default, for a report too
    report = _validated(data, client, joined_senders(sender), options)
    pacing = _rates_of_senders(pacing, report)
    holds = Holds.make(schedule)
    pacer = Pacer(pacing)
    settings = {
        "base_url": client.shown_url,  # no userinfo: the journal records it
        "sid": client.sid,
        "concurrency": pacing.concurrency,
        "rate_limit": pacing.rate_limit,  # per sender number
        "sender_rates": dict(pacing.sender_rates) or None,
        "account_rate": pacing.account_rate,
        "max_concurrency": pacing.max_concurrency,
        "per_recipient_interval": pacing.per_recipient_interval,
        "max_recipients_per_request": pacing.size_for(client.api_version),
        "api_version": client.api_version,
        "max_attempts": retries.max_attempts,
        "retry_ambiguous": retries.retry_ambiguous,
        "resend_unknown": retries.resend_unknown,
        "journal": _journal_name(journal),
        "campaign": campaign,
        "source": report.data.attrs.get("source"),
        "sender": report.sender,  # issue #19: what a follow-up sends from
        **holds.settings(),  # issue #13: what a later run of the campaign reads back
    }
    started = datetime.now(UTC)
    results = ResultsBuilder(report.data.index)
    results.reject(report.invalid)
    results.hold_out(list(report.holdout))  # an experiment's holdout: never sent
    current_watcher().began(results, lambda builder: _finished(builder, report))
    messages = message_frame(report.to_send)  # the one message frame of this run
    held_out = message_frame(report.valid.loc[report.holdout]) if journal is not None else None
    pacer.expect(messages["from"].dropna().unique())  # one limit per sender number
    run = _Run(
        client,
        pacer=pacer,
        journal=(
            open_journal(
                journal,
                campaign=campaign,
                settings=settings,
                resend_unknown=retries.resend_unknown,
            )
            if journal is not None
            else None
        ),
        retries=retries,
    )
    if isinstance(run.journal, PostgresJournal):
        pacer.shared = run.journal  # each number's rate across the processes
    live = (
        LiveOptOuts(report.live_opt_outs, report.default_region) if report.live_opt_outs else None
    )
    watch = _watch(receipts, messages, client, started)
    try:
        if live is not None:
            live.start()
        if watch is not None:
            watch.start()
        size = pacing.size_for(client.api_version)  # v2: one recipient per request
        done = _send_rows(run, messages, results, holds, (live, watch), size,
                          progress=progress, held_out=held_out)  # fmt: skip
    finally:
        if live is not None:
            live.stop()
        if watch is not None:
            watch.stop()
        if run.journal is not None:
            run.journal.close()
    frame = _finished(results, report)
    frame.attrs["run"] = RunOutcome.of(
        frame,
        started_at=started.replace(microsecond=0),
        finished_at=datetime.now(UTC).replace(microsecond=0),
        stopped_by=signal_name(done.stopped_by),
        headline=done.headline,
        resume=done.resume,
        held=done.held_counts(run.departure),
        pacing=pacer.stats(),
        settings=settings,
        journal_error=str(run.journal_error) if run.journal_error else None,
        stopped_on=_stopped_on(watch),
    )
    counts = frame["status"].value_counts()
    log.info("send finished: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return frame


@dataclass
class _Sent:
    """What the sending part of a run did."""

    stopped_by: int | None
    resume: dict[str, int]
    headline: str
    held: Held

    def held_counts(self, departure: Departure | None) -> dict[str, int]:
        """Rows held back by code: before sending, and when they were about to leave."""
        counts = dict(self.held.counts)
        for code, n in (departure.counts if departure is not None else {}).items():
            counts[code] = counts.get(code, 0) + n
        return counts


def _watch(
    receipts: CallbackSource | None,
    messages: pd.DataFrame,
    client: KaleyraClient,
    started: datetime,
) -> ReceiptsWatch | None:
    """The watch of ``send(receipts=...)``, for the run's sender numbers (not started)."""
    if receipts is None:
        return None
    if isinstance(receipts, str | Path):
        raise ConfigurationError(
            f"receipts={str(receipts)!r}: give the store open, as "
            f"kb.CallbackStore({str(receipts)!r}) (in a with block, which closes it); "
            "kwa-batch send --receipts takes the path"
        )
    if not isinstance(receipts, CallbackSource):
        raise TypeError(
            f"receipts= takes a receipts store (the path of kwa-batch receive's --store, or "
            f"an open CallbackStore), not {type(receipts).__name__}"
        )
    senders = set(messages["from"].dropna().unique())
    if messages["from"].isna().any() and client.sender:
        senders.add(client.sender)
    return ReceiptsWatch(receipts, senders, since=started)


def _stopped_on(watch: ReceiptsWatch | None) -> str | None:
    """The sentence on the callback that stopped the run, if one did."""
    if watch is None or watch.stop_code is None:
        return None
    return watch.stop_code.headline()


def _send_rows(
    run: _Run,
    messages: pd.DataFrame,
    results: ResultsBuilder,
    holds: Holds,
    watched: tuple[LiveOptOuts | None, ReceiptsWatch | None],
    max_recipients: int,
    *,
    progress: bool,
    held_out: pd.DataFrame | None = None,
) -> _Sent:
    """Settle what the journal knows, hold back what must wait, plan the requests and
    send them, each decided again when it leaves; the results are filled in place."""
    resume: dict[str, int] = {}
    if run.journal is not None:
        resend = run.retries.resend_unknown
        messages, keys, resume, elsewhere = _resume(run.journal, messages, results, resend)
        if held_out is not None and len(held_out):
            _unhold(run.journal, held_out, results, resume)
        run.taken.extend(elsewhere)
    else:
        keys = pd.Series("", index=messages.index, dtype="str")
    holds = holds.anchored(run.journal)
    sent_before = recent(holds, run.journal)
    messages, keys, held = apply_holds(holds, messages, keys, results, run.journal, sent_before)
    live, watch = watched
    if holds.active or live is not None or watch is not None:
        run.departure = Departure(holds, sent_before, live, watch)
    requests: Iterable[Request] = plan_requests(messages, max_recipients=max_recipients, keys=keys)
    if run.journal is not None and run.journal.shared:
        requests = _walk_from(list(requests), run.journal.run_id)
    said = headline(len(messages), resume)
    said += f"; {held.describe()}" if held.counts else ""
    stopped_by = _Loop(run, iter(requests), len(messages), results, progress).run(said)
    if run.journal is not None and run.taken:
        if run.journal_error is None:
            try:
                _settle_taken(run.journal, run.taken, results, run.stop)
            except JournalError as exc:  # read at the end: the run stops as on a write
                run.journal_failed(JournalWriteError(str(exc), path=exc.path, reason=str(exc)))
        if run.journal_error is not None:  # never asked again once it failed
            _unsettled_taken(run.taken, results, str(run.journal.path))
    return _Sent(stopped_by, resume, said, held)


def _walk_from(requests: list[Request], run_id: int | None) -> list[Request]:
    """The plan, starting at a point of its own for each run (the golden ratio's multiples
    of the run's id spread any number of processes evenly), wrapping round: processes that
    share a campaign then meet only where one's walk reaches rows another has sent."""
    if not requests or run_id is None:
        return requests
    start = int(((run_id * 0.6180339887498949) % 1.0) * len(requests))
    return requests[start:] + requests[:start]


def _settle_taken(
    journal: RunJournal, taken: list[Request], results: ResultsBuilder, stop: threading.Event
) -> None:
    """Fill the results of rows another process of the campaign took, from the journal:
    its outcome where it has one (``from_journal``), waiting up to the grace period for
    rows still in flight in a live process; a row still in flight then is ``unknown``
    (``ELSEWHERE``), never given a status the journal does not hold."""
    keys = [key for request in taken for key in request.keys]
    labels = [label for request in taken for label in request.labels]
    deadline = time.monotonic() + _GRACE_SECONDS
    live = journal.held_elsewhere(keys)
    while live and time.monotonic() < deadline and not stop.wait(_POLL_SECONDS * 2):
        live = journal.held_elsewhere(keys)
    records = journal.lookup(keys)
    rows = []
    for key in keys:
        record = records.get(key)
        row: dict[str, Any] = {"from_journal": True} if record is None else _from_record(record)
        if record is None or (record.state == IN_FLIGHT and key in live):
            row.update(
                status=Status.UNKNOWN,
                error_code=Code.ELSEWHERE.value,
                error_message=_HELD_ELSEWHERE.format(journal=journal.path),
            )
        elif record.state == IN_FLIGHT:  # the process that took it died while sending it
            row.update(status=Status.UNKNOWN, error_code=_IN_FLIGHT[0], error_message=_IN_FLIGHT[1])
        rows.append(row)
    results.fill(labels, rows)


def _unsettled_taken(taken: list[Request], results: ResultsBuilder, journal: str) -> None:
    """The rows another process of the campaign took, when the journal failed before it
    said what became of them: ``unknown`` (``ELSEWHERE``), as that process may have sent
    them."""
    row = {
        "status": Status.UNKNOWN,
        "error_code": Code.ELSEWHERE.value,
        "error_message": _UNSETTLED_ELSEWHERE.format(journal=journal),
        "from_journal": True,
    }
    labels = [label for request in taken for label in request.labels]
    results.fill(labels, [row] * len(labels))


def _rates_of_senders(pacing: Pacing, report: ValidationReport) -> Pacing:
    """``pacing`` with its ``sender_rates`` keyed by the run's sender numbers in E.164, read
    as the senders are (``--region``); a rate for a number the run does not send from is
    refused, never ignored (a typo would leave the number at the general rate)."""
    if not pacing.sender_rates:
        return pacing
    valid = report.valid
    senders = set(valid["from"].dropna().astype("str")) if "from" in valid.columns else set()
    rates: dict[str, float] = {}
    for given, rate in dict(pacing.sender_rates).items():
        check = read_sender(str(given), report.default_region)
        number = check.e164 if check.ok else None
        if number is None or number not in senders:
            listed = ", ".join(sorted(senders)) or "none"
            raise ConfigurationError(
                f"rate for {given!r} (--rate {given}={rate:g}): not one of this run's sender "
                f"numbers ({listed}); give the rate of a number the run sends from"
            )
        rates[number] = rate
    return dataclasses.replace(pacing, sender_rates=rates)


def signal_name(signum: int | None) -> str | None:
    """``SIGTERM`` for 15, None for None."""
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _validated(
    data: pd.DataFrame | ValidationReport,
    client: KaleyraClient,
    sender: str | None,
    validation: dict[str, Any],
) -> ValidationReport:
    """The report to send, validated with the one sender that applies (see the module);
    ``validation``: :func:`~kwa_batch.validate`'s arguments, for a DataFrame."""
    unknown = sorted(set(validation) - set(inspect.signature(validate).parameters))
    if unknown:
        raise TypeError(
            f"send() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: it "
            "takes its own, the fields of Pacing, Schedule and Retries, and validate()'s"
        )
    version = client.api_version
    if isinstance(data, pd.DataFrame):
        given = validation.pop("api_version", None)
        if given is not None and str(given).strip().lower() != version:
            raise ConfigurationError(
                f"api_version={given!r}: the client sends through Kaleyra's {version} API; "
                f"give the client api_version={given!r}, or leave api_version= out of send()"
            )
        return validate(
            data, sender=choose_sender(sender, client.sender), api_version=version, **validation
        )
    if not isinstance(data, ValidationReport):
        raise TypeError(
            f"send() takes a DataFrame or a ValidationReport, not {type(data).__name__}"
        )
    if validation:
        given = ", ".join(sorted(validation))
        raise ConfigurationError(
            f"{given}: the report is already validated; pass these to validate() instead"
        )
    validated_for = str(data.arguments.get("api_version") or "v1")
    if validated_for != version:
        # Rows checked for one version may not go through the other: v1 drops v2's buttons
        # and cards, v2 needs what v1 never checked.
        raise ConfigurationError(
            f"the report was validated for Kaleyra's {validated_for} API and the client sends "
            f"through {version}: validate again with api_version={version!r}, or use a "
            f"client of api_version={validated_for!r}"
        )
    if sender and data.sender and not same_sender(sender, data.sender, data.default_region):
        raise ConfigurationError(
            f"sender={sender!r}: the report was validated with sender {data.sender!r}; "
            "validate again with the sender you want, or leave sender= out of send()"
        )
    effective = choose_sender(sender, data.sender, client.sender)
    if not effective or same_sender(effective, data.sender, data.default_region):
        return data
    if "from" in data.valid.columns and data.valid["from"].notna().all():
        return data  # every valid row has its own sender: nothing to fill
    arguments = data.arguments or {"default_region": data.default_region}
    log.info("validating again with the sender of %s", "send()" if sender else "the client")
    return validate(data.data, **{**arguments, "sender": effective})


_IN_FLIGHT = (
    Code.INFLIGHT,
    "a previous run stopped while this row was in flight: it may have been sent; check, then "
    "pass resend_unknown=True (--resend-unknown) to send it again",
)
_HELD_ELSEWHERE = (
    "another process sending this campaign ({journal}) held this row in flight when this run "
    "finished: see that process's results, or run this command again once every process has "
    "finished, when the journal says what became of it"
)
_UNSETTLED_ELSEWHERE = (
    "another process sending this campaign ({journal}) took this row, and the journal failed "
    "before this run could read what became of it: it may have been sent; see that "
    "process's results, or run this command again once the database answers"
)
_RESUME_COUNTS = (
    "already sent",
    "in flight in another process",
    "unknown, not resent",
    "resending unknown",
    "sending again (failed or not sent before)",
    "new",
    "expired, never sent",
)
_UNHELD = "in the holdout now, but sent (or maybe sent) before: as the journal says"


def _resume(
    journal: RunJournal,
    messages: pd.DataFrame,
    results: ResultsBuilder,
    resend_unknown: bool,
) -> tuple[pd.DataFrame, pd.Series, dict[str, int], list[Request]]:
    """Fill the results of rows the journal settles; return the messages still to send,
    their keys, what the journal said (counts), and the rows in flight in another live
    process of the campaign (settled at the end, as the journal then says)."""
    keys = row_keys(messages)
    records = journal.lookup(keys.array)  # sliced by position, converted chunk by chunk
    in_flight = [key for key, record in records.items() if record.state == IN_FLIGHT]
    elsewhere = journal.held_elsewhere(in_flight) if in_flight else frozenset()
    if len(elsewhere) < len(in_flight):
        # Read again what is not held by a live process: one that was may have settled the
        # row between the two reads (the first would call a sent row a dead run's).
        records.update(journal.lookup([key for key in in_flight if key not in elsewhere]))
    others: list[Request] = []
    counts = dict.fromkeys(_RESUME_COUNTS, 0)
    send_labels = []
    kept_labels: list[Hashable] = []
    kept_rows: list[dict[str, Any]] = []
    for label, key in zip(keys.index, keys, strict=True):
        record: JournalRecord | None = records.get(key)
        if record is None:
            counts["new"] += 1
            send_labels.append(label)
        elif key in elsewhere:
            counts["in flight in another process"] += 1
            others.append(Request([label], [str(record.recipient)], {}, [key]))
        elif record.state == Status.SENT:
            counts["already sent"] += 1
            kept_labels.append(label)
            kept_rows.append(_from_record(record))
        elif record.state in (Status.UNKNOWN, IN_FLIGHT):
            if resend_unknown:
                counts["resending unknown"] += 1
                send_labels.append(label)
            else:
                counts["unknown, not resent"] += 1
                kept_labels.append(label)
                row = _from_record(record)
                if record.state == IN_FLIGHT:
                    row.update(
                        status=Status.UNKNOWN, error_code=_IN_FLIGHT[0], error_message=_IN_FLIGHT[1]
                    )
                kept_rows.append(row)
        elif record.state == Status.NOT_SENT and record.error_code == EXPIRED:  # terminal
            counts["expired, never sent"] += 1
            kept_labels.append(label)
            kept_rows.append(_from_record(record))
        else:
            counts["sending again (failed or not sent before)"] += 1
            send_labels.append(label)
    results.fill(kept_labels, kept_rows)
    resume = {k: v for k, v in counts.items() if v}
    if resume:
        log.info("journal %s: %s", journal.path, ", ".join(f"{k} {v}" for k, v in resume.items()))
    if len(send_labels) < len(messages):  # a fresh journal sends everything: no copy
        to_send = pd.Index(send_labels, dtype=keys.index.dtype)
        messages, keys = messages.loc[to_send], keys.loc[to_send]
    return messages, keys, resume, others


def _unhold(
    journal: RunJournal, held_out: pd.DataFrame, results: ResultsBuilder, resume: dict[str, int]
) -> None:
    """Give a holdout row the journal records as sent, in flight or unknown its outcome
    from the journal (``from_journal``): a message that may have left is never reported as
    held back (a list assigned again with other shares may put a sent row in the holdout)."""
    keys = row_keys(held_out)
    records = journal.lookup(keys.array)
    labels: list[Hashable] = []
    rows: list[dict[str, Any]] = []
    for label, key in zip(keys.index, keys, strict=True):
        record = records.get(key)
        if record is None or record.state not in (Status.SENT, Status.UNKNOWN, IN_FLIGHT):
            continue
        row = _from_record(record)
        if record.state == IN_FLIGHT:
            row.update(status=Status.UNKNOWN, error_code=_IN_FLIGHT[0], error_message=_IN_FLIGHT[1])
        labels.append(label)
        rows.append(row)
    results.fill(labels, rows)
    if labels:
        resume[_UNHELD] = len(labels)
        log.info("journal %s: %s %d", journal.path, _UNHELD, len(labels))


def _journal_name(journal: str | Path | None) -> str | None:
    """The journal as the run's settings record it: a URL without its password."""
    if journal is None:
        return None
    return redact(str(journal)) if is_database_url(journal) else str(journal)


def _from_record(record: JournalRecord) -> dict[str, Any]:
    fields = {name: getattr(record, name) for name in OUTCOME_FIELDS[1:]}
    return {"status": record.state, **fields, "from_journal": True}


def _finished(results: ResultsBuilder, report: ValidationReport) -> pd.DataFrame:
    """The results frame, with ``to`` in E.164 for the rows that were valid, else the value
    as written (vectorised)."""
    statuses = results.statuses()
    assert statuses <= set(STATUSES), f"every row ends with a known status, not {statuses}"
    results.data["line"] = list(line_numbers(report.data).array)
    frame = results.frame()
    to = report.data["to"].astype("string")
    to.loc[report.valid.index] = report.valid["to"].astype("string")
    frame["to"] = to
    if "from" in report.valid.columns:
        frame.loc[report.valid.index, "sender"] = report.valid["from"].astype("string")
    if ARM_COLUMN in report.data.columns:  # an experiment's arm, for kb.compare
        frame[ARM_COLUMN] = arm_cells(report.data[ARM_COLUMN])
    return frame


def _in_notebook() -> bool:
    """Whether ``tqdm.auto`` draws widgets here (a Jupyter kernel)."""
    return any(cls.__module__ == "tqdm.notebook" for cls in type.mro(tqdm))


def _progress_stream() -> Any:
    """Where the plain progress lines go: beside the bar in a terminal (stderr), as plain
    output in a notebook (where stderr reads as an error)."""
    return sys.stdout if _in_notebook() else sys.stderr


def _draws_a_bar() -> bool:
    """A bar only where someone watches it: a notebook, or a terminal (a pipe or a log file
    would collect every redraw of a text bar); the plain lines are written anyway."""
    if _in_notebook():
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _again() -> str:
    """How to give the second stop signal, where the run is."""
    return "Interrupt the kernel again" if _in_notebook() else "press Ctrl-C again"


def headline(to_send: int, resume: dict[str, int]) -> str:
    """What a run is about to do, counted after the journal.

    >>> headline(2780, {"already sent": 220, "new": 2780})
    'Sending 2,780 message(s) (220 already sent, by the journal)'
    >>> headline(0, {"already sent": 3000})
    'Nothing to send (3,000 already sent, by the journal)'
    """
    settled = {
        k: v
        for k, v in resume.items()
        if k
        in (
            "already sent",
            "in flight in another process",
            "unknown, not resent",
            "expired, never sent",
        )
    }
    known = ", ".join(f"{v:,} {k}" for k, v in settled.items())
    what = f"Sending {to_send:,} message(s)" if to_send else "Nothing to send"
    return f"{what} ({known}, by the journal)" if known else what


_JournalRows = list[tuple[str, str, dict[str, Any]]]
_SHORT = {Status.NOT_SENT: "not sent", "retrying": "retrying"}


def postfix(counts: dict[str, int]) -> str:
    """The non-zero counts, briefly (the progress bar must fit 80 columns).

    >>> postfix({"sent": 1200, "failed": 0, "unknown": 2, "not_sent": 0, "retrying": 1})
    'sent 1,200 · unknown 2 · retrying 1'
    """
    return " · ".join(f"{_SHORT.get(k, k)} {v:,}" for k, v in counts.items() if v)


class _Loop:
    """The sending loop of one run: submit requests to a thread pool, keep as many in flight
    as the pacer says (the next ready one first, see :class:`~.pacing.Lookahead`), record
    what finished (results, journal, progress), and stop when the stop button is pressed."""

    def __init__(
        self,
        run: _Run,
        planned: Iterator[Request],
        total: int,
        results: ResultsBuilder,
        progress: bool,
    ) -> None:
        self.run_ = run
        self.total = total
        self.results = results
        self.progress = progress
        self.counts: dict[str, int] = dict.fromkeys(
            (Status.SENT, Status.FAILED, Status.UNKNOWN, Status.NOT_SENT), 0
        )
        self.pending: dict[Future[_Done], Request] = {}
        self.queue: deque[Request] = deque()  # cancelled at a stop: not_sent
        self.ahead = run.pacer.requests(planned)  # spaced rows skipped over, not waited on
        self.completed: SimpleQueue[Future[_Done]] = SimpleQueue()
        self.bar: Any = None
        self.watcher = current_watcher()  # a background job's (see progress.py), or nobody

    def run(self, headline: str) -> int | None:
        """Send everything (or until stopped); the signal that stopped the run, if any.
        With progress shown, ``headline`` (what is about to be sent) comes first."""
        if self.progress:
            tqdm.write(headline, file=_progress_stream())
        if self.total == 0:
            return None
        self.bar = tqdm(
            total=self.total,
            unit="msg",
            desc="sending",
            # The counts and the pace in words replace tqdm's own rate (``718msg/s``):
            # the rate asked for is in the postfix, and 80 columns hold it all.
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
            "[{elapsed}<{remaining}{postfix}]",
            disable=not (self.progress and _draws_a_bar()),
            leave=True,
        )
        stopped_by: int | None = None
        started = time.monotonic()
        controller = self.run_.pacer.controller
        workers = controller.pinned or controller.max_concurrency  # threads start as needed
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kwa-send")
        try:
            with StopButton() as button:
                self.watcher.sending(
                    total=self.total,
                    headline=headline,
                    counts=self.counts,
                    pacer=self.run_.pacer,
                    stop=button.press,
                )
                self._submit_until_done(pool, button)
                if button.pressed:
                    stopped_by = button.first
                    self._wind_down(button)
        finally:
            pool.shutdown(wait=stopped_by is None, cancel_futures=True)
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.close()
        self._mark_never_attempted()
        if self.progress:  # a plain line: what a saved notebook shows when its widget is gone
            took = time.monotonic() - started
            self.bar.write(
                f"sending: {postfix(self.counts) or 'nothing sent'} in {took:.1f} s",
                file=_progress_stream(),
            )
        return stopped_by

    def _in_flight(self) -> int:
        """Requests running (a pinned pool also keeps as many queued)."""
        pinned = self.run_.pacer.controller.pinned
        return len(self.pending) if pinned is None else min(len(self.pending), pinned)

    def _postfix(self) -> str:
        """The counts, then the rate in force and the requests in flight: ``sent 900 ·
        150/s x12``."""
        counts = postfix(self.counts | {"retrying": self.run_.retrying})
        pace = self.run_.pacer.postfix(self._in_flight())
        return f"{counts} · {pace}" if counts else pace

    def _submit_until_done(self, pool: ThreadPoolExecutor, button: StopButton) -> None:
        run = self.run_
        last_postfix = 0.0
        while not button.pressed:
            if run.departure is not None and (closed := run.departure.closed()) is not None:
                self._close(closed)  # expired: what is left never goes, and is not waited on
            target = run.pacer.target()
            if run.pacer.controller.pinned:  # a queue as deep again: no worker waits for us
                target *= 2
            while len(self.pending) < target and not run.stop.is_set():
                request = self.ahead.take(time.monotonic())
                if request is None:
                    break
                future = pool.submit(run.deliver, request)
                self.pending[future] = request
                future.add_done_callback(self.completed.put)
            run.pacer.in_flight(self._in_flight())
            if time.monotonic() - last_postfix > 0.2:
                self.bar.set_postfix_str(self._postfix(), refresh=False)
                last_postfix = time.monotonic()
            if not self.pending and (run.stop.is_set() or not self.ahead):
                return
            # Nothing in flight: every row left waits for its recipient's spacing.
            wait = self.ahead.next_ready() - time.monotonic() if not self.pending else 1.0
            self._collect(min(max(wait, 0.001), _POLL_SECONDS))

    def _wind_down(self, button: StopButton) -> None:
        """Stopped: no new requests; wait for those in flight (until the grace period ends
        or a second signal comes); what never started is not_sent, the rest unknown."""
        run = self.run_
        run.stop_reason = _INTERRUPTED
        run.stop.set()
        log.warning(
            "stopping (%s): waiting up to %.0f s for %d request(s) in flight; %s to stop waiting",
            signal_name(button.first),
            _GRACE_SECONDS,
            len(self.pending),
            self.watcher.stop_again or _again(),
        )
        deadline = time.monotonic() + _GRACE_SECONDS
        while self.pending and button.pressed < 2 and time.monotonic() < deadline:
            self._collect(_POLL_SECONDS)
        for future, request in list(self.pending.items()):
            if future.done():
                self._finish_now(future.result())
            elif future.cancel():
                self.run_.pacer.finished(request.numbers, reached=False)
                self.queue.append(request)  # never started: not_sent below
            else:
                self._finish_now(
                    _Done(
                        request,
                        Status.UNKNOWN,
                        Code.INTERRUPTED,
                        "interrupted while the request was in flight: it may have been "
                        "sent; check before resending",
                    )
                )
        self.pending.clear()

    def _finish(self, done: _Done, journal_rows: _JournalRows, *, release: bool = True) -> None:
        """Put a finished request's rows in the results (and in ``journal_rows``)."""
        if release:
            reached = done.status in (Status.SENT, Status.UNKNOWN)
            self.run_.pacer.finished(done.request.numbers, reached=reached)
        if done.split is not None:
            self.ahead.push_front(done.split)
            # Rows another process took are done here (their results come at the end).
            self.bar.update(len(done.request) - sum(len(part) for part in done.split))
            return
        departure = self.run_.departure
        if departure is not None and done.message_ids is not None:
            departure.sent(done.message_ids, _template(done.request))
        rows = list(_row_fields(done))
        self.results.fill(done.request.labels, rows)
        if self.run_.journal is not None:
            journal_rows.extend(zip(done.request.keys, done.request.numbers, rows, strict=True))
        for row in rows:
            self.counts[row["status"]] += 1
        self.watcher.finished(rows)
        self.bar.update(len(rows))

    def _finish_now(self, done: _Done) -> None:
        journal_rows: _JournalRows = []
        self._finish(done, journal_rows)
        self.run_.record(journal_rows)

    def _collect(self, timeout: float) -> None:
        """Record the requests that finished, waiting up to ``timeout`` for the first."""
        self.watcher.tick()  # between two updates of the results: they may be copied
        try:
            future = self.completed.get(timeout=timeout)
        except Empty:
            return
        journal_rows: _JournalRows = []
        while True:
            self._finish(future.result(), journal_rows)
            del self.pending[future]
            try:
                future = self.completed.get_nowait()
            except Empty:
                break
        self.run_.record(journal_rows)  # one transaction for all that finished

    def _close(self, verdict: Verdict) -> None:
        """Hold every request not handed to a worker yet with ``verdict`` (the campaign
        expired, or may not send at all any more): finished at once, in the journal too."""
        assert self.run_.departure is not None
        journal_rows: _JournalRows = []
        for request in self.ahead.rest():  # never taken: no spacing to release
            self.run_.departure.count([verdict] * len(request))
            self._finish(_held(request, [verdict], 0), journal_rows, release=False)
            if len(journal_rows) >= _CLOSE_CHUNK:  # short transactions: workers write too
                self.run_.record(journal_rows)
                journal_rows = []
        self.run_.record(journal_rows)

    def _mark_never_attempted(self) -> None:
        """Whatever was never attempted (stopped by a 401, or a signal) is not_sent."""
        code, message = self.run_.stop_reason or _NOT_SENT
        leftover: list[Request] = [*self.queue, *self.ahead.rest()]
        for request in leftover:
            fields = {
                "status": Status.NOT_SENT,
                "error_code": code,
                "error_message": message,
                "attempts": 0,
                "recipients": len(request),
            }
            self.results.fill(request.labels, [fields] * len(request))
            self.counts[Status.NOT_SENT] += len(request)
