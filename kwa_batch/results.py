"""The results frame: one row per input row, with its final status (:class:`Status`).

A row's *result status* (:class:`Status`: what this library did with the row) is not the
*delivery status* Kaleyra's callbacks report later (:data:`DELIVERY_STATUSES`: ``sent``,
``delivered``, ``read``, ``failed``, ``not-sent``: what became of a message the API
accepted). Two of their spellings coincide; the terms do not, and each has its own name.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from enum import StrEnum
from typing import Any

import pandas as pd

from .errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_ROWS, NEVER_SENT_CODES, KwaBatchError

__all__ = [
    "ARM_COLUMN",
    "DELIVERY_COLUMNS",
    "DELIVERY_STATUSES",
    "HOLDOUT_ARM",
    "INCOMPLETE_STATUSES",
    "NEVER_SENT",
    "NO_CALLBACK_URL",
    "NO_RECEIPT",
    "OUTCOME_FIELDS",
    "RESULT_COLUMNS",
    "RESULT_DTYPES",
    "STATUSES",
    "ResultsBuilder",
    "Status",
    "coerce_results",
    "delivery_counts",
    "error_counts",
    "exit_code_for",
    "never_sent_rows",
    "require_columns",
    "summarize",
]


class Status(StrEnum):
    """The status of a row in a results frame: the one home of the term.

    A ``StrEnum``: each member *is* its plain string (``Status.SENT == "sent"``), so frames
    and files hold plain strings (``"sent"``) and compare equal to the members. Adding a
    status is one member here, with its meaning, and (if a later run may still send its
    rows) a place in :data:`INCOMPLETE_STATUSES`.
    """

    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"
    REJECTED = "rejected"
    HOLDOUT = "holdout"

    @property
    def meaning(self) -> str:
        """What the status says of a row, in a sentence.

        >>> Status("rejected").meaning
        "refused before sending because of the row's data; never sent"
        """
        return _MEANINGS[self]

    @property
    def incomplete(self) -> bool:
        """A later run may still settle the row (it is not final)."""
        return self in (Status.UNKNOWN, Status.NOT_SENT)


_MEANINGS = {
    Status.SENT: "accepted by Kaleyra; the row has a message_id",
    Status.FAILED: "refused by Kaleyra: a definite answer, whose error code says why",
    Status.UNKNOWN: (
        "no clear answer came back, so it may or may not have gone out; never resent blindly"
    ),
    Status.NOT_SENT: (
        "never reached Kaleyra (held back, the run stopped first, or safe retries ran out); "
        "a later run sends it, unless its code says none will (the campaign expired, or the "
        "recipient opted out)"
    ),
    Status.REJECTED: "refused before sending because of the row's data; never sent",
    Status.HOLDOUT: (
        "kept from the message on purpose: the experiment's holdout (kb.assign), never sent "
        "by any run, the baseline its arms are compared with"
    ),
}

#: Every result status as a plain string, in the order summaries list them.
STATUSES: tuple[str, ...] = tuple(status.value for status in Status)
#: The statuses a later run may still settle (a run that leaves some is incomplete).
INCOMPLETE_STATUSES: tuple[str, ...] = tuple(s.value for s in Status if s.incomplete)
#: Every column of a results frame, in order, with its dtype: the one definition that the
#: sender, the journal, the exports and :func:`kwa_batch.load_results` derive from. Text is
#: ``string`` (missing is ``<NA>``, as in the integer columns: one missing marker).
RESULT_DTYPES: dict[str, str] = {
    "to": "string",
    "status": "string",
    "message_id": "string",
    "error_code": "string",
    "error_message": "string",
    "http_status": "Int64",
    "attempts": "Int64",
    "sent_at": "datetime64[us, UTC]",
    "request_id": "string",
    "recipients": "Int64",  # recipients in the row's request
    "from_journal": "bool",  # the outcome came from an earlier run's journal
    "line": "Int64",  # the row's line in the input file (NA for a frame not from a file)
    "sender": "string",  # the number the row went (or would go) from: several may send
}
#: The column of an experiment's arm (:func:`kwa_batch.assign`), carried from the input to
#: the results when the input has it.
ARM_COLUMN = "arm"
#: The arm whose rows are never sent (their status is :attr:`Status.HOLDOUT`).
HOLDOUT_ARM = Status.HOLDOUT.value
#: The contract's columns (DESIGN.md), in order.
RESULT_COLUMNS = tuple(RESULT_DTYPES)[:9]
#: What a run records of each row's outcome (in the journal too): all but ``to`` and
#: ``from_journal``, which the run knows otherwise.
OUTCOME_FIELDS = tuple(
    name for name in RESULT_DTYPES if name not in ("to", "from_journal", "line", "sender")
)
#: Delivery statuses Kaleyra's callbacks report, in the order a message goes through them:
#: another term than :class:`Status` (what happened to a message after the API took it).
DELIVERY_STATUSES = ("sent", "delivered", "read", "failed", "not-sent")
#: The columns :func:`kwa_batch.merge_receipts` adds to results.
DELIVERY_COLUMNS = ("delivery_status", "delivered_at", "read_at", "delivery_error_code")
#: How :func:`delivery_counts` names sent rows that no callback has reported on yet.
NO_RECEIPT = "no receipt yet"
#: How :func:`delivery_counts` counts messages sent without a callback_url.
NO_CALLBACK_URL = "no callback_url"
_INTEGERS = tuple(name for name, dtype in RESULT_DTYPES.items() if dtype == "Int64")
_TIMES = tuple(name for name, dtype in RESULT_DTYPES.items() if dtype.startswith("datetime"))


def coerce_results(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract's dtypes for the result columns a frame holds (read back from a file,
    where integers may come as floats or text and times as text); other columns as text."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if name in _INTEGERS:
            out[name] = pd.to_numeric(column, errors="coerce").astype("Int64")
        elif name in _TIMES:
            out[name] = pd.to_datetime(column, utc=True, format="mixed").astype(RESULT_DTYPES[name])
        elif name == "from_journal":
            out[name] = column.map(lambda v: str(v).lower() in ("true", "1")).astype("bool")
        else:
            out[name] = column.map(_text).astype("string")
    return out


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ResultsBuilder:
    """The columns of a results frame, filled in place as rows are settled.

    Rows start with no status; :meth:`fill` sets fields of rows by index label (in O(1)
    per row), :meth:`frame` builds the typed frame with the input's index.
    """

    def __init__(self, index: pd.Index) -> None:
        n = len(index)
        self.index = index
        plain = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
        # Labels of the usual 0..n-1 index are their own positions; others need a map.
        self._position: dict[Hashable, int] | None = (
            None if plain else {label: i for i, label in enumerate(index)}
        )
        self.data: dict[str, list[Any]] = {name: [None] * n for name in RESULT_DTYPES}
        self.data["from_journal"] = [False] * n

    def positions(self, labels: list[Hashable]) -> list[int]:
        """Positions of these index labels."""
        if self._position is None:
            return labels  # type: ignore[return-value]
        position = self._position
        return [position[label] for label in labels]

    def fill(self, labels: list[Hashable], rows: Iterable[Mapping[str, Any]]) -> None:
        """Set the given fields of each row (one mapping per label)."""
        data = self.data
        for i, fields in zip(self.positions(labels), rows, strict=True):
            for name, value in fields.items():
                data[name][i] = value

    def reject(self, invalid: pd.DataFrame) -> None:
        """Mark the rows validation refused (``error_code`` and ``errors`` columns)."""
        if invalid.empty:
            return
        rows = [
            {
                "status": Status.REJECTED.value,
                "error_code": code,
                "error_message": reasons,
                "attempts": 0,
            }
            for code, reasons in zip(invalid["error_code"], invalid["errors"], strict=True)
        ]
        self.fill(list(invalid.index), rows)

    def hold_out(self, labels: list[Hashable]) -> None:
        """Mark the rows of an experiment's holdout (never sent: no code, no attempt)."""
        self.fill(labels, [{"status": Status.HOLDOUT.value, "attempts": 0}] * len(labels))

    def statuses(self) -> set[str]:
        """The statuses given so far (None for rows not settled yet)."""
        return set(self.data["status"])

    def frame(self) -> pd.DataFrame:
        """The results frame: the input's index, every column with its dtype."""
        columns: dict[str, Any] = {}
        for name, dtype in RESULT_DTYPES.items():
            values = self.data[name]
            if name in _TIMES:
                values = pd.to_datetime(pd.Series(values, dtype="object"), utc=True).to_numpy()
            columns[name] = pd.Series(values, index=self.index, dtype="object").astype(dtype)
        return pd.DataFrame(columns, index=self.index)


def require_columns(results: pd.DataFrame, needed: Iterable[str]) -> None:
    """Refuse, in one line naming them, a results frame without these columns.

    Raises:
        KwaBatchError: some are missing.

    >>> require_columns(pd.DataFrame({"to": []}), ("to", "status"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kwa_batch.errors.KwaBatchError: the results have no status column(s): ...
    """
    missing = [name for name in needed if name not in results.columns]
    if missing:
        raise KwaBatchError(
            f"the results have no {', '.join(missing)} column(s): pass the frame send() "
            "returned, or load_results() of a file kwa-batch send wrote"
        )


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Count rows by status (every status listed, zeros included) with their percentage.

    Example:
        >>> import pandas as pd
        >>> summarize(pd.DataFrame({"status": ["sent", "sent", "rejected"]})).to_dict("index")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'sent': {'rows': 2, 'percent': 66.7}, 'failed': {'rows': 0, 'percent': 0.0},
         'unknown': {'rows': 0, 'percent': 0.0}, 'not_sent': {'rows': 0, 'percent': 0.0},
         'rejected': {'rows': 1, 'percent': 33.3}, 'holdout': {'rows': 0, 'percent': 0.0}}
    """
    counts = results["status"].value_counts().reindex(list(STATUSES), fill_value=0)
    total = int(counts.sum())
    share = counts / total * 100 if total else counts * 0.0
    out = pd.DataFrame({"rows": counts.astype("int64"), "percent": share.astype(float).round(1)})
    out.index.name = "status"
    return out


def error_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Count rows by status and error code, for rows that have one."""
    has_code = results["error_code"].notna()
    grouped = results.loc[has_code].groupby(["status", "error_code"]).size()
    return grouped.rename("rows").reset_index().sort_values("rows", ascending=False)


#: Codes of ``not_sent`` rows that no later run sends: the campaign expired (``KWA029``), or
#: the recipient opted out while it was sending (``KWA025``). Final, like ``failed``. The
#: codes whose :class:`~kwa_batch.errors.Policy` is ``NEVER``, in :mod:`kwa_batch.errors`.
NEVER_SENT = NEVER_SENT_CODES


def never_sent_rows(results: pd.DataFrame) -> int:
    """How many ``not_sent`` rows no later run sends (their code is in :data:`NEVER_SENT`)."""
    final = (results["status"] == Status.NOT_SENT) & results["error_code"].isin(NEVER_SENT)
    return int(final.fillna(False).sum())


def exit_code_for(counts: Mapping[str, int], never_sent: int = 0) -> int:
    """The exit code of results with these rows per status: the one rule.

    3 when a later run may still settle rows (``unknown``, or ``not_sent`` beyond the
    ``never_sent`` ones: :data:`NEVER_SENT`); else 1 when some were rejected, failed or will
    never be sent; else 0.

    >>> exit_code_for({"sent": 9, "not_sent": 1}), exit_code_for({"sent": 9, "not_sent": 1}, 1)
    (3, 1)
    """
    incomplete = sum(counts.get(s, 0) for s in INCOMPLETE_STATUSES) - never_sent
    if incomplete > 0:
        return EXIT_INCOMPLETE
    final = counts.get(Status.REJECTED, 0) + counts.get(Status.FAILED, 0) + never_sent
    return EXIT_ROWS if final > 0 else EXIT_OK


def delivery_counts(merged: pd.DataFrame) -> pd.Series:
    """Count the rows that have a message id by delivery status.

    Every status of :data:`DELIVERY_STATUSES` is listed (zeros
    included), then any other status a callback reported, then :data:`NO_RECEIPT` for
    messages no callback has reported on yet, and :data:`NO_CALLBACK_URL` for messages sent
    without a ``callback_url`` (when the results carry that column: no callback will ever
    come for them). Rows never sent are not counted.

    Example:
        >>> import pandas as pd
        >>> merged = pd.DataFrame(
        ...     {"message_id": ["a:0", "b:0", None], "delivery_status": ["read", None, None]}
        ... )
        >>> delivery_counts(merged).to_dict()
        {'sent': 0, 'delivered': 0, 'read': 1, 'failed': 0, 'not-sent': 0, 'no receipt yet': 1}
    """
    sent = merged["message_id"].notna()
    statuses = merged.loc[sent, "delivery_status"].astype("object")
    if "callback_url" in merged.columns:
        unasked = merged.loc[sent, "callback_url"].isna() & statuses.isna()
        statuses = statuses.mask(unasked, NO_CALLBACK_URL)
    counts = statuses.fillna(NO_RECEIPT).value_counts()
    waiting = (NO_RECEIPT, NO_CALLBACK_URL) if "callback_url" in merged.columns else (NO_RECEIPT,)
    others = [s for s in counts.index if s not in DELIVERY_STATUSES and s not in waiting]
    order = [*DELIVERY_STATUSES, *sorted(others), *waiting]
    return counts.reindex(order, fill_value=0).astype("int64").rename("rows")
