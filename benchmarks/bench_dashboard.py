"""A campaign sent by kb.start with its dashboard refreshed every second, against kb.send
(issue #22: the dashboard slows the send by at most 2%).

    python benchmarks/bench_dashboard.py                 # about a minute
    python benchmarks/bench_dashboard.py --rows 3000 --rate 300 --repeat 2

Two cases, each sent to a Kaleyra emulator in its own process (``kwa-batch emulator``), so
that this process's CPU time is the client's alone:

- at a fixed rate (``--rate``, with 20 ms of latency): the dashboard must not make the run
  fall behind the rate asked;
- at the highest rate, no limit and no latency: every cycle the dashboard takes is one the
  send loses.

The baseline is ``kb.send(..., progress=False)``; the other is ``kb.start(...)`` waited for
while a thread renders its dashboard (``job.board()`` as text and HTML, what a notebook's
display gets) once a second. The order alternates over ``--repeat`` rounds and the best of
each is kept. Also printed: how long ``kb.start`` takes to return, and ``job.stop()`` to
stop a run at the fixed rate.

With ``--board-rows N`` (default 1,000,000; 0 to skip): the dashboard of a job of N rows
with a receipts store, sending at 50/s, rendered (``job.board()``, text and HTML) twenty
times a second for ``--board-seconds``: the slowest render and the mean, against the same
for a job of 1,000 rows in the same run (the target: under ~50 ms at a million rows), and
how old the funnel shown was at most (it is counted off the rendering path).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable

import pandas as pd
from _emulator_process import KEY, SID, emulator_process

import kwa_batch as kb
from kwa_batch.dashboard import mimebundle

SENDER = "+911234567890"


def personalised(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(n)],
            "body": [f"Hi customer {i}, your order A{i:06d} has shipped." for i in range(n)],
        }
    )


def plain(report: kb.ValidationReport, client: kb.KaleyraClient, pacing: kb.Pacing) -> None:
    kb.send(report, client, pacing=pacing, progress=False)


def with_dashboard(
    report: kb.ValidationReport, client: kb.KaleyraClient, pacing: kb.Pacing
) -> None:
    job = kb.start(report, client, pacing=pacing, progress=False)
    done = threading.Event()
    renders: list[float] = []

    def refresh() -> None:
        while not done.wait(1.0):
            started = time.perf_counter()
            mimebundle(job.board())
            renders.append(time.perf_counter() - started)

    refresher = threading.Thread(target=refresh, daemon=True)
    refresher.start()
    job.wait()
    done.set()
    refresher.join()
    RENDERS.extend(renders)


RENDERS: list[float] = []


def rate(
    how: Callable[[kb.ValidationReport, kb.KaleyraClient, kb.Pacing], None],
    url: str,
    report: kb.ValidationReport,
    pacing: kb.Pacing,
) -> float:
    """Rows per second of one run of ``how``."""
    with kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url) as client:
        started = time.perf_counter()
        how(report, client, pacing)
        return len(report.valid) / (time.perf_counter() - started)


def compare(url: str, report: kb.ValidationReport, pacing: kb.Pacing, repeat: int) -> float:
    best = {"send": 0.0, "start + dashboard": 0.0}
    runs = {"send": plain, "start + dashboard": with_dashboard}
    for round_ in range(repeat):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            best[name] = max(best[name], rate(runs[name], url, report, pacing))
    for name, value in best.items():
        print(f"    {name}: {value:,.0f} rows/s")
    ratio = best["start + dashboard"] / best["send"]
    verdict = "meets" if ratio >= 0.98 else "misses"
    print(f"    start + dashboard / send: {ratio:.3f}x ({verdict} the target of 0.98x)")
    return ratio


def start_and_stop(url: str, report: kb.ValidationReport, pacing: kb.Pacing) -> None:
    with kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url) as client:
        started = time.perf_counter()
        job = kb.start(report, client, pacing=pacing, progress=False)
        returned = time.perf_counter() - started
        time.sleep(2.0)
        asked = time.perf_counter()
        job.stop()
        stopped = time.perf_counter() - asked
    print(f"  kb.start returned in {returned * 1000:,.1f} ms; job.stop() took {stopped:,.2f} s")


def renders_of(url: str, rows: int, seconds: float) -> tuple[float, float, float]:
    """The slowest and the mean render of the board of a job of ``rows`` with a receipts
    store, and the oldest funnel shown (seconds; NaN when none was counted)."""
    data = pd.DataFrame({"to": [f"+9198{i:08d}" for i in range(rows)], "body": "Hi"})
    taken: list[float] = []
    oldest = float("nan")
    with (
        tempfile.TemporaryDirectory() as work,
        kb.CallbackStore(f"{work}/receipts.db") as store,
        kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url) as client,
    ):
        job = kb.start(data, client, receipts=store, rate_limit=50, progress=False)
        while job.board().state == "preparing":
            time.sleep(0.1)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            board = job.board()
            mimebundle(board)
            taken.append(time.perf_counter() - started)
            if board.funnel_age is not None:
                oldest = board.funnel_age if oldest != oldest else max(oldest, board.funnel_age)
            time.sleep(0.05)
        job.stop()
    return max(taken), sum(taken) / len(taken), oldest


def board_at_scale(rows: int, seconds: float) -> None:
    with emulator_process(latency_ms=0) as url:
        small = renders_of(url, 1_000, seconds)
        large = renders_of(url, rows, seconds)
    print(f"  dashboard with a receipts store, rendered for {seconds:g} s while sending at 50/s:")
    for n, (most, mean, oldest) in ((1_000, small), (rows, large)):
        print(
            f"    {n:>9,} rows: {most * 1000:,.1f} ms at most, {mean * 1000:,.2f} ms on "
            f"average; the funnel shown {oldest:,.1f} s old at most"
        )
    print(f"    slowest render, {rows:,} rows / 1,000 rows: {large[0] / small[0]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=400.0, help="messages per second")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--board-rows", type=int, default=1_000_000)
    parser.add_argument("--board-seconds", type=float, default=15.0)
    parser.add_argument("--only-board", action="store_true", help="the board at scale alone")
    args = parser.parse_args()
    if args.board_rows:
        board_at_scale(args.board_rows, args.board_seconds)
    if args.only_board:
        return

    report = kb.validate(personalised(args.rows), sender=SENDER)
    fixed = kb.Pacing(rate_limit=args.rate, per_recipient_interval=0)
    fastest = kb.Pacing(rate_limit=None, concurrency=32, per_recipient_interval=0)
    warm = kb.validate(personalised(100), sender=SENDER)
    print(f"{args.rows:,} personalised rows, best of {args.repeat}:")
    with emulator_process(latency_ms=20) as url:
        rate(with_dashboard, url, warm, fastest)  # imports, connections
        print(f"  at {args.rate:g}/s asked, 20 ms latency:")
        compare(url, report, fixed, args.repeat)
        start_and_stop(url, report, fixed)
    with emulator_process(latency_ms=0) as url:
        rate(with_dashboard, url, warm, fastest)
        print("  at the highest rate (no limit, no latency, 32 in flight):")
        compare(url, report, fastest, args.repeat)
    if RENDERS:
        print(
            f"  dashboard renders: {len(RENDERS)}, {max(RENDERS) * 1000:,.1f} ms at most, "
            f"{sum(RENDERS) / len(RENDERS) * 1000:,.2f} ms on average"
        )


if __name__ == "__main__":
    main()
