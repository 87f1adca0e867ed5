"""Shared fixtures: the emulator (from conftest_emulator), sample paths, tmp files."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest_emulator import emulator, fresh_emulator  # noqa: F401  (fixtures)
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# No time limit per Hypothesis example: its 200 ms deadline is a timed assertion, and on
# shared machines a loaded core failed a pandas-only property test at 265 ms.
settings.register_profile("kwa_batch", deadline=None)
settings.load_profile("kwa_batch")
SENDER = "+911234567890"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): two pytest-xdist workers a core, eight at most.

    Most tests wait (HTTP round trips, rates, child processes, read timeouts) rather than
    compute, so a second worker a core fills those waits: on two cores the fast lane took
    ~92 s with 2 workers, ~70 s with 3 and ~66 s with 4. ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still overrides, as in pytest-xdist; ``-n N`` sets the number, ``-n 0`` runs in one
    process.
    """
    import os

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(2 * (cores or 1), 8)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The README's tests that share its fresh clone and ``pip install .`` (a minute or more)
    run first: with pytest-xdist's worksteal, one worker starts on them while the other
    takes the rest, and they stay together (one clone, not one per worker)."""
    first = [
        item
        for item in items
        if item.path.name == "test_readme.py" and "clone" in getattr(item, "fixturenames", ())
    ]
    if first:
        chosen = set(first)
        items[:] = first + [item for item in items if item not in chosen]


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line wraps at ``COLUMNS`` when set: a terminal's width leaking in from
    the shell that runs pytest must not change what the tests read."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def sample_csv() -> Path:
    """The sample recipient file shipped in sample_data/."""
    return ROOT / "sample_data" / "recipients.csv"


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write text (or bytes) to a CSV file in tmp_path and return its path."""

    def write(content: str | bytes, name: str = "recipients.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode(encoding))
        return path

    return write


@pytest.fixture
def small_tmpfs(request: pytest.FixtureRequest, tmp_path: Path):
    """A real, small filesystem (a tmpfs, 256 KiB unless the test's indirect parameter gives
    another ``size=``), mounted on a fresh folder and unmounted at the end: a real full disk.

    Mounting needs root; elsewhere the test is skipped and says why.
    """
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs of its own, and mounting one needs root")
    size = getattr(request, "param", None) or "256k"
    mount_point = tmp_path / "small_tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazily if a file there is still open (a failed test): it goes when that closes.
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch):
    """A click CliRunner with none of the environment's account or receiver settings: each
    test sets what it needs."""
    from click.testing import CliRunner

    for name in (
        "KALEYRA_SID",
        "KALEYRA_API_KEY",
        "KALEYRA_FROM",
        "KALEYRA_BASE_URL",
        "KALEYRA_API_VERSION",
        "KWA_RECEIVER_STORE",
        "KWA_RECEIVER_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


class WallClock:
    """The run's wall clock (:func:`kwa_batch.sending.clock.now`), set by a test: a real send
    refuses ``now=``, so a test that must stand at a given moment sets the clock itself.

    ``set(moment)`` stands still at ``moment``; ``set(moment, speed=60)`` starts there and
    moves 60 times faster than real time (a minute a second), as a long campaign would.
    """

    def __init__(self) -> None:
        import time

        self._monotonic = time.monotonic
        self._start: datetime | None = None
        self._origin = 0.0
        self.speed = 0.0

    def set(self, moment: datetime, *, speed: float = 0.0) -> None:
        self._start, self._origin, self.speed = moment, self._monotonic(), speed

    def now(self) -> datetime:
        assert self._start is not None, "set the clock first"
        return self._start + timedelta(seconds=(self._monotonic() - self._origin) * self.speed)


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    """A settable wall clock for the sending side (see :class:`WallClock`)."""
    from kwa_batch.sending import clock

    found = WallClock()
    found.set(clock.now(), speed=1.0)
    monkeypatch.setattr(clock, "now", found.now)
    return found


def campaign(numbers: list[str], type_: str = "template") -> pd.DataFrame:
    """A campaign to these numbers: one template each (``type_="template"``), else a text."""
    frame = pd.DataFrame({"to": pd.array(numbers, dtype="str")})
    if type_ == "template":
        frame["type"], frame["template_name"] = "template", "promo"
        frame["params"], frame["lang_code"] = "Ana", "en"
    else:
        frame["body"] = "Hello"
    return frame


def load_within(
    load: Callable[[Path], object], path: Path, seconds: float = 30
) -> BaseException | None:
    """``load(path)`` on a thread: the error it raised (None if none), or fail the test if it
    is still blocked after ``seconds`` (a reader stuck on a FIFO: it is then unblocked by
    opening the FIFO for writing, so that the thread ends)."""
    import contextlib
    import os
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            load(path)
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(
            f"{getattr(load, '__name__', load)}({path}) was still blocked after {seconds} s"
        )
    return outcome[0]


def start_receive(store: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str], str]:
    """A real ``kwa-batch receive --port 0 --store STORE`` process, read until it says its
    callback_url: the process, the lines it printed, and the URL as shown (a token masked).
    The caller stops it (and closes its stdout)."""
    args = [sys.executable, "-m", "kwa_batch", "receive", "--port", "0", "--store", str(store)]
    proc = subprocess.Popen(
        args, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not any("callback_url:" in line for line in lines):
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"kwa-batch receive did not say its callback_url: {lines}")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"kwa-batch receive ended early: {lines}")
        lines.append(line)
    url = next(line for line in lines if "callback_url:" in line).split()[-1]
    return proc, lines, url


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server of this test session's (tests/postgres_server.py): skips
    where PostgreSQL is missing, fails instead under ``KWA_REQUIRE_SERVERS=1`` (.ci/run)."""
    from postgres_server import start_server

    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture(params=["file", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a callback store lives: a SQLite file, then a PostgreSQL database (a test
    that takes it runs on both, and every reader takes the URL as it takes the path)."""
    if request.param == "file":
        return str(tmp_path / "receipts.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["file", "postgresql"])
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """A run's journal as ``send``'s keywords: a SQLite file, then a campaign of a PostgreSQL
    database (a test that takes it runs on both engines, DESIGN.md: one storage interface,
    two engines)."""
    if request.param == "file":
        return {"journal": tmp_path / "run.db"}
    return {"journal": request.getfixturevalue("postgres_url"), "campaign": "test"}
