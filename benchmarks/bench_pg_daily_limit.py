"""What counting the daily limit over every process of the database costs a claim.

A claim with a daily limit (:meth:`PostgresJournal.claim`, ``daily_limit=``) takes a lock
of the database's own and counts the unique recipients sent, in flight or unknown in the
last 24 hours, in its transaction; one without (no ``--daily-limit``) does neither. The
database holds ``--counted`` rows of another campaign sent in the last hour (a day's
traffic); each case claims ``--claims`` one-row requests of new recipients, one by one,
in a campaign of its own. Prints the time per claim of both and their ratio (the database
is the benchmark's own: tests/postgres_server.py; ``initdb`` and ``pg_ctl`` must be
installed).

    $ .venv/bin/python benchmarks/bench_pg_daily_limit.py [--counted 20000] [--claims 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

from kwa_batch.sending.pg_journal import PostgresJournal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import start_server


def per_claim(url: str, campaign: str, claims: int, limit: int | None, first: int) -> float:
    """Seconds per claim of one new recipient (numbered from ``first``)."""
    with PostgresJournal(url, campaign=campaign) as journal:
        started = time.perf_counter()
        for i in range(claims):
            journal.claim([([f"k{i}"], [f"+9197{first + i:08d}"])], daily_limit=limit)
        return (time.perf_counter() - started) / claims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counted", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=500)
    args = parser.parse_args()
    server = start_server()
    try:
        url = server.new_database()
        with PostgresJournal(url, campaign="earlier"):
            pass  # the tables
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO kwa_journal_rows (campaign, key, recipient, state, sent_at, "
                "updated_at) SELECT 'earlier', 'k' || i, '+9198' || lpad(i::text, 8, '0'), "
                "'sent', now() - interval '1 hour', now() - interval '1 hour' "
                "FROM generate_series(1, %s) AS i",
                (args.counted,),
            )
            conn.execute("ANALYZE kwa_journal_rows")
        room = args.counted + 10 * args.claims  # never refused: the cost, not the refusal
        without = per_claim(url, "without", args.claims, None, 0)
        within = per_claim(url, "within", args.claims, room, args.claims)
    finally:
        server.stop()
    print(f"{args.counted:,} recipients counted in the last 24 h, {args.claims} claims each")
    print(f"claim without a daily limit: {without * 1000:.2f} ms")
    print(f"claim within the daily limit: {within * 1000:.2f} ms")
    print(f"ratio: {within / without:.1f}x")


if __name__ == "__main__":
    main()
