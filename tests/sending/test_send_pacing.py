"""send() paced by the rate: WhatsApp's limits kept, the pool sized from the latency,
backpressure on "too fast", rows for one customer spaced without holding others back.

Against the real emulator playing the limits (``throughput=``, ``pair_interval=``); the
assertions are on what the server counted and on the order of arrivals, never on speed.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SENDER
from werkzeug.wrappers import Request, Response

from kwa_batch import ConfigurationError, Emulator, KaleyraClient, Pacing, send
from kwa_batch._http.serving import BackgroundServer
from kwa_batch.sending.journal import Journal

NO_VIOLATIONS = {"130429": 0, "131056": 0}


def frame(n: int, prefix: str = "+9198765", start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": pd.array([f"{prefix}{i:05d}" for i in range(start, start + n)], dtype="str"),
            "body": pd.array([f"Hello {i}" for i in range(start, start + n)], dtype="str"),
        }
    )


def repeated(customers: int, rows_each: int) -> pd.DataFrame:
    """Several personalised rows for each customer, customer after customer."""
    return pd.DataFrame(
        {
            "to": [f"+91987650{i:04d}" for i in range(customers) for _ in range(rows_each)],
            "body": [
                f"Reminder {k} for customer {i}" for i in range(customers) for k in range(rows_each)
            ],
        }
    )


def test_defaults_are_whatsapps_limits() -> None:
    assert inspect.signature(send).parameters["pacing"].default is None  # Pacing()
    defaults = Pacing()
    assert defaults.rate_limit == 80.0
    assert defaults.per_recipient_interval == 6.0
    assert defaults.concurrency is None


def test_a_campaign_stays_within_the_throughput_and_the_pair_rate() -> None:
    # A broadcast larger than the rate, and customers with two rows each: 2 s at 30/s.
    df = pd.concat(
        [frame(45).assign(body="Our sale starts today"), repeated(6, 2)], ignore_index=True
    )
    with Emulator(throughput=30, pair_interval=1.0, latency=0.02) as emu:
        results = send(
            df,
            emu.client(sender=SENDER),
            rate_limit=30,
            per_recipient_interval=1.0,
            progress=False,
        )
        assert emu.limits.violations == NO_VIOLATIONS
        assert emu.limits.peak <= 30
    assert (results["status"] == "sent").all()
    assert results["recipients"].max() == 30  # a request may not exceed the rate


def test_rows_for_one_customer_are_spaced_and_others_are_not_held_back() -> None:
    others = frame(20, prefix="+9198766")
    df = pd.concat([repeated(1, 3), others], ignore_index=True)  # the customer first
    with Emulator(pair_interval=0.5) as emu:
        results = send(
            df, emu.client(sender=SENDER), rate_limit=None, per_recipient_interval=0.5,
            concurrency=4, progress=False,
        )  # fmt: skip
        ledger = emu.messages
        assert emu.limits.violations == NO_VIOLATIONS
    assert (results["status"] == "sent").all()
    customer = ledger[ledger["to"] == "+919876500000"]["received_at"].sort_values()
    assert len(customer) == 3
    assert (customer.diff().dropna() >= pd.Timedelta(seconds=0.5)).all()
    others = ledger[ledger["to"] != "+919876500000"]["received_at"]
    assert others.max() < customer.iloc[1]  # all twenty went while the customer waited


def test_spacing_holds_at_the_server_when_a_message_is_slow_to_leave() -> None:
    class Stalling(KaleyraClient):
        def post(self, data: Any) -> Any:
            if data["body"].startswith("Reminder 0"):
                time.sleep(0.3)  # between the limiter and the wire: a GC pause, a slow disk
            return super().post(data)

    with Emulator(pair_interval=1.0) as emu:
        client = Stalling(emu.sid, emu.api_key, sender=SENDER, base_url=emu.url)
        results = send(
            repeated(1, 2), client, rate_limit=None, per_recipient_interval=1.0, progress=False
        )
        assert emu.limits.violations == NO_VIOLATIONS
    assert (results["status"] == "sent").all()


def test_the_window_holds_at_the_server_when_the_journal_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write that takes 0.3 s between the limiter and the wire (a slow disk) must not let
    # the platform see more than the rate in a second.
    mark = Journal.mark_in_flight
    calls = []

    def slow_first(self: Journal, *args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)
        return mark(self, *args)

    monkeypatch.setattr(Journal, "mark_in_flight", slow_first)
    with Emulator(throughput=5) as emu:
        results = send(
            frame(8), emu.client(sender=SENDER), rate_limit=5, journal=tmp_path / "j.db",
            progress=False,
        )  # fmt: skip
        assert emu.limits.violations == NO_VIOLATIONS
    assert (results["status"] == "sent").all()


def test_the_pool_grows_with_the_latency_unless_pinned() -> None:
    with Emulator(latency=0.4) as emu:
        driven = send(frame(60), emu.client(sender=SENDER), rate_limit=60, progress=False)
        pinned = send(
            frame(6, start=100), emu.client(sender=SENDER), rate_limit=60, concurrency=3,
            progress=False,
        )  # fmt: skip
    assert (driven["status"] == "sent").all()
    # Little's law: 60 messages/s x 0.4 s = 24 in flight; 8 (the old default) would give 20/s.
    assert driven.attrs["run"].pacing["peak_in_flight"] >= 20
    assert pinned.attrs["run"].pacing["peak_in_flight"] <= 3


def test_429_answers_lower_the_rate_in_force() -> None:
    # The account allows 10 messages per second; the run asks for 40.
    with Emulator(rate_limit=10) as emu:
        results = send(
            frame(20), emu.client(sender=SENDER), rate_limit=40, progress=False, max_attempts=8,
            backoff=0.05,
        )  # fmt: skip
        refused = emu.rate_limited
    assert (results["status"] == "sent").all()
    pacing = results.attrs["run"].pacing
    assert refused > 0
    assert pacing["throttles"] == refused
    assert pacing["lowest_rate"] <= 20  # halved at least once


def test_whatsapp_130429_passed_on_is_retried_and_slows_the_run() -> None:
    with Emulator(throughput=5, limit_answer="api") as emu:
        results = send(
            frame(10), emu.client(sender=SENDER), rate_limit=20, progress=False, max_attempts=10,
            backoff=0.05,
        )  # fmt: skip
        violations = emu.limits.violations["130429"]
    assert (results["status"] == "sent").all()
    assert violations > 0
    assert results.attrs["run"].pacing["throttles"] == violations


class WhatsAppPassedOn:
    """A real HTTP server that answers like a Kaleyra passing WhatsApp's "too fast" on
    synchronously (HTTP 400 with the code), then accepts (the emulator answers 429 instead)."""

    def __init__(self, code: str, refusals: int) -> None:
        self.code, self.refusals, self.seen = code, refusals, 0
        self.server = BackgroundServer(self.app, host="127.0.0.1", port=0, name="passed-on")

    def app(self, environ: Any, start_response: Any) -> Any:
        self.seen += 1
        to = Request(environ).form["to"].lstrip("+")
        if self.seen <= self.refusals:
            body = {"code": self.code, "message": "Rate limit hit", "error": {"to": "throttled"}}
            return Response(json.dumps(body), 400, mimetype="application/json")(
                environ, start_response
            )
        body = {"id": "r1", "data": [{"message_id": "r1:0", "recipient": to}], "error": {}}
        return Response(json.dumps(body), 200, mimetype="application/json")(environ, start_response)


@pytest.mark.parametrize("code", ["130429", "131056"])
def test_a_whatsapp_code_in_a_400_is_retried_as_too_fast(code: str) -> None:
    fake = WhatsAppPassedOn(code, refusals=2)
    fake.server.start()
    try:
        client = KaleyraClient("HX1", "key-1", sender=SENDER, base_url=fake.server.url)
        results = send(
            frame(1), client, rate_limit=10, backoff=0.01, progress=False, max_attempts=4
        )
    finally:
        fake.server.stop()
    assert results.loc[0, "status"] == "sent"
    assert results.loc[0, "attempts"] == 3
    assert results.attrs["run"].pacing["throttles"] == 2


def test_a_broadcast_is_grouped_to_pack_the_rate() -> None:
    df = frame(150).assign(body="Our sale starts today")
    with Emulator() as emu:
        results = send(df, emu.client(sender=SENDER), rate_limit=150, progress=False)
    assert results["recipients"].tolist() == [75] * 150  # two requests fill a second


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": 0.5}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"rate_limit": True}, "rate_limit"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": "many"}, "max_concurrency"),
        ({"per_recipient_interval": -1}, "per_recipient_interval"),
        ({"per_recipient_interval": None}, "per_recipient_interval"),
        ({"per_recipient_interval": float("inf")}, "per_recipient_interval"),
    ],
)
def test_bad_pacing_settings_are_refused_before_sending(
    emulator: Emulator, settings: dict[str, float], word: str
) -> None:
    emulator.reset()
    with pytest.raises(ConfigurationError, match=word):
        send(frame(2), emulator.client(sender=SENDER), progress=False, **settings)
    assert emulator.requests_seen == 0


def test_the_progress_bar_shows_the_pace_within_80_columns(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kwa_batch.sending.run as run

    class Narrow(run.tqdm):  # type: ignore[misc,name-defined]
        """An 80-column terminal."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "ncols": 80, "mininterval": 0})

    monkeypatch.setattr(run, "tqdm", Narrow)
    monkeypatch.setattr(run, "_draws_a_bar", lambda: True)  # stderr a terminal
    send(frame(1000), emulator.client(sender=SENDER), rate_limit=5000, progress=True)
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line]
    bars = [line for line in lines if "|" in line]
    # The counts, the rate in force (at most), the requests in flight: each in words.
    assert "sent 1,000 · ≤5000/s, 0 in flight" in bars[-1]
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
