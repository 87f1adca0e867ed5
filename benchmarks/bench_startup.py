"""How long the command line takes to start, against importing pandas on the same machine.

Three commands, each run in a fresh process, interleaved, best of ``--runs``:

- **pandas**: ``python -c "import pandas"`` (the baseline: what any pandas tool pays);
- **help**: ``kwa-batch --help`` (target: under 0.3 s; it imports neither pandas nor pandera);
- **validate**: ``kwa-batch validate sample_data/recipients.csv`` (target: under 1.5× the
  pandas import: it loads, normalises and checks the 20 rows, so it pays for pandas,
  pyarrow, pandera and phonenumbers).

It also prints the module count, the largest module and function, and whether the
module-level import graph has a cycle.

    $ .venv/bin/python benchmarks/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KWA = str(Path(sys.executable).with_name("kwa-batch"))
COMMANDS = {
    "pandas": [sys.executable, "-c", "import pandas"],
    "help": [KWA, "--help"],
    "validate": [KWA, "validate", str(ROOT / "sample_data" / "recipients.csv")],
}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - start


def shape() -> None:
    package = ROOT / "kwa_batch"
    modules = sorted(package.rglob("*.py"))
    sizes = sorted(((len(p.read_text().splitlines()), p) for p in modules), reverse=True)
    functions = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                doc = (
                    body[0].end_lineno - body[0].lineno + 1  # type: ignore[operator]
                    if body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(getattr(body[0], "value", None), ast.Constant)
                    else 0
                )
                length = node.end_lineno - node.lineno + 1 - doc  # type: ignore[operator]
                functions.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    functions.sort(reverse=True)
    print(f"modules: {len(modules)}")
    print(f"largest module: {sizes[0][1].relative_to(ROOT)} ({sizes[0][0]} lines)")
    print(f"largest function (lines without its docstring): {functions[0][1]} ({functions[0][0]})")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_layers.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    print("import graph: no cycle, layers kept" if result.returncode == 0 else result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache
        timed(command)
    best = dict.fromkeys(COMMANDS, float("inf"))
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            best[name] = min(best[name], timed(command))
    base = best["pandas"]
    print(f"python -c 'import pandas'   {best['pandas']:.3f} s")
    print(f"kwa-batch --help            {best['help']:.3f} s  (target < 0.3 s)")
    print(
        f"kwa-batch validate sample   {best['validate']:.3f} s  "
        f"= {best['validate'] / base:.2f}x the pandas import (target < 1.5x)"
    )
    shape()


if __name__ == "__main__":
    main()
