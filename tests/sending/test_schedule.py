"""Pacing (issue #13): quiet hours per recipient's zone, the schedule, the daily limit, the
clock — against the real emulator, with real journals."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER, WallClock, campaign

from kwa_batch import ConfigurationError, Emulator, send, validate
from kwa_batch.errors import JournalError, JournalLockedError
from kwa_batch.sending.journal import Journal
from kwa_batch.sending.schedule import QuietHours, parse_duration

# A year ahead of any real run: the journals' real send times are then outside every
# 24-hour window these tests plan in (the window is judged by recorded times).
NOON = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
INDIA = ["+919876500001", "+919876500002"]
UK = ["+447911123451", "+447911123452"]
US = ["+12125550101", "+13125550102", "+14155550103"]  # New York, Chicago, Los Angeles
BRAZIL = ["+5511987650001"]


def history_journal(folder: Path, sent: dict[str, datetime], name: str = "old.db") -> Path:
    """A journal of an earlier run that sent to these recipients at these times."""
    path = folder / name
    with Journal(path, checkpoint_every=None) as journal:
        journal.record(
            (f"key-{number}", number, {"status": "sent", "message_id": "m", "sent_at": at})
            for number, at in sent.items()
        )
    return path


def by_status(results: pd.DataFrame) -> dict[str, list[str]]:
    return {s: sorted(g["to"]) for s, g in results.groupby("status")}


def test_campaign_across_zones_then_the_same_command_later(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """Done when: India, UK, US (3 zones), Brazil; window and limit kept; the rest go later,
    exactly once."""
    history = tmp_path / "history"
    history.mkdir()
    earlier = {f"+9198765{i:05d}": NOON - timedelta(hours=20) for i in range(90, 93)}
    history_journal(history, earlier)  # 3 recipients counted until 16:00 UTC
    report = validate(campaign(INDIA + UK + US + BRAZIL), sender=SENDER)
    options = {
        "quiet_hours": "21:00-09:00",
        "daily_limit": 6,
        "history": history,
        "journal": tmp_path / "campaign.db",
        "progress": False,
    }
    wall_clock.set(NOON)
    first = send(report, fresh_emulator.client(), **options)
    # 12:00 UTC: India 17:30, UK 13:00, Brazil 09:00 may go; New York 08:00, Chicago 07:00,
    # Los Angeles 05:00 may not. The limit leaves room for 6 - 3 = 3 new recipients.
    assert by_status(first)["sent"] == sorted(INDIA + UK[:1])
    held = first.set_index("to")
    assert held.loc[US, "error_code"].tolist() == ["KWA027"] * 3
    assert "(2027-06-01 13:00 UTC)" in held.loc[US[0], "error_message"]
    assert "09:00 America/Chicago (2027-06-01 14:00 UTC)" in held.loc[US[1], "error_message"]
    assert held.loc[[UK[1], *BRAZIL], "error_code"].tolist() == ["KWA030"] * 2
    assert "room from 2027-06-01 16:00 UTC" in held.loc[BRAZIL[0], "error_message"]
    assert first.attrs["run"].held == {"KWA027": 3, "KWA030": 2}
    assert "held back: 3 in quiet hours, 2 over the daily limit" in first.attrs["run"].headline
    assert len(fresh_emulator.messages) == 3

    # 16:30 the next day: every US zone is awake, and the 24-hour window has room again
    # (this run's own sends at 12:00 yesterday count until 12:00 today, as recorded).
    wall_clock.set(NOON + timedelta(hours=28.5))
    later = send(report, fresh_emulator.client(), **options)
    assert by_status(later) == {"sent": sorted(INDIA + UK + US + BRAZIL)}
    ledger = fresh_emulator.messages
    assert sorted(ledger["to"]) == sorted(INDIA + UK + US + BRAZIL)  # each exactly once


@pytest.mark.parametrize(
    ("now_utc", "quiet"),
    [
        (datetime(2027, 1, 15, 3, 30, tzinfo=UTC), True),  # 09:00 in India: end excluded...
        (datetime(2027, 1, 15, 3, 29, tzinfo=UTC), True),
        (datetime(2027, 1, 15, 15, 30, tzinfo=UTC), True),  # 21:00 in India: quiet
        (datetime(2027, 1, 15, 15, 29, tzinfo=UTC), False),
    ],
)
def test_quiet_hours_edges_in_india(
    wall_clock: WallClock, fresh_emulator: Emulator, now_utc: datetime, quiet: bool
) -> None:
    report = validate(campaign(INDIA[:1]), sender=SENDER)
    wall_clock.set(now_utc)
    results = send(report, fresh_emulator.client(), quiet_hours="21:00-09:30", progress=False)
    assert (results.loc[0, "status"] == "not_sent") is quiet


def test_a_number_spanning_many_zones_waits_for_all_of_them(
    wall_clock: WallClock, fresh_emulator: Emulator
) -> None:
    # +1 800 spans Guam (UTC+10) to Newfoundland (UTC-2:30) and Samoa (UTC-11).
    report = validate(campaign(["+18005550123"]), sender=SENDER)
    client = fresh_emulator.client()
    wall_clock.set(NOON)
    wide = send(report, client, quiet_hours="20:00-10:00", progress=False)
    assert wide.loc[0, "error_code"] == "KWA031"  # no hour awake everywhere: never sent
    assert "share no time" in wide.loc[0, "error_message"]
    # 21:00-09:00 leaves 23:00-23:30 UTC: 09:00 in Guam, 20:30 in St John's.
    wall_clock.set(NOON)
    held = send(report, client, quiet_hours="21:00-09:00", progress=False)
    assert held.loc[0, "error_code"] == "KWA027"
    assert "(2027-06-01 23:00 UTC)" in held.loc[0, "error_message"]
    at = datetime(2027, 6, 1, 23, 0, tzinfo=UTC)
    wall_clock.set(at)
    sent = send(report, client, quiet_hours="21:00-09:00", progress=False)
    assert sent.loc[0, "status"] == "sent"
    assert len(fresh_emulator.messages) == 1


def test_a_number_without_a_known_zone_is_not_guessed(
    wall_clock: WallClock, fresh_emulator: Emulator
) -> None:
    from kwa_batch.sending import schedule

    schedule.zones_of.cache_clear()
    report = validate(campaign(["+80012345678"]), sender=SENDER)  # international freephone
    if report.valid.empty:
        pytest.skip("libphonenumber does not take this number as valid")
    wall_clock.set(NOON)
    results = send(report, fresh_emulator.client(), quiet_hours="21:00-09:00", progress=False)
    assert results.loc[0, "error_code"] == "KWA031"
    assert "time zone of this number is unknown" in results.loc[0, "error_message"]


def test_expired_rows_are_never_sent_even_on_resume(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    report = validate(campaign(INDIA), sender=SENDER)
    journal = tmp_path / "run.db"
    start = datetime(2027, 6, 1, 3, 0, tzinfo=UTC)  # 08:30 in India: quiet
    common = {"quiet_hours": "21:00-09:00", "journal": journal, "progress": False}
    wall_clock.set(start)
    first = send(report, fresh_emulator.client(), expires="20m", **common)
    assert set(first["error_code"]) == {"KWA027"}
    # 40 minutes later the window opens, but the campaign expired at 03:20.
    wall_clock.set(start + timedelta(minutes=40))
    late = send(
        report,
        fresh_emulator.client(),
        expires=start + timedelta(minutes=20),
        **common,
    )
    assert set(late["error_code"]) == {"KWA029"}
    assert "expired at 2027-06-01 03:20 UTC" in late.loc[0, "error_message"]
    # Resumed without any expiry: the journal remembers; nothing goes.
    again = send(report, fresh_emulator.client(), journal=journal, progress=False)
    assert set(again["error_code"]) == {"KWA029"}
    assert again["from_journal"].all()
    assert fresh_emulator.messages.empty
    assert "2 expired, never sent" in again.attrs["run"].headline


def test_nothing_leaves_before_the_start(wall_clock: WallClock, fresh_emulator: Emulator) -> None:
    report = validate(campaign(INDIA, "text"), sender=SENDER)
    start = NOON + timedelta(hours=1)
    wall_clock.set(NOON)
    results = send(report, fresh_emulator.client(), not_before=start, progress=False)
    assert set(results["error_code"]) == {"KWA028"}
    assert "starts at 2027-06-01 13:00 UTC" in results.loc[0, "error_message"]
    assert fresh_emulator.messages.empty
    wall_clock.set(start)
    results = send(report, fresh_emulator.client(), not_before=start, progress=False)
    assert set(results["status"]) == {"sent"}


def test_the_daily_limit_counts_templates_only_and_recipients_once(
    wall_clock: WallClock,
    fresh_emulator: Emulator,
) -> None:
    templates = campaign(INDIA + INDIA + UK)  # India twice: the same two people
    texts = campaign(["+919876500077"], "text")
    report = validate(pd.concat([templates, texts], ignore_index=True), sender=SENDER)
    wall_clock.set(NOON)
    results = send(report, fresh_emulator.client(), daily_limit=2, progress=False)
    assert results["status"].tolist()[:4] == ["sent"] * 4 or results["status"].tolist()[:4] == [
        "sent",
        "sent",
        "rejected",
        "rejected",
    ]
    assert results.set_index("to").loc[UK, "error_code"].tolist() == ["KWA030"] * 2
    assert results.loc[6, "status"] == "sent"  # a text is not business-initiated


def test_a_history_journal_in_use_is_refused_clearly(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    history_journal(tmp_path, {UK[0]: NOON - timedelta(hours=1)}, "busy.db")
    report = validate(campaign(UK), sender=SENDER)
    busy = pytest.raises(JournalLockedError, match=r"busy\.db is in use by a running send")
    with Journal(tmp_path / "busy.db"), busy:  # another send holds it
        wall_clock.set(NOON)
        send(
            report,
            fresh_emulator.client(),
            daily_limit=5,
            history=tmp_path,
        )
    assert fresh_emulator.messages.empty


def test_history_counts_every_journal_under_the_folder(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """A journal named *.sqlite, or in a sub-folder, is counted, not passed over; files that
    are not databases (a results workbook) are passed over."""
    (tmp_path / "march").mkdir()
    history_journal(tmp_path / "march", {UK[0]: NOON - timedelta(hours=1)}, "run.sqlite")
    (tmp_path / "results.xlsx").write_bytes(b"PK\x03\x04 not a journal")
    report = validate(campaign(UK), sender=SENDER)
    wall_clock.set(NOON)
    results = send(report, fresh_emulator.client(), daily_limit=1, history=tmp_path, progress=False)
    assert results.set_index("to").loc[UK[0], "status"] == "sent"  # already counted
    assert results.set_index("to").loc[UK[1], "error_code"] == "KWA030"
    assert "room from 2027-06-02 11:00 UTC" in results.set_index("to").loc[UK[1], "error_message"]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("notes.db", b"not sqlite at all", r"notes\.db cannot be read fully: it is not a SQLite"),
        ("other.db", None, r"other\.db is a SQLite file but not a kwa_batch journal"),
        ("damaged.db", "damage", r"damaged\.db cannot be read fully"),
        ("bad-time.db", "time", r"bad-time\.db cannot be read fully: a recorded time"),
    ],
)
def test_a_history_source_that_cannot_be_read_fully_stops_the_run(
    wall_clock: WallClock,
    fresh_emulator: Emulator,
    tmp_path: Path,
    name: str,
    content: object,
    match: str,
) -> None:
    """Counting without it could go over the limit: refused before anything is sent."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE t (x)")
        other.close()
    else:
        many = {f"+4479111{i:05d}": NOON - timedelta(hours=1) for i in range(2000)}
        history_journal(tmp_path, many, name)
        if content == "time":
            db = sqlite3.connect(path)
            db.execute("UPDATE rows SET sent_at = 'yesterday' WHERE rowid = 7")
            db.commit()
            db.close()
        else:  # damage the pages of the rows table, past the header
            data = bytearray(path.read_bytes())
            data[8192:16384] = b"\xff" * 8192
            path.write_bytes(bytes(data))
    report = validate(campaign(UK), sender=SENDER)
    wall_clock.set(NOON)
    with pytest.raises(JournalError, match=match):
        send(report, fresh_emulator.client(), daily_limit=5, history=tmp_path, progress=False)
    assert fresh_emulator.messages.empty


def test_rows_in_flight_or_unknown_count_toward_the_limit(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """A run killed while requests were out: those may have reached the recipients."""
    path = tmp_path / "killed.db"
    wall_clock.set(NOON - timedelta(hours=3))
    with Journal(path, checkpoint_every=None) as journal:
        journal.mark_in_flight([(["k1"], [UK[0]])])
        journal.record([("k2", UK[1], {"status": "unknown", "error_code": "TIMEOUT"})])
    wall_clock.set(NOON)
    report = validate(campaign(["+447911123459"]), sender=SENDER)
    results = send(report, fresh_emulator.client(), daily_limit=2, history=tmp_path, progress=False)
    assert results.loc[0, "error_code"] == "KWA030"
    assert fresh_emulator.messages.empty


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"quiet_hours": "9pm-9am"}, "HH:MM-HH:MM"),
        ({"quiet_hours": "25:00-09:00"}, "HH:MM-HH:MM"),
        ({"quiet_hours": "09:00-09:00"}, "must differ"),
        ({"now": datetime(2027, 6, 1, 12, tzinfo=UTC)}, "a set clock only plans"),
        ({"not_before": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))}, "years from"),
        ({"expires": "99999999999d"}, "from 0 to 366 days"),
        ({"expires": "9999-12-31T23:59:59-14:00"}, "years from now"),
        ({"expires": timedelta(days=-1)}, "from 0 to 366 days"),
        ({"not_before": datetime(2027, 6, 1, 12)}, "timezone-aware"),
        ({"expires": "soon"}, "30m, 6h or 2d"),
        ({"expires": "2027-06-01T18:00"}, "timezone-aware"),
        ({"daily_limit": 0}, r"daily_limit=0\): give a whole number of recipients, 1 or more"),
        ({"daily_limit": "250"}, "a whole number of recipients"),
        ({"history": "/nonexistent/folder"}, "not a folder"),
    ],
)
def test_bad_settings_say_what_to_write(
    fresh_emulator: Emulator, options: dict[str, object], match: str
) -> None:
    report = validate(campaign(INDIA), sender=SENDER)
    with pytest.raises(ConfigurationError, match=match):
        send(report, fresh_emulator.client(), progress=False, **options)  # type: ignore[arg-type]
    assert fresh_emulator.messages.empty


def test_parsers() -> None:
    assert str(QuietHours.parse(" 21:00 - 09:00 ")) == "21:00-09:00"
    assert parse_duration("6h") == timedelta(hours=6)
    assert parse_duration("1.5d") == timedelta(hours=36)


def test_a_history_journal_left_by_a_killed_run_is_still_counted(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """Killed mid-run: its last sends are only in the -wal file, which a read-only reader
    must still see (else the limit is exceeded)."""
    import subprocess
    import sys

    at = (NOON - timedelta(hours=2)).isoformat()
    code = (
        "import os, datetime\n"
        "from kwa_batch.sending.journal import Journal\n"
        f"j = Journal({str(tmp_path / 'killed.db')!r}, checkpoint_every=None).open()\n"
        f"j.record([('k', {UK[0]!r}, {{'status': 'sent', 'sent_at': "
        f"datetime.datetime.fromisoformat({at!r})}})])\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert (tmp_path / "killed.db-wal").exists()
    report = validate(campaign(UK[1:]), sender=SENDER)
    wall_clock.set(NOON)
    results = send(report, fresh_emulator.client(), daily_limit=1, history=tmp_path, progress=False)
    assert results.loc[0, "error_code"] == "KWA030"
    assert "room from 2027-06-02 10:00 UTC" in results.loc[0, "error_message"]


def test_expires_as_a_time_in_text(wall_clock: WallClock, fresh_emulator: Emulator) -> None:
    report = validate(campaign(INDIA[:1]), sender=SENDER)
    wall_clock.set(NOON)
    results = send(report, fresh_emulator.client(), expires="2027-06-01T11:00Z", progress=False)
    assert results.loc[0, "error_code"] == "KWA029"


def test_an_expiry_given_as_a_duration_counts_from_the_campaigns_first_run(
    wall_clock: WallClock, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """cron runs `--expire-after 6h` every 15 minutes: the 6 h start with the first run."""
    report = validate(campaign(INDIA), sender=SENDER)
    start = datetime(2027, 6, 1, 3, 0, tzinfo=UTC)  # 08:30 in India: quiet until 09:00
    common = {"quiet_hours": "21:00-09:00", "journal": tmp_path / "run.db", "progress": False}
    wall_clock.set(start)
    first = send(report, fresh_emulator.client(), expires="20m", **common)
    assert set(first["error_code"]) == {"KWA027"}
    assert first.attrs["run"].settings["expires"] == "2027-06-01T03:20:00+00:00"
    wall_clock.set(start + timedelta(minutes=40))
    later = send(report, fresh_emulator.client(), expires="20m", **common)
    assert set(later["error_code"]) == {"KWA029"}  # not 04:00: the first run's 03:20
    assert fresh_emulator.messages.empty
