"""The retry policy of a run: how often and how long to try again, and whether to risk twice.

What is *safe* to retry is the run's rule (see :mod:`~kwa_batch.sending.run`): a request that
was surely not processed (a refused connection, 429, 503). :class:`Retries` says how many
attempts, how far apart, and whether to also retry what may have been processed
(``retry_ambiguous``) or send again what a journal knows as ``unknown``
(``resend_unknown``): both may send a message twice, so both are off by default.
"""

from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["Retries"]


@dataclass(frozen=True)
class Retries:
    """How a run retries. Shared by :func:`kwa_batch.send` and ``kwa-batch send``; checked
    when it is made.

    Args:
        max_attempts: attempts per request for failures that are safe to retry (default 4).
        backoff: seconds before the first retry (default 0.5); each next one waits twice as
            long, with jitter (half to all of it), up to ``max_backoff``.
        max_backoff: the longest wait between two attempts, in seconds (default 30). A
            ``Retry-After`` may stretch it, to four times this at most.
        retry_ambiguous: also retry when the request may already have been processed (a
            timeout, a dropped connection, a 500): this may send a message twice (default
            False: such rows are ``unknown``).
        resend_unknown: with a journal, send again the rows whose outcome is unknown (in
            flight when a run died, or ambiguous): this may send a message twice (default
            False; ``--resend-unknown``).

    Raises:
        ConfigurationError: a value out of range, naming the setting, the value and what
            to give instead.

    Example:
        >>> Retries(max_attempts=1).max_backoff  # no retries at all
        30.0
    """

    max_attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    retry_ambiguous: bool = False
    resend_unknown: bool = False

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if (
            isinstance(attempts, bool)
            or not isinstance(attempts, numbers.Integral)
            or int(attempts) < 1
        ):
            self._refuse("max_attempts", attempts, "give a whole number, at least 1 (1: no retry)")
        object.__setattr__(self, "max_attempts", int(attempts))
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(float(value))
                or float(value) < 0
            ):
                self._refuse(name, value, "give zero or more seconds")
            object.__setattr__(self, name, float(value))
        for name in ("retry_ambiguous", "resend_unknown"):
            value = getattr(self, name)
            if value is not True and value is not False and value not in (0, 1):
                self._refuse(name, value, "give True or False")
            object.__setattr__(self, name, bool(value))

    @staticmethod
    def _refuse(name: str, value: object, fix: str) -> None:
        raise ConfigurationError(f"Retries({name}={value!r}): {fix}")

    def delay(self, attempt: int, at_least: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first):
        exponential, with jitter, capped; at least ``at_least`` (a ``Retry-After``) up to
        four times the cap."""
        delay: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2
        if at_least is not None:
            delay = max(delay, min(at_least, self.max_backoff * 4))
        return delay
