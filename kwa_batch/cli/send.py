"""``kwa-batch send``: validate a file, send every valid row, write one result per row."""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..database import is_database_url
from .common import (
    EXIT_OK,
    EXIT_ROWS,
    fail,
    in_flags,
    load_and_validate,
    resolve_sender,
    wrapped,
)
from .options import (
    RESULT_FORMATS,
    StoreParam,
    account_options,
    encoding_option,
    file_options,
    message_options,
    output_path,
    region_option,
    sender_option,
    summary_json_option,
)
from .pacing_options import pacing_options
from .render import (
    print_next_step,
    print_plan,
    print_problems,
    print_summary,
    write_summary_json,
)
from .schedule_options import needs_journal, schedule_options

if TYPE_CHECKING:
    import pandas as pd

    from ..emulator.server import Emulator
    from ..outcome import RunOutcome
    from ..sending.client import KaleyraClient
    from ..sending.pacing import Pacing
    from ..sending.schedule import Schedule
    from ..validation import ValidationReport

__all__ = ["send_command"]

_LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)


@dataclass(frozen=True)
class _Options:
    """The options of one ``send`` command."""

    file: str
    emulator: bool
    sender: str | None
    region: str | None
    out: Path | None
    journal: str | None
    campaign: str | None
    timeout: float
    resend_unknown: bool
    dry_run: bool
    summary_json: Path | None
    sid: str | None
    api_key: str | None
    base_url: str | None
    api_version: str | None
    quiet: bool
    log_level: str | None
    encoding: str | None
    messages: dict[str, Any]
    pacing: Pacing  # cli/pacing_options.py
    schedule: Schedule  # cli/schedule_options.py
    now: datetime | None
    rate_card: str | None
    receipts: str | None
    chunk_rows: int | None


@click.command("send", short_help="Validate a file, send every valid row, write the results.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--emulator",
    is_flag=True,
    help="Send to a local Kaleyra emulator: nothing leaves this machine.",
)
@sender_option
@region_option
@output_path(
    "--out",
    RESULT_FORMATS,
    help="Results file: .xlsx, .csv or .parquet [default: FILE's name + .results.xlsx, here].",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False),
    help="SQLite file recording every row's state: run the same command again with it to "
    "resume without sending anything twice. Or a PostgreSQL database "
    "(postgresql://user@host/db, with --campaign): several processes, on one machine or "
    "several, then send one campaign together, none twice, each number's --rate held across "
    "them.",
)
@click.option(
    "--campaign",
    metavar="NAME",
    help="With --journal postgresql://…: the campaign the processes share (e.g. july).",
)
@click.option(
    "--receipts",
    metavar="STORE",
    type=StoreParam(),
    help="Receipts store of `kwa-batch receive` (a file or a postgresql:// URL), watched "
    "while sending: a callback received after the run started with a stop code (131048 "
    "spam rate limit, 368, 131031, 131064, WAV2101, E110...) for the sending number stops "
    "the run within seconds (the rest not_sent KWA033, exit 3, and what to check); a "
    "paused or disabled template (132015, 132016) holds its own rows (KWA034). The same "
    "store may be given to --suppress too.",
)
@pacing_options
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for each answer; a request not answered in time is 'unknown'.",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="With --journal: send again the rows whose outcome is unknown (they may have been "
    "sent already: this can send them twice).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and print the planned requests (key masked); send nothing.",
)
@click.option(
    "--chunk-rows",
    type=int,
    metavar="N",
    help="Send FILE in parts of N rows (100000 is a good size): read, validated, journaled, "
    "sent and written part by part, so memory stays flat whatever FILE's size; results to "
    ".parquet (default) or .csv. For files of more than a million rows.",
)
@summary_json_option
@account_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary; only errors.")
@click.option(
    "--log-level", type=_LOG_LEVELS, help="How much the library logs to stderr (numbers masked)."
)
@encoding_option
@file_options
@message_options
@schedule_options
def send_command(**options: Any) -> None:
    """Validate FILE, send every valid row, and write one result per row.

    Progress goes to stderr (a bar only when stderr is a terminal). With --journal, a run
    that was interrupted (Ctrl-C, SIGTERM, SIGHUP) or killed can be run again, as the same
    command, and sends every row exactly once.
    """
    o = _Options(**options)
    if o.log_level:
        logging.getLogger().setLevel(o.log_level.upper())
    _check_campaign(o)
    if o.resend_unknown and not o.journal:
        fail("--resend-unknown needs --journal (it resends what the journal knows as unknown)")
    if why := needs_journal(o.schedule, o.journal, o.dry_run):  # issue #13
        fail(why)
    if o.now is not None and not o.dry_run:  # issue #17
        fail(
            "--now only plans (with --dry-run); a real send goes by the real clock, so that "
            "quiet hours, the expiry and the daily limit hold when each message leaves"
        )
    if (
        o.receipts is not None
        and not is_database_url(o.receipts)
        and not Path(o.receipts).is_file()
    ):
        fail(f"--receipts {o.receipts}: no such file (the store `kwa-batch receive` writes)")
    sender, source = resolve_sender(o.sender, o.region, emulator=o.emulator)
    echo: Callable[[str], None] = (lambda text: None) if o.quiet else click.echo
    if o.chunk_rows is not None:  # issue #21: a file larger than memory
        from .send_parts import send_in_parts

        target = o.out or _default_target(o.file, ".results.parquet")
        send_in_parts(o, target, sender, lambda stack: _client(stack, o, sender, source, echo)[0],
                      echo)  # fmt: skip
    target = o.out or _default_target(o.file, ".results.xlsx")
    df, report = load_and_validate(
        o.file,
        encoding=o.encoding,
        region=o.region,
        sender=sender,
        messages=o.messages,
        quiet=o.quiet,
        api_version=o.api_version,
    )
    with ExitStack() as stack:
        client, emu = _client(stack, o, sender, source, echo)
        valid, invalid = len(report.valid), len(report.invalid)
        echo(f"{o.file}: {len(df):,} row(s), {valid:,} valid, {invalid:,} invalid")
        if held := len(report.holdout):  # kb.assign's holdout: checked, never sent
            echo(f"{held:,} valid row(s) in the experiment's holdout (arm column): never sent")
        if not o.quiet:
            print_problems(report, by_code=False)
        if o.dry_run:
            _estimate(report, o, echo, client)  # issue #13: cost, duration, rows held back
            _dry_run(report, client, o.pacing)
        echo("")
        results = _send(report, client, o)
        if not sys.stderr.isatty():  # with a bar, the run said it before sending
            echo(_outcome(results).headline)
        target = _export_or_fallback(results, target, df)
        if emu is not None:
            emu.wait_for_callbacks(5)  # the delivery callbacks it owes, before it stops
    _finish(results, target, o)


def _check_campaign(o: _Options) -> None:
    """--campaign goes with --journal postgresql://… and only with it (one line, exit 2)."""
    from ..errors import ConfigurationError
    from ..sending.pg_journal import check_campaign

    try:
        check_campaign(o.journal, o.campaign)
    except ConfigurationError as exc:
        fail(str(exc))


def _default_target(file: str, suffix: str) -> Path:
    """Where the results of FILE go without ``--out``: its name with ``suffix``, here (a
    workbook; a ``.parquet`` file for a file sent in parts, too large for a workbook)."""
    from .common import check_writable

    target = Path(Path(file).stem + suffix)
    check_writable(target, "--out")
    return target


def _client(
    stack: ExitStack,
    o: _Options,
    sender: str | None,
    source: str,
    echo: Callable[[str], None],
) -> tuple[KaleyraClient, Emulator | None]:
    """The client to send with: the emulator's, the account's, or (for a dry run without
    credentials) a placeholder that is never used to send."""
    from ..config import DEFAULT_BASE_URL, api_version_from_env, credentials_from_env
    from ..errors import ConfigurationError
    from ..sending.client import KaleyraClient

    version = api_version_from_env(o.api_version)
    if o.emulator:
        from ..emulator.server import Emulator

        emu = stack.enter_context(Emulator())
        client = stack.enter_context(
            emu.client(timeout=o.timeout, sender=sender, api_version=version)
        )
        echo(
            wrapped(
                f"Using the built-in Kaleyra emulator at {emu.url}: nothing leaves this machine."
            )
        )
        if source == "demo":
            echo(f"Sender: {sender} (a demo number; pass --from to choose one).")
        return client, emu
    try:
        creds = credentials_from_env(
            sid=o.sid, api_key=o.api_key, sender=sender, base_url=o.base_url, api_version=version
        )
    except ConfigurationError:
        if not o.dry_run:
            raise
        echo("Dry run without credentials: the requests are shown for a placeholder account.")
        placeholder = KaleyraClient(
            "YOUR_SID",
            "placeholder",
            sender=sender,
            base_url=o.base_url or DEFAULT_BASE_URL,
            api_version=version,
        )
        return stack.enter_context(placeholder), None
    client = KaleyraClient(
        creds.sid,
        creds.api_key,
        sender=creds.sender,
        base_url=creds.base_url,
        timeout=o.timeout,
        api_version=creds.api_version,
    )
    echo(f"Sending through {client.base_url} ({client.api_version} API) as {creds.sid}.")
    return stack.enter_context(client), None


def _dry_run(report: ValidationReport, client: KaleyraClient, pacing: Pacing) -> None:
    """The requests send() would make, with the same settings (grouped as it groups them)."""
    from ..fields import message_frame
    from ..sending.planner import plan_requests

    size = pacing.size_for(client.api_version)  # as send() plans: v2 one recipient a request
    planned = plan_requests(message_frame(report.to_send), max_recipients=size)
    requests = list(planned)
    print_plan(requests, client)
    sys.exit(EXIT_OK if report.ok else EXIT_ROWS)


def _send(report: ValidationReport, client: KaleyraClient, o: _Options) -> pd.DataFrame:
    from ..sending.retries import Retries
    from ..sending.run import send

    estimated = _estimate(report, o, None, client) if o.rate_card else None
    with ExitStack() as stack:
        receipts = None
        if o.receipts is not None:
            from ..receipts.store import opened_store

            receipts = stack.enter_context(opened_store(o.receipts))
        results = send(
            report,
            client,
            pacing=o.pacing,
            schedule=o.schedule,
            retries=Retries(resend_unknown=o.resend_unknown),
            journal=o.journal,
            campaign=o.campaign,
            receipts=receipts,
            progress=not o.quiet and sys.stderr.isatty(),
        )
    if estimated is not None:  # issue #13: on the Summary sheet too (made before sending)
        results.attrs["estimate"] = estimated
    return results


def _estimate(
    report: ValidationReport,
    o: _Options,
    echo: Callable[[str], None] | None,
    client: KaleyraClient,
) -> dict[str, Any]:
    """kwa_batch.estimate()'s summary for this command (printed when ``echo`` is given)."""
    from ..pricing import describe, describe_table, estimate

    card = o.rate_card
    found = estimate(
        report,
        rates=card,
        pacing=o.pacing,
        schedule=o.schedule,
        now=o.now,
        api_version=client.api_version,
    )
    summary: dict[str, Any] = found.attrs["summary"]
    if echo is not None:
        for line in describe(summary, rate_card=card is not None):
            echo(f"Estimate: {line}")
        if card is not None and not found.empty:
            echo(f"Estimate by region and category (rate card {card}):")
            for line in describe_table(found):
                echo(f"  {in_flags(line)}")
    return summary


def _export_or_fallback(results: pd.DataFrame, target: Path, df: pd.DataFrame) -> Path:
    """Write the results; if that fails now that messages went out, save them elsewhere
    rather than lose the message ids."""
    from ..errors import KwaBatchError
    from ..export import export_results

    try:
        return export_results(results, target, data=df)
    except KwaBatchError as exc:
        fallback = Path(tempfile.gettempdir()) / (
            f"{target.stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
        )
        # Never exit 0 on it: the results are not where the job said they would be; said
        # in the file written instead too, so that `report` on it exits the same.
        reason = f"{exc}; saved to {fallback} instead"
        results.attrs["run"] = _outcome(results).with_export_error(reason)
        export_results(results, fallback, data=df)
        click.echo(f"Error: {exc}; the results were saved to {fallback} instead.", err=True)
        return fallback


def _outcome(results: pd.DataFrame) -> RunOutcome:
    """The outcome :func:`kwa_batch.send` attached to its results."""
    from ..outcome import RunOutcome

    outcome = results.attrs["run"]
    assert isinstance(outcome, RunOutcome)
    return outcome


def _finish(results: pd.DataFrame, target: Path, o: _Options) -> None:
    """The summary (JSON and printed), what to do about rows left, and the exit code: all
    from the run's outcome."""
    outcome = _outcome(results)
    if o.summary_json:
        write_summary_json(o.summary_json, o.file, target, results)
    if outcome.journal_error:  # the run stopped on it: said even with --quiet
        click.echo(f"Error: {outcome.journal_error} (results: {target})", err=True)
    if not o.quiet:
        print_summary(results, target)
    everything_sent_before(results, o.journal)
    print_next_step(results)
    sys.exit(outcome.exit_code)


def everything_sent_before(results: pd.DataFrame, journal: str | None) -> None:
    """Say it loudly (even with --quiet) when the journal had sent every row already: a
    recurring campaign that reuses yesterday's journal sends nothing."""
    if not journal:
        return
    from ..database import is_database_url
    from ..results import Status

    valid = results[~results["status"].isin((Status.REJECTED, Status.HOLDOUT))]
    if valid.empty or not (valid["from_journal"] & (valid["status"] == Status.SENT)).all():
        return
    first, last = valid["sent_at"].min(), valid["sent_at"].max()
    when = (
        f"{first:%Y-%m-%d %H:%M} UTC"
        if first.date() == last.date()
        else (f"between {first:%Y-%m-%d} and {last:%Y-%m-%d}")
    )
    if is_database_url(journal):
        from ..database import redact

        journal = redact(journal)
        fresh = f"--campaign of its own, e.g. --campaign {datetime.now(UTC):%Y-%m-%d}"
    else:
        day = f"{datetime.now(UTC):%Y-%m-%d}"
        fresh = f"journal of its own, e.g. --journal {Path(journal).stem}-{day}.db"
    click.echo(
        f"All {len(valid):,} row(s) were already sent on {when} by this journal ({journal}): "
        f"nothing was sent now. A new campaign needs a {fresh}",
        err=True,
    )
