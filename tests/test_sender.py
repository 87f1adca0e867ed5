"""send(): statuses, nothing sent twice, nothing lost, against the real emulator."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from conftest import SENDER

from kwa_batch import (
    STATUSES,
    ConfigurationError,
    Emulator,
    KaleyraClient,
    load_recipients,
    send,
    validate,
)
from kwa_batch.sender import RateLimiter


def frame(n: int, prefix: str = "+9198765") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": pd.array([f"{prefix}{i:05d}" for i in range(n)], dtype="str"),
            "body": pd.array([f"Hello {i}" for i in range(n)], dtype="str"),
        }
    )


def test_sample_file_end_to_end(fresh_emulator: Emulator, sample_csv) -> None:
    df = load_recipients(sample_csv)
    report = validate(df, sender=SENDER)
    results = send(report, fresh_emulator.client(), concurrency=4, progress=False)
    assert list(results.index) == list(df.index)
    assert set(results["status"]) == {"sent", "rejected"}
    sent = results[results["status"] == "sent"]
    assert len(sent) == len(report.valid) == 15
    assert sent["message_id"].notna().all()
    assert (sent["http_status"] == 200).all()
    assert (sent["attempts"] == 1).all()
    ledger = fresh_emulator.messages
    assert sorted(ledger["message_id"]) == sorted(sent["message_id"])
    assert not ledger["to"].isin(["+919811122233", "+919845012399"]).any()  # rows 17, 18
    assert (ledger["to"] == "+919876543210").sum() == 1  # row 19 repeats row 0: sent once
    rejected = results[results["status"] == "rejected"]
    assert rejected["error_code"].tolist() == ["E13009", "KWA004", "E413", "KWA001", "KWA007"]
    assert rejected.loc[16, "to"] == "9.19876543210E+11"  # as written
    assert results.loc[1, "to"] == "+919845012345"  # normalised


def test_results_have_contract_columns_and_dtypes(fresh_emulator: Emulator) -> None:
    results = send(frame(3), fresh_emulator.client(sender=SENDER), progress=False)
    for name in (
        "to",
        "status",
        "message_id",
        "error_code",
        "error_message",
        "http_status",
        "attempts",
        "sent_at",
    ):
        assert name in results.columns
    assert str(results["http_status"].dtype) == "Int64"
    assert str(results["attempts"].dtype) == "Int64"
    assert str(results["sent_at"].dt.tz) == "UTC"
    assert set(results["status"]) <= set(STATUSES)
    assert results.attrs["run"]["concurrency"] == 8


def test_a_dataframe_is_validated_first_and_invalid_rows_never_sent(
    fresh_emulator: Emulator,
) -> None:
    df = frame(4)
    df.loc[2, "to"] = "not a number"
    results = send(df, fresh_emulator.client(sender=SENDER), progress=False)
    assert results.loc[2, "status"] == "rejected"
    assert results.loc[2, "attempts"] == 0
    assert len(fresh_emulator.messages) == 3


def test_api_refusal_is_failed_with_the_code(fresh_emulator: Emulator) -> None:
    df = frame(2)
    df["ref"] = pd.array(["ok", "ok"], dtype="str")
    client = fresh_emulator.client(sender="+911234567890")
    # A sender the client accepts locally but the API refuses: skip local checks via a report.
    report = validate(df, sender=SENDER)
    report.valid.loc[1, "from"] = "+1"
    results = send(report, client, progress=False)
    assert results.loc[0, "status"] == "sent"
    assert results.loc[1, "status"] == "failed"
    assert results.loc[1, "error_code"] == "E13008"
    assert results.loc[1, "http_status"] == 400


def test_wrong_key_stops_the_run_and_nothing_is_lost(fresh_emulator: Emulator) -> None:
    client = KaleyraClient(fresh_emulator.sid, "wrong", sender=SENDER, base_url=fresh_emulator.url)
    results = send(frame(50), client, concurrency=2, progress=False)
    assert (results["status"] == "not_sent").all()
    assert results["error_code"].str.startswith(("E401", "HTTP401")).all()
    assert fresh_emulator.requests_seen <= 4  # stopped at once, not 50 attempts
    assert len(fresh_emulator.messages) == 0


def test_unreachable_api_is_not_sent_after_safe_retries() -> None:
    client = KaleyraClient("HX", "k", sender=SENDER, base_url="http://127.0.0.1:9")
    results = send(frame(3), client, progress=False, max_attempts=3, backoff=0.01)
    assert (results["status"] == "not_sent").all()
    assert (results["error_code"] == "CONNECT").all()
    assert (results["attempts"] == 3).all()


def test_timeout_is_unknown_and_never_resent() -> None:
    with Emulator(latency=0.4) as emu:
        client = emu.client(sender=SENDER, timeout=(2, 0.05))
        results = send(frame(3), client, progress=False, max_attempts=5, backoff=0.01)
        time.sleep(0.6)
        assert (results["status"] == "unknown").all()
        assert (results["error_code"] == "TIMEOUT").all()
        assert (results["attempts"] == 1).all()
        assert len(emu.messages) == 3  # each accepted exactly once


def test_rows_without_any_sender_are_a_configuration_error(fresh_emulator: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="no sender"):
        send(frame(2), fresh_emulator.client(), progress=False)
    assert fresh_emulator.requests_seen == 0


def test_rate_limit_is_never_exceeded_in_any_second(fresh_emulator: Emulator) -> None:
    start = time.monotonic()
    results = send(
        frame(30),
        fresh_emulator.client(sender=SENDER),
        rate_limit=20,
        concurrency=8,
        progress=False,
    )
    elapsed = time.monotonic() - start
    assert (results["status"] == "sent").all()
    assert elapsed >= 1.0  # 30 messages at 20/s need more than one second
    times = results["sent_at"].sort_values().reset_index(drop=True)
    window = pd.Timedelta(seconds=1)
    # Answers can lag the sends, so allow the concurrency on top of the rate.
    worst = max(((times >= t) & (times < t + window)).sum() for t in times)
    assert worst <= 20 + 8


def test_rate_limiter_window_is_exact() -> None:
    clock = [0.0]
    limiter = RateLimiter(5, clock=lambda: clock[0])
    import threading

    stop = threading.Event()
    for _ in range(5):
        assert limiter.acquire(1, stop)
    stop.set()
    assert limiter.acquire(1, stop) is False  # a sixth in the same second must wait
    clock[0] = 1.0
    stop.clear()
    assert limiter.acquire(5, stop)
