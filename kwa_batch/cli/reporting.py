"""Commands over a results file: ``kwa-batch report`` and ``kwa-batch status``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import lookup_code
from .common import check_writable, fail
from .options import RESULT_FORMATS, StoreParam, output_path
from .render import counted, funnel_lines, print_next_step, print_summary, run_outcome

__all__ = ["report_command", "status_command"]


@click.command("report", short_help="Print the summary of a results file; --html writes a report.")
@click.argument("results_file", type=click.Path(dir_okay=False))
@output_path(
    "--html",
    (".html", ".htm"),
    help="Write the campaign's report as one self-contained HTML file (charts inside, "
    "nothing fetched): the outcome, the funnel per template and country, costs, failures "
    "by code with what to do, and the experiment's comparison when the rows have an arm.",
)
@click.option(
    "--receipts",
    "store",
    metavar="STORE",
    type=StoreParam(),
    help="The store `kwa-batch receive` writes (a SQLite file or a postgresql:// URL): the "
    "funnel, costs and delivery metrics of --html.",
)
@click.option(
    "--rate-card",
    "--rates",
    "rates",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="A rate card, for the costs of --html (as status's --rate-card).",
)
@click.option(
    "--templates",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="The template catalogue, for the estimate of --html.",
)
@click.option(
    "--metric",
    default="read",
    show_default=True,
    help="The experiment's main metric in --html: delivered, read, replied or a boolean "
    "column of the results.",
)
def report_command(
    results_file: str,
    html: Path | None,
    store: str | None,
    rates: str | None,
    templates: str | None,
    metric: str,
) -> None:
    """Print the summary of an exported results file (.xlsx, .csv or .parquet); with
    --html, write the campaign's report as one HTML file anyone can open.

    Exits like the run that wrote it: 0 all sent, 1 some rejected or failed, 3 incomplete
    (or the journal or the results file could not be written), 130/143/129 stopped by a
    signal. A .csv's run is read from the .run.json beside it; without it, from the rows.
    """
    from ..export import load_results

    if html is None and (store is not None or rates is not None or templates is not None):
        fail("--receipts, --rate-card and --templates go with --html (or see kwa-batch status)")
    results = load_results(results_file)
    outcome = run_outcome(results)
    when = f", run {outcome.started_at:%Y-%m-%d %H:%M:%S} UTC" if outcome.started_at else ""
    click.echo(f"{results_file}: {outcome.rows} rows{when}")
    print_summary(results, None)
    print_next_step(results)
    if html is not None:
        from ..html_report import report_html

        report_html(
            results, receipts=store, path=html, rates=rates, templates=templates, metric=metric
        )
        click.echo(f"Report: {html} (one file, nothing fetched: open it in any browser)")
    sys.exit(outcome.exit_code)


@click.command("status", short_help="Put delivery statuses next to each row of a results file.")
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option(
    "--receipts",
    "store",
    required=True,
    metavar="STORE",
    type=StoreParam(),
    help="The store `kwa-batch receive` writes: a SQLite file or a postgresql:// URL.",
)
@click.option(
    "--rate-card",
    "--rates",
    "rates",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="A rate card (region, category, price, currency), as send's --rate-card: prices "
    "the callbacks that give a category but no amount (v2), and the estimate.",
)
@click.option(
    "--templates",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="The template catalogue: each template's category, for the estimate.",
)
@output_path(
    "--out",
    RESULT_FORMATS,
    help="Merged results: .xlsx, .csv or .parquet [default: RESULTS_FILE's name + "
    ".status + its extension, here (as send's --out)].",
)
def status_command(
    results_file: str,
    store: str,
    rates: str | None,
    templates: str | None,
    out: Path | None,
) -> None:
    """Put each message's delivery status (delivered, read, failed) and cost next to its
    row, and print the campaign's funnel.

    Reads RESULTS_FILE (written by `kwa-batch send`) and the callbacks in STORE, and
    writes the results with delivery_status, delivered_at, read_at,
    delivery_error_code, cost, estimated_cost and cost_note added, and the run's outcome
    with them; a workbook gets a Funnel sheet. The funnel (per template, per country and
    in total: sent, delivered, read, replied, failed by code and action, cost against the
    estimate) is printed too. Exits like the run that wrote RESULTS_FILE (as `kwa-batch
    report` does).
    """
    from ..campaign_funnel import campaign_rows, count_funnel
    from ..costing import rate_card, template_catalogue
    from ..export import export_results, load_results
    from ..results import delivery_counts

    source = Path(results_file)
    target = out or Path(f"{source.stem}.status{source.suffix}")
    if target.suffix.lower() not in RESULT_FORMATS:
        fail(f"--out {target}: use a .xlsx, .csv or .parquet file name")
    if target.resolve() == source.resolve():
        fail(f"--out {target}: choose another file than the results it reads")
    check_writable(target, "--out")
    results = load_results(source)
    card, catalogue = rate_card(rates), template_catalogue(templates)
    campaign = campaign_rows(results, store, card, catalogue)
    merged = campaign.drop(columns="replied")
    export_results(results, target, receipts=store, rates=card, templates=catalogue)
    outcome = run_outcome(merged)
    counts = delivery_counts(merged)
    click.echo(f"{results_file}: {len(merged)} rows, {int(counts.sum())} with a message id")
    click.echo(f"Outcome: {counted(outcome)}")
    shown = ", ".join(f"{int(n)} {status}" for status, n in counts.items() if n)
    click.echo(f"Delivery: {shown or 'nothing was sent'}")
    codes = merged["delivery_error_code"].dropna().value_counts()
    for code, rows in codes.items():
        meaning = entry.meaning if (entry := lookup_code(code)) else ""
        click.echo(f"  {code:<11} {int(rows):>6} failed {meaning}".rstrip())
    click.echo("")
    click.echo("Funnel (per template, per country, and in total):")
    for line in funnel_lines(count_funnel(campaign, ("template", "country"))):
        click.echo(line)
    click.echo("")
    click.echo(f"Results: {target} ({len(merged)} rows, one per input row)")
    sys.exit(outcome.exit_code)
