"""``kwa-batch templates``: fetch the WhatsApp templates of a business account into a
catalogue file for ``validate --templates`` and ``send --templates``.

The fetch is bounded (:class:`kwa_batch._http.bounded.BoundedSession`): every page must have
arrived within one overall ``--deadline`` (a server that drips its answer a byte at a time
is given up on), the pages together within :data:`kwa_batch.catalogue.MAX_CATALOGUE_BYTES`,
and none may nest deeper than a template list does.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import EXIT_OK
from .options import account_options, output_path

__all__ = ["templates_command"]


@click.command("templates", short_help="Write an account's WhatsApp templates to a catalogue file.")
@click.option("--waba-id", required=True, metavar="ID", help="The WhatsApp Business Account id.")
@output_path(
    "--out",
    (".csv", ".xlsx"),
    help="Write the catalogue here, one row per template and language [default: templates.csv].",
)
@click.option(
    "--emulator",
    is_flag=True,
    help="Ask a built-in emulator that plays the sample catalogue (the templates of "
    "sample_data/templates.json; nothing leaves this machine).",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,  # kwa_batch._http.bounded.DEFAULT_DEADLINE (not imported: --help stays quick)
    show_default=True,
    metavar="SECONDS",
    help="Give up when the whole list (every page) has not arrived within this time.",
)
@account_options
def templates_command(
    waba_id: str,
    out: Path | None,
    emulator: bool,
    deadline: float,
    sid: str | None,
    api_key: str | None,
    base_url: str | None,
    api_version: str | None,
) -> None:
    """Fetch every template of WABA ID (all pages) and write them as a catalogue.

    Exit code 0 when written, 2 when the account, the answer or the file cannot be used.
    """
    from .._http.bounded import BoundedSession
    from ..catalogue import MAX_CATALOGUE_BYTES, save_templates
    from ..config import credentials_from_env
    from ..sending.client import KaleyraClient

    def bounded() -> BoundedSession:  # one per client: the deadline covers every page
        return BoundedSession(
            deadline=deadline,
            max_bytes=MAX_CATALOGUE_BYTES,
            max_total_bytes=MAX_CATALOGUE_BYTES,
        )

    target = out or Path("templates.csv")
    if emulator:
        from ..emulator.server import Emulator
        from ..emulator.template_catalogue import sample_catalogue

        with (
            Emulator(templates=sample_catalogue(), callbacks=False) as emu,
            emu.client(session_factory=bounded) as client,
        ):
            catalogue = client.templates(waba_id)
    else:
        creds = credentials_from_env(
            sid=sid, api_key=api_key, base_url=base_url, api_version=api_version
        )
        with KaleyraClient(
            creds.sid,
            creds.api_key,
            base_url=creds.base_url,
            session_factory=bounded,
            api_version=creds.api_version,
        ) as client:
            catalogue = client.templates(waba_id)
    save_templates(catalogue, target)
    counts = catalogue["status"].value_counts()
    shown = ", ".join(f"{count} {status}" for status, count in counts.items()) or "none"
    click.echo(f"{len(catalogue)} template(s) of WABA {waba_id} ({shown}) written to {target}")
    raise SystemExit(EXIT_OK)
