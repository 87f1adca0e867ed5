"""Sending throughput: send() against the naive loop and a bare pooled loop, one run.

    python benchmarks/bench_send.py            # the figures of issue #4 (about 1-2 minutes)
    python benchmarks/bench_send.py --rows 600 # a quicker look

Each scenario sends to a Kaleyra emulator running in its own process (`kwa-batch emulator`),
so the client's CPU time is measured alone. The naive loop (one `requests.post` per row,
no session) is timed on a sample and reported as messages per second, since 3,000 rows at
50 ms each would take minutes; every other figure sends all the rows.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import requests
from _emulator_process import KEY, SID, emulator_process

import kwa_batch as kb

SENDER = "+911234567890"


def personalised(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(n)],
            "body": [f"Hi customer {i}, your order A{i:06d} has shipped." for i in range(n)],
        }
    )


def broadcast(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(n)], "body": "Our sale starts today!"}
    )


def form(row: tuple[str, str]) -> dict[str, str]:
    return {"to": row[0], "from": SENDER, "type": "text", "channel": "whatsapp", "body": row[1]}


def naive_loop(url: str, df: pd.DataFrame) -> float:
    """What users write today: requests.post per row, one at a time, no session."""
    endpoint = f"{url}/v1/{SID}/messages"
    start = time.perf_counter()
    for row in df.itertuples(index=False, name=None):
        requests.post(endpoint, data=form(row), headers={"api-key": KEY}, timeout=30).json()
    return time.perf_counter() - start


def bare_pooled_loop(url: str, df: pd.DataFrame, concurrency: int) -> float:
    """The limit for this concurrency: a thread pool, one Session per thread, nothing else."""
    endpoint = f"{url}/v1/{SID}/messages"
    local = threading.local()

    def post(row: tuple[str, str]) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        session.post(endpoint, data=form(row), headers={"api-key": KEY}, timeout=30).json()

    rows = list(df.itertuples(index=False, name=None))
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, rows))
    return time.perf_counter() - start


def with_send(
    url: str, data: pd.DataFrame | kb.ValidationReport, concurrency: int, journal: bool
) -> tuple[float, float]:
    """send() on a validated report (or a frame); returns (seconds, client CPU seconds)."""
    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.db" if journal else None
        cpu, start = time.process_time(), time.perf_counter()
        results = kb.send(
            data, client, concurrency=concurrency, rate_limit=None, journal=path, progress=False
        )
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    client.close()
    bad = results["status"] != "sent"
    if bad.any():
        codes = results.loc[bad, "error_code"].unique()
        raise RuntimeError(f"{int(bad.sum())} rows not sent: {codes}")
    return elapsed, cpu


def timed_bare(url: str, df: pd.DataFrame, concurrency: int) -> tuple[float, float]:
    cpu = time.process_time()
    elapsed = bare_pooled_loop(url, df, concurrency)
    return elapsed, time.process_time() - cpu


def line(label: str, n: int, seconds: float, cpu: float | None = None) -> str:
    extra = f", client CPU {cpu / n * 1e6:.0f} us/msg" if cpu is not None else ""
    return f"  {label:<24}{n / seconds:9.1f} msg/s  ({seconds:.2f} s{extra})"


def compare(
    url: str, n: int, c: int, repeat: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best of ``repeat`` for the bare loop and send(report) with the journal, interleaved."""
    df = personalised(n)
    report = kb.validate(df, sender=SENDER)
    bare, sent = [], []
    for _ in range(repeat):
        bare.append(timed_bare(url, df, c))
        sent.append(with_send(url, report, c, journal=True))
    return min(bare), min(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--naive-rows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each figure")
    args = parser.parse_args()
    n, c = args.rows, args.concurrency
    print(f"{n} personalised messages, concurrency {c}; emulator in its own process")

    start = time.perf_counter()
    kb.validate(personalised(n), sender=SENDER)
    validation = time.perf_counter() - start

    with emulator_process(latency_ms=50) as url:
        naive = naive_loop(url, personalised(args.naive_rows))
        (bare, bare_cpu), (sent, sent_cpu) = compare(url, n, c, args.repeat)
        whole, _ = with_send(url, personalised(n), c, journal=True)
        cast, _ = min(with_send(url, broadcast(n), c, journal=True) for _ in range(args.repeat))
    naive_rate = args.naive_rows / naive
    print("\nat 50 ms latency:")
    print(line("naive loop", args.naive_rows, naive) + f" on {args.naive_rows} rows")
    print(line("bare pooled loop", n, bare, bare_cpu))
    print(line("send() + journal", n, sent, sent_cpu))
    print(line("validate() + send()", n, whole))
    print(line("broadcast (grouped)", n, cast))
    print(f"  send / bare             {bare / sent:9.2f}x   (target >= 0.9)")
    print(f"  send / naive            {n / sent / naive_rate:9.1f}x   (target >= 13)")
    print(f"  broadcast / naive       {n / cast / naive_rate:9.1f}x   (target >= 50)")

    with emulator_process(latency_ms=0) as url:
        (bare0, bare0_cpu), (sent0, sent0_cpu) = compare(url, n, c, args.repeat)
    print("\nat zero latency:")
    print(line("bare pooled loop", n, bare0, bare0_cpu))
    print(line("send() + journal", n, sent0, sent0_cpu))
    print(f"  send / bare             {bare0 / sent0:9.2f}x   (target >= 0.9)")
    print(f"\nvalidate() of the {n} rows, done once before sending: {validation:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
