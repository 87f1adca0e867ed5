"""The rate limit holds where the platform counts it: in every one-second window of arrivals.

Real sends against the real emulator on 127.0.0.1 with latency, counting the messages in the
ledger by the time the server received them (``received_at``). Before the fix, a pause
between the limiter and the wire (a journal write, a new connection, the GIL, a garbage
collection) longer than the margin let 51-54 messages arrive in a second at 50/s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from conftest import SENDER

from kwa_batch import Emulator, send
from kwa_batch.sending.limiter import departing, max_in_any_window

pytestmark = pytest.mark.slow  # real runs at a set rate: seconds each

RATE = 50


def personalised(n: int) -> pd.DataFrame:
    """One request per row (a different body each), as for order updates."""
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(n)],
            "body": [f"Hi {i}, your order A{i:06d} has shipped." for i in range(n)],
        }
    )


def arrivals(emu: Emulator) -> list[float]:
    received = emu.messages["received_at"]
    return list((received - pd.Timestamp(0, tz="UTC")).dt.total_seconds())


def test_the_client_says_when_a_request_is_in_the_socket() -> None:
    # The moment the window counts: after the bytes are written, before the answer (which
    # takes the latency), once per request; in the sending thread.
    with Emulator(latency=0.2, callbacks=False) as emu, emu.client(sender=SENDER) as client:
        stamps: list[float] = []
        departing(lambda: stamps.append(time.monotonic()))
        client.send_message("+919876543210", body="Hello")
        answered = time.monotonic()
        client.send_message("+919876543211", body="Hello again")
        assert len(stamps) == 1
        assert answered - stamps[0] >= 0.2
        assert len(emu.messages) == 2


class Pauses:
    """Stops whoever calls :meth:`wait` for ``pause`` seconds every ``every`` seconds (a
    collection, a lock, a busy host): whatever came meanwhile goes on together, after."""

    def __init__(self, every: float, pause: float) -> None:
        self.every, self.pause, self._start = every, pause, time.monotonic()

    def wait(self) -> None:
        into = (time.monotonic() - self._start) % self.every
        if into < self.pause:
            time.sleep(self.pause - into)


class PausingSession(requests.Session):
    """A session stopped by ``pauses`` after the sender let its request go and before the
    bytes reach the socket (where a collection, the GIL or a new connection stop it)."""

    def __init__(self, pauses: Pauses) -> None:
        super().__init__()
        self.pauses = pauses

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.pauses.wait()
        return super().send(request, **kwargs)


class PausingServer(Emulator):
    """An emulator stopped by ``pauses`` before it reads a request (and counts it)."""

    def __init__(self, pauses: Pauses, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pauses = pauses

    def wsgi_app(self, environ: Any, start_response: Any) -> Any:  # type: ignore[override]
        self.pauses.wait()
        return super().wsgi_app(environ, start_response)


def test_a_pause_before_the_wire_does_not_crowd_a_second_at_the_server() -> None:
    # 120 ms every 1.25 s (longer than the margin ever was before the fix, 50 ms at most):
    # the requests let go meanwhile reach the wire together. Each holds its place in the
    # window from there, so the ones a second later wait for them.
    pauses = Pauses(1.25, 0.12)  # four pauses in the run's 4 s
    with Emulator(latency=0.3, callbacks=False) as emu:
        client = emu.client(sender=SENDER, session_factory=lambda: PausingSession(pauses))
        results = send(personalised(200), client, rate_limit=RATE, progress=False)
        seen = arrivals(emu)
    assert (results["status"] == "sent").all()
    assert max_in_any_window(seen) <= RATE


def test_a_server_that_stalls_sees_no_more_than_the_rate() -> None:
    # The same pauses at the server: what is sent meanwhile arrives at once. The client sees
    # the stall in the round trips (0.42 s later), before the messages a second later
    # leave, and holds each place that much longer.
    with PausingServer(Pauses(1.25, 0.12), latency=0.3, callbacks=False) as emu:
        results = send(personalised(200), emu.client(sender=SENDER), rate_limit=RATE,
                       progress=False)  # fmt: skip
        seen = arrivals(emu)
    assert (results["status"] == "sent").all()
    assert max_in_any_window(seen) <= RATE


def test_the_reported_run_never_exceeds_the_rate_at_the_server(tmp_path: Path) -> None:
    # The case (rate 50, 300 ms latency, a journal written before each request),
    # with jitter on the answers.
    with Emulator(latency=0.3, jitter=0.02, callbacks=False, seed=1) as emu:
        results = send(
            personalised(150), emu.client(sender=SENDER), rate_limit=RATE,
            journal=tmp_path / "run.sqlite", progress=False,
        )  # fmt: skip
        seen = arrivals(emu)
    assert (results["status"] == "sent").all()
    assert max_in_any_window(seen) <= RATE
