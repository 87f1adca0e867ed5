"""Peak memory of the sending process: 1,000,000 broadcast rows and 100,000 personalised rows.

    python benchmarks/bench_memory.py                      # both figures (a few minutes)
    python benchmarks/bench_memory.py --broadcast 100000 --personalised 10000   # quicker

Each case runs in a fresh child process (so its peak is its own) that builds the rows,
validates them and sends them with the journal on to a zero-latency emulator running in a
process of its own. Aim: 1 GB or less.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _emulator_process import KEY, SID, emulator_process

SENDER = "+911234567890"


def child(kind: str, rows: int, url: str) -> None:
    import pandas as pd

    import kwa_batch as kb

    numbers = [f"+9198{i:08d}" for i in range(rows)]
    if kind == "broadcast":
        df = pd.DataFrame({"to": numbers, "body": "Our sale starts today!"})
    else:
        df = pd.DataFrame(
            {"to": numbers, "body": [f"Hi {i}, order A{i:07d} shipped" for i in range(rows)]}
        )
    start = time.perf_counter()
    report = kb.validate(df, sender=SENDER)
    validated = time.perf_counter() - start
    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url)
    with tempfile.TemporaryDirectory() as folder:
        results = kb.send(
            report,
            client,
            concurrency=16,
            rate_limit=None,
            journal=Path(folder) / "j.db",
            progress=False,
        )
    elapsed = time.perf_counter() - start
    sent = int((results["status"] == "sent").sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "kind": kind,
                "rows": rows,
                "sent": sent,
                "validate_s": validated,
                "total_s": elapsed,
                "peak_mb": peak,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broadcast", type=int, default=1_000_000)
    parser.add_argument("--personalised", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ROWS", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, rows, url = args.child
        child(kind, int(rows), url)
        return
    with emulator_process(latency_ms=0) as url:
        for kind, rows in (("broadcast", args.broadcast), ("personalised", args.personalised)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(rows), url],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{kind:>12}: {figures['rows']:>9,} rows, {figures['sent']:>9,} sent in "
                f"{figures['total_s']:6.1f} s (validation {figures['validate_s']:.1f} s), "
                f"peak memory {figures['peak_mb']:,.0f} MB"
            )


if __name__ == "__main__":
    main()
