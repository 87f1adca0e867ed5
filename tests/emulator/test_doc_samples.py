"""The curl samples of Kaleyra's API document, run as printed against the emulator.

The samples are read from ``tests/data/kaleyra_whatsapp_doc.txt`` (a verbatim copy of the
document), their placeholders filled, ``https://api.kaleyra.io`` pointed at the emulator,
and each is run with ``bash -c``. Two samples cannot run as printed; they get the smallest
textual repair, listed in :data:`REPAIRS`, and a test shows that as printed they do not
deliver. The other two run exactly as written.

curl prints the HTTP status through a ``.curlrc`` in a temporary ``CURL_HOME``, so that
the command text itself stays the document's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from kwa_batch.emulator.server import Emulator

DOC = Path(__file__).resolve().parent.parent / "data" / "kaleyra_whatsapp_doc.txt"
CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(
    CURL is None, reason="curl is not installed: the document's samples are curl commands"
)

POST = "Request Format - POST"
SANDBOX = "Sandbox Request"
SANDBOX_SAMPLE = "Sandbox Request Sample"
GET = "Request Format - GET"
TITLES = (POST, SANDBOX, SANDBOX_SAMPLE, GET)

TO = "+919876543210"
SENDER = "+911234567890"
BODY = "Hi, Your order has been shipped."  # the document's example
CALLBACK = "http://127.0.0.1:9/kaleyra-callback"
CREATED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00")
DOCUMENTED_KEYS = {"id", "type", "body", "createdDateTime", "totalCount", "data", "error"}

#: (printed, repaired) pairs; each printed text must occur exactly once in its sample.
REPAIRS: dict[str, list[tuple[str, str]]] = {
    SANDBOX: [
        # "\ \" passes curl a stray argument " " (an escaped space) as a second URL.
        ('/messages" \\ \\\n', '/messages" \\\n'),
        # No space before "\": the next line glues on, giving the header
        # "Content-Type: ...--header" and turning 'api-key: ...' into a URL.
        ("'Content-Type: <CONTENT_TYPE>'\\\n", "'Content-Type: <CONTENT_TYPE>' \\\n"),
        # No "\" at all: the command ends here and bash runs "--form ..." as a command.
        ('callback_url="<CALLBACK_URL>"\'\n', 'callback_url="<CALLBACK_URL>"\' \\\n'),
    ],
    GET: [
        # No "\": the api-key header line becomes a separate (failing) command.
        ("<CALLBACK_URL>'\n--header", "<CALLBACK_URL>' \\\n--header"),
        # A text message needs its body (BODY is mandatory in the document's table), but
        # the GET sample has no body parameter.
        ("&callback_url=<CALLBACK_URL>'", "&callback_url=<CALLBACK_URL>&body=<BODY>'"),
    ],
}


def extract_samples(text: str) -> dict[str, str]:
    """Each titled sample: the ``curl`` line under its title and the ``--`` lines after it."""
    lines = text.splitlines()
    samples = {}
    for title in TITLES:
        start = lines.index(title) + 1
        end = start
        while end < len(lines) and lines[end].startswith(("curl ", "--")):
            end += 1
        samples[title] = "\n".join(lines[start:end]) + "\n"
    return samples


SAMPLES = extract_samples(DOC.read_text(encoding="utf-8"))


def repaired(title: str) -> str:
    """The sample with its repairs applied (unchanged for a sample that needs none)."""
    command = SAMPLES[title]
    for printed, fixed in REPAIRS.get(title, []):
        assert command.count(printed) == 1, f"{title}: {printed!r} is no longer in the document"
        command = command.replace(printed, fixed)
    return command


def fill(command: str, emu: Emulator, **values: str) -> str:
    """Replace every placeholder with a value and the API host with the emulator's URL."""
    placeholders = {
        "<SID>": emu.sid,
        "<API_KEY>": emu.api_key,
        "<TO_NUMBER>": TO,
        "<FROM_NUMBER>": SENDER,
        "<TYPE>": "text",
        "<CHANNEL>": "whatsapp",
        "<CHANNEL_NAME>": "whatsapp",
        "<MESSAGE_TYPE>": "text",
        "<CONTENT_TYPE>": "application/json",  # the document's example value
        "<CALLBACK_URL>": CALLBACK,
        "<OPTIONAL_PARAMETER>": "Customer Name",
        "<OPTIONAL_PARAMETER1>": "Company Name",
        "<OPTIONAL_PARAMETER2>": "Designation",
        "<BODY>": BODY,
        "<NAME>": "british_council",
        "<TEMPLATE_BODY_PARAMETERS>": "Raman",
        # The "Sandbox Request Sample" hides its values behind runs of X.
        "HXAP1XXXXXX17XX": emu.sid,
        "api-key: XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX": f"api-key: {emu.api_key}",
        'to="XXXXXXXXXXXX"': f'to="{TO.lstrip("+")}"',
        'from="XXXXXXXXXXXX"': f'from="{SENDER.lstrip("+")}"',
        "https://webhook.site/XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX": CALLBACK,
        "https://api.kaleyra.io": emu.url,
    }
    placeholders.update(values)
    for placeholder, value in placeholders.items():
        command = command.replace(placeholder, value)
    assert not re.search(r"<[A-Z_0-9]+>|XXX", command), command
    return command


Ran = tuple[int | None, str, subprocess.CompletedProcess[str]]


def run_curl(command: str, tmp_path: Path) -> Ran:
    """Run a command with bash; return the HTTP status curl saw, the body, and the process."""
    (tmp_path / ".curlrc").write_text('silent\nshow-error\nwrite-out = "\\n%{http_code}"\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "CURL_HOME": str(tmp_path), "NO_PROXY": "*", "LC_ALL": "C.UTF-8"}  # fmt: skip
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    body, _, status = done.stdout.rpartition("\n")
    return (int(status) if status.isdigit() else None), body, done


def assert_documented_success(status: int | None, body: str, emu: Emulator) -> dict[str, object]:
    assert status == 200, body
    payload = json.loads(body)
    assert set(payload) == DOCUMENTED_KEYS
    assert CREATED.fullmatch(payload["createdDateTime"])
    assert payload["totalCount"] == 1
    assert payload["data"] == [{"message_id": f"{payload['id']}:0", "recipient": TO.lstrip("+")}]
    assert payload["error"] == {}
    assert emu.messages["message_id"].tolist() == [f"{payload['id']}:0"]
    return dict(payload)


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


def ledger_row(emu: Emulator) -> dict[str, object]:
    row = emu.messages.iloc[0].to_dict()
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


def test_the_document_has_the_four_samples() -> None:
    assert set(SAMPLES) == set(TITLES)
    assert all(sample.startswith("curl --location --request ") for sample in SAMPLES.values())
    assert set(REPAIRS) == {SANDBOX, GET}  # the other two run exactly as printed


def test_post_sample_runs_as_printed(emu: Emulator, tmp_path: Path) -> None:
    command = fill(repaired(POST), emu)
    assert command == fill(SAMPLES[POST], emu)  # no repair applied

    status, body, _ = run_curl(command, tmp_path)

    payload = assert_documented_success(status, body, emu)
    assert (payload["type"], payload["body"]) == ("text", BODY)
    row = ledger_row(emu)
    assert row["to"] == TO
    assert row["from"] == SENDER
    assert (row["type"], row["channel"], row["body"]) == ("text", "whatsapp", BODY)
    refs = (row["ref"], row["ref1"], row["ref2"])
    assert refs == ("Customer Name", "Company Name", "Designation")
    assert row["callback_url"] == CALLBACK


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "multipart/form-data", "application/x-www-form-urlencoded"],
)
def test_post_sample_with_each_content_type(
    emu: Emulator, tmp_path: Path, content_type: str
) -> None:
    # Whatever the header says, curl --form sends multipart (adding "; boundary=...").
    command = fill(SAMPLES[POST], emu, **{"<CONTENT_TYPE>": content_type})
    status, body, _ = run_curl(command, tmp_path)
    assert_documented_success(status, body, emu)
    assert ledger_row(emu)["body"] == BODY


def test_sandbox_request_runs_once_repaired(emu: Emulator, tmp_path: Path) -> None:
    command = fill(repaired(SANDBOX), emu, **{"<TYPE>": "template"})
    status, body, done = run_curl(command, tmp_path)

    assert done.returncode == 0, done.stderr
    payload = assert_documented_success(status, body, emu)
    assert (payload["type"], payload["body"]) == ("template", "")
    row = ledger_row(emu)
    assert (row["to"], row["from"], row["type"]) == (TO, SENDER, "template")
    assert (row["template_name"], row["params"], row["source"]) == (
        "british_council",
        "Raman",
        "sandbox",
    )
    assert row["callback_url"] == CALLBACK


def test_sandbox_request_sample_runs_as_printed(emu: Emulator, tmp_path: Path) -> None:
    command = fill(repaired(SANDBOX_SAMPLE), emu)
    assert command == fill(SAMPLES[SANDBOX_SAMPLE], emu)  # no repair applied

    status, body, done = run_curl(command, tmp_path)

    assert done.returncode == 0, done.stderr
    payload = assert_documented_success(status, body, emu)
    assert payload["type"] == "template"
    row = ledger_row(emu)
    assert (row["to"], row["from"]) == (TO, SENDER)  # sent without '+', stored as E.164
    assert (row["template_name"], row["params"], row["source"]) == (
        "british_council",
        "Raman",
        "sandbox",
    )
    assert (row["channel"], row["callback_url"]) == ("whatsapp", CALLBACK)


def test_get_sample_runs_once_repaired(emu: Emulator, tmp_path: Path) -> None:
    # In a URL the body must be percent-encoded; the number keeps its raw '+', as printed
    # in the document's examples, which a query string decodes to a space.
    command = fill(repaired(GET), emu, **{"<BODY>": quote(BODY, safe="")})
    assert f"to={TO}&" in command
    status, body, done = run_curl(command, tmp_path)

    assert done.returncode == 0, done.stderr
    payload = assert_documented_success(status, body, emu)
    assert (payload["type"], payload["body"]) == ("text", BODY)
    row = ledger_row(emu)
    assert (row["to"], row["from"], row["body"]) == (TO, SENDER, BODY)
    assert (row["channel"], row["callback_url"]) == ("whatsapp", CALLBACK)


@pytest.mark.parametrize("title", [SANDBOX, GET])
def test_broken_samples_do_not_deliver_as_printed(
    emu: Emulator, tmp_path: Path, title: str
) -> None:
    command = fill(SAMPLES[title], emu, **{"<TYPE>": "template"})
    _, _, done = run_curl(command, tmp_path)
    assert done.returncode != 0  # bash runs a "--header"/"--form" line as a command
    assert emu.messages.empty
