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
