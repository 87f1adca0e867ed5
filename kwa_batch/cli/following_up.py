"""``kwa-batch follow-up``: what each row of a campaign needs now, and the retries that are due.

It reads a results file (written by ``kwa-batch send``) and the receipts store, prints what
each row needs by the outcome policy (:mod:`kwa_batch.actions`), sends exactly the rows
whose retry is due (:func:`kwa_batch.send_follow_ups`: once each, recorded in the journal,
under every rule of the campaign), and writes the results back up to date.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import EXIT_INCOMPLETE, EXIT_OK, check_writable, fail, resolve_sender, wrapped
from .options import (
    RESULT_FORMATS,
    StoreParam,
    account_options,
    message_options,
    output_path,
    region_option,
    sender_option,
)
from .pacing_options import pacing_options

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["follow_up_command"]

_ORDER = ("stop", "retry", "suppress", "fix", "final", "wait", "done")


@click.command("follow-up", short_help="Send the retries that are due; say what each row needs.")
@click.argument("results_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--receipts",
    "store",
    required=True,
    metavar="STORE",
    type=StoreParam(exists=True),
    help="The store `kwa-batch receive` writes (a file or a postgresql:// URL): its receipts "
    "decide what is due, its opt-outs are honoured.",
)
@click.option(
    "--journal",
    required=True,
    type=click.Path(dir_okay=False),
    help="The campaign's journal: it records each retry (never one twice), and the daily "
    "limit and the expiry count the campaign's first sends.",
)
@output_path(
    "--out",
    RESULT_FORMATS,
    help="Where to write the results brought up to date [default: RESULTS_FILE itself].",
)
@click.option("--emulator", is_flag=True, help="Send to a local Kaleyra emulator.")
@click.option(
    "--dry-run", is_flag=True, help="Say what each row needs and what is due; send nothing."
)
@click.option(
    "--stop-checked",
    is_flag=True,
    help="A person checked what the stop codes listed (131048, 368, WAV2101...) asked for "
    "and acted: send the due retries anyway. Without it, a campaign with a stop sends nothing.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the counts and errors.")
@sender_option
@region_option
@account_options
@pacing_options
@message_options
def follow_up_command(
    results_file: str,
    store: str,
    journal: str,
    out: Path | None,
    emulator: bool,
    dry_run: bool,
    stop_checked: bool,
    quiet: bool,
    sender: str | None,
    sid: str | None,
    api_key: str | None,
    base_url: str | None,
    api_version: str | None,
    pacing: Any,
    messages: dict[str, Any],
    region: str | None,
) -> None:
    """Say what each row of RESULTS_FILE needs now, and send the retries that are due.

    Each row gets an action by its code (see the README's outcome table): done (delivered
    or read), wait (no receipt yet), retry (131049 after 24, 48, 96 h; WA500 after 5, 10,
    15 min; rows held back or never sent: now), final, suppress (opted out), stop (a
    person must act first), fix. Exactly the rows whose retry is due are sent, each once
    (the journal records it: a second run sends nothing), with the campaign's quiet hours,
    expiry and daily limit, from the sender the campaign used. The results file is written
    back with each retried row's new outcome and its follow_ups count. Retries go through
    the Kaleyra API version the campaign was sent through (its results say), unless
    --api-version or KALEYRA_API_VERSION says otherwise.

    Exits 0 when nothing was due or every retry left; otherwise as `kwa-batch send` does.
    """
    from ..export import export_results, load_results
    from ..receipts.follow_up import follow_up
    from ..receipts.retrying import due, held_by_template
    from ..receipts.store import store_name

    source = Path(results_file)
    target = out or source
    if target.suffix.lower() not in RESULT_FORMATS:
        fail(f"{target}: use a .xlsx, .csv or .parquet file name")
    check_writable(target, "--out")
    results = load_results(source)
    plan = follow_up(results, store)
    chosen = due(plan) & ~held_by_template(plan)
    click.echo(f"{results_file}: {len(plan):,} row(s); receipts from {store_name(store)}")
    _print_actions(plan, int(chosen.sum()))
    if dry_run or not chosen.any():
        if not chosen.any():
            click.echo("Nothing is due now: nothing was sent.")
        sys.exit(EXIT_OK)
    from ..receipts.retrying import StopSending

    with ExitStack() as stack:
        account = (sid, api_key, base_url, api_version or _campaign_version(results))
        client = _client(stack, emulator, sender, region, account)
        try:
            updated = _send(
                results, store, client, journal, pacing, messages, quiet=quiet,
                stop_checked=stop_checked,
            )  # fmt: skip
        except StopSending as exc:
            click.echo(wrapped(f"Error: {exc}"), err=True)
            sys.exit(EXIT_INCOMPLETE)
    export_results(updated, target)
    run = updated.attrs["follow_up"]
    retried = int((updated.get("follow_ups") != results.get("follow_ups", 0)).sum())
    click.echo(f"Retries: {_counted(run.counts)}")
    click.echo(f"Results: {target} ({retried:,} row(s) retried now or by an earlier run)")
    if run.exit_code != EXIT_OK and run.next_step:
        click.echo(wrapped(f"Next: {run.next_step}"))
    sys.exit(run.exit_code)


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {status}" for status, n in counts.items() if n) or "none"


def _print_actions(plan: pd.DataFrame, due_now: int) -> None:
    """The rows by action, then each code with its rows and what to do."""
    import pandas as pd

    counts = plan["action"].value_counts()
    parts = [f"{int(counts[a]):,} {a}" for a in _ORDER if a in counts.index]
    click.echo(f"What each row needs: {', '.join(parts)}; {due_now:,} retry(ies) due now")
    coded = plan[plan["decided_by"].notna().to_numpy()]
    if coded.empty:
        return
    grouped = coded.groupby(["action", "decided_by"], sort=False)
    for (action, code), rows in sorted(grouped, key=lambda item: _ORDER.index(item[0][0])):
        when = ""
        if action == "retry":
            upcoming = rows["retry_at"].dropna()
            now = pd.Timestamp.now(tz="UTC")
            ready = int(upcoming.le(now).sum())
            later = upcoming[upcoming.gt(now)]
            when = f"; {ready:,} due now" if ready else ""
            if len(later):
                when += f"; next {later.min():%Y-%m-%d %H:%M} UTC"
        reason = str(rows["reason"].iloc[0])
        line = f"  {action:<8} {code:<8} {len(rows):>6,} row(s): {reason}{when}"
        click.echo(wrapped(line, indent=4))
    from ..actions import STOP_CODES

    if plan["decided_by"].isin(list(STOP_CODES)).fillna(False).any():
        click.echo(
            wrapped(
                "Stop: WhatsApp or Kaleyra said to stop sending from this number (see the "
                "lines above): a person must act before anything more is sent.",
            ),
            err=True,
        )


def _campaign_version(results: pd.DataFrame) -> str | None:
    """The API version the campaign was sent through (its run's settings), unless
    ``KALEYRA_API_VERSION`` says otherwise: None then, or when the results do not say."""
    import os

    from ..config import ENV_API_VERSION
    from ..outcome import RunOutcome

    if os.environ.get(ENV_API_VERSION, "").strip():
        return None
    run = results.attrs.get("run")
    version = run.settings.get("api_version") if isinstance(run, RunOutcome) else None
    return str(version) if version else None


def _client(
    stack: ExitStack,
    emulator: bool,
    sender: str | None,
    region: str | None,
    account: tuple[str | None, str | None, str | None, str | None],
) -> Any:
    """The client of the retries; ``account``: --sid, --api-key, --base-url, --api-version."""
    from ..config import api_version_from_env
    from ..sending.client import KaleyraClient

    sid, api_key, base_url, api_version = account
    version = api_version_from_env(api_version)
    if emulator:
        from ..emulator.server import Emulator

        emu = stack.enter_context(Emulator())
        click.echo(wrapped(f"Using the built-in Kaleyra emulator at {emu.url}."))
        return stack.enter_context(emu.client(api_version=version))
    given, _ = resolve_sender(sender, region, emulator=False) if sender else (None, "")
    client = KaleyraClient.from_env(
        sid=sid, api_key=api_key, sender=given, base_url=base_url, api_version=version
    )
    return stack.enter_context(client)


def _send(
    results: pd.DataFrame,
    store: str,
    client: Any,
    journal: str,
    pacing: Any,
    messages: dict[str, Any],
    *,
    quiet: bool,
    stop_checked: bool,
) -> pd.DataFrame:
    from ..receipts.retrying import send_follow_ups

    given = {k: v for k, v in messages.items() if v is not None}
    return send_follow_ups(
        results,
        store,
        client,
        journal=journal,
        pacing=pacing,
        stop_checked=stop_checked,
        progress=not quiet and sys.stderr.isatty(),
        **given,
    )
