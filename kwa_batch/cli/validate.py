"""``kwa-batch validate``: check a file without sending anything."""

from __future__ import annotations

from pathlib import Path

import click

from .common import EXIT_OK, EXIT_ROWS, load_and_validate, resolve_sender
from .options import (
    api_version_option,
    encoding_option,
    file_options,
    message_options,
    output_path,
    region_option,
    sender_option,
    summary_json_option,
)
from .render import print_problems, write_report_json

__all__ = ["validate_command"]


@click.command("validate", short_help="Check a file without sending anything.")
@click.argument("file", type=click.Path(dir_okay=False))
@region_option
@sender_option
@output_path(
    "--report",
    (".csv", ".xlsx"),
    dest="report_path",
    help="Also write every problem, with its fix, to this .csv or .xlsx file.",
)
@summary_json_option
@api_version_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors; the exit code says.")
@encoding_option
@file_options
@message_options
def validate_command(
    file: str,
    region: str | None,
    sender: str | None,
    report_path: Path | None,
    summary_json: Path | None,
    quiet: bool,
    encoding: str | None,
    messages: dict[str, object],
    api_version: str | None,
) -> None:
    """Check FILE without sending anything: which rows are valid, which not and why.

    Exit code 0 when every row is valid, 1 when some are not, 2 when FILE or a setting
    cannot be used.
    """
    sender, _ = resolve_sender(sender, region)
    df, report = load_and_validate(
        file, encoding=encoding, region=region, sender=sender, messages=messages, quiet=quiet,
        api_version=api_version,
    )  # fmt: skip
    code = EXIT_OK if report.ok else EXIT_ROWS
    if summary_json:
        write_report_json(summary_json, file, report, code)
    if report_path:
        report.save(report_path)
    if not quiet:
        valid, invalid = len(report.valid), len(report.invalid)
        click.echo(f"{file}: {len(df):,} row(s), {valid:,} valid, {invalid:,} invalid")
        print_problems(report, by_code=True)
        if messages.get("templates") is not None and not report.valid.empty:
            click.echo("\nHow the first valid messages read:")
            types = report.valid["type"] if "type" in report.valid.columns else None
            for row in report.preview().itertuples():
                # A row without a template says its type (text, interactive...; NA: text),
                # and a row may have no text: never "nan".
                kind = row.template if isinstance(row.template, str) else None
                if kind is None:
                    given = types.get(row.Index) if types is not None else None
                    kind = given if isinstance(given, str) and given.strip() else "text"
                message = row.message if isinstance(row.message, str) else "(no text to show)"
                text = message.replace("\n", "\n    ")
                click.echo(f"  to {row.to} ({kind}):\n    {text}")
        if report_path:
            problems = len(report.errors)
            click.echo(f"\nReport: {report_path} ({problems} problem(s), with the fix for each)")
    raise SystemExit(code)
