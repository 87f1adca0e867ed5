"""What pacing and the estimate cost before a send: hold_back() and estimate() over a large
campaign across India, the UK, the US and Brazil, against the message frame alone.

Prints seconds and rows per second, and the ratio to building the message frame (the
floor every run pays). Run: ``.venv/bin/python benchmarks/bench_pacing.py [ROWS]``.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from kwa_batch import estimate, validate
from kwa_batch.fields import message_frame
from kwa_batch.sending import schedule
from kwa_batch.sending.schedule import Holds, Schedule, hold_back

PREFIXES = ["+9198765", "+4479111", "+1212555", "+1312555", "+1415555", "+551198765"]


def campaign(n: int) -> pd.DataFrame:
    numbers = [f"{PREFIXES[i % len(PREFIXES)]}{i // len(PREFIXES):04d}" for i in range(n)]
    return pd.DataFrame(
        {
            "to": pd.array(numbers, dtype="str"),
            "type": "template",
            "template_name": "promo",
            "params": "Ana",
            "lang_code": "en",
        }
    ).astype("str")


def timed(label: str, n: int, work: object) -> float:
    start = time.perf_counter()
    work()  # type: ignore[operator]
    took = time.perf_counter() - start
    print(f"{label:<44} {took:7.3f} s  {n / took:>12,.0f} rows/s")
    return took


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    report = validate(campaign(n), sender="+911234567890")
    now = datetime(2027, 6, 1, 12, tzinfo=UTC)
    holds = Holds.make(Schedule(quiet_hours="21:00-09:00", daily_limit=n // 2), now=now)
    before = {f"+9198765{i:04d}": now - timedelta(hours=3) for i in range(n // 12)}
    print(f"{n:,} valid rows, {report.valid['to'].nunique():,} recipients")
    floor = timed("message_frame (the floor)", n, lambda: message_frame(report.valid))
    messages = message_frame(report.valid)
    schedule.zones_of.cache_clear()
    cold = timed("hold_back, quiet hours + limit (cold zones)", n,
                 lambda: hold_back(messages, holds, before))  # fmt: skip
    warm = timed("hold_back again (zones cached)", n, lambda: hold_back(messages, holds, before))
    card = Path(__file__).parent.parent / "sample_data" / "rate_card.csv"
    quiet = Schedule(quiet_hours="21:00-09:00")
    est = timed("estimate with the sample rate card", n,
                lambda: estimate(report, rates=card, schedule=quiet, now=now))  # fmt: skip
    print(f"ratios to message_frame: hold_back cold {cold / floor:.1f}x, warm "
          f"{warm / floor:.1f}x, estimate {est / floor:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
