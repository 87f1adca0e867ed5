"""The results frame: one row per input row, with its final status.

Statuses (see DESIGN.md):

- ``sent``: accepted by the API; has a ``message_id``.
- ``rejected``: failed local validation; never sent.
- ``failed``: the API refused it definitely (a 4xx answer other than 429).
- ``unknown``: it may have been processed, but no clear answer came back; never resent
  blindly.
- ``not_sent``: never reached the API (the run stopped, or safe retries ran out); a
  later run sends it.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "INCOMPLETE_STATUSES",
    "RESULT_COLUMNS",
    "STATUSES",
    "exit_code",
    "summarize",
]

STATUSES = ("sent", "failed", "unknown", "not_sent", "rejected")
INCOMPLETE_STATUSES = ("unknown", "not_sent")
RESULT_COLUMNS = (
    "to",
    "status",
    "message_id",
    "error_code",
    "error_message",
    "http_status",
    "attempts",
    "sent_at",
    "request_id",
)
_DTYPES = {
    "to": "str",
    "status": "str",
    "message_id": "str",
    "error_code": "str",
    "error_message": "str",
    "http_status": "Int64",
    "attempts": "Int64",
    "sent_at": "datetime64[us, UTC]",
    "request_id": "str",
}


def results_frame(records: dict[str, list[object]], index: pd.Index) -> pd.DataFrame:
    """Build a results frame with the contract's columns and dtypes from column lists."""
    columns: dict[str, pd.Series] = {}
    for name in RESULT_COLUMNS:
        values = records[name]
        if name == "sent_at":
            values = pd.to_datetime(pd.Series(values, dtype="object"), utc=True).to_numpy()
        columns[name] = pd.Series(values, index=index, dtype="object").astype(_DTYPES[name])
    return pd.DataFrame(columns, index=index)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Count rows by status (every status listed, zeros included) with their share.

    Example:
        >>> import pandas as pd
        >>> summarize(pd.DataFrame({"status": ["sent", "sent", "rejected"]}))["rows"].to_dict()
        {'sent': 2, 'failed': 0, 'unknown': 0, 'not_sent': 0, 'rejected': 1}
    """
    counts = results["status"].value_counts().reindex(list(STATUSES), fill_value=0)
    total = int(counts.sum())
    out = pd.DataFrame(
        {"rows": counts.astype("int64"), "share": (counts / total if total else counts * 0.0)}
    )
    out.index.name = "status"
    return out


def error_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Count rows by status and error code, for rows that have one."""
    has_code = results["error_code"].notna()
    grouped = results.loc[has_code].groupby(["status", "error_code"]).size()
    return grouped.rename("rows").reset_index().sort_values("rows", ascending=False)


def exit_code(results: pd.DataFrame) -> int:
    """The CLI's exit code for these results: 3 incomplete, 1 some rejected/failed, else 0."""
    statuses = set(results["status"].dropna().unique())
    if statuses & set(INCOMPLETE_STATUSES):
        return 3
    if statuses & {"rejected", "failed"}:
        return 1
    return 0
