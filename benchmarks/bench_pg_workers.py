"""Four `kwa-batch send` processes on one PostgreSQL journal against one, in the same run.

The emulator answers after 250 ms; each process may keep 4 requests in flight
(``--concurrency 4``: about 16 messages/s for one process, whatever ``--rate 1000`` allows),
so one process cannot reach the rate and four share the campaign. Personalised rows (one
request each), a campaign of its own per case in one database, which the benchmark starts
(tests/postgres_server.py: PostgreSQL's ``initdb`` and ``pg_ctl`` must be installed).

The rate of a case is what its journal recorded: the rows sent over the span of their
``sent_at`` (process start-up left out, the same for both); the emulator's ledger says how
many arrived twice (0 expected). It prints both rates, each process's share and the ratio
(issue #21 asks for at least 3.5x).

    $ .venv/bin/python benchmarks/bench_pg_workers.py [--rows 1000] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
import psycopg

from kwa_batch import Emulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import start_server

LATENCY = 0.25
CONCURRENCY = 4
SENDER = "+911234567890"


def run_case(
    workers: int, rows: int, url: str, emu: Emulator, folder: Path
) -> tuple[float, list[int], int]:
    """Send a campaign of ``rows`` with ``workers`` processes; its rate (messages/s from the
    journal's sent_at), what each process sent itself, and the messages that arrived twice."""
    campaign = f"bench{workers}"
    file = folder / f"{campaign}.csv"
    pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(rows)],
            "body": [f"{campaign}: hello {i}" for i in range(rows)],
        }
    ).to_csv(file, index=False)
    env = {
        **os.environ,
        "KALEYRA_SID": emu.sid,
        "KALEYRA_API_KEY": emu.api_key,
        "KALEYRA_BASE_URL": emu.url,
        "KALEYRA_FROM": SENDER,
    }
    before = len(emu.messages)
    command = [sys.executable, "-m", "kwa_batch", "send", str(file), "--journal", url,
               "--campaign", campaign, "--rate", "1000", "--concurrency", str(CONCURRENCY),
               "--quiet"]  # fmt: skip
    processes = [
        subprocess.Popen(
            [*command, "--out", str(folder / f"{campaign}-{i}.csv")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(workers)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise SystemExit(f"a worker failed ({process.returncode}): {output}")
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT COUNT(*), EXTRACT(EPOCH FROM MAX(sent_at) - MIN(sent_at)) "
            "FROM kwa_journal_rows WHERE campaign = %s AND state = 'sent'",
            (campaign,),
        ).fetchone()
    assert found is not None
    sent, span = int(found[0]), float(found[1])
    own = []
    for i in range(workers):
        results = pd.read_csv(folder / f"{campaign}-{i}.csv")
        own.append(int(((results["status"] == "sent") & ~results["from_journal"]).sum()))
    ledger = emu.messages.iloc[before:]
    twice = int(ledger.duplicated(subset=["to", "body"]).sum())
    return (sent - 1) / span, own, twice


def main() -> None:
    """Run one process, then ``--workers``; print the rates and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args()
    server = start_server()
    try:
        url = server.new_database()
        with TemporaryDirectory() as folder, Emulator(latency=LATENCY) as emu:
            started = time.monotonic()
            one, _, twice_one = run_case(1, options.rows, url, emu, Path(folder))
            many, own_many, twice_many = run_case(
                options.workers, options.rows, url, emu, Path(folder)
            )
            took = time.monotonic() - started
    finally:
        server.stop()
    print(
        f"{options.rows:,} personalised rows, emulator at {LATENCY * 1000:.0f} ms, "
        f"--concurrency {CONCURRENCY} per process, one PostgreSQL journal ({took:.0f} s in all)"
    )
    print(f"  1 process:  {one:6.1f} messages/s; sent twice: {twice_one}")
    shares = ", ".join(f"{n:,}" for n in own_many)
    print(
        f"  {options.workers} processes: {many:6.1f} messages/s (each sent {shares}); "
        f"sent twice: {twice_many}"
    )
    print(f"  ratio: {many / one:.2f}x (issue #21: at least 3.5x)")


if __name__ == "__main__":
    main()
