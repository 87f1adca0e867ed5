"""The command line with a catalogue and suppression lists: validate, send, templates,
and the emulator's --templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SENDER

from kwa_batch.catalogue import load_templates
from kwa_batch.cli import cli
from kwa_batch.receipts.store import CallbackStore, IncomingMessage

SAMPLES = ROOT / "sample_data"
CAMPAIGN = str(SAMPLES / "template_campaign.csv")


def store_with_stop(path: Path, number: str) -> Path:
    at = datetime(2026, 11, 30, 14, 2, tzinfo=UTC)
    with CallbackStore(path) as store:
        store.add_incoming(IncomingMessage("k1", number, SENDER, at, at, "text", None, "STOP"))
    return path


@pytest.mark.parametrize("catalogue", ["templates.csv", "templates.json"])
def test_validate_with_a_catalogue_and_two_lists(
    runner: CliRunner, tmp_path: Path, catalogue: str
) -> None:
    store = store_with_stop(tmp_path / "receipts.db", "+919876543210")
    result = runner.invoke(
        cli,
        ["validate", CAMPAIGN, "--from", SENDER, "--templates", str(SAMPLES / catalogue),
         "--suppress", str(SAMPLES / "do_not_contact.csv"), "--suppress", str(store)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "14 row(s), 3 valid, 11 invalid" in result.output
    for code in ("KWA013", "KWA014", "KWA015", "KWA016", "KWA017", "KWA019", "KWA020",
                 "KWA021", "KWA023", "KWA025"):  # fmt: skip
        assert code in result.output
    assert "order_shipped (en) takes 3 parameters; this row has 2" in result.output
    assert "replied 'STOP'" in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--templates", "nope.csv"], "no such template catalogue file"),
        (["--suppress", "nope.csv"], "--suppress nope.csv: no such file"),
    ],
)
def test_unusable_lists_exit_2_in_one_line(
    runner: CliRunner, options: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["validate", CAMPAIGN, "--from", SENDER, *options])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_send_refuses_the_same_rows(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    result = runner.invoke(
        cli,
        ["send", CAMPAIGN, "--emulator", "--from", SENDER, "--quiet", "--out", str(out),
         "--templates", str(SAMPLES / "templates.csv"),
         "--suppress", str(SAMPLES / "do_not_contact.csv")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    text = out.read_text(encoding="utf-8-sig")
    assert text.count("rejected") == 10


def test_templates_command_writes_the_catalogue(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "templates.xlsx"
    result = runner.invoke(cli, ["templates", "--waba-id", "1234", "--emulator", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "14 template(s) of WABA 1234" in result.output
    assert load_templates(out).equals(load_templates(SAMPLES / "templates.json"))


def test_the_preview_of_text_rows_says_text_not_nan(runner: CliRunner) -> None:
    """Issue #18 (seen on the way): text rows were previewed as "to +91... (nan):"."""
    result = runner.invoke(
        cli,
        [
            "validate",
            str(SAMPLES / "recipients.csv"),
            "--templates",
            str(SAMPLES / "templates.csv"),
        ],
    )
    assert "How the first valid messages read:" in result.output
    assert "  to +919876543210 (text):" in result.output
    assert "nan" not in result.output.lower()


def test_the_packaged_sample_catalogue_is_the_sample_file() -> None:
    from kwa_batch.emulator.template_catalogue import SAMPLE_CATALOGUE, sample_catalogue

    packaged = ROOT / "kwa_batch" / "emulator" / SAMPLE_CATALOGUE
    assert packaged.read_bytes() == (SAMPLES / "templates.json").read_bytes()
    assert load_templates(sample_catalogue()).equals(load_templates(SAMPLES / "templates.json"))


def test_templates_emulator_works_from_an_installed_package(tmp_path: Path) -> None:
    """Installed, the package sits in site-packages with no sample_data/ beside it (issue
    #18: the command looked for site-packages/sample_data/templates.json)."""
    import os
    import shutil
    import subprocess
    import sys

    shutil.copytree(
        ROOT / "kwa_batch", tmp_path / "site" / "kwa_batch", ignore=shutil.ignore_patterns("*.pyc")
    )
    (tmp_path / "work").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KALEYRA_", "KWA_"))}
    env["PYTHONPATH"] = str(tmp_path / "site")
    done = subprocess.run(
        [sys.executable, "-m", "kwa_batch", "templates", "--waba-id", "1", "--emulator"],
        cwd=tmp_path / "work",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "14 template(s) of WABA 1" in done.stdout
    assert (tmp_path / "work" / "templates.csv").is_file()


def test_templates_command_needs_an_account(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["templates", "--waba-id", "1"])
    assert result.exit_code == 2
    assert "KALEYRA_SID" in result.output


def test_emulator_command_plays_a_catalogue() -> None:
    import os
    import re
    import subprocess
    import sys
    import time

    import requests

    proc = subprocess.Popen(
        [sys.executable, "-m", "kwa_batch", "emulator", "--sid", "HXTPL", "--api-key", "k-1",
         "--templates", str(SAMPLES / "templates.csv")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
            if "Ctrl-C" in lines[-1]:
                break
        text = "".join(lines)
        assert "templates: 14, at" in text
        url = re.search(r"KALEYRA_BASE_URL=(\S+)", text)
        assert url is not None
        answer = requests.get(
            f"{url.group(1)}/v2/HXTPL/whatsapp/9/message_templates",
            params={"limit": "100"},
            headers={"api-key": "k-1"},
            timeout=5,
        )
        assert answer.status_code == 200
        assert len(answer.json()["data"]) == 14
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
