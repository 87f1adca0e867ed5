"""assign() on a large list: a million recipients into two arms and a holdout.

The list: ``--rows`` Indian numbers (default 1,000,000), one in four written nationally
(``098…``, read with ``default_region="IN"``). Timed best of 3, balanced (``balanced=True``) and
by hash alone (the default), against the baseline every assignment pays first: the
numbers normalised (``normalize_phones``) in the same run, so the ratio says what the
hashing and the cutting add. The shares are printed, so that a run that assigns wrongly
is seen.

    $ .venv/bin/python benchmarks/bench_assign.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from kwa_batch import assign
from kwa_batch.validation.phones import normalize_phones


def recipients(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numbers = rng.choice(10**8, size=rows, replace=False)
    national = rng.random(rows) < 0.25
    to = [
        f"098{n:08d}" if local else f"+9198{n:08d}"
        for n, local in zip(numbers, national, strict=True)
    ]
    return pd.DataFrame({"to": pd.array(to, dtype="str")})


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    df = recipients(rows)
    baseline = best_of(3, lambda: normalize_phones(df["to"], "IN"))
    print(f"{rows:,} recipients; normalize_phones (baseline): {baseline:.2f} s")
    for balanced in (True, False):
        seconds = best_of(
            3,
            lambda b=balanced: assign(df, ["A", "B"], holdout=0.1, default_region="IN", balanced=b),
        )
        shares = (
            assign(df, ["A", "B"], holdout=0.1, default_region="IN", balanced=balanced)["arm"]
            .value_counts(normalize=True)
            .round(4)
            .to_dict()
        )
        print(
            f"assign(balanced={balanced}): {seconds:.2f} s, {rows / seconds:,.0f} recipients/s, "
            f"{seconds / baseline:.1f}x the baseline; shares {shares}"
        )


if __name__ == "__main__":
    main()
