"""send_follow_ups / kwa-batch follow-up: exactly the rows whose retry is due, once each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import kwa_batch as kb
from kwa_batch.fields import FOLLOW_UP_OF
from kwa_batch.receipts.store import CallbackStore, IncomingMessage, StatusUpdate

SENDER = "+911234567890"
NUMBERS = ["+919876500001", "+919876500002", "+919876500003", "+919876500004", "+919876500005"]

DF = pd.DataFrame(
    {
        "to": NUMBERS,
        "type": "template",
        "template_name": "order_update",
        "params": [f"Customer {n}" for n in range(5)],
        "lang_code": "en",
    }
)


@pytest.fixture
def campaign(tmp_path: Path) -> Iterator[tuple[kb.Emulator, pd.DataFrame, Path, Path]]:
    """A campaign of five template rows sent through the emulator, with a journal; its
    results and an empty receipts store."""
    df = DF
    journal = tmp_path / "campaign.db"
    store = tmp_path / "receipts.db"
    with kb.Emulator() as emu:
        results = kb.send(df, emu.client(), sender=SENDER, journal=journal, progress=False)
        assert results["status"].tolist() == ["sent"] * 5
        CallbackStore(store).close()
        yield emu, results, journal, store


def receipts(store: Path, results: pd.DataFrame, outcomes: list[tuple[str, str | None]],
             at: datetime) -> None:  # fmt: skip
    """Callbacks at ``at`` for the rows in order; the rows' messages left a second before
    (their ``sent_at`` is moved there: a retry's time counts from the latest of the two)."""
    results["sent_at"] = pd.array([at - timedelta(seconds=1)] * len(results),
                                  dtype="datetime64[us, UTC]")  # fmt: skip
    with CallbackStore(store) as opened:
        for (status, code), (_, row) in zip(outcomes, results.iterrows(), strict=True):
            opened.add_status(
                StatusUpdate(
                    row["message_id"], status, at, at, recipient=row["to"], error_code=code
                )
            )


def test_only_the_due_rows_are_sent_and_a_second_run_sends_nothing(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    emu, results, journal, store = campaign
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    receipts(
        store,
        results,
        [
            ("delivered", None),
            ("read", None),
            ("failed", "131049"),
            ("failed", "131026"),
            ("failed", "WA500"),
        ],
        long_ago,
    )
    before = emu.message_count
    updated = kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, progress=False
    )
    assert emu.message_count - before == 2  # the 131049 (25 h ago) and WA500 rows
    retried = updated.index[updated["follow_ups"].eq(1).to_numpy()].tolist()
    assert retried == [2, 4]
    assert (updated.loc[retried, "message_id"] != results.loc[retried, "message_id"]).all()
    assert (
        updated.loc[[0, 1, 3], "message_id"].tolist()
        == results.loc[[0, 1, 3], "message_id"].tolist()
    )
    assert updated.attrs["follow_up"].exit_code == 0
    assert updated.attrs["run"].counts["sent"] == 5

    # Again, on the old results: the journal knows both retries; nothing leaves.
    again = kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, progress=False
    )
    assert emu.message_count - before == 2
    assert again.loc[retried, "message_id"].tolist() == updated.loc[retried, "message_id"].tolist()
    assert again.loc[retried, "from_journal"].all()

    # And on the new results: the retries wait for their receipts.
    plan = kb.follow_up(updated, store)
    assert plan.loc[retried, "action"].tolist() == ["wait", "wait"]
    kb.send_follow_ups(updated, store, emu.client(), journal=journal, data=DF, progress=False)
    assert emu.message_count - before == 2


def test_a_131049_inside_its_first_day_is_not_due(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    emu, results, journal, store = campaign
    receipts(store, results, [("failed", "131049")] * 5, datetime.now(UTC) - timedelta(hours=23))
    before = emu.message_count
    updated = kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, progress=False
    )
    assert emu.message_count == before
    assert updated["follow_ups"].eq(0).all()


def test_a_customer_who_said_stop_since_is_not_retried(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    emu, results, journal, store = campaign
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    receipts(store, results, [("failed", "131049")] * 5, long_ago)
    with CallbackStore(store) as opened:
        opened.add_incoming(
            IncomingMessage("k1", NUMBERS[0], None, long_ago, long_ago, body="STOP")
        )
    before = emu.message_count
    updated = kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, progress=False
    )
    assert emu.message_count - before == 4
    assert updated.loc[0, "follow_ups"] == 0
    assert updated.attrs["follow_up"].counts["rejected"] == 1  # refused as opted out (KWA025)
    assert updated.loc[0, "message_id"] == results.loc[0, "message_id"]


def test_each_retry_counts_against_the_campaigns_daily_limit(
    tmp_path: Path,
) -> None:
    """A daily limit of 2 unique recipients: the campaign sends 2 of 3 rows and holds the
    third (KWA030). Its follow-up is due at once, and the campaign's limit, counted from its
    journal, still holds it; retries to the two already counted fit (unique recipients)."""
    df = pd.DataFrame({"to": NUMBERS[:3], "type": "template", "template_name": "t",
                       "params": "x", "lang_code": "en"})  # fmt: skip
    journal, store = tmp_path / "c.db", tmp_path / "r.db"
    with kb.Emulator() as emu:
        results = kb.send(df, emu.client(), sender=SENDER, journal=journal, progress=False,
                          daily_limit=2)  # fmt: skip
        assert results["status"].tolist() == ["sent", "sent", "not_sent"]
        assert results.loc[2, "error_code"] == "KWA030"
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        with CallbackStore(store) as opened:
            for n in (0, 1):
                opened.add_status(StatusUpdate(results.loc[n, "message_id"], "failed",
                                               hour_ago, hour_ago, error_code="WA500"))  # fmt: skip
        # The campaign left an hour ago (row 2, held, has no time: it is due at once).
        results.loc[[0, 1], "sent_at"] = hour_ago - timedelta(seconds=1)
        plan = kb.follow_up(results, store)
        assert plan["action"].tolist() == ["retry", "retry", "retry"]
        before = emu.message_count
        updated = kb.send_follow_ups(results, store, emu.client(), journal=journal, data=df,
                                     progress=False)  # fmt: skip
        assert emu.message_count - before == 2
        assert updated["follow_ups"].tolist() == [1, 1, 0]
        assert updated.attrs["follow_up"].held == {"KWA030": 1}


def test_the_retry_key_differs_from_the_first_send_and_between_retries() -> None:
    from kwa_batch.fields import message_frame, row_keys

    base = pd.DataFrame({"to": ["+919876500001"] * 3, "body": ["Hi"] * 3})
    keyed = base.assign(**{FOLLOW_UP_OF: [None, "m1:0", "m2:0"]})
    keys = row_keys(message_frame(keyed)).tolist()
    assert len(set(keys)) == 3
    assert keys[0] == row_keys(message_frame(base)).tolist()[0]  # a first send keeps its key


def test_a_stop_code_sends_nothing_until_a_person_says_it_was_checked(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    from kwa_batch.receipts.retrying import StopSending

    emu, results, journal, store = campaign
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    receipts(store, results, [("failed", "131049")] * 4 + [("failed", "131048")], long_ago)
    before = emu.message_count
    with pytest.raises(StopSending, match=r"131048 \(1 row\(s\)\).*stop_checked=True"):
        kb.send_follow_ups(results, store, emu.client(), journal=journal, data=DF, progress=False)
    assert emu.message_count == before
    updated = kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, stop_checked=True, progress=False
    )
    assert emu.message_count - before == 4
    assert updated.loc[4, "follow_ups"] == 0  # the stopped row itself is never retried


def test_a_disabled_template_holds_its_rows_and_a_paused_one_until_its_pause_ends() -> None:
    from kwa_batch.receipts.retrying import held_by_template

    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    plan = pd.DataFrame(
        {
            "template_name": ["a", "a", "b", "b", "c"],
            "action": ["stop", "retry", "retry", "retry", "retry"],
            "decided_by": ["132016", "WA500", "132015", "WA500", "WA500"],
            "retry_at": pd.array(
                [None, now, now + timedelta(hours=2), now, now], dtype="datetime64[us, UTC]"
            ),
        }
    )
    assert held_by_template(plan, now).tolist() == [True, True, True, True, False]
    later = now + timedelta(hours=3)
    assert held_by_template(plan, later).tolist() == [True, True, False, False, False]


def test_a_retry_is_sent_once_even_when_the_second_call_changes_the_message(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    """Review of #19: a second follow-up on the old results with another callback_url (or
    sender) built another content key, and sent the retry again."""
    emu, results, journal, store = campaign
    receipts(store, results, [("failed", "WA500")] * 5, datetime.now(UTC) - timedelta(hours=1))
    before = emu.message_count
    kb.send_follow_ups(results, store, emu.client(), journal=journal, data=DF, progress=False)
    assert emu.message_count - before == 5
    kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, progress=False,
        callback_url="http://127.0.0.1:9/elsewhere", sender="+911234567891",
    )  # fmt: skip
    assert emu.message_count - before == 5


def test_a_retry_key_is_its_attempt_and_number_only() -> None:
    from kwa_batch.fields import message_frame, row_keys

    one = pd.DataFrame({"to": ["+919876500001"], "body": ["Hi"], FOLLOW_UP_OF: ["m1:0"]})
    other = one.assign(body="Hello", callback_url="http://127.0.0.1:9/cb")
    assert row_keys(message_frame(one)).tolist() == row_keys(message_frame(other)).tolist()
    elsewhere = one.assign(to="+919876500002")
    assert row_keys(message_frame(one)).tolist() != row_keys(message_frame(elsewhere)).tolist()


def test_a_row_held_for_its_template_does_not_stop_the_other_rows(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    """Review of #19: a KWA034 row (held by its template's pause) counted as a stop of the
    number, and nothing was sent."""
    emu, results, journal, store = campaign
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    receipts(store, results, [("sent", None)] + [("failed", "WA500")] * 4, hour_ago)
    held = results.copy()
    held.loc[0, ["status", "message_id", "error_code"]] = ["not_sent", pd.NA, "KWA034"]
    held["sent_at"] = results["sent_at"]
    before = emu.message_count
    updated = kb.send_follow_ups(
        held, store, emu.client(), journal=journal, data=DF, progress=False
    )
    assert emu.message_count - before == 4
    assert updated.loc[0, "follow_ups"] == 0


def test_another_campaigns_recent_stop_code_holds_the_follow_ups_too(
    campaign: tuple[kb.Emulator, pd.DataFrame, Path, Path],
) -> None:
    """Review of #19: a follow-up from cron sent into a number that another campaign's
    131048 (an hour ago) said to stop."""
    from kwa_batch.receipts.retrying import StopSending

    emu, results, journal, store = campaign
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    receipts(store, results, [("failed", "WA500")] * 5, hour_ago)
    with CallbackStore(store) as opened:
        opened.add_status(StatusUpdate("other:0", "failed", hour_ago, hour_ago,
                                       error_code="131048"))  # fmt: skip
    before = emu.message_count
    with pytest.raises(StopSending, match=r"131048 \(1 callback\(s\)\) in the last 24 hours"):
        kb.send_follow_ups(results, store, emu.client(), journal=journal, data=DF, progress=False)
    assert emu.message_count == before
    kb.send_follow_ups(
        results, store, emu.client(), journal=journal, data=DF, stop_checked=True, progress=False
    )
    assert emu.message_count - before == 5


def test_a_recent_stop_for_one_of_several_numbers_holds_the_follow_ups() -> None:
    import tempfile

    from kwa_batch.receipts.retrying import _recent_stops

    at = datetime.now(UTC) - timedelta(minutes=5)
    path = Path(tempfile.mkdtemp()) / "r.db"
    with CallbackStore(path) as opened:
        opened.add_status(StatusUpdate("x:0", "failed", at, at, error_code="131048",
                                       business="+911234567891"))  # fmt: skip
    assert _recent_stops(path, "+911234567890,+911234567891") is not None
    assert _recent_stops(path, "+911234567890") is None  # another number's stop
    assert _recent_stops(path, "+91 12345 67891") is not None  # as written, not as stored
