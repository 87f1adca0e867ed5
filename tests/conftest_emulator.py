"""Emulator fixtures shared by the test suite (imported by ``tests/conftest.py``).

``emulator`` is one server for the whole session: tests that count what it recorded call
``emulator.reset()`` first (that also empties its queue of injected faults). It has no
faults configured; a test may ``inject()`` some, and must not change its settings.

``fresh_emulator`` is a server of its own for a test that needs special settings or must
not share state (it costs about 50 ms to stop). Its settings are the test's parameter,
passed indirectly, e.g.::

    @pytest.mark.parametrize(
        "fresh_emulator", [{"faults": {"429": 0.1}, "seed": 7}], indirect=True
    )
    def test_something(fresh_emulator: Emulator) -> None: ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kwa_batch.emulator.server import Emulator

__all__ = ["emulator", "fresh_emulator"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator on a free port of 127.0.0.1 for the whole test session."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def fresh_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A new emulator on a free port, stopped when the test ends.

    Keyword arguments for :class:`Emulator` may come as an indirect parameter (a dict).
    """
    settings = getattr(request, "param", None) or {}
    with Emulator(**settings) as emu:
        yield emu
