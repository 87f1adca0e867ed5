"""``kwa-batch send --receipts STORE``: a callback saying stop, received mid-run, stops the
run; the command exits 3 and says what a person must check (issue #19)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from kwa_batch import load_results
from kwa_batch.cli import cli
from kwa_batch.receipts.receiver import Receiver
from kwa_batch.sending.client import KaleyraClient, SendResult

SENDER = "+911234567890"


def rows(n: int) -> str:
    """A file of ``n`` personal text messages (one request each)."""
    return "to,body\n" + "".join(f"+4479111234{i:02d},Hello {i}\n" for i in range(n))


@pytest.mark.slow
def test_a_stop_code_mid_run_exits_3_saying_what_to_check(
    runner: CliRunner,
    write_csv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_target: str,
) -> None:
    store, out = store_target, tmp_path / "results.parquet"
    with Receiver(store) as receiver:
        post = KaleyraClient.post
        answered = []

        def hooked(client: KaleyraClient, form: dict[str, str]) -> SendResult:
            result = post(client, form)
            answered.append(result)
            if len(answered) == 2:  # mid-run: WhatsApp restricts the number
                fields = {"id": result.message_id_for(form["to"]), "status": "failed",
                          "error_code": "131048", "wanumber": SENDER}  # fmt: skip
                requests.get(receiver.callback_url, params=fields, timeout=5)
            return result

        monkeypatch.setattr(KaleyraClient, "post", hooked)
        args = ["send", str(write_csv(rows(16))), "--emulator", "--from", SENDER, "--rate", "2"]
        result = runner.invoke(cli, [*args, "--receipts", str(store), "--out", str(out)])
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert "Stopped: WhatsApp said 131048 (spam rate limit: the number is being restricted)" in said
    assert "check the number's quality rating in WhatsApp Manager" in said
    results = load_results(out)
    left = results[results["status"] != "sent"]
    assert len(left) >= 8
    assert set(left["error_code"]) == {"KWA033"}
    assert results.attrs["run"].stopped_on.startswith("WhatsApp said 131048")


def test_a_missing_store_is_refused_before_anything_is_sent(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    args = ["send", str(write_csv(rows(1))), "--emulator", "--from", SENDER]
    result = runner.invoke(cli, [*args, "--receipts", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert "--receipts" in result.output
    assert "no such file" in result.output


def test_the_help_says_one_store_serves_both(runner: CliRunner) -> None:
    said = " ".join(runner.invoke(cli, ["send", "--help"]).output.split())
    assert "--receipts STORE" in said
    assert "The same store may be given to --suppress too" in said
