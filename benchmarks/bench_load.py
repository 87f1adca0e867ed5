"""Load and validate a 1,000,000-row CSV: time and peak memory.

The file is written first (realistic rows: Indian mobile numbers written four ways, a
name, a personalised body with a comma in it, a reference and a callback URL; about 1% of
the numbers are invalid and 0.5% mangled by a spreadsheet). Then a fresh Python process
loads it with ``load_recipients`` and checks it with ``validate(default_region="IN")``, so
that its peak resident memory is that of the job alone. It prints the time of each step
and the peak memory.

    $ .venv/bin/python benchmarks/bench_load.py [--rows 1000000] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
import kwa_batch as kb
imported = time.perf_counter()
df = kb.load_recipients(sys.argv[1])
loaded = time.perf_counter()
report = kb.validate(df, default_region="IN", sender="+911234567890")
validated = time.perf_counter()
print(json.dumps({
    "import": imported - start,
    "load": loaded - imported,
    "validate": validated - loaded,
    "rows": len(df),
    "valid": len(report.valid),
    "invalid": len(report.invalid),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def write_file(path: Path, rows: int, seed: int = 3) -> None:
    """A recipient file of ``rows`` rows, written in chunks."""
    rng = random.Random(seed)
    names = ["Priya", "Arjun", "Sneha", "Rahul", "Kavya", "Anil", "Meera", "Rohan", "Divya"]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("to,name,body,ref,callback_url\n")
        chunk = []
        for i in range(rows):
            mobile = str(rng.choice("6789")) + "".join(rng.choices("0123456789", k=9))
            shape = rng.random()
            if shape < 0.6:
                number = "+91" + mobile
            elif shape < 0.8:
                number = f"+91 {mobile[:5]} {mobile[5:]}"
            elif shape < 0.9:
                number = "0" + mobile
            else:
                number = "91" + mobile
            if rng.random() < 0.01:
                number = number[:-3]  # too short
            elif rng.random() < 0.005:
                number = f"9.{mobile[1:]}E+11"  # what Excel saves
            name = rng.choice(names)
            chunk.append(
                f'{number},{name},"Hi {name}, your order A{i} has shipped.",CUST-{i},'
                "https://example.com/kaleyra/callback\n"
            )
            if len(chunk) == 10_000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "recipients.csv"
        write_file(path, args.rows)
        size = path.stat().st_size / 2**20
        answer = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(answer.stdout.strip().splitlines()[-1])
    total = figures["load"] + figures["validate"]
    print(f"file: {figures['rows']:,} rows, {size:.0f} MiB")
    print(f"load_recipients: {figures['load']:.2f} s")
    print(f"validate:        {figures['validate']:.2f} s")
    counts = f"{figures['valid']:,} valid, {figures['invalid']:,} invalid"
    print(f"load + validate: {total:.2f} s ({counts})")
    print(f"peak memory (RSS of the process): {figures['peak_rss_mib']:.0f} MiB")
    print(f"(importing kwa_batch, not counted: {figures['import']:.2f} s)")


if __name__ == "__main__":
    main()
