"""The journal's own costs: the once-a-second checkpoint, and the checks at open.

    python benchmarks/bench_journal.py              # about a minute
    python benchmarks/bench_journal.py --rows 100000 --open-rows 10000 100000

1. Writes as the send loop makes them (a ``mark_in_flight`` then a ``record`` per request of
   one row), timed with the checkpoint every second (as shipped) and with it off (the WAL
   is then copied to the main file only every 1,000 pages, by SQLite's auto-checkpoint).
2. ``Journal.open()`` on journals of growing size: ``PRAGMA integrity_check`` reads the whole
   file, so it costs in proportion to it.

The journals are written in a temporary folder on the disk of the working directory (pass
``--dir`` to choose): a tmpfs would hide the cost of the flushes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kwa_batch.sending.journal import Journal


def outcome(i: int) -> tuple[str, str, dict[str, object]]:
    return f"{i:064x}", f"+9198{i:08d}", {"status": "sent", "message_id": f"m-{i:012d}"}


def writes(folder: Path, rows: int, checkpoint_every: float | None) -> float:
    """Seconds for ``rows`` requests' worth of writes (two transactions each)."""
    path = folder / "writes.db"
    with Journal(path, checkpoint_every=checkpoint_every) as journal:
        start = time.perf_counter()
        for i in range(rows):
            key, number, fields = outcome(i)
            journal.mark_in_flight([([key], [number])])
            journal.record([(key, number, fields)])
        elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def open_time(folder: Path, rows: int) -> tuple[float, float]:
    """Seconds to open a journal of ``rows`` rows, and its size in MB."""
    path = folder / f"o{rows}.db"
    with Journal(path) as journal:
        for start in range(0, rows, 100_000):
            journal.record(outcome(i) for i in range(start, min(rows, start + 100_000)))
    size = path.stat().st_size / 1e6
    best = float("inf")
    for _ in range(3):
        start_time = time.perf_counter()
        Journal(path).open().close()
        best = min(best, time.perf_counter() - start_time)
    path.unlink()
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000, help="requests for the write test")
    parser.add_argument("--open-rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--repeat", type=int, default=5, help="best of N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        folder = Path(name)
        print(f"journals in {folder}")
        on, off = float("inf"), float("inf")
        for repeat in range(args.repeat):  # interleaved, each first in turn: load varies
            for every in (1.0, None) if repeat % 2 else (None, 1.0):
                seconds = writes(folder, args.rows, every)
                on, off = (min(on, seconds), off) if every else (on, min(off, seconds))
        print(f"\n{args.rows} requests (mark_in_flight + record each), best of {args.repeat}:")
        print(f"  checkpoint every second  {args.rows / on:9.0f} req/s  ({on:.2f} s)")
        print(f"  checkpoint off           {args.rows / off:9.0f} req/s  ({off:.2f} s)")
        print(f"  on / off                 {off / on:9.2f}x")
        print("\nJournal.open() (integrity_check, schema and version checks), best of 3:")
        for rows in args.open_rows:
            seconds, size = open_time(folder, rows)
            print(f"  {rows:>9,} rows ({size:6.1f} MB)  {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
