"""check_templates() and suppressed_rows() on a large campaign, against a per-row loop.

The campaign: ``--rows`` template rows (default 1,000,000) over the sample catalogue,
each row one of 12 kinds (right, wrong parameter count, paused, unknown, wrong language,
media header without media…), with distinct parameters; and a suppression list of 10,000
numbers of which one row in a hundred is a recipient. Both sides are warmed, then timed
best of 3:

- **loop**: for each row, a dict lookup of (name, lang), the status, ``csv.reader`` on
  params and the header and button checks — the simplest correct per-row code;
- **vectorised**: :func:`check_templates` (grouped by template and language).

It prints both times, the ratio, and whether they refuse the same rows (the target:
identical).

It also times ``validate()`` on the mostly right campaign with and without the catalogue.

    $ .venv/bin/python benchmarks/bench_templates.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kwa_batch.catalogue import load_templates
from kwa_batch.validation import validate
from kwa_batch.validation.suppression import load_suppression, suppressed_rows
from kwa_batch.validation.template_checks import check_templates

ROOT = Path(__file__).resolve().parent.parent
KINDS = [
    ("order_shipped", "en", "{n},A{n},100.00", None),
    ("order_shipped", "hi", "{n},A{n},100.00", None),
    ("order_shipped", "en", "{n},A{n}", None),
    ("delivery_reminder", "pt_BR", '"Silva, {n}",A{n},quarta', None),
    ("delivery_reminder", None, "{n},A{n},Friday", None),
    ("spring_sale", "en", "{n},20%", None),
    ("festive_offer", "en", "{n},10%", None),
    ("order_shiped", "en", "{n},A{n},1", None),
    ("order_shipped", "fr", "{n},A{n},1", None),
    ("order_invoice", "en", "{n},A{n}", None),
    ("order_invoice", "en", "{n},A{n}", "https://cdn.example/{n}.pdf"),
    ("new_collection", "en", "{n},15%", "https://cdn.example/{n}.pdf"),
]


CLEAN = [0, 1, 3, 10]  # the kinds of KINDS that pass


def campaign(rows: int, mistakes: float) -> pd.DataFrame:
    """``rows`` rows, a share ``mistakes`` of them of a failing kind (cycled), the rest right."""
    rng = np.random.default_rng(1)
    wrong = rng.random(rows) < mistakes
    failing = [k for k in range(len(KINDS)) if k not in CLEAN]
    kinds = np.asarray(CLEAN)[np.arange(rows) % len(CLEAN)]
    kinds[wrong] = np.asarray(failing)[np.arange(int(wrong.sum())) % len(failing)]
    n = np.arange(rows).astype(str)
    columns: dict[str, Any] = {"to": pd.array([f"+9198{i:08d}" for i in range(rows)], "str")}
    for key, position in (("template_name", 0), ("lang_code", 1), ("media_url", 3)):
        values = [KINDS[k][position] for k in kinds]
        columns[key] = pd.array(
            [v.replace("{n}", i) if v else v for v, i in zip(values, n, strict=True)], dtype="str"
        )
    columns["params"] = pd.array(
        [KINDS[k][2].replace("{n}", i) for k, i in zip(kinds, n, strict=True)], dtype="str"
    )
    return pd.DataFrame(columns)


def loop(df: pd.DataFrame, catalogue: pd.DataFrame) -> set[int]:
    by_key = {(r.template_name, r.lang_code): r for r in catalogue.itertuples()}
    languages: dict[str, list[str]] = {}
    for r in catalogue.itertuples():
        languages.setdefault(r.template_name, []).append(r.lang_code)
    refused = set()
    names, langs = df["template_name"].tolist(), df["lang_code"].tolist()
    params, media = df["params"].tolist(), df["media_url"].tolist()
    for i in range(len(df)):
        name, lang = names[i], langs[i]
        if name not in languages:
            refused.add(i)
            continue
        if not isinstance(lang, str):
            if len(languages[name]) != 1:
                refused.add(i)
                continue
            lang = languages[name][0]
        found = by_key.get((name, lang))
        count = len(next(csv.reader([params[i]]))) if isinstance(params[i], str) else 0
        if found is None or found.status != "approved" or count != found.body_params:
            refused.add(i)
        elif found.header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
            link = media[i]
            kind = {"pdf": "DOCUMENT", "jpg": "IMAGE", "mp4": "VIDEO"}.get(
                str(link).rsplit(".", 1)[-1]
            )
            if not isinstance(link, str) or (kind and kind != found.header_format):
                refused.add(i)
    return refused


def best(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    fn()
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    catalogue = load_templates(ROOT / "sample_data" / "templates.csv")
    print(f"{args.rows:,} template rows, {len(catalogue)} templates; best of 3")
    for mistakes in (0.02, 2 / 3):
        df = campaign(args.rows, mistakes)
        slow, by_loop = best(lambda df=df: loop(df, catalogue))
        fast, check = best(lambda df=df: check_templates(df, catalogue))
        by_check = set(np.flatnonzero(check.mask(len(df))).tolist())
        print(f"{mistakes:.0%} of rows with a mistake:")
        print(f"  per-row loop      {slow:8.3f} s")
        print(f"  check_templates   {fast:8.3f} s   ({slow / fast:.1f}x the loop's speed)")
        print(f"  refused rows: loop {len(by_loop):,}, check_templates {len(by_check):,}; "
              f"same rows: {by_loop == by_check}")  # fmt: skip

    clean = campaign(args.rows, 0.02)
    bare, _ = best(lambda: validate(clean, sender="+911234567890"), repeat=3)
    full, _ = best(lambda: validate(clean, sender="+911234567890", templates=catalogue), repeat=1)
    print(f"validate(), 2% mistakes: {bare:.2f} s without the catalogue, {full:.2f} s with it "
          f"({(full - bare) / bare:+.0%})")  # fmt: skip

    suppression = load_suppression(df["to"].iloc[::100].head(10_000))
    took, (mask, _) = best(lambda: suppressed_rows(df["to"], suppression))
    print(f"suppressed_rows     {took:8.3f} s   ({int(mask.sum()):,} rows of {len(df):,} "
          f"against {len(suppression):,} numbers)")  # fmt: skip


if __name__ == "__main__":
    main()
