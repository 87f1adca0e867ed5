"""Receipts: one per message, whose status never goes backwards; merged next to each row."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwa_batch.errors import InputError, KwaBatchError
from kwa_batch.receipts.delivery import RECEIPT_COLUMNS, _receipts, load_receipts, merge_receipts
from kwa_batch.receipts.receiver import parse_callback
from kwa_batch.receipts.store import (
    STATUS_RANK,
    STORE_VERSION,
    CallbackStore,
    IncomingMessage,
    StatusUpdate,
)
from kwa_batch.results import DELIVERY_COLUMNS, NO_CALLBACK_URL, NO_RECEIPT, delivery_counts

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def update(message_id: str, status: str, second: int, **extra: Any) -> StatusUpdate:
    """A status update that happened at T0 + second and was received then too."""
    when = T0 + timedelta(seconds=second)
    return StatusUpdate(message_id=message_id, status=status, at=when, received_at=when, **extra)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallbackStore]:
    with CallbackStore(tmp_path / "receipts.db") as opened:
        yield opened


def receipt_after(store: CallbackStore, statuses: list[str]) -> pd.Series:
    for second, status in enumerate(statuses):
        store.add_status(update("m:0", status, second, error_code=f"E-{status}"))
    receipts = load_receipts(store)
    assert len(receipts) == 1
    return receipts.iloc[0]


# -- status order ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(["sent", "delivered", "read"])))
def test_read_wins_in_any_arrival_order(store: CallbackStore, order: tuple[str, ...]) -> None:
    receipt = receipt_after(store, list(order))
    assert receipt["status"] == "read"
    # Each step keeps the time of its own callback, whenever it arrived.
    for status in ("sent", "delivered", "read"):
        assert receipt[f"{status}_at"] == T0 + timedelta(seconds=order.index(status))
    assert pd.isna(receipt["error_code"])  # only a final failure carries one


@pytest.mark.parametrize("order", list(itertools.permutations(["sent", "delivered", "failed"])))
def test_failed_is_final_in_any_arrival_order(store: CallbackStore, order: tuple[str, ...]) -> None:
    receipt = receipt_after(store, list(order))
    assert receipt["status"] == "failed"
    assert receipt["error_code"] == "E-failed"
    assert receipt["failed_at"] == T0 + timedelta(seconds=order.index("failed"))


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["delivered", "sent"], "delivered"),  # a late 'sent' changes nothing
        (["read", "delivered"], "read"),
        (["sent", "read"], "read"),  # read without a 'delivered' callback
        (["failed", "read"], "failed"),
        (["not-sent", "failed"], "not-sent"),  # the first final status wins
        (["failed", "not-sent"], "failed"),
        (["delivered", "deleted"], "delivered"),  # an unknown status never wins
        (["deleted"], "deleted"),  # ...but is kept when it is all there is
    ],
)
def test_status_never_goes_backwards(store: CallbackStore, order: list[str], expected: str) -> None:
    assert receipt_after(store, order)["status"] == expected


def test_a_late_sent_changes_nothing_but_its_own_time(store: CallbackStore) -> None:
    before = receipt_after(store, ["delivered"])
    after = receipt_after(store, ["delivered", "sent"])  # the repeat 'delivered' is ignored
    assert after["status"] == before["status"] == "delivered"
    assert after["delivered_at"] == before["delivered_at"]
    assert pd.isna(before["sent_at"])
    assert not pd.isna(after["sent_at"])


def test_the_same_update_twice_is_one_record(store: CallbackStore) -> None:
    assert store.add_status(update("m:0", "delivered", 0))
    assert not store.add_status(update("m:0", "delivered", 5))  # a repeat, even later
    assert store.counts()["status_updates"] == 1
    assert load_receipts(store).iloc[0]["delivered_at"] == T0


@given(
    st.lists(st.sampled_from(sorted(STATUS_RANK)), min_size=1, max_size=5, unique=True),
    st.randoms(use_true_random=False),
)
def test_the_status_is_the_furthest_whatever_the_order(
    statuses: list[str], rng: random.Random
) -> None:
    shuffled = list(statuses)
    rng.shuffle(shuffled)
    rows = [update("m:0", s, i) for i, s in enumerate(shuffled)]
    updates = pd.DataFrame(
        {
            "message_id": pd.array([r.message_id for r in rows], dtype="str"),
            "status": pd.array([r.status for r in rows], dtype="str"),
            "at": pd.array([r.at for r in rows], dtype="datetime64[us, UTC]"),
            "received_at": pd.array([r.received_at for r in rows], dtype="datetime64[us, UTC]"),
            **{
                name: pd.array([None] * len(rows), dtype="str")
                for name in (
                    "recipient",
                    "error_code",
                    "error",
                    "ref",
                    "ref1",
                    "ref2",
                    "pricing_category",
                    "business",
                )
            },
            "price": pd.array([None] * len(rows), dtype="Float64"),
            "billable": pd.array([None] * len(rows), dtype="boolean"),
        }
    )
    status = _receipts(updates).iloc[0]["status"]
    best = max(STATUS_RANK[s] for s in statuses)
    first_best = next(s for s in shuffled if STATUS_RANK[s] == best)
    assert status == first_best


# -- load_receipts --------------------------------------------------------------------------


def test_load_receipts_columns_and_types(store: CallbackStore) -> None:
    store.add_status(update("b:0", "sent", 0, recipient="+919876543210", ref="CUST-1"))
    store.add_status(update("a:0", "failed", 1, error_code="131026", error="Undeliverable"))
    store.add_status(update("b:0", "delivered", 2))
    receipts = load_receipts(store)
    assert tuple(receipts.columns) == RECEIPT_COLUMNS
    assert receipts["message_id"].tolist() == ["b:0", "a:0"]  # by first callback
    assert receipts["status"].tolist() == ["delivered", "failed"]
    assert receipts["recipient"].tolist()[0] == "+919876543210"
    assert receipts["ref"].tolist()[0] == "CUST-1"
    assert receipts["updated_at"].tolist() == [T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)]
    for name in ("sent_at", "delivered_at", "read_at", "failed_at", "updated_at"):
        assert str(receipts[name].dtype) == "datetime64[us, UTC]", name
    for name in ("message_id", "status", "error_code"):
        assert pd.api.types.is_string_dtype(receipts[name].dtype), name


def test_load_receipts_of_an_empty_store(store: CallbackStore) -> None:
    receipts = load_receipts(store)
    assert receipts.empty
    assert tuple(receipts.columns) == RECEIPT_COLUMNS
    assert str(receipts["read_at"].dtype) == "datetime64[us, UTC]"


def test_load_receipts_from_a_path_leaves_no_store_behind(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(InputError, match="no such callback store"):
        load_receipts(missing)
    assert not missing.exists()
    not_a_store = tmp_path / "notes.db"
    not_a_store.write_text("hello " * 200)
    with pytest.raises(InputError, match="not a callback store"):
        load_receipts(not_a_store)


# -- merge_receipts -------------------------------------------------------------------------


@pytest.fixture
def results() -> pd.DataFrame:
    """A results frame in the order of its input, with an index that is not 0..n-1."""
    frame = pd.DataFrame(
        {
            "to": ["+919876543210", "+14155550123", "bad", "+447911123456"],
            "status": ["sent", "sent", "rejected", "sent"],
            "message_id": pd.array(["b:0", "c:0", None, "a:0"], dtype="str"),
        },
        index=pd.Index([10, 3, 7, 1], name="row"),
    )
    frame.attrs["run"] = {"started_at": "2024-05-01T12:00:00+00:00"}
    return frame


def test_merge_puts_each_receipt_next_to_its_row(
    store: CallbackStore, results: pd.DataFrame
) -> None:
    store.add_status(update("a:0", "delivered", 1))
    store.add_status(update("a:0", "read", 2))
    store.add_status(update("b:0", "failed", 3, error_code="131026"))
    store.add_status(update("z:0", "read", 4))  # a message of another run
    original = results.copy()
    merged = merge_receipts(results, load_receipts(store))
    assert merged.index.equals(results.index)
    assert list(merged.columns) == [*results.columns, *DELIVERY_COLUMNS]
    assert merged["delivery_status"].tolist()[0] == "failed"
    assert merged["delivery_error_code"].tolist()[0] == "131026"
    assert merged.loc[1, "delivery_status"] == "read"
    assert merged.loc[1, "delivered_at"] == T0 + timedelta(seconds=1)
    assert merged.loc[1, "read_at"] == T0 + timedelta(seconds=2)
    for row in (3, 7):  # no receipt yet; never sent
        assert merged.loc[row, DELIVERY_COLUMNS].isna().all(), row
    assert str(merged["read_at"].dtype) == "datetime64[us, UTC]"
    assert merged.attrs == results.attrs
    pd.testing.assert_frame_equal(results, original)  # the input is not changed


def test_merging_again_replaces_the_delivery_columns(
    store: CallbackStore, results: pd.DataFrame
) -> None:
    store.add_status(update("a:0", "delivered", 1))
    first = merge_receipts(results, store)
    store.add_status(update("a:0", "read", 2))
    second = merge_receipts(first, store)
    assert list(second.columns) == list(first.columns)
    assert second.loc[1, "delivery_status"] == "read"


def test_merge_with_an_empty_store(store: CallbackStore, results: pd.DataFrame) -> None:
    merged = merge_receipts(results, load_receipts(store))
    assert merged[list(DELIVERY_COLUMNS)].isna().all(axis=None)


def test_merge_needs_message_ids(store: CallbackStore) -> None:
    with pytest.raises(KwaBatchError, match="message_id"):
        merge_receipts(pd.DataFrame({"to": ["+919876543210"]}), store)


def test_delivery_counts(store: CallbackStore, results: pd.DataFrame) -> None:
    store.add_status(update("a:0", "read", 1))
    store.add_status(update("b:0", "deleted", 1))
    counts = delivery_counts(merge_receipts(results, store))
    assert counts.to_dict() == {
        "sent": 0,
        "delivered": 0,
        "read": 1,
        "failed": 0,
        "not-sent": 0,
        "deleted": 1,
        NO_RECEIPT: 1,
    }


def test_messages_sent_without_a_callback_url_are_told_apart() -> None:
    merged = pd.DataFrame(
        {
            "message_id": ["a:0", "b:0", "c:0", None],
            "callback_url": ["http://127.0.0.1:8765/callback", None, "http://x/cb", None],
            "delivery_status": pd.array(["read", None, None, None], dtype="string"),
        }
    )
    counts = delivery_counts(merged)
    assert counts["read"] == 1
    assert counts[NO_RECEIPT] == 1  # asked for, not come yet
    assert counts[NO_CALLBACK_URL] == 1  # will never come
    assert counts.sum() == 3  # the row never sent is not counted


# -- the store's format ---------------------------------------------------------------------

_VERSION_1 = """
CREATE TABLE status_updates (message_id TEXT NOT NULL, status TEXT NOT NULL, at TEXT NOT NULL,
    received_at TEXT NOT NULL, recipient TEXT, error_code TEXT, error TEXT, ref TEXT,
    ref1 TEXT, ref2 TEXT, PRIMARY KEY (message_id, status));
CREATE TABLE incoming_messages (key TEXT PRIMARY KEY, customer TEXT NOT NULL, business TEXT,
    at TEXT NOT NULL, received_at TEXT NOT NULL, type TEXT, name TEXT, body TEXT,
    media_url TEXT);
INSERT INTO status_updates VALUES ('m:0', 'delivered', '2026-12-01T10:00:00.000000+00:00',
    '2026-12-01T10:00:01.000000+00:00', '+919876543210', NULL, NULL, NULL, NULL, NULL);
PRAGMA user_version = 1;
"""


def test_a_store_of_the_first_format_gets_the_new_columns_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_VERSION_1)
    receipts = load_receipts(path)
    assert receipts["status"].tolist() == ["delivered"]
    assert receipts["price"].isna().all()
    assert receipts["business"].isna().all()
    with CallbackStore(path) as store:
        assert store.add_status(
            update("m:1", "delivered", 0, price=0.0125, business="+911234567890")
        )
    again = load_receipts(path).set_index("message_id")
    assert again.loc["m:1", "price"] == 0.0125
    assert again.loc["m:1", "business"] == "+911234567890"
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_VERSION


def test_a_store_of_a_newer_format_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_VERSION_1.replace("user_version = 1", "user_version = 99"))
    with pytest.raises(InputError, match=r"newer format \(99"):
        load_receipts(path)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("0.0045", 0.0045), ("0", 0.0), ("-1", None), ("nan", None), ("inf", None), ("€1", None)],
)
def test_a_callback_price_is_a_number_of_zero_or_more_or_nothing(
    given: str, stored: float | None
) -> None:
    parsed = parse_callback({"id": "m:0", "status": "delivered", "price": given})
    assert isinstance(parsed, StatusUpdate)
    assert parsed.price == stored


def test_a_reply_keeps_the_message_it_answers_and_its_button_payload() -> None:
    parsed = parse_callback(
        {
            "from": "919876543210",
            "type": "button",
            "body": "Stop promotions",
            "reply_to": "abc:0",
            "payload": "STOP_PROMOTIONS",
        }
    )
    assert isinstance(parsed, IncomingMessage)
    assert (parsed.reply_to, parsed.payload) == ("abc:0", "STOP_PROMOTIONS")


def test_message_ids_match_with_and_without_their_recipient_suffix() -> None:
    from kwa_batch.receipts.store import message_key, message_keys

    assert message_key(" 5f2c:0 ") == message_key("5f2c") == "5f2c"
    assert message_key("wamid.HBgL:0A") == "wamid.HBgL:0A"
    keys = message_keys(pd.Series(["5f2c:0", "5f2c", None, "a:01"], dtype="str"))
    assert keys.tolist()[:2] == ["5f2c", "5f2c"]
    assert pd.isna(keys.iloc[2])
    assert keys.iloc[3] == "a:01"


def test_merge_matches_either_form_of_the_message_id(store: CallbackStore) -> None:
    store.add_status(update("bare", "read", 0))
    store.add_status(update("long:0", "delivered", 0))
    results = pd.DataFrame({"message_id": ["bare:0", "long", None]})
    merged = merge_receipts(results, store)
    assert merged["delivery_status"].tolist()[:2] == ["read", "delivered"]
    assert pd.isna(merged["delivery_status"].iloc[2])
