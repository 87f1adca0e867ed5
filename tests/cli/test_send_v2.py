"""``--api-version``: the commands that talk to Kaleyra speak v2 when told, refuse a version
that is not one in one line, and a number on the other version stops `send` in one line
that says how to choose it (exit 3). Against the independent v2 server (tests/v2_server.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT
from v2_server import KEY, SID, V2Server

import kwa_batch as kb
from kwa_batch.cli import cli

ROWS = (
    "to,body,ref\n+919876543210,Hi Asha,C1\n+447911123456,Hi Wei Ling,C2\n+12025550143,Hi Sam,C3\n"
)


def account(server: V2Server, sender: str = "+911234567890") -> dict[str, str]:
    return account_at(server.url, sender)


def account_at(url: str, sender: str = "+911234567890") -> dict[str, str]:
    return {
        "KALEYRA_SID": SID,
        "KALEYRA_API_KEY": KEY,
        "KALEYRA_FROM": sender,
        "KALEYRA_BASE_URL": url,
    }


@pytest.mark.parametrize("how", ["option", "environment"])
def test_send_speaks_v2_when_told(runner: CliRunner, write_csv, tmp_path: Path, how: str) -> None:
    out = tmp_path / "r.csv"
    with V2Server() as server:
        env = account(server)
        extra = ["--api-version", "v2"] if how == "option" else []
        if how == "environment":
            env["KALEYRA_API_VERSION"] = "v2"
        result = runner.invoke(
            cli, ["send", str(write_csv(ROWS)), "--out", str(out), *extra], env=env
        )
    assert result.exit_code == 0, result.output
    assert "(v2 API)" in result.output
    assert len(server.accepted) == 3
    assert {r.body["extra_info"]["ref"] for r in server.accepted} == {"C1", "C2", "C3"}
    assert KEY not in result.output


def test_a_number_on_v1_stops_send_in_one_line(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    with V2Server(v1_senders=frozenset({"911234567890"})) as server:
        result = runner.invoke(
            cli,
            ["send", str(write_csv(ROWS)), "--api-version", "v2", "--out", str(tmp_path / "r.csv"),
             "--concurrency", "1"],
            env=account(server),
        )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert len(server.requests) == 1
    said = [line for line in result.output.splitlines() if "--api-version v1" in line]
    assert len(said) == 1, result.output
    assert "on Kaleyra's v1 API, not v2 (WA-401)" in said[0]
    assert "KALEYRA_API_VERSION=v1" in said[0]
    assert re.search(r"WA-401\s+3 not_sent\s+the number is on the other API version", result.output)


@pytest.mark.parametrize("command", ["send", "follow-up", "templates"])
def test_a_version_that_is_not_one_is_refused_in_one_line(
    runner: CliRunner, write_csv, tmp_path: Path, command: str
) -> None:
    for name in ("r.xlsx", "x.db"):
        (tmp_path / name).touch()
    results, store = str(tmp_path / "r.xlsx"), str(tmp_path / "x.db")
    args = {
        "send": ["send", str(write_csv(ROWS))],
        "follow-up": ["follow-up", results, "--receipts", store, "--journal", "j.db"],
        "templates": ["templates", "--waba-id", "123"],
    }[command]
    result = runner.invoke(cli, [*args, "--api-version", "v3"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "--api-version 'v3'" in lines[0]
    assert "v1 or v2" in lines[0]


def test_a_bad_version_in_the_environment_names_the_variable(runner: CliRunner, write_csv) -> None:
    env = {"KALEYRA_SID": SID, "KALEYRA_API_KEY": KEY, "KALEYRA_API_VERSION": "2"}
    result = runner.invoke(cli, ["send", str(write_csv(ROWS)), "--from", "+911234567890"], env=env)
    assert result.exit_code == 2, result.output
    assert "KALEYRA_API_VERSION '2' is not a Kaleyra API version: give v1 or v2" in result.output


def test_the_dry_run_plans_one_request_a_recipient_for_v2(runner: CliRunner, write_csv) -> None:
    same = "to,body\n+919876543210,Sale\n+447911123456,Sale\n+12025550143,Sale\n"
    args = ["send", str(write_csv(same)), "--dry-run", "--from", "+911234567890"]
    v1 = runner.invoke(cli, args)
    v2 = runner.invoke(cli, [*args, "--api-version", "v2"])
    assert "3 message(s) in 1 request(s)" in v1.output, v1.output
    assert "3 message(s) in 3 request(s)" in v2.output, v2.output
    assert "POST https://api.kaleyra.io/v2/YOUR_SID/whatsapp/911234567890/messages" in v2.output
    assert '"messaging_product": "whatsapp"' in v2.output


def test_follow_up_retries_through_the_version_the_campaign_used(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    from kwa_batch.receipts.store import CallbackStore

    results, store, journal = tmp_path / "r.xlsx", tmp_path / "receipts.db", tmp_path / "j.db"
    with CallbackStore(store) as empty:
        empty.counts()  # the file made, with no callback in it
    down = {**account_at("http://127.0.0.1:9"), "KALEYRA_API_VERSION": "v2"}
    sent = runner.invoke(
        cli,
        ["send", str(write_csv(ROWS)), "--out", str(results), "--timeout", "2", "-q"],
        env=down,
    )  # nothing reached the API: every row not_sent, due again at once
    assert sent.exit_code == 3, sent.output
    with V2Server() as server:
        env = account(server)  # no KALEYRA_API_VERSION: the campaign's own, v2
        result = runner.invoke(
            cli,
            ["follow-up", str(results), "--receipts", str(store), "--journal", str(journal)],
            env=env,
        )
    assert result.exit_code == 0, result.output
    assert len(server.accepted) == 3


def test_the_emulator_is_spoken_to_in_the_version_asked(
    runner: CliRunner, write_csv, tmp_path: Path
) -> None:
    from kwa_batch import load_results

    out = tmp_path / "r.xlsx"
    args = ["send", str(write_csv(ROWS)), "--emulator", "--out", str(out), "--api-version", "v2"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert load_results(out)["message_id"].str.startswith("wamid.").all()  # v2's ids


def test_the_rich_sample_validates_and_sends_with_api_version_v2(
    runner: CliRunner, tmp_path: Path
) -> None:
    """#20: --api-version reached the client but not validation, so every rich row was
    refused as v2-only (KWA035) while the client spoke v2."""
    sample = str(ROOT / "sample_data" / "rich_campaign.csv")
    templates = str(ROOT / "sample_data" / "templates.csv")
    on_v1 = runner.invoke(cli, ["validate", sample, "--templates", templates])
    assert on_v1.exit_code == 1
    assert "5 invalid" in on_v1.output
    assert "KWA035" in on_v1.output
    on_v2 = runner.invoke(
        cli, ["validate", sample, "--templates", templates, "--api-version", "v2"]
    )
    assert on_v2.exit_code == 0, on_v2.output
    sent = runner.invoke(
        cli,
        [
            "send",
            sample,
            "--emulator",
            "--api-version",
            "v2",
            "--templates",
            templates,
            "--out",
            str(tmp_path / "r.csv"),
            "-q",
        ],
    )
    assert sent.exit_code == 0, sent.output
    results = kb.load_results(tmp_path / "r.csv")
    assert results["status"].tolist() == ["sent"] * 6
    assert results["message_id"].str.startswith("wamid.").all()
