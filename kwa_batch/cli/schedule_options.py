"""``send``'s schedule options (issue #13): quiet hours, the start, the expiry, the daily limit
and the history, handed to the command as one :class:`kwa_batch.Schedule` (``schedule``); and
the planning clock (``now``) and the rate card (``rate_card``) of the dry-run estimate."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from .options import Command

if TYPE_CHECKING:
    from ..sending.schedule import Schedule

__all__ = ["needs_journal", "parse_moment", "schedule_options"]

_NAMES = ("quiet_hours", "not_before", "expires", "daily_limit", "history")
_DURATION = re.compile(r"\s*\d+(?:\.\d+)?\s*[smhd]\s*", re.IGNORECASE)


def parse_moment(value: str, option: str) -> datetime:
    """An ISO 8601 time with its offset, e.g. ``2026-12-01T09:00+05:30``; else a one-line
    error saying how to write it."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(
            f"{value!r}: write a time with its offset, e.g. 2026-12-01T09:00+05:30 or "
            "2026-12-01T03:30Z (without one it is ambiguous)",
            param_hint=option,
        )
    from ..errors import ConfigurationError
    from ..sending.schedule import check_moment

    try:
        check_moment(moment, option)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"{option}="), param_hint=option) from None
    return moment


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    return None if value is None else parse_moment(value, f"--{param.name}".replace("_", "-"))


def _expiry(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    if _DURATION.fullmatch(value):
        from ..errors import ConfigurationError
        from ..sending.schedule import parse_duration

        try:
            parse_duration(value)  # in range
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--expire-after") from None
        return value  # a duration from now: send() reads it
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: write a duration from now (30m, 6h, 2d) or a time with its offset "
            "(2026-12-01T18:00+05:30)",
            param_hint="--expire-after",
        ) from None
    return parse_moment(value, "--expire-after")


def _apply(command: Command, options: list[Callable[[Command], Command]]) -> Command:
    for option in reversed(options):  # the first listed shows first in --help
        command = option(command)
    return command


def needs_journal(schedule: Schedule, journal: str | None, dry_run: bool) -> str | None:
    """Why these options need ``--journal`` (None when they do not): held rows go in a later
    run, and only a journal keeps that run from sending the rest twice."""
    holding = [
        f"--{name.replace('_', '-')}"
        for name in ("quiet_hours", "not_before", "expires", "daily_limit")
        if getattr(schedule, name) is not None
    ]
    if not holding or journal or dry_run:
        return None
    return (
        f"{', '.join(holding).replace('--expires', '--expire-after')} hold rows back for a "
        "later run: add --journal FILE, so that the later run sends only what was held back "
        "(and nothing twice)"
    )


def schedule_options(command: Command) -> Command:
    """``--quiet-hours``, ``--not-before``, ``--expire-after``, ``--daily-limit`` and
    ``--history``, gathered as ``schedule`` (a :class:`~kwa_batch.Schedule`); ``--now`` and
    ``--rate-card`` as they are."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from ..sending.schedule import Schedule  # pandas: not for --help

        kwargs["schedule"] = Schedule(**{name: kwargs.pop(name) for name in _NAMES})
        return command(*args, **kwargs)

    return _apply(
        run,
        [
            click.option(
                "--quiet-hours",
                metavar="HH:MM-HH:MM",
                help="Send nobody anything in these hours of their own time zone (every zone "
                "of the number), e.g. 21:00-09:00; held rows go in a later run (exit 3).",
            ),
            click.option(
                "--not-before",
                metavar="TIME",
                callback=_moment,
                help="Send nothing before this time (ISO 8601 with its offset).",
            ),
            click.option(
                "--expire-after",
                "expires",
                metavar="DURATION|TIME",
                callback=_expiry,
                help="Rows not sent by then (6h, 90m, 2d from now, or a time) are never sent, "
                "even on resume.",
            ),
            click.option(
                "--daily-limit",
                type=click.IntRange(min=1),
                help="At most this many unique recipients of templates in any 24 hours (your "
                "messaging tier: 250, 2000, 10000, 100000), counting --history.",
            ),
            click.option(
                "--history",
                metavar="DIR",
                type=click.Path(file_okay=False, exists=True),
                help="Folder of journals of earlier runs (read only) that share the daily limit.",
            ),
            click.option(
                "--now",
                metavar="TIME",
                callback=_moment,
                help="With --dry-run: plan as if it were this time (the estimate, the rows held "
                "back); a real send refuses it and goes by the real clock.",
            ),
            click.option(
                "--rate-card",
                metavar="FILE",
                type=click.Path(dir_okay=False, exists=True),
                help="CSV of region,category,price,currency: --dry-run estimates the cost.",
            ),
        ],
    )
