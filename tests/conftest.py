"""Shared fixtures: the emulator (from conftest_emulator), sample paths, tmp files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest_emulator import emulator, fresh_emulator  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
SENDER = "+911234567890"


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
        "KWA_RECEIVER_STORE",
        "KWA_RECEIVER_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()
