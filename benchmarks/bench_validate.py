"""validate() on 300,000 numbers against a per-row libphonenumber loop, in the same run.

The numbers: 300,000 unique random ``+``-prefixed numbers, a country code (20 countries)
then 7 to 12 random digits, in a frame with a text ``body``. Both sides are warmed, then
timed best of 3:

- **loop**: ``phonenumbers.parse(number)`` + ``is_valid_number`` for each number;
- **validate**: ``kwa_batch.validate(df, sender=...)`` end to end — normalisation, every
  check of the pandera models, duplicates, the report (``valid``, ``invalid``, ``errors``).

It prints both times, the ratio, and how many verdicts disagree (a row is valid for
validate() exactly when libphonenumber calls its number valid: the target is 0).

    $ .venv/bin/python benchmarks/bench_validate.py [--rows 300000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import phonenumbers

from kwa_batch import validate

COUNTRIES = {  # country code: a country that uses it (20 countries)
    "91": "IN",
    "55": "BR",
    "1": "US",
    "62": "ID",
    "52": "MX",
    "7": "RU",
    "49": "DE",
    "44": "GB",
    "33": "FR",
    "39": "IT",
    "34": "ES",
    "90": "TR",
    "234": "NG",
    "92": "PK",
    "20": "EG",
    "27": "ZA",
    "54": "AR",
    "57": "CO",
    "966": "SA",
    "971": "AE",
}


def numbers(count: int, seed: int) -> list[str]:
    """``count`` unique random numbers: '+', a country code, then 7 to 12 digits."""
    rng = random.Random(seed)
    codes = list(COUNTRIES)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        value = "+" + rng.choice(codes) + "".join(rng.choices("0123456789", k=rng.randint(7, 12)))
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def per_row(values: list[str]) -> list[bool]:
    """The baseline: libphonenumber, one number at a time."""
    verdicts = []
    for value in values:
        try:
            verdicts.append(phonenumbers.is_valid_number(phonenumbers.parse(value, None)))
        except phonenumbers.NumberParseException:
            verdicts.append(False)
    return verdicts


def best_of(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    values = numbers(args.rows, args.seed)
    frame = pd.DataFrame(
        {"to": pd.array(values, dtype="str"), "body": pd.array(["Hello"] * len(values), "str")}
    )
    sender = "+911234567890"

    # Warm both sides once on the whole data (imports, metadata, caches, memory pools).
    per_row(values)
    validate(frame, sender=sender)

    loop_time, expected = best_of(3, lambda: per_row(values))
    validate_time, report = best_of(3, lambda: validate(frame, sender=sender))

    valid = pd.Series(False, index=frame.index)
    valid[report.valid.index] = True
    disagreements = int((valid.to_numpy() != pd.Series(expected).to_numpy()).sum())
    print(f"rows: {len(values):,} unique numbers, {len(COUNTRIES)} countries")
    print(f"valid numbers (libphonenumber): {sum(expected):,}")
    print(f"per-row parse + is_valid_number: {loop_time:.3f} s (best of 3)")
    print(f"validate() end to end:           {validate_time:.3f} s (best of 3)")
    print(f"ratio: {loop_time / validate_time:.1f}x")
    print(f"disagreements: {disagreements}")


if __name__ == "__main__":
    main()
