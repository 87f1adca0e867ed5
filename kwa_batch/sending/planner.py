"""Planning requests: which rows travel together in one API call.

Rows whose message is identical in everything but ``to`` (same sender, type, body or
template and parameters, refs and callback) are one message to several people, and Kaleyra
takes up to 100 comma-joined recipients in one request. Grouping them is what makes a
broadcast fast. Personalised rows differ in their body or parameters and go one per request.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..config import NO_SENDER_FIX
from ..errors import ConfigurationError
from ..fields import MAX_RECIPIENTS_PER_REQUEST, MESSAGE_COLUMNS, request_form, row_keys

__all__ = ["Request", "plan_requests"]

_NA = "\x00"


@dataclass
class Request:
    """One planned API call: the rows it serves, their numbers, and the shared fields.

    Attributes:
        labels: the index labels of the rows, in the order of ``numbers``.
        numbers: the E.164 recipients, one per row.
        fields: the form fields shared by every row (``to`` excluded).
        keys: the content key of each row (see :func:`row_keys`), for the journal.
    """

    labels: list[Hashable]
    numbers: list[str]
    fields: dict[str, str]
    keys: list[str]

    def form(self, api_version: str = "v1") -> dict[str, str]:
        """The fields of the request, ``to`` included (v2's own only for v2)."""
        return request_form(self.numbers, self.fields, api_version=api_version)

    def split(self) -> list[Request]:
        """One request per recipient (after a grouped request was refused as a whole)."""
        return [
            Request([label], [number], dict(self.fields), [key])
            for label, number, key in zip(self.labels, self.numbers, self.keys, strict=True)
        ]

    def subset(self, positions: Sequence[int]) -> Request:
        """The request to these recipients only (positions in ``numbers``)."""
        return Request(
            [self.labels[i] for i in positions],
            [self.numbers[i] for i in positions],
            dict(self.fields),
            [self.keys[i] for i in positions],
        )

    def __len__(self) -> int:
        return len(self.numbers)


def plan_requests(
    messages: pd.DataFrame,
    *,
    max_recipients: int = MAX_RECIPIENTS_PER_REQUEST,
    keys: pd.Series | None = None,
) -> Iterator[Request]:
    """Group messages into requests of at most ``max_recipients`` recipients.

    Args:
        messages: the run's message frame (:func:`kwa_batch.fields.message_frame` of the
            validated rows): ``to`` in E.164, ``from`` resolved.
        max_recipients: 1 sends every row on its own.
        keys: precomputed :func:`~kwa_batch.fields.row_keys` (computed here when None).

    Yields:
        Requests in the order of the first row of each group; with several senders, the
        first request of every group, then the second of every group, and so on (a sender
        is part of the message: requests never mix senders).

    Raises:
        ConfigurationError: some rows have no sender at all, or ``max_recipients`` is out of
            range.
    """
    if not 1 <= max_recipients <= MAX_RECIPIENTS_PER_REQUEST:
        raise ConfigurationError(
            f"max_recipients_per_request must be between 1 and {MAX_RECIPIENTS_PER_REQUEST}, "
            f"not {max_recipients}"
        )
    no_sender = messages["from"].isna()
    if no_sender.any():
        first = messages.index[no_sender.to_numpy()][0]
        raise ConfigurationError(
            f"{int(no_sender.sum())} row(s) have no sender (first: row {first}): {NO_SENDER_FIX}"
        )
    if keys is None:
        keys = row_keys(messages)
    return _grouped(messages, keys, max_recipients)


def _grouped(messages: pd.DataFrame, keys: pd.Series, max_recipients: int) -> Iterator[Request]:
    shared = list(MESSAGE_COLUMNS)
    if messages.empty:
        return
    group_ids = messages[shared].fillna(_NA).groupby(shared, sort=False).ngroup().to_numpy()
    order = np.argsort(group_ids, kind="stable")
    labels = messages.index.to_numpy()
    numbers = messages["to"].to_numpy()
    key_values = keys.to_numpy()
    boundaries = np.flatnonzero(np.diff(group_ids[order])) + 1
    groups = np.split(order, boundaries)
    # The shared fields of each group, from its first row only (not a copy of every row).
    firsts = np.array([members[0] for members in groups], dtype=np.int64)
    field_rows = messages[shared].iloc[firsts].astype("object").to_numpy()
    chunks = [
        (start, g)
        for g, members in enumerate(groups)
        for start in range(0, len(members), max_recipients)
    ]
    if messages["from"].nunique() > 1:
        # Several senders: the n-th requests of every group before the (n+1)-th, groups in
        # the order of their first row; so every number sends from the start (each at its
        # own rate) rather than one after the other, and single requests stay in file order.
        chunks.sort()
    for start, g in chunks:
        members, first = groups[g], field_rows[g]
        fields = {
            name: str(value)
            for name, value in zip(shared, first, strict=True)
            if value is not None and not (isinstance(value, float) and np.isnan(value))
        }
        chunk = members[start : start + max_recipients]
        yield Request(
            labels=[_python(labels[i]) for i in chunk],
            numbers=[str(numbers[i]) for i in chunk],
            fields=fields,
            keys=[str(key_values[i]) for i in chunk],
        )


def _python(value: Any) -> Hashable:
    """numpy scalars back to Python ones, so labels compare and hash like the index's."""
    label: Hashable = value.item() if isinstance(value, np.generic) else value
    return label
