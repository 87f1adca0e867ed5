"""`kwa-batch receive --workers N`: several real processes behind one port, into a real
PostgreSQL database; each callback stored once whoever takes it, the receiver's checks
held, and no worker left behind once it stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from click.testing import CliRunner

import kwa_batch as kb
from kwa_batch.cli import cli
from kwa_batch.database import connect

TOKEN = "w0rkers-t0ken"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@dataclass
class Running:
    """A ``kwa-batch receive --workers N`` process, read up to its callback_url line."""

    proc: subprocess.Popen[str]
    lines: list[str]
    url: str  # the callback_url, token filled in

    def workers(self) -> list[int]:
        """The pids of the master's children."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if parent == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def stop(self, how: signal.Signals = signal.SIGTERM) -> str:
        """Signal it, wait for it, and return everything it printed."""
        self.proc.send_signal(how)
        rest, _ = self.proc.communicate(timeout=60)
        return "".join(self.lines) + rest


def start_workers(store: str, workers: int = 2, *, token: str | None = TOKEN) -> Running:
    args = [sys.executable, "-m", "kwa_batch", "receive", "--port", "0", "--store", store,
            "--workers", str(workers)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "KWA_RECEIVER_TOKEN"}
    if token:
        env["KWA_RECEIVER_TOKEN"] = token
    proc = subprocess.Popen(
        args, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while not any("callback_url:" in line for line in lines):
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"kwa-batch receive --workers ended early: {lines}")
        lines.append(line)
    shown = next(line for line in lines if "callback_url:" in line).split()[-1]
    return Running(proc, lines, shown.replace("****", token or ""))


@pytest.fixture
def running(postgres_url: str) -> Iterator[Running]:
    served = start_workers(postgres_url)
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.communicate(timeout=30)


def gone(pid: int) -> bool:
    """No such process (or only its exit status, not yet collected)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def callbacks() -> list[tuple[str, dict[str, str] | dict[str, object]]]:
    """A campaign's callbacks: (how, fields), GET queries and POST JSON bodies, status
    updates with times of their own and replies."""
    out: list[tuple[str, dict[str, str] | dict[str, object]]] = []
    for n in range(40):
        to = f"9198765{n:05d}"
        for k, status in enumerate(("sent", "delivered", "read")[: 1 + n % 3]):
            when = str(int((T0 + timedelta(minutes=n, seconds=k)).timestamp()))
            fields = {"id": f"m{n}:0", "status": status, "mobile": to, "timestamp": when}
            out.append(("GET" if k % 2 else "POST", fields))
        if n % 5 == 0:
            created = (T0 + timedelta(hours=1, minutes=n)).isoformat()
            body = "STOP" if n % 10 == 0 else "Thanks"
            out.append(("POST", {"from": to, "body": body, "created_at": created}))
        if n % 7 == 0:
            when = str(int((T0 + timedelta(minutes=n, seconds=9)).timestamp()))
            out.append(("GET", {"id": f"m{n}:0", "status": "failed", "mobile": to,
                                "error_code": "131050", "timestamp": when}))  # fmt: skip
    return out


def post(http: requests.Session, url: str, how: str, fields: dict[str, object]) -> bool:
    if how == "GET":
        answer = http.get(url, params=fields, timeout=30)
    else:
        answer = http.post(url, json=fields, timeout=30)
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["stored"])


@pytest.mark.slow
def test_concurrent_duplicates_are_stored_once_and_sigterm_stops_every_worker(
    running: Running, postgres_url: str, tmp_path: Path
) -> None:
    sent = callbacks()
    copies = 3  # each callback posted three times, by different threads at once
    work = [item for item in sent for _ in range(copies)]
    stored: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(part: int) -> None:
        try:
            with requests.Session() as http:  # kept alive: the connection is reused
                mine = [post(http, running.url, how, fields) for how, fields in work[part::6]]
            with lock:
                stored.extend(mine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(part,)) for part in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:1]
    assert sum(stored) == len(sent)  # each stored once: exactly one of its copies was new
    workers = running.workers()
    assert len(workers) == 2, workers
    output = running.stop(signal.SIGTERM)
    assert running.proc.returncode == 0, output
    assert all(gone(pid) for pid in workers), [pid for pid in workers if not gone(pid)]
    updates = sum(1 for _, fields in sent if "status" in fields)
    said = (
        f"Stopped; {len(sent)} callback(s) stored, {len(work) - len(sent)} repeated, 0 refused."
        f" {postgres_url} holds {updates} status update(s) and {len(sent) - updates} incoming"
    )
    assert said in output, output
    assert TOKEN not in output
    assert "Traceback" not in output

    # The same callbacks, once each, into a SQLite file through today's receiver: every
    # reader gives the same answers.
    path = tmp_path / "receipts.db"
    with kb.Receiver(path, token=TOKEN) as one, requests.Session() as http:
        for how, fields in sent:
            post(http, one.callback_url, how, fields)
    for read, key in ((kb.load_receipts, "message_id"), (kb.opt_outs, "number")):
        # In the order they arrived, which the threads made another (and updated_at, when
        # a receipt last arrived, is another time): sorted, the same.
        expected = read(path).sort_values(key, ignore_index=True)
        assert len(expected) > 0
        got = read(postgres_url).sort_values(key, ignore_index=True)
        if "updated_at" in got.columns:
            got, expected = got.drop(columns="updated_at"), expected.drop(columns="updated_at")
        pd.testing.assert_frame_equal(got, expected)
    with kb.CallbackStore(postgres_url) as database, kb.CallbackStore(path) as file:
        columns = ["message_id", "status", "at", "recipient", "error_code"]
        pd.testing.assert_frame_equal(
            database.status_updates()[columns].sort_values(columns[:2], ignore_index=True),
            file.status_updates()[columns].sort_values(columns[:2], ignore_index=True),
        )


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_the_receivers_checks_hold_under_workers_and_sigint_stops(running: Running) -> None:
    """The key cases of the receiver's own tests, against two workers."""
    url = running.url
    bare = url.split("?")[0]
    port = int(bare.split(":")[2].split("/")[0])
    status = {"id": "a:0", "status": "read", "mobile": "919876543210"}
    with requests.Session() as http:
        assert http.get(bare.rsplit("/", 2)[0] + "/", timeout=30).json() == {"status": "ok"}
        assert http.head(url, params=status, timeout=30).status_code == 200  # never stores
        assert http.get(bare, params=status, timeout=30).status_code == 401
        wrong = {"X-Kwa-Token": "nope"}
        assert http.get(bare, params=status, headers=wrong, timeout=30).status_code == 403
        header = {"X-Kwa-Token": TOKEN}
        assert http.get(bare, params=status, headers=header, timeout=30).json()["stored"] is True
        assert http.put(url, timeout=30).status_code == 405
        too_big = http.post(url, data=b"x" * (64 * 1024 + 1), timeout=30)
        assert too_big.status_code == 413
        chunked = http.post(url, data=iter([b'{"id": "b:0", "status": "read", "x": "'] +
                                           [b"y" * 1024] * 70 + [b'"}']), timeout=30)  # fmt: skip
        assert chunked.status_code == 413
        for body in ("{not json", '{"id": "a:0", "status": "read", "error": "\\ud800"}',
                     '{"from": "919876543210", "body": "hi\\u0000"}', "[" * 60_000):  # fmt: skip
            answer = http.post(
                url, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=30
            )
            assert answer.status_code == 400, (body[:40], answer.text)
            assert "error" in answer.json()
        document = {"meta_object": {"value": {"statuses": [
            {"id": "wamid.1", "status": "delivered", "recipient_id": "919876543210"},
            {"id": "wamid.2", "status": "read", "recipient_id": "919876543211"}]}}}  # fmt: skip
        answer = http.post(url, json=document, timeout=30).json()
        assert (answer["items"], answer["new"]) == (2, 2)
    assert raw(
        port,
        f"POST /kaleyra/callback?token={TOKEN} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    )[:12] in (b"HTTP/1.1 400", b"HTTP/1.0 400")
    workers = running.workers()
    output = running.stop(signal.SIGINT)
    assert running.proc.returncode == 0, output
    assert all(gone(pid) for pid in workers)
    assert "Stopped; 3 callback(s) stored, 0 repeated" in output, output
    assert TOKEN not in output
    assert "9876543210" not in output  # numbers are masked in the log lines
    assert "Traceback" not in output


def test_workers_are_refused_with_a_sqlite_store(runner: CliRunner, tmp_path: Path) -> None:
    store = tmp_path / "receipts.db"
    outcome = runner.invoke(
        cli, ["receive", "--port", "0", "--store", str(store), "--workers", "2"]
    )
    assert outcome.exit_code == 2
    assert outcome.output.count("\n") == 1
    assert "one writer at a time" in outcome.output
    assert "postgresql://" in outcome.output
    assert not store.exists()


def test_workers_refuse_a_store_of_a_newer_format(runner: CliRunner, postgres_url: str) -> None:
    kb.CallbackStore(postgres_url).open().close()
    with connect(postgres_url) as conn:
        conn.execute("UPDATE kwa_schema SET version = 99 WHERE part = 'store'")
    outcome = runner.invoke(
        cli, ["receive", "--port", "0", "--store", postgres_url, "--workers", "2"]
    )
    assert outcome.exit_code == 2, outcome.output
    assert "newer kwa_batch (version 99" in outcome.output
    assert "Traceback" not in outcome.output


def test_workers_refuse_a_port_in_use(runner: CliRunner, postgres_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = runner.invoke(
            cli, ["receive", "--port", str(port), "--store", postgres_url, "--workers", "2"]
        )
    assert outcome.exit_code == 2, outcome.output
    assert f"cannot listen on 127.0.0.1:{port}" in outcome.output


@pytest.mark.slow
def test_the_password_never_shows(postgres_url: str) -> None:
    secret = "pa55-w0rd"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")  # the test server trusts all
    served = start_workers(url, token=None)
    try:
        answer = requests.get(served.url, params={"id": "p:0", "status": "sent"}, timeout=30)
        assert answer.json()["stored"] is True
    finally:
        output = served.stop()
    assert served.proc.returncode == 0, output
    assert "postgres:***@127.0.0.1" in output
    assert secret not in output
    assert json.dumps(secret) not in output


@pytest.mark.slow
def test_one_worker_is_today_s_server_on_a_database(postgres_url: str) -> None:
    from conftest import start_receive

    env = {k: v for k, v in os.environ.items() if k != "KWA_RECEIVER_TOKEN"}
    proc, lines, url = start_receive(postgres_url, env)
    try:
        fields = {"id": "one:0", "status": "read", "mobile": "919876543210"}
        assert requests.get(url, params=fields, timeout=30).json()["stored"] is True
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "worker processes" not in output
    assert f"Stopped; 1 callback(s) stored, 0 repeated, 0 refused. {postgres_url} holds 1" in output
    assert kb.load_receipts(postgres_url)["status"].tolist() == ["read"]
