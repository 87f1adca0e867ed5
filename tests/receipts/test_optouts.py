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
from kwa_batch.receipts.optouts import OPT_OUT_COLUMNS, OPT_OUT_KEYWORDS, opt_outs
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
            ("+911111111111", "STOP", 1),
            ("+911111111111", "START", 2),  # lifted
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
        tmp_path / "r.db", [("+911111111111", "No thanks!", 1), ("+912222222222", "STOP", 1)]
    )
    assert opt_outs(path, keywords=["no thanks"])["number"].tolist() == ["+911111111111"]
    both = opt_outs(path, keywords=OPT_OUT_KEYWORDS | {"NO THANKS"})
    assert both["number"].tolist() == ["+911111111111", "+912222222222"]
    assert opt_outs(path, start_keywords=["stop"]).empty  # a stop that is also a start lifts


def test_an_open_store_and_a_missing_one(tmp_path: Path) -> None:
    path = write(tmp_path / "r.db", [("+911111111111", "STOP", 1)])
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
