"""Two sender numbers against one, at the same rate per number, in the same run.

(``bench_several_numbers.py`` is another matter: cells holding several phone numbers.)

Personalised rows (one request each) to the built-in emulator at 50 ms of latency; each
number limited to ``--rate`` messages per second. It prints the messages per second each
campaign reached at the server (its arrivals, first to last) and the ratio, which should be
close to 2: each number keeps its own limit.

    $ .venv/bin/python benchmarks/bench_sender_numbers.py [--rows 800] [--rate 20]
"""

from __future__ import annotations

import argparse

import pandas as pd

from kwa_batch import Emulator, Pacing, send

NUMBERS = ["+911234567890", "+919876543210"]


def reached(rows: int, rate: float, senders: list[str]) -> float:
    """Messages per second at the server, sending ``rows`` from ``senders``."""
    frame = pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(rows)], "body": [f"Hi {i}" for i in range(rows)]}
    )
    pacing = Pacing(rate_limit=rate, per_recipient_interval=0)
    with Emulator(latency=0.05, callbacks=False) as emu:
        send(frame, emu.client(), sender=senders, pacing=pacing, progress=False)
        received = emu.messages["received_at"]
    span = (received.max() - received.min()).total_seconds()
    return (len(received) - 1) / span


def main() -> None:
    """Run one number, then two, and print both rates and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--rate", type=float, default=20.0)
    options = parser.parse_args()
    one = reached(options.rows, options.rate, NUMBERS[:1])
    two = reached(options.rows, options.rate, NUMBERS)
    print(f"{options.rows:,} rows at {options.rate:g}/s per number:")
    print(f"  one number:  {one:6.1f} msg/s")
    print(f"  two numbers: {two:6.1f} msg/s ({two / one:.2f}x one)")


if __name__ == "__main__":
    main()
