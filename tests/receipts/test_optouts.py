"""opt_outs: who opted out, when and how, from a real callback store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.emulator.server import Emulator
from kwa_batch.errors import InputError
from kwa_batch.receipts.optouts import (
    OPT_OUT_COLUMNS,
    OPT_OUT_KEYWORDS,
    OptOutSource,
    opt_outs,
)
from kwa_batch.receipts.receiver import Receiver
from kwa_batch.receipts.store import CallbackStore, IncomingMessage, StatusUpdate

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DEADLINE = 20.0


def write(
    path: Path, replies: list[tuple[str, str, int]], failed: list[tuple[str, str, int]] = ()
) -> Path:  # type: ignore[assignment]
    """Replies (number, body, minutes after T0) and status updates (number, code, minutes)."""
    with CallbackStore(path) as store:
        for i, (number, body, minutes) in enumerate(replies):
            at = T0 + timedelta(minutes=minutes)
            store.add_incoming(IncomingMessage(f"k{i}", number, SENDER, at, at, "text", None, body))
        for i, (number, code, minutes) in enumerate(failed):
            at = T0 + timedelta(minutes=minutes)
            store.add_status(StatusUpdate(f"m{i}:0", "failed", at, at, number, code, "stopped"))
    return path


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", "  Stop!  ", "STOP ALL", "stop   all", "Unsubscribe", "UNSUBSCRIBE.",
     "बंद करो", "रुको", "PARAR", "Pare", "Baja", "darme de baja", "STOPP", "Abmelden",
     "ARRÊT", "désabonner", "ｓｔｏｐ", "STOP 🛑", "🛑 stop", "Stop 🙏🏽", "¡Baja!",
     "stop\u00a0all", "STOP ✋️"],
)  # fmt: skip
def test_opt_out_keywords_in_several_languages(tmp_path: Path, body: str) -> None:
    found = opt_outs(write(tmp_path / "r.db", [("+919876543210", body, 5)]))
    assert found["number"].tolist() == ["+919876543210"]
    assert found.loc[0, "how"] == "reply"
    assert found.loc[0, "detail"] == body.strip()
    assert found.loc[0, "opted_out_at"] == pd.Timestamp(T0 + timedelta(minutes=5))


@pytest.mark.parametrize(
    "body",
    ["please stop the deliveries", "STOP?? why did my order stop", "stopping by later", "Top",
     "Thanks, got it!", "", "unsubscribed already"],
)  # fmt: skip
def test_only_a_whole_message_opts_out(tmp_path: Path, body: str) -> None:
    assert opt_outs(write(tmp_path / "r.db", [("+919876543210", body, 5)])).empty


def test_a_later_start_lifts_it_and_a_later_stop_counts_again(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.db",
        [
            ("+919811111111", "STOP", 1),
            ("+919811111111", "START", 2),  # lifted
            ("+912222222222", "STOP", 1),
            ("+912222222222", "start", 2),
            ("+912222222222", "Stop", 3),  # opted out again, since minute 3
            ("+913333333333", "STOP", 1),
            ("+913333333333", "STOP ALL", 4),  # still since the first one
            ("+914444444444", "START", 9),  # never opted out
        ],
    )
    found = opt_outs(path).set_index("number")
    assert found.index.tolist() == ["+912222222222", "+913333333333"]
    assert found.loc["+912222222222", "opted_out_at"] == pd.Timestamp(T0 + timedelta(minutes=3))
    assert found.loc["+913333333333", "opted_out_at"] == pd.Timestamp(T0 + timedelta(minutes=1))


def test_failed_with_131050_is_an_opt_out(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.db",
        [("+447911123456", "START", 30)],
        failed=[("+919876543210", "131050", 3), ("+447911123456", "131050", 1),
                ("+12025550143", "131026", 2)],
    )  # fmt: skip
    found = opt_outs(path)
    assert list(found.columns) == list(OPT_OUT_COLUMNS)
    assert found.to_dict("records") == [
        {
            "number": "+919876543210",
            "opted_out_at": pd.Timestamp(T0 + timedelta(minutes=3)),
            "how": "131050",
            "detail": "stopped",
        }
    ]


def test_keywords_are_configurable(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.db", [("+919811111111", "No thanks!", 1), ("+912222222222", "STOP", 1)]
    )
    assert opt_outs(path, keywords=["no thanks"])["number"].tolist() == ["+919811111111"]
    both = opt_outs(path, keywords=OPT_OUT_KEYWORDS | {"NO THANKS"})
    assert both["number"].tolist() == ["+912222222222", "+919811111111"]
    assert opt_outs(path, start_keywords=["stop"]).empty  # a stop that is also a start lifts


def test_an_open_store_and_a_missing_one(tmp_path: Path) -> None:
    path = write(tmp_path / "r.db", [("+919811111111", "STOP", 1)])
    with CallbackStore(path) as store:
        assert len(opt_outs(store)) == 1
    with pytest.raises(InputError, match="no such callback store"):
        opt_outs(tmp_path / "missing.db")


def test_the_emulator_s_stop_reply_and_131050_reach_opt_outs(tmp_path: Path) -> None:
    store = tmp_path / "receipts.db"
    settings = {"delivered": 0.0, "failed_code": "131050", "failed_reason": "user stopped"}
    with Receiver(store) as receiver, Emulator(callbacks=settings) as emu:
        kb.send(
            pd.DataFrame(
                {"to": ["+447911123456"], "body": ["Hi"], "callback_url": receiver.callback_url}
            ),
            emu.client(),
            sender=SENDER,
            progress=False,
        )
        assert emu.reply("+919876543210", SENDER, "STOP", receiver.callback_url)
        assert emu.reply(
            "+12025550143", SENDER, "stop sending me the offers", receiver.callback_url
        )
        assert emu.wait_for_callbacks(DEADLINE), emu.callback_stats
    found = opt_outs(store).set_index("number")
    assert found.index.tolist() == ["+447911123456", "+919876543210"]
    assert found.loc["+447911123456", ["how", "detail"]].tolist() == ["131050", "user stopped"]
    assert found.loc["+919876543210", ["how", "detail"]].tolist() == ["reply", "STOP"]


def test_a_journal_is_refused_and_left_untouched(tmp_path: Path) -> None:
    import sqlite3

    journal = tmp_path / "campaign.db"
    with sqlite3.connect(journal) as db:
        db.execute("CREATE TABLE rows (id INTEGER)")
    with pytest.raises(InputError, match="not a callback store"):
        opt_outs(journal)
    with sqlite3.connect(journal) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["rows"]
    text = tmp_path / "numbers.csv"
    text.write_text("+919876543210\n")
    with pytest.raises(InputError, match="not a SQLite file"):
        kb.open_windows(text)


# -- issue 17: opt-outs normalised like recipients, wa_id forms, nothing dropped -----------

MEXICO = "+52 55 1234 5678"  # +525512345678; WhatsApp's wa_id may be 5215512345678
BRAZIL = "+55 11 98765 4321"  # +5511987654321; an older account's wa_id is 551187654321


def test_stop_replies_from_wa_id_forms_hold_the_recipients(tmp_path: Path) -> None:
    import requests

    store = tmp_path / "receipts.db"
    with Receiver(store) as receiver:
        # Kaleyra's incoming-message callback, as WhatsApp gives the wa_id: digits, no '+'.
        for wa_id in ("5215512345678", "551187654321"):
            fields = {"from": wa_id, "wanumber": SENDER, "type": "text", "body": "STOP"}
            answer = requests.post(receiver.callback_url, json=fields, timeout=DEADLINE)
            assert answer.status_code == 200, answer.text
    found = opt_outs(store)
    assert found["number"].tolist() == ["+525512345678", "+5511987654321"]
    assert found.attrs["unreadable"] == ()
    df = pd.DataFrame({"to": [MEXICO, BRAZIL, "+91 98765 43210"], "body": ["Hi"] * 3})
    for suppress in (found, OptOutSource(store)):
        report = kb.validate(df, sender=SENDER, suppress=suppress)
        assert report.invalid["to"].tolist() == [MEXICO, BRAZIL], suppress
        assert report.valid["to"].tolist() == ["+919876543210"]


def test_a_start_in_the_other_form_lifts_the_stop(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.db",
        [("+5215512345678", "STOP", 1), ("+525512345678", "START", 2),
         ("+551187654321", "START", 5)],
        failed=[("+5511987654321", "131050", 3)],
    )  # fmt: skip
    assert opt_outs(path).empty


def test_either_form_of_a_number_with_two_valid_forms(tmp_path: Path) -> None:
    # +55 11 7765 4321 and +55 11 97765 4321 are both valid: a STOP from one holds the other.
    path = write(tmp_path / "r.db", [("551177654321", "STOP", 1)])
    df = pd.DataFrame({"to": ["+55 11 97765 4321", "+55 11 7765 4321"], "body": ["Hi"] * 2})
    report = kb.validate(df, sender=SENDER, suppress=OptOutSource(path))
    assert report.valid.empty
    assert report.errors["error_code"].unique().tolist() == ["KWA025"]


def test_an_opt_out_that_cannot_be_read_is_reported_never_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kwa_batch.receipts.receiver import parse_callback

    path = tmp_path / "r.db"
    with CallbackStore(path) as store:
        for i, number in enumerate(["1234567", "+919876543210", "99998887776"]):
            store.add_incoming(parse_callback({"from": number, "body": "STOP", "id": str(i)}))
        store.add_incoming(parse_callback({"from": "5550001", "body": "Hello"}))  # no opt-out
    with caplog.at_level("WARNING", logger="kwa_batch"):
        found = opt_outs(path)
    assert found["number"].tolist() == ["+919876543210"]
    assert found.attrs["unreadable"] == ("+1234567", "+99998887776")
    [record] = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        f"{path}: 2 opt-out(s) name a number that cannot be read (***4567, *******7776): they "
        "suppress nobody; check what the receiver stores as the sender ('from') and the "
        "recipient ('mobile')"
    )
    # It does not stop the campaign: the readable opt-outs hold, the rest is kept visible.
    sup = kb.load_suppression(OptOutSource(path))
    assert sup["number"].tolist() == ["+919876543210"]
    assert sup.attrs["unreadable"] == ("+1234567", "+99998887776")
    report = kb.validate(
        pd.DataFrame({"to": ["+919876543210", "+447911123456"], "body": ["Hi", "Hi"]}),
        sender=SENDER,
        suppress=OptOutSource(path),
    )
    assert report.valid["to"].tolist() == ["+447911123456"]


def test_an_opt_out_source_reads_the_store_again_at_each_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "r.db", [("+12025550143", "Thanks", 1)])
    source = OptOutSource(path)
    assert source.path == path
    assert repr(source) == f"OptOutSource({str(path)!r})"
    # No opt-outs yet is a live source, not an empty list: accepted.
    assert source.opt_outs().empty
    assert kb.load_suppression(source).empty
    with CallbackStore(path) as store:
        at = T0 + timedelta(minutes=10)
        store.add_incoming(
            IncomingMessage("late", "+919876543210", SENDER, at, at, "text", None, "STOP")
        )
        store.add_incoming(IncomingMessage("bad", "+1234567", SENDER, at, at, "text", None, "STOP"))
    with caplog.at_level("WARNING", logger="kwa_batch"):
        for _ in range(3):
            assert source.opt_outs()["number"].tolist() == ["+919876543210"]
    # The unreadable one is said once, not at every read.
    assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(InputError, match="no such callback store"):
        OptOutSource(tmp_path / "missing.db").opt_outs()


def tapped(path: Path, taps: list[tuple[str, str | None, str | None, int]]) -> Path:
    """Button taps (number, text, payload, minutes after T0)."""
    with CallbackStore(path) as store:
        for i, (number, text, payload, minutes) in enumerate(taps):
            when = T0 + timedelta(minutes=minutes)
            store.add_incoming(
                IncomingMessage(
                    f"t{i}", number, SENDER, when, when, "button", None, text, payload=payload
                )
            )
    return path


@pytest.mark.parametrize(
    ("text", "payload"),
    [("Stop promotions", None), ("STOP PROMOTIONS", "xyz-17"), ("Detener promociones", None),
     ("Parar promoções", None), ("Werbung stoppen", None), ("Arrêter les promotions", None),
     ("प्रमोशन बंद करें", None), ("No thanks", "STOP_PROMOTIONS"), (None, "stop-promotions"),
     ("Nope", "opt_out"), (None, "UNSUBSCRIBE")],
)  # fmt: skip
def test_a_stop_promotions_tap_opts_out_by_its_text_or_its_payload(
    tmp_path: Path, text: str | None, payload: str | None
) -> None:
    found = opt_outs(tapped(tmp_path / "r.db", [("+919876543210", text, payload, 5)]))
    assert found["number"].tolist() == ["+919876543210"]
    assert found.loc[0, "how"] == "button"
    assert found.loc[0, "detail"] == (text or payload)


@pytest.mark.parametrize(
    ("text", "payload"),
    [("Yes, book it", "BOOK"), ("Stop", "KEEP_ME_POSTED"), ("Shop promotions", "SHOP"),
     (None, "stop_promotions_later")],
)  # fmt: skip
def test_other_taps_do_not_opt_out(tmp_path: Path, text: str | None, payload: str | None) -> None:
    # A tap whose text is a keyword opts out whatever its payload ("Stop" here).
    found = opt_outs(tapped(tmp_path / "r.db", [("+919876543210", text, payload, 5)]))
    assert found.empty == (text != "Stop")


def test_a_start_tap_lifts_a_stop_tap_and_payload_keywords_are_configurable(
    tmp_path: Path,
) -> None:
    path = tapped(
        tmp_path / "r.db",
        [("+919876543210", "Stop promotions", "STOP_PROMOTIONS", 5),
         ("+919876543210", "Resume offers", "RESUME", 9),
         ("+919811111111", "Not now", "NO_MORE_OFFERS", 5)],
    )  # fmt: skip
    assert opt_outs(path).empty
    found = opt_outs(path, keywords={"no more offers"})
    assert found["number"].tolist() == ["+919811111111"]
