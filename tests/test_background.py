"""kb.start outside a kernel: the Job (stop, wait, results so far, errors, one job a journal)
and its dashboard, against the real emulator over HTTP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch import Emulator
from kwa_batch.actions import describe
from kwa_batch.dashboard import mimebundle, text
from kwa_batch.errors import JournalLockedError
from kwa_batch.sending.journal import Journal
from kwa_batch.sending.progress import RunWatcher, current, watching


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(n)], "body": "Hi"})


def until(condition: Callable[[], bool], deadline: float = 60.0) -> None:
    """Wait until ``condition`` holds (a busy machine may take long; fails only if never)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "the condition never held"
        time.sleep(0.05)


SLOW = {"latency": 0.05, "callbacks": False}


@pytest.mark.parametrize("fresh_emulator", [SLOW], indirect=True)
def test_results_so_far_then_stop_leaves_the_rest_not_sent(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    job = kb.start(frame(400), emu.client(sender=SENDER), journal=tmp_path / "j.db", rate_limit=50)
    at_start = emu.message_count
    until(lambda: job.results["status"].eq("sent").sum() >= 10)
    assert emu.message_count >= at_start + 10  # sending went on after start returned
    so_far = job.results
    assert not job.done
    assert job.outcome is None
    assert len(so_far) == 400
    assert so_far.index.equals(frame(400).index)
    sent = so_far["status"] == "sent"
    assert sent.any()
    assert so_far.loc[sent, "message_id"].notna().all()
    waiting = so_far[so_far["status"] == "not_sent"]
    assert len(waiting) > 0
    assert set(waiting["error_code"]) == {"NOTSENT"}
    assert set(waiting["error_message"]) == {"not sent yet: the job is still sending"}
    assert waiting["message_id"].isna().all()

    live = text(job.board())
    assert live.startswith("kwa_batch job: sending, ")
    assert "50/s asked" in live  # the rate now against the rate asked

    results = job.stop()
    assert job.done
    assert results is job.wait()
    assert results is job.results
    counts = results["status"].value_counts().to_dict()
    assert counts.get("unknown", 0) == 0  # what was in flight was awaited
    assert counts["sent"] == emu.message_count
    assert counts["not_sent"] == 400 - counts["sent"] > 0
    assert set(results.loc[results["status"] == "not_sent", "error_code"]) == {"NOTSENT"}
    assert job.outcome is not None
    assert job.outcome.stopped_by == "SIGINT"
    board = text(job.board())
    assert board.startswith("kwa_batch job: stopped (SIGINT)")
    assert f"sent {counts['sent']:,}" in board


@pytest.mark.parametrize("fresh_emulator", [SLOW], indirect=True)
def test_one_job_a_journal_and_the_next_resumes(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    journal = tmp_path / "j.db"
    client = emu.client(sender=SENDER)
    job = kb.start(frame(200), client, journal=journal, rate_limit=50)
    with pytest.raises(kb.ConfigurationError, match=r"^journal .* in use by a job of this kernel"):
        kb.start(frame(200), client, journal=tmp_path / "." / "j.db")  # another name of it
    first = job.stop()
    again = kb.start(frame(200), client, journal=journal, rate_limit=None).wait()
    assert again["status"].eq("sent").all()
    assert again["from_journal"].sum() == (first["status"] == "sent").sum()
    assert emu.messages["to"].value_counts().max() == 1
    assert emu.message_count == 200


def test_a_journal_held_by_another_run_is_refused_by_wait(
    emulator: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "j.db"
    held = Journal(journal).open()  # another run's, as another process would hold it
    try:
        job = kb.start(frame(3), emulator.client(sender=SENDER), journal=journal)
        with pytest.raises(JournalLockedError, match="in use by another run"):
            job.wait()
        assert job.done
        assert job.outcome is None
        with pytest.raises(JournalLockedError):
            job.results  # noqa: B018  (raises)
        assert text(job.board()).startswith("kwa_batch job: failed")
    finally:
        held.close()


def test_an_error_in_the_thread_is_raised_by_wait_and_results(emulator: Emulator) -> None:
    job = kb.start(frame(3), emulator.client(sender=SENDER), rate_limit=0)
    with pytest.raises(kb.ConfigurationError, match="rate_limit"):
        job.wait(timeout=30)
    with pytest.raises(kb.ConfigurationError, match="rate_limit"):
        job.results  # noqa: B018  (raises)
    assert "rate_limit" in text(job.board())


def test_wait_with_a_timeout_says_so_in_one_line(fresh_emulator: Emulator) -> None:
    job = kb.start(frame(300), fresh_emulator.client(sender=SENDER), rate_limit=20)
    try:
        with pytest.raises(TimeoutError, match=r"still sending after 0.1 s .*job.stop\(\)$"):
            job.wait(timeout=0.1)
    finally:
        job.stop()


def test_held_rows_on_the_dashboard_say_until_when(emulator: Emulator) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    schedule = kb.Schedule(not_before=later)
    job = kb.start(frame(3), emulator.client(sender=SENDER), schedule=schedule)
    job.wait()
    shown = text(job.board())
    assert "held   KWA028: 3 row(s)" in shown  # with the message that says until when
    assert later.strftime("%H:%M") in shown


def test_the_last_errors_come_with_what_to_do() -> None:
    with Emulator(faults={"500": 1.0}, callbacks=False) as emu:
        job = kb.start(frame(2), emu.client(sender=SENDER), max_recipients_per_request=1)
        results = job.wait()
    code = results["error_code"].iloc[0]
    shown = text(job.board())
    assert f"error  {code} (unknown, 2 row(s))" in shown  # two rows, one line
    assert describe(code)
    assert shown.count(f"→ {describe(code)}") == 1
    bundle = mimebundle(job.board())
    assert set(bundle) == {"text/plain", "text/html"}
    assert "<table>" in bundle["text/html"]
    assert "<script" not in bundle["text/html"]
    assert job._repr_mimebundle_() == bundle
    assert emu.api_key not in f"{bundle} {job!r}"  # the key never shows


def test_the_funnel_of_the_receipts_store(tmp_path: Path) -> None:
    store_path = tmp_path / "receipts.db"
    with (
        kb.Receiver(store_path) as receiver,
        Emulator(callbacks={"delay": 0.01, "read": 1.0}) as emu,
        kb.CallbackStore(store_path) as store,
    ):
        data = frame(5).assign(callback_url=receiver.callback_url)
        job = kb.start(data, emu.client(sender=SENDER), receipts=store)
        job.wait()
        assert emu.wait_for_callbacks(10)
        steps = "funnel sent 5 → delivered 5 → read 5 → replied 0 → failed 0 (counted"
        until(lambda: steps in text(job.board()))  # counted in a thread of its own


def test_the_funnel_is_counted_off_the_rendering_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering the board only asks for a count: it never waits for one (a million rows
    took 44 s), and shows the last count with its age."""
    from kwa_batch import background

    caller, release = threading.current_thread(), threading.Event()
    counted_in: list[threading.Thread] = []
    real = background.funnel

    def slow_funnel(*args: Any, **kwargs: Any) -> pd.DataFrame:
        counted_in.append(threading.current_thread())
        if threading.current_thread() is not caller:
            release.wait(60)  # a big campaign's count, held until the board has returned
        return real(*args, **kwargs)

    monkeypatch.setattr(background, "funnel", slow_funnel)
    with Emulator() as emu, kb.CallbackStore(tmp_path / "receipts.db") as store:
        job = kb.start(frame(5), emu.client(sender=SENDER), receipts=store, progress=False)
        job.wait()
        first = text(job.board())
        until(lambda: bool(counted_in))
        assert caller not in counted_in
        assert "funnel" not in first  # not counted yet: nothing to show
        release.set()
        until(lambda: "funnel sent 5 →" in text(job.board()))
        assert "(counted 0 s ago)" in text(job.board())


def test_nobody_watches_a_run_by_default_and_watching_is_undone() -> None:
    nobody = current()
    assert type(nobody) is RunWatcher
    mine = RunWatcher()
    with watching(mine):
        assert current() is mine
    assert current() is nobody


@pytest.mark.slow
@pytest.mark.parametrize("fresh_emulator", [SLOW], indirect=True)
def test_a_job_still_sending_at_exit_is_stopped_cleanly(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu, journal = fresh_emulator, tmp_path / "j.db"
    script = textwrap.dedent(f"""
        import time
        import pandas as pd
        import kwa_batch as kb
        df = pd.DataFrame({{"to": [f"+9198765{{i:05d}}" for i in range(300)], "body": "Hi"}})
        client = kb.KaleyraClient({emu.sid!r}, {emu.api_key!r}, base_url={emu.url!r},
                                  sender={SENDER!r})
        job = kb.start(df, client, journal={str(journal)!r}, rate_limit=50)
        while job.results["status"].eq("sent").sum() < 20:
            time.sleep(0.05)
        print("exiting", flush=True)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    sent = emu.message_count
    assert 20 <= sent < 300
    results = kb.send(frame(300), emu.client(sender=SENDER), journal=journal, progress=False)
    # In flight at exit: awaited, so nothing is unknown and nothing goes twice.
    assert results["status"].eq("sent").all()
    again = "sending again (failed or not sent before)"  # the rows stopped: not_sent
    assert results.attrs["run"].resume == {"already sent": sent, again: 300 - sent}
    assert emu.messages["to"].value_counts().max() == 1


def test_stop_during_validation_returns_at_once_and_nothing_is_sent(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big list validates for seconds: stop() returns without waiting for it, every row
    not_sent; once validated the job ends, sending nothing."""
    from kwa_batch.sending import run

    validating, release, returned = threading.Event(), threading.Event(), threading.Event()
    real = run._validated

    def slow_validation(*args: Any, **kwargs: Any) -> Any:
        validating.set()
        release.wait(20)  # 300,000 rows took 4.3 s
        assert returned.is_set(), "stop() waited for the validation"
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "_validated", slow_validation)
    at_start = emulator.message_count
    job = kb.start(frame(50), emulator.client(sender=SENDER), progress=False)
    until(validating.is_set)
    stopped = job.stop()
    returned.set()
    assert not job.done
    assert stopped["status"].eq("not_sent").all()
    assert len(stopped) == 50
    assert stopped["error_message"].str.startswith("stopped before sending").all()
    release.set()
    results = job.wait(60)
    assert results["status"].eq("not_sent").all()
    assert results.attrs["run"].stopped_by == "SIGINT"
    assert emulator.message_count == at_start


def test_a_base_urls_userinfo_never_shows(tmp_path: Path) -> None:
    """Credentials written into base_url (``https://user:token@host``) show nowhere: not
    in the client's repr, the rows' errors, the dashboard, the run's settings, the journal."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = kb.KaleyraClient(
        "HX1", "key-0123456789", sender=SENDER, base_url=f"http://me:s3cret@127.0.0.1:{port}"
    )
    job = kb.start(frame(1), client, journal=tmp_path / "j.db", progress=False, max_attempts=1)
    results = job.wait(60)
    journal = [path.read_bytes().decode("latin-1") for path in tmp_path.glob("j.db*")]
    said = [repr(client), text(job.board()), str(results["error_message"].tolist())]
    shown = " ".join([*said, str(results.attrs["run"].settings), *journal])
    assert "could not connect to http://***@127.0.0.1" in shown
    assert "s3cret" not in shown
    assert "me:" not in shown
