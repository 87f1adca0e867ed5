"""What the commands print: problems, plans, outcomes, and the JSON summary for cron.

Only the command line prints (the library logs); everything here takes the library's
frames and writes text. pandas is imported by the library calls that made the frames, never
by this module at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..actions import meaning_of
from ..errors import describe_code
from .common import fail, in_flags, wrapped

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from ..outcome import RunOutcome
    from ..sending.client import KaleyraClient
    from ..sending.planner import Request
    from ..validation import ValidationReport

__all__ = [
    "counted",
    "funnel_lines",
    "print_next_step",
    "print_plan",
    "print_problems",
    "print_summary",
    "run_outcome",
    "write_json",
    "write_outcome_json",
    "write_report_json",
    "write_summary_json",
]

_SHOWN_PROBLEMS = 10
_SHOWN_REQUESTS = 5
# Phone reasons are predicates ("has no country code"): they read on from the value.
_PREDICATES = {"has", "is", "contains", "ends", "starts", "looks", "holds"}


def print_problems(report: ValidationReport, *, by_code: bool) -> None:
    """The first problems, one line each (line, column, code, value and reason)."""
    import pandas as pd

    if report.ok:
        return
    errors = report.errors
    click.echo(f"\n{len(report.invalid)} row(s) will not be sent:")
    for row in errors.head(_SHOWN_PROBLEMS).itertuples(index=False):
        where = f"line {row.line}" if pd.notna(row.line) else f"row {row.row}"
        value = "" if pd.isna(row.value) else str(row.value)
        message = in_flags(row.message)
        if value and repr(value) not in message:
            shown = value if len(value) <= 40 else value[:37] + "..."
            joint = " " if message.split(" ", 1)[0] in _PREDICATES else ": "
            message = f"{shown!r}{joint}{message}"
        head = f"  {where:>9}  {row.column:<13} {row.error_code:<7} "
        click.echo(wrapped(head + message, indent=len(head)))
    if len(errors) > _SHOWN_PROBLEMS:
        click.echo(f"  ... and {len(errors) - _SHOWN_PROBLEMS} more problem(s)")
    if by_code:
        click.echo("\nBy error code:")
        for code, row in report.summary().iterrows():
            click.echo(
                f"  {code:<7} {int(row['rows']):>6} row(s)  {in_flags(describe_code(str(code)))}"
            )


def print_plan(requests: list[Request], client: KaleyraClient) -> None:
    """The planned requests (first few in full, key masked)."""
    rows = sum(len(r) for r in requests)
    click.echo(f"\nDry run: {rows} message(s) in {len(requests)} request(s); nothing is sent.")
    for number, request in enumerate(requests[:_SHOWN_REQUESTS], start=1):
        url, body = client.request_for(request.form(client.api_version))
        click.echo(f"\n#{number} POST {url}  (api-key: ********)")
        for name, value in body.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            most = 70 if isinstance(value, str) else 400  # a v2 message object: its parameters
            shown = text if len(text) <= most else text[: most - 3] + "..."
            click.echo(f"    {name}: {shown}")
    if len(requests) > _SHOWN_REQUESTS:
        click.echo(f"\n... and {len(requests) - _SHOWN_REQUESTS} more request(s)")


def print_summary(results: pd.DataFrame, target: Path | None) -> None:
    """The outcome by status (the run's :class:`~kwa_batch.RunOutcome`), then by error code
    with its meaning, then where it went."""
    from ..results import Status, error_counts

    click.echo(f"\nOutcome: {counted(run_outcome(results))}")
    for row in error_counts(results).itertuples(index=False):
        meaning = meaning_of(row.error_code)
        click.echo(f"  {row.error_code:<11} {int(row.rows):>6,} {row.status:<9} {meaning}")
    if target is None:
        return
    if target.suffix.lower() == ".csv":
        click.echo(
            wrapped(
                "Note: Excel and LibreOffice drop the + of phone numbers when they open a CSV "
                "(and read them as numbers); write --out results.xlsx for colleagues, or "
                "import the CSV with its columns as text.",
                indent=6,
            )
        )
    left = ~results["status"].isin((Status.SENT, Status.HOLDOUT))  # a holdout: no error
    errors = target.suffix.lower() == ".xlsx" and bool(left.any())
    click.echo(
        wrapped(
            f"Results: {target} ({len(results):,} rows, one per input row"
            + ("; fixes on the Errors sheet)" if errors else ")"),
            indent=9,
        )
    )


def write_json(path: Path, summary: dict[str, Any]) -> None:
    """Write a JSON summary (one line of failure if it cannot be written)."""
    try:
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def write_report_json(path: Path, source: str, report: ValidationReport, code: int) -> None:
    """What ``validate`` found, as JSON."""
    summary = {
        "input": source,
        "rows": len(report.data),
        "valid": len(report.valid),
        "invalid": len(report.invalid),
        "error_codes": {str(code): int(row["rows"]) for code, row in report.summary().iterrows()},
        "exit_code": code,
    }
    write_json(path, summary)


def counted(outcome: RunOutcome) -> str:
    """The rows by status, those there are: ``15 sent, 5 rejected``."""
    shown = ", ".join(f"{n:,} {status}" for status, n in outcome.counts.items() if n)
    return shown or "no rows"


def print_next_step(results: pd.DataFrame) -> None:
    """What to do about the rows left, when there are some (to stderr, even with --quiet)."""
    step = run_outcome(results).next_step
    if step:
        click.echo("\n".join(wrapped(line) for line in in_flags(step).splitlines()), err=True)


def run_outcome(results: pd.DataFrame) -> RunOutcome:
    """The run's outcome that :func:`kwa_batch.send` or :func:`kwa_batch.load_results`
    attached to the results."""
    from ..outcome import RunOutcome

    outcome = results.attrs.get("run")
    if not isinstance(outcome, RunOutcome):
        raise TypeError("these results carry no RunOutcome in attrs['run']")
    return outcome


def write_summary_json(path: Path, source: str, target: Path, results: pd.DataFrame) -> None:
    """The run's outcome as JSON (counts, error codes, exit code, next step), for cron."""
    from ..results import error_counts

    codes = error_counts(results).groupby("error_code", as_index=False)["rows"].sum()
    by_code = {str(r.error_code): int(r.rows) for r in codes.itertuples(index=False)}
    write_outcome_json(path, source, target, run_outcome(results), by_code)


def write_outcome_json(
    path: Path, source: str, target: Path, outcome: RunOutcome, codes: dict[str, int]
) -> None:
    """:func:`write_summary_json` of a run whose results are in a file, not in memory (a
    file sent in parts): its outcome, and its rows by error code."""
    summary: dict[str, Any] = {
        "input": source,
        "results": str(target),
        "rows": outcome.rows,
        "status": dict(outcome.counts),
        "error_codes": codes,
        "exit_code": outcome.exit_code,
        "next_step": in_flags(outcome.next_step) if outcome.next_step else None,
        "interrupted": outcome.interrupted,
        "stopped_by": outcome.stopped_by,
        "resume": dict(outcome.resume),
        "started_at": _iso(outcome.started_at),
        "finished_at": _iso(outcome.finished_at),
        "journal": outcome.journal,
    }
    write_json(path, summary)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


# The funnel's columns the terminal shows, with their headers.
_FUNNEL_SHOWN = (
    ("rows", "rows"), ("sent", "sent"), ("delivered", "delivered"), ("read", "read"),
    ("replied", "replied"), ("failed", "failed"), ("not_sent", "not sent"),
    ("rejected", "rejected"), ("unknown", "unknown"), ("holdout", "holdout"),
)  # fmt: skip


def funnel_lines(funnel: pd.DataFrame) -> list[str]:
    """A campaign's funnel (:func:`kwa_batch.funnel`) as plain text: a table per grouping
    and the total, then the failures by code and by action, then the cost against the
    estimate, with why some rows have none (never a cost of 0 for lack of a price)."""
    from ..actions import rule_for
    from ..campaign_funnel import ACTION_PREFIX, CODE_PREFIX, NO_CODE, TOTAL

    total = funnel.loc[TOTAL]
    rare = ("unknown", "holdout")  # shown when some rows are
    shown = [(c, h) for c, h in _FUNNEL_SHOWN if c not in rare or int(total[c])]

    def money(value: Any) -> str:
        return "-" if _missing(value) else f"{float(value):,.4f}"

    header = ["", *(h for _, h in shown), "cost", "estimated"]
    table: list[list[str]] = []
    headed: set[str] = set()
    for (by, value), row in funnel.iterrows():
        label = by if by == TOTAL[0] else f"  {value}"
        if by != TOTAL[0] and by not in headed:  # a heading line per grouping
            headed.add(by)
            table.append([f"by {by}", *([""] * (len(header) - 1))])
        cells = [label, *(f"{int(row[c]):,}" for c, _ in shown)]
        table.append([*cells, money(row["cost"]), money(row["estimated_cost"])])
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r)
        ).rstrip()
        for r in [header, *table]
    ]
    for column in funnel.columns:
        if column.startswith(CODE_PREFIX) and int(total[column]):
            code = column[len(CODE_PREFIX) :]
            rule = rule_for(None if code == NO_CODE else code)
            lines.append(
                wrapped(
                    f"  failed {code:<9} {int(total[column]):>6}  {rule.action.value}: "
                    f"{rule.meaning}; {rule.what_to_do}",
                    indent=28,
                )
            )
    actions = [
        f"{int(total[c]):,} {c[len(ACTION_PREFIX) :]}"
        for c in funnel.columns
        if c.startswith(ACTION_PREFIX) and int(total[c])
    ]
    if actions:
        lines.append(wrapped(f"Failed rows by action: {', '.join(actions)}", indent=2))
    cost = f"Cost: {money(total['cost'])} actual, {money(total['estimated_cost'])} estimated"
    if int(total["unpriced"]):
        cost += f"; {int(total['unpriced']):,} row(s) without a known cost"
    if not _missing(total["cost_note"]):
        cost += f" ({total['cost_note']})"
    lines.append(wrapped(in_flags(cost), indent=2))
    return lines


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA (whose truth is ambiguous: it is never compared)."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, float) and value != value
