"""The messages of earlier parts of a file, so that a repeat is found across parts.

:func:`~kwa_batch.validation.validator.validate` refuses a row that repeats the message of
an earlier row to the same recipient (``KWA007``, naming the earlier line). A file sent in
parts (:func:`kwa_batch.send_file`) is validated part by part, so the rows of earlier parts
are remembered here: not as text (ten million strings would take gigabytes) but as one
64-bit hash of each valid row's message key and its line, in sorted numpy arrays (12 bytes
a row: 120 MB for ten million rows). Sorted runs are merged as they grow, up to about a
million rows each (:data:`MAX_RUN`: a merge never takes more than a few tens of MB), and a
lookup is a binary search in each run.

Two different messages share a 64-bit hash with a chance of about n²/2⁶⁵ (one in 300,000
for ten million rows): the later row would then be refused as a repeat of the earlier, never
sent twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EarlierMessages", "message_hashes"]

#: The most rows a run is merged to: a merge briefly takes about 4 times a run's memory,
#: so runs stay small (12 MB) and a lookup searches one run per million rows.
MAX_RUN = 1 << 20
_NULL = "\x1e"
_SEPARATOR = "\x1f"


def message_hashes(columns: list[pd.Series]) -> np.ndarray[Any, Any]:
    """One 64-bit hash per row of the message key (``to`` and the message's columns, as
    the duplicate rule compares them: an empty cell differs from any text)."""
    joined: pd.Series | None = None
    for column in columns:
        text = column.astype("str").fillna(_NULL).reset_index(drop=True)
        joined = text if joined is None else joined + _SEPARATOR + text
    assert joined is not None, "the key has at least the recipient"
    hashed = pd.util.hash_pandas_object(joined, index=False)
    return np.asarray(hashed.to_numpy(dtype=np.uint64), dtype=np.uint64)


class EarlierMessages:
    """The message keys of the rows already validated, with their lines.

    Example:
        >>> import numpy as np
        >>> seen = EarlierMessages()
        >>> seen.add(np.array([7, 3], dtype=np.uint64), np.array([2, 3]))
        >>> seen.find(np.array([3, 9], dtype=np.uint64))
        array([ 3, -1])
        >>> len(seen)
        2
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._runs)

    def find(self, hashes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The line of the earlier row with each hash (0 when it had none: not from a
        file), or -1 where none."""
        found = np.full(len(hashes), -1, dtype=np.int64)
        for keys, lines in self._runs:
            at = np.searchsorted(keys, hashes)
            inside = at < len(keys)
            hit = np.zeros(len(hashes), dtype=bool)
            hit[inside] = keys[at[inside]] == hashes[inside]
            hit &= found < 0
            found[hit] = lines[at[hit]]
        return found

    def add(self, hashes: np.ndarray[Any, Any], lines: np.ndarray[Any, Any]) -> None:
        """Remember rows (hashes not seen before, each once) with their lines."""
        if not len(hashes):
            return
        order = np.argsort(hashes, kind="stable")
        self._runs.append(
            (np.asarray(hashes, dtype=np.uint64)[order], np.asarray(lines, dtype=np.uint32)[order])
        )
        while (
            len(self._runs) > 1
            and len(self._runs[-1][0]) * 2 >= len(self._runs[-2][0])
            and len(self._runs[-1][0]) + len(self._runs[-2][0]) <= MAX_RUN
        ):
            (k2, l2), (k1, l1) = self._runs.pop(), self._runs.pop()
            keys = np.concatenate([k1, k2])
            order = np.argsort(keys, kind="stable")
            self._runs.append((keys[order], np.concatenate([l1, l2])[order]))
