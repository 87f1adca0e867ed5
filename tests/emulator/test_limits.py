"""The emulator plays WhatsApp's limits per business number: throughput and pair rate.

Unit tests of :class:`EmulatedLimits` run on a hand-moved clock (the window's edges are
exact); the rest go through the emulator over real HTTP, callbacks collected by a real
server on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from kwa_batch._http.serving import BackgroundServer
from kwa_batch.emulator.limits import EmulatedLimits
from kwa_batch.emulator.server import Emulator
from kwa_batch.errors import RateLimitError

SENDER = "+911234567890"
OTHER_SENDER = "+911234567891"
DEADLINE = 20.0


class Collector:
    """Callbacks posted to it, as dicts of their query parameters."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = BackgroundServer(self.app, host="127.0.0.1", port=0, name="collector")

    def app(self, environ: Any, start_response: Any) -> Any:
        with self._lock:
            self.received.append(dict(Request(environ).args))
        return Response("ok")(environ, start_response)

    @property
    def url(self) -> str:
        return self.server.url + "/cb"


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    found.server.start()
    yield found
    found.server.stop()


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+9198765{i:05d}" for i in range(start, start + n)]


def by_status(received: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for callback in received:
        grouped.setdefault(callback["status"], []).append(callback)
    return grouped


# -- the counting, on a hand-moved clock ------------------------------------------------------


def test_throughput_counts_each_recipient_over_a_half_open_second() -> None:
    now = [100.0]
    limits = EmulatedLimits(throughput=5, clock=lambda: now[0])
    assert limits.admit("91", ["1", "2", "3"]).failures == {}
    now[0] = 100.5
    verdict = limits.admit("91", ["4", "5", "6", "7"])
    assert verdict.failures == {2: ("130429", verdict.failures[2][1]), 3: verdict.failures[3]}
    assert {code for code, _ in verdict.failures.values()} == {"130429"}
    now[0] = 100.999  # the first three still hold their places
    assert set(limits.admit("91", ["8"]).failures) == {0}
    now[0] = 101.0  # ...and no more: (t - 1, t] is half-open
    assert limits.admit("91", ["9", "10", "11"]).failures == {}
    assert limits.violations == {"130429": 3, "131056": 0}
    assert limits.peak == 5


def test_throughput_is_per_sender_number() -> None:
    now = [0.0]
    limits = EmulatedLimits(throughput=2, clock=lambda: now[0])
    assert limits.admit("91", ["1", "2"]).failures == {}
    assert limits.admit("92", ["1", "2"]).failures == {}
    assert set(limits.admit("91", ["3"]).failures) == {0}


def test_pair_rate_spaces_messages_to_one_recipient() -> None:
    now = [0.0]
    limits = EmulatedLimits(pair_interval=6, clock=lambda: now[0])
    assert limits.admit("91", ["1", "2"]).failures == {}
    now[0] = 5.999
    verdict = limits.admit("91", ["3", "1"])
    assert verdict.failures == {1: ("131056", verdict.failures[1][1])}
    assert limits.admit("92", ["1"]).failures == {}  # another business number
    now[0] = 6.0
    assert limits.admit("91", ["1"]).failures == {}  # six seconds after the last one sent
    now[0] = 11.0  # the refused message at 5.999 did not count: 1 was last sent at 6.0
    assert set(limits.admit("91", ["1"]).failures) == {0}
    assert limits.violations == {"130429": 0, "131056": 2}


def test_a_refused_message_does_not_take_a_place() -> None:
    now = [0.0]
    limits = EmulatedLimits(throughput=2, pair_interval=6, clock=lambda: now[0])
    limits.admit("91", ["1"])
    assert set(limits.admit("91", ["1", "2", "3"]).failures) == {0, 2}  # pair, then throughput
    now[0] = 1.0
    assert limits.admit("91", ["3", "4"]).failures == {}


def test_api_answer_refuses_the_whole_request_and_counts_nothing() -> None:
    now = [0.0]
    limits = EmulatedLimits(throughput=3, answer="api", clock=lambda: now[0])
    limits.admit("91", ["1", "2"])
    now[0] = 0.25
    verdict = limits.admit("91", ["3", "4"])
    assert verdict.failures == {}
    assert verdict.refusal is not None
    code, _reason, wait = verdict.refusal
    assert (code, wait) == ("130429", pytest.approx(0.75))
    assert limits.admit("91", ["3"]).failures == {}  # the refused two took no place


def test_memory_of_pairs_is_bounded_by_the_interval() -> None:
    now = [0.0]
    limits = EmulatedLimits(pair_interval=6, clock=lambda: now[0])
    for i in range(1000):
        now[0] = i * 0.1
        limits.admit("91", [str(i)])
    assert len(limits._pairs) <= 61


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"throughput": 0}, "throughput"),
        ({"throughput": 0.5}, "throughput"),
        ({"throughput": float("inf")}, "throughput"),
        ({"throughput": "fast"}, "throughput"),
        ({"pair_interval": 0}, "pair_interval"),
        ({"pair_interval": -6}, "pair_interval"),
        ({"limit_answer": "webhook"}, "limit_answer"),
    ],
)
def test_bad_settings_are_refused_with_their_name(settings: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        Emulator(**settings)


def test_no_limits_by_default() -> None:
    emu = Emulator()
    assert not emu.limits.active
    assert emu.limits.violations == {"130429": 0, "131056": 0}


# -- through the emulator ---------------------------------------------------------------------


def test_over_the_throughput_is_accepted_then_fails_by_callback(collector: Collector) -> None:
    with Emulator(throughput=5, seed=3) as emu:
        result = emu.client(sender=SENDER).send_message(
            numbers(8), body="Sale today", callback_url=collector.url
        )
        assert emu.wait_for_callbacks(DEADLINE)
        assert emu.limits.violations == {"130429": 3, "131056": 0}
        assert emu.message_count == 8  # Kaleyra accepted all eight
    assert len(result.message_ids) == 8
    statuses = by_status(collector.received)
    failed = statuses["failed"]
    assert sorted(c["mobile"] for c in failed) == [n[1:] for n in numbers(8)[5:]]
    assert {c["error_code"] for c in failed} == {"130429"}
    assert len(statuses["sent"]) == len(statuses["delivered"]) == 5
    # A throttled message fails without being "sent" first.
    assert not {c["id"] for c in failed} & {c["id"] for c in statuses["sent"]}


def test_pair_rate_over_http(collector: Collector) -> None:
    with Emulator(pair_interval=6) as emu:
        client = emu.client(sender=SENDER)
        client.send_message(numbers(1), body="First", callback_url=collector.url)
        client.send_message(numbers(1), body="Second", callback_url=collector.url)
        client.send_message(numbers(1), body="Third", sender=OTHER_SENDER)
        assert emu.wait_for_callbacks(DEADLINE)
        assert emu.limits.violations == {"130429": 0, "131056": 1}
        emu.reset()
        assert emu.limits.violations == {"130429": 0, "131056": 0}
        client.send_message(numbers(1), body="After reset")
        assert emu.limits.violations["131056"] == 0
    failed = by_status(collector.received)["failed"]
    assert [c["error_code"] for c in failed] == ["131056"]


def test_api_answer_is_a_429_with_the_whatsapp_code() -> None:
    with Emulator(throughput=2, limit_answer="api") as emu:
        client = emu.client(sender=SENDER)
        client.send_message(numbers(2), body="Sale")
        with pytest.raises(RateLimitError) as caught:
            client.send_message(numbers(1, start=5), body="Sale")
        assert emu.message_count == 2
        assert emu.limits.violations == {"130429": 1, "131056": 0}
    error = caught.value
    assert (error.http_status, error.code) == (429, "130429")
    assert error.retry_after is not None
    assert 0 < error.retry_after <= 1


def test_latency_can_change_while_serving() -> None:
    with Emulator() as emu:
        client = emu.client(sender=SENDER)
        client.send_message(numbers(1), body="quick")
        emu.latency = 0.3
        start = time.monotonic()
        client.send_message(numbers(1, start=1), body="slow")
        assert time.monotonic() - start >= 0.3  # a lower bound: the server slept that long
        response = requests.get(emu.url + "/nowhere", timeout=DEADLINE)
        assert response.status_code == 404
