"""kb.replies: each reply tied to the row whose message it answers, through a real Receiver
over HTTP; STOP replies and "Stop promotions" taps as opt-outs that the next campaign's
validation suppresses, and START lifting them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.errors import InputError, KwaBatchError
from kwa_batch.receipts.replies import REPLY_COLUMNS
from kwa_batch.receipts.store import CallbackStore, IncomingMessage

DEADLINE = 10.0
# A campaign an hour ago, to the minute (callback times are Unix seconds).
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
ASHA, RAVI, MARIA = "+919876543210", "+919812345678", "+525512345678"
OTHER_SENDER = "+911111111111"


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + timedelta(minutes=minutes))


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[kb.Receiver]:
    with kb.Receiver(tmp_path / "receipts.db") as running:
        yield running


def results_of(*rows: tuple[str, str, str | None, float | None]) -> pd.DataFrame:
    """Results as send() gives them: (to, status, message_id, minutes after T0 sent)."""
    return pd.DataFrame(
        {
            "to": pd.array([r[0] for r in rows], dtype="string"),
            "status": pd.array([r[1] for r in rows], dtype="string"),
            "message_id": pd.array([r[2] for r in rows], dtype="string"),
            "sent_at": pd.array(
                [at(r[3]) if r[3] is not None else pd.NaT for r in rows],
                dtype="datetime64[us, UTC]",
            ),
        },
        index=pd.Index([f"row{i}" for i in range(len(rows))]),
    )


def reply(
    receiver: kb.Receiver,
    customer: str,
    minutes: float,
    *,
    text: str | None = None,
    button: tuple[str, str] | None = None,
    answers: str | None = None,
    business: str = SENDER,
) -> None:
    """Post a v2 incoming-message callback: ``customer`` wrote ``text`` (or tapped
    ``button`` = (text, payload)) ``minutes`` after T0, answering message ``answers``."""
    message: dict[str, Any] = {
        "from": customer.lstrip("+"),
        "id": f"wamid.{customer}.{minutes}.{text or button}",
        "timestamp": str(int(at(minutes).timestamp())),
    }
    if button is not None:
        message |= {"type": "button", "button": {"text": button[0], "payload": button[1]}}
    else:
        message |= {"type": "text", "text": {"body": text}}
    if answers is not None:
        message["context"] = {"id": answers}
    document = {
        "meta_object": {
            "value": {
                "metadata": {"display_phone_number": business.lstrip("+")},
                "messages": [message],
            }
        }
    }
    answer = requests.post(receiver.callback_url, json=document, timeout=DEADLINE)
    assert answer.status_code == 200, answer.text


def test_a_reply_that_names_its_message_is_tied_to_that_row(receiver: kb.Receiver) -> None:
    results = results_of(
        (ASHA, "sent", "aaaa-1:0", 0), (ASHA, "sent", "aaaa-2:0", 10), (RAVI, "sent", "b:0", 0)
    )
    # Answers the first message although a later one went to the same number; the id
    # without its ':0' is the same message.
    reply(receiver, ASHA, 20, button=("Yes, book it", "BOOK"), answers="aaaa-1")
    tied = kb.replies(results, receiver.store)
    assert list(tied.columns) == list(REPLY_COLUMNS)
    assert tied.index.equals(results.index)
    assert tied["replied"].tolist() == [True, False, False]
    assert tied.loc["row0", ["reply", "reply_payload", "replies"]].tolist() == [
        "Yes, book it", "BOOK", 1
    ]  # fmt: skip
    assert tied.loc["row0", "replied_at"] == at(20)
    assert tied["opted_out"].tolist() == [False, False, False]


def test_a_reply_without_an_id_is_tied_to_the_last_message_before_it(
    receiver: kb.Receiver,
) -> None:
    results = results_of(
        (ASHA, "sent", "a1:0", 0),
        (ASHA, "sent", "a2:0", 30),
        (ASHA, "failed", None, 40),
        (ASHA, "sent", "a3:0", 60),
    )
    reply(receiver, ASHA, 10, text="Who is this?")
    reply(receiver, ASHA, 35, text="Thanks")
    reply(receiver, ASHA, 36, text="Great")
    tied = kb.replies(results, receiver.store)
    assert tied["replies"].tolist() == [1, 2, 0, 0]
    assert tied["reply"].tolist()[:2] == ["Who is this?", "Thanks"]  # the first of each
    assert tied["replied_at"].tolist()[:2] == [at(10), at(35)]
    assert tied["replied"].tolist() == [True, True, False, False]


def test_a_reply_before_any_message_or_to_another_campaign_is_tied_to_nothing(
    receiver: kb.Receiver,
) -> None:
    results = results_of((ASHA, "sent", "a1:0", 30), (RAVI, "sent", "r1:0", 0))
    reply(receiver, ASHA, 5, text="Hello?")  # before the campaign wrote to her
    reply(receiver, RAVI, 10, text="Sure", answers="wamid.of-another-campaign")
    reply(receiver, "+447911123456", 10, text="Who?")  # no message to that number
    tied = kb.replies(results, receiver.store)
    assert not tied["replied"].any()
    assert tied["replies"].sum() == 0
    assert tied["reply"].isna().all()
    assert tied["replied_at"].isna().all()


def test_numbers_match_in_their_wa_id_forms(receiver: kb.Receiver) -> None:
    results = results_of((MARIA, "sent", "m1:0", 0))
    reply(receiver, "+5215512345678", 5, text="Hola")  # WhatsApp's +52 1 form
    assert kb.replies(results, receiver.store)["replied"].tolist() == [True]


def test_the_business_number_decides_when_both_say_it(receiver: kb.Receiver) -> None:
    results = results_of((ASHA, "sent", "a1:0", 0), (ASHA, "sent", "a2:0", 10))
    results["from"] = pd.array([SENDER, OTHER_SENDER], dtype="string")
    reply(receiver, ASHA, 20, text="About my order", business=SENDER)
    tied = kb.replies(results, receiver.store)
    assert tied["replied"].tolist() == [True, False]  # not the later one, from another number
    # Without the results' sender, the last message before it.
    tied = kb.replies(results.drop(columns="from"), receiver.store)
    assert tied["replied"].tolist() == [False, True]


def test_a_repeated_callback_is_one_reply(receiver: kb.Receiver) -> None:
    results = results_of((ASHA, "sent", "a1:0", 0))
    reply(receiver, ASHA, 5, text="Yes")
    reply(receiver, ASHA, 5, text="Yes")
    assert kb.replies(results, receiver.store)["replies"].tolist() == [1]


def test_the_incoming_messages_frame_works_as_the_store_does(receiver: kb.Receiver) -> None:
    results = results_of((ASHA, "sent", "a1:0", 0), (RAVI, "sent", "r1:0", 0))
    reply(receiver, RAVI, 5, text="ok")
    frame = receiver.store.incoming_messages()
    pd.testing.assert_frame_equal(kb.replies(results, frame), kb.replies(results, receiver.store))


def test_stop_and_a_stop_promotions_tap_opt_out_and_the_next_campaign_suppresses_them(
    receiver: kb.Receiver,
) -> None:
    results = results_of(
        (ASHA, "sent", "a1:0", 0), (RAVI, "sent", "r1:0", 0), (MARIA, "sent", "m1:0", 0)
    )
    reply(receiver, ASHA, 5, text="STOP")
    reply(receiver, RAVI, 6, button=("Stop promotions", "STOP_PROMOTIONS"), answers="r1")
    reply(receiver, MARIA, 7, text="Stop by the shop tomorrow")  # not an opt-out
    tied = kb.replies(results, receiver.store)
    assert tied["opted_out"].tolist() == [True, True, False]
    assert tied.loc["row1", ["reply", "reply_payload"]].tolist() == [
        "Stop promotions", "STOP_PROMOTIONS"
    ]  # fmt: skip

    found = kb.opt_outs(receiver.store).set_index("number")
    assert found.index.tolist() == [RAVI, ASHA]
    assert found.loc[RAVI, ["how", "detail"]].tolist() == ["button", "Stop promotions"]
    assert found.loc[ASHA, ["how", "detail"]].tolist() == ["reply", "STOP"]

    campaign = pd.DataFrame({"to": [ASHA, RAVI, MARIA], "body": ["Sale!"] * 3})
    report = kb.validate(campaign, sender=SENDER, suppress=kb.OptOutSource(receiver.store.path))
    assert report.invalid["to"].tolist() == [ASHA, RAVI]
    assert set(report.errors["error_code"]) == {"KWA025"}
    assert report.valid["to"].tolist() == [MARIA]

    # START lifts it; a message sent after the STOP is not "opted out after it" either.
    reply(receiver, RAVI, 8, text="START")
    assert kb.replies(results, receiver.store)["opted_out"].tolist() == [True, False, False]
    report = kb.validate(campaign, sender=SENDER, suppress=kb.OptOutSource(receiver.store.path))
    assert report.invalid["to"].tolist() == [ASHA]
    later = results_of((ASHA, "sent", "a9:0", 9))
    assert kb.replies(later, receiver.store)["opted_out"].tolist() == [False]


def test_the_stop_words_are_configurable(receiver: kb.Receiver) -> None:
    results = results_of((ASHA, "sent", "a1:0", 0))
    reply(receiver, ASHA, 5, text="No thanks")
    assert kb.replies(results, receiver.store)["opted_out"].tolist() == [False]
    tied = kb.replies(results, receiver.store, keywords={"no thanks"})
    assert tied["opted_out"].tolist() == [True]
    lifted = kb.replies(
        results, receiver.store, keywords={"no thanks"}, start_keywords=["no thanks"]
    )
    assert lifted["opted_out"].tolist() == [False]


def test_what_replies_needs_is_named_when_missing(tmp_path: Path) -> None:
    results = results_of((ASHA, "sent", "a1:0", 0))
    with pytest.raises(KwaBatchError, match="no sent_at column"):
        kb.replies(results.drop(columns="sent_at"), pd.DataFrame({"customer": [], "at": []}))
    with pytest.raises(KwaBatchError, match="incoming messages have no at column"):
        kb.replies(results, pd.DataFrame({"customer": [ASHA]}))
    with pytest.raises(InputError, match="no such callback store"):
        kb.replies(results, tmp_path / "missing.db")


def test_no_replies_and_no_sent_rows() -> None:
    empty = pd.DataFrame({"customer": pd.Series(dtype="str"), "at": pd.Series(dtype="str")})
    results = results_of((ASHA, "failed", None, None), (RAVI, "sent", "r1:0", 0))
    tied = kb.replies(results, empty)
    assert tied["replied"].tolist() == [False, False]
    assert tied["replies"].tolist() == [0, 0]
    nothing_sent = results_of((ASHA, "failed", None, None))
    frame = pd.DataFrame({"customer": [ASHA], "at": [at(5)], "body": ["STOP"]})
    assert kb.replies(nothing_sent, frame)[["replied", "opted_out"]].values.tolist() == [
        [False, False]
    ]


def _by_hand(results: pd.DataFrame, incoming: pd.DataFrame) -> list[tuple[int, str | None]]:
    """Each row's reply count and first reply, one reply at a time (the rule as written)."""
    key = {"+5215512345678": "+525512345678"}  # the one wa_id form used below
    rows_as_written = results.rename(columns={"from": "sender"})
    sent = [
        (i, r)
        for i, r in enumerate(rows_as_written.itertuples())
        if r.status == "sent" and r.message_id
    ]
    tied: dict[int, list[tuple[pd.Timestamp, int, str]]] = {}
    for n, m in enumerate(incoming.itertuples()):
        if pd.notna(m.reply_to):
            rows = [i for i, r in sent if r.message_id.removesuffix(":0") == m.reply_to]
        else:
            # Sent times count to the second, as callbacks' times are whole seconds.
            before = [
                (r.sent_at.floor("s"), i)
                for i, r in sent
                if key.get(r.to, r.to) == key.get(m.customer, m.customer)
                and r.sent_at.floor("s") <= m.at
                and (pd.isna(r.sender) or pd.isna(m.business) or r.sender == m.business)
            ]
            rows = [max(before)[1]] if before else []
        for i in rows[:1]:
            tied.setdefault(i, []).append((m.at, n, m.body))
    return [
        (len(tied.get(i, [])), min(tied[i])[2] if i in tied else None) for i in range(len(results))
    ]


@pytest.mark.parametrize("seed", range(5))
def test_replies_agree_with_the_rule_applied_one_reply_at_a_time(seed: int) -> None:
    gen = np.random.default_rng(seed)
    numbers = [ASHA, RAVI, MARIA, "+5215512345678"]
    size, count = 60, 90
    results = results_of(
        *[
            (
                numbers[gen.integers(0, 3)],
                "sent" if gen.random() < 0.8 else "failed",
                f"id{i}:0",
                float(i * 7 % 113) + i / 1000,  # distinct times, not in row order
            )
            for i in range(size)
        ]
    )
    results["from"] = pd.array(
        gen.choice([SENDER, OTHER_SENDER, None], size).tolist(), dtype="string"
    )
    incoming = pd.DataFrame(
        {
            "customer": gen.choice(numbers, count),
            "business": gen.choice([SENDER, OTHER_SENDER, None], count),
            "at": [at(float(gen.integers(0, 130)) + n / 7000) for n in range(count)],
            "body": [f"reply {n}" for n in range(count)],
            "reply_to": [
                f"id{gen.integers(0, size + 5)}" if gen.random() < 0.3 else None
                for _ in range(count)
            ],
        }
    )
    tied = kb.replies(results, incoming)
    got = list(zip(tied["replies"].tolist(), tied["reply"].tolist(), strict=True))
    expected = _by_hand(results, incoming)
    assert [(n, r if n else None) for n, r in got] == expected


def test_a_stop_in_the_second_its_message_left_counts_as_after_it(tmp_path: Path) -> None:
    """Callbacks carry whole seconds: a STOP stamped 12:00:05 answers a message sent at
    12:00:05.700 (issue #19: a button tap in the same second was missed)."""
    sent = datetime(2026, 12, 6, 12, 0, 5, 700000, tzinfo=UTC)
    results = pd.DataFrame(
        {
            "to": ["+919876500016"],
            "status": ["sent"],
            "message_id": ["m16:0"],
            "sent_at": pd.array([sent], dtype="datetime64[us, UTC]"),
        }
    )
    with CallbackStore(tmp_path / "r.db") as store:
        tap = sent.replace(microsecond=0)
        store.add_incoming(
            IncomingMessage(
                "t",
                "+919876500016",
                None,
                tap,
                tap,
                type="button",
                body="Stop promotions",
                reply_to="m16:0",
                payload="STOP_PROMOTIONS",
            )
        )
        row = kb.replies(results, store).iloc[0]
    assert bool(row["replied"])
    assert bool(row["opted_out"])


def test_no_results_against_a_store_with_replies_ties_nothing(tmp_path: Path) -> None:
    """Review of #19: IndexError on an empty results frame."""
    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with CallbackStore(tmp_path / "r.db") as store:
        store.add_incoming(IncomingMessage("k", "+919876500016", None, at, at, body="hi"))
        empty = pd.DataFrame(
            {name: pd.array([], dtype="string") for name in ("to", "status", "message_id")}
        ).assign(sent_at=pd.array([], dtype="datetime64[us, UTC]"))
        assert kb.replies(empty, store).empty
