"""The servers of the command line: ``kwa-batch emulator`` and ``kwa-batch receive``.

Both serve until a stop signal (Ctrl-C, SIGTERM from a process manager, SIGHUP), pressed
on the same :class:`~kwa_batch.sending.stopping.StopButton` as a run's, then stop cleanly.
``receive --workers N`` is gunicorn's master instead, which stops its workers gracefully on
SIGTERM or SIGINT (:mod:`kwa_batch.receipts.receiver_workers`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..config import (
    CALLBACK_PATH,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_FROM,
    ENV_SID,
    ENV_STORE,
    ENV_TOKEN,
)
from ..database import INSTALL, is_database_url
from .common import DEMO_SENDER, fail
from .options import StoreParam, server_options

if TYPE_CHECKING:
    from ..emulator.server import Emulator
    from ..receipts.store import CallbackStore

__all__ = ["emulator_command", "receive_command", "serve_until_stopped"]


def serve_until_stopped(
    server: Any, start: Callable[[], None], announce: Callable[[], None]
) -> None:
    """Start a server, say where it listens, and serve until a stop signal arrives; the
    button is up before the server starts, so a signal at any moment stops it cleanly."""
    from ..sending.stopping import StopButton

    with StopButton() as button:
        start()
        try:
            announce()
            while not button.pressed and server.running:
                time.sleep(0.1)
        finally:
            server.stop()


def _specs(specs: tuple[str, ...], option: str, shape: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; ``off`` alone is kept as a key."""
    out: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if spec.strip().lower() != "off" and not sep:
            fail(f"{option} {spec}: write {shape} (e.g. {option} {example})")
        out[key.strip()] = value.strip()
    return out


@click.command("emulator", short_help="Run a local Kaleyra to try things on (nothing leaves here).")
@server_options(0, "Port (default: a free one).", "Address to listen on.")
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
    "stop=SHARE, button=SHARE, failed_code=CODE, prices=marketing=0.05,utility=0.01, "
    "template_category=CATEGORY, marketing_window=SECONDS, spam_window=N, spam_min_count=N "
    "(every setting of kwa_batch.emulator.behaviour.CallbackSettings); or 'off'. "
    "[default: every message sent, then delivered; GET]",
)
@click.option(
    "--opted-out",
    "opted_out",
    metavar="NUMBER",
    multiple=True,
    help="A number (E.164) that stopped marketing messages: marketing templates to it fail "
    "with 131050, as to every number that replies STOP; repeatable.",
)
@click.option(
    "--not-on-whatsapp",
    "not_on_whatsapp",
    metavar="SHARE",
    type=click.FloatRange(0, 1),
    help="The share of numbers not on WhatsApp (drawn once per number, seeded): their "
    "messages fail with 131026. [default: 0]",
)
@click.option(
    "--spam-threshold",
    "spam_threshold",
    metavar="SHARE",
    type=click.FloatRange(0, 1, min_open=True),
    help="Restrict a sender once this share of its last 100 messages (20 at least) failed: "
    "every later message fails with 131048 (WhatsApp's spam rate limit). [default: off]",
)
@click.option(
    "--templates",
    metavar="PATH",
    type=click.Path(exists=True, dir_okay=False),
    help="Play this template catalogue (.csv/.xlsx/.json): serve the v2 template list and "
    "fail template messages that do not match it (WhatsApp's codes, in callbacks).",
)
@click.option(
    "--v2-number",
    "v2_numbers",
    metavar="NUMBER",
    multiple=True,
    help="A business number (E.164) on Kaleyra's v2 API only: a v1 call from it answers "
    "WA-401 (and a v2 call from a number given --v1-number); repeatable. "
    "[default: every number answers both versions]",
)
@click.option(
    "--v1-number",
    "v1_numbers",
    metavar="NUMBER",
    multiple=True,
    help="A business number (E.164) on v1 only: a v2 call from it answers WA-401; repeatable.",
)
@click.option(
    "--v2-answer",
    type=click.Choice(["whatsapp", "v1", "id"]),
    default="whatsapp",
    show_default=True,
    help="The shape of v2's success body (Kaleyra does not document it): WhatsApp's "
    "messages[].id, v1's data[].message_id, or a top-level id.",
)
def emulator_command(**options: Any) -> None:
    """Run a local Kaleyra-compatible server until stopped (nothing leaves this machine)."""
    emu = _emulator(**options)

    def start() -> None:
        try:
            emu.start()
        except OSError as exc:
            fail(f"cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}")

    serve_until_stopped(emu, start, lambda: _print_emulator(emu, options))
    served = ", ".join(f"{n} x{k}" for n, k in emu.faults_injected.items() if k)
    click.echo(
        f"Stopped; {emu.message_count} message(s) accepted"
        + (f"; faults served: {served}" if served else "")
        + (f"; {emu.rate_limited} request(s) over the rate limit" if emu.rate_limited else "")
        + "."
    )


def _emulator(
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
    templates: str | None = None,
    opted_out: tuple[str, ...] = (),
    not_on_whatsapp: float | None = None,
    spam_threshold: float | None = None,
    v2_numbers: tuple[str, ...] = (),
    v1_numbers: tuple[str, ...] = (),
    v2_answer: str = "whatsapp",
) -> Emulator:
    from ..emulator.behaviour import (
        CallbackSettings,
        FaultSettings,
        LimitSettings,
        NetworkSettings,
        VersionSettings,
    )
    from ..emulator.server import Emulator

    catalogue: Any = None
    if templates is not None:
        from ..catalogue import load_templates

        catalogue = load_templates(templates)  # checked, with its own messages
        if templates.lower().endswith(".json"):
            catalogue = templates  # WhatsApp's JSON played whole: buttons and cards as given

    callback_settings: dict[str, Any] = _specs(
        callback_specs, "--callback", "KEY=VALUE", "read=0.7"
    )
    callbacks_off = callback_settings.pop("off", None) is not None
    # The options of a campaign's life after "sent": fields of the same CallbackSettings.
    after_sent = {
        "--opted-out": ("opted_out", opted_out or None),
        "--not-on-whatsapp": ("not_on_whatsapp", not_on_whatsapp),
        "--spam-threshold": ("spam_threshold", spam_threshold),
    }
    for flag, (setting, value) in after_sent.items():
        if value is None:
            continue
        if callbacks_off:
            fail(f"{flag} is played in the callbacks, and --callback off turns them off")
        if setting in callback_settings:
            fail(f"{flag} and --callback {setting}=... both given: use one")
        callback_settings[setting] = value
    faults: dict[str, float] = {}
    for name, probability in _specs(
        fault_specs, "--fault", "NAME=PROB with PROB from 0 to 1", "429=0.05"
    ).items():
        try:
            faults[name] = float(probability)
        except ValueError:
            fail(f"--fault {name}={probability}: write NAME=PROB with PROB from 0 to 1")
    # The same settings objects as kb.Emulator's, each refused with its option's name.
    option = "--latency/--jitter"
    try:
        network = NetworkSettings(latency=latency / 1000.0, jitter=jitter / 1000.0)
        option = "--fault"
        fault_settings = FaultSettings(faults, retry_after=retry_after, late_delay=late_delay)
        option = "--rate"
        limits = LimitSettings(rate_limit=rate)
        option = "--callback/--opted-out/--not-on-whatsapp/--spam-threshold"
        callbacks = None if callbacks_off else CallbackSettings.coerce(callback_settings or True)
        option = "--v2-number/--v1-number"
        declared = {**dict.fromkeys(v1_numbers, "v1"), **dict.fromkeys(v2_numbers, "v2")}
        versions = VersionSettings(declared, answer=v2_answer)
        option = "--sid/--api-key"
        return Emulator(
            host=host,
            port=port,
            sid=sid,
            api_key=api_key,
            seed=seed,
            network=network,
            faults=fault_settings,
            limits=limits,
            callbacks=callbacks or False,
            templates=catalogue,
            versions=versions,
        )
    except ValueError as exc:
        fail(f"{option}: {exc}")


def _print_emulator(emu: Emulator, options: dict[str, Any]) -> None:
    shown_key = "<the key you gave>" if options["api_key"] else emu.api_key
    latency, jitter = options["latency"], options["jitter"]
    click.echo(f"Kaleyra emulator listening on {emu.url}")
    click.echo(f"  endpoint: {emu.url}/v1/{emu.sid}/messages")
    click.echo(
        f"  v2 endpoint: {emu.url}/v2/{emu.sid}/whatsapp/<sender digits>/messages "
        f"(answers in the {emu.versions.answer!r} shape)"
    )
    if emu.versions.numbers:
        shown = ", ".join(f"+{n} {v}" for n, v in sorted(emu.versions.numbers.items()))
        click.echo(f"  numbers on one API version only: {shown}")
    if emu.templates is not None:
        count = len(emu.templates.data)
        click.echo(
            f"  templates: {count}, at {emu.url}/v2/{emu.sid}/whatsapp/<WABA id>/message_templates"
        )
    click.echo("Point kwa-batch at it (paste these in another shell):")
    click.echo(f"  export {ENV_BASE_URL}={emu.url}")
    click.echo(f"  export {ENV_SID}={emu.sid}")
    click.echo(f"  export {ENV_API_KEY}={shown_key}")
    click.echo(f"  export {ENV_FROM}={DEMO_SENDER}")
    if latency or jitter:
        click.echo(f"  latency: {latency:g} ms" + (f" + up to {jitter:g} ms" if jitter else ""))
    active = {name: p for name, p in emu.faults.items() if p > 0}
    if active:
        shown = ", ".join(f"{name} {p * 100:g}%" for name, p in active.items())
        details = [f"Retry-After {options['retry_after']:g} s"] if "429" in active else []
        details += [f"late answers +{options['late_delay']:g} s"] if "late" in active else []
        details += [f"seed {options['seed']}"] if options["seed"] is not None else []
        click.echo(f"  faults: {shown}" + (f" ({', '.join(details)})" if details else ""))
    if options["rate"] is not None:
        click.echo(f"  rate limit: {options['rate']:g} messages per second")
    played = emu.callbacks
    if played is not None:
        click.echo(
            f"  callbacks to a message's callback_url on this machine ({played.method}): "
            f"{played.delivered * 100:g}% delivered, {played.read * 100:g}% of those read"
            + (f", every {played.delay:g} s" if played.delay else "")
        )
        after = [f"{len(played.opted_out)} number(s) opted out"] if played.opted_out else []
        if played.not_on_whatsapp:
            after.append(f"{played.not_on_whatsapp * 100:g}% of numbers not on WhatsApp")
        if played.spam_threshold is not None:
            after.append(
                f"131048 once {played.spam_threshold * 100:g}% of a sender's last "
                f"{played.spam_window} messages failed"
            )
        if after:
            click.echo(f"  after sent: {', '.join(after)}")
    click.echo("Nothing leaves this machine. Press Ctrl-C to stop.")


@click.command("receive", short_help="Collect Kaleyra's delivery callbacks and replies.")
@server_options(
    8765,
    "Port (0: a free one).",
    "Address to listen on (0.0.0.0: every interface, e.g. behind a tunnel or a proxy).",
)
@click.option(
    "--store",
    required=True,
    envvar=ENV_STORE,
    type=StoreParam(),
    help="Where the callbacks go: a SQLite file (created when missing), or a PostgreSQL "
    "database's URL, postgresql://user@host/db (its tables made on first use; a password is "
    f"better in PGPASSWORD or ~/.pgpass, as a flag shows in ps) [env: {ENV_STORE}].",
)
@click.option(
    "--token",
    metavar="SECRET",
    envvar=ENV_TOKEN,
    help=f"Refuse callbacks that do not carry this token [env: {ENV_TOKEN}]; prefer the "
    "variable (a flag shows in ps).",
)
@click.option(
    "--workers",
    metavar="N",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes serving the port (gunicorn), for more callbacks a second; more than 1 "
    "needs a postgresql:// --store. Several machines may also receive into one database.",
)
def receive_command(host: str, port: int, store: str, token: str | None, workers: int) -> None:
    """Receive Kaleyra's callbacks (delivery statuses, replies) into a store until stopped.

    Give Kaleyra the callback_url it prints (the callback_url column of the recipients
    file); then `kwa-batch status RESULTS --receipts STORE` puts the statuses next to
    each row.
    """
    receiver_log = logging.getLogger("kwa_batch.receipts.receiver")
    if receiver_log.getEffectiveLevel() > logging.INFO:
        receiver_log.setLevel(logging.INFO)  # one line per callback, numbers masked
        # ... but not the receiver's own "receiving on ..."/"stopped" lines: this command
        # says both itself (with the callback_url), once.
        receiver_log.addFilter(_callbacks_only)
    if workers > 1:
        _receive_with_workers(host, port, store, token, workers)
        return
    from ..receipts.receiver import Receiver

    try:
        receiver = Receiver(store, host=host, port=port, token=token or None)
    except ValueError as exc:
        fail(str(exc))

    def start() -> None:
        try:
            receiver.start()
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} or open {store}: {exc.strerror or exc}")

    serve_until_stopped(receiver, start, lambda: _print_receiver(receiver.url, store, host, token))
    _print_stopped(receiver.stats, receiver.store)


def _receive_with_workers(
    host: str, port: int, store: str, token: str | None, workers: int
) -> None:
    """``receive --workers N``: N gunicorn processes behind the port, into a database."""
    if not is_database_url(store):
        fail(
            f"--workers {workers}: {store} is a SQLite file, which has one writer at a time; "
            "give --store a postgresql:// URL to run several workers (or use --workers 1)"
        )
    try:
        from ..receipts.receiver_workers import ReceiverWorkers
    except ImportError:
        fail(f"--workers {workers} needs gunicorn: install it with {INSTALL}")
    from ..receipts.store import CallbackStore

    try:
        served = ReceiverWorkers(store, host=host, port=port, workers=workers, token=token or None)
        served.bind()
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")

    def ready() -> None:
        _print_receiver(served.url, store, host, token, workers)

    served.serve(ready)
    _print_stopped(served.stats, CallbackStore(store))


def _print_stopped(stats: dict[str, int], store: CallbackStore) -> None:
    counts = store.counts()
    store.close()
    click.echo(
        f"Stopped; {stats['stored']} callback(s) stored, {stats['repeated']} repeated, "
        f"{stats['refused']} refused. {store.shown} holds {counts['status_updates']} status "
        f"update(s) and {counts['incoming_messages']} incoming message(s)."
    )


def _callbacks_only(record: logging.LogRecord) -> bool:
    """Keep the receiver's lines about callbacks; drop those of its start and stop."""
    return record.funcName not in ("start", "stop")


def _print_receiver(url: str, store: str, host: str, token: str | None, workers: int = 1) -> None:
    from ..receipts.store import store_name

    shown_url = url + CALLBACK_PATH + ("?token=****" if token else "")
    click.echo(f"Receiving Kaleyra callbacks on {url} into {store_name(store)}")
    click.echo(f"  callback_url: {shown_url}")
    if workers > 1:
        click.echo(f"  {workers} worker processes (gunicorn) share the port")
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
