"""A picture of the outcome: rows by status and by error code (matplotlib, optional).

Install the extra for it: ``pip install 'kwa-batch[charts]'``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .errors import KwaBatchError, lookup_code
from .results import STATUSES, Status, summarize

__all__ = ["STATUS_COLORS", "plot_outcomes"]

STATUS_COLORS: dict[str, str] = {
    Status.SENT: "#2da44e",
    Status.FAILED: "#cf222e",
    Status.UNKNOWN: "#bf8700",
    Status.NOT_SENT: "#8c959f",
    Status.REJECTED: "#8250df",
}
#: The colour of a status without one of its own (a status added later draws, in grey).
OTHER_COLOR = "#57606a"


def plot_outcomes(results: pd.DataFrame, *, title: str | None = None) -> Any:
    """Draw rows by status (left) and by error code (right); returns the matplotlib Figure.

    Args:
        results: a results frame from :func:`kwa_batch.send` or :func:`load_results`.
        title: a title for the figure (default: the counts in words).

    Raises:
        KwaBatchError: matplotlib is not installed.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise KwaBatchError("charts need matplotlib: pip install 'kwa-batch[charts]'") from None
    counts = summarize(results)["rows"]
    by_code = (
        results.dropna(subset=["error_code"])
        .groupby(["error_code", "status"])
        .size()
        .unstack("status", fill_value=0)
        .reindex(columns=[s for s in STATUSES if s != Status.SENT], fill_value=0)
    )
    by_code = by_code.loc[by_code.sum(axis=1).sort_values().index]
    has_codes = not by_code.empty
    figure, axes = plt.subplots(
        1,
        2 if has_codes else 1,
        figsize=(11 if has_codes else 6, 0.5 + 0.45 * max(len(STATUSES), len(by_code))),
        squeeze=False,
        layout="constrained",
    )
    left = axes[0][0]
    order = list(reversed(STATUSES))
    bars = left.barh(
        order,
        [int(counts[s]) for s in order],
        color=[STATUS_COLORS.get(s, OTHER_COLOR) for s in order],
    )
    left.bar_label(bars, padding=3)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 rows
    left.set_xlim(0, max(1, int(counts.max())) * 1.15)  # room for the labels
    left.set_xlabel("rows")
    left.set_title("by status")
    left.spines[["top", "right"]].set_visible(False)
    if has_codes:
        right = axes[0][1]
        bottom = pd.Series(0, index=by_code.index)
        for status in by_code.columns:
            values = by_code[status]
            if values.any():
                right.barh(
                    by_code.index,
                    values,
                    left=bottom,
                    color=STATUS_COLORS.get(status, OTHER_COLOR),
                    label=status,
                )
                bottom = bottom + values
        for position, total in enumerate(bottom):  # each code's count, past its bar
            right.annotate(
                f"{int(total)}",
                (total, position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
            )
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_xlim(0, max(1, int(bottom.max())) * 1.15)
        labels = [
            f"{code}  {entry.meaning}" if (entry := lookup_code(code)) else code
            for code in by_code.index
        ]
        right.set_yticks(range(len(by_code)), labels)
        right.set_xlabel("rows")
        right.set_title("by error code")
        right.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
        right.spines[["top", "right"]].set_visible(False)
    total = int(counts.sum())
    figure.suptitle(title or f"{int(counts['sent'])} of {total} rows sent")
    return figure
