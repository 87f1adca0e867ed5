"""The suite's own settings: nothing in it fails because a shared machine is slow."""

from __future__ import annotations

from hypothesis import settings


def test_hypothesis_examples_have_no_time_limit() -> None:
    assert settings().deadline is None
