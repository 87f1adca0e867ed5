"""Several real `kwa-batch send` processes on one PostgreSQL journal, against the emulator
(which counts what arrives: its ledger): none twice, a process killed with -9 leaves only
its own rows in flight, each number's rate holds across the processes, a stopped campaign
resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from postgres_server import PostgresServer
from send_process import run_cli

from kwa_batch import Emulator
from kwa_batch.errors import Code
from kwa_batch.sending.journal import IN_FLIGHT
from kwa_batch.sending.limiter import max_in_any_window
from kwa_batch.validation.sender import pin_senders

pytestmark = pytest.mark.slow  # real processes, thousands of rows: seconds each

SENDER = "+911234567890"
A, B = "+911234567890", "+919876543210"
#: The senders' priority (the emulator may run above it: see faithful_server).
NICE = os.getpriority(os.PRIO_PROCESS, 0)
MOST = 24  # requests in flight at once per process (--max-concurrency)


@contextmanager
def faithful_server() -> Iterator[None]:
    """The emulator, started inside, stamps arrivals as they come even on a busy machine:
    its threads run above the senders' priority where that is allowed (as root), so that a
    server starved of CPU does not stamp a backlog of requests at once. The senders keep
    the priority they would have (see ``start``)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, NICE - 10)  # this thread, and those it starts
    except PermissionError:
        yield
        return
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)


def _as_senders() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, NICE)


def start(args: list[str], emu: Emulator, cwd: Path) -> subprocess.Popen[str]:
    return run_cli(args, emu, cwd, preexec_fn=_as_senders)


def write_campaign(path: Path, numbers: list[str]) -> Path:
    frame = pd.DataFrame(
        {"to": numbers, "body": [f"Hi {i}, it shipped" for i in range(len(numbers))]}
    )
    frame.to_csv(path, index=False)
    return path


def numbers(n: int) -> list[str]:
    return [f"+9198{i:08d}" for i in range(n)]


def workers(
    count: int, file: Path, url: str, emu: Emulator, cwd: Path, *options: str
) -> list[subprocess.Popen[str]]:
    base = [str(file), "--journal", url, "--campaign", "july", "--quiet", *options]
    return [start([*base, "--out", f"results{i}.csv"], emu, cwd) for i in range(count)]


def finish(processes: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=300)
        outputs.append(output)
    return outputs


def twice(emu: Emulator) -> int:
    ledger = emu.messages
    return int(ledger.duplicated(subset=["to", "body"]).sum())


def wait_for(emu: Emulator, count: int) -> None:
    deadline = time.monotonic() + 120
    while emu.message_count < count and time.monotonic() < deadline:
        time.sleep(0.02)


def journal_rows(url: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT key, state, run_id FROM kwa_journal_rows").fetchall()
    return pd.DataFrame(rows, columns=["key", "state", "run_id"])


def test_three_processes_send_2000_rows_none_twice(postgres_url: str, tmp_path: Path) -> None:
    file = write_campaign(tmp_path / "campaign.csv", numbers(2000))
    with Emulator(latency=0.01) as emu:
        outputs = finish(workers(3, file, postgres_url, emu, tmp_path, "--rate", "300"))
        assert len(emu.messages) == 2000
        assert twice(emu) == 0
    results = [pd.read_csv(tmp_path / f"results{i}.csv") for i in range(3)]
    for frame in results:
        assert frame["status"].eq("sent").all(), (outputs, frame[frame["status"] != "sent"])
    own = [frame.loc[~frame["from_journal"], "to"] for frame in results]
    assert sum(len(rows) for rows in own) == 2000  # each row sent by exactly one process
    assert len(set().union(*(set(rows) for rows in own))) == 2000
    assert sum(len(rows) > 0 for rows in own) >= 2  # they worked together


def test_a_process_killed_mid_run_leaves_only_its_own_rows_in_flight(
    postgres_url: str, tmp_path: Path
) -> None:
    file = write_campaign(tmp_path / "campaign.csv", numbers(2000))
    with Emulator(latency=0.02) as emu:
        processes = workers(3, file, postgres_url, emu, tmp_path, "--rate", "150",
                            "--max-concurrency", str(MOST))  # fmt: skip
        wait_for(emu, 400)
        os.kill(processes[0].pid, signal.SIGKILL)
        outputs = finish(processes)
        assert processes[0].returncode == -signal.SIGKILL
        assert twice(emu) == 0
        arrived = len(emu.messages)
        rows = journal_rows(postgres_url)
        with psycopg.connect(postgres_url) as conn:
            dead = {run for (run,) in conn.execute(
                "SELECT id FROM kwa_journal_runs WHERE finished_at IS NULL")}  # fmt: skip
        in_flight = rows[rows["state"] == IN_FLIGHT]
        assert len(dead) == 1
        assert set(in_flight["run_id"]) <= dead  # only the killed process's own
        assert len(in_flight) <= MOST  # at most its requests out at once, one row each
        assert len(rows) == 2000
        assert set(rows["state"]) <= {"sent", IN_FLIGHT}
        assert (rows["state"] == "sent").sum() <= arrived <= len(rows)
        for output, process in zip(outputs[1:], processes[1:], strict=True):
            assert process.returncode in (0, 3), output  # 3: rows unknown (the dead one's)
        for i in (1, 2):
            frame = pd.read_csv(tmp_path / f"results{i}.csv")
            unknown = frame[frame["status"] == "unknown"]
            assert len(frame) == 2000
            assert set(frame["status"]) <= {"sent", "unknown"}
            assert set(unknown["error_code"]) <= {Code.INFLIGHT.value}
            assert len(unknown) == len(in_flight)
        # The campaign run again: nothing sent, what the dead process had in flight unknown.
        again = start([str(file), "--journal", postgres_url, "--campaign", "july",
                       "--out", "again.csv", "--quiet"], emu, tmp_path)  # fmt: skip
        again.communicate(timeout=120)
        assert len(emu.messages) == arrived
    final = pd.read_csv(tmp_path / "again.csv")
    assert final["from_journal"].all()
    assert (final["status"] == "unknown").sum() == len(in_flight)


def pinned_evenly(per_number: int) -> list[str]:
    """Recipients pinned half to A and half to B (by the stable hash send() uses)."""
    candidates = pd.Series(numbers(per_number * 4))
    pins = pin_senders(candidates, [A, B])
    chosen = [*candidates[pins == A][:per_number], *candidates[pins == B][:per_number]]
    assert len(chosen) == 2 * per_number
    return chosen


def test_each_number_keeps_its_rate_across_three_processes(
    postgres_url: str, tmp_path: Path
) -> None:
    file = write_campaign(tmp_path / "campaign.csv", pinned_evenly(200))
    with faithful_server(), Emulator(latency=0.02) as emu:
        finish(workers(3, file, postgres_url, emu, tmp_path, "--from", f"{A},{B}",
                       "--rate", "20"))  # fmt: skip
        ledger = emu.messages
    assert len(ledger) == 400
    assert twice(emu) == 0
    seconds = (ledger["received_at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    for number in (A, B):
        # The issue's bound: the rate in any one-second window of arrivals, "a margin of a
        # few percent aside" (here 5 %: one message, for the server's own stamps taken on a
        # busy machine, where several processes start at once).
        mine = list(seconds[ledger["from"] == number])
        assert max_in_any_window(mine) <= 21, number
    # Together: each number's messages over the time it sent (the processes start a moment
    # apart, and a number's first message may wait for one of them).
    together = 0.0
    for number in (A, B):
        mine = seconds[ledger["from"] == number]
        together += (len(mine) - 1) / (mine.max() - mine.min())
    assert together >= 0.9 * 40, f"{together:.1f} messages/s"


def test_a_stopped_campaign_resumes_where_it_stopped(postgres_url: str, tmp_path: Path) -> None:
    file = write_campaign(tmp_path / "campaign.csv", numbers(300))
    args = [str(file), "--journal", postgres_url, "--campaign", "july", "--quiet",
            "--rate", "60"]  # fmt: skip
    with Emulator(latency=0.01) as emu:
        first = start([*args, "--out", "first.csv"], emu, tmp_path)
        wait_for(emu, 60)
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
        stopped_at = len(emu.messages)
        assert 0 < stopped_at < 300
        second = start([*args, "--out", "second.csv"], emu, tmp_path)
        output, _ = second.communicate(timeout=120)
        assert second.returncode == 0, output
        assert len(emu.messages) == 300
        assert twice(emu) == 0
    resumed = pd.read_csv(tmp_path / "second.csv")
    assert (resumed["status"] == "sent").all()
    assert resumed["from_journal"].sum() == stopped_at


def test_the_account_rate_holds_across_processes_and_numbers(
    postgres_url: str, tmp_path: Path
) -> None:
    file = write_campaign(tmp_path / "campaign.csv", pinned_evenly(125))
    with faithful_server(), Emulator(latency=0.02) as emu:
        finish(workers(3, file, postgres_url, emu, tmp_path, "--from", f"{A},{B}",
                       "--rate", "20", "--account-rate", "25"))  # fmt: skip
        ledger = emu.messages
    assert len(ledger) == 250
    assert twice(emu) == 0
    seconds = (ledger["received_at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    assert max_in_any_window(list(seconds)) <= 26  # 25, a few percent aside (as above)
    for number in (A, B):
        assert max_in_any_window(list(seconds[ledger["from"] == number])) <= 21


def test_a_database_that_stops_answering_stops_the_runs_instead_of_hanging(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    """The database freezes mid-run (SIGSTOP: a dead host, a network black hole): each
    process gives up on it after the journal's bound and stops as on a full disk (exit 3,
    its results written, nothing twice); a stop signal that came meanwhile is acted on."""
    file = write_campaign(tmp_path / "campaign.csv", numbers(400))
    with Emulator(latency=0.02) as emu:
        processes = workers(2, file, postgres_url, emu, tmp_path, "--rate", "20")
        wait_for(emu, 40)
        with postgres_server.frozen():
            time.sleep(1.0)  # the processes are waiting on the frozen server now
            processes[0].send_signal(signal.SIGTERM)
            outputs = []
            for process in processes:
                try:
                    outputs.append(process.communicate(timeout=60)[0])
                except subprocess.TimeoutExpired:
                    process.kill()
                    outputs.append(f"hung: {process.communicate()[0]}")
        assert [p.returncode for p in processes] == [128 + signal.SIGTERM, 3], outputs
        assert twice(emu) == 0
        arrived = len(emu.messages)
    sent = 0
    for i, output in enumerate(outputs):
        assert "Traceback" not in output
        frame = pd.read_csv(tmp_path / f"results{i}.csv")
        assert len(frame) == 400
        assert set(frame["status"]) <= {"sent", "unknown", "not_sent"}
        assert (frame["status"] == "not_sent").any()
        sent += int(((frame["status"] == "sent") & ~frame["from_journal"].astype(bool)).sum())
    assert sent <= arrived  # each row sent by this run, once, in one file
    assert "failed while" in outputs[1]  # the journal's error, said


def test_two_campaigns_at_once_keep_one_daily_limit(postgres_url: str, tmp_path: Path) -> None:
    """The daily limit is the database's: two processes sending two campaigns of templates
    at once reach 50 unique recipients between them, never more."""
    for name, first in (("july", 0), ("aug", 1000)):
        frame = pd.DataFrame({
            "to": [f"+9198{i + first:08d}" for i in range(200)],
            "template_name": "order_update",
            "params": [f"x{i}" for i in range(200)],
            "lang_code": "en",
        })  # fmt: skip
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    with Emulator(latency=0.02) as emu:
        limit = ["--journal", postgres_url, "--quiet", "--daily-limit", "50", "--rate", "20"]
        processes = []
        for name in ("july", "aug"):
            args = [f"{name}.csv", *limit, "--campaign", name, "--out", f"{name}.out.csv"]
            processes.append(start(args, emu, tmp_path))
        outputs = finish(processes)
        ledger = emu.messages
    assert ledger["to"].nunique() == 50, outputs
    held = 0
    for name in ("july", "aug"):
        frame = pd.read_csv(tmp_path / f"{name}.out.csv")
        assert set(frame["status"]) <= {"sent", "not_sent"}
        over = frame[frame["status"] == "not_sent"]
        assert set(over["error_code"]) == {Code.DAILY_LIMIT.value}
        held += len(over)
    assert held == 400 - 50


def test_processes_sending_a_file_in_parts_share_the_campaign(
    postgres_url: str, tmp_path: Path
) -> None:
    """``--chunk-rows`` (a file larger than memory) with several processes on one journal:
    each part is claimed as the whole file is, none twice, every row settled."""
    file = write_campaign(tmp_path / "campaign.csv", numbers(600))
    with Emulator(latency=0.01) as emu:
        outputs = finish(
            [
                start(
                    [
                        str(file),
                        "--journal",
                        postgres_url,
                        "--campaign",
                        "july",
                        "--quiet",
                        "--rate",
                        "300",
                        "--chunk-rows",
                        "100",
                        "--out",
                        f"results{i}.parquet",
                    ],
                    emu,
                    tmp_path,
                )
                for i in range(2)
            ]
        )
        assert len(emu.messages) == 600, outputs
        assert twice(emu) == 0
    states = journal_rows(postgres_url)
    assert len(states) == 600
    assert (states["state"] == "sent").all()
    assert states["run_id"].nunique() >= 2, outputs  # they worked together
