"""kb.start in a real kernel: nbclient drives ipykernel, the emulator counts what arrives.

The emulator runs in this process; the kernel (another process) sends to it over HTTP, so
what the emulator recorded (each message, and when it arrived) is what left the kernel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from conftest import SENDER
from nbclient import NotebookClient

from kwa_batch import Emulator

pytestmark = pytest.mark.slow  # kernels start in seconds

ROWS = 600
RATE = 60  # messages a second: the campaign takes 10 s, stopped long before


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def _setup(emu: Emulator, journal: Path) -> str:
    return f"""
import time
import pandas as pd
import kwa_batch as kb
client = kb.KaleyraClient({emu.sid!r}, {emu.api_key!r}, base_url={emu.url!r}, sender={SENDER!r})
df = pd.DataFrame({{"to": [f"+9198765{{i:05d}}" for i in range({ROWS})], "body": "Hi"}})
journal = {str(journal)!r}
"""


def _run(nb: nbformat.NotebookNode, tmp_path: Path) -> NotebookClient:
    return NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )


def _stdout(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _plain(cell: Any) -> str:
    return "".join(
        o.data.get("text/plain", "")
        for o in cell.outputs
        if o.output_type in ("display_data", "execute_result")
    )


def _arrivals(emu: Emulator) -> pd.Series:
    return emu.messages["received_at"]


def _until(condition: Callable[[], bool], deadline: float = 60.0) -> None:
    """Wait until ``condition`` holds (a busy machine may take long; it fails only if never)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "the condition never held"
        time.sleep(0.1)


def _at(stdout: str, name: str) -> pd.Timestamp:
    """The moment the kernel printed as ``name=<unix seconds>``."""
    for line in stdout.splitlines():
        if line.startswith(f"{name}="):
            return pd.Timestamp(float(line.split("=", 1)[1]), unit="s", tz="UTC")
    raise AssertionError(f"{name} not printed in {stdout!r}")


@pytest.mark.parametrize("fresh_emulator", [{"latency": 0.05, "callbacks": False}], indirect=True)
def test_start_returns_while_sending_goes_on_stop_stops_and_a_new_kernel_resumes(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    journal = tmp_path / "campaign.db"
    first = _notebook(
        _setup(emu, journal),
        f"job = kb.start(df, client, journal=journal, rate_limit={RATE}, "
        "max_recipients_per_request=1)\nprint(f'returned={time.time()}')",
        "try:\n    kb.start(df, client, journal=journal)\n"
        "except kb.ConfigurationError as refused:\n    print(refused)",
        "print(f'asked={time.time()}')\nresults = job.stop()\n"
        "print(job.done, dict(sorted(results['status'].value_counts().items())))",
    )
    client = _run(first, tmp_path)
    with client.setup_kernel():
        client.execute_cell(first.cells[0], 0)
        client.execute_cell(first.cells[1], 1)
        # The cell that called start has finished executing (the kernel answered): start
        # returned without sending the campaign, which goes on after (ordering, not time).
        cell_done = pd.Timestamp.now(tz="UTC")
        assert (_arrivals(emu) <= cell_done).sum() < ROWS
        client.execute_cell(first.cells[2], 2)
        returned = _at(_stdout(first.cells[1]), "returned")
        assert returned <= cell_done
        # Sending goes on after start returned: the emulator keeps receiving.
        _until(lambda: (_arrivals(emu) > cell_done).sum() >= 30)
        client.execute_cell(first.cells[3], 3)
    # The second start on the same journal, while the first ran: one line, nothing sent.
    refusal = _stdout(first.cells[2]).strip()
    assert refusal.startswith("journal ")
    assert "in use by a job of this kernel" in refusal
    assert "\n" not in refusal
    # Stopped: nothing arrived more than 2 s after the stop was asked (in-flight requests
    # were awaited, nothing new left), the rest not_sent, and the job done.
    asked = _at(_stdout(first.cells[3]), "asked")
    arrivals = _arrivals(emu)
    assert (arrivals - asked).max() < pd.Timedelta(seconds=2)
    sent_first = len(emu.messages)
    assert 30 <= sent_first < ROWS
    assert f"True {{'not_sent': {ROWS - sent_first}, 'sent': {sent_first}}}" in _stdout(
        first.cells[3]
    )
    # The dashboard's plain form, in the saved notebook.
    saved = tmp_path / "first.ipynb"
    nbformat.write(first, saved)
    board = _plain(nbformat.read(saved, as_version=4).cells[1])
    assert board.startswith("kwa_batch job: stopped (SIGINT)")  # the last state, not the first
    assert f"sent {sent_first}" in board
    assert f"not_sent {ROWS - sent_first}" in board

    # A new kernel (as after a restart): the same call resumes; nothing is sent twice.
    second = _notebook(
        _setup(emu, journal),
        "job = kb.start(df, client, journal=journal, rate_limit=None)",
        "results = job.wait()\nprint(results['status'].value_counts().to_dict())\n"
        "print(results.attrs['run'].resume)",
    )
    client = _run(second, tmp_path)
    client.execute()
    assert "{'sent': 600}" in _stdout(second.cells[2])
    counts = emu.messages["to"].value_counts()
    assert len(counts) == ROWS
    assert counts.max() == 1
    nbformat.write(second, saved)
    board = _plain(nbformat.read(saved, as_version=4).cells[1])
    assert "kwa_batch job: finished" in board
    assert "sent 600" in board
