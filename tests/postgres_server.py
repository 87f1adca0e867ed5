"""A real PostgreSQL server for the tests: its own cluster in a temporary folder, on a free
port of 127.0.0.1, started as the ``postgres`` user when the tests run as root (PostgreSQL
refuses to run as root) and stopped at the end of the session.

Where PostgreSQL is not installed, the tests that need it skip with one line saying so;
``.ci/run`` installs it (Debian's ``postgresql``) and sets ``KWA_REQUIRE_SERVERS=1``, which
turns that skip into a failure, so CI never passes by skipping.

Each test gets a database of its own (:meth:`PostgresServer.new_database`), so tests running
at once never see each other's tables.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Set by .ci/run: a missing server fails the test instead of skipping it.
REQUIRE = "KWA_REQUIRE_SERVERS"


def missing(what: str) -> None:
    """Skip, or fail under ``KWA_REQUIRE_SERVERS=1``, for a server the test needs."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{what} (KWA_REQUIRE_SERVERS=1: .ci/run installs it)", pytrace=False)
    pytest.skip(what)


def find_binaries() -> Path | None:
    """The folder of PostgreSQL's server programs (``initdb``, ``pg_ctl``), newest first."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    folders = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(folders[-1]).parent if folders else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One running cluster; :meth:`new_database` gives each test a database of its own."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="kwa-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        if not self._as_postgres:
            self.user = pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c full_page_writes=off -c max_connections=200 "
            "-c shared_buffers=64MB"
        )
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"),
            "-w", "-t", "60", "start", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.data / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr or done.stdout}\n{log}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stops answering inside (its processes stopped with SIGSTOP: what a
        dead host or a network black hole looks like to a client, whose connections stay
        open), and answers again after."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        found = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        )
        pids = [postmaster, *(int(pid) for pid in found.stdout.split())]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


def start_server() -> PostgresServer:
    """Start a cluster, or skip (fail under KWA_REQUIRE_SERVERS=1) saying what is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed: pip install -e '.[test]'")
    bindir = find_binaries()
    if bindir is None:
        missing("PostgreSQL is not installed (Debian: apt-get install -y postgresql)")
        raise AssertionError("unreachable")
    server = PostgresServer(bindir)
    for attempt in range(3):  # a free port taken by someone else between the look and the start
        try:
            server.start()
            return server
        except RuntimeError:
            server.stop()
            if attempt == 2:
                raise
            time.sleep(0.5)
            server = PostgresServer(bindir)
    raise AssertionError("unreachable")
