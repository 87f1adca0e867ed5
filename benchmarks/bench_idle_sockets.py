"""Seconds a valid callback takes while 300 idle sockets are held open to the receiver.

The receiver runs in a child process whose file descriptors are limited to 256
(``RLIMIT_NOFILE``), so that 300 idle clients are more than it can hold. Two runs:

* ``capped``: the receiver as shipped (a connection cap of half the free descriptors; at
  the cap the connection idle longest is closed);
* ``uncapped``: the cap set above the descriptor limit, nothing done when ``accept()``
  runs out of descriptors, and a read timeout of 10 minutes: how the receiver behaved
  before issue #10. Idle clients hold every descriptor, ``accept()`` fails, and the
  callback waits until they leave (here: until the client gives up after ``--give-up``
  seconds).

Both runs use a read timeout of 10 minutes, so the figure is the cap's doing.

Run: ``python benchmarks/bench_idle_sockets.py [--idle 300] [--limit 256] [--give-up 15]``
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests

_CHILD = textwrap.dedent(
    """
    import resource, sys
    limit = int(sys.argv[2])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    from kwa_batch.receipts.receiver import Receiver
    from kwa_batch._http.connections import Connections
    cap = None
    if sys.argv[3] == "uncapped":  # as before issue #10: no cap, nothing done on EMFILE
        cap = 100_000
        Connections.out_of_descriptors = lambda self, exc: None
    with Receiver(sys.argv[1], read_timeout=600, max_connections=cap) as receiver:
        print(receiver.port, receiver._http._server.connections.limit, flush=True)
        sys.stdin.read()
    """
)


def measure(mode: str, idle_count: int, limit: int, give_up: float) -> tuple[float | None, int]:
    """Seconds for one valid callback (None: no answer in ``give_up`` s), and the cap."""
    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(Path(folder) / "r.db"), str(limit), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        port_text, cap_text = child.stdout.readline().split()
        port = int(port_text)
        idle = [
            socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(idle_count)
        ]
        time.sleep(0.5)  # let the server take in what it can
        started = time.perf_counter()
        try:
            answer = requests.get(
                f"http://127.0.0.1:{port}/callback",
                params={"id": "bench:0", "status": "delivered"},
                timeout=give_up,
            )
            seconds: float | None = time.perf_counter() - started
            assert answer.status_code == 200, answer.text
        except requests.exceptions.RequestException:
            seconds = None
        finally:
            for sock in idle:
                sock.close()
            child.stdin.close()
            child.wait(30)
            child.stdout.close()
        return seconds, int(cap_text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=300, help="idle sockets held open")
    parser.add_argument("--limit", type=int, default=256, help="the child's descriptor limit")
    parser.add_argument("--give-up", type=float, default=15.0, help="client timeout, seconds")
    args = parser.parse_args()
    print(f"{args.idle} idle sockets, receiver limited to {args.limit} file descriptors")
    results = {}
    for mode in ("capped", "uncapped"):
        seconds, cap = measure(mode, args.idle, args.limit, args.give_up)
        results[mode] = seconds
        shown = (
            f"answered in {seconds:.3f} s"
            if seconds is not None
            else f"no answer within {args.give_up:g} s (the client gave up)"
        )
        print(f"  {mode:<9} (cap {cap:>6}): valid callback {shown}")
    capped, uncapped = results["capped"], results["uncapped"]
    if capped is not None:
        slower = uncapped if uncapped is not None else args.give_up
        bound = "" if uncapped is not None else "at least "
        print(f"  ratio uncapped/capped: {bound}{slower / capped:.0f}x")


if __name__ == "__main__":
    main()
