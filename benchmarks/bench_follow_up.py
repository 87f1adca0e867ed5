"""follow_up() on 1,000,000 results against 3,000,000 receipts, beside a plain merge.

The issue's target: under 5 s. The results: 1,000,000 rows (94% sent with a message id,
3% not sent with a hold code, 2% rejected, 1% unknown). The receipts: load_receipts' frame
of 3,000,000 messages, one for each sent row (delivered 70%, read 15%, no final receipt
yet 5%, failed 10% with WhatsApp's codes: 131049, 131026, 131050, 131048, 130429 and an
unknown one) and 2,000,000 of other campaigns. Timed best of 3, beside the baseline of the
same run: ``results.merge(receipts, on="message_id", how="left")`` (the one join any
answer needs), and the ratio between them.

    $ .venv/bin/python benchmarks/bench_follow_up.py [--rows 1000000] [--receipts 3000000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

import kwa_batch as kb
from kwa_batch.receipts.delivery import RECEIPT_COLUMNS

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
CODES = np.array(["131049", "131026", "131050", "131048", "130429", "999001"], dtype=object)


def make(rows: int, receipts: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    to = pd.array([f"+9198{n:08d}" for n in range(rows)], dtype="string")
    kind = rng.choice(4, size=rows, p=[0.94, 0.03, 0.02, 0.01])
    status = np.array(["sent", "not_sent", "rejected", "unknown"], dtype=object)[kind]
    ids = np.array([f"{n:032x}:0" for n in range(rows)], dtype=object)
    sent = kind == 0
    error = np.array([None, "KWA027", "E13009", "TIMEOUT"], dtype=object)[kind]
    results = pd.DataFrame(
        {
            "to": to,
            "status": pd.array(status, dtype="string"),
            "message_id": pd.array(np.where(sent, ids, None), dtype="string"),
            "error_code": pd.array(error, dtype="string"),
            "sent_at": pd.array(np.where(sent, T0, None), dtype="datetime64[us, UTC]"),
        }
    )
    mine = ids[sent]
    others = np.array([f"o{n:031x}:0" for n in range(max(0, receipts - len(mine)))], dtype=object)
    all_ids = np.concatenate([mine, others])
    n = len(all_ids)
    outcome = rng.choice(4, size=n, p=[0.70, 0.15, 0.05, 0.10])
    statuses = np.array(["delivered", "read", "sent", "failed"], dtype=object)[outcome]
    failed = outcome == 3
    codes = np.where(failed, CODES[rng.integers(0, len(CODES), size=n)], None)
    recipients = np.concatenate([to.to_numpy(dtype=object)[sent], np.full(len(others), None)])
    frame: dict[str, Any] = {name: pd.array([None] * n, dtype="string") for name in RECEIPT_COLUMNS}
    frame.update(
        message_id=pd.array(all_ids, dtype="string"),
        status=pd.array(statuses, dtype="string"),
        recipient=pd.array(recipients, dtype="string"),
        error_code=pd.array(codes, dtype="string"),
    )
    for name in ("sent_at", "delivered_at", "read_at", "updated_at"):
        frame[name] = pd.array([T0] * n, dtype="datetime64[us, UTC]")
    frame["failed_at"] = pd.array(np.where(failed, T0, None), dtype="datetime64[us, UTC]")
    frame["price"] = pd.array([None] * n, dtype="Float64")
    frame["billable"] = pd.array([None] * n, dtype="boolean")
    return results, pd.DataFrame(frame)[list(RECEIPT_COLUMNS)]


def best(run: Callable[[], Any], times: int = 3) -> tuple[float, Any]:
    out, seconds = None, []
    for _ in range(times):
        started = time.perf_counter()
        out = run()
        seconds.append(time.perf_counter() - started)
    return min(seconds), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--receipts", type=int, default=3_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"building {args.rows:,} results and {args.receipts:,} receipts...", flush=True)
    results, receipts = make(args.rows, args.receipts, args.seed)
    merge_s, _ = best(lambda: results.merge(receipts, on="message_id", how="left"))
    follow_s, plan = best(lambda: kb.follow_up(results, receipts, now=T0))
    print(f"baseline merge:   {merge_s:6.2f} s")
    print(f"follow_up:        {follow_s:6.2f} s  (target < 5 s)")
    print(f"ratio follow_up/merge: {follow_s / merge_s:.2f}x")
    print("actions:", plan["action"].value_counts().to_dict())


if __name__ == "__main__":
    main()
