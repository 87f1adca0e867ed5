"""CallbackStore.updates_with_codes: what a run watching the store reads every second — only
the codes asked for, received since the run started, each row once across reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kwa_batch.receipts.store import CallbackStore, StatusUpdate


def failed(message_id: str, code: str, received: datetime) -> StatusUpdate:
    return StatusUpdate(message_id, "failed", received, received, error_code=code)


def test_only_new_rows_with_the_codes_since_the_start_are_read_once(tmp_path: Path) -> None:
    start = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
    with CallbackStore(tmp_path / "receipts.db") as store:
        store.add_status(failed("old:0", "131048", start - timedelta(days=7)))
        store.add_status(failed("a:0", "131048", start + timedelta(seconds=1)))
        store.add_status(failed("b:0", "131026", start + timedelta(seconds=2)))  # not asked
        found, last = store.updates_with_codes({"131048", "132015"}, start)
        assert found["message_id"].tolist() == ["a:0"]
        assert found["received_at"].dtype == "datetime64[us, UTC]"
        again, same = store.updates_with_codes({"131048", "132015"}, start, last)
        assert again.empty  # read once
        assert same == last
        store.add_status(failed("c:0", "132015", start + timedelta(seconds=3)))
        new, later = store.updates_with_codes({"131048", "132015"}, start, last)
        assert new["message_id"].tolist() == ["c:0"]
        assert new["error_code"].tolist() == ["132015"]
        assert later > last
        none, _ = store.updates_with_codes(set(), start)
        assert none.empty


@pytest.mark.parametrize("given", ["131048.0", " 131048", "131048"])
def test_a_code_is_stored_in_the_tables_spelling_so_the_watch_sees_it(
    tmp_path: Path, given: str
) -> None:
    """Review of #19: a JSON 131048.0 did not stop a running campaign (the watch matches
    the stored code exactly)."""
    at = datetime.now(UTC)
    with CallbackStore(tmp_path / "r.db") as store:
        store.add_status(StatusUpdate("m:0", "failed", at, at, error_code=given))
        found, _ = store.updates_with_codes({"131048"}, at - timedelta(seconds=1))
    assert found["error_code"].tolist() == ["131048"]


def test_a_known_code_in_another_case_is_stored_in_its_own(tmp_path: Path) -> None:
    at = datetime.now(UTC)
    with CallbackStore(tmp_path / "r.db") as store:
        store.add_status(StatusUpdate("m:0", "failed", at, at, error_code="wav2101"))
        store.add_status(StatusUpdate("m:1", "failed", at, at, error_code="x9"))
        assert store.status_updates()["error_code"].tolist() == ["WAV2101", "x9"]
