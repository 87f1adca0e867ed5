"""``send``'s pacing options: ``--rate`` (per sender number; ``--rate NUMBER=N`` for one),
``--account-rate``, ``--concurrency``, ``--max-concurrency``,
``--per-recipient-interval`` and ``--max-recipients-per-request``, handed to the command as
one :class:`kwa_batch.Pacing` (whose defaults they show)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ..errors import ConfigurationError
from ..fields import MAX_RECIPIENTS_PER_REQUEST
from ..sending.pacing import Pacing
from .options import Command

__all__ = ["RATE", "pacing_options"]

_DEFAULT = Pacing()
_NAMES = (
    "account_rate",
    "concurrency",
    "max_concurrency",
    "per_recipient_interval",
    "max_recipients_per_request",
)


class _Rate(click.ParamType):  # type: ignore[type-arg]
    """``--rate``: messages per second, 1 or more, or ``none`` for no limit.

    (``ParamType`` is generic only from click 8.2: not subscripted, for click 8.1.)
    """

    name = "N|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text == "none":
            return None
        try:
            rate = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a rate: give messages per second (e.g. 80) or none")
        try:
            Pacing(rate_limit=rate)
        except ConfigurationError:
            self.fail(f"{value!r}: give at least 1 message per second, or none for no limit")
        return rate


RATE = _Rate()


class _SenderRate(click.ParamType):  # type: ignore[type-arg]
    """``--rate``: a rate for every number (``N|none``), or one number's (``NUMBER=N``)."""

    name = "N|none|NUMBER=N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        if "=" not in text:
            return (None, RATE.convert(text, param, ctx))
        number, _, rate = text.partition("=")
        converted = RATE.convert(rate, param, ctx)
        if converted is None:
            self.fail(f"{value!r}: give the number's rate, at least 1 message per second")
        try:
            Pacing(sender_rates={number.strip(): converted})
        except ConfigurationError:
            self.fail(f"{value!r}: give NUMBER=N, a number with + and its country code")
        return (number.strip(), converted)


def _rates(given: tuple[tuple[str | None, float | None], ...]) -> dict[str, Any]:
    """``--rate``'s values as Pacing's ``rate_limit`` and ``sender_rates``."""
    every = [rate for number, rate in given if number is None]
    if len(every) > 1:
        raise click.BadParameter(
            "give one rate for every number (--rate N) and NUMBER=N for one number's own",
            param_hint="'--rate'",
        )
    numbers = [n for n, _ in given if n is not None]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise click.BadParameter(
            f"{twice[0]} is given two rates: give each number's own rate once",
            param_hint="'--rate'",
        )
    out: dict[str, Any] = {"sender_rates": {n: r for n, r in given if n is not None}}
    if every:
        out["rate_limit"] = every[0]
    return out


def _apply(command: Command, options: list[Callable[[Command], Command]]) -> Command:
    for option in reversed(options):  # the first listed shows first in --help
        command = option(command)
    return command


def pacing_options(command: Command) -> Command:
    """The pacing options, gathered as ``pacing`` (a :class:`~kwa_batch.Pacing`)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        rates = _rates(kwargs.pop("rate_limit"))
        kwargs["pacing"] = Pacing(**{name: kwargs.pop(name) for name in _NAMES}, **rates)
        return command(*args, **kwargs)

    rate = f"{_DEFAULT.rate_limit:g}"
    return _apply(
        run,
        [
            click.option(
                "--rate",
                "rate_limit",
                multiple=True,
                type=_SenderRate(),
                help="At most N messages per second per sender number, over any second (a "
                f"request to 100 recipients counts 100). {rate} is WhatsApp's default per "
                "business number; --rate 1000 after an upgrade, --rate none for no limit; "
                "--rate +91…=1000 (repeatable) sets one number's own. A 429 lowers it for "
                f"a while. [default: {rate}]",
            ),
            click.option(
                "--account-rate",
                type=click.FloatRange(min=1),
                metavar="N",
                help="At most N messages per second across all the sender numbers together "
                "[default: no cap beyond each number's].",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, 1024),
                help="Requests in flight at once, pinned [default: as many as --rate needs at "
                "the latency seen].",
            ),
            click.option(
                "--max-concurrency",
                default=_DEFAULT.max_concurrency,
                show_default=True,
                type=click.IntRange(1, 1024),
                help="The most requests in flight that the rate may open.",
            ),
            click.option(
                "--per-recipient-interval",
                default=_DEFAULT.per_recipient_interval,
                show_default=True,
                type=click.FloatRange(min=0),
                metavar="SECONDS",
                help="Seconds between two messages to the same number (WhatsApp's pair rate); "
                "other rows go meanwhile. 0: none.",
            ),
            click.option(
                "--max-recipients-per-request",
                default=_DEFAULT.max_recipients_per_request,
                show_default=True,
                type=click.IntRange(1, MAX_RECIPIENTS_PER_REQUEST),
                help="Rows sharing one message go in one request of up to this many recipients "
                "(1: one request per row); at a rate, a little fewer when that fills each "
                "second better (80 at --rate 80, 75 at --rate 150).",
            ),
        ],
    )
