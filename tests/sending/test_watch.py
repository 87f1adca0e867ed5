"""A run that stops itself (issue #19): the receipts store watched while the run sends.

Real HTTP throughout: the run sends to the real emulator, slowed to 2 messages a second so
that it is mid-run when the callback comes; the callback is posted to a real ``Receiver``
right after the run's Nth request was answered (a hook on the client, not a timer), and the
assertions are about where each message went and when it reached the emulator, against the
moment the receiver stored the callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import SENDER

from kwa_batch import CallbackStore, ConfigurationError, Emulator, send, validate
from kwa_batch.receipts.receiver import Receiver
from kwa_batch.receipts.store import StatusUpdate
from kwa_batch.sending.client import KaleyraClient, SendResult

UK = [f"+4479111234{i:02d}" for i in range(40)]
WITHIN = timedelta(seconds=5)


def personal(numbers: list[str], templates: list[str] | None = None) -> pd.DataFrame:
    """One template message per number, each with its own parameter (never grouped)."""
    names = templates or ["promo"]
    return pd.DataFrame(
        {
            "to": pd.array(numbers, dtype="str"),
            "type": "template",
            "template_name": [names[i % len(names)] for i in range(len(numbers))],
            "params": [f"Ana {i}" for i in range(len(numbers))],
            "lang_code": "en",
        }
    )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "receipts.db") as running:
        yield running


class CallbackAfter:
    """Posts a failed-status callback to the receiver right after the run's ``nth`` answer
    whose template is ``template`` (any, when None): a hook on the client's ``post``."""

    def __init__(
        self,
        receiver: Receiver,
        code: str,
        nth: int,
        *,
        template: str | None = None,
        business: str | None = SENDER,
    ) -> None:
        self.receiver, self.code, self.nth = receiver, code, nth
        self.template, self.business = template, business
        self.seen = 0
        self.message_id: str | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        post = KaleyraClient.post

        def hooked(client: KaleyraClient, form: dict[str, str]) -> SendResult:
            result = post(client, form)
            if self.template in (None, form.get("template_name")):
                self.seen += 1
                if self.seen == self.nth:
                    self.message_id = result.message_id_for(form["to"])
                    self.post(self.message_id)
            return result

        monkeypatch.setattr(KaleyraClient, "post", hooked)

    def post(self, message_id: str | None) -> None:
        fields = {"id": message_id or "elsewhere:0", "status": "failed", "error_code": self.code}
        if self.business is not None:
            fields["wanumber"] = self.business
        requests.get(self.receiver.callback_url, params=fields, timeout=5).raise_for_status()

    def stored_at(self) -> datetime:
        """When the receiver stored the callback."""
        updates = self.receiver.store.status_updates()
        found = updates[updates["error_code"] == self.code]
        assert len(found) == 1
        stamp: datetime = found["received_at"].iloc[0].to_pydatetime()
        return stamp


def arrived(emulator: Emulator) -> pd.DataFrame:
    """The messages the emulator accepted, with when each arrived."""
    messages = emulator.messages
    return messages.assign(received_at=pd.to_datetime(messages["received_at"], utc=True))


@pytest.mark.slow
def test_a_stop_code_received_mid_run_stops_the_sending_within_seconds(
    fresh_emulator: Emulator, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback = CallbackAfter(receiver, "131048", nth=3)
    callback.install(monkeypatch)
    report = validate(personal(UK[:20]), sender=SENDER)
    with CallbackStore(receiver.store.path) as store:  # a store of its own, as a process has
        results = send(report, fresh_emulator.client(), rate_limit=2, receipts=store,
                       progress=False)  # fmt: skip
    stored = callback.stored_at()
    reached = arrived(fresh_emulator)
    assert (reached["received_at"] <= stored + WITHIN).all()  # nothing left after +5 s
    sent = results[results["status"] == "sent"]
    left = results[results["status"] != "sent"]
    assert len(sent) == len(reached) >= 3
    assert len(left) >= 10, "the run was stopped mid-run, not at its end"
    assert set(left["status"]) == {"not_sent"}
    assert set(left["error_code"]) == {"KWA033"}
    assert (
        left["error_message"]
        .str.contains("WhatsApp said 131048 (spam rate limit", regex=False)
        .all()
    )
    assert left["error_message"].str.contains("quality rating").all()
    outcome = results.attrs["run"]
    assert outcome.exit_code == 3
    assert outcome.held["KWA033"] == len(left)
    assert outcome.stopped_on is not None
    assert "131048" in outcome.stopped_on
    assert outcome.next_step.startswith("Stopped: WhatsApp said 131048")
    assert "check the number's quality rating in WhatsApp Manager" in outcome.next_step


@pytest.mark.slow
def test_a_paused_template_holds_its_rows_while_the_others_go_on(
    fresh_emulator: Emulator, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback = CallbackAfter(receiver, "132015", nth=2, template="promo_a")
    callback.install(monkeypatch)
    report = validate(personal(UK[:20], ["promo_a", "promo_b"]), sender=SENDER)
    with CallbackStore(receiver.store.path) as store:
        results = send(report, fresh_emulator.client(), rate_limit=2, receipts=store,
                       progress=False)  # fmt: skip
    stored = callback.stored_at()
    by_template = results.assign(template=report.valid["template_name"])
    a = by_template[by_template["template"] == "promo_a"]
    b = by_template[by_template["template"] == "promo_b"]
    assert (b["status"] == "sent").all()  # every row of the other template went
    held = a[a["status"] != "sent"]
    assert len(held) >= 5
    assert set(held["error_code"]) == {"KWA034"}
    assert held["error_message"].str.contains("template 'promo_a' held: WhatsApp said 132015").all()
    reached = arrived(fresh_emulator)
    late_a = reached[
        (reached["template_name"] == "promo_a") & (reached["received_at"] > stored + WITHIN)
    ]
    assert late_a.empty
    outcome = results.attrs["run"]
    assert outcome.exit_code == 3
    assert outcome.stopped_on is None  # a template, not the number


@pytest.mark.slow
def test_stale_stop_codes_and_other_numbers_do_not_stop_the_run(
    fresh_emulator: Emulator, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 131048 from last week and one received just before the run started do not count;
    one received mid-run for another business number is not this run's."""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    receiver.store.add_status(
        StatusUpdate("old:0", "failed", week_ago, week_ago, error_code="131048", business=SENDER)
    )
    CallbackAfter(receiver, "368", nth=0).post("before:0")  # stored before the run starts
    callback = CallbackAfter(receiver, "131031", nth=2, business="+14155550123")
    callback.install(monkeypatch)
    report = validate(personal(UK[:6]), sender=SENDER)
    with CallbackStore(receiver.store.path) as store:
        results = send(report, fresh_emulator.client(), rate_limit=3, receipts=store,
                       progress=False)  # fmt: skip
    assert callback.message_id is not None  # the mid-run callback was posted
    assert (results["status"] == "sent").all()
    assert results.attrs["run"].exit_code == 0
    assert results.attrs["run"].stopped_on is None


def test_a_callback_without_a_business_number_counts(tmp_path: Path) -> None:
    from kwa_batch.sending.watch import ReceiptsWatch

    started = datetime.now(UTC)
    with CallbackStore(tmp_path / "receipts.db") as store:
        watch = ReceiptsWatch(store, [SENDER], since=started)
        watch.start()
        watch.stop()
        assert watch.stop_code is None
        later = datetime.now(UTC) + timedelta(seconds=1)
        other = StatusUpdate("m:0", "failed", later, later, error_code="E110",
                             business="+14155550123")  # fmt: skip
        store.add_status(other)
        watch._read()
        assert watch.stop_code is None  # another business number
        store.add_status(StatusUpdate("n:0", "failed", later, later, error_code="E110"))
        watch._read()
        assert watch.stop_code is not None
        assert watch.stop_code.code == "E110"
        assert watch.stop_code.who == "Kaleyra"
        assert "top up the Kaleyra account" in watch.stop_code.headline()


def test_a_store_path_is_refused_naming_how_to_open_it(fresh_emulator: Emulator) -> None:
    report = validate(personal(UK[:1]), sender=SENDER)
    with pytest.raises(
        ConfigurationError, match=r"give the store open, as kb.CallbackStore\('receipts.db'\)"
    ):
        send(report, fresh_emulator.client(), receipts="receipts.db", progress=False)
    with pytest.raises(TypeError, match="takes a receipts store"):
        send(report, fresh_emulator.client(), receipts=object(), progress=False)  # type: ignore[arg-type]
