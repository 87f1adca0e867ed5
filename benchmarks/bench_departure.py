"""What deciding the campaign's rules again at each departure costs (issue #17).

    python benchmarks/bench_departure.py             # 3,000 template rows, best of 5
    python benchmarks/bench_departure.py --rows 600  # a quicker look

The same template campaign is sent at zero latency, without a rate limit, to an emulator in
its own process (so the client's CPU is measured alone), with a journal:

- **no holds**: nothing can hold a row (no quiet hours, expiry, limit or opt-outs);
- **every hold, decided once**: quiet hours that hold nobody now (in the recipients' zone),
  an expiry a day away, a daily limit with room for everyone, and a live receipts store,
  decided before sending only (the departure checks switched off: what a run did before
  issue #17);
- **every hold, decided at departure**: the same, each request also checked when a worker
  takes it and when it leaves, every recipient taking its place in the daily limit's window,
  the store read again every 2 s.

Runs alternate, and the best of each is compared. The issue's target is the re-check's
cost: decided at departure >= 0.97x decided once; the line against no holds at all shows
what holds cost in all (deciding them before sending included: each recipient's time zones).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from _emulator_process import KEY, SID, emulator_process

import kwa_batch as kb
import kwa_batch.sending.run as run_module
from kwa_batch.receipts.store import CallbackStore
from kwa_batch.sending.departure import LiveOptOuts

SENDER = "+911234567890"


def campaign(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(n)],
            "type": "template",
            "template_name": "order_update",
            "params": [f"Customer {i},A{i:06d}" for i in range(n)],
            "lang_code": "en",
        }
    )


def awake_hours() -> str:
    """Quiet hours that start 6 hours from now in India: nobody is held by them."""
    local = datetime.now(UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    start = local + timedelta(hours=6)
    end = local + timedelta(hours=12)
    return f"{start:%H:%M}-{end:%H:%M}"


def run(url: str, report: kb.ValidationReport, holds: dict[str, object]) -> float:
    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        results = kb.send(
            report,
            client,
            concurrency=16,
            rate_limit=None,
            journal=Path(folder) / "run.db",
            progress=False,
            **holds,  # type: ignore[arg-type]
        )
        elapsed = time.perf_counter() - start
    client.close()
    if not (results["status"] == "sent").all():
        raise RuntimeError(f"not all sent: {results['error_code'].value_counts().to_dict()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5, help="best of N for each figure")
    args = parser.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "receipts.db"
        with CallbackStore(path) as store:
            store.counts()  # an empty store: a live source with no opt-outs yet
        plain = kb.validate(campaign(n), sender=SENDER)
        live = kb.validate(campaign(n), sender=SENDER, suppress=kb.OptOutSource(path))
        holds = {
            "quiet_hours": awake_hours(),
            "expires": "24h",
            "daily_limit": n * 10,
        }
        print(f"{n:,} template messages at zero latency, concurrency 16, journal on")
        print(f"every hold: quiet hours {holds['quiet_hours']} (India), expiry in 24 h, daily")
        print(f"limit {n * 10:,}, a live receipts store; best of {args.repeat}")
        free, once, held = [], [], []
        with emulator_process(latency_ms=0) as url:
            run(url, plain, {})  # warm-up: imports, connections
            for _ in range(args.repeat):
                free.append(run(url, plain, {}))
                with decided_once():
                    once.append(run(url, live, holds))
                held.append(run(url, live, holds))
        store.close()
    best_free, best_once, best_held = min(free), min(once), min(held)
    print(f"  no holds                {n / best_free:8.1f} msg/s  ({best_free:.2f} s)")
    print(f"  holds decided once      {n / best_once:8.1f} msg/s  ({best_once:.2f} s)")
    print(f"  holds at departure      {n / best_held:8.1f} msg/s  ({best_held:.2f} s)")
    print(f"  at departure / once     {best_once / best_held:8.3f}x   (target >= 0.97)")
    print(f"  at departure / no holds {best_free / best_held:8.3f}x")


@contextlib.contextmanager
def decided_once() -> Iterator[None]:
    """Switch the departure checks off (a baseline for this benchmark only)."""
    original = run_module._Run._hold
    run_module._Run._hold = lambda self, request, last, attempts: None  # type: ignore[method-assign]
    original_start = LiveOptOuts.start
    LiveOptOuts.start = lambda self: self  # type: ignore[method-assign]  # no reads while sending
    try:
        yield
    finally:
        run_module._Run._hold = original  # type: ignore[method-assign]
        LiveOptOuts.start = original_start  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
