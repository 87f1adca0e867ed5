"""The command line given hostile catalogues and rate cards: `kwa-batch templates` against
servers that drip or nest for ever, `validate/send --templates` and `send --rate-card` given
deep, huge or special files. Always one line and exit 2, within a deadline, never a
traceback; run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    with serving(drip(LIST, every=0.5)) as url:
        done, took = kwa_batch(
            "templates", "--waba-id", "1", "--base-url", url, "--deadline", "2", "--out", str(out)
        )
    assert_one_line(done, "overall deadline of 2 s", "--deadline")
    assert took < 20, took
    assert not out.exists()
    assert "secret-key-123" not in done.stderr


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 200_000, "200,000 levels deep"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "100,000 levels deep"),
        (b'{"data": [{"name": {"a": 1}}]}', "'name' is an object, not text"),
        (b'{"data": [{"name": "x", "components": "BODY"}]}', "'components' is a string"),
        (b"12", "not a JSON object"),
    ],
)
def test_templates_refuses_a_hostile_answer_in_one_line(
    tmp_path: Path, body: bytes, expected: str
) -> None:
    with serving(whole(body)) as url:
        done, _ = kwa_batch(
            "templates", "--waba-id", "1", "--base-url", url, "--out", str(tmp_path / "t.csv")
        )
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
    ("name", "content", "expected"),
    [
        ("deep.json", "[" * 200_000, "200,000 levels deep"),
        ("deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "levels deep"),
        ("n.json", "12", "not WhatsApp's template format"),
        ("e.json", "", "the file is empty"),
        ("t.xlsx", "not a workbook at all", "not a readable .xlsx workbook"),
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
        ),
    ],
)
def test_validate_and_send_refuse_a_hostile_catalogue(
    tmp_path: Path, command: str, name: str, content: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    extra = ["--dry-run"] if command == "send" else []
    done, _ = kwa_batch(command, RECIPIENTS, *extra, "--templates", str(path))
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
def test_send_refuses_a_bad_rate_card(tmp_path: Path, price: str, expected: str) -> None:
    card = tmp_path / "card.csv"
    card.write_text(f"region,category,price,currency\nIN,marketing,{price},USD\n")
    done, _ = kwa_batch("send", RECIPIENTS, "--dry-run", "--rate-card", str(card))
    assert_one_line(done, str(card), "line 2, column price", expected)
