"""A fault soak: thousands of rows through 429s, 503s, 500s, resets and late answers."""

from __future__ import annotations

import pandas as pd

from kwa_batch import Emulator, send

ROWS = 2400


def campaign() -> pd.DataFrame:
    personal = pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(ROWS - 400)],
            "body": [f"Hi {i}, your order has shipped" for i in range(ROWS - 400)],
        }
    )
    broadcast = pd.DataFrame(
        {"to": [f"+4479{i:08d}" for i in range(400)], "body": "Our sale starts today"}
    )
    return pd.concat([personal, broadcast], ignore_index=True)


def test_soak_every_row_sent_or_unknown_and_none_twice() -> None:
    faults = {"429": 0.06, "503": 0.06, "500": 0.01, "reset": 0.01, "late": 0.01}
    with Emulator(faults=faults, retry_after=0.02, late_delay=0.6, seed=11) as emu:
        client = emu.client(sender="+911234567890", timeout=(2.0, 0.25))
        results = send(
            campaign(),
            client,
            concurrency=16,
            rate_limit=None,  # random 429s here are faults, not a rate to adapt to
            max_attempts=8,
            backoff=0.005,
            max_backoff=0.05,
            progress=False,
        )
        ledger = emu.messages
        served = emu.faults_injected

    assert len(results) == ROWS
    counts = results["status"].value_counts().to_dict()
    assert set(counts) <= {"sent", "unknown"}, counts
    # Nothing accepted twice: no recipient appears twice in what the server accepted.
    assert not ledger["to"].duplicated().any()
    # Every sent row carries the id the server gave its own recipient.
    sent = results[results["status"] == "sent"]
    by_id = ledger.set_index("message_id")["to"]
    assert (by_id.loc[sent["message_id"]].to_numpy() == sent["to"].to_numpy()).all()
    # Transient refusals were retried to success.
    assert served["429"] > 0
    assert served["503"] > 0
    assert (sent["attempts"] > 1).sum() >= 1
    retried = sent[sent["attempts"] > 1]
    assert len(retried) >= (served["429"] + served["503"]) // 2
    # The ambiguous ones are unknown, with the reason, and were processed exactly once.
    unknown = results[results["status"] == "unknown"]
    assert served["500"] + served["reset"] + served["late"] > 0
    assert set(unknown["error_code"]) <= {"E500", "TIMEOUT", "DROPPED"}
    # An unknown row may have been processed or not: the server's 500s and dropped
    # connections came after it recorded the message; a read timeout (the late faults,
    # or any answer slower than 0.25 s on a busy machine) may come before. Either way no
    # row reached the server twice, and every row the server never saw is such a timeout.
    unseen = unknown[~unknown["to"].isin(ledger["to"])]
    assert set(unseen["error_code"]) <= {"TIMEOUT"}, unseen
    assert len(ledger) == ROWS - len(unseen)
