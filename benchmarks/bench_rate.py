"""Rate-driven sending: the rate reached at any latency, and WhatsApp's limits kept. One run.

    python benchmarks/bench_rate.py            # the figures of issues #11, #17 (about 3 minutes)
    python benchmarks/bench_rate.py --quick    # fewer rows

Each scenario sends to a Kaleyra emulator running in its own process (this script, started
again with ``--serve``), which counts arrivals, enforces WhatsApp's limits where asked
(throughput per sender number, the pair rate) and can change its latency while serving
(commands on its standard input). Figures:

1. achieved / asked for ``rate_limit=150`` with default settings, personalised rows (one
   recipient a request), at 50, 250 and 1,000 ms of latency. "steady" is the mean count of
   arrivals over the one-second windows within the run (what the platform sees); "wall" is
   rows / elapsed time, which also pays one latency at the end;
2. the most messages the server saw in any one-second window of arrivals (at most 150);
3. 2,000 rows when the latency jumps from 50 to 500 ms halfway, against the best possible
   (2,000 / 150 s plus one 500 ms answer at the end);
4. 130429/131056 answers provoked, with default settings, against an emulator enforcing
   80 messages/s and the pair rate (6 s): a campaign mixing a broadcast and several
   personalised rows per customer;
5. issue #17's case: ``rate_limit=50``, 300 ms of latency, 600 personalised rows with a
   journal, three runs: the most arrivals in any one-second window of each run (at most
   50), and the steady rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from _emulator_process import KEY, SID

import kwa_batch as kb
from kwa_batch.sending.limiter import max_in_any_window

SENDER = "+911234567890"


# -- the emulator's process -------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """The child: an emulator, steered by one-line commands on stdin, answering on stdout."""
    from kwa_batch.emulator.server import Emulator

    emu = Emulator(
        sid=SID,
        api_key=KEY,
        latency=args.latency,
        throughput=args.throughput,
        pair_interval=args.pair_interval,
        callbacks=False,
    )
    with emu:
        print(f"KALEYRA_BASE_URL={emu.url}", flush=True)
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "latency":
                emu.latency = float(rest[0])
                print("ok", flush=True)
            elif command == "reset":
                emu.reset()
                print("ok", flush=True)
            elif command == "stats":
                received = emu.messages["received_at"]
                seconds = (received - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
                stats = {
                    "arrivals": seconds.tolist(),
                    "violations": emu.limits.violations,
                    "peak": emu.limits.peak,
                }
                print(json.dumps(stats), flush=True)


class Child:
    """The emulator's process, seen from the benchmark."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url
        self._lock = threading.Lock()

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline()

    def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.command("stats"))
        return found


@contextmanager
def emulator(
    latency: float, throughput: float | None = None, pair: float | None = None
) -> Iterator[Child]:
    argv = [sys.executable, __file__, "--serve", "--latency", str(latency)]
    if throughput is not None:
        argv += ["--throughput", str(throughput)]
    if pair is not None:
        argv += ["--pair-interval", str(pair)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        found = re.search(r"KALEYRA_BASE_URL=(\S+)", proc.stdout.readline())
        if found is None:
            raise RuntimeError("the emulator did not start")
        yield Child(proc, found.group(1))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


# -- the rows ---------------------------------------------------------------------------------


def personalised(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(start, start + n)],
            "body": [f"Hi customer {i}, your order A{i:06d} has shipped." for i in range(n)],
        }
    )


def campaign(broadcast: int, customers: int, rows_each: int) -> pd.DataFrame:
    """A broadcast, then several personalised rows for each of some of its recipients."""
    sale = pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(broadcast)], "body": "Our sale starts today!"}
    )
    reminders = pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for _ in range(rows_each) for i in range(customers)],
            "body": [
                f"Reminder {k + 1}: your order A{i:06d} is ready for pick-up."
                for k in range(rows_each)
                for i in range(customers)
            ],
        }
    )
    return pd.concat([sale, reminders], ignore_index=True)


def send(url: str, df: pd.DataFrame, **settings: Any) -> tuple[pd.DataFrame, float]:
    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url)
    report = kb.validate(df, sender=SENDER)
    start = time.perf_counter()
    results = kb.send(report, client, progress=False, **settings)
    elapsed = time.perf_counter() - start
    client.close()
    bad = results["status"] != "sent"
    if bad.any():
        codes = results.loc[bad, "error_code"].unique()
        raise RuntimeError(f"{int(bad.sum())} rows not sent: {codes}")
    return results, elapsed


def steady_rate(arrivals: list[float]) -> float:
    """The mean count of arrivals over the one-second windows that lie within the run."""
    stamps = np.sort(np.asarray(arrivals))
    ends = np.arange(stamps[0] + 1.0, stamps[-1] + 1e-9, 0.005)
    if len(ends) == 0:
        return float("nan")
    counts = np.searchsorted(stamps, ends, "right") - np.searchsorted(stamps, ends - 1.0, "right")
    return float(counts.mean())


# -- the scenarios ----------------------------------------------------------------------------


def rate_at_latencies(rows: int, rate: float) -> None:
    print(f"1-2. rate_limit={rate:g}, default settings, {rows} personalised rows:")
    for latency in (0.05, 0.25, 1.0):
        with emulator(latency, throughput=rate) as child:
            _, elapsed = send(child.url, personalised(rows), rate_limit=rate)
            stats = child.stats()
        steady = steady_rate(stats["arrivals"])
        most = max_in_any_window(stats["arrivals"])
        print(
            f"  {latency * 1000:5.0f} ms: steady {steady / rate:5.3f}x"
            f"  wall {rows / elapsed / rate:5.3f}x"
            f"  ({elapsed:5.2f} s)  most in any 1 s window {most} (<= {rate:g});"
            f" over the limit {stats['violations']['130429']}"
        )


def latency_jump(rows: int, rate: float) -> None:
    best = rows / rate + 0.5
    with emulator(0.05) as child:
        timer = threading.Timer(rows / rate / 2, child.command, args=("latency 0.5",))
        timer.start()
        _, elapsed = send(child.url, personalised(rows), rate_limit=rate)
        timer.join()
    print(
        f"3. {rows} rows at rate {rate:g}, latency 50 -> 500 ms halfway: {elapsed:.2f} s,"
        f" best possible {best:.2f} s ({best / elapsed:.3f}x of the best)"
    )


def platform_limits(broadcast: int, customers: int, rows_each: int) -> None:
    df = campaign(broadcast, customers, rows_each)
    with emulator(0.05, throughput=80, pair=6) as child:
        results, elapsed = send(child.url, df)
        stats = child.stats()
    requests = results["request_id"].nunique()
    violations = stats["violations"]
    print(
        f"4. default settings, {len(df)} rows ({broadcast} broadcast, {customers} customers x"
        f" {rows_each} personalised) in {requests} requests, {elapsed:.1f} s, against 80/s and"
        f" 6 s a pair: 130429 x {violations['130429']}, 131056 x {violations['131056']}"
        f" (target 0); most in any 1 s window {max_in_any_window(stats['arrivals'])}"
    )


def arrivals_at_the_server(rows: int, rate: float, runs: int) -> None:
    most, steady = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder, emulator(0.3) as child:
            send(child.url, personalised(rows), rate_limit=rate, journal=f"{folder}/j.sqlite")
            arrivals = child.stats()["arrivals"]
        most.append(max_in_any_window(arrivals))
        steady.append(steady_rate(arrivals) / rate)
    print(
        f"5. rate_limit={rate:g}, 300 ms, {rows} personalised rows with a journal, {runs} runs:"
        f" most in any 1 s window {most} (<= {rate:g}); steady"
        f" {' '.join(f'{x:.3f}x' for x in steady)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--throughput", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pair-interval", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    scale = 0.4 if args.quick else 1.0
    load = os.getloadavg()[0]
    print(f"emulator in its own process; client in this one; load average {load:.1f}\n")
    rate_at_latencies(int(1500 * scale), 150.0)
    latency_jump(int(2000 * scale), 150.0)
    platform_limits(int(1000 * scale), int(150 * scale), 3)
    arrivals_at_the_server(600, 50.0, 1 if args.quick else 3)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (the figures need idle cores)")


if __name__ == "__main__":
    main()
