"""A campaign's life after ``sent``, as the emulator plays it (kwa_batch.emulator.fates):
prices on delivered callbacks, 131049, 131050, 131026, 131048, replies tied to their message.

Real HTTP on 127.0.0.1 throughout: requests to the emulator, callbacks to a real Receiver.
Nothing waits on a clock: each test waits for the emulator to have posted its callbacks
(``wait_for_callbacks``), or polls the receiver's store, with generous deadlines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from conftest import SENDER

from kwa_batch.emulator.behaviour import DEFAULT_PRICES, CallbackSettings
from kwa_batch.emulator.fates import says_stop
from kwa_batch.emulator.server import Emulator
from kwa_batch.receipts.receiver import Receiver

DEADLINE = 20.0
OTHER_SENDER = "+911234567891"
CATALOGUE = {
    "data": [
        {
            "name": "promo",
            "language": "en",
            "status": "APPROVED",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Hi {{1}}, 20% off today"}],
        },
        {
            "name": "receipt",
            "language": "en",
            "status": "APPROVED",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}, your order shipped"}],
        },
        {
            "name": "login_code",
            "language": "en",
            "status": "APPROVED",
            "category": "AUTHENTICATION",
            "components": [{"type": "BODY", "text": "{{1}} is your code"}],
        },
    ]
}
MARKETING = {"type": "template", "template_name": "promo", "params": "Ana", "lang_code": "en"}
UTILITY = {"type": "template", "template_name": "receipt", "params": "Ana", "lang_code": "en"}
AUTHENTICATION = {
    "type": "authenticationtemplate",
    "template_name": "login_code",
    "verification_code": "123456",
    "lang_code": "en",
}
TEXT = {"type": "text", "body": "Your order has shipped"}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "receipts.db") as running:
        yield running


def send(
    emu: Emulator, to: str | list[str], message: dict[str, str], url: str, sender: str = SENDER
) -> list[str]:
    """One request over HTTP; the message ids it was answered with, in recipient order."""
    numbers = [to] if isinstance(to, str) else to
    fields = {"to": ",".join(numbers), "from": sender, "channel": "whatsapp", **message}
    answer = requests.post(
        emu.messages_url,
        data={**fields, "callback_url": url},
        headers={"api-key": emu.api_key},
        timeout=DEADLINE,
    )
    assert answer.status_code == 200, answer.text
    return [item["message_id"] for item in answer.json()["data"]]


def settle(emu: Emulator) -> None:
    assert emu.wait_for_callbacks(DEADLINE), emu.callback_stats


_RANK = {"sent": 0, "delivered": 1, "read": 2, "failed": 3}


def statuses(receiver: Receiver, message_id: str) -> list[tuple[str, Any]]:
    """The statuses one message's callbacks reported, with their error code, in the order
    of a message's life (callbacks due at once may arrive in any order)."""
    updates = receiver.store.status_updates()
    mine = updates[updates["message_id"] == message_id]
    pairs = zip(mine["status"], mine["error_code"], strict=True)
    found = [(status, None if pd.isna(code) else code) for status, code in pairs]
    return sorted(found, key=lambda item: _RANK[item[0]])


def fate(receiver: Receiver, message_id: str) -> str:
    """``delivered``, ``read`` or the failure's code."""
    reported = statuses(receiver, message_id)
    last, code = reported[-1]
    return str(code) if last == "failed" else last


def emulator(**settings: Any) -> Emulator:
    seed = settings.pop("seed", 1)
    return Emulator(seed=seed, templates=CATALOGUE, callbacks=settings)


# -- prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_delivered_callbacks_carry_the_price_of_their_category(
    receiver: Receiver, method: str
) -> None:
    url = receiver.callback_url
    prices = {"marketing": 0.05, "utility": 0.0075}
    with emulator(method=method, read=1.0, prices=prices) as emu:
        sent = {
            "marketing": send(emu, "+919876500001", MARKETING, url)[0],
            "utility": send(emu, "+919876500002", UTILITY, url)[0],
            "authentication": send(emu, "+919876500003", AUTHENTICATION, url)[0],
            "service": send(emu, "+919876500004", TEXT, url)[0],
        }
        settle(emu)
    updates = receiver.store.status_updates().set_index(["message_id", "status"])
    expected = {**DEFAULT_PRICES, **prices}
    for category, message_id in sent.items():
        delivered = updates.loc[(message_id, "delivered")]
        assert delivered["price"] == pytest.approx(expected[category]), category
        assert delivered["pricing_category"] == category
        assert bool(delivered["billable"]) is (expected[category] > 0)
        for status in ("sent", "read"):  # prices on delivered only
            other = updates.loc[(message_id, status)]
            assert pd.isna(other["price"])
            assert pd.isna(other["pricing_category"])


def test_failed_messages_carry_no_price(receiver: Receiver) -> None:
    with emulator(delivered=0.0) as emu:
        ids = send(emu, ["+919876500001", "+919876500002"], MARKETING, receiver.callback_url)
        settle(emu)
    updates = receiver.store.status_updates()
    assert set(updates["message_id"]) == set(ids)
    assert sorted(updates["status"]) == ["failed", "failed", "sent", "sent"]
    assert updates["price"].isna().all()
    assert updates["billable"].isna().all()


def test_a_template_of_unknown_category_is_priced_as_template_category(
    receiver: Receiver,
) -> None:
    message = {**MARKETING, "template_name": "anything"}
    with Emulator(callbacks={"template_category": "marketing"}) as emu:  # no catalogue
        first = send(emu, "+919876500001", message, receiver.callback_url)[0]
        again = send(emu, "+919876500001", message, receiver.callback_url)[0]
        settle(emu)
    updates = receiver.store.status_updates()
    delivered = updates[updates["status"] == "delivered"]
    assert delivered["pricing_category"].tolist() == ["marketing"]
    assert (fate(receiver, first), fate(receiver, again)) == ("delivered", "131049")


# -- 131049: the per-user marketing limit -----------------------------------------------------


def test_a_second_marketing_template_within_the_window_fails_with_131049(
    receiver: Receiver,
) -> None:
    url = receiver.callback_url
    customer = "+919876500001"
    with emulator() as emu:  # the default window: 24 h
        first = send(emu, customer, MARKETING, url)[0]
        second = send(emu, customer, MARKETING, url)[0]
        utility = send(emu, customer, UTILITY, url)[0]  # not marketing: delivered
        other = send(emu, "+919876500002", MARKETING, url)[0]  # another number
        settle(emu)
    assert statuses(receiver, first) == [("sent", None), ("delivered", None)]
    assert statuses(receiver, second) == [("sent", None), ("failed", "131049")]
    assert (fate(receiver, utility), fate(receiver, other)) == ("delivered", "delivered")


def test_the_marketing_window_is_settable(receiver: Receiver) -> None:
    url = receiver.callback_url
    customer = "+919876500001"
    with emulator(marketing_window=0.3) as emu:
        first = send(emu, customer, MARKETING, url)[0]
        within = send(emu, customer, MARKETING, url)[0]
        time.sleep(0.4)  # past the window: a wait, not a measured time
        after = send(emu, customer, MARKETING, url)[0]
        settle(emu)
    assert [fate(receiver, m) for m in (first, within, after)] == [
        "delivered",
        "131049",
        "delivered",
    ]
    with emulator(seed=2, marketing_window=0) as emu:  # 0: no limit (other ids)
        ids = [send(emu, customer, MARKETING, url)[0] for _ in range(3)]
        settle(emu)
    assert [fate(receiver, m) for m in ids] == ["delivered"] * 3


def test_a_failed_marketing_template_does_not_count_as_received(receiver: Receiver) -> None:
    url = receiver.callback_url
    with emulator(not_on_whatsapp_numbers=["+919876500009"]) as emu:
        send(emu, "+919876500009", MARKETING, url)  # 131026
        first = send(emu, "+919876500001", MARKETING, url)[0]
        again = send(emu, "+919876500001", MARKETING, url)[0]  # 131049: does not count
        third = send(emu, "+919876500001", MARKETING, url)[0]
        settle(emu)
    assert [fate(receiver, m) for m in (first, again, third)] == ["delivered", "131049", "131049"]


def test_marketing_to_us_numbers_always_fails_with_131049(receiver: Receiver) -> None:
    url = receiver.callback_url
    with emulator(marketing_window=0) as emu:
        us = send(emu, "+12025550143", MARKETING, url)[0]  # Washington DC
        canada = send(emu, "+16135550123", MARKETING, url)[0]  # Ottawa: +1, not the US
        us_utility = send(emu, "+12025550143", UTILITY, url)[0]
        us_text = send(emu, "+12025550143", TEXT, url)[0]
        settle(emu)
    assert statuses(receiver, us) == [("sent", None), ("failed", "131049")]
    assert [fate(receiver, m) for m in (canada, us_utility, us_text)] == ["delivered"] * 3


# -- 131050: opted out ------------------------------------------------------------------------


def test_marketing_to_an_opted_out_number_fails_with_131050(receiver: Receiver) -> None:
    url = receiver.callback_url
    with emulator(opted_out=["+91 98765 00001"]) as emu:
        marketing = send(emu, "+919876500001", MARKETING, url)[0]
        utility = send(emu, "+919876500001", UTILITY, url)[0]
        others = send(emu, "+919876500002", MARKETING, url)[0]
        settle(emu)
    assert statuses(receiver, marketing) == [("sent", None), ("failed", "131050")]
    assert (fate(receiver, utility), fate(receiver, others)) == ("delivered", "delivered")


@pytest.mark.parametrize(
    ("body", "payload"),
    [("STOP", None), ("stop!", None), ("Stop promotions", "STOP_PROMOTIONS")],
)
def test_a_stop_sent_to_the_emulator_opts_the_number_out(
    receiver: Receiver, body: str, payload: str | None
) -> None:
    url = receiver.callback_url
    customer = "+919876500001"
    with emulator(marketing_window=0) as emu:
        before = send(emu, customer, MARKETING, url)[0]
        settle(emu)
        assert emu.reply(customer, SENDER, body, url, reply_to=before, payload=payload)
        settle(emu)
        after = send(emu, customer, MARKETING, url)[0]
        utility = send(emu, customer, UTILITY, url)[0]
        settle(emu)
        emu.reset()  # forgets the STOP
        cleared = send(emu, customer, MARKETING, url)[0]
        settle(emu)
    assert [fate(receiver, m) for m in (before, after, utility, cleared)] == [
        "delivered",
        "131050",
        "delivered",
        "delivered",
    ]
    incoming = receiver.store.incoming_messages().iloc[0]
    assert (incoming["reply_to"], incoming["body"]) == (before, body)
    assert incoming["type"] == ("text" if payload is None else "button")


def test_other_replies_do_not_opt_out(receiver: Receiver) -> None:
    url = receiver.callback_url
    customer = "+919876500001"
    with emulator(marketing_window=0) as emu:
        assert emu.reply(customer, SENDER, "Stop by the shop later?", url)
        assert emu.reply(customer, SENDER, "Yes, interested", url, payload="YES")
        settle(emu)
        marketing = send(emu, customer, MARKETING, url)[0]
        settle(emu)
    assert fate(receiver, marketing) == "delivered"


def test_played_stop_replies_and_stop_buttons_opt_out(receiver: Receiver) -> None:
    url = receiver.callback_url
    numbers = [f"+9198765{i:05d}" for i in range(6)]
    stop_button = [("Stop promotions", "STOP_PROMOTIONS")]
    with emulator(read=1.0, stop=0.5, button=0.5, buttons=stop_button, marketing_window=0) as emu:
        first = send(emu, numbers, MARKETING, url)
        settle(emu)
        second = send(emu, numbers, MARKETING, url)
        settle(emu)
    assert [fate(receiver, m) for m in first] == ["read"] * 6
    incoming = receiver.store.incoming_messages()
    assert len(incoming) == 6
    assert set(incoming["body"]) == {"STOP", "Stop promotions"}
    assert set(incoming["type"]) == {"text", "button"}
    buttons = incoming[incoming["type"] == "button"]
    assert set(buttons["payload"]) == {"STOP_PROMOTIONS"}
    assert [fate(receiver, m) for m in second] == ["131050"] * 6


def test_says_stop() -> None:
    assert says_stop(" Stop. ")
    assert says_stop("STOP")
    assert says_stop("Stop promotions", "STOP_PROMOTIONS")
    assert says_stop("Unsubscribe", "stop")
    assert not says_stop("Stop by later")
    assert not says_stop("Yes, interested", "YES")
    assert not says_stop(None)


# -- 131026: not on WhatsApp ------------------------------------------------------------------


def test_numbers_not_on_whatsapp_fail_with_131026(receiver: Receiver) -> None:
    url = receiver.callback_url
    with emulator(not_on_whatsapp_numbers="+919876500001") as emu:
        text = send(emu, "+919876500001", TEXT, url)[0]
        utility = send(emu, "+919876500001", UTILITY, url)[0]
        reachable = send(emu, "+919876500002", TEXT, url)[0]
        settle(emu)
    assert statuses(receiver, text) == [("sent", None), ("failed", "131026")]
    assert (fate(receiver, utility), fate(receiver, reachable)) == ("131026", "delivered")


def test_the_share_not_on_whatsapp_is_drawn_once_per_number_and_seeded(
    tmp_path: Path,
) -> None:
    numbers = [f"+9198765{i:05d}" for i in range(40)]

    def run(name: str, seed: int) -> list[str]:
        with (
            Receiver(tmp_path / f"{name}.db") as rec,
            emulator(seed=seed, not_on_whatsapp=0.5) as emu,
        ):
            first = send(emu, numbers, TEXT, rec.callback_url)
            again = send(emu, list(reversed(numbers)), TEXT, rec.callback_url)[::-1]
            settle(emu)
            outcomes = [fate(rec, m) for m in first]
            assert [fate(rec, m) for m in again] == outcomes  # the same numbers, whatever order
        return outcomes

    one, two, other = run("one", 3), run("two", 3), run("other", 4)
    assert one == two
    assert set(one) == {"delivered", "131026"}
    assert one != other


# -- 131048: the spam rate limit ----------------------------------------------------------------


def test_a_sender_whose_failures_reach_the_threshold_gets_131048(receiver: Receiver) -> None:
    url = receiver.callback_url
    unreachable = ["+919876500001", "+919876500002"]
    settings = {
        "not_on_whatsapp_numbers": unreachable,
        "spam_threshold": 0.5,
        "spam_window": 10,
        "spam_min_count": 4,
    }
    with emulator(**settings) as emu:
        early = send(emu, [*unreachable, "+919876500003"], TEXT, url)  # 2 of 3 failed: too few
        tipping = send(emu, "+919876500004", TEXT, url)[0]  # 2 of 4: the threshold
        later = send(emu, ["+919876500005", "+919876500006"], UTILITY, url)
        elsewhere = send(emu, "+919876500007", TEXT, url, sender=OTHER_SENDER)[0]
        settle(emu)
    assert [fate(receiver, m) for m in early] == ["131026", "131026", "delivered"]
    assert fate(receiver, tipping) == "delivered"
    for message_id in later:  # never left: no "sent"
        assert statuses(receiver, message_id) == [("failed", "131048")]
    assert fate(receiver, elsewhere) == "delivered"  # another sender number


def test_the_failure_share_counts_over_the_last_messages_only(receiver: Receiver) -> None:
    url = receiver.callback_url
    settings = {
        "not_on_whatsapp_numbers": ["+919876500001", "+919876500002"],
        "spam_threshold": 0.5,
        "spam_window": 4,
        "spam_min_count": 4,
    }
    numbers = ["+919876500001", *(f"+9198765100{i:02d}" for i in range(6)), "+919876500002"]
    with emulator(**settings) as emu:
        ids = send(emu, numbers, TEXT, url)  # the two failures never share a window of 4
        settle(emu)
    assert [fate(receiver, m) for m in ids] == ["131026", *["delivered"] * 6, "131026"]


def test_no_spam_limit_by_default(receiver: Receiver) -> None:
    with emulator(delivered=0.0) as emu:
        ids = send(emu, [f"+9198765{i:05d}" for i in range(30)], TEXT, receiver.callback_url)
        settle(emu)
    assert {fate(receiver, m) for m in ids} == {"131026"}  # failed_code, never 131048


# -- replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_replies_carry_the_id_of_the_message_they_answer(receiver: Receiver, method: str) -> None:
    numbers = [f"+9198765{i:05d}" for i in range(8)]
    settings = {"method": method, "read": 1.0, "reply": 0.5, "button": 0.5, "delay": 0.01}
    with emulator(**settings) as emu:
        ids = send(emu, numbers, UTILITY, receiver.callback_url)
        settle(emu)
    answered = dict(zip(numbers, ids, strict=True))
    incoming = receiver.store.incoming_messages()
    assert sorted(incoming["customer"]) == numbers  # every read message answered
    for reply in incoming.itertuples():
        assert reply.reply_to == answered[reply.customer]
        assert reply.business == SENDER
        if reply.type == "button":
            assert (reply.body, reply.payload) in CallbackSettings().buttons
        else:
            assert (reply.type, reply.body) == ("text", "Thanks, got it!")
            assert pd.isna(reply.payload)
    assert set(incoming["type"]) == {"text", "button"}


def test_a_text_message_has_no_buttons_to_tap(receiver: Receiver) -> None:
    with emulator(read=1.0, button=1.0) as emu:
        send(emu, ["+919876500001", "+919876500002"], TEXT, receiver.callback_url)
        settle(emu)
    incoming = receiver.store.incoming_messages()
    assert set(incoming["type"]) == {"text"}
    assert set(incoming["body"]) == {"Thanks, got it!"}


def test_replies_come_after_the_read_they_answer(receiver: Receiver) -> None:
    with emulator(read=1.0, reply=1.0, delay=0.05) as emu:
        message_id = send(emu, "+919876500001", UTILITY, receiver.callback_url)[0]
        settle(emu)
    updates = receiver.store.status_updates()
    read_at = updates.loc[updates["status"] == "read", "received_at"].iloc[0]
    incoming = receiver.store.incoming_messages().iloc[0]
    assert incoming["reply_to"] == message_id
    assert incoming["received_at"] >= read_at


# -- seeded, all together -----------------------------------------------------------------------


def test_a_campaign_s_life_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    numbers = [f"+9198765{i:05d}" for i in range(40)] + ["+12025550143"]
    settings = {
        "delivered": 0.8,
        "read": 0.6,
        "reply": 0.3,
        "stop": 0.2,
        "button": 0.3,
        "not_on_whatsapp": 0.1,
        "opted_out": ["+919876500007"],
    }

    def run(name: str, seed: int) -> tuple[list[list[Any]], list[list[Any]]]:
        with Receiver(tmp_path / f"{name}.db") as rec, emulator(seed=seed, **settings) as emu:
            send(emu, numbers, MARKETING, rec.callback_url)
            settle(emu)
            send(emu, numbers, MARKETING, rec.callback_url)
            settle(emu)
            updates = rec.store.status_updates()
            incoming = rec.store.incoming_messages()
        statuses = updates[["message_id", "status", "recipient", "error_code", "price"]]
        replies = incoming[["customer", "type", "body", "payload", "reply_to"]]
        return (
            statuses.sort_values(["message_id", "status"]).astype(str).values.tolist(),
            replies.sort_values("reply_to").astype(str).values.tolist(),
        )

    one, two, other = run("one", 8), run("two", 8), run("other", 9)
    assert one == two
    assert one != other
    codes = {row[3] for row in one[0]}
    assert {"131026", "131049", "131050"} <= codes
    assert {row[1] for row in one[1]} == {"text", "button"}


# -- settings -----------------------------------------------------------------------------------


def test_keywords_set_the_callback_settings() -> None:
    emu = Emulator(not_on_whatsapp=0.1, opted_out=["+919876500001"], spam_threshold=0.3)
    played = emu.callbacks
    assert played is not None
    assert (played.not_on_whatsapp, played.spam_threshold) == (0.1, 0.3)
    assert played.opted_out == frozenset({"919876500001"})
    merged = Emulator(callbacks={"read": 0.5}, prices={"marketing": 0.02}).callbacks
    assert merged is not None
    assert (merged.read, merged.prices["marketing"]) == (0.5, 0.02)
    with pytest.raises(TypeError, match="callbacks=False"):
        Emulator(callbacks=False, spam_threshold=0.3)
    with pytest.raises(TypeError, match="both given"):
        Emulator(callbacks=CallbackSettings(), not_on_whatsapp=0.1)
    with pytest.raises(TypeError, match="both given"):
        Emulator(callbacks={"marketing_window": 1}, marketing_window=2)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prices": {"premium": 1}}, "unknown category 'premium'"),
        ({"prices": "marketing=-1"}, "price of marketing must be zero or more"),
        ({"prices": "marketing"}, "write CATEGORY=PRICE"),
        ({"opted_out": ["12345"]}, "'12345' is not a phone number in E.164"),
        ({"not_on_whatsapp": 2}, "not_on_whatsapp must be from 0 to 1"),
        ({"spam_threshold": 0}, "spam_threshold must be above 0"),
        ({"spam_window": 0}, "spam_window must be a whole number of 1 or more"),
        ({"spam_window": 10, "spam_min_count": 20}, "spam_min_count \\(20\\) must not be above"),
        ({"reply": 0.5, "stop": 0.3, "button": 0.3}, "add up to 1.1"),
        ({"buttons": []}, "at least one"),
        ({"buttons": "Stop promotions"}, "\\(text, payload\\) pairs"),
        ({"template_category": "promo"}, "template_category must be one of"),
        ({"marketing_window": -1}, "marketing_window must be zero or more seconds"),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallbackSettings(**settings)


def test_settings_from_text_as_a_command_line_gives_them() -> None:
    settings = CallbackSettings.coerce(
        {
            "prices": "marketing=0.05,service=0.001",
            "opted_out": "+919876500001, +447911123456",
            "spam_threshold": "off",
            "spam_window": "50",
            "buttons": "Stop promotions=STOP_PROMOTIONS;Maybe later=LATER",
        }
    )
    assert settings is not None
    assert settings.prices == {**DEFAULT_PRICES, "marketing": 0.05, "service": 0.001}
    assert settings.opted_out == frozenset({"919876500001", "447911123456"})
    assert (settings.spam_threshold, settings.spam_window) == (None, 50)
    assert settings.buttons[1] == ("Maybe later", "LATER")


def test_the_command_line_plays_a_campaign_s_life() -> None:
    from kwa_batch.cli.servers import _emulator

    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "sid": None,
        "api_key": None,
        "latency": 0.0,
        "jitter": 0.0,
        "fault_specs": (),
        "retry_after": 1.0,
        "late_delay": 5.0,
        "rate": None,
        "seed": 7,
    }
    emu = _emulator(
        **common,
        callback_specs=("read=0.5", "stop=0.1"),
        opted_out=("+919876500001",),
        not_on_whatsapp=0.05,
        spam_threshold=0.3,
    )
    assert emu.callbacks == CallbackSettings(
        read=0.5,
        stop=0.1,
        opted_out=frozenset({"919876500001"}),
        not_on_whatsapp=0.05,
        spam_threshold=0.3,
    )


def test_the_command_line_refuses_what_cannot_play(runner: Any) -> None:
    from kwa_batch.cli import cli

    result = runner.invoke(cli, ["emulator", "--opted-out", "+919876500001", "--callback", "off"])
    assert result.exit_code != 0
    assert "--opted-out is played in the callbacks" in result.output
    result = runner.invoke(cli, ["emulator", "--opted-out", "12"])
    assert result.exit_code != 0
    assert "'12' is not a phone number in E.164" in result.output


def test_a_reply_waits_for_the_read_callback_a_slow_receiver_still_answers() -> None:
    """A receiver that takes 0.4 s to answer the ``read`` callback: the reply, due 50 ms
    after it, is posted only once the read was answered, not by another thread meanwhile."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    events: list[tuple[str, str]] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            what = body.get("status") or "reply"
            events.append(("start", what))
            if what == "read":
                time.sleep(0.4)
            events.append(("end", what))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/callbacks"
        with emulator(read=1.0, reply=1.0, delay=0.05, method="POST") as emu:
            send(emu, "+919876500001", UTILITY, url)
            settle(emu)
    finally:
        server.shutdown()
        server.server_close()
    assert ("start", "reply") in events, events
    assert events.index(("start", "reply")) > events.index(("end", "read")), events
