"""What finding cells of several numbers costs normalize_phones, in the same run.

The column: 1,000,000 numbers written with spaces (``+91 98765 01234``), the values that
take the separator path where the several-numbers expression runs, and a second column
where one value in a hundred holds two numbers (``… ::: …``). Timed best of 3:

- **normalize_phones**: the whole column;
- **the expression alone**: the RE2 match that finds several numbers, over the same column.

It prints both times and the share of the whole that the expression takes.

    $ .venv/bin/python benchmarks/bench_several_numbers.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pandas as pd
import pyarrow as pa

from kwa_batch.validation.numbering import match
from kwa_batch.validation.phones import _SEVERAL_PATTERN, normalize_phones


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings of ``work``, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Time both, print them and the share."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    spaced = [f"+91 98765 {i % 100_000:05d}" for i in range(rows)]
    mixed = [v if i % 100 else f"{v} ::: +91 91234 56789" for i, v in enumerate(spaced)]
    for name, values in (("spaced", spaced), ("1% several", mixed)):
        column = pd.Series(values, dtype="str")
        arrow = pa.array(values, type=pa.large_string())
        normalize_phones(column, "IN")  # warm
        whole = best_of(3, lambda column=column: normalize_phones(column, "IN"))
        alone = best_of(3, lambda arrow=arrow: match(arrow, _SEVERAL_PATTERN))
        several = int(normalize_phones(column, "IN")["several"].sum())
        print(
            f"{name:>11}: {rows:,} values, {several:,} several; normalize_phones {whole:.3f} s, "
            f"the expression {alone:.3f} s ({alone / whole:.0%} of it)"
        )


if __name__ == "__main__":
    main()
