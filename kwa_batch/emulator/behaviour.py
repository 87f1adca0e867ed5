"""How the emulator is told to behave: its settings, as a few frozen types.

As httpx groups its ``Timeout`` and ``Limits``, :class:`~kwa_batch.emulator.server.Emulator`
takes its settings grouped by what they play:

- :class:`NetworkSettings`: the server as a peer on the network (``latency``, ``jitter``,
  ``read_timeout``, ``max_connections``);
- :class:`FaultSettings`: the misbehaviour asked for (fault ``probabilities``, the
  ``retry_after`` of the fault ``"429"``, the ``late_delay`` of the fault ``"late"``);
- :class:`LimitSettings`: the limits the platform enforces (the API's own ``rate_limit``,
  WhatsApp's ``throughput`` and ``pair_interval`` per sender number, and how an excess of
  those is ``answer``-ed);
- :class:`VersionSettings`: Kaleyra's API versions: which version each business number
  belongs to (``WA-401`` for a call by the other one) and the shape of v2's success body;
- :class:`CallbackSettings`: the callbacks it posts (:mod:`kwa_batch.emulator.callbacks`)
  and what they tell of each message after ``sent`` (:mod:`kwa_batch.emulator.fates`):
  prices, the marketing limit, opt-outs, numbers not on WhatsApp, the spam limit, replies.

Each keyword ``Emulator`` took before these types existed still works, and sets one field
of its type (:mod:`kwa_batch.emulator.keywords`): ``Emulator(latency=0.2)`` is
``Emulator(network=NetworkSettings(latency=0.2))``.

Example:
    >>> NetworkSettings(latency=0.2)
    NetworkSettings(latency=0.2, jitter=0.0, read_timeout=10.0, max_connections=None)
    >>> FaultSettings({"429": 0.05}).probabilities
    {'429': 0.05}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .._http.serving import DEFAULT_READ_TIMEOUT
from .limits import LIMIT_ANSWERS, positive_or_none
from .request_checks import e164_digits

__all__ = [
    "AFTER_PROCESSING",
    "BEFORE_PROCESSING",
    "CATEGORIES",
    "DEFAULT_BUTTONS",
    "DEFAULT_PRICES",
    "FAULTS",
    "V2_ANSWERS",
    "CallbackSettings",
    "FaultSettings",
    "LimitSettings",
    "NetworkSettings",
    "VersionSettings",
    "non_negative",
]

#: Fault names accepted by ``FaultSettings``, ``Emulator(faults=...)`` and ``inject``.
FAULTS = ("429", "503", "500", "reset", "late")
#: Faults served before the message is processed (nothing recorded).
BEFORE_PROCESSING = ("429", "503")
#: Faults served after the message is processed (it is in the ledger).
AFTER_PROCESSING = ("500", "reset", "late")
# Probabilities that add up to 1 within this are taken as 1 (0.1 + 0.2 + 0.7 > 1 in floats).
_SUM_TOLERANCE = 1e-9
# CallbackSettings' methods, proportions and durations.
_METHODS = ("GET", "POST")
_PROBABILITIES = ("delivered", "read", "reply", "stop", "button", "not_on_whatsapp")
_SECONDS = ("delay", "timeout", "marketing_window")
_NUMBER_SETS = ("opted_out", "not_on_whatsapp_numbers")
#: What WhatsApp bills a message as: a template's category, and ``service`` for the rest.
CATEGORIES = ("marketing", "utility", "authentication", "service")
#: The emulator's price of a delivered message per category. **Made up**: round figures of
#: the right size (a marketing template dearer than a utility one, service messages free),
#: not a rate card; real prices depend on the recipient's country and the provider.
DEFAULT_PRICES: Mapping[str, float] = {
    "marketing": 0.0125,
    "utility": 0.004,
    "authentication": 0.0035,
    "service": 0.0,
}
#: The quick-reply buttons a played customer taps: ``(text, payload)``.
DEFAULT_BUTTONS: tuple[tuple[str, str], ...] = (
    ("Stop promotions", "STOP_PROMOTIONS"),
    ("Yes, interested", "YES"),
)


def non_negative(name: str, value: Any) -> float:
    """``value`` as seconds, zero or more and finite.

    Raises:
        ValueError: anything else, naming ``name``.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be zero or more seconds, not {value!r}")
    return seconds


@dataclass(frozen=True)
class NetworkSettings:
    """The emulator as a peer on the network.

    Idle and slow clients cannot starve real ones: a client has ``read_timeout`` seconds
    for its request line and as many again for the rest of its request, a kept-alive
    connection as long for its next request; at most ``max_connections`` are open, and a
    new one at the cap closes the connection idle longest (every connection busy: ``503
    E503`` with ``Retry-After: 1``). A chunked body is capped at 4 MiB like a declared one
    (413), and a malformed one gets ``400 E400`` at once.

    Args:
        latency: seconds each answer is delayed, after the message is recorded.
        jitter: up to this many seconds more per answer (uniform random, seeded).
        read_timeout: seconds a client has for its request line, then for the rest of its
            request; a kept-alive connection as long for its next request.
        max_connections: connections open at once (None: half the free file descriptors,
            at most 1,000); at the cap the connection idle longest is closed.

    Raises:
        ValueError: a negative or non-finite latency or jitter, a read timeout that is not
            above 0, a connection cap below 1.
    """

    latency: float = 0.0
    jitter: float = 0.0
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_connections: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "latency", non_negative("latency", self.latency))
        object.__setattr__(self, "jitter", non_negative("jitter", self.jitter))
        timeout = non_negative("read_timeout", self.read_timeout)
        if timeout == 0:
            raise ValueError("read_timeout must be a number of seconds above 0, not 0")
        object.__setattr__(self, "read_timeout", timeout)
        cap = self.max_connections
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_connections must be 1 or more (or None), not {cap!r}")


#: The shapes of v2's success body (Kaleyra does not document it): WhatsApp's
#: ``messages[].id``, v1's ``data[].message_id``, or a top-level ``id``.
V2_ANSWERS = ("whatsapp", "v1", "id")
_VERSIONS = ("v1", "v2")


@dataclass(frozen=True)
class VersionSettings:
    """Kaleyra's two API versions, as the emulator plays them.

    A business number belongs to one version: a call by the other one answers HTTP 401
    ``WA-401`` ("associated with different Version"), as Kaleyra does. A number not named
    answers both (the default for every number: a test that names none sees no
    ``WA-401``).

    Args:
        numbers: ``{business number: "v1" or "v2"}``, numbers in E.164 with or without
            ``+`` (kept as digits).
        answer: the shape of v2's success body (HTTP 202, ``"code": "WA202"``), one of
            :data:`V2_ANSWERS`: ``"whatsapp"`` (default; ``{"messages": [{"id": wamid}],
            "contacts": [...]}``), ``"v1"`` (``{"data": [{"message_id": wamid,
            "recipient"}]}``) or ``"id"`` (``{"id": wamid}``).

    Raises:
        ValueError: a number that is not E.164, a version other than ``v1``/``v2``, an
            unknown answer shape.

    Example:
        >>> VersionSettings({"+911234567890": "v2"}).of("911234567890")
        'v2'
    """

    numbers: Mapping[str, str] = field(default_factory=dict)
    answer: str = "whatsapp"

    def __post_init__(self) -> None:
        if not isinstance(self.numbers, Mapping):
            raise ValueError(
                'versions must map numbers to "v1" or "v2", e.g. {"+911234567890": "v2"}'
            )
        numbers: dict[str, str] = {}
        for number, version in self.numbers.items():
            chosen = str(version).strip().lower()
            if chosen not in _VERSIONS:
                raise ValueError(
                    f'versions: {number!r} is given version {version!r}: use "v1" or "v2"'
                )
            for digits in _numbers("versions", [number]):
                numbers[digits] = chosen
        object.__setattr__(self, "numbers", numbers)
        answer = str(self.answer).strip().lower()
        if answer not in V2_ANSWERS:
            raise ValueError(
                f"v2_answer: unknown shape {self.answer!r}: use {', '.join(V2_ANSWERS)}"
            )
        object.__setattr__(self, "answer", answer)

    def of(self, number: str) -> str | None:
        """The version a business number (digits) belongs to; None: it answers both."""
        return self.numbers.get(number)


def _probabilities(faults: Any) -> dict[str, float]:
    """Check ``{fault name: probability}``; return it with names as strings, in FAULTS order."""
    if not isinstance(faults, Mapping):
        raise ValueError(
            f"faults must map fault names to probabilities, e.g. {{'429': 0.05}}, not {faults!r}"
        )
    known = ", ".join(FAULTS)
    checked: dict[str, float] = {}
    for name, probability in faults.items():
        key = str(name)
        if key not in FAULTS:
            raise ValueError(f"unknown fault {name!r}: use one of {known}")
        try:
            value = float(probability)
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"fault {key!r}: the probability must be a number from 0 to 1, not {probability!r}"
            )
        checked[key] = value
    for stage in (BEFORE_PROCESSING, AFTER_PROCESSING):
        total = sum(checked.get(name, 0.0) for name in stage)
        if total > 1.0 + _SUM_TOLERANCE:
            raise ValueError(
                f"faults {', '.join(stage)} strike the same requests (one draw): their "
                f"probabilities add up to {total:g}, at most 1 is possible"
            )
    return {name: checked[name] for name in FAULTS if name in checked}


@dataclass(frozen=True)
class FaultSettings:
    """The misbehaviour asked of the emulator (see :mod:`kwa_batch.emulator.faults`).

    Args:
        probabilities: ``{fault: probability}``, names from :data:`FAULTS` (``"429"``,
            ``"503"``, ``"500"``, ``"reset"``, ``"late"``), probabilities in ``[0, 1]``;
            ``429`` and ``503`` add up to at most 1, and so do the other three.
        retry_after: seconds announced in ``Retry-After`` by the fault ``"429"``.
        late_delay: seconds added to the delay of a ``"late"`` answer.

    Raises:
        ValueError: an unknown fault, a probability outside ``[0, 1]``, probabilities of
            one stage adding up to more than 1, or a negative or non-finite number of
            seconds.
    """

    probabilities: Mapping[str, float] = field(default_factory=dict)
    retry_after: float = 1.0
    late_delay: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "probabilities", _probabilities(self.probabilities))
        object.__setattr__(self, "retry_after", non_negative("retry_after", self.retry_after))
        object.__setattr__(self, "late_delay", non_negative("late_delay", self.late_delay))


@dataclass(frozen=True)
class LimitSettings:
    """The limits the platform enforces (all off by default).

    Args:
        rate_limit: the API's own limit in messages per second (a request to n recipients
            counts n) over any one-second window; over it, HTTP 429 ``E429`` with
            ``Retry-After``, nothing recorded. None: no limit.
        throughput: WhatsApp's messages per second per sender number (at least 1; over
            it, code 130429). None: no limit.
        pair_interval: WhatsApp's seconds between two messages from one sender to one
            recipient (over it, 131056). None: no limit.
        answer: how an excess of ``throughput`` or ``pair_interval`` is answered:
            ``"callback"`` (accepted, then a ``failed`` callback) or ``"api"`` (a 429); see
            :mod:`kwa_batch.emulator.limits`.

    Raises:
        ValueError: a rate limit of 0 or less, a throughput below 1, a pair interval of 0
            or less, a value that is not finite, an unknown answer.
    """

    rate_limit: float | None = None
    throughput: float | None = None
    pair_interval: float | None = None
    answer: str = "callback"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "rate_limit",
            positive_or_none(
                "rate_limit", self.rate_limit, least=0.0, what="more than 0 messages per second"
            ),
        )
        object.__setattr__(
            self,
            "throughput",
            positive_or_none(
                "throughput", self.throughput, least=1.0, what="at least 1 message per second"
            ),
        )
        object.__setattr__(
            self,
            "pair_interval",
            positive_or_none(
                "pair_interval", self.pair_interval, least=0.0, what="more than 0 seconds"
            ),
        )
        if self.answer not in LIMIT_ANSWERS:
            raise ValueError(
                f"the limit answer (limit_answer) must be one of {', '.join(LIMIT_ANSWERS)}, "
                f"not {self.answer!r}"
            )


@dataclass(frozen=True)
class CallbackSettings:
    """How the emulator plays Kaleyra's callbacks, and what they tell after ``sent``.

    :mod:`kwa_batch.emulator.fates` says how these play together, and in which order.
    Every share is drawn by a generator seeded with the emulator's ``seed``.

    Args:
        method: ``"GET"`` (fields as query parameters, as Kaleyra is seen to send them)
            or ``"POST"`` (a JSON object).
        delay: seconds from the answer to ``sent``, and between each later step.
        delivered: the share of messages delivered; the others fail with ``failed_code``.
        read: the share of delivered messages that are read.
        reply: the share of read messages whose recipient writes back ``reply_body`` (an
            incoming message, which opens a 24-hour window).
        failed_code: the ``error_code`` of a failed message (WhatsApp's 131026: message
            undeliverable).
        failed_reason: its ``error`` text.
        reply_body: the text of a reply.
        timeout: seconds to wait for the receiver's answer to each callback.
        prices: the price of a delivered message by category (``marketing``,
            ``utility``, ``authentication``, ``service``), over :data:`DEFAULT_PRICES`
            (made up, not a rate card); text ``"marketing=0.05,utility=0.01"`` too.
        template_category: the category of a template the emulator knows no category of
            (no catalogue played): ``utility`` by default.
        marketing_window: seconds after a marketing template reached a number in which
            another one to it fails with 131049 (WhatsApp's per-user marketing limit);
            24 h by default, 0 for none.
        opted_out: numbers (E.164) that stopped marketing messages: a marketing template
            to them fails with 131050, as to every number that replied STOP.
        not_on_whatsapp: the share of numbers not on WhatsApp (drawn once per number):
            every message to them fails with 131026.
        not_on_whatsapp_numbers: numbers (E.164) not on WhatsApp, whatever the share.
        spam_threshold: the share of failed messages, among a sender's last
            ``spam_window``, that gets the sender restricted: every later message from it
            fails with 131048 (WhatsApp's spam rate limit). None (default): never.
        spam_window: how many of a sender's last messages the share is taken over.
        spam_min_count: how many messages the window must hold before the share counts.
        stop: the share of read messages whose recipient replies STOP (an opt-out).
        button: the share of read template messages whose recipient taps one of
            ``buttons`` (a quick reply: ``type=button``); a message that is not a
            template has no buttons, and gets ``reply_body`` instead.
        buttons: the quick-reply buttons tapped, ``(text, payload)`` pairs, drawn
            evenly; a tap whose payload or text begins with STOP is an opt-out. Text
            ``"Stop promotions=STOP_PROMOTIONS;Yes=YES"`` too.

    Numbers and shares may be given as text, as a command line does (numbers
    comma-separated; ``spam_threshold=off``).

    Raises:
        ValueError: an unknown method or category, a share outside ``[0, 1]``, ``reply``
            + ``stop`` + ``button`` over 1, a negative or infinite number of seconds or
            price, an empty code, a number that is not E.164, a spam threshold outside
            ``(0, 1]``, a window below 1 or smaller than its minimum count, no buttons.

    Example:
        >>> CallbackSettings(delivered=0.9, read=0.5).method
        'GET'
        >>> CallbackSettings(prices="marketing=0.05").prices["marketing"]
        0.05
    """

    method: str = "GET"
    delay: float = 0.0
    delivered: float = 1.0
    read: float = 0.0
    reply: float = 0.0
    failed_code: str = "131026"
    failed_reason: str = "Message undeliverable"
    reply_body: str = "Thanks, got it!"
    timeout: float = 5.0
    prices: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    template_category: str = "utility"
    marketing_window: float = 24 * 3600.0
    opted_out: frozenset[str] = frozenset()
    not_on_whatsapp: float = 0.0
    not_on_whatsapp_numbers: frozenset[str] = frozenset()
    spam_threshold: float | None = None
    spam_window: int = 100
    spam_min_count: int = 20
    stop: float = 0.0
    button: float = 0.0
    buttons: tuple[tuple[str, str], ...] = DEFAULT_BUTTONS

    def __post_init__(self) -> None:
        method = str(self.method).strip().upper()
        if method not in _METHODS:
            raise ValueError(f"callback method must be GET or POST, not {self.method!r}")
        object.__setattr__(self, "method", method)
        for name in _PROBABILITIES:
            value = _float(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"callbacks: {name} must be from 0 to 1, not {value!r}")
            object.__setattr__(self, name, value)
        answers = self.reply + self.stop + self.button
        if answers > 1.0 + _SUM_TOLERANCE:
            raise ValueError(
                f"callbacks: reply + stop + button are shares of the same read messages and "
                f"add up to {answers:g}: at most 1 is possible"
            )
        for name in _SECONDS:
            value = _float(name, getattr(self, name))
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"callbacks: {name} must be zero or more seconds, not {value!r}")
            object.__setattr__(self, name, value)
        if not str(self.failed_code).strip():
            raise ValueError("callbacks: failed_code must not be empty")
        object.__setattr__(self, "prices", _prices(self.prices))
        category = str(self.template_category).strip().lower()
        if category not in CATEGORIES:
            raise ValueError(
                f"callbacks: template_category must be one of {', '.join(CATEGORIES)}, "
                f"not {self.template_category!r}"
            )
        object.__setattr__(self, "template_category", category)
        for name in _NUMBER_SETS:
            object.__setattr__(self, name, _numbers(name, getattr(self, name)))
        object.__setattr__(self, "spam_threshold", _threshold(self.spam_threshold))
        for name in ("spam_window", "spam_min_count"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))
        if self.spam_min_count > self.spam_window:
            raise ValueError(
                f"callbacks: spam_min_count ({self.spam_min_count}) must not be above "
                f"spam_window ({self.spam_window}): the window never holds that many"
            )
        object.__setattr__(self, "buttons", _buttons(self.buttons))

    @classmethod
    def coerce(
        cls, value: CallbackSettings | Mapping[str, Any] | bool | None
    ) -> CallbackSettings | None:
        """Settings from what ``Emulator(callbacks=...)`` takes; None means no callbacks.

        ``True`` gives the defaults, ``False`` or ``None`` none; a mapping overrides the
        defaults (numbers may be given as text, as a command line does).

        Raises:
            ValueError: an unknown setting name, or a value :class:`CallbackSettings`
                refuses.
        """
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, CallbackSettings):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(
                "callbacks must be True, False, a CallbackSettings or a mapping such as "
                f"{{'delivered': 0.9, 'read': 0.5}}, not {value!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise ValueError(
                f"unknown callback setting(s) {', '.join(unknown)}: use {', '.join(sorted(known))}"
            )
        return cls(**{str(k): v for k, v in value.items()})


def _float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"callbacks: {name} must be a number, not {value!r}") from None


def _prices(value: Any) -> dict[str, float]:
    """Prices by category over the defaults, from a mapping or ``"cat=price,..."``."""
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, price = part.partition("=")
            if not sep:
                raise ValueError(
                    f"callbacks: prices {part.strip()!r}: write CATEGORY=PRICE, e.g. "
                    "prices=marketing=0.05,utility=0.01"
                )
            pairs.append((name, price))
        value = dict(pairs)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"callbacks: prices must map categories to prices, e.g. {{'marketing': 0.05}}, "
            f"not {value!r}"
        )
    out = dict(DEFAULT_PRICES)
    for name, price in value.items():
        key = str(name).strip().lower()
        if key not in CATEGORIES:
            raise ValueError(
                f"callbacks: prices: unknown category {name!r}: use {', '.join(CATEGORIES)}"
            )
        number = _float(f"the price of {key}", price)
        if not (number >= 0 and math.isfinite(number)):
            raise ValueError(f"callbacks: the price of {key} must be zero or more, not {price!r}")
        out[key] = number
    return out


def _numbers(name: str, value: Any) -> frozenset[str]:
    """Numbers as digits without ``+``, from an iterable or comma-separated text."""
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    out: set[str] = set()
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        digits = e164_digits("".join(c for c in text if c not in " -()."))
        if digits is None:
            where = name if name == "versions" else f"callbacks: {name}"
            raise ValueError(
                f"{where}: {text!r} is not a phone number in E.164: write it with "
                "its country code, e.g. +919876543210"
            )
        out.add(digits)
    return frozenset(out)


def _threshold(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "")):
        return None
    share = _float("spam_threshold", value)
    if not 0.0 < share <= 1.0:
        raise ValueError(
            f"callbacks: spam_threshold must be above 0 and at most 1 (or off), not {value!r}"
        )
    return share


def _count(name: str, value: Any) -> int:
    try:
        number = int(str(value).strip()) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"callbacks: {name} must be a whole number of 1 or more, not {value!r}")
    return number


def _buttons(value: Any) -> tuple[tuple[str, str], ...]:
    """``(text, payload)`` pairs, from pairs or ``"Text=PAYLOAD;Text=PAYLOAD"``."""
    given = value
    if isinstance(value, str):
        value = [part.rpartition("=")[::2] for part in value.split(";") if part.strip()]
    out: list[tuple[str, str]] = []
    try:
        for text, payload in value:
            if not str(text).strip() or not str(payload).strip():
                raise ValueError
            out.append((str(text).strip(), str(payload).strip()))
    except (TypeError, ValueError):
        raise ValueError(
            f"callbacks: buttons must be (text, payload) pairs, e.g. "
            f"[('Stop promotions', 'STOP_PROMOTIONS')] or 'Stop promotions=STOP_PROMOTIONS', "
            f"not {given!r}"
        ) from None
    if not out:
        raise ValueError("callbacks: buttons must hold at least one (text, payload) pair")
    return tuple(out)
