"""Callbacks a second into ``kwa-batch receive``: 4 workers on PostgreSQL against one
process on SQLite, measured in one run.

Each receiver is a real ``kwa-batch receive`` process (``--store receipts.db``, then
``--store postgresql://… --workers 4``) on a free port. ``--clients`` client processes
each keep one connection alive and post ``--callbacks`` distinct status callbacks as
Kaleyra's v1 does (a GET with the fields in the query, the token in a header), each
answered ``stored: true`` once it is committed; the wall time from the first request to
the last answer gives callbacks/s. The receivers are measured in turn, best of
``--rounds``, and each store is counted afterwards (a run that stored less is refused).

The PostgreSQL server is a throwaway cluster of the tests' (tests/postgres_server.py),
with ``fsync=off``, unless ``--database URL`` names one (a fresh, empty database: the
benchmark writes its tables). On a machine with few cores the clients, the workers and the
database share them: the ratio says what more processes buy there, not what a database on
a machine of its own would take.

    $ .venv/bin/python benchmarks/bench_receiver_workers.py [--clients 4] [--callbacks 1500]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import kwa_batch as kb

TOKEN = "bench-t0ken"
ROOT = Path(__file__).resolve().parent.parent


def start(store: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    """A ``kwa-batch receive`` process, read until it says its callback_url."""
    args = [sys.executable, "-m", "kwa_batch", "receive", "--port", "0", "--store", store,
            "--workers", str(workers)]  # fmt: skip
    env = {**os.environ, "KWA_RECEIVER_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "callback_url:" in line:
            return proc, line.split()[-1].split("?")[0]
    raise SystemExit(f"kwa-batch receive --store {store} --workers {workers} did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)


def client(url: str, first: int, count: int, go: multiprocessing.synchronize.Event) -> None:
    """Post ``count`` distinct callbacks over one kept-alive connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"X-Kwa-Token": TOKEN}
    go.wait()
    for n in range(first, first + count):
        query = urlencode({"id": f"{n:032x}:0", "status": "delivered", "mobile": "919876543210"})
        connection.request("GET", f"{parts.path}?{query}", headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200 or b'"stored": true' not in body:
            raise SystemExit(f"callback {n}: {answer.status} {body[:200]!r}")
    connection.close()


def measure(url: str, clients: int, callbacks: int, offset: int) -> float:
    """Callbacks a second from ``clients`` processes posting at once."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    procs = [
        context.Process(target=client, args=(url, offset + i * callbacks, callbacks, go))
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.5)  # every client connected and waiting
    began = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit("a client failed")
    return clients * callbacks / (time.perf_counter() - began)


def database(given: str | None) -> tuple[str, object | None]:
    """The URL to write in, and the throwaway server to stop (None when given)."""
    if given:
        return given, None
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import start_server

    server = start_server()
    return server.new_database(), server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--callbacks", type=int, default=1500, help="per client and round")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database", metavar="URL", help="an empty PostgreSQL database")
    options = parser.parse_args()
    url, server = database(options.database)
    try:
        with tempfile.TemporaryDirectory() as folder:
            stores = {
                "1 process, SQLite": (str(Path(folder) / "receipts.db"), 1),
                f"{options.workers} workers, PostgreSQL": (url, options.workers),
            }
            rates: dict[str, float] = {}
            per_round = options.clients * options.callbacks
            for name, (store, workers) in stores.items():
                proc, callback_url = start(store, workers)
                try:
                    measure(callback_url, options.clients, 200, 10**9)  # warm: connections
                    best = 0.0
                    for round_ in range(options.rounds):
                        offset = round_ * per_round
                        best = max(best, measure(callback_url, options.clients,
                                                 options.callbacks, offset))  # fmt: skip
                finally:
                    stop(proc)
                with kb.CallbackStore(store) as opened:
                    held = opened.counts()["status_updates"]
                expected = options.rounds * per_round + options.clients * 200
                if held != expected:
                    raise SystemExit(f"{name}: {held} stored, {expected} expected")
                rates[name] = best
                print(f"{name:>26}: {best:8.0f} callbacks/s ({held:,} stored)")
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    names = list(rates)
    print(
        f"{options.clients} client processes, keep-alive, best of {options.rounds} rounds of "
        f"{per_round:,}; {os.cpu_count()} CPU(s)"
    )
    print(f"ratio {names[1]} / {names[0]}: {rates[names[1]] / rates[names[0]]:.2f}x")


if __name__ == "__main__":
    main()
