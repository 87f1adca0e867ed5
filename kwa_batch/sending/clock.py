"""The one wall clock of a run: what every hold is judged by and every send is stamped with.

Expiry, ``not_before``, quiet hours and the daily limit are decided again at the moment each
request leaves (see :mod:`~kwa_batch.sending.departure`), and the journal and the results
stamp what happened; all of them read :func:`now`, so a decision and the record of it never
disagree. It is the real time: a set clock (``now=``) only plans (``estimate``, a dry run) and
is refused on a real send. Tests that must stand at a given moment replace :func:`now` (one
attribute, read at each call); nothing else does.

Rate limiting uses :func:`time.monotonic` instead (see :mod:`~kwa_batch.sending.limiter`):
intervals, not moments.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now", "stamp"]


def now() -> datetime:
    """The time now, in UTC (timezone-aware)."""
    return datetime.now(UTC)


def stamp() -> datetime:
    """:func:`now` to the millisecond: what a spreadsheet keeps exactly."""
    moment = now()
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
