"""Conversation windows: who wrote in the last 24 hours, and which text rows need a template."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch import errors
from kwa_batch.errors import ERROR_CODES, describe_code
from kwa_batch.receipts.conversations import WINDOW_COLUMNS, open_windows
from kwa_batch.receipts.store import CallbackStore, IncomingMessage
from kwa_batch.validation.window_checks import CLOSED_WINDOW_CODE, closed_window_rows

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PRIYA = "+919876543210"
OLIVIA = "+447911123456"
ARJUN = "+919845012345"
OTHER_SENDER = "+919000000001"


def incoming(customer: str, business: str | None, hours: float) -> IncomingMessage:
    when = T0 + timedelta(hours=hours)
    key = hashlib.sha256(f"{customer}{business}{when}".encode()).hexdigest()
    return IncomingMessage(
        key=key, customer=customer, business=business, at=when, received_at=when, body="Hi"
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallbackStore]:
    with CallbackStore(tmp_path / "receipts.db") as opened:
        opened.add_incoming(incoming(PRIYA, SENDER, 0))
        opened.add_incoming(incoming(PRIYA, SENDER, 2))  # her latest message
        opened.add_incoming(incoming(OLIVIA, None, 1))  # business number not given
        opened.add_incoming(incoming(ARJUN, OTHER_SENDER, 0))
        yield opened


def test_open_windows_lists_one_window_per_pair(store: CallbackStore) -> None:
    windows = open_windows(store, now=T0 + timedelta(hours=3))
    assert tuple(windows.columns) == WINDOW_COLUMNS
    rows = {
        (w.business_number if isinstance(w.business_number, str) else None, w.recipient)
        for w in windows.itertuples()
    }
    assert rows == {(SENDER, PRIYA), (None, OLIVIA), (OTHER_SENDER, ARJUN)}
    priya = windows.set_index("recipient").loc[PRIYA]
    assert priya["last_message_at"] == T0 + timedelta(hours=2)
    assert priya["expires_at"] == T0 + timedelta(hours=26)
    assert str(windows["expires_at"].dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize(
    ("hours", "open_to"),
    [
        (-1, set()),  # before anyone wrote
        (0.5, {PRIYA, ARJUN}),
        (23.9, {PRIYA, OLIVIA, ARJUN}),
        (24.5, {PRIYA, OLIVIA}),  # Arjun's window closed; Priya's was extended
        (25.5, {PRIYA}),
        (26, set()),  # expired exactly now: closed
    ],
)
def test_windows_close_24_hours_after_the_last_message(
    store: CallbackStore, hours: float, open_to: set[str]
) -> None:
    windows = open_windows(store, now=T0 + timedelta(hours=hours))
    assert set(windows["recipient"]) == open_to


def test_open_windows_accepts_naive_and_text_times(store: CallbackStore) -> None:
    naive = open_windows(store, now=datetime(2024, 5, 1, 13, 0))
    text = open_windows(store, now="2024-05-01 13:00")
    assert naive.equals(text)
    assert set(naive["recipient"]) == {PRIYA, OLIVIA, ARJUN}


def test_open_windows_of_an_empty_store(tmp_path: Path) -> None:
    with CallbackStore(tmp_path / "empty.db") as empty:
        windows = open_windows(empty)
    assert windows.empty
    assert tuple(windows.columns) == WINDOW_COLUMNS


# -- closed_window_rows ---------------------------------------------------------------------


@pytest.fixture
def windows(store: CallbackStore) -> pd.DataFrame:
    return open_windows(store, now=T0 + timedelta(hours=3))


NOW = T0 + timedelta(hours=3)


@pytest.mark.parametrize(
    ("to", "sender", "kind", "closed"),
    [
        (PRIYA, SENDER, "text", False),  # she wrote to this business number
        (PRIYA, OTHER_SENDER, "text", True),  # ...but not to this one
        (PRIYA, None, "text", False),  # the row has no sender: any of her windows counts
        (PRIYA, SENDER, "template", False),  # templates need no window
        (OLIVIA, OTHER_SENDER, "text", False),  # her window names no business: any sender
        (ARJUN, OTHER_SENDER, "text", False),
        (ARJUN, SENDER, "text", True),
        ("+14155550123", SENDER, "text", True),  # never wrote
        ("+14155550123", SENDER, "template", False),
        ("+14155550123", SENDER, " Text ", True),
        ("+14155550123", SENDER, None, False),  # no type: nothing to judge
        ("12345", SENDER, "text", False),  # not E.164: validation reports it already
        (None, SENDER, "text", False),
        (PRIYA, "not a number", "text", False),
    ],
)
def test_closed_window_rows(
    windows: pd.DataFrame, to: str | None, sender: str | None, kind: str | None, closed: bool
) -> None:
    valid = pd.DataFrame(
        {"to": [to], "from": [sender], "type": [kind]}, index=pd.Index([42], name="row")
    )
    result = closed_window_rows(valid, windows, now=NOW)
    assert result.dtype == bool
    assert result.index.equals(valid.index)
    assert result.tolist() == [closed]


def test_windows_that_expired_since_they_were_listed_count_as_closed(
    windows: pd.DataFrame,
) -> None:
    valid = pd.DataFrame({"to": [PRIYA, ARJUN], "from": [SENDER, OTHER_SENDER], "type": "text"})
    assert closed_window_rows(valid, windows, now=NOW).tolist() == [False, False]
    later = T0 + timedelta(hours=25)
    assert closed_window_rows(valid, windows, now=later).tolist() == [False, True]


def test_without_windows_every_text_row_is_flagged() -> None:
    empty = pd.DataFrame(
        {
            "business_number": pd.Series(dtype="str"),
            "recipient": pd.Series(dtype="str"),
            "expires_at": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )
    valid = pd.DataFrame({"to": [PRIYA, PRIYA], "type": ["text", "template"]}, index=[5, 2])
    result = closed_window_rows(valid, empty)
    assert result.to_dict() == {5: True, 2: False}


def test_closed_window_rows_on_a_validated_frame(windows: pd.DataFrame) -> None:
    df = pd.DataFrame(
        {
            "to": ["+91 98765 43210", "+1 415 555 0123", "+1 415 555 0123"],
            "body": ["Your order shipped", "Hello", None],
            "template_name": [None, None, "order_shipped"],
        }
    )
    report = kb.validate(df, sender=SENDER)
    assert report.ok
    closed = closed_window_rows(report.valid, windows, now=NOW)
    assert closed.tolist() == [False, True, False]


def test_the_closed_window_code_is_in_the_table() -> None:
    entry = ERROR_CODES[CLOSED_WINDOW_CODE]
    assert entry.source == "local"
    assert "template" in describe_code(CLOSED_WINDOW_CODE)
    assert len(errors.Code.__members__) == len(errors.Code), "an error code is listed twice"


def test_a_message_dated_after_its_arrival_counts_from_its_arrival(tmp_path: Path) -> None:
    ahead = IncomingMessage(
        key="ahead", customer=PRIYA, business=SENDER, at=T0 + timedelta(hours=5), received_at=T0
    )
    with CallbackStore(tmp_path / "skew.db") as skewed:
        skewed.add_incoming(ahead)
        windows = open_windows(skewed, now=T0 + timedelta(minutes=1))
    assert windows["expires_at"].tolist() == [T0 + timedelta(hours=24)]


def test_validate_flags_text_rows_without_a_window(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with CallbackStore(tmp_path / "r.db") as opened:
        opened.add_incoming(
            IncomingMessage(
                key="k1",
                customer=PRIYA,
                business=SENDER,
                at=now - timedelta(hours=1),
                received_at=now - timedelta(hours=1),
                body="Hi",
            )
        )
    windows = open_windows(tmp_path / "r.db")
    df = pd.DataFrame(
        {
            "to": [PRIYA, OLIVIA, OLIVIA],
            "type": ["text", "text", "template"],
            "body": ["Thanks for writing", "Hello out of the blue", None],
            "template_name": [None, None, "order_shipped"],
        }
    )
    report = kb.validate(df, sender=SENDER, windows=windows)
    assert list(report.valid.index) == [0, 2]
    assert report.invalid.loc[1, "error_code"] == CLOSED_WINDOW_CODE
    assert "template" in report.errors.loc[0, "message"]
    assert kb.validate(df, sender=SENDER).ok  # without windows nothing is checked
