"""Settings as objects (#18): kb.Pacing, kb.Schedule and kb.Retries, checked when made; the
keywords of earlier versions make the same run; an object and its keyword together are
refused; estimate, the dry run and send size requests from the same Pacing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.cli import cli
from kwa_batch.pricing import describe

# The run's record of its settings (results.attrs["run"]), as both forms must leave it.
SETTINGS = (
    "rate_limit",
    "concurrency",
    "max_concurrency",
    "per_recipient_interval",
    "max_recipients_per_request",
    "max_attempts",
    "retry_ambiguous",
    "resend_unknown",
    "not_before",
)
OUTCOME = ["status", "error_code", "error_message", "attempts", "recipients"]


def same_message(n: int) -> pd.DataFrame:
    """``n`` recipients of one text: one request of up to 100, unless sized smaller."""
    return pd.DataFrame({"to": [f"+4479111{i:05d}" for i in range(n)], "body": "Our sale"})


def report(n: int) -> kb.ValidationReport:
    return kb.validate(same_message(n), sender=SENDER)


SOON = datetime.now(UTC) + timedelta(days=2)


@pytest.mark.parametrize(
    ("keywords", "objects", "inject"),
    [
        (
            {"rate_limit": None, "max_recipients_per_request": 7, "per_recipient_interval": 0},
            {"pacing": kb.Pacing(None, max_recipients_per_request=7, per_recipient_interval=0)},
            None,
        ),
        (
            {"not_before": SOON, "rate_limit": 1000},
            {"schedule": kb.Schedule(not_before=SOON), "pacing": kb.Pacing(rate_limit=1000)},
            None,
        ),
        (
            {"max_attempts": 2, "backoff": 0},
            {"retries": kb.Retries(max_attempts=2, backoff=0)},
            "503",
        ),
    ],
    ids=["pacing", "schedule", "retries"],
)
def test_the_old_keywords_and_the_objects_make_the_same_run(
    emulator: kb.Emulator,
    keywords: dict[str, Any],
    objects: dict[str, Any],
    inject: str | None,
) -> None:
    runs = []
    for given in (keywords, objects):
        emulator.reset()
        if inject:
            emulator.inject(inject, times=10)
        results = kb.send(report(20), emulator.client(), progress=False, **given)
        runs.append((results, emulator.requests_seen))
    (old, old_seen), (new, new_seen) = runs
    pd.testing.assert_frame_equal(old[OUTCOME], new[OUTCOME])
    assert old_seen == new_seen
    assert {k: old.attrs["run"].settings.get(k) for k in SETTINGS} == {
        k: new.attrs["run"].settings.get(k) for k in SETTINGS
    }
    if "max_recipients_per_request" in keywords:
        assert old["request_id"].nunique() == 3  # 20 rows in requests of 7, 7 and 6
    if "not_before" in keywords:
        assert set(new["error_code"]) == {"KWA028"}
    if "max_attempts" in keywords:
        assert set(new["attempts"]) == {2}
        assert new["error_message"].str.contains("gave up after 2 attempts").all()


@pytest.mark.parametrize(
    ("objects", "keyword", "said"),
    [
        ({"pacing": kb.Pacing()}, {"rate_limit": 5}, "rate_limit is part of pacing, given twice"),
        (
            {"schedule": kb.Schedule(daily_limit=10)},
            {"quiet_hours": "21:00-09:00"},
            "quiet_hours is part of schedule",
        ),
        ({"retries": kb.Retries()}, {"max_attempts": 1}, "max_attempts is part of retries"),
        ({"pacing": 80}, {}, "pacing=80): give a kb.Pacing(...), e.g. pacing=kb.Pacing("),
    ],
)
def test_an_object_and_one_of_its_keywords_together_are_refused(
    emulator: kb.Emulator, objects: dict[str, Any], keyword: dict[str, Any], said: str
) -> None:
    emulator.reset()
    with pytest.raises(kb.ConfigurationError) as refused:
        kb.send(report(2), emulator.client(), progress=False, **objects, **keyword)
    assert said in str(refused.value)
    assert emulator.requests_seen == 0
    if "retries" not in objects:  # estimate takes pacing and schedule the same way
        with pytest.raises(kb.ConfigurationError, match=r"given twice|give a kb\.Pacing"):
            kb.estimate(report(2), **objects, **keyword)


def test_the_fix_given_for_a_conflict_works() -> None:
    pacing = kb.Pacing(concurrency=4)
    fixed = dataclasses.replace(pacing, rate_limit=5)
    assert (fixed.rate_limit, fixed.concurrency) == (5.0, 4)


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda: kb.Pacing(rate_limit=0),
            "Pacing(rate_limit=0): give at least 1 message per second, or None for no limit",
        ),
        (lambda: kb.Pacing(rate_limit=float("inf")), "Pacing(rate_limit=inf)"),
        (lambda: kb.Pacing(concurrency=2.5), "Pacing(concurrency=2.5): give a whole number"),
        (lambda: kb.Pacing(max_concurrency=0), "Pacing(max_concurrency=0): give a whole number"),
        (
            lambda: kb.Pacing(per_recipient_interval=-1),
            "Pacing(per_recipient_interval=-1): give zero or more seconds (0: no spacing)",
        ),
        (
            lambda: kb.Pacing(max_recipients_per_request=101),
            "Pacing(max_recipients_per_request=101): give a whole number between 1 and 100",
        ),
        (lambda: kb.Retries(max_attempts=0), "Retries(max_attempts=0): give a whole number"),
        (lambda: kb.Retries(backoff=-0.5), "Retries(backoff=-0.5): give zero or more seconds"),
        (lambda: kb.Retries(retry_ambiguous="yes"), "Retries(retry_ambiguous='yes'): give True"),  # type: ignore[arg-type]
        (lambda: kb.Schedule(quiet_hours="9pm-9am"), "quiet hours '9pm-9am': write them as"),
        (lambda: kb.Schedule(daily_limit=0), "Schedule(daily_limit=0): give a whole number"),
        (lambda: kb.Schedule(daily_limit=2.5), "Schedule(daily_limit=2.5): give a whole number"),
        (lambda: kb.Schedule(expires="400d"), "from 0 to 366 days"),
        (lambda: kb.Schedule(not_before=datetime(2027, 6, 1)), "give a timezone-aware datetime"),
    ],
)
def test_bad_values_are_refused_when_made(make: Any, said: str) -> None:
    with pytest.raises(kb.ConfigurationError) as refused:
        make()
    assert said in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_daily_limit_read_from_a_frame_is_taken_as_an_int() -> None:
    """A NumPy integer (a value read from a frame) is a daily limit, as it is a rate."""
    import numpy as np

    schedule = kb.Schedule(daily_limit=np.int64(250))
    assert schedule.daily_limit == 250
    assert type(schedule.daily_limit) is int


def test_settings_are_frozen_values_with_their_defaults() -> None:
    pacing = kb.Pacing()
    with pytest.raises(dataclasses.FrozenInstanceError):
        pacing.rate_limit = 1000  # type: ignore[misc]
    assert pacing == kb.Pacing(rate_limit=80, per_recipient_interval=6)
    assert (pacing.max_concurrency, pacing.max_recipients_per_request) == (256, 100)
    assert kb.Retries() == kb.Retries(4, 0.5, 30.0, False, False)
    assert not kb.Schedule().active
    schedule = kb.Schedule(quiet_hours=" 21:00 - 09:00 ", expires="6h")
    assert (schedule.quiet_hours, schedule.expires) == ("21:00-09:00", timedelta(hours=6))
    assert schedule.active


def test_numbers_from_numpy_are_taken_as_plain_numbers() -> None:
    """A setting read from a frame (``df["rate"].max()``) is a NumPy number."""
    pacing = kb.Pacing(rate_limit=np.int64(100), concurrency=np.int64(3))
    assert (pacing.rate_limit, pacing.concurrency) == (100.0, 3)
    assert type(pacing.concurrency) is int
    retries = kb.Retries(max_attempts=np.int64(2), retry_ambiguous=np.bool_(True))
    assert (retries.max_attempts, retries.retry_ambiguous) == (2, True)
    assert type(retries.retry_ambiguous) is bool


def test_a_retry_waits_within_its_backoff_and_its_cap() -> None:
    retries = kb.Retries(backoff=1, max_backoff=4)
    assert 0.5 <= retries.delay(1) <= 1.0
    assert 2.0 <= retries.delay(5) <= 4.0  # 16 s, capped at 4 (with jitter)
    assert retries.delay(1, at_least=100) == 16.0  # a Retry-After, up to four times the cap


@pytest.mark.parametrize(
    ("pacing", "requests"),
    [
        (kb.Pacing(rate_limit=None, max_recipients_per_request=7, per_recipient_interval=0), 7),
        (kb.Pacing(rate_limit=30, per_recipient_interval=0), 2),  # groups of 30, not 100
    ],
)
def test_estimate_and_send_size_requests_from_the_same_pacing(
    emulator: kb.Emulator, pacing: kb.Pacing, requests: int
) -> None:
    planned = report(45)
    summary = kb.estimate(planned, pacing=pacing).attrs["summary"]
    emulator.reset()
    results = kb.send(planned, emulator.client(), pacing=pacing, progress=False)
    assert summary["requests"] == results["request_id"].nunique() == requests
    assert results["recipients"].max() == pacing.request_size


def test_an_estimate_without_a_rate_limit_gives_no_duration() -> None:
    """It once timed a run without a limit at 80/s (the CLI's --rate none)."""
    summary = kb.estimate(report(3), pacing=kb.Pacing(rate_limit=None)).attrs["summary"]
    assert summary["rate_limit"] is None
    assert summary["duration_seconds"] is None
    assert "no rate limit" in describe(summary, rate_card=False)[0]
    summary = kb.estimate(report(3), rate_limit=2).attrs["summary"]  # the old keyword
    assert (summary["rate_limit"], summary["duration_seconds"]) == (2.0, 1.5)


def test_estimate_refuses_what_is_not_its_setting() -> None:
    with pytest.raises(TypeError, match="max_attempts"):
        kb.estimate(report(1), max_attempts=2)


def test_the_dry_run_plans_the_requests_send_makes(runner: CliRunner, write_csv) -> None:
    """At --rate 2, four rows of one message go in two requests of two (the dry run once
    showed one request of four, and the estimate agreed with send)."""
    rows = "".join(f"+4479111{i:05d},Our sale\n" for i in range(4))
    result = runner.invoke(
        cli,
        ["send", str(write_csv("to,body\n" + rows)), "--dry-run", "--from", SENDER,
         "--rate", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Dry run: 4 message(s) in 2 request(s)" in result.output
    assert "Estimate: 4 message(s) to 4 recipient(s) in 2 request(s)" in result.output
    result = runner.invoke(
        cli,
        ["send", str(write_csv("to,body\n" + rows)), "--dry-run", "--from", SENDER,
         "--rate", "none"],
    )  # fmt: skip
    assert "in 1 request(s) (no rate limit" in result.output


def test_a_misspelt_keyword_is_named_as_sends_own() -> None:
    """rate_limt=5 reached validate() and was refused in its name, not send()'s."""
    frame = pd.DataFrame({"to": ["+919876543210"], "body": ["Hi"]})
    client = kb.KaleyraClient("HXSID", "key", sender="+911234567890")
    with pytest.raises(
        TypeError, match=r"send\(\) got unexpected keyword argument\(s\) 'rate_limt'"
    ):
        kb.send(frame, client, rate_limt=5, progress=False)
