"""kb.send_file: a file sent in parts gives what the in-memory send gives, row by row, and
writes every input row once, as the parts settle (issue #21 item 4)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.streaming import MAX_CHUNK_ROWS

COMPARED = ["line", "to", "status", "error_code", "error_message", "from_journal", "sender"]
FAST = {"rate_limit": None, "per_recipient_interval": 0, "progress": False}


def messy_file(path: Path, seed: int, rows: int = 40) -> Path:
    """Valid rows, invalid numbers, a ragged row, blank lines, a body over two lines, and
    repeats of earlier rows at every distance (so across the borders of any part size)."""
    rng = random.Random(seed)
    lines = ["to,body,name"]
    written: list[tuple[str, str]] = []
    for i in range(rows):
        pick = rng.random()
        if pick < 0.2 and written:
            to, body = rng.choice(written)  # a repeat of an earlier row: KWA007
        elif pick < 0.3:
            to, body = f"+9198{i:08d}", f"Other message {rng.randint(0, 2)}"
            to = rng.choice(written)[0] if written else to  # same recipient, another message
        elif pick < 0.38:
            to, body = rng.choice(["12345", "9.19876543210E+11", "+91987654321x"]), "Hi"
        else:
            to, body = f"+9198{rng.randint(0, 30):08d}", f"Hi {rng.randint(0, 3)}"
        written.append((to, body))
        lines.append(f'{to},"{body}",name {i}')
        if rng.random() < 0.05:
            lines.append("")  # a blank line: skipped, lines still counted
        if rng.random() < 0.05:
            lines.append(f'+9199{i:08d},"two\nlines",x')
        if rng.random() < 0.03:
            lines.append(f"+9197{i:08d},ragged,row,extra")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def in_memory(path: Path, journal: Path, **options: object) -> tuple[pd.DataFrame, int]:
    with kb.Emulator() as emu:
        df = kb.load_recipients(path)
        results = kb.send(df, emu.client(), sender=SENDER, journal=journal, **FAST, **options)
        return results, emu.message_count


def in_parts(
    path: Path, out: Path, journal: Path, rows: int, **options: object
) -> tuple[kb.RunOutcome, pd.DataFrame, int]:
    with kb.Emulator() as emu:
        outcome = kb.send_file(
            path, emu.client(), out=out, chunk_rows=rows, sender=SENDER, journal=journal,
            **FAST, **options,
        )  # fmt: skip
        count = emu.message_count
    return outcome, kb.load_results(out), count


def same_rows(parts: pd.DataFrame, whole: pd.DataFrame) -> None:
    assert list(parts.index) == list(whole.index)
    pd.testing.assert_frame_equal(parts[COMPARED], whole[COMPARED], check_dtype=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rows", [1, 3, 7])
def test_parts_give_the_statuses_and_messages_of_the_whole_file(
    tmp_path: Path, seed: int, rows: int
) -> None:
    path = messy_file(tmp_path / "campaign.csv", seed)
    whole, sent_whole = in_memory(path, tmp_path / "whole.db")
    outcome, parts, sent_parts = in_parts(path, tmp_path / "r.parquet", tmp_path / "p.db", rows)
    same_rows(parts, whole)
    assert sent_parts == sent_whole  # the same messages left, counted at the emulator
    assert dict(outcome.counts) == dict(kb.RunOutcome.of(whole).counts)
    assert outcome.exit_code == kb.RunOutcome.of(whole).exit_code
    assert "KWA007" in set(whole["error_code"].dropna())  # the file does repeat rows


def test_a_repeat_in_a_later_part_names_the_earlier_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "to,body\n+919876543210,Hi\n+919876543211,Hi\n+919876543212,Hi\n+919876543210,Hi\n"
    )
    _, parts, sent = in_parts(path, tmp_path / "r.parquet", tmp_path / "j.db", 2)
    row = parts.loc[3]
    assert (row["status"], row["error_code"], row["line"]) == ("rejected", "KWA007", 5)
    assert "appears earlier (line 2)" in row["error_message"]
    assert sent == 3


def test_quiet_hours_hold_the_same_rows_in_parts(tmp_path: Path, wall_clock) -> None:
    # 20:00 UTC: 01:30 in India (quiet), 20:00 in London, 15:00 in New York (not).
    wall_clock.set(datetime(2026, 12, 7, 20, 0, tzinfo=UTC), speed=1.0)
    numbers = ["+919876543210", "+447911123456", "+12025550123", "+919845012345"] * 3
    frame = pd.DataFrame(
        {"to": numbers, "body": [f"Hello {i}" for i in range(len(numbers))]},
    )
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    quiet = {"quiet_hours": "21:00-09:00"}
    whole, sent_whole = in_memory(path, tmp_path / "whole.db", **quiet)
    outcome, parts, sent_parts = in_parts(path, tmp_path / "r.parquet", tmp_path / "p.db", 5,
                                          **quiet)  # fmt: skip
    same_rows(parts, whole)
    assert sent_parts == sent_whole == 6
    assert set(parts.loc[parts["status"] == "not_sent", "error_code"]) == {"KWA027"}
    assert outcome.held == {"KWA027": 6}
    assert outcome.exit_code == 3


def test_the_daily_limit_counts_every_part(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(12)], "template_name": "promo", "params": "x"}
    )
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    _outcome, parts, sent = in_parts(path, tmp_path / "r.parquet", tmp_path / "j.db", 4,
                                    daily_limit=5)  # fmt: skip
    assert sent == 5
    assert (parts["status"] == "sent").sum() == 5
    assert set(parts.loc[parts["status"] == "not_sent", "error_code"]) == {"KWA030"}


def test_results_are_written_a_row_group_a_part_as_export_writes_them(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "campaign.csv", 4, rows=20)
    whole, _ = in_memory(path, tmp_path / "whole.db")
    exported = kb.load_results(kb.export_results(whole, tmp_path / "whole.parquet",
                                                 data=kb.load_recipients(path)))  # fmt: skip
    outcome, parts, _ = in_parts(path, tmp_path / "r.parquet", tmp_path / "p.db", 6)
    assert list(parts.columns) == list(exported.columns)
    assert parts.dtypes.to_dict() == exported.dtypes.to_dict()
    assert pq.ParquetFile(tmp_path / "r.parquet").num_row_groups == -(-outcome.rows // 6)
    assert parts.attrs["run"].counts == outcome.counts  # the outcome is in the file
    assert outcome.settings["chunk_rows"] == 6
    assert not list(tmp_path.glob(".r.parquet.*"))  # no partial file left


def test_csv_results_hold_every_row_once(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "campaign.csv", 5, rows=20)
    whole, _ = in_memory(path, tmp_path / "whole.db")
    _, parts, _ = in_parts(path, tmp_path / "r.csv", tmp_path / "p.db", 4)
    assert list(parts.index) == list(whole.index)
    assert list(parts["status"]) == list(whole["status"])
    assert (tmp_path / "r.csv.run.json").is_file()


@pytest.mark.parametrize("out", ["results.xlsx", "results.XLSM"])
def test_a_workbook_is_refused_before_anything_is_sent(tmp_path: Path, out: str) -> None:
    path = messy_file(tmp_path / "campaign.csv", 1)
    with kb.Emulator() as emu:
        with pytest.raises(kb.KwaBatchError, match=r"1,048,576 rows.*\.parquet") as caught:
            kb.send_file(path, emu.client(), out=tmp_path / out, sender=SENDER, progress=False)
        assert emu.message_count == 0
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.glob("*results*"))


@pytest.mark.parametrize("rows", [0, -5, MAX_CHUNK_ROWS + 1, 10**12, 2.5, "100", True, None])
def test_absurd_part_sizes_are_refused(tmp_path: Path, rows: object) -> None:
    path = messy_file(tmp_path / "campaign.csv", 1)
    with kb.Emulator() as emu:
        with pytest.raises(kb.ConfigurationError, match=r"chunk_rows=.*from 1 to 5,000,000"):
            kb.send_file(path, emu.client(), out=tmp_path / "r.parquet", chunk_rows=rows,  # type: ignore[arg-type]
                         sender=SENDER)  # fmt: skip
        assert emu.message_count == 0


def test_a_file_unreadable_further_down_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.csv"
    good = "".join(f"+9198{i:08d},Hi\n" for i in range(30))
    path.write_bytes(b"to,body\n" + good.encode() + b'+919876543210,"never closed\n')
    with kb.Emulator() as emu:
        with pytest.raises(kb.InputError, match=r"line 32 opens a quoted value"):
            kb.send_file(path, emu.client(), out=tmp_path / "r.parquet", chunk_rows=5,
                         sender=SENDER, progress=False)  # fmt: skip
        assert emu.message_count == 0
    assert not list(tmp_path.glob("*r.parquet*"))


def test_holds_without_a_journal_are_refused(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "campaign.csv", 1)
    with kb.Emulator() as emu, pytest.raises(kb.ConfigurationError, match="journal="):
        kb.send_file(path, emu.client(), out=tmp_path / "r.parquet", sender=SENDER,
                     daily_limit=10)  # fmt: skip


def test_load_recipients_says_when_to_send_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from kwa_batch.loading import recipients

    monkeypatch.setattr(recipients, "PARTS_ABOVE_ROWS", 10)
    path = messy_file(tmp_path / "campaign.csv", 1)
    kb.load_recipients(path)
    assert "--chunk-rows 100000 --out results.parquet" in caplog.text
    assert "kb.send_file" in caplog.text


def test_other_keywords_and_another_api_version_are_refused(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "campaign.csv", 1)
    with kb.Emulator() as emu:
        with pytest.raises(TypeError, match="'colour'"):
            kb.send_file(path, emu.client(), out=tmp_path / "r.parquet", colour="red")
        with pytest.raises(kb.ConfigurationError, match=r"api_version='v2'.*v1 API"):
            kb.send_file(path, emu.client(), out=tmp_path / "r.parquet", api_version="v2")
        assert emu.message_count == 0
