"""``kwa-batch send FILE --chunk-rows N``: a file larger than memory, sent in parts.

The command line of :func:`kwa_batch.send_file`: the same options as ``send``, one line per
part as it settles, then the outcome by status and by error code, the results file (a
``.parquet`` or ``.csv``, written as the parts settle) and the next step; the exit code is
the run's, as for ``send``.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import fail, file_reading, in_flags, warnings_as_notes, wrapped
from .render import counted, write_outcome_json

if TYPE_CHECKING:
    from ..sending.client import KaleyraClient
    from ..streaming import PartSent

__all__ = ["send_in_parts"]


def send_in_parts(
    o: Any,
    target: Path,
    sender: str | None,
    client_for: Callable[[ExitStack], KaleyraClient],
    echo: Callable[[str], None],
) -> None:
    """Send ``o.file`` in parts of ``o.chunk_rows`` rows to ``target``, print what each part
    did and the outcome, and exit with the run's code. ``o``: the send command's options;
    ``client_for``: the client to send with, entered on the stack."""
    from ..actions import meaning_of
    from ..export import ResultsWriter
    from ..results import error_counts
    from ..sending.retries import Retries
    from ..streaming import check_chunk_rows, send_file

    if o.dry_run:
        fail("--dry-run reads the file whole: leave out --chunk-rows to see the planned requests")
    if o.rate_card:
        fail("--rate-card puts the estimate on a workbook's Summary sheet: not with --chunk-rows")
    check_chunk_rows(o.chunk_rows)
    ResultsWriter(target).abort()  # a workbook or another format refused before sending
    codes: Counter[tuple[str, str]] = Counter()

    def on_part(part: PartSent) -> None:
        for row in error_counts(part.results).itertuples(index=False):
            codes[(str(row.status), str(row.error_code))] += int(row.rows)
        what = counted(part.outcome) if part.sent else "not sent (the run had stopped)"
        echo(
            f"part {part.number:,}/{part.parts:,} (lines {part.first_line:,}-"
            f"{part.last_line:,}): {what}"
        )

    with ExitStack() as stack:
        client = client_for(stack)
        receipts = None
        if o.receipts is not None:
            from ..receipts.store import opened_store

            receipts = stack.enter_context(opened_store(o.receipts))
        echo(f"{o.file}: sent in parts of up to {o.chunk_rows:,} rows; results to {target}")
        with warnings_as_notes(shown=not o.quiet):
            outcome = send_file(
                o.file,
                client,
                out=target,
                chunk_rows=o.chunk_rows,
                pacing=o.pacing,
                schedule=o.schedule,
                retries=Retries(resend_unknown=o.resend_unknown),
                journal=o.journal,
                campaign=o.campaign,
                sender=sender,
                receipts=receipts,
                progress=False,
                encoding=o.encoding,
                on_part=on_part,
                default_region=o.region,
                **file_reading(),
                **o.messages,
            )
    if o.summary_json:
        by_code: Counter[str] = Counter()
        for (_, code), n in codes.items():
            by_code[code] += n
        write_outcome_json(o.summary_json, o.file, target, outcome, dict(by_code))
    if outcome.journal_error:
        click.echo(f"Error: {outcome.journal_error} (results: {target})", err=True)
    if not o.quiet:
        click.echo(f"\nOutcome: {counted(outcome)}")
        for (status, code), n in codes.most_common():
            click.echo(f"  {code:<11} {n:>6,} {status:<9} {meaning_of(code)}")
        click.echo(
            wrapped(f"Results: {target} ({outcome.rows:,} rows, one per input row)", indent=9)
        )
    if outcome.next_step:
        click.echo(
            "\n".join(wrapped(line) for line in in_flags(outcome.next_step).splitlines()), err=True
        )
    sys.exit(outcome.exit_code)
