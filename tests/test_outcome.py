"""The run's outcome as one value (issue #18): made by send, stored with the results in
every format, read back as the same value, and the one source of every command's exit code,
counts and next step."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SENDER
from openpyxl import load_workbook

import kwa_batch as kb
from kwa_batch.cli import cli
from kwa_batch.export import outcome_path
from kwa_batch.outcome import RunOutcome
from kwa_batch.results import STATUSES, Status, exit_code_for

FORMATS = (".xlsx", ".csv", ".parquet")
CLEAN = "to,body\n+919876543210,Hi\n+447911123456,Hello\n"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A run with a journal in which every status occurs but failed: sent, unknown (a 500
    after the message was processed), not_sent (a 503 until the attempts ran out) and
    rejected."""
    folder = tmp_path_factory.mktemp("mixed")
    df = pd.DataFrame(
        {"to": [f"+9198765{i:05d}" for i in range(6)] + ["12"], "body": "Your order shipped"}
    )
    with kb.Emulator() as emu:
        emu.inject("500")
        emu.inject("503", times=2)
        return kb.send(
            df,
            emu.client(),
            sender=SENDER,
            journal=folder / "j.db",
            max_recipients_per_request=1,
            concurrency=1,
            max_attempts=2,
            backoff=0.01,
            progress=False,
        )


def test_status_is_the_one_home_of_result_statuses() -> None:
    assert tuple(Status) == STATUSES  # a StrEnum: each member is its string
    assert all(type(status) is str for status in STATUSES)
    assert Status.NOT_SENT == "not_sent"
    assert all(Status(status).meaning for status in STATUSES)
    assert [s for s in Status if s.incomplete] == [Status.UNKNOWN, Status.NOT_SENT]
    # Kaleyra's delivery statuses are another term, with spellings of their own.
    assert "delivered" not in STATUSES
    assert "not-sent" not in STATUSES


def test_results_hold_plain_strings_and_every_status_is_counted(mixed: pd.DataFrame) -> None:
    assert {type(value) for value in mixed["status"]} == {str}
    outcome = mixed.attrs["run"]
    assert isinstance(outcome, RunOutcome)
    assert outcome.counts == {
        "sent": 4, "failed": 0, "unknown": 1, "not_sent": 1, "rejected": 1, "holdout": 0,
    }  # fmt: skip
    assert outcome.rows == len(mixed)
    assert outcome.exit_code == RunOutcome.of(mixed).exit_code == 3  # stored and counted anew
    assert str(outcome.journal).endswith("j.db")
    assert outcome.started_at is not None
    assert outcome.started_at.tzinfo is not None
    assert outcome.next_step == (
        "Incomplete: send again with the same journal to send the 1 not_sent row(s); the 1 "
        "unknown row(s) may have been sent: check them, then add resend_unknown=True "
        "(--resend-unknown) to send them again."
    )


@pytest.mark.parametrize("suffix", FORMATS)
def test_the_outcome_reads_back_as_the_same_value(
    mixed: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    written = kb.export_results(mixed, tmp_path / f"r{suffix}")
    back = kb.load_results(written)
    assert isinstance(back.attrs["run"], RunOutcome)
    assert back.attrs["run"] == mixed.attrs["run"]
    assert {type(value) for value in back["status"]} == {str}


def test_facts_of_the_run_survive_the_file(mixed: pd.DataFrame, tmp_path: Path) -> None:
    """What the rows cannot say (a signal, a file written elsewhere) comes back too."""
    stopped = dataclasses.replace(mixed.attrs["run"], stopped_by="SIGTERM")
    moved = stopped.with_export_error("cannot write /x/r.xlsx; saved to r.csv instead")
    for outcome, code in ((stopped, 143), (moved, 143)):
        frame = mixed.copy()
        frame.attrs["run"] = outcome
        for suffix in FORMATS:
            back = kb.load_results(kb.export_results(frame, tmp_path / f"r{suffix}"))
            assert back.attrs["run"].exit_code == code, suffix
            assert back.attrs["run"].export_error == outcome.export_error
    elsewhere = RunOutcome(counts={"sent": 2}).with_export_error("disk full")
    assert (elsewhere.exit_code, RunOutcome(counts={"sent": 2}).exit_code) == (3, 0)
    assert RunOutcome(counts={"failed": 1}, journal_error="disk full").exit_code == 3


def test_the_rows_of_a_file_are_the_truth(mixed: pd.DataFrame, tmp_path: Path) -> None:
    """An edited file is counted from its rows; one without its outcome still has one."""
    path = kb.export_results(mixed, tmp_path / "r.csv")
    table = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    table["status"] = table["status"].replace({"unknown": "sent", "not_sent": "sent"})
    table.to_csv(path, index=False)
    edited = kb.load_results(path).attrs["run"]
    assert edited.counts["sent"] == 6
    assert edited.exit_code == 1  # the rejected row
    assert edited.journal == mixed.attrs["run"].journal  # the run's facts kept
    outcome_path(path).unlink()
    alone = kb.load_results(path).attrs["run"]
    assert (alone.exit_code, alone.started_at, alone.journal) == (1, None, None)


def test_an_unreadable_stored_outcome_is_one_line(mixed: pd.DataFrame, tmp_path: Path) -> None:
    path = kb.export_results(mixed, tmp_path / "r.csv")
    outcome_path(path).write_text("{not json", encoding="utf-8")
    with pytest.raises(kb.InputError, match=r"r\.csv\.run\.json: is not readable .*delete it"):
        kb.load_results(path)
    for damaged in (
        {"started_at": "yesterday"},
        {"format": 1, "stopped_by": 15},  # was an AttributeError in the exit code
        {"format": 1, "started_at": 5},  # was a ValueError while the report printed
        {"format": 1, "settings": ["journal"]},
    ):
        outcome_path(path).write_text(json.dumps(damaged), encoding="utf-8")
        with pytest.raises(kb.InputError, match="the run's outcome stored with it is not"):
            kb.load_results(path)


def test_an_outcome_of_an_earlier_version_keeps_its_journal() -> None:
    """Before the outcome had a form of its own, the settings stood flat among the facts:
    the journal is still known, so the next step says to send again with it."""
    from kwa_batch import RunOutcome

    flat = {"journal": "run.db", "rate_limit": 80, "started_at": "2026-12-01T09:00:00+00:00"}
    counts = dict.fromkeys(kb.STATUSES, 0) | {"sent": 1, "not_sent": 2}
    outcome = RunOutcome.from_dict(flat | {"counts": counts})
    assert outcome.journal == "run.db"
    assert outcome.next_step is not None
    assert "send again with the same journal" in outcome.next_step


def test_the_workbook_shows_the_run_and_keeps_it_as_data(
    mixed: pd.DataFrame, tmp_path: Path
) -> None:
    book = load_workbook(kb.export_results(mixed, tmp_path / "r.xlsx"), read_only=True)
    summary = {r[0]: r[1:2] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    run = {r[0]: r[1] for r in book["Run"].iter_rows(values_only=True)}
    book.close()
    assert "What to do next" in summary
    assert summary["exit_code"] == (3,)  # the facts for support, typed
    assert summary["journal"] == (mixed.attrs["run"].journal,)
    assert json.loads(run["exit_code"]) == 3
    assert json.loads(run["counts"])["unknown"] == 1


def test_the_outcome_follows_the_frame_through_pandas(mixed: pd.DataFrame) -> None:
    outcome = mixed.attrs["run"]
    others = pd.DataFrame({"ref": range(len(mixed))}, index=mixed.index)
    for derived in (
        mixed.copy(),
        mixed[mixed["status"] == "sent"],
        mixed.loc[:, ["to", "status"]],
        mixed.sort_values("to"),
        mixed.assign(note="x"),
        mixed.rename(columns={"to": "phone"}),
        pd.concat([mixed, mixed]),
    ):
        assert derived.attrs["run"] == outcome
    # As documented: frames of different attrs meeting drop it (pandas 3).
    assert "run" not in mixed.join(others).attrs
    # A selection still describes the whole run; RunOutcome.of counts a frame anew.
    assert RunOutcome.of(mixed[mixed["status"] == "sent"]).exit_code == 0


def test_exit_code_rules() -> None:
    assert exit_code_for({"sent": 3}) == 0
    assert exit_code_for({"sent": 3, "rejected": 1}) == 1
    assert exit_code_for({"failed": 1, "unknown": 1}) == 3  # 3 wins over 1
    assert exit_code_for({"not_sent": 2}, never_sent=2) == 1  # expired: never to be sent
    assert exit_code_for({"not_sent": 2}, never_sent=1) == 3
    assert RunOutcome(counts={"sent": 1}, stopped_by="SIGINT").exit_code == 130
    assert RunOutcome(counts={"sent": 1}, stopped_by="SIGHUP").exit_code == 129


def test_next_steps() -> None:
    assert RunOutcome(counts={"sent": 2, "rejected": 1}).next_step is None
    unsafe = RunOutcome(counts={"sent": 2, "not_sent": 3})
    assert unsafe.next_step is not None
    assert "without a journal= (--journal) would send the sent rows twice" in unsafe.next_step
    refused = RunOutcome(
        counts={"not_sent": 3}, credentials_refused=True, settings={"journal": "j.db"}
    )
    assert refused.next_step == (
        "Stopped: the API refused the credentials (HTTP 401/403). Check KALEYRA_SID, "
        "KALEYRA_API_KEY and KALEYRA_BASE_URL (the key must belong to that SID and region); "
        "nothing more was sent after the refusal.\n"
        "Once fixed: send again with the same journal to send the 3 not_sent row(s)."
    )
    journal = RunOutcome(counts={"sent": 2}, journal_error="journal j.db: disk full")
    assert journal.next_step == "Incomplete: journal j.db: disk full."


# --- send and report agree on every results file ----------------------------------------------


def _case(name: str, tmp_path: Path, sample_csv: Path) -> tuple[Path, dict[str, object], list]:
    """A recipient file, the emulator's settings and extra options for one kind of run."""
    clean = tmp_path / "clean.csv"
    clean.write_text(CLEAN, encoding="utf-8")
    return {
        "all sent": (clean, {}, []),
        "some rejected": (sample_csv, {}, []),
        "unknown, with a journal": (clean, {"faults": {"500": 1.0}}, ["--journal", "j.db"]),
        "unknown, without a journal": (clean, {"faults": {"500": 1.0}}, []),
        "bad key": (clean, {"api_key": "not-the-key"}, ["--journal", "k.db"]),
    }[name]


@pytest.mark.parametrize(
    "name",
    ["all sent", "some rejected", "unknown, with a journal", "unknown, without a journal",
     "bad key"],
)  # fmt: skip
def test_send_and_report_agree(
    runner: CliRunner, tmp_path: Path, sample_csv: Path, name: str
) -> None:
    source, settings, options = _case(name, tmp_path, sample_csv)
    wrong_key = settings.pop("api_key", None)
    codes = set()
    with kb.Emulator(**settings) as emu:  # type: ignore[arg-type]
        env = {
            "KALEYRA_SID": emu.sid,
            "KALEYRA_API_KEY": str(wrong_key or emu.api_key),
            "KALEYRA_BASE_URL": emu.url,
            "KALEYRA_FROM": SENDER,
        }
        for suffix in FORMATS:
            out, summary = tmp_path / f"r{suffix}", tmp_path / "s.json"
            folder = tmp_path / suffix[1:]  # a journal of its own for each run
            folder.mkdir()
            journal = [str(folder / o) if o.endswith(".db") else o for o in options]
            sent = runner.invoke(
                cli,
                ["send", str(source), "--out", str(out), "--summary-json", str(summary),
                 *journal],
                env=env,
            )  # fmt: skip
            reported = runner.invoke(cli, ["report", str(out)])
            assert reported.exit_code == sent.exit_code, (suffix, sent.output, reported.output)
            said = reported.output.splitlines()
            assert said[1:], reported.output
            lines = sent.output.splitlines()
            assert all(line in lines for line in said[1:] if line), (sent.output, said)
            written = json.loads(summary.read_text())
            assert written["exit_code"] == sent.exit_code
            if sent.exit_code == 3:  # what to do next, said by both
                assert written["next_step"].splitlines()[-1] in said
                assert written["next_step"].splitlines()[-1] in lines
            codes.add(sent.exit_code)
    assert len(codes) == 1
    expected = {"all sent": 0, "some rejected": 1}.get(name, 3)
    assert codes == {expected}


def test_report_exits_as_the_run_stopped_by_a_signal(
    mixed: pd.DataFrame, runner: CliRunner, tmp_path: Path
) -> None:
    frame = mixed.copy()
    frame.attrs["run"] = dataclasses.replace(
        mixed.attrs["run"], stopped_by="SIGINT", finished_at=datetime.now(UTC)
    )
    out = kb.export_results(frame, tmp_path / "r.csv")
    reported = runner.invoke(cli, ["report", str(out)])
    assert reported.exit_code == 130
    assert "Interrupted: send again with the same journal" in reported.output
    assert "add --resend-unknown to send them again" in reported.output


def test_a_run_stopped_after_its_last_row_says_nothing_is_left() -> None:
    """A signal that lands after every row settled: exit 130, and a next step in words, not
    'Interrupted: None.'"""
    from kwa_batch import RunOutcome

    counts = dict.fromkeys(kb.STATUSES, 0) | {"sent": 5}
    outcome = RunOutcome(counts, stopped_by="SIGINT")
    assert outcome.exit_code == 130
    assert outcome.next_step == (
        "Interrupted: every row has its final status; nothing is left to send."
    )
