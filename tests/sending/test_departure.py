"""The campaign's rules at the moment each message leaves (issue #17): expiry, quiet hours,
the daily limit and opt-outs decided again while the run sends — against the real emulator,
which records when each message arrived."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER, WallClock

from kwa_batch import ConfigurationError, Emulator, send, validate
from kwa_batch.receipts.optouts import opt_outs
from kwa_batch.receipts.store import CallbackStore, IncomingMessage
from kwa_batch.sending import clock
from kwa_batch.sending.departure import Departure
from kwa_batch.sending.journal import Journal
from kwa_batch.sending.schedule import Pacing

UK = [f"+4479111234{i:02d}" for i in range(40)]


def campaign(numbers: list[str], type_: str = "template") -> pd.DataFrame:
    frame = pd.DataFrame({"to": pd.array(numbers, dtype="str")})
    if type_ == "template":
        frame["type"], frame["template_name"] = "template", "promo"
        frame["params"], frame["lang_code"] = "Ana", "en"
    else:
        frame["body"] = "Hello"
    return frame


@pytest.mark.slow
def test_nothing_leaves_after_the_expiry(fresh_emulator: Emulator, tmp_path: Path) -> None:
    """12 rows at 4/s expiring after 1 s: what was not sent by then never goes, and the run
    ends at once rather than pacing the expired rows through the rate limit."""
    report = validate(campaign(UK[:12]), sender=SENDER)
    started = time.monotonic()
    results = send(
        report,
        fresh_emulator.client(),
        rate_limit=4,
        expires="1s",
        journal=tmp_path / "run.db",
        progress=False,
    )
    took = time.monotonic() - started
    expiry = datetime.fromisoformat(results.attrs["run"]["expires"])
    arrived = fresh_emulator.messages["received_at"]
    assert (arrived <= pd.Timestamp(expiry)).all(), "a message arrived after the expiry"
    sent = results["status"] == "sent"
    assert 2 <= sent.sum() < 12
    assert len(arrived) == sent.sum()
    late = results[~sent]
    assert set(late["error_code"]) == {"KWA029"}
    assert late["error_message"].str.contains("never sent").all()
    assert took < 5, f"the run waited {took:.1f} s for rows that may no longer go"
    assert results.attrs["run"]["held"]["KWA029"] == len(late)
    # The journal keeps them expired: the same command later sends nothing.
    again = send(report, fresh_emulator.client(), journal=tmp_path / "run.db", progress=False)
    assert set(again.loc[late.index, "error_code"]) == {"KWA029"}
    assert len(fresh_emulator.messages) == sent.sum()


@pytest.mark.slow
def test_quiet_hours_that_start_while_the_run_sends_hold_the_rest(
    fresh_emulator: Emulator, wall_clock: WallClock
) -> None:
    """London, 20:59:58 in January, quiet from 21:00: the first rows go, the rest wait for
    09:00 — and the run ends, it does not sleep until the morning."""
    wall_clock.set(datetime(2027, 1, 15, 20, 59, 58, tzinfo=UTC), speed=1.0)
    report = validate(campaign(UK[:14]), sender=SENDER)
    started = time.monotonic()
    results = send(
        report, fresh_emulator.client(), rate_limit=2, quiet_hours="21:00-09:00", progress=False
    )
    assert time.monotonic() - started < 6
    sent = results["status"] == "sent"
    assert 2 <= sent.sum() <= 6
    assert len(fresh_emulator.messages) == sent.sum()
    held = results[~sent]
    assert set(held["error_code"]) == {"KWA027"}
    assert held["error_message"].str.contains(r"can go from 2027-01-16 09:00").all()
    assert results.attrs["run"]["held"] == {"KWA027": len(held)}
    stamps = results.loc[sent, "sent_at"]
    assert (stamps < pd.Timestamp("2027-01-15 21:00", tz="UTC")).all()


def test_a_grouped_request_is_split_by_the_verdicts_at_departure(
    fresh_emulator: Emulator, wall_clock: WallClock
) -> None:
    """One template to London and to Mumbai in one request: at 22:00 UTC it is night in
    India (03:30), evening in London: the London row goes, the Mumbai row waits."""
    wall_clock.set(datetime(2027, 1, 15, 15, 29, 59, tzinfo=UTC), speed=1.0)
    numbers = [UK[0], "+919876500001", UK[1]]
    report = validate(campaign(numbers), sender=SENDER)
    # Planned at 15:29:59 (20:59:59 in India: may go); it leaves after 21:00 there.
    gate = threading.Event()
    original = clock.now

    def slow_start() -> datetime:
        if not gate.is_set():
            gate.set()
            return original()
        return original() + timedelta(seconds=2)

    clock.now = slow_start  # type: ignore[assignment]  # restored by the fixture
    results = send(
        report,
        fresh_emulator.client(),
        quiet_hours="21:00-09:00",
        per_recipient_interval=0,
        progress=False,
    )
    by_to = results.set_index("to")
    assert by_to.loc[[UK[0], UK[1]], "status"].tolist() == ["sent", "sent"]
    assert by_to.loc["+919876500001", "error_code"] == "KWA027"
    assert sorted(fresh_emulator.messages["to"]) == sorted([UK[0], UK[1]])


@pytest.mark.slow
def test_an_opt_out_received_while_the_run_sends_holds_that_customers_rows(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """A STOP stored at "minute 10" (here: one second into a run at 2/s) holds that
    customer's rows still queued; the receipts store is a live source, even when it holds no
    opt-outs yet."""
    store_path = tmp_path / "receipts.db"
    live = CallbackStore(store_path)  # an empty store, no opt-outs yet
    live.counts()
    numbers = UK[:8]
    report = validate(campaign(numbers), sender=SENDER, suppress=live)
    assert report.ok

    def stop_reply() -> None:
        time.sleep(1.0)
        now = datetime.now(UTC)
        with CallbackStore(store_path) as store:
            store.add_incoming(
                IncomingMessage("k1", numbers[-1], SENDER, now, now, "text", None, "STOP")
            )

    writer = threading.Thread(target=stop_reply)
    writer.start()
    results = send(report, fresh_emulator.client(), rate_limit=2, progress=False)
    writer.join()
    last = results.iloc[-1]
    assert last["status"] == "not_sent"
    assert last["error_code"] == "KWA025"
    assert "opted out" in last["error_message"]
    assert numbers[-1] not in set(fresh_emulator.messages["to"])
    assert (results["status"].iloc[:4] == "sent").all()


@pytest.mark.slow
def test_a_live_opt_out_source_that_can_no_longer_be_read_stops_the_sending(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    store_path = tmp_path / "receipts.db"
    with CallbackStore(store_path) as store:
        store.counts()

    class ByPath:  # a store read afresh at each look, as the command line gives it
        def opt_outs(self) -> pd.DataFrame:
            return opt_outs(store_path)

    report = validate(campaign(UK[:8]), sender=SENDER, suppress=ByPath())

    def damage() -> None:
        time.sleep(1.0)
        for extra in tmp_path.glob("receipts.db-*"):
            extra.unlink()
        store_path.write_bytes(b"garbage" * 100)

    writer = threading.Thread(target=damage)
    writer.start()
    results = send(report, fresh_emulator.client(), rate_limit=2, progress=False)
    writer.join()
    left = results[results["status"] != "sent"]
    assert not left.empty
    assert set(left["status"]) == {"not_sent"}
    assert left["error_message"].str.contains("could not be read again").all()
    assert len(fresh_emulator.messages) == 8 - len(left)


def test_in_flight_rows_of_the_runs_own_journal_count_toward_the_limit(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """Resumed after a kill: a row that was in flight may have reached its recipient."""
    report = validate(campaign(UK[:3]), sender=SENDER)
    journal = tmp_path / "run.db"
    first = send(report, fresh_emulator.client(), journal=journal, progress=False)
    key = None
    with Journal(journal) as opened:  # make the first row look in flight, as after a kill
        key = opened.db.execute("SELECT key FROM rows WHERE recipient = ?", (UK[0],)).fetchone()[0]
        opened.mark_in_flight([([key], [UK[0]])])
        opened.db.execute("DELETE FROM rows WHERE recipient != ?", (UK[0],))
    assert first["status"].eq("sent").all()
    fresh_emulator.reset()
    again = send(report, fresh_emulator.client(), journal=journal, daily_limit=2, progress=False)
    by_to = again.set_index("to")
    assert by_to.loc[UK[0], "error_code"] == "INFLIGHT"  # unknown, not resent
    assert sorted(by_to["error_code"].fillna("").tolist()) == ["", "INFLIGHT", "KWA030"]
    assert len(fresh_emulator.messages) == 1


def test_the_limit_at_departure_never_admits_more_than_the_room(wall_clock: WallClock) -> None:
    """64 threads racing for 10 places: exactly 10 recipients get one."""
    wall_clock.set(datetime(2027, 6, 1, 12, tzinfo=UTC))
    departure = Departure(Pacing.make(daily_limit=10), {})
    admitted: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(64)

    def race(i: int) -> None:
        start.wait()
        number = f"+44791112{i:04d}"
        if departure.check([number], "template") == [None]:
            with lock:
                admitted.append(number)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 10
    # 24 hours later the places are free again; a text never takes one.
    wall_clock.set(datetime(2027, 6, 2, 12, 0, 1, tzinfo=UTC))
    assert departure.check(["+447911129999"], "template") == [None]
    assert departure.check([f"+44791113{i:04d}" for i in range(20)], "text") == [None] * 20


def test_a_set_clock_is_refused_on_a_real_send(fresh_emulator: Emulator) -> None:
    report = validate(campaign(UK[:1]), sender=SENDER)
    with pytest.raises(ConfigurationError, match="a set clock only plans"):
        send(report, fresh_emulator.client(), now=datetime(2026, 12, 5, 6, tzinfo=UTC))
    assert fresh_emulator.messages.empty
