"""follow_up: the outcome policy's action, time and reason beside each row of a campaign.

The callbacks are posted over real HTTP to a real ``kwa-batch receive`` process, in both
formats the facts file gives (a GET query, a POST JSON body).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import start_receive
from test_actions import EXPECTED

import kwa_batch as kb
from kwa_batch.actions import Action
from kwa_batch.errors import KwaBatchError
from kwa_batch.receipts.follow_up import FOLLOW_UP_COLUMNS
from kwa_batch.receipts.store import CallbackStore, StatusUpdate

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
# WhatsApp's codes arrive in status callbacks; Kaleyra's v1/v2 codes in the send answer.
CALLBACK_CODES = sorted(c for c in EXPECTED if c[0].isdigit())
ANSWER_CODES = sorted(c for c in EXPECTED if not c[0].isdigit())


def number(n: int) -> str:
    return f"+9198765{n:05d}"


@pytest.fixture(scope="module")
def receive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real ``kwa-batch receive`` process: its callback URL and its store."""
    store = tmp_path_factory.mktemp("receive") / "receipts.db"
    env = {k: v for k, v in os.environ.items() if k != "KWA_RECEIVER_TOKEN"}
    proc, _, url = start_receive(store, env)
    try:
        yield url, store
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def post_failures(url: str, codes: list[str], offset: int, *, as_json: bool) -> dict[str, str]:
    """A ``sent`` then a ``failed`` callback per code; the message id of each code."""
    ids = {}
    with requests.Session() as http:
        for n, code in enumerate(codes):
            message_id = f"{'json' if as_json else 'get'}-{code}:0"
            ids[code] = message_id
            for status, extra in (("sent", {}), ("failed", {"error_code": code, "error": "x"})):
                fields = {
                    "id": message_id,
                    "status": status,
                    "mobile": number(offset + n)[1:],
                    "timestamp": str(int(T0.timestamp())),
                    **extra,
                }
                if as_json:
                    answer = http.post(url, json=fields, timeout=10)
                else:
                    answer = http.get(url, params=fields, timeout=10)
                assert answer.status_code == 200, answer.text
    return ids


def sent_rows(ids: dict[str, str], offset: int) -> pd.DataFrame:
    codes = list(ids)
    return pd.DataFrame(
        {
            "to": [number(offset + n) for n in range(len(codes))],
            "status": "sent",
            "message_id": [ids[c] for c in codes],
            "error_code": pd.array([None] * len(codes), dtype="string"),
            "sent_at": pd.array([T0] * len(codes), dtype="datetime64[us, UTC]"),
        },
        index=pd.Index(codes, name="code"),
    )


@pytest.mark.parametrize("as_json", [False, True], ids=["GET query", "POST JSON"])
def test_each_callback_code_gets_the_action_of_the_table(
    receive: tuple[str, Path], as_json: bool
) -> None:
    url, store = receive
    offset = 500 if as_json else 0
    ids = post_failures(url, CALLBACK_CODES, offset, as_json=as_json)
    plan = kb.follow_up(sent_rows(ids, offset), store, now=T0)
    got = dict(zip(plan.index, plan["action"], strict=True))
    assert got == {code: EXPECTED[code].value for code in CALLBACK_CODES}
    assert (plan["decided_by"] == plan.index.to_series()).all()


def test_each_answer_code_gets_the_action_of_the_table() -> None:
    results = pd.DataFrame(
        {
            "to": [number(n) for n in range(len(ANSWER_CODES))],
            "status": "failed",
            "message_id": pd.array([None] * len(ANSWER_CODES), dtype="string"),
            "error_code": ANSWER_CODES,
            "sent_at": pd.array([T0] * len(ANSWER_CODES), dtype="datetime64[us, UTC]"),
        }
    )
    plan = kb.follow_up(results, _empty_receipts(), now=T0)
    assert plan["action"].tolist() == [EXPECTED[c].value for c in ANSWER_CODES]


@pytest.fixture(autouse=True)
def _stores(tmp_path: Path) -> Iterator[None]:
    """Where :func:`_store_with` makes its stores; each is closed after the test."""
    _OPEN.append((tmp_path, []))
    yield
    for store in _OPEN.pop()[1]:
        store.close()


_OPEN: list[tuple[Path, list[CallbackStore]]] = []


def _store_with(updates: list[StatusUpdate]) -> CallbackStore:
    folder, opened = _OPEN[-1]
    store = CallbackStore(folder / f"r{len(opened)}.db")
    opened.append(store)
    for update in updates:
        store.add_status(update)
    return store


def _empty_receipts() -> pd.DataFrame:
    return kb.load_receipts(_store_with([]))


def failed(message_id: str, code: str, to: str, at: datetime = T0) -> StatusUpdate:
    return StatusUpdate(message_id, "failed", at, at, recipient=to, error_code=code)


def test_the_row_keeps_its_index_order_attrs_and_gets_the_columns() -> None:
    results = pd.DataFrame(
        {
            "to": [number(1), number(2)],
            "status": ["sent", "rejected"],
            "message_id": ["m1:0", None],
            "error_code": [None, "E13009"],
            "sent_at": pd.array([T0, None], dtype="datetime64[us, UTC]"),
        },
        index=pd.Index([7, 3]),
    )
    results.attrs["source"] = "x.csv"
    plan = kb.follow_up(results, _store_with([]), now=T0)
    assert list(plan.index) == [7, 3]
    assert plan.attrs == {"source": "x.csv"}
    assert tuple(plan.columns[-4:]) == FOLLOW_UP_COLUMNS
    assert plan["action"].tolist() == ["wait", "fix"]
    assert str(plan["retry_at"].dtype) == "datetime64[us, UTC]"


def test_delivered_and_read_are_done_and_a_later_stop_does_not_change_that() -> None:
    store = _store_with(
        [
            StatusUpdate("m1:0", "delivered", T0, T0, recipient=number(1)),
            StatusUpdate("m2:0", "read", T0, T0, recipient=number(2)),
        ]
    )
    from kwa_batch.receipts.store import IncomingMessage

    store.add_incoming(
        IncomingMessage("k", number(2), None, T0 + timedelta(hours=1), T0, body="STOP")
    )
    results = pd.DataFrame(
        {
            "to": [number(1), number(2)],
            "status": "sent",
            "message_id": ["m1:0", "m2:0"],
            "sent_at": pd.array([T0, T0], dtype="datetime64[us, UTC]"),
        }
    )
    plan = kb.follow_up(results, store)
    assert plan["action"].tolist() == ["done", "done"]
    assert number(2) in set(kb.opt_outs(store)["number"])  # an opt-out for what comes next


def test_131049_waits_a_day_then_two_then_four_then_gives_up() -> None:
    to = number(9)
    updates = []
    expected = [
        (T0 + timedelta(hours=24), "retry"),
        (T0 + timedelta(hours=48), "retry"),
        (T0 + timedelta(hours=96), "retry"),
        (None, "final"),
    ]
    for k, (at, action) in enumerate(expected):
        updates.append(failed(f"m{k}:0", "131049", to))
        results = pd.DataFrame(
            {
                "to": [to],
                "status": "sent",
                "message_id": [f"m{k}:0"],
                "sent_at": pd.array([T0], dtype="datetime64[us, UTC]"),
            }
        )
        plan = kb.follow_up(results, _store_with(updates)).iloc[0]
        assert plan["action"] == action, k
        if at is None:
            assert pd.isna(plan["retry_at"])
            assert "no more retries" in plan["reason"]
        else:
            assert plan["retry_at"] == at, k
            assert plan["retry_at"] - T0 >= timedelta(hours=24)  # never within a day


def test_131049_to_a_us_number_is_final_but_canada_is_retried() -> None:
    us, canada = "+14155550123", "+16135550123"  # San Francisco, Ottawa
    store = _store_with([failed("u:0", "131049", us), failed("c:0", "131049", canada)])
    results = pd.DataFrame(
        {
            "to": [us, canada],
            "status": "sent",
            "message_id": ["u:0", "c:0"],
            "sent_at": pd.array([T0, T0], dtype="datetime64[us, UTC]"),
        }
    )
    plan = kb.follow_up(results, store)
    assert plan["action"].tolist() == ["final", "retry"]
    assert "US numbers" in plan["reason"].iloc[0]


def test_wa500_retries_after_5_then_10_then_15_minutes_then_final() -> None:
    results = pd.DataFrame(
        {
            "to": [number(1)] * 4,
            "status": "failed",
            "message_id": pd.array([None] * 4, dtype="string"),
            "error_code": "WA500",
            "sent_at": pd.array([T0] * 4, dtype="datetime64[us, UTC]"),
            "follow_ups": [0, 1, 2, 3],
        }
    )
    plan = kb.follow_up(results, _store_with([]))
    assert plan["action"].tolist() == ["retry", "retry", "retry", "final"]
    assert (plan["retry_at"].iloc[:3] - T0).tolist() == [
        timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15)
    ]  # fmt: skip


def test_receipts_match_either_form_of_the_message_id() -> None:
    store = _store_with(
        [
            StatusUpdate("bare", "delivered", T0, T0),
            StatusUpdate("long:0", "read", T0, T0),
        ]
    )
    results = pd.DataFrame(
        {
            "to": [number(1), number(2)],
            "status": "sent",
            "message_id": ["bare:0", "long"],
            "sent_at": pd.array([T0, T0], dtype="datetime64[us, UTC]"),
        }
    )
    assert kb.follow_up(results, store)["action"].tolist() == ["done", "done"]


def test_an_unknown_code_is_final_with_the_code_kept() -> None:
    store = _store_with([failed("m:0", "424242", number(1))])
    results = pd.DataFrame(
        {
            "to": [number(1)],
            "status": "sent",
            "message_id": ["m:0"],
            "sent_at": pd.array([T0], dtype="datetime64[us, UTC]"),
        }
    )
    row = kb.follow_up(results, store).iloc[0]
    assert (row["action"], row["decided_by"]) == ("final", "424242")
    assert "424242" in row["reason"]


def test_rows_never_sent_are_due_now_or_final_by_their_code() -> None:
    results = pd.DataFrame(
        {
            "to": [number(1), number(2), number(3), number(4)],
            "status": ["not_sent", "not_sent", "unknown", "rejected"],
            "message_id": pd.array([None] * 4, dtype="string"),
            "error_code": ["KWA027", "KWA029", "TIMEOUT", "KWA004"],
            "sent_at": pd.array([None] * 4, dtype="datetime64[us, UTC]"),
        }
    )
    plan = kb.follow_up(results, _store_with([]), now=T0)
    assert plan["action"].tolist() == ["retry", "final", "wait", "fix"]
    assert plan["retry_at"].iloc[0] == T0
    assert Action.WAIT.value in plan["action"].tolist()  # TIMEOUT: never resent blindly


def test_results_without_the_needed_columns_are_refused_by_name() -> None:
    with pytest.raises(KwaBatchError, match="no message_id, sent_at column"):
        kb.follow_up(pd.DataFrame({"to": ["+1"], "status": ["sent"]}), _store_with([]))


def test_a_131049_of_long_ago_starts_no_count() -> None:
    to = number(8)
    last_year = T0 - timedelta(days=365)
    store = _store_with(
        [failed(f"old{k}:0", "131049", to, last_year + timedelta(days=k)) for k in range(3)]
        + [failed("now:0", "131049", to)]
    )
    results = pd.DataFrame(
        {
            "to": [to],
            "status": "sent",
            "message_id": ["now:0"],
            "sent_at": pd.array([T0], dtype="datetime64[us, UTC]"),
        }
    )
    row = kb.follow_up(results, store).iloc[0]
    assert (row["action"], row["retry_at"]) == ("retry", T0 + timedelta(hours=24))


def test_receipts_that_are_not_receipts_are_refused_by_name() -> None:
    results = pd.DataFrame(
        {
            "to": [number(1)],
            "status": ["sent"],
            "message_id": ["m:0"],
            "sent_at": pd.array([T0], dtype="datetime64[us, UTC]"),
        }
    )
    with pytest.raises(KwaBatchError, match="receipts have no error_code, failed_at"):
        kb.follow_up(results, pd.DataFrame({"message_id": ["m:0"], "status": ["read"],
                                            "recipient": [number(1)]}))  # fmt: skip


def test_a_code_the_table_does_not_know_is_judged_by_the_rows_own_status() -> None:
    results = pd.DataFrame(
        {
            "to": [number(n) for n in range(5)],
            "status": ["not_sent", "unknown", "failed", "failed", "failed"],
            "message_id": pd.array([None] * 5, dtype="string"),
            "error_code": ["E429", "X1", "E429", "E503", "E999"],
            "http_status": pd.array([429, None, 429, 503, 400], dtype="Int64"),
            "sent_at": pd.array([None] * 5, dtype="datetime64[us, UTC]"),
        }
    )
    plan = kb.follow_up(results, _store_with([]), now=T0)
    # Never sent: safe to send again; may have gone out: wait; too fast: retry; a server
    # error may have gone out: wait; a refusal with a code nobody knows: final.
    assert plan["action"].tolist() == ["retry", "wait", "retry", "wait", "final"]
    assert plan["decided_by"].tolist() == ["E429", "X1", "E429", "E503", "E999"]
    assert "never sent" in plan["reason"].iloc[0]


def _one_sent(message_id: str = "m:0", to: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "to": [to or number(1)],
            "status": ["sent"],
            "message_id": [message_id],
            "sent_at": pd.array([T0], dtype="datetime64[us, UTC]"),
        }
    )


@pytest.mark.parametrize(
    "updates",
    [
        # the two id forms report apart: a failure under one, read under the other
        [("X", "failed", "131049"), ("X:0", "read", None)],
        # a failure received after delivered
        [("X:0", "delivered", None), ("X:0", "failed", "131049")],
    ],
    ids=["id forms apart", "failed after delivered"],
)
def test_a_message_delivered_or_read_is_done_whatever_else_was_said(
    updates: list[tuple[str, str, str | None]],
) -> None:
    store = _store_with(
        [
            StatusUpdate(
                mid,
                status,
                T0 + timedelta(seconds=k),
                T0 + timedelta(seconds=k),
                recipient=number(1),
                error_code=code,
            )
            for k, (mid, status, code) in enumerate(updates)
        ]
    )
    row = kb.follow_up(_one_sent("X:0"), store).iloc[0]
    assert row["action"] == "done"
    assert pd.isna(row["retry_at"])


def test_a_callback_timestamp_in_the_past_never_brings_a_retry_within_a_day_of_sending() -> None:
    store = _store_with([failed("m:0", "131049", number(1), datetime(2020, 1, 1, tzinfo=UTC))])
    row = kb.follow_up(_one_sent(), store).iloc[0]
    assert row["retry_at"] == T0 + timedelta(hours=24)


def test_a_row_without_any_time_to_retry_is_due_now_not_always_later() -> None:
    results = _one_sent().assign(
        status="failed", message_id=pd.NA, error_code="WA500",
        sent_at=pd.array([None], dtype="datetime64[us, UTC]"),
    )  # fmt: skip
    row = kb.follow_up(results, _store_with([]), now=T0).iloc[0]
    assert (row["action"], row["retry_at"]) == ("retry", T0)


def test_a_hand_edited_sent_at_is_no_traceback() -> None:
    results = _one_sent().assign(status="failed", error_code="WA500", message_id=pd.NA)
    results["sent_at"] = pd.array(["garbage"], dtype="string")
    row = kb.follow_up(results, _store_with([]), now=T0).iloc[0]
    assert (row["action"], row["retry_at"]) == ("retry", T0)


def test_a_repeated_index_is_refused_in_one_line() -> None:
    results = pd.concat([_one_sent(), _one_sent()])
    with pytest.raises(KwaBatchError, match="repeated labels"):
        kb.follow_up(results, _store_with([]))


def test_empty_results_give_an_empty_plan() -> None:
    plan = kb.follow_up(_one_sent().iloc[:0], _store_with([]))
    assert plan.empty
    assert tuple(plan.columns[-4:]) == FOLLOW_UP_COLUMNS
