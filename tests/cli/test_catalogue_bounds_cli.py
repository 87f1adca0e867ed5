"""The command line given hostile catalogues and rate cards: `kwa-batch templates` against
servers that drip or nest for ever, `validate/send --templates` and `send --rate-card` given
deep, huge or special files. Always one line and exit 2, within a deadline, never a
traceback.

The deadline, the FIFO, the 32 MiB cap and the first of each kind of deep JSON run as real
processes (a hang meets the subprocess timeout; a deep document meets a fresh interpreter's
stack); the other cases run the same entry point, ``kwa_batch.cli.main``, in this process,
which spares each the interpreter's start and the import of pandas.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT
from hostile_servers import LIST, drip, response, serving, whole

RECIPIENTS = str(ROOT / "sample_data" / "recipients.csv")


def kwa_batch(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KALEYRA_", "KWA_"))}
    env.update(KALEYRA_SID="HX1", KALEYRA_API_KEY="secret-key-123")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kwa_batch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,  # a deadline against the hangs these tests are about
        env=env,
        check=False,
    )
    return done, time.monotonic() - started


InProcess = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def in_process(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> InProcess:
    """``kwa-batch ARGS`` as :func:`kwa_batch` runs it, but through ``main()`` in this process:
    its exit status, stdout and stderr. What the command logs at its default level (warning)
    would be a line on stderr: it is added to stderr, since here the log goes to pytest."""
    from kwa_batch.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        for name in list(os.environ):
            if name.startswith(("KALEYRA_", "KWA_")):
                monkeypatch.delenv(name)
        monkeypatch.setenv("KALEYRA_SID", "HX1")
        monkeypatch.setenv("KALEYRA_API_KEY", "secret-key-123")
        monkeypatch.setattr(sys, "argv", ["kwa-batch", *args])
        caplog.clear()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        logged = "".join(
            f"{record.levelname} {record.name}: {record.getMessage()}\n"
            for record in caplog.records
            if record.levelno >= logging.WARNING
        )
        return subprocess.CompletedProcess(["kwa-batch", *args], code, out, logged + err)

    return run


def assert_one_line(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    error = done.stderr.strip()
    assert error.count("\n") == 0, error
    assert error.startswith("Error: "), error
    for text in expected:
        assert text in error, error


def test_templates_gives_up_on_a_slow_drip_at_the_deadline(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    dripped: list[str] = []
    with serving(drip(LIST, every=0.5, log=dripped)) as url:
        done, _ = kwa_batch(
            "templates", "--waba-id", "1", "--base-url", url, "--deadline", "2", "--out", str(out)
        )
        seen = list(dripped)  # the server's side, once the command had ended
    assert_one_line(done, "overall deadline of 2 s", "--deadline")
    # The command cut the drip (about two minutes long) short while the server was still
    # dripping: not at its end, and not because the server itself stopped.
    assert {"whole", "stopped"}.isdisjoint(seen), seen
    assert not out.exists()
    assert "secret-key-123" not in done.stderr


@pytest.mark.parametrize(
    ("body", "expected", "process"),
    [
        (b"[" * 200_000, "200,000 levels deep", "real"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "100,000 levels deep", "this"),
        (b'{"data": [{"name": {"a": 1}}]}', "'name' is an object, not text", "this"),
        (b'{"data": [{"name": "x", "components": "BODY"}]}', "'components' is a string", "this"),
        (b"12", "not a JSON object", "this"),
    ],
)
def test_templates_refuses_a_hostile_answer_in_one_line(
    tmp_path: Path, in_process: InProcess, body: bytes, expected: str, process: str
) -> None:
    args = ["templates", "--waba-id", "1", "--out", str(tmp_path / "t.csv")]
    with serving(whole(body)) as url:
        if process == "real":
            done, _ = kwa_batch(*args, "--base-url", url)
        else:
            done = in_process(*args, "--base-url", url)
    assert_one_line(done, expected)


def test_templates_refuses_an_answer_over_the_cap(tmp_path: Path) -> None:
    big = b'{"data": [], "x": "' + b"a" * (33 * 2**20) + b'"}'
    with serving(whole(big)) as url:
        done, _ = kwa_batch(
            "templates", "--waba-id", "1", "--base-url", url, "--out", str(tmp_path / "t.csv")
        )
    assert_one_line(done, "over 32 MiB")


def test_templates_still_writes_a_catalogue_in_time(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    with serving(drip(LIST, at_once=len(response(LIST)) - 3, every=0.1)) as url:
        done, _ = kwa_batch(
            "templates", "--waba-id", "1", "--base-url", url, "--deadline", "10", "--out", str(out)
        )
    assert done.returncode == 0, done.stderr
    assert "hi" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("command", ["validate", "send"])
@pytest.mark.parametrize(
    ("name", "content", "expected", "process"),
    [
        ("deep.json", "[" * 200_000, "200,000 levels deep", "real"),
        ("deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "levels deep", "this"),
        ("n.json", "12", "not WhatsApp's template format", "this"),
        ("e.json", "", "the file is empty", "this"),
        ("t.xlsx", "not a workbook at all", "not a readable .xlsx workbook", "this"),
        (
            "body.json",
            json.dumps(
                {
                    "data": [
                        dict(
                            json.loads(LIST)["data"][0],
                            components=[{"type": "BODY", "text": "a" * 10**7}],
                        )
                    ]
                }
            ),
            "10,000,000 characters",
            "this",
        ),
    ],
)
def test_validate_and_send_refuse_a_hostile_catalogue(
    tmp_path: Path,
    in_process: InProcess,
    command: str,
    name: str,
    content: str,
    expected: str,
    process: str,
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    extra = ["--dry-run"] if command == "send" else []
    args = [command, RECIPIENTS, *extra, "--templates", str(path)]
    done = kwa_batch(*args)[0] if process == "real" else in_process(*args)
    assert_one_line(done, str(path), expected)


@pytest.mark.parametrize("option", ["--templates", "--rate-card"])
def test_a_fifo_catalogue_or_rate_card_is_refused_at_once(tmp_path: Path, option: str) -> None:
    fifo = tmp_path / ("t.json" if option == "--templates" else "card.csv")
    os.mkfifo(fifo)
    done, _ = kwa_batch("send", RECIPIENTS, "--dry-run", option, str(fifo))
    assert_one_line(done, "named pipe (FIFO), not a file")
    assert "no such file" not in done.stderr


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("inf", "'inf' is not a finite number"),
        ("nan", "'nan' is not a finite number"),
        ("-0.01", "is negative"),
        ("9" * 400, "(400 characters) is more than 1,000,000"),
    ],
)
def test_send_refuses_a_bad_rate_card(
    tmp_path: Path, in_process: InProcess, price: str, expected: str
) -> None:
    card = tmp_path / "card.csv"
    card.write_text(f"region,category,price,currency\nIN,marketing,{price},USD\n")
    done = in_process("send", RECIPIENTS, "--dry-run", "--rate-card", str(card))
    assert_one_line(done, str(card), "line 2, column price", expected)
