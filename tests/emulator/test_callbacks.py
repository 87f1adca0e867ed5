"""The whole loop: the emulator posts Kaleyra's callbacks, the receiver stores them, the
results get their delivery status; and callbacks never leave this machine.

Real HTTP on 127.0.0.1 throughout. Nothing here waits on a clock: tests wait for the
emulator to have posted its callbacks (``wait_for_callbacks``), with generous deadlines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.emulator.callbacks import CallbackSettings, is_loopback_url
from kwa_batch.emulator.server import Emulator
from kwa_batch.receipts.receiver import Receiver
from kwa_batch.results import delivery_counts

TOKEN = "loop-token"
DEADLINE = 20.0


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "receipts.db"


@pytest.fixture
def receiver(store_path: Path) -> Iterator[Receiver]:
    with Receiver(store_path, token=TOKEN) as running:
        yield running


def recipients(n: int, callback_url: str | None) -> pd.DataFrame:
    """n rows of one text message (so one request, recipients in row order)."""
    return pd.DataFrame(
        {
            "to": [f"+9198765{i:05d}" for i in range(n)],
            "body": "Your order has shipped",
            "callback_url": callback_url,
        },
        index=pd.RangeIndex(100, 100 + n),
    )


def wait_until(condition: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def settle(emu: Emulator) -> None:
    assert emu.wait_for_callbacks(DEADLINE), emu.callback_stats


# -- the whole loop -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_send_receive_merge(receiver: Receiver, store_path: Path, method: str) -> None:
    settings = {"method": method, "delivered": 0.7, "read": 0.5, "failed_code": "131026"}
    df = recipients(30, receiver.callback_url)
    df.loc[[103, 104], "callback_url"] = None  # no callback asked for these
    df.loc[105, "to"] = "12"  # rejected before sending
    with Emulator(seed=11, callbacks=settings) as emu:
        results = kb.send(df, emu.client(), sender=SENDER, progress=False, concurrency=1)
        settle(emu)
        stats = emu.callback_stats
    assert (stats["failed"], stats["pending"], stats["skipped"]) == (0, 0, 0)
    assert receiver.stats == {"stored": stats["posted"], "repeated": 0, "refused": 0}

    merged = kb.merge_receipts(results, kb.load_receipts(store_path))
    assert merged.index.equals(df.index)
    delivery = merged["delivery_status"]
    assert delivery.loc[[103, 104, 105]].isna().all()
    reported = merged.drop(index=[103, 104, 105])
    assert set(reported["delivery_status"]) == {"delivered", "read", "failed"}
    failed = reported["delivery_status"] == "failed"
    assert (reported.loc[failed, "delivery_error_code"] == "131026").all()
    assert reported.loc[~failed, "delivery_error_code"].isna().all()
    assert reported.loc[~failed, "delivered_at"].notna().all()
    assert reported.loc[failed, "delivered_at"].isna().all()
    read = reported["delivery_status"] == "read"
    assert reported.loc[read, "read_at"].notna().all()
    assert reported.loc[~read, "read_at"].isna().all()
    assert (reported.loc[read, "read_at"] >= reported.loc[read, "delivered_at"]).all()
    # Every callback a message got was stored once: sent + delivered (+ read), or sent + failed.
    expected = 2 * len(reported) + int(read.sum())
    assert kb.load_receipts(store_path).shape[0] == len(reported)
    assert stats["posted"] == expected


def test_the_outcomes_are_reproducible_with_a_seed(tmp_path: Path) -> None:
    def run(name: str) -> list[str]:
        with (
            Receiver(tmp_path / f"{name}.db") as rec,
            Emulator(seed=5, callbacks={"delivered": 0.5, "read": 0.5}) as emu,
        ):
            results = kb.send(
                recipients(16, rec.callback_url), emu.client(), sender=SENDER, progress=False
            )
            settle(emu)
        merged = kb.merge_receipts(results, tmp_path / f"{name}.db")
        return merged["delivery_status"].tolist()

    first, second = run("one"), run("two")
    assert first == second
    assert {"delivered", "read", "failed"} <= set(first)


def test_refs_and_the_recipient_come_back(receiver: Receiver, store_path: Path) -> None:
    df = recipients(1, receiver.callback_url).assign(ref="CUST-1001", ref1="spring-sale")
    with Emulator(callbacks={"method": "POST"}) as emu:
        kb.send(df, emu.client(), sender=SENDER, progress=False)
        settle(emu)
    receipt = kb.load_receipts(store_path).iloc[0]
    assert (receipt["ref"], receipt["ref1"]) == ("CUST-1001", "spring-sale")
    assert pd.isna(receipt["ref2"])
    assert receipt["recipient"] == "+919876500000"


def test_no_callback_url_no_callbacks(fresh_emulator: Emulator) -> None:
    before = set(threading.enumerate())
    kb.send(recipients(5, None), fresh_emulator.client(), sender=SENDER, progress=False)
    stats = fresh_emulator.callback_stats
    assert stats == {"posted": 0, "failed": 0, "skipped": 0, "dropped": 0, "pending": 0}
    started = set(threading.enumerate()) - before
    assert not any("callbacks" in thread.name for thread in started)


def test_callbacks_can_be_turned_off(receiver: Receiver) -> None:
    with Emulator(callbacks=False) as emu:
        assert emu.callbacks is None
        kb.send(recipients(3, receiver.callback_url), emu.client(), sender=SENDER, progress=False)
        settle(emu)
        assert emu.callback_stats["posted"] == 0
    assert receiver.store.counts()["status_updates"] == 0


# -- replies and windows --------------------------------------------------------------------


def test_a_reply_opens_a_window(receiver: Receiver, store_path: Path) -> None:
    customer = "+14155550123"
    with Emulator(callbacks=False) as emu:  # replies work whatever the settings
        assert emu.reply(customer, SENDER, "Yes, please", receiver.callback_url, name="Ann")
        settle(emu)
    incoming = receiver.store.incoming_messages().iloc[0]
    assert (incoming["customer"], incoming["business"]) == (customer, SENDER)
    assert (incoming["body"], incoming["name"]) == ("Yes, please", "Ann")
    windows = kb.open_windows(store_path)
    assert windows[["business_number", "recipient"]].values.tolist() == [[SENDER, customer]]
    valid = kb.validate(
        pd.DataFrame({"to": [customer, "+447911123456"], "body": "Hi"}), sender=SENDER
    ).valid
    assert kb.closed_window_rows(valid, windows).tolist() == [False, True]


def test_read_messages_may_be_answered(receiver: Receiver, store_path: Path) -> None:
    settings = {"read": 1.0, "reply": 1.0, "reply_body": "Thanks!"}
    with Emulator(callbacks=settings) as emu:
        kb.send(recipients(4, receiver.callback_url), emu.client(), sender=SENDER, progress=False)
        settle(emu)
    incoming = receiver.store.incoming_messages()
    assert sorted(incoming["customer"]) == [f"+9198765{i:05d}" for i in range(4)]
    assert set(incoming["business"]) == {SENDER}
    assert set(incoming["body"]) == {"Thanks!"}
    assert len(kb.open_windows(store_path)) == 4


@pytest.mark.parametrize(("number", "business"), [("12", SENDER), ("+919876543210", "hello")])
def test_reply_refuses_what_is_no_number(
    fresh_emulator: Emulator, number: str, business: str
) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        fresh_emulator.reply(number, business, "Hi", "http://127.0.0.1:9/cb")


# -- loopback only --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8765/kaleyra/callback", True),
        ("https://127.0.0.1/cb?token=x", True),
        ("http://127.8.9.10/cb", True),
        ("http://localhost:8080/cb", True),
        ("http://LOCALHOST/cb", True),
        ("http://[::1]:8080/cb", True),
        ("https://webhook.site/XXXXXXXX", False),
        ("http://example.com/cb", False),
        ("http://10.0.0.5/cb", False),
        ("http://192.168.1.10:8765/cb", False),
        ("http://[::2]/cb", False),
        ("http://0.0.0.0:8765/cb", False),
        ("http://127.0.0.1.nip.io/cb", False),
        ("http://localhost.example.com/cb", False),
        ("http://user@example.com@127.0.0.1/cb", True),
        # Parsers that disagree on the host: refused (urllib3 would dial example.com).
        ("http://example.com\\@127.0.0.1/cb", False),
        ("http://127.0.0.1\\@example.com/cb", False),
        ("ftp://127.0.0.1/cb", False),
        ("127.0.0.1:8765/cb", False),
        ("http://127.0.0.1:99999/cb", False),
        ("not a url", False),
    ],
)
def test_only_loopback_urls_are_called(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_other_hosts_are_skipped_and_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    called: list[str] = []
    real_request = requests.Session.request

    def spy(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        called.append(url)
        return real_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    df = recipients(4, "https://webhook.site/abc")
    df.loc[101, "callback_url"] = "http://10.0.0.5:8765/cb"
    df.loc[102, "callback_url"] = "http://127.0.0.1.nip.io/cb"
    df.loc[103, "callback_url"] = receiver.callback_url
    with caplog.at_level(logging.WARNING, logger="kwa_batch"), Emulator() as emu:
        kb.send(df, emu.client(), sender=SENDER, progress=False, concurrency=1)
        settle(emu)
        stats = emu.callback_stats
    assert stats["skipped"] == 3
    assert stats["posted"] == 2  # sent + delivered for the one loopback URL
    callbacks = [u for u in called if "/v1/" not in u]  # not the client's own requests
    assert callbacks
    assert all(u.startswith(receiver.url) for u in callbacks)
    logged = " ".join(r.getMessage() for r in caplog.records)
    for host in ("webhook.site", "10.0.0.5", "127.0.0.1.nip.io"):
        assert f"{host!r} is not a loopback address" in logged
    assert TOKEN not in logged


def test_proxies_from_the_environment_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://10.255.255.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Emulator() as emu:
        emu.reply("+14155550123", SENDER, "Hi", receiver.callback_url)
        settle(emu)
        assert emu.callback_stats["posted"] == 1
    assert receiver.store.counts()["incoming_messages"] == 1


# -- failures and stopping ------------------------------------------------------------------


def test_a_callback_nobody_receives_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nobody = "http://127.0.0.1:9/kaleyra-callback"  # the discard port: nothing listens
    with (
        caplog.at_level(logging.DEBUG, logger="kwa_batch.emulator.callbacks"),
        Emulator(callbacks={"timeout": 2}) as emu,
    ):
        kb.send(recipients(3, nobody), emu.client(), sender=SENDER, progress=False)
        settle(emu)
        stats = emu.callback_stats
    assert (stats["posted"], stats["failed"]) == (0, 6)
    # Nobody listening is the usual case when trying things out: one quiet line, no warning.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "127.0.0.1:9/kaleyra-callback" in infos[0].getMessage()
    assert "kwa-batch receive" in infos[0].getMessage()


def test_a_refused_callback_is_counted(store_path: Path) -> None:
    with Receiver(store_path, token=TOKEN) as rec, Emulator() as emu:
        wrong = rec.url + "/callback?token=wrong"
        kb.send(recipients(2, wrong), emu.client(), sender=SENDER, progress=False)
        settle(emu)
        assert emu.callback_stats["failed"] == 4
        assert rec.stats["refused"] == 4


def test_stop_drops_pending_callbacks(receiver: Receiver) -> None:
    emu = Emulator(callbacks={"delay": 60}).start()
    try:
        kb.send(recipients(3, receiver.callback_url), emu.client(), sender=SENDER, progress=False)
        assert emu.callback_stats["pending"] == 6
        assert not emu.wait_for_callbacks(0.05)
    finally:
        emu.stop()
    assert emu.callback_stats == {
        "posted": 0,
        "failed": 0,
        "skipped": 0,
        "dropped": 6,
        "pending": 0,
    }
    assert receiver.store.counts()["status_updates"] == 0


def test_delays_spread_the_callbacks_out(receiver: Receiver, store_path: Path) -> None:
    with Emulator(callbacks={"delay": 0.05, "read": 1.0}) as emu:
        kb.send(recipients(2, receiver.callback_url), emu.client(), sender=SENDER, progress=False)
        settle(emu)
    receipts = kb.load_receipts(store_path)
    assert receipts["status"].tolist() == ["read", "read"]


def test_reset_forgets_pending_callbacks(receiver: Receiver) -> None:
    with Emulator(callbacks={"delay": 60}) as emu:
        kb.send(recipients(2, receiver.callback_url), emu.client(), sender=SENDER, progress=False)
        emu.reset()
        assert emu.callback_stats["pending"] == 0
        assert emu.wait_for_callbacks(5)


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "PUT"}, "GET or POST"),
        ({"delivered": 1.5}, "delivered must be from 0 to 1"),
        ({"read": -0.1}, "read must be from 0 to 1"),
        ({"reply": "often"}, "reply must be a number"),
        ({"delay": -1}, "delay must be zero or more"),
        ({"timeout": float("inf")}, "timeout must be zero or more"),
        ({"failed_code": " "}, "failed_code must not be empty"),
        ({"delivery": 0.5}, "unknown callback setting"),
        ("yes", "callbacks must be"),
    ],
)
def test_bad_callback_settings_are_refused(settings: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Emulator(callbacks=settings)


def test_callback_settings_from_text() -> None:
    settings = CallbackSettings.coerce({"method": "post", "delay": "0.5", "read": "0.7"})
    assert settings == CallbackSettings(method="POST", delay=0.5, read=0.7)
    assert CallbackSettings.coerce(True) == CallbackSettings()
    assert CallbackSettings.coerce(False) is None
    assert Emulator(callbacks=settings).callbacks is settings


def test_delivery_counts_after_the_loop(receiver: Receiver, store_path: Path) -> None:
    with Emulator(seed=3, callbacks={"delivered": 0.5}) as emu:
        results = kb.send(
            recipients(10, receiver.callback_url), emu.client(), sender=SENDER, progress=False
        )
        settle(emu)
    counts = delivery_counts(kb.merge_receipts(results, store_path))
    assert counts["delivered"] + counts["failed"] == 10
    assert counts["read"] == counts["no receipt yet"] == 0
