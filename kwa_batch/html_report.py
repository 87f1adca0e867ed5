"""A campaign's report as one HTML file anyone can open: :func:`report_html`.

The file stands alone: its style is inline, its charts are PNG images inside it (base64
``data:`` URLs), and it holds no script and fetches nothing (no ``http(s)`` address in any
``src`` or ``href``), so it opens the same from a mail attachment, offline, or years
later. Every value that comes from the campaign (template names, arms, codes, file
names, notes) is HTML-escaped: a template called ``<script>…`` reads as text.

Its sections: the outcome (rows by status, the run's next step, the outcome chart), the
delivery funnel per template and per country (with the receipts), the costs, the failures
by code with what to do (the outcome policy, :mod:`kwa_batch.actions`), and, when the
results have an ``arm`` column (:func:`kwa_batch.assign`), the experiment's comparison
(:func:`kwa_batch.compare`) with its chart.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from .actions import rule_for
from .campaign_funnel import (
    FUNNEL_COSTS,
    FUNNEL_COUNTS,
    TOTAL,
    campaign_rows,
    count_funnel,
)
from .charts import plot_compare, plot_funnel, plot_outcomes
from .costing import rate_card, template_catalogue
from .errors import KwaBatchError, lookup_code
from .experiments import MESSAGE_METRICS, compare
from .outcome import RunOutcome
from .receipts.store import FINAL_STATUSES, CallbackStore
from .results import ARM_COLUMN, Status, require_columns, summarize
from .tables import atomic_write

__all__ = ["report_html"]

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.meta { color: #59636e; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px; min-width: 110px; }
.card .n { font-size: 24px; font-weight: 600; }
.card .label { color: #59636e; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; max-width: 100%; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.note { color: #59636e; font-size: 14px; }
.next { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
"""


def report_html(
    results: pd.DataFrame,
    *,
    receipts: str | Path | CallbackStore | None = None,
    path: str | Path | None = None,
    rates: str | Path | pd.DataFrame | None = None,
    templates: Any = None,
    metric: str = "read",
    title: str | None = None,
) -> str:
    """A campaign's report as one self-contained HTML page; written to ``path`` if given.

    Args:
        results: a results frame (:func:`kwa_batch.send`, :func:`kwa_batch.load_results`);
            with ``template_name`` when the file was exported with ``data=``, and ``arm``
            for an experiment.
        receipts: the callback store: the delivery funnel, costs, delivery failures and the
            experiment's delivery metrics need it.
        path: where to write the page (``report.html``), in one step.
        rates: the rate card, for the costs (as :func:`kwa_batch.funnel`).
        templates: the template catalogue, for the estimate.
        metric: the experiment's metric (:func:`kwa_batch.compare`): ``read`` by default;
            without receipts, give a boolean column.
        title: the page's title (default: the results' source file, or "Campaign report").

    Returns:
        The page's HTML.

    Raises:
        KwaBatchError: the results lack a column, or the file cannot be written.
        InputError: the store, the rate card or the catalogue is unusable.

    Example:
        >>> kb.report_html(results, receipts="receipts.db", path="report.html")  # doctest: +SKIP
    """
    require_columns(results, ("to", "status", "message_id", "error_code"))
    outcome = _outcome(results)
    source = (outcome.settings or {}).get("source")
    heading = title or (f"Campaign report: {Path(str(source)).name}" if source else None)
    heading = heading or "Campaign report"
    parts = [_outcome_section(results, outcome)]
    campaign = None
    if receipts is not None:
        card, catalogue = rate_card(rates), template_catalogue(templates)
        campaign = campaign_rows(results, receipts, card, catalogue)
        groups = ("template", "country", ARM_COLUMN) if ARM_COLUMN in results.columns else None
        funnel = count_funnel(campaign, groups or ("template", "country"))
        parts += [_funnel_section(funnel), _costs_section(funnel)]
    else:
        parts.append(
            _section(
                "Delivery funnel and costs",
                "<p class='note'>No receipts store was given: what became of the messages "
                "after Kaleyra took them (delivered, read, replied, failed) and what they "
                "cost are in the callbacks (<code>receipts=</code>, "
                "<code>--receipts STORE</code>).</p>",
            )
        )
    parts.append(_failures_section(results if campaign is None else campaign))
    if ARM_COLUMN in results.columns:
        parts.append(_experiment_section(results if campaign is None else campaign, metric))
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    when = (
        f"run {outcome.started_at:%Y-%m-%d %H:%M} UTC · " if outcome.started_at is not None else ""
    )
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(heading)}</h1>"
        f"<p class='meta'>{escape(when)}{len(results):,} rows · made {escape(made)} by "
        "kwa_batch</p>" + "".join(parts) + "</main></body></html>\n"
    )
    if path is not None:

        def write(temporary: Path) -> None:
            temporary.write_text(page, encoding="utf-8")

        atomic_write(Path(path), write)
    return page


def _outcome(results: pd.DataFrame) -> RunOutcome:
    run = results.attrs.get("run")
    return run if isinstance(run, RunOutcome) else RunOutcome.of(results)


def _outcome_section(results: pd.DataFrame, outcome: RunOutcome) -> str:
    counts = summarize(results)
    cards = "".join(
        f"<div class='card'><div class='n'>{int(row.rows):,}</div>"
        f"<div class='label'>{escape(str(status))} · {row.percent:g}%</div></div>"
        for status, row in counts.iterrows()
        if int(row.rows) or status in (Status.SENT, Status.REJECTED)
    )
    table = counts.assign(meaning=[Status(s).meaning for s in counts.index])
    body = f"<div class='cards'>{cards}</div>" + _table(
        table.reset_index(), numbers=("rows", "percent")
    )
    step = outcome.next_step
    if step:
        body += f"<p class='next'><b>Next:</b> {escape(step)}</p>"
    body += f"<p class='note'>Exit code of the run: {outcome.exit_code}.</p>"
    body += _chart(plot_outcomes(results), "rows by status and by error code")
    return _section("Outcome", body)


def _funnel_section(funnel: pd.DataFrame) -> str:
    rare = ("unknown", "holdout")  # shown when some rows are (as kwa-batch status does)
    counts = [c for c in FUNNEL_COUNTS if c not in rare or int(funnel.loc[TOTAL, c])]
    body = ""
    groups = [("template", "Per template"), ("country", "Per country")]
    if ARM_COLUMN in set(funnel.index.get_level_values(0)):
        groups.append((ARM_COLUMN, "Per arm"))
    for group, heading in groups:
        body += f"<h3>{heading}</h3>" + _table(_group(funnel, group)[counts].reset_index(), counts)
    total = funnel.loc[[TOTAL], counts].reset_index(drop=True)
    body += "<h3>In total</h3>" + _table(total, counts)
    body += _chart(plot_funnel(funnel), "the campaign's funnel")
    return _section("Delivery funnel", body)


def _group(funnel: pd.DataFrame, group: str) -> pd.DataFrame:
    part = funnel.loc[group]
    part.index.name = group
    return part


def _costs_section(funnel: pd.DataFrame) -> str:
    columns = [c for c in FUNNEL_COSTS if c in funnel.columns]
    money = [c for c in columns if c != "cost_note"]
    rows = pd.concat(
        [_group(funnel, "template")[columns].reset_index(), funnel.loc[[TOTAL], columns]
         .reset_index(drop=True).assign(template="(total)")],
        ignore_index=True,
    )[["template", *columns]]  # fmt: skip
    body = _table(rows, money, digits=4)
    body += (
        "<p class='note'>Amounts are in the rate card's currency (v1 callbacks' prices as "
        "Kaleyra gave them). <code>unpriced</code>: rows whose cost nobody said; the note "
        "says why. A row never sent costs 0.</p>"
    )
    return _section("Costs", body)


def _failures_section(rows: pd.DataFrame) -> str:
    status = rows["status"].astype("string")
    delivery = (
        rows["delivery_status"].astype("string")
        if "delivery_status" in rows.columns
        else pd.Series(pd.NA, index=rows.index, dtype="string")
    )
    api = ~status.isin((Status.SENT, Status.HOLDOUT)).fillna(False)
    after = (status.eq(Status.SENT) & delivery.isin(FINAL_STATUSES)).fillna(False)
    codes = rows.get("error_code", pd.Series(pd.NA, index=rows.index)).astype("string")
    if "delivery_error_code" in rows.columns:
        codes = codes.where(~after, rows["delivery_error_code"].astype("string"))
    failing = api | after
    if not bool(failing.any()):
        return _section("Failures", "<p>No row failed, was refused or is still open.</p>")
    table = pd.DataFrame(
        {
            "code": codes[failing].fillna("(no code)"),
            "where": (status[failing].where(~after[failing], "after sent: " + delivery[failing])),
        }
    )
    grouped = table.groupby(["code", "where"], sort=False).size().rename("rows").reset_index()
    grouped = grouped.sort_values("rows", ascending=False, kind="stable")
    rules = [rule_for(None if c == "(no code)" else c) for c in grouped["code"]]
    grouped["meaning"] = [r.meaning for r in rules]
    grouped["action"] = [r.action.value for r in rules]
    # The code table's own fix where it has one (how to correct a refused row), else the
    # outcome policy's line.
    entries = [lookup_code(c) for c in grouped["code"]]
    grouped["what to do"] = [
        e.fix if e is not None and e.fix else r.what_to_do
        for e, r in zip(entries, rules, strict=True)
    ]
    body = _table(grouped, ("rows",))
    body += (
        "<p class='note'>Each code's action is the outcome policy's (README: <i>After "
        "“sent”</i>); <code>kwa-batch follow-up</code> sends the retries that are due.</p>"
    )
    return _section("Failures by code, and what to do", body)


def _experiment_section(rows: pd.DataFrame, metric: str) -> str:
    metrics = [metric] if metric in rows.columns or metric in MESSAGE_METRICS else []
    if "delivery_status" in rows.columns:
        metrics = list(dict.fromkeys([*metrics, *MESSAGE_METRICS]))
        if "replied" not in rows.columns:
            metrics.remove("replied")
    metrics += [
        c
        for c in rows.columns
        if c not in metrics and c != "from_journal" and pd.api.types.is_bool_dtype(rows[c].dtype)
        and c not in ("replied", "opted_out")
    ]  # fmt: skip
    body = (
        "<p class='note'>Each arm against the first (the control): the difference of the "
        "rates with its 95% interval and p-value (a z test; Fisher's exact test when a "
        "count is small: the <code>test</code> column), and the lift over the holdout "
        "(arm's rate ÷ holdout's − 1), where the holdout can have the metric.</p>"
    )
    drawn = False
    for name in metrics:
        try:
            compared = compare(rows, name)
        except KwaBatchError as exc:
            body += f"<h3>{escape(name)}</h3><p class='note'>{escape(str(exc))}</p>"
            continue
        shown = compared.reset_index()
        for column in ("rate", "diff", "ci_low", "ci_high", "lift"):
            shown[column] = [_percent(v) for v in shown[column]]
        shown["p_value"] = [_p(v) for v in shown["p_value"]]
        body += f"<h3>{escape(name)}</h3>" + _table(shown, ("n", "successes", *_PERCENTS))
        if not drawn:
            body += _chart(plot_compare(compared), f"the experiment: {name} by arm")
            drawn = True
    return _section("Experiment", body)


_PERCENTS = ("rate", "diff", "ci_low", "ci_high", "p_value", "lift")


def _percent(value: Any) -> str:
    return "" if pd.isna(value) else f"{float(value):.1%}"


def _p(value: Any) -> str:
    if pd.isna(value):
        return ""
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _section(heading: str, body: str) -> str:
    return f"<section><h2>{escape(heading)}</h2>{body}</section>"


def _table(frame: pd.DataFrame, numbers: Any = (), digits: int | None = None) -> str:
    """A frame as an HTML table, every header and cell escaped; ``numbers`` right-aligned."""
    numeric = set(numbers)
    head = "".join(
        f"<th class='num'>{escape(str(c))}</th>" if c in numeric else f"<th>{escape(str(c))}</th>"
        for c in frame.columns
    )
    lines = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            text = _cell(value, digits if column in numeric else None)
            kind = " class='num'" if column in numeric else ""
            cells.append(f"<td{kind}>{escape(text)}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    return f"<div class='wide'>{table}</div>"  # a table wider than the window scrolls alone


def _cell(value: Any, digits: int | None) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if digits is not None else f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _chart(figure: Any, alt: str) -> str:
    """A matplotlib figure as an inline PNG (closed after, so a notebook does not show
    it a second time)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=96, facecolor="white")
    finally:
        plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>"
