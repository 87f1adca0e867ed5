"""v2 personalised sending against v1, at the same latency (issue #20: v2 at least 0.9x v1's
per-row rate).

    python benchmarks/bench_v2.py                  # 3,000 rows, 20 ms (about half a minute)
    python benchmarks/bench_v2.py --rows 600 --latency 50

Personalised rows (each body its own) go one per request in both versions, so the figure
compares what differs: v1's form against v2's JSON message object (built per row by
``kwa_batch.message_objects``), and the answers' parsing. Both versions are sent to one
Kaleyra emulator in its own process (``kwa-batch emulator --latency``, which plays both: the
sender is declared on neither), so the client's CPU time is measured alone and both meet
the same latency. The order of the two runs alternates over ``--repeat`` rounds and the
best of each is kept.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from _emulator_process import KEY, SID, emulator_process

import kwa_batch as kb

SENDER = "+911234567890"


def personalised(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(n)],
            "body": [f"Hi customer {i}, your order A{i:06d} has shipped." for i in range(n)],
            "ref": [f"CUST-{i}" for i in range(n)],
        }
    )


def rate(url: str, report: kb.ValidationReport, version: str, concurrency: int) -> float:
    """Rows per second of one send() of ``report`` through ``version``."""
    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url, api_version=version)
    pacing = kb.Pacing(rate_limit=None, concurrency=concurrency, per_recipient_interval=0)
    with client:
        start = time.perf_counter()
        results = kb.send(report, client, pacing=pacing, progress=False)
        elapsed = time.perf_counter() - start
    sent = int((results["status"] == "sent").sum())
    if sent != len(report.valid):
        raise SystemExit(f"{version}: only {sent} of {len(report.valid)} rows sent")
    return sent / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=20.0, help="milliseconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    # One report per version: a report goes only through the version it was validated for.
    rows = personalised(args.rows)
    reports = {v: kb.validate(rows, sender=SENDER, api_version=v) for v in ("v1", "v2")}
    best = {"v1": 0.0, "v2": 0.0}
    with emulator_process(latency_ms=args.latency) as url:
        rate(url, kb.validate(personalised(100), sender=SENDER), "v1", args.concurrency)  # warm
        for round_ in range(args.repeat):
            order = ("v1", "v2") if round_ % 2 == 0 else ("v2", "v1")
            for version in order:
                found = rate(url, reports[version], version, args.concurrency)
                best[version] = max(best[version], found)
    print(
        f"{args.rows:,} personalised rows, {args.latency:g} ms latency, "
        f"{args.concurrency} in flight, best of {args.repeat}:"
    )
    for version, value in best.items():
        print(f"  {version}: {value:,.0f} rows/s")
    ratio = best["v2"] / best["v1"]
    verdict = "meets" if ratio >= 0.9 else "misses"
    print(f"  v2 / v1: {ratio:.2f}x ({verdict} the target of 0.9x)")


if __name__ == "__main__":
    main()
