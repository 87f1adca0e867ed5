"""A run killed with SIGKILL mid-flight, then run again with its journal: none twice, none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from kwa_batch import Emulator

ROWS = 400
CONCURRENCY = 4


def run_cli(args: list[str], emu: Emulator, cwd: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KALEYRA_SID": emu.sid,
        "KALEYRA_API_KEY": emu.api_key,
        "KALEYRA_BASE_URL": emu.url,
        "KALEYRA_FROM": "+911234567890",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kwa_batch", "send", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkill_then_resume_sends_each_row_exactly_once(tmp_path: Path) -> None:
    recipients = tmp_path / "campaign.csv"
    pd.DataFrame(
        {
            "to": [f"+9198{i:08d}" for i in range(ROWS)],
            "body": [f"Hi {i}, your order has shipped" for i in range(ROWS)],
        }
    ).to_csv(recipients, index=False)
    args = [
        str(recipients),
        "--journal",
        "campaign.db",
        "--out",
        "results.csv",
        "--concurrency",
        str(CONCURRENCY),
        "--quiet",
    ]
    with Emulator(latency=0.02) as emu:
        first = run_cli(args, emu, tmp_path)
        deadline = time.monotonic() + 60
        while len(emu.messages) < ROWS // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        killed_at = len(emu.messages)
        assert 0 < killed_at < ROWS, "the kill must land mid-run"
        assert not (tmp_path / "results.csv").exists()

        second = run_cli(args, emu, tmp_path)
        output, _ = second.communicate(timeout=120)
        assert second.returncode in (0, 3), output

        ledger = emu.messages
        assert not ledger["to"].duplicated().any(), "a message was accepted twice"
        results = pd.read_csv(tmp_path / "results.csv", dtype=str, encoding="utf-8-sig")
        assert len(results) == ROWS
        statuses = results["status"].value_counts().to_dict()
        assert set(statuses) <= {"sent", "unknown"}
        sent = results[results["status"] == "sent"]
        # Every sent row is in the ledger with its own message id: none lost.
        by_id = ledger.set_index("message_id")["to"]
        assert (by_id.loc[sent["message_id"]].to_numpy() == sent["to"].to_numpy()).all()
        # Rows in flight at the kill are 'unknown' (at most one window of requests), never resent.
        unknown = results[results["status"] == "unknown"]
        assert len(unknown) <= CONCURRENCY  # at most one request per worker was in flight
        assert (unknown["error_code"] == "INFLIGHT").all()
        assert len(ledger) == len(sent) + int(unknown["to"].isin(ledger["to"]).sum())
        if len(unknown):
            assert "--resend-unknown" in output
