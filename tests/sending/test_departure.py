"""The campaign's rules at the moment each message leaves (issue #17): expiry, quiet hours,
the daily limit and opt-outs decided again while the run sends — against the real emulator,
which records when each message arrived."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import SENDER, WallClock, campaign

from kwa_batch import ConfigurationError, Emulator, send, validate
from kwa_batch.receipts.optouts import OptOutSource, opt_outs
from kwa_batch.receipts.receiver import Receiver
from kwa_batch.receipts.store import CallbackStore, IncomingMessage
from kwa_batch.sending import clock
from kwa_batch.sending.departure import Departure
from kwa_batch.sending.journal import Journal
from kwa_batch.sending.pacing import Pacer
from kwa_batch.sending.run import _Run
from kwa_batch.sending.schedule import Holds, Schedule

UK = [f"+4479111234{i:02d}" for i in range(40)]


@pytest.fixture
def rate_waits(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """When (by the run's clock) each request started to wait for the rate limit."""
    entered: list[datetime] = []
    acquire = Pacer.acquire

    def recorded(
        pacer: Pacer, numbers: Sequence[str], stop: threading.Event, sender: str | None = None
    ) -> float | None:
        entered.append(clock.now())
        return acquire(pacer, numbers, stop, sender)

    monkeypatch.setattr(Pacer, "acquire", recorded)
    return entered


def waited_from(entered: list[datetime], moment: datetime) -> list[datetime]:
    """The waits for the rate limit that started at ``moment`` or later: at most one, a
    request handed to a worker in that very moment (the rows still queued are held without
    waiting for it; paced through it, each would be one more)."""
    late = [when for when in entered if when >= moment]
    assert len(late) <= 1, f"{len(late)} request(s) waited for the rate limit from {moment}"
    return late


@pytest.mark.slow
def test_nothing_leaves_after_the_expiry(
    fresh_emulator: Emulator, tmp_path: Path, rate_waits: list[datetime]
) -> None:
    """40 rows at 4/s (ten requests of four) expiring after 1 s: what was not sent by then
    never goes, and the run ends at once rather than pacing the expired rows through the
    rate limit (another 8 s)."""
    report = validate(campaign(UK), sender=SENDER)
    results = send(
        report,
        fresh_emulator.client(),
        rate_limit=4,
        expires="1s",
        journal=tmp_path / "run.db",
        progress=False,
    )
    expiry = datetime.fromisoformat(results.attrs["run"].settings["expires"])
    arrived = fresh_emulator.messages["received_at"]
    assert (arrived <= pd.Timestamp(expiry)).all(), "a message arrived after the expiry"
    sent = results["status"] == "sent"
    assert 2 <= sent.sum() < 40
    assert len(arrived) == sent.sum()
    late = results[~sent]
    assert set(late["error_code"]) == {"KWA029"}
    assert late["error_message"].str.contains("never sent").all()
    # The requests already waiting for the rate limit at the expiry are held when it lets
    # them go; the others do not wait for it once the campaign has expired.
    assert rate_waits, "no request went through the rate limit"
    waited_from(rate_waits, expiry)
    assert results.attrs["run"].held["KWA029"] == len(late)
    # The journal keeps them expired: the same command later sends nothing.
    again = send(report, fresh_emulator.client(), journal=tmp_path / "run.db", progress=False)
    assert set(again.loc[late.index, "error_code"]) == {"KWA029"}
    assert len(fresh_emulator.messages) == sent.sum()


@pytest.mark.slow
def test_quiet_hours_that_start_while_the_run_sends_hold_the_rest(
    fresh_emulator: Emulator, wall_clock: WallClock, rate_waits: list[datetime]
) -> None:
    """London, 20:59:58 in January, quiet from 21:00: the first rows go, the rest wait for
    09:00 — and the run ends, it does not sleep until the morning (nor pace the held rows
    through the rate limit)."""
    wall_clock.set(datetime(2027, 1, 15, 20, 59, 58, tzinfo=UTC), speed=1.0)
    report = validate(campaign(UK[:14]), sender=SENDER)
    results = send(
        report, fresh_emulator.client(), rate_limit=2, quiet_hours="21:00-09:00", progress=False
    )
    waited_from(rate_waits, datetime(2027, 1, 15, 21, 0, tzinfo=UTC))
    sent = results["status"] == "sent"
    assert 2 <= sent.sum() <= 6
    assert len(fresh_emulator.messages) == sent.sum()
    held = results[~sent]
    assert set(held["error_code"]) == {"KWA027"}
    assert held["error_message"].str.contains(r"can go from 2027-01-16 09:00").all()
    assert results.attrs["run"].held == {"KWA027": len(held)}
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
    with CallbackStore(store_path) as store:  # an empty store, no opt-outs yet
        store.counts()
    live = OptOutSource(store_path)
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
def test_a_stop_promotions_tap_received_while_the_run_sends_holds_that_customers_rows(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """The tap of WhatsApp's "Stop promotions" button, posted in Kaleyra's v2 shape to a
    real receiver one second into a run at 2/s, holds that customer's rows still queued."""
    store_path = tmp_path / "receipts.db"
    numbers = UK[:8]
    with Receiver(store_path) as receiver:
        report = validate(campaign(numbers), sender=SENDER, suppress=OptOutSource(store_path))
        tap = {
            "meta_object": {
                "value": {
                    "metadata": {"display_phone_number": SENDER.lstrip("+")},
                    "messages": [
                        {
                            "from": numbers[-1].lstrip("+"),
                            "id": "wamid.tap-1",
                            "type": "button",
                            "button": {"text": "Stop promotions", "payload": "STOP_PROMOTIONS"},
                        }
                    ],
                }
            }
        }

        answers: list[int] = []

        def stop_tap() -> None:
            time.sleep(1.0)
            answers.append(requests.post(receiver.callback_url, json=tap, timeout=10).status_code)

        writer = threading.Thread(target=stop_tap)
        writer.start()
        results = send(report, fresh_emulator.client(), rate_limit=2, progress=False)
        writer.join()
    assert answers == [200]
    last = results.iloc[-1]
    assert last["status"] == "not_sent"
    assert last["error_code"] == "KWA025"
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
    departure = Departure(Holds.make(Schedule(daily_limit=10)), {})
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


def test_a_request_that_waited_on_the_journal_past_the_expiry_does_not_leave(
    fresh_emulator: Emulator, wall_clock: WallClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last check comes after the journal marks the request in flight: a journal slowed
    down (a busy disk, another transaction) past the expiry cannot let it through."""
    start = datetime(2027, 1, 15, 12, tzinfo=UTC)
    wall_clock.set(start)
    mark = Journal.mark_in_flight

    def slow_disk(self: Journal, requests: object) -> None:
        mark(self, requests)  # type: ignore[arg-type]
        time.sleep(0.01)
        wall_clock.set(start + timedelta(seconds=2))  # the expiry passed meanwhile

    monkeypatch.setattr(Journal, "mark_in_flight", slow_disk)
    report = validate(campaign(UK[:1]), sender=SENDER)
    results = send(
        report,
        fresh_emulator.client(),
        expires=start + timedelta(seconds=1),
        journal=tmp_path / "run.db",
        progress=False,
    )
    assert results.loc[0, "error_code"] == "KWA029"
    assert fresh_emulator.messages.empty
    with Journal(tmp_path / "run.db") as journal:  # not left in flight: expired, for good
        states = journal.db.execute("SELECT state, error_code FROM rows").fetchall()
    assert states == [("not_sent", "KWA029")]


def test_a_retry_held_at_departure_stays_unknown_when_the_first_attempt_may_have_gone(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """retry_ambiguous: attempt 1 got a 500 after the server took the message; the retry is
    held (expired): the row is unknown — counted by the daily limit, never resent blindly."""
    report = validate(campaign(UK[:1]), sender=SENDER)
    fresh_emulator.inject("500")
    results = send(
        report,
        fresh_emulator.client(),
        journal=tmp_path / "run.db",
        expires="1s",
        retry_ambiguous=True,
        backoff=2.0,
        max_backoff=2.0,
        progress=False,
    )
    assert len(fresh_emulator.messages) == 1
    assert results.loc[0, "status"] == "unknown"
    assert "not retried" in results.loc[0, "error_message"]
    with Journal(tmp_path / "run.db") as journal:
        assert journal.db.execute("SELECT state FROM rows").fetchall() == [("unknown",)]


def test_a_backoff_never_sleeps_past_the_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 with Retry-After: 25 while the campaign expires in 1 s: the run ends then."""
    pauses: list[float | None] = []  # the seconds each pause before a new attempt slept

    def pause(run: _Run, attempt: int, at_least: float | None = None) -> bool:
        stop = run.stop
        wait = stop.wait

        def recorded(timeout: float | None = None) -> bool:
            pauses.append(timeout)
            return wait(timeout)

        stop.wait = recorded  # type: ignore[method-assign]
        try:
            return backoff(run, attempt, at_least)
        finally:
            del stop.wait

    backoff = _Run._pause
    monkeypatch.setattr(_Run, "_pause", pause)
    report = validate(campaign(UK[:1]), sender=SENDER)
    with Emulator(retry_after=25) as slow:
        slow.inject("429")
        results = send(report, slow.client(), expires="1s", progress=False)
    assert results.loc[0, "error_code"] == "KWA029"
    assert slow.messages.empty
    assert slow.requests_seen == 1  # the 429: no attempt after it
    # It paused (the Retry-After was honoured) but no longer than the campaign was open.
    assert len(pauses) == 1
    assert pauses[0] is not None
    assert 0 < pauses[0] <= 1.0, pauses


@pytest.mark.parametrize("step_back", [timedelta(seconds=20), timedelta(hours=12)])
def test_a_wall_clock_stepping_back_into_quiet_hours_holds_the_rest(
    fresh_emulator: Emulator, wall_clock: WallClock, step_back: timedelta
) -> None:
    """London, 09:00:05, quiet until 09:00; after the first rows the clock is corrected
    back (NTP): the verdict kept from 09:00:05 is not trusted for an earlier time."""
    start = datetime(2027, 1, 15, 9, 0, 5, tzinfo=UTC)
    wall_clock.set(start)
    report = validate(campaign(UK[:6]), sender=SENDER)
    original = Departure.check
    calls = 0

    def corrected(self: Departure, numbers: list[str], message_type: str | None) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            wall_clock.set(start - step_back)
        return original(self, numbers, message_type)

    Departure.check = corrected  # type: ignore[assignment,method-assign]
    try:
        results = send(
            report,
            fresh_emulator.client(),
            quiet_hours="21:00-09:00",
            concurrency=1,
            max_recipients_per_request=1,
            per_recipient_interval=0,
            progress=False,
        )
    finally:
        Departure.check = original  # type: ignore[method-assign]
    assert (results["status"] == "sent").sum() == len(fresh_emulator.messages) >= 1
    late = results[results["status"] != "sent"]
    assert not late.empty
    assert set(late["error_code"]) == {"KWA027"}


def test_quiet_hours_hold_on_the_night_the_clocks_skip_their_start(
    fresh_emulator: Emulator, wall_clock: WallClock
) -> None:
    """Cairo, quiet 00:30-07:00, on the night clocks jump from 00:00 to 01:00 (2027-04-30):
    from 22:00 UTC it is 01:00 there, inside the quiet hours; 00:30 never happened."""
    wall_clock.set(datetime(2027, 4, 29, 21, 59, 55, tzinfo=UTC), speed=30.0)
    numbers = [f"+2010123456{i:02d}" for i in range(12)]
    report = validate(campaign(numbers), sender=SENDER)
    assert report.ok
    results = send(
        report,
        fresh_emulator.client(),
        rate_limit=4,
        quiet_hours="00:30-07:00",
        max_recipients_per_request=1,
        progress=False,
    )
    sent = results[results["status"] == "sent"]
    assert (sent["sent_at"] < pd.Timestamp("2027-04-29 22:00:01", tz="UTC")).all()
    held = results[results["status"] != "sent"]
    assert not held.empty
    assert set(held["error_code"]) == {"KWA027"}


def test_journals_in_a_linked_sub_folder_are_counted(
    fresh_emulator: Emulator, wall_clock: WallClock, tmp_path: Path
) -> None:
    """Python 3.11's rglob does not follow a linked folder: it once passed over half the
    history silently."""
    noon = datetime(2027, 6, 1, 12, tzinfo=UTC)
    elsewhere = tmp_path / "archive"
    elsewhere.mkdir()
    wall_clock.set(noon - timedelta(hours=1))
    with Journal(elsewhere / "old.db", checkpoint_every=None) as journal:
        journal.record([("k", UK[0], {"status": "sent", "message_id": "m"})])
    history = tmp_path / "history"
    history.mkdir()
    (history / "linked").symlink_to(elsewhere, target_is_directory=True)
    (history / "loop").symlink_to(history, target_is_directory=True)  # walked once
    wall_clock.set(noon)
    report = validate(campaign(UK[1:2]), sender=SENDER)
    results = send(report, fresh_emulator.client(), daily_limit=1, history=history, progress=False)
    assert results.loc[0, "error_code"] == "KWA030"
    assert fresh_emulator.messages.empty


def test_zones_are_shown_by_their_current_names(
    fresh_emulator: Emulator, wall_clock: WallClock
) -> None:
    """libphonenumber says Asia/Calcutta; people read Asia/Kolkata."""
    wall_clock.set(datetime(2027, 1, 15, 18, tzinfo=UTC))  # 23:30 in India
    report = validate(campaign(["+919876500001"]), sender=SENDER)
    results = send(report, fresh_emulator.client(), quiet_hours="21:00-09:00", progress=False)
    assert "09:00 Asia/Kolkata" in results.loc[0, "error_message"]


def test_no_bar_redraws_go_into_a_pipe(
    fresh_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """kb.send(progress=True) from a cron script with stderr to a file: the plain lines,
    not a hundred carriage-return redraws of a bar nobody sees."""
    report = validate(campaign(UK[:20], "text"), sender=SENDER)
    send(report, fresh_emulator.client(), progress=True, rate_limit=None)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "Sending 20 message(s)" in err
    assert "sending: sent 20" in err


def test_rows_over_the_limit_each_get_their_own_day(fresh_emulator: Emulator) -> None:
    """A limit of 1 and four recipients: one goes now, the others get room 24, 48 and 72
    hours from now, one a day (all three were told the same time, 24 h from now)."""
    results = send(
        campaign(UK[:4]),
        fresh_emulator.client(sender=SENDER),
        daily_limit=1,
        progress=False,
    )
    assert results["status"].tolist() == ["sent", "not_sent", "not_sent", "not_sent"]
    said = results["error_message"].iloc[1:].tolist()
    assert len(set(said)) == 3, said
    times = [pd.Timestamp(text.rsplit("room from ", 1)[1].split(" (")[0]) for text in said]
    assert times == sorted(times)
    assert [round((b - a).total_seconds() / 3600) for a, b in itertools.pairwise(times)] == [24, 24]
