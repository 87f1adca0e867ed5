"""A picture of the outcome: rows by status and by error code (matplotlib, optional).

Install the extra for it: ``pip install 'kwa-batch[charts]'``.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pandas as pd

from .actions import Action, rule_for
from .errors import KwaBatchError, lookup_code
from .results import STATUSES, Status, summarize

__all__ = [
    "ACTION_COLORS",
    "FUNNEL_STAGES",
    "STATUS_COLORS",
    "plot_compare",
    "plot_funnel",
    "plot_outcomes",
]

STATUS_COLORS: dict[str, str] = {
    Status.SENT: "#2da44e",
    Status.FAILED: "#cf222e",
    Status.UNKNOWN: "#bf8700",
    Status.NOT_SENT: "#8c959f",
    Status.REJECTED: "#8250df",
    Status.HOLDOUT: "#0969da",
}
#: The colour of a status without one of its own (a status added later draws, in grey).
OTHER_COLOR = "#57606a"


def plot_outcomes(results: pd.DataFrame, *, title: str | None = None) -> Any:
    """Draw rows by status (left) and by error code (right); returns the matplotlib Figure.

    Args:
        results: a results frame from :func:`kwa_batch.send` or :func:`load_results`.
        title: a title for the figure, drawn as written (default: the counts in words).

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
        right.set_yticks(range(len(by_code)), [_literal(label) for label in labels])
        right.set_xlabel("rows")
        right.set_title("by error code")
        right.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
        right.spines[["top", "right"]].set_visible(False)
    total = int(counts.sum())
    figure.suptitle(_literal(title or f"{int(counts['sent'])} of {total} rows sent"))
    return figure


#: The stages of a campaign's funnel, in the order a message goes through them.
FUNNEL_STAGES = ("rows", "sent", "delivered", "read", "replied")
_STAGE_COLOR = "#0969da"
#: The colour of failures by the action their code calls for (:class:`kwa_batch.Action`).
ACTION_COLORS: dict[str, str] = {
    Action.RETRY: "#bf8700",
    Action.FINAL: "#cf222e",
    Action.SUPPRESS: "#8250df",
    Action.STOP: "#82071e",
    Action.FIX: "#fb8f44",
    Action.WAIT: "#8c959f",
    Action.DONE: "#2da44e",
}


def plot_funnel(funnel: pd.DataFrame, *, title: str | None = None) -> Any:
    """Draw a campaign's funnel (:func:`kwa_batch.funnel`); returns the matplotlib Figure.

    Left, the total: rows, sent (with its share of the rows), delivered, read and replied
    (with their share of the rows sent); then the failures by code, with the action the
    outcome policy gives each (the bar in its colour, :data:`ACTION_COLORS`) and what it
    means; right, the same stages per template (or
    the first grouping of the frame). The title gives the actual cost against the estimate.

    Args:
        funnel: the frame :func:`kwa_batch.funnel` returns (its total row is drawn left).
        title: a title for the figure, drawn as written (default: the counts and the
            costs in words).

    Raises:
        KwaBatchError: matplotlib is not installed, or ``funnel`` has no total row.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise KwaBatchError("charts need matplotlib: pip install 'kwa-batch[charts]'") from None
    from .campaign_funnel import CODE_PREFIX, TOTAL

    if TOTAL not in funnel.index:
        raise KwaBatchError("plot_funnel() draws the frame kwa_batch.funnel() returns")
    total = funnel.loc[TOTAL]
    codes = [c for c in funnel.columns if c.startswith(CODE_PREFIX) and int(total[c])]
    groups = [g for g in dict.fromkeys(funnel.index.get_level_values(0)) if g != TOTAL[0]]
    first = funnel.loc[groups[0]] if groups else None
    figure, axes = plt.subplots(
        1,
        2 if first is not None else 1,
        figsize=(13 if first is not None else 7, 1.2 + 0.45 * (len(FUNNEL_STAGES) + len(codes))),
        squeeze=False,
        layout="constrained",
    )
    left = axes[0][0]
    sent = max(int(total["sent"]), 1)
    labels = [*FUNNEL_STAGES, *(f"failed {c[len(CODE_PREFIX) :]}" for c in codes)]
    values = [int(total[s]) for s in FUNNEL_STAGES] + [int(total[c]) for c in codes]
    colors = [_STAGE_COLOR] * len(FUNNEL_STAGES) + [
        ACTION_COLORS.get(_action_of(c[len(CODE_PREFIX) :]), OTHER_COLOR) for c in codes
    ]
    positions = list(range(len(labels)))[::-1]
    bars = left.barh(positions, values, color=colors)
    rows = max(int(total["rows"]), 1)
    # The stages after "sent" as a share of it; the failures (API refusals among them,
    # never sent) as counts.
    shares = [
        f"{values[0]}",
        f"{values[1]} ({values[1] / rows:.0%} of rows)",
        *(f"{v} ({v / sent:.0%} of sent)" for v in values[2 : len(FUNNEL_STAGES)]),
        *(f"{v}" for v in values[len(FUNNEL_STAGES) :]),
    ]
    left.bar_label(bars, shares, padding=3)
    left.set_yticks(positions, [_literal(_code_label(label)) for label in labels])
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlim(0, max(1, max(values)) * 1.45)  # room for the labels
    left.set_xlabel("rows")
    left.set_title("the campaign")
    left.spines[["top", "right"]].set_visible(False)
    if first is not None:
        right = axes[0][1]
        stages = list(FUNNEL_STAGES[1:])
        height = 0.8 / len(stages)
        names = [str(v) for v in first.index]
        for n, stage in enumerate(stages):
            where = [i + (len(stages) / 2 - n - 0.5) * height for i in range(len(names))][::-1]
            drawn = right.barh(
                where, first[stage].astype("int64"), height=height, label=stage,
                color=plt.get_cmap("Blues")(0.35 + 0.6 * n / max(len(stages) - 1, 1)),
            )  # fmt: skip
            right.bar_label(drawn, padding=2, fontsize=8)
        right.set_yticks(range(len(names))[::-1], [_literal(name) for name in names])
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_xlim(0, max(1, int(first["sent"].max())) * 1.2)
        right.set_xlabel("rows")
        right.set_title(_literal(f"by {groups[0]}"))
        right.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
        right.spines[["top", "right"]].set_visible(False)
    figure.suptitle(_literal(title or _funnel_title(total)))
    return figure


def _action_of(code: str) -> str:
    from .campaign_funnel import NO_CODE

    return rule_for(None if code == NO_CODE else code).action.value


def _code_label(label: str) -> str:
    """``failed 131026`` with what the code means, short enough for an axis."""
    if not label.startswith("failed "):
        return label
    from .campaign_funnel import NO_CODE

    code = label[len("failed ") :]
    rule = rule_for(None if code == NO_CODE else code)
    meaning = rule.meaning
    short = textwrap.shorten(meaning, 36, placeholder="…")  # whole words
    return f"{label} ({rule.action.value}): {short}"


def _funnel_title(total: pd.Series) -> str:
    def amount(value: Any) -> str:
        return "unknown" if pd.isna(value) else f"{float(value):,.4f}"

    head = (
        f"{int(total['sent'])} of {int(total['rows'])} rows sent, "
        f"{int(total['delivered'])} delivered, {int(total['replied'])} replied"
    )
    cost = f"cost {amount(total['cost'])} against {amount(total['estimated_cost'])} estimated"
    if int(total["unpriced"]):
        cost += f" ({int(total['unpriced'])} row(s) without a known cost)"
    return f"{head}\n{cost}"


def plot_compare(comparison: pd.DataFrame, *, title: str | None = None) -> Any:
    """Draw an experiment's comparison (:func:`kwa_batch.compare`); returns the Figure.

    Left, each arm's rate (the holdout's where it has one), with its successes and rows;
    right, each arm's difference from the first arm (the control) with its 95% interval
    and p-value: an interval clear of 0 is a difference the data show.

    Args:
        comparison: the frame :func:`kwa_batch.compare` returns.
        title: a title for the figure, drawn as written (default: the metric and the
            best arm when it is clearly the best, at p < 0.05; else "no clear winner").

    Raises:
        KwaBatchError: matplotlib is not installed, or ``comparison`` is not such a frame.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise KwaBatchError("charts need matplotlib: pip install 'kwa-batch[charts]'") from None
    needed = ("n", "successes", "rate", "diff", "ci_low", "ci_high", "p_value")
    if any(c not in comparison.columns for c in needed) or comparison.empty:
        raise KwaBatchError("plot_compare() draws the frame kwa_batch.compare() returns")
    metric = str(comparison.attrs.get("metric", "rate"))
    arms = [str(a) for a in comparison.index]
    rates = comparison["rate"].astype("Float64").fillna(0.0).astype(float)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(11, 1.4 + 0.55 * len(arms)), layout="constrained"
    )
    positions = list(range(len(arms)))[::-1]
    colors = [
        STATUS_COLORS[Status.HOLDOUT] if arm == Status.HOLDOUT else _ARM_COLORS[i % 4]
        for i, arm in enumerate(arms)
    ]
    bars = left.barh(positions, rates, color=colors)
    labels = []
    for arm in arms:
        row = comparison.loc[arm]
        if pd.isna(row["rate"]):
            labels.append(f"n={int(row['n'])}: no rate")
        else:
            label = f"{float(row['rate']):.1%} ({int(row['successes'])} of {int(row['n'])})"
            lift = row.get("lift")
            if lift is not None and not pd.isna(lift):
                label += f", {float(lift):+.0%} over the holdout"
            labels.append(label)
    left.bar_label(bars, labels, padding=3)
    left.set_yticks(positions, [_literal(arm) for arm in arms])
    left.set_xlim(0, max(0.01, float(rates.max())) * 1.6)
    left.xaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    left.set_xlabel(_literal(f"{metric} rate"))
    left.set_title(_literal(f"{metric}, by arm"))
    left.spines[["top", "right"]].set_visible(False)
    tested = comparison.loc[comparison["ci_low"].notna()]
    names = [str(a) for a in tested.index]
    where = list(range(len(names)))[::-1]
    if names:
        diff = tested["diff"].astype(float)
        low = diff - tested["ci_low"].astype(float)
        high = tested["ci_high"].astype(float) - diff
        right.errorbar(
            diff, where, xerr=[low, high], fmt="o", color="#24292f", ecolor="#57606a", capsize=4
        )
        for y, arm in zip(where, names, strict=True):
            row = tested.loc[arm]
            right.annotate(
                f"{float(row['diff']):+.1%}  {_p_text(row['p_value'])}",
                (float(row["ci_high"]), y),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
            )
        right.set_yticks(where, [_literal(name) for name in names])
        span = max(abs(float(tested["ci_low"].min())), abs(float(tested["ci_high"].max())))
        right.set_xlim(-span * 1.3 if span else -0.01, span * 2.2 if span else 0.01)
        right.set_ylim(-0.8, len(names) - 0.2)
    else:
        right.text(0.5, 0.5, "one arm: nothing to compare", ha="center", transform=right.transAxes)
        right.set_yticks([])
    right.axvline(0, color="#8c959f", linewidth=1)
    right.xaxis.set_major_formatter(lambda value, _: f"{value:+.0%}")
    right.set_xlabel(_literal(f"difference from {arms[0]} (95% interval)"))
    right.set_title(_literal(f"against {arms[0]}"))
    right.spines[["top", "right"]].set_visible(False)
    figure.suptitle(_literal(title or _compare_title(comparison, metric, rates)))
    return figure


#: The p-value below which a difference from the control is clear enough to name a winner.
CLEAR_P = 0.05


def _compare_title(comparison: pd.DataFrame, metric: str, rates: pd.Series) -> str:
    """The arm with the highest rate, when it is clearly the best: a challenger above the
    control at p < :data:`CLEAR_P`, or the control with every challenger clearly below it;
    otherwise no clear winner."""
    arms = [str(a) for a in comparison.index if a != Status.HOLDOUT]
    control, challengers = arms[0], arms[1:]
    best = max(arms, key=lambda a: rates[a])

    def clear(arm: str, sign: int) -> bool:
        diff, p = comparison.loc[arm, "diff"], comparison.loc[arm, "p_value"]
        return not pd.isna(diff) and not pd.isna(p) and sign * diff > 0 and p < CLEAR_P

    if (best != control and clear(best, 1)) or (
        best == control and all(clear(arm, -1) for arm in challengers)
    ):
        return f"{metric}: {best} has the highest rate ({rates[best]:.1%})"
    return f"{metric}: no clear winner (no arm is clearly the best at p < {CLEAR_P:g})"


_ARM_COLORS = ("#8c959f", "#2da44e", "#bf8700", "#8250df")


def _literal(text: object) -> str:
    """``text`` drawn as written: its ``$`` escaped, so that matplotlib reads no mathtext
    in a template's or an arm's name (``Save $5 or $10`` in italics, ``$\\frac$`` an
    error when the figure is drawn)."""
    return str(text).replace("$", r"\$")


def _p_text(p: Any) -> str:
    value = float(p)
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"
