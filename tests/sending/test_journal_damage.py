"""A journal that cannot be used (damaged, not a journal, another schema, an unwritable
place) is refused at open in one line, before anything is sent; the CLI exits 2."""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SENDER

from kwa_batch import Emulator, send
from kwa_batch.cli import cli
from kwa_batch.errors import ConfigurationError, JournalError, JournalLockedError
from kwa_batch.sending.journal import APPLICATION_ID, Journal

ROWS = 200


def frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(n)], "body": "Hello"})


def journal_of(path: Path, rows: int = ROWS) -> Path:
    """A real journal with ``rows`` rows recorded as sent."""
    with Journal(path) as journal:
        journal.record(
            (f"{i:064x}", f"+9198{i:08d}", {"status": "sent", "message_id": f"m-{i}"})
            for i in range(rows)
        )
    return path


def garbled(seed: int) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        data = bytearray(journal_of(path).read_bytes())
        rnd = random.Random(seed)
        for _ in range(200):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        path.write_bytes(bytes(data))
        return path

    return build


def truncated(keep: float) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        data = journal_of(path).read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return build


def csv_renamed(path: Path) -> Path:
    path.write_text("to,body\n+919876543210,Hi\n")
    return path


def empty_file(path: Path) -> Path:
    path.touch()
    return path


def other_program(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    return path


def other_application_id(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA application_id = 1234")
    return path


def future_version(path: Path) -> Path:
    journal_of(path, rows=2)
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")
    return path


def edited(sql: str) -> Callable[[Path], Path]:
    """A journal whose structure is sound but whose values are not (integrity_check passes)."""

    def build(path: Path) -> Path:
        with Emulator() as emu:  # the rows of frame(), as a run records them
            send(frame(), emu.client(sender=SENDER), journal=path, progress=False)
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(sql)
        return path

    return build


def key_garbled_in_the_table_only(path: Path) -> Path:
    """One row's key changed in the table but not in its index: PRAGMA quick_check passes
    it, and a lookup through the index would then miss the row (and send it again)."""
    journal_of(path, rows=ROWS)
    key = f"{5:064x}".encode()
    with closing(sqlite3.connect(path)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        leaves = db.execute("SELECT pageno FROM dbstat WHERE name = 'rows' AND pagetype = 'leaf'")
        pages = [page for (page,) in leaves]
    data = bytearray(path.read_bytes())
    for page in pages:
        at = data.find(key, (page - 1) * page_size, page * page_size)
        if at >= 0:
            data[at + len(key) - 1] = ord("z")
            break
    else:
        raise AssertionError("the key was not found in the table's pages")
    path.write_bytes(bytes(data))
    return path


def a_folder(path: Path) -> Path:
    path.mkdir()
    return path


def a_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def no_such_folder(path: Path) -> Path:
    return path.parent / "missing" / path.name


CASES = [
    pytest.param(garbled(seed), r"it is damaged \(", id=f"garbled-{seed}") for seed in range(5)
] + [
    pytest.param(truncated(0.5), r"it is damaged \(", id="truncated-half"),
    pytest.param(truncated(0.01), r"it is damaged \(", id="truncated-to-its-header"),
    pytest.param(
        key_garbled_in_the_table_only,
        r"it is damaged \(row \d+ missing from index",
        id="table-and-index-disagree",
    ),
    pytest.param(csv_renamed, r"it is not a journal \(not a SQLite database\)", id="csv"),
    pytest.param(empty_file, "it is an empty file, not a journal; delete it", id="empty"),
    pytest.param(other_program, r"not a kwa_batch journal \(tables: contacts\)", id="foreign"),
    pytest.param(other_application_id, r"another program's SQLite database", id="foreign-id"),
    pytest.param(future_version, r"newer kwa_batch \(journal version 99", id="future"),
    pytest.param(
        edited("UPDATE rows SET state = 'sebt'"),
        r"it is damaged \(a row in an unknown state 'sebt'\)",
        id="unknown-state",
    ),
    pytest.param(
        edited("UPDATE rows SET sent_at = 'yesterday'"),
        r"it is damaged \(Invalid isoformat string: 'yesterday'\)",
        id="bad-time",
    ),
    pytest.param(a_folder, "it is a folder; give a file name", id="folder"),
    pytest.param(a_fifo, "it is not a regular file", id="fifo"),
    pytest.param(no_such_folder, "folder .*missing does not exist", id="no-folder"),
]
FIXES = {
    "damaged": "move it aside and run again: the rows it recorded as sent will be sent again",
    "other": "choose another journal (--journal)",
}


@pytest.mark.parametrize(("build", "reason"), CASES)
def test_an_unusable_journal_is_refused_before_sending(
    emulator: Emulator, tmp_path: Path, build: Callable[[Path], Path], reason: str
) -> None:
    path = build(tmp_path / "j.db")
    before = path.read_bytes() if path.is_file() else None
    emulator.reset()
    with pytest.raises(JournalError) as caught:
        send(frame(), emulator.client(sender=SENDER), journal=path, progress=False)
    message = str(caught.value)
    assert message.startswith(f"journal {path} cannot be used: ")
    assert "\n" not in message
    assert emulator.requests_seen == 0
    assert re.search(reason, message), message
    fix = FIXES["damaged"] if "damaged" in reason else FIXES["other"]
    if "folder" not in reason and "empty" not in reason:
        assert fix in message
    if before is not None and "sebt" not in reason and "isoformat" not in reason:
        # Refused at open, not "repaired" or overwritten. (Damaged values are found when
        # the rows are looked up, after the run was recorded as started.)
        assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        case
        for case in CASES
        if case.id.startswith("garbled") or case.id in {"csv", "future", "fifo"}
    ],
)
def test_the_cli_says_it_in_one_line_and_exits_2(
    emulator: Emulator, tmp_path: Path, build: Callable[[Path], Path], reason: str
) -> None:
    path = build(tmp_path / "j.db")
    (tmp_path / "in.csv").write_text("to,body\n+919876543210,Hi\n")
    emulator.reset()
    env = {
        "KALEYRA_SID": emulator.sid,
        "KALEYRA_API_KEY": emulator.api_key,
        "KALEYRA_BASE_URL": emulator.url,
        "KALEYRA_FROM": SENDER,
    }
    args = ["send", str(tmp_path / "in.csv"), "--journal", str(path), "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r.csv")], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: journal {path} cannot be used: ")
    assert result.output.count("\n") == 1, result.output
    assert emulator.requests_seen == 0
    assert not (tmp_path / "r.csv").exists()


def test_a_legacy_journal_is_adopted_and_keeps_its_rows(tmp_path: Path) -> None:
    """A journal written before application_id/user_version were set is still ours."""
    path = journal_of(tmp_path / "j.db", rows=3)
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA application_id = 0")
        db.execute("PRAGMA user_version = 0")
    with Journal(path) as journal:
        assert journal.counts() == {"sent": 3}
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)


def test_an_empty_sqlite_database_becomes_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("VACUUM")  # a valid SQLite file with no tables
    with Journal(path) as journal:
        assert journal.counts() == {}


def test_every_journal_error_is_a_configuration_error() -> None:
    assert issubclass(JournalError, ConfigurationError)
    assert issubclass(JournalLockedError, JournalError)


# -- places that cannot be written --------------------------------------------------------


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A folder and a function that makes it read-only for real: a read-only mount when
    running as root (permission bits do not stop root), its permission bits otherwise."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder, lambda: folder.chmod(0o555)
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"as root a read-only place needs a mount: {mounted.stderr.decode()}")

    def freeze() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    try:
        yield folder, freeze
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize(
    "how", ["existing-journal", "new-journal", "symlink-to-it", "symlink-to-a-new-one"]
)
def test_a_journal_in_a_read_only_place_is_refused(
    emulator: Emulator, read_only: tuple[Path, Callable[[], None]], how: str
) -> None:
    folder, freeze = read_only
    path = folder / "j.db"
    if how in ("existing-journal", "symlink-to-it"):
        journal_of(path, rows=3)
    if how.startswith("symlink"):  # from a folder that can be written, to one that cannot
        link = folder.parent / "link.db"
        link.symlink_to(path)
        path = link
    freeze()
    emulator.reset()
    reason = "on a read-only filesystem" if os.geteuid() == 0 else r"cannot be written \(perm"
    with pytest.raises(JournalError, match=reason) as caught:
        send(frame(), emulator.client(sender=SENDER), journal=path, progress=False)
    assert str(caught.value).startswith(f"journal {path} cannot be used: ")
    assert "choose another journal (--journal) in a folder you can write" in str(caught.value)
    assert emulator.requests_seen == 0


@pytest.fixture
def immutable_journal(tmp_path: Path) -> Iterator[Path]:
    """A journal file that cannot be written, even by root (``chattr +i`` where it works,
    permission bits otherwise)."""
    path = journal_of(tmp_path / "j.db", rows=3)
    if os.geteuid() != 0:
        path.chmod(stat.S_IRUSR)
        yield path
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip("as root an unwritable file needs chattr +i, which this filesystem lacks")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_journal_file_is_refused(emulator: Emulator, immutable_journal: Path) -> None:
    emulator.reset()
    with pytest.raises(JournalError, match=r"the file cannot be written \(permissions\)") as caught:
        send(frame(), emulator.client(sender=SENDER), journal=immutable_journal, progress=False)
    fix = "make it writable, or choose another journal (--journal) in a folder you can write"
    assert fix in str(caught.value)
    assert emulator.requests_seen == 0
