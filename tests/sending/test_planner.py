"""Planning: identical messages share a request, personalised ones do not."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SENDER

from kwa_batch import ConfigurationError, validate
from kwa_batch.fields import message_frame, row_keys
from kwa_batch.sending.planner import plan_requests


def numbers(n: int) -> list[str]:
    return [f"+9198765{i:05d}" for i in range(n)]


def test_broadcast_is_grouped_by_100_in_input_order() -> None:
    df = pd.DataFrame({"to": numbers(250), "body": "Sale starts today"})
    requests = list(plan_requests(message_frame(validate(df, sender=SENDER).valid)))
    assert [len(r) for r in requests] == [100, 100, 50]
    assert requests[0].labels[:3] == [0, 1, 2]
    assert requests[2].labels[-1] == 249
    assert requests[0].form()["to"].split(",")[:2] == numbers(2)
    assert requests[0].fields == {
        "from": SENDER,
        "type": "text",
        "channel": "whatsapp",
        "body": "Sale starts today",
    }


def test_personalised_rows_go_one_per_request_and_groups_keep_first_appearance() -> None:
    df = pd.DataFrame(
        {"to": numbers(5), "body": ["A", "Hi Ann", "A", "Hi Bob", "A"], "ref": [None] * 5}
    )
    requests = list(plan_requests(message_frame(validate(df, sender=SENDER).valid)))
    assert [r.labels for r in requests] == [[0, 2, 4], [1], [3]]


def test_any_differing_field_separates_messages() -> None:
    df = pd.DataFrame({"to": numbers(3), "body": "Same", "ref": ["c1", "c2", "c1"]})
    requests = list(plan_requests(message_frame(validate(df, sender=SENDER).valid)))
    assert [r.labels for r in requests] == [[0, 2], [1]]


def test_grouping_can_be_turned_off() -> None:
    df = pd.DataFrame({"to": numbers(4), "body": "Same"})
    requests = list(
        plan_requests(message_frame(validate(df, sender=SENDER).valid), max_recipients=1)
    )
    assert [len(r) for r in requests] == [1, 1, 1, 1]


def test_split_gives_one_request_per_recipient() -> None:
    df = pd.DataFrame({"to": numbers(3), "body": "Same"})
    (request,) = plan_requests(message_frame(validate(df, sender=SENDER).valid))
    parts = request.split()
    assert [p.labels for p in parts] == [[0], [1], [2]]
    assert all(p.fields == request.fields for p in parts)


@pytest.mark.parametrize("bad", [0, 101])
def test_max_recipients_out_of_range(bad: int) -> None:
    df = pd.DataFrame({"to": numbers(1), "body": "x"})
    with pytest.raises(ConfigurationError, match="between 1 and 100"):
        plan_requests(message_frame(validate(df, sender=SENDER).valid), max_recipients=bad)


def test_no_sender_is_refused_before_planning() -> None:
    df = pd.DataFrame({"to": numbers(2), "body": "x"})
    with pytest.raises(ConfigurationError, match="2 row\\(s\\) have no sender"):
        plan_requests(message_frame(validate(df).valid))


def test_row_keys_depend_on_recipient_and_message_only() -> None:
    df = pd.DataFrame(
        {"to": [*numbers(2), numbers(1)[0]], "body": ["a", "a", "b"], "name": ["x", "y", "z"]}
    )
    frame = message_frame(validate(df, sender=SENDER).valid)
    keys = row_keys(frame)
    assert keys[0] != keys[1]  # another recipient
    assert keys[0] != keys[2]  # another body
    renamed = frame.assign(name=["other", "names", "here"])
    assert row_keys(renamed).equals(keys)  # columns outside the message do not count
    assert keys.str.len().eq(32).all()
