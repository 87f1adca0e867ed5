"""The command line: exit codes, output, and the main job end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from kwa_batch.cli import cli
from kwa_batch.export import outcome_path

CLEAN = "to,body\n+919876543210,Hi\n+447911123456,Hello\n"


def test_every_command_has_help(runner: CliRunner) -> None:
    for name, command in cli.commands.items():
        assert command.help, name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output


def test_validate_sample_lists_problems_and_exits_1(runner: CliRunner, sample_csv: Path) -> None:
    result = runner.invoke(cli, ["validate", str(sample_csv)])
    assert result.exit_code == 1
    assert "20 row(s), 15 valid, 5 invalid" in result.output
    assert re.search(r"line 17\s+to\s+E13009\s+'98765'", result.output)
    assert "KWA004" in result.output
    assert "scientific notation" in result.output


def test_validate_clean_file_exits_0(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(cli, ["validate", str(write_csv(CLEAN))])
    assert result.exit_code == 0, result.output
    assert "2 valid, 0 invalid" in result.output


@pytest.mark.parametrize("command", ["send", "validate"])
def test_quiet_before_the_command_is_the_commands_quiet(
    runner: CliRunner, sample_csv: Path, tmp_path: Path, command: str
) -> None:
    """Issue #18: `kwa-batch -q send` was "No such option: -q"."""
    more = ["--emulator", "--out", str(tmp_path / "r.xlsx")] if command == "send" else []
    before = runner.invoke(cli, ["-q", command, str(sample_csv), *more])
    after = runner.invoke(cli, [command, str(sample_csv), "-q", *more])
    assert before.exit_code == after.exit_code == 1, before.output
    assert before.output == after.output == ""


@pytest.mark.parametrize("command", ["send", "validate"])
def test_quiet_leaves_out_the_notes(
    runner: CliRunner, write_csv, tmp_path: Path, command: str
) -> None:
    """Issue #18: `send -q` still printed a Note (here: the file's legacy encoding)."""
    path = write_csv("to,body\n+919876543210,Olá José\n".encode("cp1252"))
    more = ["--emulator", "--out", str(tmp_path / "r.xlsx")] if command == "send" else []
    loud = runner.invoke(cli, [command, str(path), *more])
    assert "Note: " in loud.output
    quiet = runner.invoke(cli, [command, str(path), "-q", *more])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output == ""


def test_the_errors_sheet_is_named_only_when_it_has_rows(
    runner: CliRunner, write_csv, sample_csv: Path, tmp_path: Path
) -> None:
    """Issue #18: "fixes on the Errors sheet" was printed when every row was sent."""
    out = str(tmp_path / "r.xlsx")
    clean = runner.invoke(cli, ["send", str(write_csv(CLEAN)), "--emulator", "--out", out])
    assert clean.exit_code == 0, clean.output
    assert f"Results: {out} (2 rows, one per input row)" in clean.output
    assert "Errors sheet" not in clean.output
    sample = runner.invoke(cli, ["send", str(sample_csv), "--emulator", "--out", out])
    assert f"Results: {out} (20 rows, one per input row; fixes on the Errors sheet)" in (
        sample.output
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("", "the file is empty"), ("name\nx\n", "no recipient column")],
)
def test_unusable_input_exits_2_in_one_line(
    runner: CliRunner, write_csv, tmp_path: Path, content, message
) -> None:
    path = tmp_path / "missing.csv" if content is None else write_csv(content)
    for command in ("validate", "send"):
        result = runner.invoke(
            cli, [command, str(path), "--emulator"] if command == "send" else [command, str(path)]
        )
        assert result.exit_code == 2
        assert message in result.output
        assert "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0


def test_send_sample_with_emulator_writes_workbook(
    runner: CliRunner, sample_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.xlsx"
    result = runner.invoke(cli, ["send", str(sample_csv), "--emulator", "--out", str(out)])
    assert result.exit_code == 1, result.output  # the sample holds invalid rows on purpose
    assert "nothing leaves this machine" in result.output
    assert "Outcome: 15 sent, 5 rejected" in result.output
    assert f"Results: {out}" in result.output
    sheet = load_workbook(out)["Results"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert len(body) == 20
    col = {name: i for i, name in enumerate(header)}
    for row in body:
        if row[col["status"]] == "sent":
            assert row[col["message_id"]]
            assert row[col["to"]].startswith("+")
        else:
            assert row[col["status"]] == "rejected"
            assert row[col["error_code"]]


def test_send_clean_file_exits_0_and_csv(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = runner.invoke(
        cli,
        ["send", str(write_csv(CLEAN)), "--emulator", "--from", "+911234567890", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Sender:" not in result.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")


def test_send_without_credentials_exits_2(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(cli, ["send", str(write_csv(CLEAN))])
    assert result.exit_code == 2
    assert "missing KALEYRA_SID and KALEYRA_API_KEY" in result.output


def test_send_to_unreachable_api_exits_3(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    env = {
        "KALEYRA_SID": "HX1",
        "KALEYRA_API_KEY": "secret-key-1234",
        "KALEYRA_FROM": "+911234567890",
        "KALEYRA_BASE_URL": "http://127.0.0.1:9",
    }
    result = runner.invoke(
        cli, ["send", str(write_csv(CLEAN)), "--out", str(tmp_path / "r.xlsx")], env=env
    )
    assert result.exit_code == 3, result.output
    assert "not_sent" in result.output
    assert "secret-key-1234" not in result.output


def test_bad_out_extension_exits_2(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(cli, ["send", str(write_csv(CLEAN)), "--emulator", "--out", "r.json"])
    assert result.exit_code == 2
    assert "use a .xlsx, .csv or .parquet" in result.output


def test_emulator_command_prints_how_to_connect_and_masks_a_given_key() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kwa_batch",
            "emulator",
            "--api-key",
            "my-secret-key",
            "--sid",
            "HXTEST",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "KALEYRA_SID=HXTEST" in text
        assert "my-secret-key" not in text
        url = re.search(r"KALEYRA_BASE_URL=(\S+)", text).group(1)
        import requests

        answer = requests.post(
            f"{url}/v1/HXTEST/messages",
            data={
                "to": "+919876543210",
                "from": "+911234567890",
                "type": "text",
                "channel": "whatsapp",
                "body": "Hi",
            },
            headers={"api-key": "my-secret-key"},
            timeout=5,
        )
        assert answer.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_dry_run_prints_the_plan_and_sends_nothing(runner: CliRunner, write_csv) -> None:
    text = "to,body\n" + "".join(f"+9198765432{i:02d},Same for all\n" for i in range(12))
    result = runner.invoke(
        cli,
        [
            "send",
            str(write_csv(text)),
            "--emulator",
            "--dry-run",
            "--max-recipients-per-request",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Dry run: 12 message(s) in 3 request(s); nothing is sent." in result.output
    assert "(api-key: ********)" in result.output
    assert "to: +919876543200,+919876543201" in result.output
    assert "Outcome" not in result.output


def test_summary_json_and_journal_resume(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    import json

    path = write_csv(CLEAN)
    args = [
        "send",
        str(path),
        "--emulator",
        "--from",
        "+911234567890",
        "--out",
        str(tmp_path / "r.xlsx"),
        "--journal",
        str(tmp_path / "j.db"),
        "--summary-json",
        str(tmp_path / "s.json"),
    ]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["status"]["sent"] == 2
    assert summary["exit_code"] == 0
    assert summary["rows"] == 2
    assert summary["resume"] == {"new": 2}
    # A second run with the same journal (a new emulator, so nothing could be resent there
    # without it showing) skips both rows.
    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "Nothing to send (2 already sent, by the journal)" in second.output
    assert "Sending" not in second.output
    assert json.loads((tmp_path / "s.json").read_text())["resume"] == {"already sent": 2}
    # A recurring campaign that reuses the journal is told so, loudly, even with --quiet.
    third = runner.invoke(cli, [*args, "--quiet"])
    assert third.exit_code == 0
    assert "All 2 row(s) were already sent on" in third.output
    assert "by this journal" in third.output
    assert "A new campaign needs a journal of its own" in third.output


def test_resend_unknown_needs_a_journal(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(cli, ["send", str(write_csv(CLEAN)), "--emulator", "--resend-unknown"])
    assert result.exit_code == 2
    assert "--resend-unknown needs --journal" in result.output


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [
        ("SIGINT", 130, "Interrupted: send again with the same journal"),
        ("SIGTERM", 143, "Stopped by SIGTERM: send again with the same journal"),
        ("SIGHUP", 129, "Stopped by SIGHUP: send again with the same journal"),
    ],
)
def test_a_stop_signal_writes_results_and_summary_and_resume_completes(
    tmp_path: Path, stop: str, code: int, said: str
) -> None:
    """Ctrl-C, cron's or docker's SIGTERM, a closed terminal's SIGHUP: the same graceful stop."""
    import json
    import signal

    import pandas as pd

    from kwa_batch import Emulator

    rows = 120  # at the default 80 a second: the stop lands mid-run, the resume takes ~1 s
    pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(rows)], "body": [f"Hi {i}" for i in range(rows)]}
    ).to_csv(tmp_path / "c.csv", index=False)
    with Emulator(latency=0.02) as emu:
        env = {
            **os.environ,
            "KALEYRA_SID": emu.sid,
            "KALEYRA_API_KEY": emu.api_key,
            "KALEYRA_BASE_URL": emu.url,
            "KALEYRA_FROM": "+911234567890",
        }
        args = [
            sys.executable,
            "-m",
            "kwa_batch",
            "send",
            "c.csv",
            "--journal",
            "c.db",
            "--out",
            "c.csv.results.csv",
            "--concurrency",
            "2",
            "--summary-json",
            "s.json",
        ]
        proc = subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 60
        while emu.message_count < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(getattr(signal, stop))
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == code, output
        assert said in output
        partial = pd.read_csv(tmp_path / "c.csv.results.csv", dtype=str, encoding="utf-8-sig")
        assert len(partial) == rows
        assert set(partial["status"]) <= {"sent", "not_sent", "unknown"}
        assert (partial["status"] == "not_sent").sum() > 0
        assert (partial["status"] == "unknown").sum() == 0  # in-flight requests were awaited
        summary = json.loads((tmp_path / "s.json").read_text())
        assert summary["exit_code"] == code
        assert summary["stopped_by"] == stop
        assert summary["status"]["sent"] == (partial["status"] == "sent").sum()
        reported = subprocess.run(
            [sys.executable, "-m", "kwa_batch", "report", "c.csv.results.csv"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reported.returncode == code, reported.stdout + reported.stderr  # as the run
        assert said in reported.stderr
        again = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stdout + again.stderr
        final = pd.read_csv(tmp_path / "c.csv.results.csv", dtype=str, encoding="utf-8-sig")
        assert (final["status"] == "sent").all()
        assert len(emu.messages) == rows
        assert not emu.messages["to"].duplicated().any()


def test_report_prints_the_summary_of_an_exported_file(
    runner: CliRunner, sample_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.parquet"
    sent = runner.invoke(cli, ["send", str(sample_csv), "--emulator", "--out", str(out)])
    assert sent.exit_code == 1, sent.output
    result = runner.invoke(cli, ["report", str(out)])
    assert result.exit_code == 1
    assert "20 rows" in result.output
    assert "Outcome: 15 sent, 5 rejected" in result.output
    assert "KWA004" in result.output
    missing = runner.invoke(cli, ["report", str(tmp_path / "nope.xlsx")])
    assert missing.exit_code == 2
    assert "no such file" in missing.output


# --- validate: report, message-building flags, settings that cannot work ------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_validate_writes_a_report(
    runner: CliRunner, sample_csv: Path, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"problems{suffix}"
    result = runner.invoke(cli, ["validate", str(sample_csv), "--report", str(target)])
    assert result.exit_code == 1, result.output
    assert f"Report: {target} (5 problem(s), with the fix for each)" in result.output
    assert target.exists()
    if suffix == ".csv":
        text = target.read_text(encoding="utf-8-sig")
        assert text.splitlines()[0] == "row,line,column,value,check,error_code,message,fix"
        assert "KWA004" in text


def test_validate_report_with_a_bad_extension_exits_2(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(cli, ["validate", str(write_csv(CLEAN)), "--report", "r.json"])
    assert result.exit_code == 2
    assert "use a .csv or .xlsx file name" in result.output


def test_validate_region_reads_national_numbers(runner: CliRunner, write_csv) -> None:
    path = write_csv("to,body\n098765 43210,Hi\n98765,Hi\n")
    assert "0 valid, 2 invalid" in runner.invoke(cli, ["validate", str(path)]).output
    result = runner.invoke(cli, ["validate", str(path), "--region", "IN"])
    assert "1 valid, 1 invalid" in result.output
    assert "'98765' has only 5 digits, too few for a phone number (IN numbers" in result.output


def test_validate_builds_template_messages_from_columns(runner: CliRunner, write_csv) -> None:
    path = write_csv(
        'Phone,Name,Order ID\n+919876543210,Priya,A1\n+447911123456,"Tan, Wei",A2\n'
        "+6591234567,,A3\n"
    )
    result = runner.invoke(
        cli,
        [
            "validate",
            str(path),
            "--template",
            "order_shipped",
            "--params-from",
            "name,order id",
            "--lang",
            "en",
            "--callback-url",
            "https://example.com/cb",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "3 row(s), 2 valid, 1 invalid" in result.output
    assert re.search(r"line 4\s+Name\s+KWA009\s+'Name' is empty", result.output)


def test_validate_builds_text_bodies(runner: CliRunner, write_csv) -> None:
    path = write_csv("to,name\n+919876543210,Priya\n")
    result = runner.invoke(cli, ["validate", str(path), "--body-template", "Hi {name}!"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--body-template", "Hi {nom}"], "body_template uses {nom}, but there is no column"),
        (["--params-from", "name,missing"], "params_from names 'missing'"),
        (["--region", "XX"], "unknown region 'XX'"),
    ],
)
def test_settings_that_cannot_work_exit_2_in_one_line(
    runner: CliRunner, write_csv, arguments: list[str], message: str
) -> None:
    path = write_csv("to,name\n+919876543210,Priya\n")
    for command in ("validate", "send"):
        extra = ["--emulator"] if command == "send" else []
        result = runner.invoke(cli, [command, str(path), *extra, *arguments])
        assert result.exit_code == 2, (command, result.output)
        assert message in result.output
        assert "Traceback" not in result.output


def test_send_builds_messages_too(runner: CliRunner, write_csv, tmp_path: Path) -> None:
    path = write_csv("to,name\n+919876543210,Priya\n+447911123456,Olivia\n")
    out = tmp_path / "r.csv"
    result = runner.invoke(
        cli,
        ["send", str(path), "--emulator", "--body-template", "Hi {name}", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "2 valid, 0 invalid" in result.output


def test_message_flags_are_documented_on_both_commands(runner: CliRunner) -> None:
    for command in ("validate", "send"):
        text = runner.invoke(cli, [command, "--help"]).output
        for flag in ("--params-from", "--body-template", "--template", "--lang", "--callback-url"):
            assert flag in text, (command, flag)
    assert "--report" in runner.invoke(cli, ["validate", "--help"]).output


def test_validate_says_when_a_file_is_not_utf8(runner: CliRunner, write_csv) -> None:
    path = write_csv(
        'to,name,body\n+919876543210,José Núñez,"Olá, ça va? – 5 €"\n'.encode("cp1252")
    )
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.count("is not UTF-8; read it as cp1252") == 1  # said once
    assert "--encoding" in result.output
    assert "encoding=" not in result.output


def test_validate_and_send_agree_on_the_sender_from_the_environment(
    runner: CliRunner, write_csv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KALEYRA_FROM", "+447911123456")
    path = write_csv(CLEAN)
    checked = runner.invoke(cli, ["validate", str(path)])
    sent = runner.invoke(
        cli, ["send", str(path), "--emulator", "--out", str(tmp_path / "r.csv"), "--dry-run"]
    )
    assert checked.exit_code == sent.exit_code == 0, checked.output + sent.output
    assert "2 row(s), 2 valid, 0 invalid" in checked.output
    assert "2 row(s), 2 valid, 0 invalid" in sent.output
    assert "from: +447911123456" in sent.output  # the environment's, not the demo number


@pytest.mark.parametrize("command", ["validate", "send"])
@pytest.mark.parametrize("where", ["--from", "KALEYRA_FROM"])
def test_an_invalid_sender_is_one_line_before_anything_else(
    runner: CliRunner, write_csv, monkeypatch: pytest.MonkeyPatch, command: str, where: str
) -> None:
    args = [command, str(write_csv(CLEAN))] + (["--emulator"] if command == "send" else [])
    if where == "--from":
        args += ["--from", "12345"]
    else:
        monkeypatch.setenv("KALEYRA_FROM", "12345")
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: {where} '12345': the sender")


def test_the_command_line_names_flags_never_python_parameters(runner: CliRunner, write_csv) -> None:
    result = runner.invoke(cli, ["validate", str(write_csv("to,body\n9876543210,Hi\n"))])
    assert "or pass --region for national numbers" in result.output
    assert "default_region=" not in result.output


def test_validate_quiet_and_summary_json(runner: CliRunner, sample_csv: Path, tmp_path) -> None:
    import json

    out = tmp_path / "v.json"
    result = runner.invoke(cli, ["validate", str(sample_csv), "-q", "--summary-json", str(out)])
    assert result.exit_code == 1
    assert result.output == ""
    summary = json.loads(out.read_text())
    assert summary["rows"] == 20
    assert summary["valid"] == 15
    assert summary["invalid"] == 5
    assert summary["exit_code"] == 1
    assert summary["error_codes"]["KWA007"] == 1


@pytest.mark.parametrize("command", ["validate", "send"])
def test_an_unusable_input_still_writes_the_json_summary(
    runner: CliRunner, tmp_path: Path, command: str
) -> None:
    import json

    out = tmp_path / "s.json"
    args = [command, str(tmp_path / "missing.csv"), "--summary-json", str(out)]
    result = runner.invoke(cli, [*args, "--emulator"] if command == "send" else args)
    assert result.exit_code == 2
    summary = json.loads(out.read_text())
    assert summary["exit_code"] == 2
    assert "no such file" in summary["error"]


def test_the_command_list_shows_whole_descriptions(runner: CliRunner) -> None:
    listing = runner.invoke(cli, ["--help"], terminal_width=80).output
    commands = listing.split("Commands:")[1].strip().splitlines()
    assert len(commands) == len(cli.commands)
    assert not any(line.rstrip().endswith("...") for line in commands), commands
    assert all(len(line) <= 80 for line in listing.splitlines())


@pytest.mark.parametrize("small_tmpfs", ["16k"], indirect=True)
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_out_on_a_full_disk_leaves_no_truncated_file_and_never_exits_0(
    runner: CliRunner, tmp_path: Path, small_tmpfs: Path, suffix: str
) -> None:
    import pandas as pd

    rows = 300  # results of ~30 KB (.xlsx) and ~50 KB (.csv): twice what the disk holds
    source = tmp_path / "c.csv"
    pd.DataFrame(
        {"to": [f"+9198{i:08d}" for i in range(rows)], "body": [f"Hi {i}" for i in range(rows)]}
    ).to_csv(source, index=False)
    target = small_tmpfs / f"results{suffix}"
    args = ["send", str(source), "--emulator", "--out", str(target), "--rate", "none"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert not target.exists()  # never a truncated file where the user looks
    assert list(small_tmpfs.iterdir()) == []  # nor the temporary one
    saved = re.search(r"the results were saved to (\S+) instead", result.output)
    assert saved, result.output
    fallback = Path(saved.group(1))
    assert len(pd.read_csv(fallback, dtype=str, encoding="utf-8-sig")) == rows
    # The file written instead says so: `report` on it exits as the run did, not 0.
    reported = runner.invoke(cli, ["report", str(fallback)])
    assert reported.exit_code == 3, reported.output
    assert f"saved to {fallback} instead" in reported.output
    fallback.unlink()
    outcome_path(fallback).unlink()
