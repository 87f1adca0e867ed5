"""Emulator fixtures shared by the test suite (imported by ``tests/conftest.py``).

``emulator`` is one server for the whole session: tests that count what it recorded call
``emulator.reset()`` first. ``fresh_emulator`` is a server of its own for a test that
needs special settings or must not share state (it costs about 50 ms to stop).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kwa_batch.emulator import Emulator

__all__ = ["emulator", "fresh_emulator"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator on a free port of 127.0.0.1 for the whole test session."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """A new emulator on a free port, stopped when the test ends."""
    with Emulator() as emu:
        yield emu
