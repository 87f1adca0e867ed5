"""The emulator's faults, jitter and rate limit, seen from a plain HTTP client and the ledger.

Everything goes over real HTTP on 127.0.0.1 (no mocks). What matters most to the sender is
*when* each fault happens: 429 and 503 before the message is processed (nothing in the
ledger, safe to resend), 500, reset and late after (in the ledger: resending would send
twice). Timing checks are one-sided or generous: the machine may be slow and noisy.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from kwa_batch.emulator.behaviour import FAULTS
from kwa_batch.emulator.server import Emulator

TO = "+919876543210"
SENDER = "+911234567890"
VALID = {"to": TO, "from": SENDER, "type": "text", "channel": "whatsapp", "body": "Hello"}
INVALID = {**VALID, "to": "12345"}  # E13009

MakeEmulator = Callable[..., Emulator]


@pytest.fixture
def make() -> Iterator[MakeEmulator]:
    """Start emulators with the given settings; all are stopped when the test ends."""
    started: list[Emulator] = []

    def make(**settings: Any) -> Emulator:
        emu = Emulator(**settings).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator (no faults configured), reset before and after the test."""
    emulator.reset()
    yield emulator
    emulator.reset()  # also empties the queue of injected faults


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post(
    http: requests.Session,
    emu: Emulator,
    data: dict[str, str] | None = None,
    *,
    key: str | None = None,
    timeout: float = 5,
) -> requests.Response:
    return http.post(
        emu.messages_url,
        data=VALID if data is None else data,
        headers={"api-key": emu.api_key if key is None else key},
        timeout=timeout,
    )


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    payload: dict[str, Any] = response.json()
    assert payload["code"] == code
    assert payload["message"]
    assert payload["error"]
    assert payload["data"] == []
    return payload


def outcome(http: requests.Session, emu: Emulator, data: dict[str, str] | None = None) -> str:
    """The status code as text, or "reset" when the connection was dropped."""
    try:
        return str(post(http, emu, data).status_code)
    except requests.ConnectionError:
        return "reset"


# -- each fault, alone --------------------------------------------------------------------


def test_429_refuses_without_processing(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(faults={"429": 1}, retry_after=0.25)
    response = post(http, emu)

    assert_error(response, 429, "E429")
    assert response.headers["Retry-After"] == "0.25"
    assert emu.messages.empty
    assert emu.faults_injected == {"429": 1, "503": 0, "500": 0, "reset": 0, "late": 0}
    assert emu.requests_seen == 1


@pytest.mark.parametrize(
    ("seconds", "text"), [(1.0, "1"), (2, "2"), (0.1, "0.1"), (1.0001, "1.001")]
)
def test_retry_after_is_whole_seconds_or_a_decimal_rounded_up(
    make: MakeEmulator, http: requests.Session, seconds: float, text: str
) -> None:
    emu = make(faults={"429": 1}, retry_after=seconds)
    assert post(http, emu).headers["Retry-After"] == text


def test_503_refuses_without_processing(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(faults={"503": 1})
    response = post(http, emu)

    assert_error(response, 503, "E503")
    assert "Retry-After" not in response.headers
    assert emu.messages.empty
    assert emu.faults_injected["503"] == 1


def test_500_comes_after_the_message_is_recorded(
    make: MakeEmulator, http: requests.Session
) -> None:
    emu = make(faults={"500": 1})
    assert_error(post(http, emu, {**VALID, "to": f"{TO},+14155550123"}), 500, "E500")

    assert emu.messages["to"].tolist() == [TO, "+14155550123"]  # processed: resending = twice
    assert emu.faults_injected["500"] == 1
    assert post(http, emu).status_code == 500  # the connection is still usable


def test_reset_drops_the_connection_after_recording(
    make: MakeEmulator, http: requests.Session
) -> None:
    emu = make(faults={"reset": 1})
    with pytest.raises(requests.ConnectionError):
        post(http, emu)
    assert len(emu.messages) == 1
    assert emu.faults_injected["reset"] == 1

    emu.clear_faults()
    assert post(http, emu).status_code == 200  # the session reconnects
    assert len(emu.messages) == 2


def test_reset_is_a_tcp_reset_with_no_answer(make: MakeEmulator) -> None:
    emu = make(faults={"reset": 1})
    body = "to=919876543210&from=911234567890&type=text&channel=whatsapp&body=hi"
    request = (
        f"POST /v1/{emu.sid}/messages HTTP/1.1\r\nHost: x\r\napi-key: {emu.api_key}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    with socket.create_connection(("127.0.0.1", emu.port)) as sock:
        sock.settimeout(5)
        sock.sendall(request.encode())
        try:
            data: bytes | None = sock.recv(65536)  # a FIN would read b"" here instead
        except ConnectionResetError:
            data = None
    assert data is None, f"expected a reset (RST), read {data!r}"
    assert len(emu.messages) == 1


def test_reset_without_the_emulators_server_raises(make: MakeEmulator) -> None:
    emu = Emulator(faults={"reset": 1}, api_key="k")
    with pytest.raises(ConnectionAbortedError, match="reset"):
        Client(emu.wsgi_app).post(f"/v1/{emu.sid}/messages", data=VALID, headers={"api-key": "k"})
    assert len(emu.messages) == 1


def test_late_answer_outlasts_the_client_timeout(
    make: MakeEmulator, http: requests.Session
) -> None:
    emu = make(faults={"late": 1}, late_delay=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(http, emu, timeout=0.2)
    assert len(emu.messages) == 1  # accepted, though the client never heard back

    started = time.perf_counter()
    response = post(http, emu, timeout=10)
    assert time.perf_counter() - started >= 0.6
    assert response.status_code == 200
    assert response.json()["totalCount"] == 1
    assert len(emu.messages) == 2
    assert emu.faults_injected["late"] == 2


class _WokenBy(threading.Event):
    """The emulator's "the server stops" event, recording how each wait on it ended: True
    when :meth:`set` woke it, False when its timeout (the late answer's delay) ran out."""

    def __init__(self) -> None:
        super().__init__()
        self.woken: list[bool] = []

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        self.woken.append(woken)
        return woken


def test_stop_releases_late_answers_at_once() -> None:
    emu = Emulator(faults={"late": 1}, late_delay=60)
    stopping = emu._endpoint.stopping = _WokenBy()  # what a late answer waits on
    emu.start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with requests.Session() as session:
                post(session, emu, timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while emu.message_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    emu.stop()
    caller.join(timeout=40)  # the caller's own read timeout (30 s) ends it in any case
    deadline = time.monotonic() + 10
    while not stopping.woken and time.monotonic() < deadline:
        time.sleep(0.01)
    # The late answer was released by the stop, not by its 60 s of late_delay running out
    # (a wait that timed out records False; one still waiting records nothing).
    assert stopping.woken == [True]
    assert emu.message_count == 1


# -- where faults apply -------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_401_stays_a_401(make: MakeEmulator, http: requests.Session, fault: str) -> None:
    emu = make(faults={fault: 1}, late_delay=0)
    emu.inject(fault)
    assert_error(post(http, emu, key="wrong"), 401, "E401")
    assert emu.faults_injected[fault] == 0
    assert emu.queued_faults == (fault,)


@pytest.mark.parametrize("fault", ["500", "reset", "late"])
def test_a_400_stays_a_400_for_faults_after_processing(
    make: MakeEmulator, http: requests.Session, fault: str
) -> None:
    emu = make(faults={fault: 1}, late_delay=0)
    assert_error(post(http, emu, INVALID), 400, "E13009")
    assert emu.faults_injected[fault] == 0
    assert emu.messages.empty


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("503", 503)])
def test_random_429_and_503_come_before_the_checks(
    make: MakeEmulator, http: requests.Session, fault: str, status: int
) -> None:
    emu = make(faults={fault: 1})
    assert post(http, emu, INVALID).status_code == status  # as behind a real gateway
    assert emu.faults_injected[fault] == 1


def test_unknown_paths_and_methods_get_no_fault(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(faults={"503": 1})
    assert http.get(f"{emu.url}/elsewhere", timeout=5).status_code == 404
    assert http.put(emu.messages_url, timeout=5).status_code == 405
    assert emu.faults_injected["503"] == 0


# -- probabilities and seeds --------------------------------------------------------------

MIXED = {"429": 0.2, "503": 0.1, "500": 0.1, "reset": 0.1, "late": 0.1}
SENT = 400


def run_mixed(make: MakeEmulator, seed: int, sent: int = SENT) -> tuple[list[str], Emulator]:
    emu = make(faults=MIXED, late_delay=0, seed=seed)
    with requests.Session() as session:
        outcomes = [outcome(session, emu) for _ in range(sent)]
    return outcomes, emu


def test_probabilities_are_honoured_and_the_ledger_agrees(make: MakeEmulator) -> None:
    outcomes, emu = run_mixed(make, seed=11)
    counts = Counter(outcomes)
    served = emu.faults_injected

    assert counts["429"] == served["429"]
    assert counts["503"] == served["503"]
    assert counts["500"] == served["500"]
    assert counts["reset"] == served["reset"]
    assert counts["200"] == SENT - served["429"] - served["503"] - served["500"] - served["reset"]
    # Processed: 200 (late ones included), 500 and reset; never 429 or 503.
    assert emu.message_count == counts["200"] + counts["500"] + counts["reset"]
    assert len(emu.messages) == emu.message_count

    # Roughly honoured: within 5 standard deviations of the expected count. 429 and 503
    # strike every request; the others the requests that got through (70%).
    for name, probability in MIXED.items():
        trials = SENT if name in ("429", "503") else SENT * 0.7
        expected = trials * probability
        spread = 5 * math.sqrt(trials * probability * (1 - probability))
        assert abs(served[name] - expected) <= spread, (name, served[name], expected)


def test_the_same_seed_gives_the_same_faults(make: MakeEmulator) -> None:
    first, emu_one = run_mixed(make, seed=5, sent=150)
    second, emu_two = run_mixed(make, seed=5, sent=150)
    other, _ = run_mixed(make, seed=6, sent=150)

    assert first == second
    assert emu_one.faults_injected == emu_two.faults_injected
    assert emu_one.messages["message_id"].tolist() == emu_two.messages["message_id"].tolist()
    assert other != first


def test_draws_and_counters_stay_consistent_under_concurrency(make: MakeEmulator) -> None:
    emu = make(faults={"429": 0.2, "503": 0.1, "500": 0.2, "reset": 0.1}, seed=1)

    def worker(_: int) -> list[str]:
        with requests.Session() as session:
            return [outcome(session, emu) for _ in range(40)]

    with ThreadPoolExecutor(8) as pool:
        counts = Counter(o for batch in pool.map(worker, range(8)) for o in batch)

    served = emu.faults_injected
    assert sum(counts.values()) == 320
    assert {name: counts[name] for name in ("429", "503", "500", "reset")} == {
        name: served[name] for name in ("429", "503", "500", "reset")
    }
    assert emu.message_count == counts["200"] + counts["500"] + counts["reset"]
    assert emu.messages["message_id"].is_unique


def test_zero_probabilities_are_no_faults(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(faults=dict.fromkeys(FAULTS, 0.0))
    assert [post(http, emu).status_code for _ in range(20)] == [200] * 20
    assert sum(emu.faults_injected.values()) == 0


# -- injection ----------------------------------------------------------------------------


def test_injected_faults_hit_the_next_valid_requests_in_order(
    emu: Emulator, http: requests.Session
) -> None:
    emu.inject("503")
    emu.inject("500", times=2)
    emu.inject("429")
    assert emu.queued_faults == ("503", "500", "500", "429")

    assert post(http, emu, INVALID).status_code == 400  # invalid: nothing consumed
    assert post(http, emu, key="wrong").status_code == 401
    assert emu.queued_faults == ("503", "500", "500", "429")

    assert post(http, emu).status_code == 503
    assert emu.messages.empty
    assert post(http, emu).status_code == 500
    assert post(http, emu).status_code == 500
    assert len(emu.messages) == 2
    response = post(http, emu)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert len(emu.messages) == 2
    assert post(http, emu).status_code == 200
    assert not emu.queued_faults
    assert emu.faults_injected == {"429": 1, "503": 1, "500": 2, "reset": 0, "late": 0}


def test_injected_reset_and_late(emu: Emulator, http: requests.Session) -> None:
    emu.inject("reset")
    with pytest.raises(requests.ConnectionError):
        post(http, emu)
    emu.late_delay = 0.4
    try:
        emu.inject("late")
        with pytest.raises(requests.exceptions.ReadTimeout):
            post(http, emu, timeout=0.1)
    finally:
        emu.late_delay = 5.0
    assert len(emu.messages) == 2


def test_injected_faults_come_before_random_draws(
    make: MakeEmulator, http: requests.Session
) -> None:
    emu = make(faults={"503": 1})
    emu.inject("500")
    assert post(http, emu, INVALID).status_code == 400  # no draw while a fault is queued
    assert post(http, emu).status_code == 500
    assert post(http, emu).status_code == 503


def test_clear_faults_stops_every_fault(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(faults={"503": 0.5, "500": 0.5}, seed=3)
    emu.inject("429", times=3)
    emu.clear_faults()
    assert emu.queued_faults == ()
    assert emu.faults == {}
    assert [post(http, emu).status_code for _ in range(10)] == [200] * 10

    emu.faults = {"503": 1}  # and they can be set again while serving
    assert post(http, emu).status_code == 503
    assert emu.faults == {"503": 1.0}


def test_reset_zeroes_counters_and_the_queue(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(faults={"503": 1}, rate_limit=1)
    post(http, emu)
    emu.inject("500")
    emu.reset()
    assert emu.faults_injected == dict.fromkeys(FAULTS, 0)
    assert emu.queued_faults == ()
    assert emu.rate_limited == 0
    assert emu.faults == {"503": 1.0}  # settings are kept


@pytest.mark.parametrize(("fault", "times"), [("404", 1), ("Reset", 1), ("429", 0), ("429", -2)])
def test_inject_refuses_bad_arguments(fault: str, times: int) -> None:
    with pytest.raises(ValueError, match=r"fault|times"):
        Emulator().inject(fault, times=times)


# -- the rate limit -----------------------------------------------------------------------


def test_rate_limit_refuses_the_excess_and_accepts_again_after(
    make: MakeEmulator, http: requests.Session
) -> None:
    emu = make(rate_limit=5)
    three = {**VALID, "to": f"{TO},+14155550123,+447911123456"}
    assert post(http, emu, three).status_code == 200

    refused = post(http, emu, three)  # 3 + 3 > 5 within the same second
    assert_error(refused, 429, "E429")
    wait = float(refused.headers["Retry-After"])
    assert 0 < wait <= 1
    assert emu.message_count == 3
    assert emu.rate_limited == 1
    assert sum(emu.faults_injected.values()) == 0  # the limit is not a fault

    assert post(http, emu, INVALID).status_code == 400  # invalid requests are not counted
    assert post(http, emu, {**VALID, "to": f"{TO},+14155550123"}).status_code == 200  # 3 + 2

    time.sleep(wait)
    assert post(http, emu, three).status_code == 200  # the first three left the window
    assert emu.message_count == 8


def test_a_request_larger_than_the_limit_needs_an_empty_window(
    make: MakeEmulator, http: requests.Session
) -> None:
    emu = make(rate_limit=2)
    three = {**VALID, "to": f"{TO},+14155550123,+447911123456"}
    assert post(http, emu, three).status_code == 200
    refused = post(http, emu)
    assert refused.status_code == 429
    time.sleep(float(refused.headers["Retry-After"]))
    assert post(http, emu).status_code == 200


def test_rate_limit_holds_under_concurrency(make: MakeEmulator) -> None:
    limit = 40
    emu = make(rate_limit=limit)
    stop_at = time.monotonic() + 1.1

    def worker(_: int) -> Counter[int]:
        seen: Counter[int] = Counter()
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                seen[post(session, emu).status_code] += 1
        return seen

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        counts = sum(pool.map(worker, range(6)), Counter[int]())
    elapsed = time.monotonic() - started

    assert set(counts) <= {200, 429}
    assert counts[429] == emu.rate_limited > 0
    assert counts[200] == emu.message_count
    assert counts[200] <= limit * math.ceil(elapsed + 1)  # never more than the limit a second


# -- latency and jitter -------------------------------------------------------------------


def test_jitter_adds_between_zero_and_jitter_seconds(
    make: MakeEmulator, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kwa_batch.emulator import endpoint

    delays: list[float] = []  # what the emulator chose to wait before each answer

    class Time:  # the time module as the emulator's endpoint sees it, its sleeps recorded
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            delays.append(seconds)
            time.sleep(seconds)

    monkeypatch.setattr(endpoint, "time", Time())
    emu = make(latency=0.03, jitter=0.06, seed=2)
    post(http, emu)  # connect first: time only the answers
    elapsed = []
    for _ in range(10):
        started = time.perf_counter()
        assert post(http, emu).status_code == 200
        elapsed.append(time.perf_counter() - started)
    assert min(elapsed) >= 0.03  # a lower bound: the client did wait that long
    assert len(delays) == 11
    assert all(0.03 <= delay <= 0.03 + 0.06 for delay in delays), delays
    assert max(delays) - min(delays) > 0.01  # the delays vary


def test_jitter_applies_to_refusals_too(make: MakeEmulator, http: requests.Session) -> None:
    emu = make(jitter=0.2, faults={"503": 1}, seed=4)
    total = 0.0
    for _ in range(5):
        started = time.perf_counter()
        assert post(http, emu).status_code == 503
        total += time.perf_counter() - started
    assert total > 0.05  # five uniform draws from 0..0.2 s: this is almost certain


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"faults": {"404": 0.1}}, "unknown fault '404'"),
        ({"faults": {"timeout": 0.1}}, "unknown fault"),
        ({"faults": {"429": 1.5}}, "from 0 to 1"),
        ({"faults": {"429": -0.1}}, "from 0 to 1"),
        ({"faults": {"503": "often"}}, "from 0 to 1"),
        ({"faults": {"500": math.nan}}, "from 0 to 1"),
        ({"faults": {"429": 0.6, "503": 0.6}}, "add up to 1.2"),
        ({"faults": {"500": 0.5, "reset": 0.3, "late": 0.3}}, "add up to 1.1"),
        ({"faults": "429"}, "must map fault names"),
        ({"jitter": -0.1}, "jitter"),
        ({"late_delay": -1}, "late_delay"),
        ({"retry_after": math.inf}, "retry_after"),
        ({"latency": math.nan}, "latency"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -5}, "rate_limit"),
    ],
)
def test_bad_settings_raise_value_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Emulator(**settings)


def test_good_settings_are_normalised() -> None:
    emu = Emulator(faults={429: 0.5, "503": 0.5, "500": 0.1, "reset": 0.2, "late": 0.7})  # type: ignore[dict-item]
    assert emu.faults == {"429": 0.5, "503": 0.5, "500": 0.1, "reset": 0.2, "late": 0.7}
    assert Emulator(rate_limit=10).rate_limit == 10.0


def test_repr_shows_the_faults_but_never_the_key() -> None:
    emu = Emulator(api_key="s3cret-key", faults={"429": 0.05}, rate_limit=100, jitter=0.01)
    text = repr(emu)
    assert "s3cret" not in text
    assert "faults={'429': 0.05}" in text
    assert "rate_limit=100" in text
    assert "jitter=0.01" in text


@pytest.mark.parametrize("fresh_emulator", [{"faults": {"503": 1.0}, "seed": 1}], indirect=True)
def test_fresh_emulator_takes_settings(fresh_emulator: Emulator, http: requests.Session) -> None:
    assert post(http, fresh_emulator).status_code == 503


# -- the command line ---------------------------------------------------------------------


def test_cli_flags_configure_the_faults() -> None:
    command = [
        sys.executable, "-m", "kwa_batch", "emulator", "--sid", "HXFAULTS", "--api-key", "k",
        "--fault", "503=0.5", "--fault", "429=0.5", "--fault", "reset=0.25",
        "--retry-after", "2.5", "--late-delay", "7", "--rate", "1000",
        "--latency", "1", "--jitter", "5", "--seed", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        banner = "".join(lines)
        assert "faults: 429 50%, 503 50%, reset 25% (Retry-After 2.5 s, seed 1)" in banner
        assert "rate limit: 1000 messages per second" in banner
        assert "latency: 1 ms + up to 5 ms" in banner
        match = re.search(r"KALEYRA_BASE_URL=(\S+)", banner)
        assert match is not None, banner

        statuses = []
        with requests.Session() as session:
            for _ in range(10):
                answer = session.post(
                    f"{match.group(1)}/v1/HXFAULTS/messages",
                    data=VALID,
                    headers={"api-key": "k"},
                    timeout=5,
                )
                statuses.append(answer.status_code)
                if answer.status_code == 429:
                    assert answer.headers["Retry-After"] == "2.5"
                else:
                    assert answer.json()["code"] == "E503"
        assert set(statuses) == {429, 503}  # seeded: always both, in the same order

        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=20)[0]
        assert "Stopped; 0 message(s) accepted; faults served: " in rest
        assert f"429 x{statuses.count(429)}, 503 x{statuses.count(503)}" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("nope=0.1", "unknown fault 'nope'"),
        ("429", "write NAME=PROB"),
        ("429=often", "write NAME=PROB"),
        ("429=2", "from 0 to 1"),
    ],
)
def test_cli_refuses_a_bad_fault_in_one_line(flag: str, message: str) -> None:
    from click.testing import CliRunner

    from kwa_batch.cli import cli

    result = CliRunner().invoke(cli, ["emulator", "--fault", flag])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
