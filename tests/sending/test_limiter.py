"""The exact limiter and the backpressure: the window property from recorded departures.

Hand-moved clocks for the edges; real threads and the real clock where concurrency matters
(checked on the timestamps the limiter hands out, never on elapsed time).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwa_batch.errors import ConfigurationError
from kwa_batch.sending.limiter import (
    PRIOR_MARGIN,
    Backpressure,
    SlidingWindow,
    departing,
    max_in_any_window,
    recipients_per_request,
    written,
)

DEADLINE = 30.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_window_is_exact_at_its_edges() -> None:
    clock = Clock()
    window = SlidingWindow(5, margin=0.0, smooth=False, clock=clock)
    assert [window.try_acquire(1)[0] for _ in range(5)] == [1000.0] * 5
    departure, wait = window.try_acquire(1)
    assert departure is None
    assert wait == pytest.approx(1.0)
    clock.now = 1000.999
    assert window.try_acquire(1)[0] is None
    clock.now = 1001.0
    assert window.try_acquire(3)[0] == 1001.0
    assert window.in_window() == 3


def test_the_margin_holds_each_place_longer() -> None:
    clock = Clock()
    window = SlidingWindow(2, margin=0.05, smooth=False, clock=clock)
    window.try_acquire(2)
    clock.now = 1001.04
    assert window.try_acquire(1) == (None, pytest.approx(0.01))
    clock.now = 1001.05
    assert window.try_acquire(1)[0] == 1001.05


def test_a_request_counts_its_recipients_and_waits_for_enough_room() -> None:
    clock = Clock()
    window = SlidingWindow(10, margin=0.0, smooth=False, clock=clock)
    window.try_acquire(4)
    clock.now += 0.5
    window.try_acquire(4)
    clock.now += 0.1
    assert window.try_acquire(4) == (None, pytest.approx(0.4))  # the first 4 must go
    assert window.try_acquire(2)[0] is not None


def test_smooth_pacing_spreads_the_window_evenly() -> None:
    clock = Clock()
    window = SlidingWindow(100, margin=0.01, clock=clock)
    assert window.try_acquire(1)[0] == 1000.0
    departure, wait = window.try_acquire(1)  # not a burst: 10.1 ms later, 20 ms tolerance
    assert departure == 1000.0
    departure, wait = window.try_acquire(1)
    assert departure is None
    assert wait == pytest.approx(0.0002)
    clock.now += wait
    assert window.try_acquire(1)[0] == clock.now
    clock.now += 0.5  # idle: the schedule does not bank the idle time beyond the tolerance
    times = []
    while len(times) < 10:
        departure, wait = window.try_acquire(1)
        if departure is None:
            clock.now += wait
        else:
            times.append(departure)
    assert max_in_any_window(times, width=0.0303) <= 3 + 2  # three slots, two early


def test_a_message_slow_to_leave_holds_its_place_from_when_it_left() -> None:
    clock = Clock()
    window = SlidingWindow(2, margin=0.0, smooth=False, clock=clock)
    first, _ = window.try_acquire(1)
    clock.now += 0.1
    window.try_acquire(1)
    clock.now += 0.3
    assert first is not None
    assert window.restamp(first) == 1000.4  # it only left now, 0.4 s after it was let go
    assert window.restamp(12345.0) is None  # unknown: nothing moves
    assert window.restamp(first) is None  # moved already: look for its new stamp
    clock.now = 1001.1
    assert window.try_acquire(1)[0] is not None  # the second's place freed
    assert window.try_acquire(1)[0] is None  # the first holds until 1001.4
    clock.now = 1001.4
    assert window.try_acquire(1)[0] is not None


def test_a_place_moves_again_to_when_its_bytes_reach_the_wire() -> None:
    clock = Clock()
    window = SlidingWindow(3, margin=0.0, smooth=False, clock=clock)
    first, _ = window.try_acquire(1)
    assert first is not None
    clock.now += 0.01
    about_to_write = window.restamp(first)
    window.try_acquire(1)  # another one leaves meanwhile
    clock.now += 0.2  # a new connection, a collection: the bytes reach the socket now
    assert about_to_write is not None
    assert window.restamp(about_to_write) == 1000.21
    window.try_acquire(1)
    clock.now = 1001.2
    assert window.try_acquire(1)[0] is not None  # the other one's place freed
    assert window.try_acquire(1)[0] is None  # the first holds until 1001.21


def test_the_client_says_when_a_request_was_written_once_per_request() -> None:
    calls: list[str] = []
    departing(lambda: calls.append("written"))
    written()
    written()  # the next request, with nothing set for it
    assert calls == ["written"]
    departing(lambda: calls.append("never"))
    departing(None)  # the request never reached the wire: forgotten
    written()
    assert calls == ["written"]
    seen: list[str] = []
    other = threading.Thread(target=lambda: seen.append(str(written())))
    departing(lambda: calls.append("this thread's"))
    other.start()
    other.join()  # another thread's write does not run this thread's callback
    assert calls == ["written"]
    written()
    assert calls == ["written", "this thread's"]


def test_a_request_larger_than_the_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="101 recipients cannot fit a rate of 100"):
        SlidingWindow(100).try_acquire(101)


def test_a_request_larger_than_the_budget_goes_into_an_empty_window() -> None:
    clock = Clock()
    window = SlidingWindow(100, margin=0.0, smooth=False, clock=clock)
    assert window.try_acquire(60, budget=40)[0] is not None  # empty window: it goes
    assert window.try_acquire(1, budget=40)[0] is None  # nothing more while it holds
    clock.now += 1.0
    assert window.try_acquire(30, budget=40)[0] is not None
    assert window.try_acquire(20, budget=40)[0] is None


@pytest.mark.parametrize("rate", [0, 0.5, -3, float("inf"), float("nan")])
def test_a_rate_below_one_is_a_configuration_error(rate: float) -> None:
    with pytest.raises(ConfigurationError, match="at least 1 message per second"):
        SlidingWindow(rate)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1, 50),
    steps=st.lists(st.tuples(st.integers(1, 50), st.floats(0, 0.7)), min_size=1, max_size=80),
    margin=st.sampled_from([0.0, 0.002, 0.05]),
    smooth=st.booleans(),
)
def test_no_window_ever_holds_more_than_the_rate(
    rate: int, steps: list[tuple[int, float]], margin: float, smooth: bool
) -> None:
    clock = Clock()
    window = SlidingWindow(rate, margin=margin, smooth=smooth, clock=clock)
    times, counts = [], []
    for count, advance in steps:
        count = min(count, rate)
        clock.now += advance
        departure, wait = window.try_acquire(count)
        while departure is None:  # the wait it announced: the window, then the schedule
            clock.now += wait
            departure, wait = window.try_acquire(count)
        times.append(departure)
        counts.append(count)
    assert max_in_any_window(times, counts, width=1.0 + margin) <= rate


@pytest.mark.parametrize("smooth", [True, False])
def test_threads_sharing_the_limiter_stay_within_the_rate(smooth: bool) -> None:
    window = SlidingWindow(20, smooth=smooth)
    stop = threading.Event()
    with ThreadPoolExecutor(16) as pool:
        # 50 at 20/s: 2.5 s, so that at least one whole second runs at the rate.
        departures = list(pool.map(lambda _: window.acquire(1, stop), range(50)))
    assert None not in departures
    times = [t for t in departures if t is not None]
    assert max_in_any_window(times, width=1.0 + PRIOR_MARGIN) <= 20  # the default margin
    # ...and it does not waste the windows: a full second holds the rate, or one less.
    assert max_in_any_window(times, width=1.0) >= 19


def test_waiters_go_first_come_first_served() -> None:
    clock = Clock()
    window = SlidingWindow(1, margin=0.0, smooth=False, clock=clock)
    window.try_acquire(1)
    stop = threading.Event()
    order: list[str] = []

    def wait(name: str) -> None:
        window.acquire(1, stop)
        order.append(name)

    first = threading.Thread(target=wait, args=("first",))
    first.start()
    _wait_for(lambda: len(window._waiting) == 1)
    second = threading.Thread(target=wait, args=("second",))
    second.start()
    _wait_for(lambda: len(window._waiting) == 2)
    clock.now += 1.0
    _wait_for(lambda: order == ["first"])
    clock.now += 1.0
    first.join(DEADLINE)
    second.join(DEADLINE)
    assert order == ["first", "second"]


def test_stop_ends_the_wait() -> None:
    window = SlidingWindow(1)
    window.try_acquire(1)
    stop = threading.Event()
    results: list[float | None] = []
    waiters = [
        threading.Thread(target=lambda: results.append(window.acquire(1, stop))) for _ in range(3)
    ]
    for waiter in waiters:
        waiter.start()
    stop.set()
    for waiter in waiters:
        waiter.join(DEADLINE)
    assert results == [None, None, None]
    assert not window._waiting


def _wait_for(condition: object) -> None:
    import time

    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- group sizes and the window count ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "most", "size"),
    [(150, 100, 75), (80, 100, 80), (1000, 100, 100), (250, 100, 83), (1, 100, 1), (100, 100, 100)],
)
def test_group_sizes_pack_the_window(rate: float, most: int, size: int) -> None:
    assert recipients_per_request(rate, most) == size


def test_max_in_any_window_counts_half_open_windows() -> None:
    assert max_in_any_window([]) == 0
    assert max_in_any_window([0.0, 0.999, 1.0]) == 2
    assert max_in_any_window([0.0, 0.0, 0.5], [2, 3, 4]) == 9
    assert max_in_any_window([2.0, 0.0, 1.5]) == 2  # unsorted input


# -- backpressure -----------------------------------------------------------------------------


def test_a_throttle_halves_the_rate_then_it_climbs_back() -> None:
    clock = Clock(0.0)
    bp = Backpressure(80, clock=clock)
    assert bp.rate_in_force() == 80
    bp.throttled()
    assert bp.rate_in_force() == 40
    clock.now = 1.0  # held for a second
    assert bp.rate_in_force() == 40
    clock.now = 2.0
    assert bp.rate_in_force() == 48  # +8 per second
    clock.now = 100.0
    assert bp.rate_in_force() == 80  # never above the configured rate


def test_a_burst_of_throttles_is_one_decrease() -> None:
    clock = Clock(0.0)
    bp = Backpressure(80, clock=clock)
    for _ in range(20):
        bp.throttled()
    assert bp.rate_in_force() == 40
    assert bp.throttles == 20
    clock.now = 1.0
    bp.throttled()
    assert bp.rate_in_force() == 20


def test_the_rate_never_falls_below_the_floor() -> None:
    clock = Clock(0.0)
    bp = Backpressure(80, floor=10, clock=clock)
    for _ in range(10):
        bp.throttled()
        clock.now += 1.0
    assert bp.rate_in_force() >= 10
    assert Backpressure(5, floor=50).floor == 5  # a floor above the rate is the rate


def test_retry_after_lengthens_the_hold() -> None:
    clock = Clock(0.0)
    bp = Backpressure(100, clock=clock)
    bp.throttled(retry_after=5.0)
    clock.now = 4.9
    assert bp.rate_in_force() == 50
    bp.throttled()  # still within the hold: no second decrease
    assert bp.rate_in_force() == 50
    clock.now = 6.0
    assert bp.rate_in_force() == 60


@pytest.mark.parametrize("decrease", [0, 1, 1.5, -0.5])
def test_decrease_must_lower_the_rate(decrease: float) -> None:
    with pytest.raises(ConfigurationError, match="decrease"):
        Backpressure(80, decrease=decrease)
