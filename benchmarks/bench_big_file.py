"""Peak memory of a file sent in parts (kb.send_file), against the in-memory send in the same run.

    python benchmarks/bench_big_file.py      # 10,000,000 broadcast, 1,000,000 personalised
    python benchmarks/bench_big_file.py --broadcast 1000000 --personalised 100000  # quicker
    python benchmarks/bench_big_file.py --broadcast 0      # personalised only (0: not run)

Each case is a CSV file generated into a temporary folder, sent by a fresh child process
(so its peak is its own: the parent reads the child's ``ru_maxrss`` from ``os.wait4``, the
child's own ``getrusage(RUSAGE_CHILDREN)`` record) with the journal on, to a zero-latency
emulator running in a process of its own, at no rate limit (16 requests in flight; a
broadcast goes 100 recipients a request, a personalised row one a request). The baseline
is the in-memory path (``load_recipients`` + ``send`` + ``export_results``) on a smaller
file of each kind, measured in the same run. Aim: under 1 GB for every case in parts, flat
as the file grows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _emulator_process import KEY, SID, emulator_process

SENDER = "+911234567890"
_BLOCK = 100_000


def generate(path: Path, kind: str, rows: int) -> None:
    """A recipient CSV of ``rows`` distinct numbers: one body for all (broadcast), or one
    body a row (personalised)."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("to,body\n")
        for start in range(0, rows, _BLOCK):
            numbers = range(start, min(start + _BLOCK, rows))
            if kind == "broadcast":
                out.write("".join(f"+9198{i:08d},Our sale starts today!\n" for i in numbers))
            else:
                out.write(
                    "".join(f'+9198{i:08d},"Hi {i}, order A{i:07d} shipped"\n' for i in numbers)
                )


def child(mode: str, path: str, url: str, chunk_rows: int, folder: str) -> None:
    import kwa_batch as kb

    client = kb.KaleyraClient(SID, KEY, sender=SENDER, base_url=url)
    out = Path(folder) / "results.parquet"
    settings = {"concurrency": 16, "rate_limit": None, "progress": False}
    start = time.perf_counter()
    if mode == "parts":
        outcome = kb.send_file(
            path, client, out=out, chunk_rows=chunk_rows, journal=Path(folder) / "j.db", **settings
        )
    else:
        df = kb.load_recipients(path)
        results = kb.send(df, client, journal=Path(folder) / "j.db", **settings)
        kb.export_results(results, out, data=df)
        outcome = results.attrs["run"]
    elapsed = time.perf_counter() - start
    print(json.dumps({"rows": outcome.rows, "sent": outcome.counts["sent"], "seconds": elapsed}))


def measure(mode: str, path: Path, url: str, chunk_rows: int) -> dict[str, float]:
    """Run one case in a child process; its figures and its peak resident memory (MB)."""
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "out.json", "w+") as report:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, str(path), url, str(chunk_rows), folder],
            stdout=report,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{mode} {path.name}: the child exited {proc.returncode}")
        report.seek(0)
        figures = json.loads(report.read().strip().splitlines()[-1])
    figures["peak_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    figures["rows_per_s"] = figures["rows"] / figures["seconds"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broadcast", type=int, default=10_000_000)
    parser.add_argument("--personalised", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=100_000, help="rows sent in memory")
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, url, chunk_rows, folder = args.child
        child(mode, path, url, int(chunk_rows), folder)
        return
    sizes = {"broadcast": args.broadcast, "personalised": args.personalised}
    kinds = [kind for kind, rows in sizes.items() if rows]  # 0: that kind is not measured
    cases = [
        (kind, mode, rows)
        for kind in kinds
        for mode, rows in (
            ("memory", args.baseline),
            ("parts", args.baseline),
            ("parts", sizes[kind]),
        )
    ]
    found: dict[tuple[str, str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind, mode, rows in cases:
            if (kind, mode, rows) in found:
                continue
            path = Path(folder) / f"{kind}-{rows}.csv"
            if not path.exists():
                generate(path, kind, rows)
            with emulator_process(latency_ms=0) as url:  # a fresh ledger for each case
                figures = measure(mode, path, url, args.chunk_rows)
            found[(kind, mode, rows)] = figures
            print(
                f"{kind:<12} {mode:<6} {rows:>11,} rows: peak {figures['peak_mb']:7.0f} MB, "
                f"{figures['rows_per_s']:8,.0f} rows/s ({figures['seconds']:.0f} s, "
                f"{int(figures['sent']):,} sent)",
                flush=True,
            )
            if mode == "parts" and rows > args.baseline:
                path.unlink()  # the big files one at a time
    print()
    for kind in kinds:
        rows = sizes[kind]
        memory = found[(kind, "memory", args.baseline)]["peak_mb"]
        small = found[(kind, "parts", args.baseline)]["peak_mb"]
        big = found[(kind, "parts", rows)]["peak_mb"]
        print(
            f"{kind}: in parts {big:.0f} MB for {rows:,} rows vs {small:.0f} MB for "
            f"{args.baseline:,} (x{big / small:.2f} for x{rows / args.baseline:.0f} the rows); "
            f"in memory {memory:.0f} MB for {args.baseline:,} rows "
            f"({'under' if big < 1024 else 'OVER'} 1 GB)"
        )


if __name__ == "__main__":
    main()
