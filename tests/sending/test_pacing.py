"""Pacing: rate-driven concurrency (Little's law), per-recipient spacing, the lookahead."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import pytest

from kwa_batch.errors import ConfigurationError
from kwa_batch.sending.limiter import MAX_MARGIN, MIN_MARGIN, PRIOR_MARGIN
from kwa_batch.sending.pacing import (
    DEFAULT_PER_RECIPIENT_INTERVAL,
    DEFAULT_RATE,
    ConcurrencyController,
    Lookahead,
    Pacer,
    Pacing,
    RecipientSpacing,
)


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Req:
    numbers: list[str]
    name: str = ""


def name(request: Req | None) -> str | None:
    return None if request is None else request.name


def steady(controller: ConcurrencyController, latency: float, recipients: int = 1) -> None:
    for _ in range(60):
        controller.observe(latency, recipients)


# -- rate-driven concurrency ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latency", "recipients", "rate", "expected"),
    [
        (0.05, 1, 150, 11),  # 150 x 0.05 x 1.25 = 9.4 -> 10, + 1
        (0.25, 1, 150, 48),
        (1.0, 1, 150, 189),
        (1.0, 75, 150, 4),  # a broadcast: two requests a second
        (2.0, 1, 1000, 256),  # capped at max_concurrency
    ],
)
def test_littles_law_with_headroom(
    latency: float, recipients: int, rate: float, expected: int
) -> None:
    controller = ConcurrencyController(256)
    steady(controller, latency, recipients)
    assert controller.target(rate) == expected


def test_pinned_concurrency_ignores_latency() -> None:
    controller = ConcurrencyController(256, pinned=8)
    steady(controller, 1.0)
    assert controller.target(150) == 8
    assert controller.target(None) == 8


def test_no_rate_means_a_fixed_pool() -> None:
    assert ConcurrencyController(256).target(None) == 16
    assert ConcurrencyController(4).target(None) == 4


def test_it_grows_fast_when_latency_jumps_and_shrinks_slowly() -> None:
    controller = ConcurrencyController(256)
    steady(controller, 0.05)
    before = controller.target(150)
    for _ in range(3):
        controller.observe(0.5, 1)
    assert controller.target(150) >= 150 * 0.5 * 1.0  # three answers: already enough
    steady(controller, 0.5)
    settled = controller.target(150)
    controller.observe(0.05, 1)  # one quick answer is no reason to drop most threads
    assert before < settled * 0.9 <= controller.target(150)


def test_margin_covers_the_spread_of_the_last_two_seconds_of_round_trips() -> None:
    clock = Clock()
    controller = ConcurrencyController(256, clock=clock)
    assert controller.margin() == PRIOR_MARGIN  # nothing observed yet
    steady(controller, 0.25)
    clock.now = 0.5
    assert controller.margin() == MIN_MARGIN
    clock.now = 1.0
    for trip in (0.25, 0.262, 0.247):
        controller.observe(trip, 1)
    assert controller.margin() == pytest.approx(MIN_MARGIN + 1.25 * 0.015)
    clock.now = 1.05  # computed at most every 100 ms
    controller.observe(0.4, 1)
    assert controller.margin() == pytest.approx(MIN_MARGIN + 1.25 * 0.015)
    clock.now = 1.2
    assert controller.margin() == pytest.approx(MIN_MARGIN + 1.25 * 0.153)
    controller.observe(0.6, 1)
    clock.now = 1.3
    assert controller.margin() == MAX_MARGIN  # 353 ms of spread, capped
    clock.now = 3.4
    steady(controller, 0.25)
    clock.now = 3.5
    assert controller.margin() == MIN_MARGIN  # the slow ones are older than two seconds


def test_a_latency_that_rises_is_no_spread_one_that_falls_is() -> None:
    # Later messages slower than earlier ones cannot arrive among them; quicker ones can.
    clock = Clock()
    controller = ConcurrencyController(256, clock=clock)
    for i in range(40):  # one a millisecond, 50 ms then 500 ms of latency
        clock.now = 1.0 + i * 0.001 + (0.05 if i < 20 else 0.5)
        controller.observe(0.05 if i < 20 else 0.5, 1)
    clock.now = 1.8
    assert controller.margin() == MIN_MARGIN
    clock.now = 4.0
    for i in range(40):  # then back down to 50 ms
        clock.now = 4.0 + i * 0.001 + (0.5 if i < 20 else 0.05)
        controller.observe(0.5 if i < 20 else 0.05, 1)
    clock.now = 4.6
    assert controller.margin() == MAX_MARGIN


def test_the_margin_counts_round_trips_from_the_wire() -> None:
    # A request slow to reach the wire (a journal write, a new connection) holds its place
    # from there: its wait is no spread on the way to the server.
    clock = Clock()
    controller = ConcurrencyController(256, clock=clock)
    for _ in range(20):
        controller.observe(0.3, 1, 0.3)
    controller.observe(0.5, 1, 0.3)  # 200 ms before the wire, then as quick as the others
    clock.now = 0.2
    assert controller.margin() == MIN_MARGIN
    assert controller.latency > 0.3  # the pool still counts the whole time


def test_requests_late_to_answer_grow_the_pool_before_their_answers() -> None:
    clock = Clock()
    controller = ConcurrencyController(256, clock=clock)
    steady(controller, 0.05)
    assert controller.target(150) == 11
    for i in range(20):  # the latency jumped: nothing answers any more
        controller.departed(i * 0.01)
    clock.now = 0.4
    assert controller.target(150) >= 150 * 0.3  # twice the median age, 0.3 s: no answer yet
    for i in range(20):
        controller.settled(i * 0.01)
    controller.settled(99.0)  # unknown: ignored
    assert controller.target(150) == 11


@pytest.mark.parametrize("settings", [{"max_concurrency": 0}, {"concurrency": 0}])
def test_concurrency_below_one_is_refused(settings: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        Pacing(**settings)


# -- per-recipient spacing --------------------------------------------------------------------


def test_a_number_is_busy_then_spaced_from_the_end_of_its_request() -> None:
    clock = Clock()
    spacing = RecipientSpacing(6, clock=clock)
    assert spacing.ready_at(["+1"]) == -math.inf
    spacing.take(["+1"])
    assert spacing.ready_at(["+1", "+2"]) == math.inf
    spacing.departed(["+1"])
    clock.now = 3.0  # answered (it has arrived by now, whatever the delays on the way)
    spacing.finish(["+1"], reached=True)
    assert spacing.ready_at(["+1"]) == 9.0
    assert spacing.ready_at(["+2"]) == -math.inf


def test_a_request_that_never_left_gives_the_number_back() -> None:
    spacing = RecipientSpacing(6, clock=Clock())
    spacing.take(["+1"])
    spacing.finish(["+1"], reached=True)  # e.g. stopped while waiting for the limit
    assert spacing.ready_at(["+1"]) == -math.inf


def test_a_request_that_never_reached_the_platform_gives_the_number_back() -> None:
    spacing = RecipientSpacing(6, clock=Clock())
    spacing.take(["+1"])
    spacing.departed(["+1"])
    spacing.finish(["+1"], reached=False)
    assert spacing.ready_at(["+1"]) == -math.inf


def test_spacing_forgets_what_is_over() -> None:
    clock = Clock()
    spacing = RecipientSpacing(6, clock=clock)
    for i in range(1000):
        clock.now = i * 0.1
        spacing.take([str(i)])
        spacing.departed([str(i)])
        spacing.finish([str(i)], reached=True)
    assert len(spacing._last) <= 61


def test_zero_interval_turns_spacing_off() -> None:
    spacing = RecipientSpacing(0)
    spacing.take(["+1"])
    assert spacing.ready_at(["+1"]) == -math.inf


@pytest.mark.parametrize("interval", [-1, float("inf"), float("nan")])
def test_bad_intervals_are_refused(interval: float) -> None:
    with pytest.raises(ConfigurationError, match="per_recipient_interval"):
        Pacing(per_recipient_interval=interval)


# -- the lookahead ----------------------------------------------------------------------------


def test_a_row_whose_recipient_is_not_ready_is_skipped_not_waited_on() -> None:
    clock = Clock()
    spacing = RecipientSpacing(6, clock=clock)
    planned = [Req(["+1"], "a1"), Req(["+1"], "a2"), Req(["+2"], "b"), Req(["+1"], "a3")]
    ahead = Lookahead(planned, spacing)
    assert name(ahead.take(0.0)) == "a1"
    assert name(ahead.take(0.0)) == "b"  # +1 is busy: the next ready one goes
    assert ahead.take(0.0) is None
    assert ahead.next_ready() == math.inf  # +1 still in flight
    spacing.departed(["+1"])
    spacing.finish(["+1"], reached=True)
    assert ahead.next_ready() == 6.0
    assert ahead.take(5.9) is None
    assert name(ahead.take(6.0)) == "a2"
    assert [r.name for r in ahead.rest()] == ["a3"]
    assert not ahead


def test_split_requests_go_back_to_the_head() -> None:
    spacing = RecipientSpacing(6, clock=Clock())
    ahead = Lookahead([Req(["+3"], "c")], spacing)
    ahead.push_front([Req(["+1"], "s1"), Req(["+2"], "s2")])
    assert [name(ahead.take(0.0)) for _ in range(3)] == ["s1", "s2", "c"]
    assert ahead.take(0.0) is None
    assert not ahead


def test_the_lookahead_is_bounded() -> None:
    read = []

    def planned():
        for i in range(100_000):
            read.append(i)
            yield Req(["+1"], str(i))

    spacing = RecipientSpacing(6, clock=Clock())
    ahead = Lookahead(planned(), spacing, lookahead=50)
    assert ahead.take(0.0) is not None
    assert ahead.take(0.0) is None  # every other row is for the busy +1
    assert len(read) <= 52


def test_the_lookahead_reads_lazily() -> None:
    read = []

    def planned():
        for i in range(10):
            read.append(i)
            yield Req([f"+{i}"])

    ahead = Lookahead(planned(), RecipientSpacing(6))
    assert ahead
    ahead.take(0.0)
    assert len(read) == 1


# -- the pacer --------------------------------------------------------------------------------


def test_defaults_are_whatsapps() -> None:
    pacer = Pacer()
    assert pacer.rate_limit == DEFAULT_RATE == 80
    assert pacer.spacing.interval == DEFAULT_PER_RECIPIENT_INTERVAL == 6


def test_the_rate_in_force_is_readable_and_shown_briefly() -> None:
    clock = Clock()
    pacer = Pacer(Pacing(rate_limit=150), clock=clock)
    assert pacer.postfix(12) == "≤150/s, 12 in flight"
    pacer.throttled()
    assert pacer.rate_in_force() == 75
    assert pacer.postfix(3) == "≤75/s, 3 in flight"
    assert Pacer(Pacing(rate_limit=None)).postfix(16) == "16 in flight"
    assert Pacer(Pacing(rate_limit=None)).rate_in_force() is None


def test_acquire_stamps_the_departure_for_the_spacing() -> None:
    clock = Clock(10.0)
    pacer = Pacer(Pacing(rate_limit=None), clock=clock)
    pacer.spacing.take(["+1"])
    assert pacer.acquire(["+1"], threading.Event()) == 10.0
    clock.now = 10.5
    pacer.answered(10.0, 1)
    pacer.finished(["+1"], reached=True)
    assert pacer.spacing.ready_at(["+1"]) == 16.5
    assert pacer.controller.latency == pytest.approx(0.5)
