"""``send()``: every valid row to the API, concurrently, within a rate limit, nothing twice.

Each valid row becomes one request (grouping identical messages into one request comes
with issue #4). Requests run on a thread pool; each thread has its own pooled session
(see :class:`~kwa_batch.client.KaleyraClient`). The retry rule is *nothing twice*:

- safe to retry, with exponential backoff and jitter, up to ``max_attempts``: a connection
  that was never established, HTTP 429 (honouring ``Retry-After``) and HTTP 503;
- ambiguous (the request may have been processed): a read timeout, a connection dropped
  after sending, 500/502/504, an unreadable 2xx answer — the row becomes ``unknown`` and
  is not resent (``retry_ambiguous=True`` opts in);
- a 401/403 stops the run at once: the remaining rows are ``not_sent``;
- other 4xx answers are final: ``failed`` with the API's code.

Ctrl-C (or the notebook's stop button) stops submitting, waits briefly for the requests
in flight, and returns the partial results with the rest ``not_sent``; a second Ctrl-C
stops waiting (rows still in flight are then ``unknown``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .client import KaleyraClient, SendResult
from .errors import (
    AmbiguousSendError,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
)
from .results import STATUSES, results_frame
from .schema import MESSAGE_COLUMNS, ValidationReport, validate

__all__ = ["RateLimiter", "send"]

log = logging.getLogger(__name__)

_FIELDS = ("to", *MESSAGE_COLUMNS)
_GRACE_SECONDS = 10.0


class RateLimiter:
    """At most ``rate`` messages in any one-second window, shared across threads.

    A request to *n* recipients counts *n* messages.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ConfigurationError(f"rate_limit must be positive, not {rate}")
        self.rate = rate
        self._clock = clock
        self._sent: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._lock = threading.Lock()

    def acquire(self, count: int, stop: threading.Event) -> bool:
        """Wait until ``count`` messages may go; False if ``stop`` was set while waiting."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0][0] <= now - 1.0:
                    self._in_window -= self._sent.popleft()[1]
                if self._in_window + count <= self.rate or not self._sent:
                    self._sent.append((now, count))
                    self._in_window += count
                    return True
                delay = self._sent[0][0] + 1.0 - now
            if stop.wait(max(delay, 0.001)):
                return False


@dataclass
class _Outcome:
    status: str
    message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    attempts: int = 0
    sent_at: datetime | None = None
    request_id: str | None = None


@dataclass
class _Job:
    label: Any
    to: str
    fields: dict[str, str]


class _Run:
    """One call of :func:`send`: the shared state of its worker threads."""

    def __init__(
        self,
        client: KaleyraClient,
        *,
        limiter: RateLimiter | None,
        max_attempts: int,
        retry_ambiguous: bool,
        backoff: float,
        max_backoff: float,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.max_attempts = max(1, max_attempts)
        self.retry_ambiguous = retry_ambiguous
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stop = threading.Event()
        self.stop_reason: tuple[str, str] | None = None

    def _pause(self, attempt: int, at_least: float | None = None) -> bool:
        """Sleep before the next attempt; False if the run was stopped meanwhile."""
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2
        if at_least is not None:
            delay = max(delay, min(at_least, self.max_backoff * 4))
        return not self.stop.wait(delay)

    def deliver(self, job: _Job) -> _Outcome:
        """Send one job, retrying only what is safe to retry."""
        last = _Outcome("not_sent", error_code="NOTSENT", error_message="the run stopped first")
        for attempt in range(1, self.max_attempts + 1):
            if self.stop.is_set():
                return self._stopped(last, attempt - 1)
            if self.limiter is not None and not self.limiter.acquire(1, self.stop):
                return self._stopped(last, attempt - 1)
            try:
                result = self.client.post(job.fields)
            except ConnectError as exc:
                last = _Outcome("not_sent", error_code="CONNECT", error_message=str(exc))
            except RateLimitError as exc:
                last = _api_outcome("not_sent", exc)
                if attempt < self.max_attempts and self._pause(attempt, exc.retry_after):
                    continue
                last.attempts = attempt
                return last
            except AuthenticationError as exc:
                self.stop_reason = (exc.code, f"the run stopped: {exc}")
                self.stop.set()
                last = _api_outcome("not_sent", exc)
                last.attempts = attempt
                return last
            except ServerError as exc:
                if exc.is_safe_to_retry:
                    last = _api_outcome("not_sent", exc)
                else:
                    out = _api_outcome("unknown", exc)
                    out.error_message = (
                        f"{out.error_message} — the server failed while handling the request: "
                        "it may have been sent; check before resending"
                    )
                    if self.retry_ambiguous and attempt < self.max_attempts:
                        last = out
                        if self._pause(attempt):
                            continue
                    out.attempts = attempt
                    return out
            except InvalidResponseError as exc:
                out = _api_outcome("unknown", exc)
                out.attempts = attempt
                return out
            except ApiError as exc:
                out = _api_outcome("failed", exc)
                out.attempts = attempt
                return out
            except AmbiguousSendError as exc:
                out = _Outcome("unknown", error_code=exc.code, error_message=str(exc))
                if self.retry_ambiguous and attempt < self.max_attempts:
                    last = out
                    if self._pause(attempt):
                        continue
                out.attempts = attempt
                return out
            else:
                return _success(result, job, attempt)
            if attempt < self.max_attempts and not self._pause(attempt):
                return self._stopped(last, attempt)
        last.attempts = self.max_attempts
        if last.status == "not_sent":
            last.error_message = (
                f"{last.error_message} (gave up after {self.max_attempts} attempts)"
            )
        return last

    def _stopped(self, last: _Outcome, attempts: int) -> _Outcome:
        code, message = self.stop_reason or ("NOTSENT", "the run stopped before this row was sent")
        if last.status == "not_sent" and last.error_code not in (None, "NOTSENT"):
            message = f"{message}; earlier attempt: {last.error_message}"
        return _Outcome("not_sent", error_code=code, error_message=message, attempts=attempts)


def _api_outcome(status: str, exc: ApiError) -> _Outcome:
    return _Outcome(
        status,
        error_code=exc.code,
        error_message=exc.message,
        http_status=exc.http_status,
        sent_at=datetime.now(UTC),
    )


def _success(result: SendResult, job: _Job, attempt: int) -> _Outcome:
    now = datetime.now(UTC)
    message_id = result.message_id_for(job.to)
    if message_id is None:
        return _Outcome(
            "unknown",
            error_code="NORECIPIENT",
            error_message="the API accepted the request but its answer does not list this "
            "recipient: check before resending",
            http_status=result.http_status,
            attempts=attempt,
            sent_at=now,
            request_id=result.request_id,
        )
    return _Outcome(
        "sent",
        message_id=message_id,
        http_status=result.http_status,
        attempts=attempt,
        sent_at=now,
        request_id=result.request_id,
    )


def _jobs(valid: pd.DataFrame, sender: str | None, client: KaleyraClient) -> list[_Job]:
    columns = [c for c in _FIELDS if c in valid.columns]
    frame = valid[columns].astype("object")
    frame = frame.where(frame.notna(), None)
    fallback = sender or client.sender
    jobs = []
    missing_from = []
    for label, values in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        fields = {k: str(v) for k, v in zip(columns, values, strict=True) if v is not None}
        if "from" not in fields:
            if fallback is None:
                missing_from.append(label)
                continue
            fields["from"] = fallback
        fields.setdefault("channel", "whatsapp")
        jobs.append(_Job(label, fields["to"], fields))
    if missing_from:
        raise ConfigurationError(
            f"{len(missing_from)} row(s) have no sender (first: row {missing_from[0]}): fill the "
            "'from' column, pass sender= (--from), or set KALEYRA_FROM"
        )
    return jobs


def send(
    data: pd.DataFrame | ValidationReport,
    client: KaleyraClient,
    *,
    concurrency: int = 8,
    rate_limit: float | None = None,
    sender: str | None = None,
    default_region: str | None = None,
    progress: bool = True,
    max_attempts: int = 4,
    retry_ambiguous: bool = False,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> pd.DataFrame:
    """Send every valid row and return one result per input row.

    Args:
        data: recipients (validated first; invalid rows are never sent) or a
            :class:`ValidationReport`.
        client: where to send, e.g. ``KaleyraClient.from_env()`` or ``emulator.client()``.
        concurrency: requests in flight at once.
        rate_limit: at most this many messages per second (None: no limit).
        sender: the ``from`` number for rows that leave it empty (before the client's).
        default_region: for validating a DataFrame: the region of national numbers.
        progress: show a progress bar (a widget in Jupyter, a text bar in a terminal).
        max_attempts: attempts per row for failures that are safe to retry.
        retry_ambiguous: also retry when the request may already have been processed
            (a timeout, a dropped connection, a 500): this may send a message twice.
        backoff, max_backoff: seconds of the first retry delay, and the cap.

    Returns:
        A DataFrame with the input's index and the columns ``to``, ``status``,
        ``message_id``, ``error_code``, ``error_message``, ``http_status``, ``attempts``,
        ``sent_at``, ``request_id``. ``results.attrs["run"]`` describes the run.

    Raises:
        ConfigurationError: some valid rows have no sender from any source.

    Example:
        >>> with Emulator() as emu:  # doctest: +SKIP
        ...     results = send(report, emu.client(sender="+911234567890"))
    """
    if isinstance(data, ValidationReport):
        report = data
        if sender is None:
            sender = report.sender
    elif isinstance(data, pd.DataFrame):
        report = validate(data, default_region=default_region, sender=sender)
    else:
        raise TypeError(
            f"send() takes a DataFrame or a ValidationReport, not {type(data).__name__}"
        )
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, not {concurrency}")
    jobs = _jobs(report.valid, sender, client)
    run = _Run(
        client,
        limiter=RateLimiter(rate_limit) if rate_limit else None,
        max_attempts=max_attempts,
        retry_ambiguous=retry_ambiguous,
        backoff=backoff,
        max_backoff=max_backoff,
    )
    started = datetime.now(UTC)
    outcomes, interrupted = _execute(run, jobs, concurrency, progress)
    results = _assemble(report, jobs, outcomes, run.stop_reason)
    results.attrs["run"] = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_url": client.base_url,
        "sid": client.sid,
        "concurrency": concurrency,
        "rate_limit": rate_limit,
        "max_attempts": max_attempts,
        "retry_ambiguous": retry_ambiguous,
        "interrupted": interrupted,
        "source": report.data.attrs.get("source"),
    }
    counts = results["status"].value_counts()
    log.info("send finished: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return results


def _execute(
    run: _Run, jobs: list[_Job], concurrency: int, progress: bool
) -> tuple[dict[Any, _Outcome], bool]:
    outcomes: dict[Any, _Outcome] = {}
    if not jobs:
        return outcomes, False
    counts = dict.fromkeys(("sent", "failed", "unknown", "not_sent"), 0)
    bar = tqdm(total=len(jobs), unit="msg", desc="sending", disable=not progress, leave=True)
    pending: dict[Future[_Outcome], _Job] = {}
    queue = iter(jobs)
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kwa-send")
    try:
        try:
            while True:
                while len(pending) < concurrency * 2 and not run.stop.is_set():
                    job = next(queue, None)
                    if job is None:
                        break
                    pending[pool.submit(run.deliver, job)] = job
                if not pending:
                    break
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    outcome = future.result()
                    outcomes[job.label] = outcome
                    counts[outcome.status] += 1
                    bar.update(1)
                if done:
                    bar.set_postfix(counts, refresh=False)
        except KeyboardInterrupt:
            interrupted = True
            run.stop_reason = ("NOTSENT", "the run was interrupted before this row was sent")
            run.stop.set()
            log.warning("interrupted: waiting for %d request(s) in flight", len(pending))
            try:
                done, _ = wait(pending, timeout=_GRACE_SECONDS)
            except KeyboardInterrupt:
                done = set()
            for future in list(pending):
                job = pending.pop(future)
                if future in done:
                    outcomes[job.label] = future.result()
                elif future.cancel():
                    continue
                else:
                    outcomes[job.label] = _Outcome(
                        "unknown",
                        error_code="INTERRUPTED",
                        error_message="interrupted while the request was in flight: it may "
                        "have been sent; check before resending",
                    )
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        bar.set_postfix(counts, refresh=False)
        bar.close()
    return outcomes, interrupted


def _assemble(
    report: ValidationReport,
    jobs: list[_Job],
    outcomes: dict[Any, _Outcome],
    stop_reason: tuple[str, str] | None,
) -> pd.DataFrame:
    index = report.data.index
    n = len(index)
    records: dict[str, list[Any]] = {
        name: [None] * n
        for name in (
            "to",
            "status",
            "message_id",
            "error_code",
            "error_message",
            "http_status",
            "attempts",
            "sent_at",
            "request_id",
        )
    }
    position = {label: i for i, label in enumerate(index)}
    written = report.data["to"].astype("object")
    for i, value in enumerate(written):
        records["to"][i] = None if pd.isna(value) else value
    if not report.invalid.empty:
        for label, code, reasons in zip(
            report.invalid.index,
            report.invalid["error_code"],
            report.invalid["errors"],
            strict=True,
        ):
            i = position[label]
            records["status"][i] = "rejected"
            records["error_code"][i] = code
            records["error_message"][i] = reasons
            records["attempts"][i] = 0
    stop_reason = stop_reason or ("NOTSENT", "the run stopped before this row was sent")
    for job in jobs:
        i = position[job.label]
        records["to"][i] = job.to
        outcome = outcomes.get(job.label) or _Outcome(
            "not_sent", error_code=stop_reason[0], error_message=stop_reason[1]
        )
        records["status"][i] = outcome.status
        records["message_id"][i] = outcome.message_id
        records["error_code"][i] = outcome.error_code
        records["error_message"][i] = outcome.error_message
        records["http_status"][i] = outcome.http_status
        records["attempts"][i] = outcome.attempts
        records["sent_at"][i] = outcome.sent_at
        records["request_id"][i] = outcome.request_id
    assert all(s in STATUSES for s in records["status"]), "every row has a final status"
    return results_frame(records, index)
