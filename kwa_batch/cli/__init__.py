"""``kwa-batch``: the command line, a thin layer over the library.

Exit codes: 0 every row sent (or valid, for ``validate``); 1 some rows rejected or failed;
2 the input or the configuration was unusable (a one-line reason, never a traceback);
3 incomplete: ``unknown`` or ``not_sent`` rows remain (3 wins over 1); 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

from .. import __version__
from ..config import ENV_API_KEY, ENV_BASE_URL, ENV_FROM, ENV_SID, credentials_from_env
from ..emulator.server import Emulator
from ..errors import ConfigurationError, KwaBatchError, describe_code, lookup_code
from ..export import FORMATS, export_results, load_results
from ..receipts.receipts import delivery_counts, load_receipts, merge_receipts
from ..receipts.receiver import CALLBACK_PATH, ENV_STORE, ENV_TOKEN, Receiver
from ..recipients import load_recipients
from ..results import error_counts, exit_code, summarize
from ..sending.client import KaleyraClient
from ..sending.planner import plan_requests
from ..sending.run import send
from ..validation.rules import ValidationReport, validate

EXIT_OK, EXIT_ROWS, EXIT_UNUSABLE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: The sender used with --emulator when none is given (the emulator accepts any valid one).
DEMO_SENDER = "+911234567890"
_SHOWN_PROBLEMS = 10
_SHOWN_REQUESTS = 5
_PREDICATES = {"has", "is", "contains", "ends", "starts", "looks", "holds"}


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_UNUSABLE)


def _load(path: str, encoding: str | None = None) -> pd.DataFrame:
    try:
        return load_recipients(path, encoding=encoding)
    except KwaBatchError as exc:
        _fail(str(exc))
        raise AssertionError from exc  # unreachable: _fail exits


def _print_problems(report: ValidationReport, *, by_code: bool) -> None:
    if report.ok:
        return
    errors = report.errors
    click.echo(f"\n{len(report.invalid)} row(s) will not be sent:")
    for row in errors.head(_SHOWN_PROBLEMS).itertuples(index=False):
        where = f"line {row.line}" if pd.notna(row.line) else f"row {row.row}"
        value = "" if pd.isna(row.value) else str(row.value)
        message = row.message
        if value and repr(value) not in message:
            shown = value if len(value) <= 40 else value[:37] + "..."
            # Phone reasons are predicates ("has no country code"): they read on from the value.
            joint = " " if message.split(" ", 1)[0] in _PREDICATES else ": "
            message = f"{shown!r}{joint}{message}"
        click.echo(f"  {where:>9}  {row.column:<13} {row.error_code:<7} {message}")
    if len(errors) > _SHOWN_PROBLEMS:
        click.echo(f"  ... and {len(errors) - _SHOWN_PROBLEMS} more problem(s)")
    if by_code:
        click.echo("\nBy error code:")
        for code, row in report.summary().iterrows():
            click.echo(f"  {code:<7} {int(row['rows']):>6} row(s)  {describe_code(str(code))}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kwa-batch")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="How much the library logs (to stderr; phone numbers masked).",
)
def cli(log_level: str) -> None:
    """Send WhatsApp messages through Kaleyra to the recipients in a CSV or XLSX file.

    Start with:  kwa-batch send sample_data/recipients.csv --emulator --out results.xlsx
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _message_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that build messages from columns, shared by ``validate`` and ``send``;
    the command receives them together as ``messages`` (validate()'s keyword arguments)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["messages"] = {
            "params_from": kwargs.pop("params_from"),
            "body_template": kwargs.pop("body_template"),
            "template_name": kwargs.pop("template_name"),
            "lang_code": kwargs.pop("lang_code"),
            "callback_url": kwargs.pop("callback_url"),
        }
        store = kwargs.pop("windows")
        if store is not None:
            from ..receipts.windows import open_windows

            if not Path(store).exists():
                _fail(f"--windows {store}: no such file (the store `kwa-batch receive` writes)")
            try:
                kwargs["messages"]["windows"] = open_windows(store)
            except KwaBatchError as exc:
                _fail(f"--windows {store}: {exc}")
        return command(*args, **kwargs)

    options = [
        click.option(
            "--params-from",
            metavar="COLUMNS",
            help="Build a template's params from these columns, in order (comma-separated, "
            "e.g. name,order_id), for rows without params.",
        ),
        click.option(
            "--body-template",
            metavar="TEXT",
            help='Build a text body from columns, e.g. "Hi {name}, order {order_id} has '
            'shipped", for rows without a body.',
        ),
        click.option(
            "--template",
            "template_name",
            metavar="NAME",
            help="Template name for rows without one (rows with a template name are "
            "template messages).",
        ),
        click.option("--lang", "lang_code", metavar="CODE", help="lang_code for rows without one."),
        click.option("--callback-url", metavar="URL", help="callback_url for rows without one."),
        click.option(
            "--encoding",
            metavar="NAME",
            help="Read FILE in this encoding (e.g. cp1252) instead of detecting it.",
        ),
        click.option(
            "--windows",
            metavar="STORE",
            type=click.Path(dir_okay=False),
            help="Receipts store of `kwa-batch receive`: refuse text rows to recipients with "
            "no open 24-hour conversation window (they need a template).",
        ),
    ]
    for option in reversed(options):
        run = option(run)
    return run


def _validate(
    df: pd.DataFrame, region: str | None, sender: str | None, messages: dict[str, Any]
) -> ValidationReport:
    """validate(), with a setting it cannot use reported in one line (exit 2)."""
    try:
        return validate(df, default_region=region, sender=sender, **messages)
    except KwaBatchError as exc:
        _fail(str(exc))
        raise AssertionError from exc  # unreachable: _fail exits


@cli.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--region", metavar="CC", help="Country of numbers written without + (e.g. IN).")
@click.option(
    "--from", "sender", metavar="NUMBER", envvar=ENV_FROM, help="Sender for rows without one."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Also write every problem, with its fix, to this .csv or .xlsx file.",
)
@_message_options
def validate_command(
    file: str,
    region: str | None,
    sender: str | None,
    report_path: str | None,
    messages: dict[str, Any],
    encoding: str | None,
) -> None:
    """Check FILE without sending anything: which rows are valid, which not and why.

    Exit code 0 when every row is valid, 1 when some are not, 2 when FILE or a setting
    cannot be used.
    """
    if report_path:
        if Path(report_path).suffix.lower() not in (".csv", ".xlsx"):
            _fail(f"--report {report_path}: use .csv or .xlsx for the report")
        _check_writable(Path(report_path), "--report")
    df = _load(file, encoding)
    report = _validate(df, region, sender, messages)
    click.echo(
        f"{file}: {len(df)} row(s), {len(report.valid)} valid, {len(report.invalid)} invalid"
    )
    detected = df.attrs.get("encoding")
    if not encoding and detected and detected not in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        click.echo(
            f"Note: the file is not UTF-8; it was read as {detected}. Check accented names, or "
            "save it as 'CSV UTF-8'."
        )
    _print_problems(report, by_code=True)
    if report_path:
        try:
            written = report.save(report_path)
        except KwaBatchError as exc:
            _fail(str(exc))
        click.echo(f"\nReport: {written} ({len(report.errors)} problem(s), with the fix for each)")
    sys.exit(EXIT_OK if report.ok else EXIT_ROWS)


@cli.command("send")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--emulator",
    is_flag=True,
    help="Send to a local Kaleyra emulator: nothing leaves this machine.",
)
@click.option(
    "--from", "sender", metavar="NUMBER", help=f"Sender for rows without one [env: {ENV_FROM}]."
)
@click.option("--region", metavar="CC", help="Country of numbers written without + (e.g. IN).")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    help="Results file: .xlsx, .csv or .parquet [default: FILE's name + .results.xlsx, here].",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False),
    help="SQLite file recording every row's state: run the same command again with it to "
    "resume without sending anything twice.",
)
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests in flight at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many messages per second (a request to 100 recipients counts 100).",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for each answer; a request not answered in time is 'unknown'.",
)
@click.option(
    "--max-recipients-per-request",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Rows sharing one message go in one request of up to this many recipients "
    "(1: one request per row).",
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
    "--summary-json",
    type=click.Path(dir_okay=False),
    help="Also write the outcome as JSON here (counts, error codes, exit code), for cron jobs.",
)
@click.option("--sid", metavar="SID", help=f"Account SID [env: {ENV_SID}].")
@click.option(
    "--api-key",
    metavar="KEY",
    help=f"API key [env: {ENV_API_KEY}]; prefer the variable (a flag shows in ps).",
)
@click.option(
    "--base-url", metavar="URL", help=f"API host or region (sg, in, eu, na) [env: {ENV_BASE_URL}]."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary; only errors.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="How much the library logs to stderr (phone numbers masked).",
)
@_message_options
def send_command(
    file: str,
    emulator: bool,
    sender: str | None,
    region: str | None,
    out: str | None,
    journal: str | None,
    concurrency: int,
    rate: float | None,
    timeout: float,
    max_recipients_per_request: int,
    resend_unknown: bool,
    dry_run: bool,
    summary_json: str | None,
    sid: str | None,
    api_key: str | None,
    base_url: str | None,
    quiet: bool,
    log_level: str | None,
    messages: dict[str, Any],
    encoding: str | None,
) -> None:
    """Validate FILE, send every valid row, and write one result per row.

    Progress goes to stderr (a bar only when stderr is a terminal). With --journal, a run
    that was interrupted or killed can be run again, as the same command, and sends every
    row exactly once.
    """
    if log_level:
        logging.getLogger().setLevel(log_level.upper())
    df = _load(file, encoding)
    target = Path(out) if out else Path(Path(file).stem + ".results.xlsx")
    if target.suffix.lower() not in FORMATS:
        _fail(f"--out {target}: use a .xlsx, .csv or .parquet file name")
    _check_writable(target, "--out")
    if summary_json:
        _check_writable(Path(summary_json), "--summary-json")
    if resend_unknown and not journal:
        _fail("--resend-unknown needs --journal (it resends what the journal knows as unknown)")
    echo = (lambda *a, **k: None) if quiet else click.echo
    with ExitStack() as stack:
        if emulator:
            emu = stack.enter_context(Emulator())
            client = emu.client(timeout=timeout, sender=sender or _env_sender() or DEMO_SENDER)
            echo(f"Using the built-in Kaleyra emulator at {emu.url}: nothing leaves this machine.")
            if not (sender or _env_sender()):
                echo(f"Sender: {DEMO_SENDER} (a demo number; pass --from to choose one).")
        else:
            try:
                creds = credentials_from_env(
                    sid=sid, api_key=api_key, sender=sender, base_url=base_url
                )
            except ConfigurationError as exc:
                _fail(str(exc))
            client = KaleyraClient(
                creds.sid,
                creds.api_key,
                sender=creds.sender,
                base_url=creds.base_url,
                timeout=timeout,
            )
            echo(f"Sending through {client.base_url} as {creds.sid}.")
        stack.enter_context(client)
        report = _validate(df, region, sender, messages)
        echo(f"{file}: {len(df)} row(s), {len(report.valid)} valid, {len(report.invalid)} invalid")
        if not quiet:
            _print_problems(report, by_code=False)
        if dry_run:
            _print_plan(report, client, sender, max_recipients_per_request)
            sys.exit(EXIT_OK if report.ok else EXIT_ROWS)
        echo(f"\nSending {len(report.valid)} message(s)...")
        show_bar = not quiet and sys.stderr.isatty()
        try:
            results = send(
                report,
                client,
                concurrency=concurrency,
                rate_limit=rate,
                journal=journal,
                sender=sender,
                progress=show_bar,
                max_recipients_per_request=max_recipients_per_request,
                resend_unknown=resend_unknown,
            )
        except ConfigurationError as exc:
            _fail(str(exc))
        target = _export_or_fallback(results, target, df)
        if emulator:
            # Let the emulator post the delivery callbacks it owes before it stops.
            emu.wait_for_callbacks(5)
    run = results.attrs.get("run", {})
    interrupted = bool(run.get("interrupted"))
    code = EXIT_INTERRUPTED if interrupted else exit_code(results)
    if summary_json:
        _write_summary_json(Path(summary_json), file, target, results, code)
    if not quiet:
        if run.get("resume"):
            shown = ", ".join(f"{n} {what}" for what, n in run["resume"].items())
            click.echo(f"Journal {journal}: {shown}.")
        _print_summary(results, target)
    if code in (EXIT_INTERRUPTED, EXIT_INCOMPLETE):
        pending = int(results["status"].isin(["not_sent"]).sum())
        unknown = int((results["status"] == "unknown").sum())
        what = "Interrupted" if interrupted else "Incomplete"
        refused = results["http_status"].isin([401, 403]).to_numpy().any()
        if refused:
            click.echo(
                "Stopped: the API refused the credentials (HTTP 401/403). Check KALEYRA_SID, "
                "KALEYRA_API_KEY and KALEYRA_BASE_URL (the key must belong to that SID and "
                "region); nothing more was sent after the refusal.",
                err=True,
            )
            what = "Once fixed"
        if pending == 0 and unknown and journal:
            hint = (
                f"the {unknown} unknown row(s) may have been sent: check them, then add "
                "--resend-unknown to send them again"
            )
        elif journal:
            hint = f"run the same command again to send the {pending} not_sent row(s)" + (
                f"; the {unknown} unknown row(s) may have been sent: check them, then add "
                "--resend-unknown to send them again"
                if unknown
                else ""
            )
        else:
            hint = (
                f"{pending} row(s) not sent, {unknown} unknown. Running again without --journal "
                "would send the sent rows twice: send only the not_sent rows, or use --journal "
                "next time"
            )
        click.echo(f"{what}: {hint}.", err=True)
    sys.exit(code)


def _check_writable(path: Path, option: str) -> None:
    """Refuse, before anything is sent, an output path that cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        _fail(f"{option} {path}: folder {folder} does not exist")
    if path.is_dir():
        _fail(f"{option} {path}: is a folder; give a file name")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        _fail(f"{option} {path}: cannot be written here (permissions)")


def _export_or_fallback(results: pd.DataFrame, target: Path, df: pd.DataFrame) -> Path:
    """Write the results; if that fails now that messages went out, save them elsewhere
    rather than lose the message ids."""
    try:
        return export_results(results, target, data=df)
    except KwaBatchError as exc:
        fallback = Path(tempfile.gettempdir()) / (
            f"{target.stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
        )
        export_results(results, fallback, data=df)
        click.echo(f"Error: {exc}; the results were saved to {fallback} instead.", err=True)
        return fallback


def _print_plan(
    report: ValidationReport, client: KaleyraClient, sender: str | None, max_recipients: int
) -> None:
    try:
        requests = list(
            plan_requests(
                report.valid, sender=sender or client.sender, max_recipients=max_recipients
            )
        )
    except ConfigurationError as exc:
        _fail(str(exc))
    rows = sum(len(r) for r in requests)
    click.echo(f"\nDry run: {rows} message(s) in {len(requests)} request(s); nothing is sent.")
    for number, request in enumerate(requests[:_SHOWN_REQUESTS], start=1):
        click.echo(f"\n#{number} POST {client.messages_url}  (api-key: ********)")
        for name, value in request.form().items():
            shown = value if len(value) <= 70 else value[:67] + "..."
            click.echo(f"    {name}: {shown}")
    if len(requests) > _SHOWN_REQUESTS:
        click.echo(f"\n... and {len(requests) - _SHOWN_REQUESTS} more request(s)")


def _write_summary_json(
    path: Path, source: str, target: Path, results: pd.DataFrame, code: int
) -> None:
    run = results.attrs.get("run", {})
    counts = summarize(results)["rows"]
    summary = {
        "input": source,
        "results": str(target),
        "rows": len(results),
        "status": {str(k): int(v) for k, v in counts.items()},
        "error_codes": {
            str(row.error_code): int(row.rows)
            for row in error_counts(results)
            .groupby("error_code", as_index=False)["rows"]
            .sum()
            .itertuples(index=False)
        },
        "exit_code": code,
        "interrupted": bool(run.get("interrupted")),
        "resume": run.get("resume") or {},
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "journal": run.get("journal"),
    }
    try:
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")


def _env_sender() -> str | None:
    import os

    return os.environ.get(ENV_FROM) or None


def _print_summary(results: pd.DataFrame, target: Path | None) -> None:
    counts = summarize(results)["rows"]
    shown = ", ".join(f"{int(n)} {status}" for status, n in counts.items() if n)
    click.echo(f"\nOutcome: {shown}")
    for row in error_counts(results).itertuples(index=False):
        meaning = entry.meaning if (entry := lookup_code(row.error_code)) else ""
        click.echo(f"  {row.error_code:<11} {int(row.rows):>6} {row.status:<9} {meaning}")
    if target is None:
        return
    click.echo(
        f"Results: {target} ({len(results)} rows, one per input row; "
        "the Errors sheet says how to fix each)"
        if target.suffix.lower() == ".xlsx"
        else f"Results: {target} ({len(results)} rows, one per input row)"
    )


@cli.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=0, type=click.IntRange(0, 65535), help="Port (default: a free one)."
)
@click.option("--sid", help="Account SID to accept (default: generated).")
@click.option("--api-key", help="API key to accept (default: generated and printed).")
@click.option(
    "--latency",
    metavar="MS",
    default=0.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Milliseconds added before each answer.",
)
@click.option(
    "--jitter",
    metavar="MS",
    default=0.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Up to this many milliseconds more per answer (uniform random).",
)
@click.option(
    "--fault",
    "fault_specs",
    metavar="NAME=PROB",
    multiple=True,
    help="Inject a fault with a probability from 0 to 1, per request; repeatable, e.g. "
    "--fault 429=0.05 --fault reset=0.01. NAME: 429 or 503 (refused, not processed), "
    "500, reset (connection dropped) or late (answer after --late-delay): processed.",
)
@click.option(
    "--retry-after",
    metavar="SECONDS",
    default=1.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Seconds announced in Retry-After by the 429 fault.",
)
@click.option(
    "--late-delay",
    metavar="SECONDS",
    default=5.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Seconds a 'late' answer is held back (beyond the client's timeout).",
)
@click.option(
    "--rate",
    metavar="MSGS_PER_S",
    type=click.FloatRange(min=0, min_open=True),
    help="The server's own limit in messages per second (a request to n recipients counts "
    "n); beyond it: 429 with Retry-After. [default: no limit]",
)
@click.option("--seed", metavar="N", type=int, help="Makes faults, jitter and ids reproducible.")
@click.option(
    "--callback",
    "callback_specs",
    metavar="KEY=VALUE",
    multiple=True,
    help="How the callbacks to a message's callback_url are played (to this machine only); "
    "repeatable: method=GET|POST, delay=SECONDS, delivered=SHARE, read=SHARE, reply=SHARE, "
    "failed_code=CODE; or 'off'. [default: every message sent, then delivered; GET]",
)
def emulator_command(
    host: str,
    port: int,
    sid: str | None,
    api_key: str | None,
    latency: float,
    jitter: float,
    fault_specs: tuple[str, ...],
    retry_after: float,
    late_delay: float,
    rate: float | None,
    seed: int | None,
    callback_specs: tuple[str, ...],
) -> None:
    """Run a local Kaleyra-compatible server until Ctrl-C (nothing leaves this machine)."""
    callback_settings: dict[str, str] = {}
    for spec in callback_specs:
        key, sep, value = spec.partition("=")
        if spec.strip().lower() != "off" and not sep:
            _fail(f"--callback {spec}: write KEY=VALUE (e.g. --callback read=0.7) or 'off'")
        callback_settings[key.strip()] = value.strip()
    callbacks_off = callback_settings.pop("off", None) is not None
    faults: dict[str, float] = {}
    for spec in fault_specs:
        name, _, probability = spec.partition("=")
        try:
            faults[name.strip()] = float(probability)
        except ValueError:
            _fail(f"--fault {spec}: write NAME=PROB with PROB from 0 to 1, e.g. --fault 429=0.05")
    try:
        emu = Emulator(
            host=host,
            port=port,
            sid=sid,
            api_key=api_key,
            latency=latency / 1000.0,
            jitter=jitter / 1000.0,
            faults=faults,
            rate_limit=rate,
            retry_after=retry_after,
            late_delay=late_delay,
            seed=seed,
            callbacks=False if callbacks_off else (callback_settings or True),
        )
    except ValueError as exc:
        _fail(f"--fault: {exc}" if "fault" in str(exc) else str(exc))
    try:
        emu.start()
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    shown_key = "<the key you gave>" if api_key else emu.api_key
    click.echo(f"Kaleyra emulator listening on {emu.url}")
    click.echo(f"  endpoint: {emu.url}/v1/{emu.sid}/messages")
    click.echo(f"  {ENV_BASE_URL}={emu.url}")
    click.echo(f"  {ENV_SID}={emu.sid}")
    click.echo(f"  {ENV_API_KEY}={shown_key}")
    if latency or jitter:
        click.echo(f"  latency: {latency:g} ms" + (f" + up to {jitter:g} ms" if jitter else ""))
    active = {name: p for name, p in emu.faults.items() if p > 0}
    if active:
        shown = ", ".join(f"{name} {p * 100:g}%" for name, p in active.items())
        details = [f"Retry-After {retry_after:g} s"] if "429" in active else []
        details += [f"late answers +{late_delay:g} s"] if "late" in active else []
        details += [f"seed {seed}"] if seed is not None else []
        click.echo(f"  faults: {shown}" + (f" ({', '.join(details)})" if details else ""))
    if rate is not None:
        click.echo(f"  rate limit: {rate:g} messages per second")
    played = emu.callbacks
    if played is not None:
        click.echo(
            f"  callbacks to a message's callback_url on this machine ({played.method}): "
            f"{played.delivered * 100:g}% delivered, {played.read * 100:g}% of those read"
            + (f", every {played.delay:g} s" if played.delay else "")
        )
    click.echo("Nothing leaves this machine. Press Ctrl-C to stop.")
    emu.serve_forever()
    served = ", ".join(f"{n} x{k}" for n, k in emu.faults_injected.items() if k)
    click.echo(
        f"Stopped; {emu.message_count} message(s) accepted"
        + (f"; faults served: {served}" if served else "")
        + (f"; {emu.rate_limited} request(s) over the rate limit" if emu.rate_limited else "")
        + "."
    )


@cli.command("report")
@click.argument("results_file", type=click.Path(dir_okay=False))
def report_command(results_file: str) -> None:
    """Print the summary of an exported results file (.xlsx, .csv or .parquet).

    Exits like the run that wrote it: 0 all sent, 1 some rejected or failed, 3 incomplete.
    """
    try:
        results = load_results(results_file)
    except KwaBatchError as exc:
        _fail(str(exc))
    run = results.attrs.get("run") or {}
    when = f", run {run['started_at']}" if run.get("started_at") else ""
    click.echo(f"{results_file}: {len(results)} rows{when}")
    _print_summary(results, None)
    sys.exit(exit_code(results))


@cli.command("receive")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface, e.g. behind a tunnel or a proxy).",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: a free one). The sample data's callback_url uses 8765.",
)
@click.option(
    "--store",
    required=True,
    envvar=ENV_STORE,
    type=click.Path(dir_okay=False),
    help=f"SQLite file the callbacks go in (created when missing) [env: {ENV_STORE}].",
)
@click.option(
    "--token",
    metavar="SECRET",
    envvar=ENV_TOKEN,
    help=f"Refuse callbacks that do not carry this token [env: {ENV_TOKEN}]; prefer the "
    "variable (a flag shows in ps).",
)
def receive_command(host: str, port: int, store: str, token: str | None) -> None:
    """Receive Kaleyra's callbacks (delivery statuses, replies) into a store until Ctrl-C.

    Give Kaleyra the callback_url it prints (the callback_url column of the recipients
    file); then `kwa-batch status RESULTS --receipts STORE` puts the statuses next to
    each row.
    """
    try:
        receiver = Receiver(store, host=host, port=port, token=token or None)
        receiver.start()
    except (ValueError, KwaBatchError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port} or open {store}: {exc.strerror or exc}")
    shown_url = receiver.url + CALLBACK_PATH + ("?token=****" if token else "")
    click.echo(f"Receiving Kaleyra callbacks on {receiver.url} into {store}")
    click.echo(f"  callback_url: {shown_url}")
    if token:
        click.echo("  (**** is your token; it may also come in an X-Kwa-Token header)")
    else:
        click.echo("  No --token: anyone who can reach this port can add callbacks.")
    if host in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            "  Listening on this machine only: Kaleyra reaches it through an HTTPS tunnel or "
            "reverse proxy."
        )
    click.echo("Press Ctrl-C to stop.")
    receiver_log = logging.getLogger("kwa_batch.receipts.receiver")
    if receiver_log.getEffectiveLevel() > logging.INFO:
        receiver_log.setLevel(logging.INFO)  # one line per callback, numbers masked
    _serve_until_signalled(receiver)
    stats = receiver.stats
    counts = receiver.store.counts()
    receiver.store.close()
    click.echo(
        f"Stopped; {stats['stored']} callback(s) stored, {stats['repeated']} repeated, "
        f"{stats['refused']} refused. {store} holds {counts['status_updates']} status "
        f"update(s) and {counts['incoming_messages']} incoming message(s)."
    )


def _serve_until_signalled(receiver: Receiver) -> None:
    """Serve until Ctrl-C or SIGTERM (a process manager's stop), then stop cleanly."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread (e.g. under a test runner's thread)
            previous[number] = signal.signal(number, interrupt)
    try:
        receiver.serve_forever()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@cli.command("status")
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option(
    "--receipts",
    "store",
    required=True,
    metavar="STORE",
    type=click.Path(dir_okay=False),
    help="The SQLite store `kwa-batch receive` writes.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Merged results: .xlsx, .csv or .parquet [default: RESULTS_FILE's name + "
    ".status + its extension, beside it].",
)
def status_command(results_file: str, store: str, out: str | None) -> None:
    """Put each message's delivery status (delivered, read, failed) next to its row.

    Reads RESULTS_FILE (written by `kwa-batch send`) and the callbacks in STORE, and
    writes the results with delivery_status, delivered_at, read_at and
    delivery_error_code added.
    """
    source = Path(results_file)
    target = Path(out) if out else source.with_name(f"{source.stem}.status{source.suffix}")
    if target.suffix.lower() not in FORMATS:
        _fail(f"--out {target}: use a .xlsx, .csv or .parquet file name")
    if target.resolve() == source.resolve():
        _fail(f"--out {target}: choose another file than the results it reads")
    try:
        results = load_results(source)
        merged = merge_receipts(results, load_receipts(store))
        export_results(merged, target)
    except KwaBatchError as exc:
        _fail(str(exc))
    counts = delivery_counts(merged)
    click.echo(f"{results_file}: {len(merged)} rows, {int(counts.sum())} with a message id")
    shown = ", ".join(f"{int(n)} {status}" for status, n in counts.items() if n)
    click.echo(f"Delivery: {shown or 'nothing was sent'}")
    codes = merged["delivery_error_code"].dropna().value_counts()
    for code, rows in codes.items():
        meaning = entry.meaning if (entry := lookup_code(code)) else ""
        click.echo(f"  {code:<11} {int(rows):>6} failed {meaning}".rstrip())
    click.echo(f"Results: {target} ({len(merged)} rows, one per input row)")


def main() -> None:
    """Entry point of the ``kwa-batch`` console script."""
    try:
        cli.main(prog_name="kwa-batch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_UNUSABLE)
    except KwaBatchError as exc:  # a library error the commands did not expect: still one line
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_UNUSABLE)
