"""The README as a newcomer follows it, from a fresh copy of the repository.

The README's first command runs as written: a fresh venv, ``pip install .`` (a wheel, not an
editable install: what a user gets), then ``kwa-batch send`` on the sample; what it prints must
be what the README shows. Then, in that copy and with that venv: every ``$ kwa-batch …``
command of the README's console blocks (their shown output must appear, in order), each
command of the README's command table with its placeholders filled in, and the README's
"In Python" example exactly as written. A command that needs an account gets ``--emulator``
(nothing leaves the machine); nothing else is changed, so a README edit that breaks a command
fails here.

Those are slow: pip builds the wheel and installs the dependencies (about a minute). The
parsing and the command table's completeness are checked without a venv.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: The README's files that do not exist in a clone, and the sample file that stands in.
STAND_INS = {"campaign.csv": "sample_data/recipients.csv"}
#: The command table's placeholders, filled in.
PLACEHOLDERS = {
    "FILE": "sample_data/recipients.csv",
    "RESULTS_FILE": "results.xlsx",
    "STORE": "receipts.db",
    "ID": "1234567890",
    "JOURNAL": "campaign.db",
}
#: Commands that talk to an account unless told to use the built-in emulator.
NEED_AN_ACCOUNT = ("send", "templates", "follow-up")
SERVERS = ("receive", "emulator")
_PORT = re.compile(r"(127\.0\.0\.1|localhost):\d+")


@dataclass
class Block:
    heading: str
    info: str
    lines: list[str]


@dataclass
class Shown:
    """A ``$ kwa-batch …`` command of a console block and the output the README shows."""

    command: str
    output: list[str] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    """The README's fenced blocks, with the heading each one is under."""
    found: list[Block] = []
    heading, current = "", None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = Block(heading, line[3:].strip(), [])
            else:
                found.append(current)
                current = None
        elif current is not None:
            current.lines.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


def shown_commands(text: str) -> list[Shown]:
    """Every ``$ kwa-batch …`` line of the README's blocks (continuation lines joined),
    with the output lines that follow it."""
    found: list[Shown] = []
    for block in blocks(text):
        lines = iter(block.lines)
        current: Shown | None = None
        for line in lines:
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    command = command[:-1].rstrip() + " " + next(lines).strip()
                current = Shown(command) if command.startswith("kwa-batch ") else None
                if current is not None:
                    found.append(current)
            elif current is not None:
                current.output.append(line)
    return found


def table_commands(text: str) -> list[str]:
    """The synopses of the README's command table (``kwa-batch NAME …``)."""
    return re.findall(r"^\| `(kwa-batch [^`]+)` \|", text, flags=re.MULTILINE)


def first_command(text: str) -> str:
    """The README's first command (install and send), as written."""
    block = next(b for b in blocks(text) if b.heading == "Two commands")
    (line,) = [line for line in block.lines if line.strip()]
    return line


def python_example(text: str) -> str:
    block = next(b for b in blocks(text) if b.heading == "In Python" and b.info == "python")
    return "\n".join(block.lines) + "\n"


def normalised(lines: list[str]) -> list[str]:
    """Lines without trailing blanks, every local port written as PORT."""
    return [_PORT.sub(r"\1:PORT", line.rstrip()) for line in lines]


def offline(command: str) -> list[str]:
    """The README's command as arguments, with ``--emulator`` when it needs an account."""
    args = shlex.split(command, comments=True)
    assert args[0] == "kwa-batch", command
    if args[1] in NEED_AN_ACCOUNT and "--emulator" not in args:
        args.append("--emulator")
    if args[1] in SERVERS and "--port" not in args:
        args += ["--port", "0"]  # a free one: 8765 may be someone's receiver
    return args


def from_synopsis(synopsis: str) -> str:
    """A command of the table, without its optional parts, placeholders filled in."""
    command = re.sub(r"\s*\[[^\]]*\]", "", synopsis).replace("…", "").strip()
    return " ".join(PLACEHOLDERS.get(word, word) for word in command.split())


README_TEXT = README.read_text(encoding="utf-8")


# -- the parsing itself (fast: no venv) ---------------------------------------------------


def test_the_readme_parses_into_commands() -> None:
    commands = [shown.command for shown in shown_commands(README_TEXT)]
    assert commands[0] == "kwa-batch send sample_data/recipients.csv --emulator --out results.xlsx"
    assert first_command(README_TEXT).endswith(".venv/bin/" + commands[0])
    assert any(
        c.startswith("kwa-batch validate sample_data/template_campaign.csv") for c in commands
    )
    assert "kb.plot_outcomes(results)" in python_example(README_TEXT)
    assert from_synopsis("kwa-batch validate FILE [--region CC] [--from NUMBER]") == (
        "kwa-batch validate sample_data/recipients.csv"
    )


def test_the_command_table_lists_every_command() -> None:
    from kwa_batch.cli import cli

    listed = {synopsis.split()[1] for synopsis in table_commands(README_TEXT)}
    assert listed == set(cli.commands)


# -- the newcomer's path (slow: a fresh venv and pip install .) -----------------------------


def _tracked_copy(target: Path) -> None:
    """The repository's tracked files (as a fresh clone has them), in ``target``."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=False
    )
    if listed.returncode != 0:  # not a git checkout (an sdist): the files as they are
        shutil.copytree(
            ROOT,
            target,
            ignore=shutil.ignore_patterns(
                ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
            ),
            dirs_exist_ok=True,  # the clone fixture has made the folder already
        )
        return
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():  # a tracked file deleted in the work tree is gone
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _environment(clone: Path, shim: Path) -> dict[str, str]:
    """A user's shell: no account, no receiver settings, no venv active, no terminal width
    (the README shows the commands' output unwrapped; a pytest-xdist worker has COLUMNS=80,
    and the clone is made before the per-test fixture that drops it); ``python3`` is the
    interpreter running these tests; the new venv's commands first on the PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KALEYRA_", "KWA_", "PYTHON"))
        and k not in ("VIRTUAL_ENV", "COLUMNS", "LINES")
    }
    ours = Path(sys.executable).parent
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != ours]
    env["PATH"] = os.pathsep.join([str(clone / ".venv" / "bin"), str(shim), *path])
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["MPLBACKEND"] = "Agg"  # the example's chart, without a window
    return env


@dataclass
class Clone:
    """A copy of the repository where the README's first command ran (``first``), and a
    working folder elsewhere with a copy of ``sample_data/`` (and the first command's
    ``results.xlsx``) where the other commands run, with that venv's commands."""

    path: Path
    work: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]

    @property
    def python(self) -> str:
        return str(self.path / ".venv" / "bin" / "python")

    def run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


# tests/conftest.py puts the tests that use it first, so that under pytest-xdist one worker
# runs them all at the start: one clone and pip install, not one per worker.
@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Clone:
    """The README's first command, as written, in a fresh copy of the repository."""
    base = tmp_path_factory.mktemp("readme")
    path, work, shim = base / "clone", base / "work", base / "shim"
    for folder in (path, work, shim):
        folder.mkdir()
    _tracked_copy(path)
    base_python = getattr(sys, "_base_executable", sys.executable)
    (shim / "python3").symlink_to(base_python)
    env = _environment(path, shim)
    first = subprocess.run(
        ["bash", "-c", first_command(README_TEXT)],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert (path / ".venv" / "bin" / "kwa-batch").exists(), first.stdout + first.stderr
    shutil.copytree(path / "sample_data", work / "sample_data")
    if (path / "results.xlsx").exists():
        shutil.copy(path / "results.xlsx", work / "results.xlsx")  # for `report`, `status`
    return Clone(path, work, env, first)


def _assert_clean(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert "Traceback" not in done.stdout + done.stderr, f"{what}\n{done.stdout}{done.stderr}"


@pytest.mark.slow
def test_the_install_is_not_editable(clone: Clone) -> None:
    done = clone.run([clone.python, "-c", "import kwa_batch; print(kwa_batch.__file__)"])
    assert done.returncode == 0, done.stderr
    assert "site-packages" in done.stdout, done.stdout
    assert str(ROOT) not in done.stdout
    assert str(clone.path / "kwa_batch") not in done.stdout


@pytest.mark.slow
def test_the_first_command_prints_what_the_readme_shows(clone: Clone) -> None:
    done = clone.first
    _assert_clean(done, "the README's first command")
    assert done.returncode == 1, done.stdout + done.stderr  # "exit code 1": five bad rows
    send = shown_commands(README_TEXT)[0]
    assert normalised(done.stdout.splitlines()) == normalised(send.output)
    assert (clone.path / "results.xlsx").is_file()


def _in_order(shown: list[str], printed: list[str]) -> list[str]:
    """The shown lines that are not found, in order, among the printed ones."""
    rest = iter(normalised(printed))
    return [line for line in normalised(shown) if line and line not in rest]


@pytest.mark.slow
@pytest.mark.parametrize(
    "shown",
    shown_commands(README_TEXT),
    ids=lambda s: " ".join(s.command.split()[:3]),
)
def test_each_console_command_runs_as_the_readme_shows(clone: Clone, shown: Shown) -> None:
    args = offline(shown.command)
    for name in args:
        if name in STAND_INS and not (clone.work / name).exists():
            shutil.copy(clone.work / STAND_INS[name], clone.work / name)
        if name.endswith("/") and not (clone.work / name).exists():
            (clone.work / name).mkdir()  # a folder the command reads (--history journals/)
    done = clone.run(args)
    _assert_clean(done, shown.command)
    # 0 all good, 1 rows refused, 3 rows held for a later run: never 2 (unusable).
    assert done.returncode in (0, 1, 3), f"{shown.command}\n{done.stdout}{done.stderr}"
    assert not _in_order(shown.output, done.stdout.splitlines()), done.stdout


def _serve_briefly(clone: Clone, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Start a server command, wait for its 'Press Ctrl-C', press it."""
    process = subprocess.Popen(
        args,
        cwd=clone.work,
        env=clone.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(args, process.returncode, "".join(lines) + out, err)


@pytest.mark.slow
def test_each_command_of_the_table_runs(clone: Clone) -> None:
    """In the table's order (receive makes the store that status and follow-up read)."""
    for synopsis in table_commands(README_TEXT):
        args = offline(from_synopsis(synopsis))
        done = _serve_briefly(clone, args) if args[1] in SERVERS else clone.run(args)
        _assert_clean(done, synopsis)
        assert done.returncode in (0, 1), f"{args}\n{done.stdout}{done.stderr}"


@pytest.mark.slow
def test_the_python_example_runs_as_written(clone: Clone) -> None:
    (clone.work / "readme_example.py").write_text(python_example(README_TEXT), encoding="utf-8")
    (clone.work / "results.xlsx").unlink(missing_ok=True)
    done = clone.run([clone.python, "readme_example.py"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert (clone.work / "results.xlsx").is_file()
