"""Send the follow-ups that are due: the rows whose retry time has come, once each.

:func:`send_follow_ups` asks :func:`~kwa_batch.receipts.follow_up.follow_up` what each row
needs, sends exactly the rows whose action is ``retry`` and whose ``retry_at`` has passed
(never a row delivered or read, never one waiting for its receipt), and returns the
results with those rows brought up to date.

- **Never twice.** Each retry is a row of the journal keyed by the row's content *and* the
  attempt it follows up (:data:`kwa_batch.fields.FOLLOW_UP_OF`): running it again, even
  on the old results file, finds the retry in the journal and sends nothing.
- **Every rule of the campaign.** The retries go through :func:`kwa_batch.send`, with the
  campaign's schedule (quiet hours, start, expiry, daily limit: read from the results'
  run, unless given), decided when each leaves; with the campaign's own journal, each
  retry counts against the daily limit with the first sends, and the expiry counts from
  the campaign's first run. The opt-outs of the receipts store hold a customer who said
  STOP since (read again while it sends).
- **The results stay one row per input row.** A retry that left replaces its row's outcome
  (``status``, ``message_id``, ``sent_at``...) and adds one to ``follow_ups``; a retry held
  back (quiet hours, an opt-out) leaves the row as it was, to be due again.

Example:
    >>> updated = kb.send_follow_ups(results, "receipts.db", emu.client(),  # doctest: +SKIP
    ...                              journal="campaign.db")
    >>> kb.export_results(updated, "results.xlsx")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ..actions import STOP_CODES, TEMPLATE_CODES, Action, rule_for
from ..errors import ConfigurationError, KwaBatchError
from ..fields import FOLLOW_UP_OF
from ..outcome import DERIVED_FIELDS, RunOutcome
from ..results import DELIVERY_COLUMNS, OUTCOME_FIELDS, RESULT_DTYPES, Status
from ..sending.client import KaleyraClient
from ..sending.pacing import Pacing
from ..sending.run import send
from ..sending.schedule import Schedule
from ..validation.sender import read_sender
from .follow_up import FOLLOW_UP_COLUMNS, FOLLOW_UPS, follow_up, utc_moment
from .optouts import OptOutSource
from .store import CallbackStore

__all__ = [
    "RECENT_STOPS",
    "StopSending",
    "campaign_schedule",
    "due",
    "held_by_template",
    "send_follow_ups",
]

log = logging.getLogger(__name__)

# What a retry that left brings to its row.
_LEFT = (Status.SENT.value, Status.FAILED.value, Status.UNKNOWN.value)
_SCHEDULE_FIELDS = ("quiet_hours", "not_before", "expires", "daily_limit", "history")


def due(plan: pd.DataFrame, now: datetime | None = None) -> pd.Series:
    """Which rows of :func:`~kwa_batch.follow_up`'s frame are due for a retry at ``now``
    (default: now): ``retry`` with a ``retry_at`` that has passed."""
    moment = utc_moment(now)
    return (plan["action"].eq(Action.RETRY.value) & plan["retry_at"].le(moment)).fillna(False)


def campaign_schedule(results: pd.DataFrame) -> Schedule:
    """The schedule the campaign's run was given (quiet hours, start, expiry, daily limit,
    history), from ``results.attrs["run"]``; an empty one when the results say none."""
    outcome = results.attrs.get("run")
    settings = outcome.settings if isinstance(outcome, RunOutcome) else {}
    given = {name: settings[name] for name in _SCHEDULE_FIELDS if settings.get(name) is not None}
    if isinstance(given.get("not_before"), str):
        given["not_before"] = datetime.fromisoformat(given["not_before"])
    if isinstance(given.get("expires"), str):
        with contextlib.suppress(ValueError):  # a duration as written ("6h"): Schedule reads it
            given["expires"] = datetime.fromisoformat(given["expires"])
    return Schedule(**given)


def send_follow_ups(
    results: pd.DataFrame,
    receipts: str | Path | CallbackStore,
    client: KaleyraClient,
    *,
    journal: str | Path,
    data: pd.DataFrame | None = None,
    pacing: Pacing | None = None,
    schedule: Schedule | None = None,
    sender: str | None = None,
    stop_checked: bool = False,
    progress: bool = True,
    **validation: Any,
) -> pd.DataFrame:
    """Send the rows whose retry is due, once each, and return the results up to date.

    Args:
        results: the campaign's results (:func:`kwa_batch.load_results` of the file
            ``kwa-batch send`` wrote, or :func:`kwa_batch.send`'s frame): the message's
            columns (``type``, ``template_name``, ``params``...) are sent again as they are.
        receipts: the callback store (its path or an open store): the receipts decide
            what is due, and its opt-outs are honoured.
        client: where to send.
        journal: the journal recording each retry (the campaign's own, so that the daily
            limit and the expiry count the first sends too).
        data: the input frame the results came from (same index), for its message columns
            when the results do not carry them (:func:`kwa_batch.send`'s frame does not; a
            file ``kwa-batch send`` wrote does).
        pacing: how fast (default ``Pacing()``).
        schedule: the holds (default: the campaign's, from ``results.attrs["run"]``).
        sender: the ``from`` number for rows without one (default: the campaign's, as
            its results record it).
        stop_checked: a person checked what the campaign's ``stop`` codes (131048, 368,
            WAV2101...) asked for and acted on it: send the due retries anyway. Without it,
            a campaign with a ``stop`` row sends nothing.
        progress: show a progress bar.
        **validation: :func:`kwa_batch.validate`'s arguments for the retried rows, as the
            campaign was sent with them (``template_name=``, ``params_from=``...).

    Returns:
        ``results`` with each retry that left in its row (``follow_ups`` counts them; call
        :func:`~kwa_batch.follow_up` again for what each row needs now); ``attrs["run"]`` is
        the campaign's outcome recounted, ``attrs["follow_up"]`` the retries' own run
        (:class:`~kwa_batch.RunOutcome`: its exit code is the command's).

    Raises:
        StopSending: some row's code says nothing more should leave until a person acts,
            and ``stop_checked`` is not set; nothing was sent.
        ConfigurationError: no journal (without one a second run would send again).
        KwaBatchError: neither the results nor ``data`` hold the messages, or ``data`` is
            not the results' input frame.
    """
    if journal is None or not str(journal).strip():
        raise ConfigurationError(
            "send_follow_ups needs a journal (the campaign's): it records each retry, so "
            "that running it again never sends one twice"
        )
    store = receipts.target if isinstance(receipts, CallbackStore) else receipts
    messages = _with_messages(results, data, built=_BUILDS & set(validation))
    plan = follow_up(messages, receipts)
    stops = plan[plan["action"].eq(Action.STOP.value).fillna(False).to_numpy()]
    # Only a stop of the number or the account holds everything; a row held for its
    # template (KWA034, 132016) holds that template's rows (held_by_template), not others.
    chosen = due(plan) & ~held_by_template(plan)
    if chosen.any() and not stop_checked:
        number_wide = stops[stops["decided_by"].isin(list(STOP_CODES)).fillna(False).to_numpy()]
        if len(number_wide):
            raise StopSending(_stop_message(number_wide))
        recent = _recent_stops(store, sender or _campaign_sender(results))
        if recent:
            raise StopSending(recent)
    retries = _retry_rows(plan[chosen.to_numpy()])
    if schedule is None:
        schedule = campaign_schedule(results)
    if sender is None:
        sender = _campaign_sender(results)
    log.info("follow-up: %d row(s) due for a retry", len(retries))
    watched = receipts if isinstance(receipts, CallbackStore) else CallbackStore(store)
    try:
        sent = _send_watched(
            retries, client, watched, pacing=pacing, schedule=schedule, journal=journal,
            sender=sender, progress=progress,
            suppress=_with_opt_outs(validation.pop("suppress", None), store),
            **validation,
        )  # fmt: skip
    finally:
        if watched is not receipts:
            watched.close()
    return _updated(sent, results)


def _send_watched(
    retries: pd.DataFrame, client: KaleyraClient, store: CallbackStore, **options: Any
) -> pd.DataFrame:
    """:func:`kwa_batch.send` of the retries, watching the store: a stop code that arrives
    while they go stops them as it stops a campaign."""
    return send(retries, client, receipts=store, **options)


#: How far back a stop code of another campaign from the same number holds follow-ups.
RECENT_STOPS = timedelta(hours=24)


def _e164(number: str) -> str:
    """A sender as the store writes it: E.164 when it reads as a number, else ``+digits``."""
    check = read_sender(number.strip())
    if check.ok and check.e164:
        return str(check.e164)
    return "+" + "".join(c for c in number if c.isdigit())


def _recent_stops(store: str | Path, sender: str | None) -> str | None:
    """Why nothing should leave: a stop code received in the last :data:`RECENT_STOPS` for
    a message from ``sender`` (one of them, comma-separated; or one that names no number),
    e.g. another campaign's 131048; None when there is none."""
    since = datetime.now(UTC) - RECENT_STOPS
    with CallbackStore(store) as opened:
        found, _ = opened.updates_with_codes(STOP_CODES, since)
    if sender is not None and len(found):
        # Several: any of them; each read as the receiver stores numbers (E.164).
        numbers = [_e164(n) for n in sender.split(",") if n.strip()]
        mine = found["business"].isna() | found["business"].isin(numbers)
        found = found[mine.fillna(True).to_numpy()]
    if found.empty:
        return None
    codes = found["error_code"].value_counts()
    listed = ", ".join(f"{code} ({n} callback(s))" for code, n in codes.items())
    first = rule_for(str(codes.index[0]))
    return (
        f"nothing was sent: the receipts store got {listed} in the last 24 hours for this "
        f"number ({first.code}: {first.meaning}; {first.what_to_do}); once done, run again "
        "with stop_checked=True (--stop-checked)"
    )


class StopSending(KwaBatchError):
    """A code of the campaign says nothing more should leave until a person acts."""


def _stop_message(stops: pd.DataFrame) -> str:
    codes = stops["decided_by"].value_counts()
    first = str(stops["reason"].iloc[0])
    listed = ", ".join(f"{code} ({n} row(s))" for code, n in codes.items())
    return (
        f"nothing was sent: {listed} say(s) to stop sending until a person acts ({first}); "
        "once done, run again with stop_checked=True (--stop-checked)"
    )


def held_by_template(plan: pd.DataFrame, now: datetime | None = None) -> pd.Series:
    """Rows whose template is paused or disabled, by another row's code (132015, 132016):
    a paused template's rows wait until its pause ends (the latest ``retry_at`` of its
    132015 rows), a disabled one's until a person acts."""
    held = pd.Series(False, index=plan.index)
    if "template_name" not in plan.columns:
        return held
    coded = plan[plan["decided_by"].isin(list(TEMPLATE_CODES)).fillna(False).to_numpy()]
    if coded.empty:
        return held
    moment = utc_moment(now)
    for template, rows in coded.groupby("template_name"):
        until = rows["retry_at"].max()
        if rows["action"].eq(Action.STOP.value).any() or pd.isna(until) or until > moment:
            held |= plan["template_name"].eq(template).fillna(False)
    return held


def _with_opt_outs(given: Any, store: str | Path) -> list[Any]:
    """The suppression sources given, and the store's opt-outs (read again as it sends)."""
    if given is None:
        others: list[Any] = []
    elif isinstance(given, list | tuple):
        others = list(given)
    else:
        others = [given]
    return [OptOutSource(store), *others]


def _campaign_sender(results: pd.DataFrame) -> str | None:
    """The sender the campaign's run used for rows without their own (None if unknown)."""
    outcome = results.attrs.get("run")
    found = outcome.settings.get("sender") if isinstance(outcome, RunOutcome) else None
    return str(found) if found else None


# validate()'s arguments that build the message from other columns.
_BUILDS = {"template_name", "body_template", "params_from"}


def _with_messages(
    results: pd.DataFrame, data: pd.DataFrame | None, *, built: set[str]
) -> pd.DataFrame:
    """The results with the message columns, from ``data`` where they lack them (``built``:
    validate()'s arguments given that build the message, so none may be there)."""
    if data is not None:
        if not data.index.equals(results.index):
            raise KwaBatchError(
                "data= must be the frame the results came from (same index): the results "
                f"have {len(results)} rows, data has {len(data)}"
            )
        # The message's columns, and those it is built from (params_from=...).
        extra = [c for c in data.columns if c not in results.columns]
        results = results.join(data[extra]) if extra else results
    said = ("type", "body", "template_name", "media_url")
    if not built and not any(c in results.columns for c in said):
        raise KwaBatchError(
            "the results do not say what was sent (no type, body, template_name or "
            "media_url column): pass data= (the frame sent), or load the results file "
            "kwa-batch send wrote (it keeps the input's columns)"
        )
    return results


def _retry_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The recipients frame of the retries: the row as the campaign had it (the message's
    columns and those it is built from), to the number it went to, and what each
    retries."""
    ours = {*RESULT_DTYPES, *FOLLOW_UP_COLUMNS, FOLLOW_UPS, *DELIVERY_COLUMNS, "to_as_written"}
    frame = rows[[c for c in rows.columns if c not in ours]].copy()
    frame.insert(0, "to", rows["to"].astype("string"))
    rounds = (
        pd.to_numeric(rows[FOLLOW_UPS], errors="coerce").fillna(0).astype("int64")
        if FOLLOW_UPS in rows.columns
        else pd.Series(0, index=rows.index, dtype="int64")
    )
    # The attempt each retries: its message id, or (never sent) its row, code and round.
    label = pd.Series(rows.index.astype("str"), index=rows.index, dtype="string")
    unsent = "row " + label + " " + rows["error_code"].astype("string").fillna("")
    unsent = unsent + " round " + rounds.astype("string")
    frame[FOLLOW_UP_OF] = rows["message_id"].astype("string").fillna(unsent)
    return frame


def _updated(sent: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the outcome of each retry that left in its row."""
    out = results.copy()
    left = sent.index[sent["status"].isin(_LEFT).to_numpy()]
    counts = (
        pd.to_numeric(out[FOLLOW_UPS], errors="coerce").fillna(0).astype("Int64")
        if FOLLOW_UPS in out.columns
        else pd.Series(0, index=out.index, dtype="Int64")
    )
    for name in (*OUTCOME_FIELDS, "from_journal"):
        if name in sent.columns and name in out.columns:
            out.loc[left, name] = sent.loc[left, name].astype(out[name].dtype)
    counts.loc[left] = counts.loc[left] + 1
    out[FOLLOW_UPS] = counts
    original = results.attrs.get("run")
    facts = (
        {
            f.name: getattr(original, f.name)
            for f in dataclasses.fields(RunOutcome)
            if f.name not in DERIVED_FIELDS
        }
        if isinstance(original, RunOutcome)
        else {}
    )
    out.attrs = {
        **results.attrs,
        "run": RunOutcome.of(out, **facts),
        "follow_up": sent.attrs["run"],
    }
    return out
