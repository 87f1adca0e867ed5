"""A message per arm: :func:`kwa_batch.validate`'s campaign-wide settings given per arm of
an experiment (``template_name={"A": "promo_a", "B": "promo_b"}``), read as the rows of
each arm (the ``arm`` column :func:`kwa_batch.assign` adds).

A holdout row is never sent, but it is checked as the first arm's message would be (or
as a ``"holdout"`` entry says), so that the holdout holds the same kind of recipients as
the arms: a row any arm would refuse is refused in the holdout too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from ..results import ARM_COLUMN, HOLDOUT_ARM

__all__ = ["arm_cells"]

T = TypeVar("T")


def by_arm(
    df: pd.DataFrame, setting: str, value: T | Mapping[str, T] | None
) -> list[tuple[Any, T]]:
    """``(rows, value)`` pairs, ``rows`` a boolean mask of ``df``'s positions: one pair of
    every row for a plain value, one per arm for a mapping (none for None).

    Raises:
        ConfigurationError: a mapping for a frame without an ``arm`` column, or one that
            gives no value for an arm of the frame.
    """
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [(np.ones(len(df), dtype=bool), value)]
    if ARM_COLUMN not in df.columns:
        raise ConfigurationError(
            f"{setting} is given per arm ({', '.join(map(repr, value))}), but the frame has no "
            "arm column: split it with kb.assign(df) first"
        )
    arms = arm_cells(df[ARM_COLUMN]).fillna("").to_numpy(dtype=object)
    present = [a for a in dict.fromkeys(arms) if a != HOLDOUT_ARM]
    missing = [a for a in present if a not in value]
    if missing:
        row = df.index[np.flatnonzero(arms == missing[0])[0]]
        raise ConfigurationError(
            f"{setting} gives no value for arm {missing[0]!r} (row {row!r}): add it, e.g. "
            f"{setting}={{..., {missing[0]!r}: ...}}"
        )
    if not value:
        return []
    pairs = [(arms == arm, given) for arm, given in value.items() if arm != HOLDOUT_ARM]
    held = value.get(HOLDOUT_ARM, next(iter(value.values())))
    pairs.append((arms == HOLDOUT_ARM, held))
    return pairs


def arm_cells(column: pd.Series) -> pd.Series:
    """An ``arm`` column as read: each cell stripped, and the holdout whatever its case
    (``"Holdout "`` is the holdout, never sent).

    >>> arm_cells(pd.Series(["A ", "Holdout", " holdout ", None])).tolist()
    ['A', 'holdout', 'holdout', <NA>]
    """
    arms = column.astype("string").str.strip()
    return arms.mask(arms.str.lower().eq(HOLDOUT_ARM).fillna(False), HOLDOUT_ARM)


def shown(value: Any) -> Any:
    """A setting as a report's settings record it (a mapping per arm as a plain dict)."""
    if isinstance(value, Mapping):
        return {str(arm): shown(given) for arm, given in value.items()}
    if isinstance(value, list | tuple):
        return list(value)
    return value
