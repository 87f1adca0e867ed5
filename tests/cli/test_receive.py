"""`kwa-batch receive` and `kwa-batch status`: callbacks in, delivery statuses next to rows."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pandas as pd
import pytest
import requests
from click.testing import CliRunner
from conftest import SENDER, start_receive

import kwa_batch as kb
from kwa_batch.cli import cli

TOKEN = "cli-t0ken"


@pytest.fixture
def run_files(tmp_path: Path, store_target: str) -> tuple[Path, str, pd.DataFrame]:
    """A results file of a run through the emulator, its callback store (a file, then a
    database), and the merge."""
    store = store_target
    df = pd.DataFrame(
        {"to": [f"+9198765{i:05d}" for i in range(8)] + ["12"], "body": "Your order shipped"}
    )
    with (
        kb.Receiver(store) as receiver,
        kb.Emulator(seed=2, callbacks={"delivered": 0.5, "failed_code": "131026"}) as emu,
    ):
        results = kb.send(
            df.assign(callback_url=receiver.callback_url),
            emu.client(),
            sender=SENDER,
            progress=False,
        )
        assert emu.wait_for_callbacks(20)
    path = tmp_path / "results.csv"
    kb.export_results(results, path)
    return path, store, kb.merge_receipts(results, store)


def test_status_writes_the_merged_results(
    runner: CliRunner, run_files: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    results, store, merged = run_files
    out = tmp_path / "merged.xlsx"
    outcome = runner.invoke(
        cli, ["status", str(results), "--receipts", str(store), "--out", str(out)]
    )
    assert outcome.exit_code == 1, outcome.output  # as the run that wrote it: one rejected
    delivered = int((merged["delivery_status"] == "delivered").sum())
    failed = int((merged["delivery_status"] == "failed").sum())
    assert delivered + failed == 8
    lines = outcome.output.splitlines()
    assert lines[:5] == [
        f"{results}: 9 rows, 8 with a message id",
        "Outcome: 8 sent, 1 rejected",
        f"Delivery: {delivered} delivered, {failed} failed",
        f"  131026      {failed:>6} failed",
        "",
    ]
    assert lines[-1] == f"Results: {out} (9 rows, one per input row)"
    total = next(line for line in lines if line.startswith("total")).split()
    # rows, sent, delivered, read, replied, failed, not sent, rejected
    assert total[1:9] == ["9", "8", str(delivered), "0", "0", str(failed), "0", "1"]
    written = kb.load_results(out)
    assert written["delivery_status"].tolist() == merged["delivery_status"].tolist()
    assert written.index.tolist() == merged.index.tolist()


def test_status_writes_here_by_default_as_send_does(
    runner: CliRunner,
    run_files: tuple[Path, str, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``send --out`` and ``status --out`` default to the same folder: the current one."""
    results, store, _ = run_files
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    outcome = runner.invoke(cli, ["status", str(results), "--receipts", str(store)])
    assert outcome.exit_code == 1, outcome.output  # as the run: one row rejected
    written = Path("results.status.csv")
    assert (here / written).is_file()
    assert not results.with_name("results.status.csv").exists()
    assert f"Results: {written} " in outcome.output
    assert "delivery_status" in kb.load_results(written).columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--receipts", "{tmp}/missing.db"], "no such callback store"),
        (["--receipts", "{store}", "--out", "{results}"], "choose another file"),
        (["--receipts", "{store}", "--out", "{tmp}/merged.txt"], "use a .xlsx, .csv or .parquet"),
    ],
)
def test_status_refuses_what_it_cannot_use(
    runner: CliRunner,
    run_files: tuple[Path, str, pd.DataFrame],
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    results, store, _ = run_files
    filled = [a.format(tmp=tmp_path, store=store, results=results) for a in args]
    outcome = runner.invoke(cli, ["status", str(results), *filled])
    assert outcome.exit_code == 2
    assert message in outcome.output
    assert "Traceback" not in outcome.output


def test_status_needs_message_ids(runner: CliRunner, tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text("row,to,status\n0,+919876543210,sent\n", encoding="utf-8")
    store = tmp_path / "receipts.db"
    kb.Receiver(store).start().stop()  # an empty store
    outcome = runner.invoke(cli, ["status", str(results), "--receipts", str(store)])
    assert outcome.exit_code == 2
    assert "no message_id" in outcome.output


def test_receive_refuses_a_port_in_use(runner: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = runner.invoke(
            cli, ["receive", "--port", str(port), "--store", str(tmp_path / "r.db")]
        )
    assert outcome.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in outcome.output


def test_receive_refuses_a_file_that_is_not_a_store(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database " * 100)
    outcome = runner.invoke(cli, ["receive", "--port", "0", "--store", str(path)])
    assert outcome.exit_code == 2
    assert "not a callback store" in outcome.output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_receive_serves_until_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    store = tmp_path / "receipts.db"
    proc, lines, shown = start_receive(store, {**os.environ, "KWA_RECEIVER_TOKEN": TOKEN})
    try:
        assert proc.stdout is not None
        assert shown.endswith("/callback?token=****")
        url = shown.replace("****", TOKEN)
        fields = {"id": "m:0", "status": "read", "mobile": "919876543210"}
        assert requests.get(url, params=fields, timeout=10).json()["stored"] is True
        refused = requests.get(url.split("?")[0], params=fields, timeout=10)
        assert refused.status_code == 401
        proc.send_signal(stop)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + output
    assert proc.returncode == 0, output
    assert "Stopped; 1 callback(s) stored, 0 repeated, 1 refused." in output
    # Issue #18: it said where it listens twice (its own line and the library's log).
    assert output.count("eceiving Kaleyra callbacks on") == 1, output
    assert "callback receiver on port" not in output
    assert "read: message m:0 to ********3210" in output
    assert TOKEN not in output
    assert "9876543210" not in output
    assert kb.load_receipts(store)["status"].tolist() == ["read"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("read", "write KEY=VALUE"),
        ("read=2", "read must be from 0 to 1"),
        ("colour=blue", "unknown callback setting"),
    ],
)
def test_emulator_refuses_bad_callback_settings(runner: CliRunner, spec: str, message: str) -> None:
    outcome = runner.invoke(cli, ["emulator", "--port", "0", "--callback", spec])
    assert outcome.exit_code == 2
    assert message in outcome.output


def test_validate_with_windows_flags_text_rows_needing_a_template(
    tmp_path: Path, store_target: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from click.testing import CliRunner

    from kwa_batch.cli import cli
    from kwa_batch.receipts.store import CallbackStore, IncomingMessage

    now = datetime.now(UTC) - timedelta(minutes=5)
    with CallbackStore(store_target) as store:
        store.add_incoming(
            IncomingMessage(
                key="k",
                customer="+919876543210",
                business="+911234567890",
                at=now,
                received_at=now,
                body="Hi",
            )
        )
    (tmp_path / "c.csv").write_text("to,body\n+919876543210,Thanks!\n+447911123456,Hello\n")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "validate",
            str(tmp_path / "c.csv"),
            "--from",
            "+911234567890",
            "--windows",
            store_target,
        ],
    )
    assert result.exit_code == 1, result.output
    assert "1 valid, 1 invalid" in result.output
    assert "KWA012" in result.output
    missing = runner.invoke(cli, ["validate", str(tmp_path / "c.csv"), "--windows", "nope.db"])
    assert missing.exit_code == 2
    assert "no such file" in missing.output


def test_one_callback_path_everywhere(sample_csv: Path) -> None:
    """The receiver prints the path the README uses; the sample names no receiver."""
    from kwa_batch.config import CALLBACK_PATH

    assert CALLBACK_PATH == "/kaleyra/callback"
    assert "/callback" not in sample_csv.read_text()
    readme = (sample_csv.parent.parent / "README.md").read_text()
    assert f"http://127.0.0.1:8765{CALLBACK_PATH}" in readme
    assert "/callback" not in readme.replace(CALLBACK_PATH, "")


def test_the_sample_sends_its_callbacks_where_the_user_says(
    runner: CliRunner, sample_csv: Path, tmp_path: Path
) -> None:
    """The README's way to see callbacks: a receiver started for it, its URL given."""
    store = tmp_path / "receipts.db"
    out = tmp_path / "results.xlsx"
    with kb.Receiver(store) as receiver:
        url = receiver.callback_url
        args = ["send", str(sample_csv), "--emulator", "--out", str(out), "--callback-url", url]
        outcome = runner.invoke(cli, args)
        assert outcome.exit_code == 1, outcome.output  # the sample's five bad rows
        counts = receiver.store.counts()
    assert counts["status_updates"] == 30  # 15 messages: sent, then delivered
    merged = kb.merge_receipts(kb.load_results(out), store)
    assert (merged["delivery_status"] == "delivered").sum() == 15
