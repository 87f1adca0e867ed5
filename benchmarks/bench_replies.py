"""replies() on a large campaign: a million results and a million replies.

The campaign: ``--rows`` results (default 1,000,000), nine in ten ``sent`` with a message id
and a time, the rest ``failed``; ``--replies`` incoming messages (default 1,000,000), a
third carrying the id of the message they answer (half of those in the ``<uuid>`` form of a
``<uuid>:0`` id), the rest tied by the last message before them, one in fifty a STOP or a
"Stop promotions" tap and one in two hundred a START, Mexican numbers half in their
``+52 1`` wa_id form. Warmed once, then timed best of 3, with the replies tied to rows and
the opt-outs counted (so that a run that ties nothing is seen).

Checked against a small hand-made case in tests/receipts/test_replies.py; this measures.

    $ .venv/bin/python benchmarks/bench_replies.py [--rows 1000000] [--replies 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from kwa_batch.receipts.replies import replies

T0 = pd.Timestamp("2026-11-30 09:00", tz="UTC")


def campaign(rows: int, seed: int = 1) -> pd.DataFrame:
    """``rows`` results over 200,000 numbers (Indian, and one in ten Mexican)."""
    rng = np.random.default_rng(seed)
    people = rng.integers(0, 200_000, rows)
    mexican = people % 10 == 0
    to = np.where(
        mexican,
        pd.Series(people).map(lambda n: f"+5255{n:08d}"),
        pd.Series(people).map(lambda n: f"+9198{n:08d}"),
    )
    sent = rng.random(rows) < 0.9
    return pd.DataFrame(
        {
            "to": pd.array(to, dtype="str"),
            "status": pd.array(np.where(sent, "sent", "failed"), dtype="str"),
            "message_id": pd.array(
                [f"{i:032x}:0" if ok else None for i, ok in enumerate(sent)], dtype="str"
            ),
            "sent_at": (T0 + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s")).where(sent),
        }
    )


def incoming(results: pd.DataFrame, count: int, seed: int = 2) -> pd.DataFrame:
    """``count`` replies to rows of ``results`` (see the module docs)."""
    rng = np.random.default_rng(seed)
    sent = results[results["status"] == "sent"].reset_index(drop=True)
    picked = sent.iloc[rng.integers(0, len(sent), count)].reset_index(drop=True)
    customer = picked["to"].str.replace(r"^\+52", "+521", regex=True)
    customer = customer.where(rng.random(count) < 0.5, picked["to"])
    with_id = rng.random(count) < 1 / 3
    short = rng.random(count) < 0.5
    ids = picked["message_id"].where(~short, picked["message_id"].str.removesuffix(":0"))
    kind = rng.random(count)
    body = np.where(
        kind < 0.01, "STOP", np.where(kind < 0.02, "Stop promotions", "Thanks, see you")
    )
    body = np.where(kind > 0.995, "START", body)
    payload = np.where((kind >= 0.01) & (kind < 0.02), "STOP_PROMOTIONS", None)
    return pd.DataFrame(
        {
            "customer": pd.array(customer, dtype="str"),
            "business": pd.array(["+911234567890"] * count, dtype="str"),
            "at": picked["sent_at"] + pd.to_timedelta(rng.integers(1, 3_600, count), unit="s"),
            "body": pd.array(body, dtype="str"),
            "payload": pd.array(payload, dtype="str"),
            "reply_to": pd.array(ids.where(with_id), dtype="str"),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--replies", type=int, default=1_000_000)
    args = parser.parse_args()
    results = campaign(args.rows)
    received = incoming(results, args.replies)
    replies(results.head(1000), received.head(1000))  # warm
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        tied = replies(results, received)
        best = min(best, time.perf_counter() - start)
    print(
        f"replies(): {args.rows:,} results, {args.replies:,} replies in {best:.2f} s "
        f"(best of 3); {int(tied['replies'].sum()):,} replies tied to "
        f"{int(tied['replied'].sum()):,} rows, {int(tied['opted_out'].sum()):,} rows opted out"
    )


if __name__ == "__main__":
    main()
