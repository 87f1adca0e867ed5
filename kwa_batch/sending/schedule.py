"""A campaign's schedule: which rows may leave now, and until when the others are held back.

A run never sleeps for hours: it sends what may go now and reports the rest ``not_sent``
with a code and a message saying when they can go; the same command run later (cron every
15 minutes) sends them, the journal carrying them over. The checks, in order:

- **expiry** (``expires=``): from then on, every row not sent yet is ``not_sent`` with
  ``KWA029`` and recorded so in the journal, which never sends it again (a terminal state);
- **the start** (``not_before=``): before it nothing leaves (``KWA028``);
- **quiet hours** (``quiet_hours="21:00-09:00"``) in the recipient's local time, for every
  time zone libphonenumber gives the number (a country or a toll-free range spanning several
  zones is sent only when it is outside the quiet hours in all of them: never wake anybody).
  A number whose zone is unknown is *not guessed* (a country's zones can span half a day):
  it is held with ``KWA031``, as is a number whose zones share no time outside the quiet
  hours within two days (``KWA027`` is the ordinary hold);
- **the daily messaging limit** (``daily_limit=N``): unique recipients of business-initiated
  messages (the template types) in any moving 24 hours, counting those the journals in
  ``history=`` recorded as sent (see :mod:`~kwa_batch.sending.history`) and those this run
  sends; the rest wait for room (``KWA030``).

The settings are one public value, :class:`Schedule` (``kb.Schedule``), checked when it is
made. :class:`Holds` is a schedule at a moment: the holds of one run, with the expiry of a
duration counted from that moment. These checks run before anything is sent (to plan, and
to say what the run will do), and again for every request at the moment it leaves
(:mod:`~kwa_batch.sending.departure`). ``Holds.make(schedule, now=...)`` plans as if it were
that time (``kb.estimate``, a dry run); a real send goes by
:func:`kwa_batch.sending.clock.now` and refuses a set clock.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import numbers
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import phonenumbers
from phonenumbers import timezone as phone_timezones

from ..errors import Code, ConfigurationError
from ..results import ResultsBuilder, Status
from . import clock
from .daily_limit import DailyWindow
from .history import recent_recipients
from .journal import RunJournal

__all__ = [
    "BUSINESS_INITIATED",
    "EXPIRED",
    "Held",
    "Holds",
    "QuietHours",
    "Schedule",
    "apply_holds",
    "check_moment",
    "hold_back",
    "parse_duration",
    "quiet_verdict",
    "recent",
    "when",
    "zones_of",
]

log = logging.getLogger(__name__)

#: The codes of rows held back (see :data:`kwa_batch.errors.ERROR_CODES`).
QUIET, NOT_YET, EXPIRED, LIMIT, NO_ZONE = (
    Code.QUIET_HOURS,
    Code.NOT_YET,
    Code.EXPIRED,
    Code.DAILY_LIMIT,
    Code.NO_ZONE,
)
#: Message types that open a conversation (counted by the daily messaging limit).
BUSINESS_INITIATED = frozenset({"template", "mediatemplate", "authenticationtemplate"})
_DAY = timedelta(hours=24)
# libphonenumber's metadata keeps some zones' old names (links in the tz database): shown
# to people, the current ones.
_CURRENT_NAMES = {
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Atlantic/Faeroe": "Atlantic/Faroe",
    "Europe/Kiev": "Europe/Kyiv",
    "Pacific/Truk": "Pacific/Chuuk",
    "Pacific/Ponape": "Pacific/Pohnpei",
    "America/Godthab": "America/Nuuk",
}
#: The longest expiry given as a duration.
_LONGEST = timedelta(days=366)
#: The farthest a time setting may be from the real now, either way.
_FARTHEST = timedelta(days=3653)
_SEARCH = timedelta(hours=48)
_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local time when nothing is sent, e.g. 21:00 to 09:00 (may wrap)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str | QuietHours) -> QuietHours:
        """``"21:00-09:00"`` → QuietHours(21:00, 09:00).

        >>> QuietHours.parse("21:00-09:00")
        QuietHours(start=datetime.time(21, 0), end=datetime.time(9, 0))
        """
        if isinstance(text, QuietHours):
            return text
        found = _HOURS.fullmatch(str(text))
        bounds = None
        if found:
            h1, m1, h2, m2 = (int(g) for g in found.groups())
            if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
                bounds = (time(h1, m1), time(h2, m2))
        if bounds is None or bounds[0] == bounds[1]:
            raise ConfigurationError(
                f"quiet hours {text!r}: write them as HH:MM-HH:MM in the recipient's local "
                "time, e.g. 21:00-09:00 (from 21:00 to 09:00 the next morning); the two times "
                "must differ"
            )
        return cls(*bounds)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def is_quiet(self, local: datetime) -> bool:
        """Whether this local time falls in the quiet hours (start included, end excluded)."""
        now = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def next_end(self, local: datetime) -> datetime:
        """The first end of the quiet hours at or after ``local`` (same zone)."""
        return _next(local, self.end)

    def next_start(self, local: datetime) -> datetime:
        """The first start of the quiet hours after ``local`` (same zone). On a night the
        clocks skip that wall time, the earlier of its two readings: never late."""
        found = _next(local, self.start, strictly=True)
        other = found.replace(fold=1)
        return min(found, other, key=lambda moment: moment.astimezone(UTC))


def _next(local: datetime, at: time, *, strictly: bool = False) -> datetime:
    """The first ``at`` (local wall time) at or after ``local`` (after, when ``strictly``)."""
    moment = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0, fold=0)
    if moment > local or (moment == local and not strictly):
        return moment
    return (moment.replace(tzinfo=None) + _DAY).replace(tzinfo=local.tzinfo)


def parse_duration(text: str) -> timedelta:
    """``"6h"`` → 6 hours (units s, m, h, d).

    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    """
    found = _DURATION.fullmatch(text)
    if not found:
        raise ConfigurationError(
            f"duration {text!r}: write a number and a unit, e.g. 30m, 6h or 2d"
        )
    try:
        duration = timedelta(**{_UNITS[found.group(2).lower()]: float(found.group(1))})
    except OverflowError:
        duration = _LONGEST * 2
    return _bounded_duration(duration, repr(text))


def _bounded_duration(duration: timedelta, shown: str) -> timedelta:
    if not timedelta(0) <= duration <= _LONGEST:
        raise ConfigurationError(
            f"duration {shown}: a campaign's expiry is from 0 to {_LONGEST.days} days away; "
            "leave the expiry out for a campaign that never expires"
        )
    return duration


def _moment_or_duration(text: str) -> datetime | timedelta:
    """``"6h"`` → 6 hours; ``"2026-12-01T18:00+05:30"`` → that time."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        pass
    if _DURATION.fullmatch(text):
        return parse_duration(text)  # a duration out of range says so
    raise ConfigurationError(
        f"expires={text!r}: give a duration from now (30m, 6h or 2d), a time with its "
        "offset (2026-12-01T18:00+05:30) or a timezone-aware datetime"
    )


def _aware(value: datetime, name: str) -> datetime:
    """``value`` in UTC, refused when naive or more than :data:`_FARTHEST` from now."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigurationError(
            f"{name}={value!r}: give a timezone-aware datetime, e.g. "
            "datetime(2026, 12, 1, 9, 0, tzinfo=UTC) (a naive one is ambiguous)"
        )
    real = clock.now()
    try:
        moment = value.astimezone(UTC)
        near = abs(moment - real) <= _FARTHEST
    except OverflowError:
        near = False
    if not near:
        hint = " (a campaign that never expires: leave the expiry out)" if name == "expires" else ""
        raise ConfigurationError(
            f"{name}={value.isoformat()}: more than {_FARTHEST.days // 365} years from now "
            f"({real:%Y-%m-%d}); give a time within them{hint}"
        )
    return moment


def check_moment(value: datetime, name: str) -> datetime:
    """``value`` in UTC, or a one-line :class:`ConfigurationError` saying why not (naive, or
    more than ten years from now): for the command line to check an option early."""
    return _aware(value, name)


@dataclass(frozen=True)
class Schedule:
    """When a campaign may send: quiet hours, a start, an expiry and a daily limit. Shared by
    :func:`kwa_batch.send`, :func:`kwa_batch.estimate` and ``kwa-batch send``'s options;
    checked when it is made. Every setting defaults to None: nothing is held back.

    Rows that may not leave now are ``not_sent`` with a code and when they can go; the same
    command run later (with the same journal) sends them. Each hold is decided before
    sending and again when a request is about to leave.

    Args:
        quiet_hours: ``"HH:MM-HH:MM"`` (e.g. ``"21:00-09:00"``) in the recipient's local
            time, in every time zone of the number (``KWA027``; a number whose zone is
            unknown is not guessed: ``KWA031``).
        not_before: a timezone-aware datetime: nothing leaves before it (``KWA028``).
        expires: a timezone-aware datetime, or a duration (a timedelta, or text such as
            ``"6h"``, ``"90m"``, ``"2d"``) counted from the campaign's first run (its journal
            keeps it): rows not sent by then are never sent (``KWA029``). An ISO text with
            its offset is read as a time.
        daily_limit: unique recipients of templates in any moving 24 hours, counting those
            of this run's journal and of ``history`` (``KWA030``).
        history: a folder of the journals of earlier runs (read only, sub-folders
            included) that share the daily limit.

    Raises:
        ConfigurationError: a value that cannot be read or is out of range (a naive
            datetime, a time more than 10 years away, a duration over 366 days, a
            ``daily_limit`` below 1, a ``history`` that is not a folder), naming the
            setting, the value and what to write.

    Example:
        >>> Schedule(quiet_hours=" 21:00 - 09:00", expires="6h").expires
        datetime.timedelta(seconds=21600)
    """

    quiet_hours: str | None = None
    not_before: datetime | None = None
    expires: datetime | timedelta | str | None = None
    daily_limit: int | None = None
    history: Path | str | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.quiet_hours is not None:
            put("quiet_hours", str(QuietHours.parse(self.quiet_hours)))
        if self.not_before is not None:
            put("not_before", _aware(self.not_before, "not_before"))
        expires = self.expires
        if isinstance(expires, str):
            expires = _moment_or_duration(expires)
        if isinstance(expires, timedelta):
            put("expires", _bounded_duration(expires, str(expires)))
        elif expires is not None:
            put("expires", _aware(expires, "expires"))
        limit = self.daily_limit
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
                raise ConfigurationError(
                    f"Schedule(daily_limit={limit!r}): give a whole number of recipients, "
                    "1 or more (your messaging tier: 250, 2000, 10000...), or None for no limit"
                )
            put("daily_limit", int(limit))  # a NumPy integer read from a frame, as an int
        if self.history is not None:
            folder = Path(self.history)
            if not folder.is_dir():
                raise ConfigurationError(
                    f"history {folder}: not a folder; give the folder that holds the journals "
                    "of earlier runs (--history DIR)"
                )
            put("history", folder)

    @property
    def active(self) -> bool:
        """Whether anything may be held back at all (``history`` alone holds nothing)."""
        return any(
            getattr(self, name) is not None
            for name in ("quiet_hours", "not_before", "expires", "daily_limit")
        )


@dataclass(frozen=True)
class Holds:
    """What holds rows back in one run: a :class:`Schedule` at a moment (``now``), its
    expiry made a time. Build with :meth:`make`."""

    now: datetime
    quiet_hours: QuietHours | None = None
    not_before: datetime | None = None
    expires: datetime | None = None
    daily_limit: int | None = None
    history: Path | None = None
    #: ``expires`` was given as a duration: a later run of the campaign (same journal)
    #: keeps the first run's expiry instead of counting the duration from its own start.
    expires_relative: bool = False

    @classmethod
    def make(cls, schedule: Schedule | None = None, *, now: datetime | None = None) -> Holds:
        """The holds of ``schedule`` at ``now`` (default: the real clock); an expiry given
        as a duration counts from ``now``."""
        schedule = schedule if schedule is not None else Schedule()
        at = _aware(now, "now") if now is not None else clock.now()
        expires = schedule.expires
        relative = isinstance(expires, timedelta)
        if isinstance(expires, timedelta):
            expires = at + expires
        assert expires is None or isinstance(expires, datetime)  # made so by Schedule
        return cls(
            now=at,
            quiet_hours=QuietHours.parse(schedule.quiet_hours) if schedule.quiet_hours else None,
            not_before=schedule.not_before,
            expires=expires,
            daily_limit=schedule.daily_limit,
            history=Path(schedule.history) if schedule.history is not None else None,
            expires_relative=relative,
        )

    def settings(self) -> dict[str, Any]:
        """The settings as the journal records them per run (times in ISO 8601)."""
        found: dict[str, Any] = {}
        if self.active:
            found["now"] = self.now.isoformat(timespec="seconds")
        for name in ("quiet_hours", "not_before", "expires", "daily_limit", "history"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                found[name] = value.isoformat()
            elif value is not None:
                found[name] = value if isinstance(value, int) else str(value)
        return found

    def anchored(self, journal: RunJournal | None) -> Holds:
        """With an expiry given as a duration, the earliest expiry the journal's runs
        recorded: ``--expire-after 6h`` run from cron counts from the campaign's first run."""
        if not self.expires_relative or journal is None or self.expires is None:
            return self
        earliest = self.expires
        for settings in journal.recorded_settings():
            try:
                recorded = settings.get("expires")
                moment = datetime.fromisoformat(recorded) if recorded else None
            except (TypeError, ValueError, AttributeError):
                continue  # a run without pacing, or settings that do not parse
            if moment is not None and moment.tzinfo is not None and moment < earliest:
                earliest = moment
        return dataclasses.replace(self, expires=earliest)

    @property
    def active(self) -> bool:
        """Whether anything may be held back at all."""
        return any(v is not None for v in (self.quiet_hours, self.not_before, self.expires)) or (
            self.daily_limit is not None
        )


@dataclass
class Held:
    """The rows held back by one run: results fields per label, and counts per code."""

    fields: dict[Hashable, dict[str, object]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, labels: list[Hashable], code: str, message: str) -> None:
        """Hold these rows with this code and message."""
        row = {
            "status": Status.NOT_SENT,
            "error_code": code,
            "error_message": message,
            "attempts": 0,
        }
        for label in labels:
            self.fields[label] = row
        if labels:
            self.counts[code] = self.counts.get(code, 0) + len(labels)

    def describe(self) -> str:
        """One line for the headline, e.g. ``held back: 3 quiet hours, 2 daily limit``."""
        if not self.counts:
            return ""
        parts = ", ".join(f"{n:,} {_REASONS[c]}" for c, n in sorted(self.counts.items()))
        return f"held back: {parts}"


_REASONS: dict[str, str] = {
    QUIET: "in quiet hours",
    NOT_YET: "before the start",
    EXPIRED: "expired",
    LIMIT: "over the daily limit",
    NO_ZONE: "time zone unknown",
}


def when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def hold_back(
    messages: pd.DataFrame, holds: Holds, sent_before: dict[str, datetime]
) -> tuple[pd.Index, Held]:
    """Split the messages to send into those that may go now and those held back.

    Args:
        messages: the message frame of the rows still to send (``to`` in E.164, ``type``).
        holds: the settings and the clock.
        sent_before: recipient → latest time a business-initiated message was recorded
            sent to them (from the history journals), for the daily limit.

    Returns:
        The labels that may go now, and the rows held back.
    """
    held = Held()
    now = holds.now
    labels = list(messages.index)
    if holds.expires is not None and now >= holds.expires:
        held.add(labels, EXPIRED, f"the campaign expired at {when(holds.expires)}: never sent")
        return messages.index[:0], held
    if holds.not_before is not None and now < holds.not_before:
        held.add(labels, NOT_YET, f"the campaign starts at {when(holds.not_before)}")
        return messages.index[:0], held
    go = pd.Series(True, index=messages.index)
    if holds.quiet_hours is not None:
        # Judged once per set of zones (a campaign has few), then mapped onto the rows.
        numbers = messages["to"].astype("str")
        zones = {number: zones_of(number) for number in numbers.unique()}
        verdicts = {
            found: quiet_verdict(found, holds.quiet_hours, now, holds.expires)
            for found in set(zones.values())
        }
        verdict = numbers.map({n: verdicts[z] for n, z in zones.items()})
        for (code, message), rows in verdict.groupby(verdict, sort=False).groups.items():
            if code is not None:
                held.add(list(rows), code, message)
                go.loc[rows] = False
    if holds.daily_limit is not None:
        _limit(messages[go.to_numpy()], holds, sent_before, held, go)
    return messages.index[go.to_numpy()], held


def quiet_verdict(
    zones: tuple[ZoneInfo, ...], quiet: QuietHours, now: datetime, expires: datetime | None
) -> tuple[str | None, str]:
    """(code, message) to hold a number in these zones now, or (None, "") when it may go."""
    if not zones:
        return NO_ZONE, (
            f"quiet hours {quiet}: the time zone of this number is unknown, and it is not "
            "guessed; send it without quiet hours, or remove it"
        )
    local = [now.astimezone(zone) for zone in zones]
    if not any(quiet.is_quiet(t) for t in local):
        return None, ""
    # The first moment every zone is out of the quiet hours: one of the zones' ends.
    candidates = sorted(quiet.next_end(t).astimezone(UTC) for t in local)
    for _ in range(3):  # the ends of the next days too, when zones overlap badly
        for moment in candidates:
            if moment - now <= _SEARCH and not any(
                quiet.is_quiet(moment.astimezone(z)) for z in zones
            ):
                shown = moment.astimezone(zones[0])
                names = ", ".join(str(z) for z in zones[:3]) + (" …" if len(zones) > 3 else "")
                message = (
                    f"quiet hours {quiet} in {names}: can go from "
                    f"{shown:%Y-%m-%d %H:%M} {zones[0]} ({when(moment)})"
                )
                if expires is not None and moment >= expires:
                    message += f", after the campaign expires at {when(expires)}"
                return QUIET, message
        candidates = [c + _DAY for c in candidates]
    return NO_ZONE, (
        f"quiet hours {quiet}: this number's time zones ({len(zones)}) share no time outside "
        "them in the next two days; send it without quiet hours, or remove it"
    )


@functools.lru_cache(maxsize=65_536)
def zones_of(number: str) -> tuple[ZoneInfo, ...]:
    """The time zones libphonenumber gives this E.164 number (empty when unknown)."""
    try:
        names = phone_timezones.time_zones_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return ()
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(_CURRENT_NAMES.get(name, name)))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # "Etc/Unknown", or a zone this system's tz database lacks
    return tuple(zones)


def _limit(
    candidates: pd.DataFrame,
    holds: Holds,
    sent_before: dict[str, datetime],
    held: Held,
    go: pd.Series,
) -> None:
    """Hold the business-initiated rows to new recipients beyond the daily limit."""
    assert holds.daily_limit is not None
    now = holds.now
    window = DailyWindow(holds.daily_limit, sent_before)
    business = candidates[candidates["type"].fillna("text").str.lower().isin(BUSINESS_INITIATED)]
    unique = list(dict.fromkeys(business["to"].astype("str")))
    new = [n for n in unique if not window.counted(n, now)]
    allowed = window.admit(new, now)
    refused = (n for n, ok in zip(new, allowed, strict=True) if not ok)
    over = {number: k for k, number in enumerate(refused)}
    if not over:
        return
    times = window.rooms(len(over), admitted=sum(allowed), now=now)
    numbers = business["to"].astype("str")
    waiting = numbers[numbers.isin(over.keys())]
    times = [times[over[number]] for number in waiting]
    texts = pd.Series(
        [
            f"daily messaging limit of {holds.daily_limit:,} unique recipients in 24 h "
            f"reached: room from {when(at)}"
            for at in times
        ],
        index=waiting.index,
    )
    for text, rows in texts.groupby(texts, sort=False).groups.items():
        held.add(list(rows), LIMIT, str(text))
    go.loc[waiting.index] = False


def recent(holds: Holds, journal: RunJournal | None) -> dict[str, datetime]:
    """Recipient → when a message to them may last have gone, within the 24 hours before
    ``holds.now``, from the history and the run's journal (empty without a daily limit)."""
    if holds.daily_limit is None:
        return {}
    return recent_recipients(holds.history, holds.now - _DAY, journal)


def apply_holds(
    holds: Holds,
    messages: pd.DataFrame,
    keys: pd.Series,
    results: ResultsBuilder,
    journal: RunJournal | None,
    sent_before: dict[str, datetime],
) -> tuple[pd.DataFrame, pd.Series, Held]:
    """The hook of :func:`~kwa_batch.sending.run.send`, before anything is sent: fill the
    results of the rows held back, record the expired ones in the journal (never sent
    again), and return the messages and keys that may go now.

    Args:
        holds: the settings, anchored to the journal (:meth:`Holds.anchored`).
        sent_before: what :func:`recent` read.
    """
    held = Held()
    if not holds.active or messages.empty:
        return messages, keys, held
    go, held = hold_back(messages, holds, sent_before)
    if not held.fields:
        return messages, keys, held
    if journal is None:
        log.warning(
            "the schedule held %d row(s) back without a journal: running again would send the "
            "others twice; pass journal= so that a later run sends only these",
            len(held.fields),
        )
    labels = list(held.fields)
    results.fill(labels, [held.fields[label] for label in labels])
    if journal is not None:
        expired = [label for label in labels if held.fields[label]["error_code"] == EXPIRED]
        journal.record(
            (str(keys.loc[label]), str(messages.at[label, "to"]), held.fields[label])
            for label in expired
        )
    log.info("holds: %s", held.describe())
    return messages.loc[go], keys.loc[go], held
