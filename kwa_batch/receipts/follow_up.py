"""What to do next with each row of a campaign, from its result and its receipt.

:func:`follow_up` puts the outcome policy (:mod:`kwa_batch.actions`) beside each row of a
run's results: the row's own message decides. A row ``sent`` is judged by its receipt
(delivered or read: ``done``; no final receipt yet: ``wait``; failed: by the callback's
error code); a row that never left, or that Kaleyra refused, by its own ``error_code``.

Retries wait for gaps that grow with each try: the try a row is at is the number of times
its recipient met that code (in the receipts: WhatsApp's 131049 is a per-user limit, so
every 131049 of that customer counts) or, for codes met in the answer, how often the row
was followed up already (the ``follow_ups`` column that ``kwa-batch follow-up`` keeps).
Past the last gap the row is ``final``. A 131049 to a US number is ``final`` at once:
WhatsApp has paused marketing templates to US numbers since April 2025.

Only ``to``, ``status``, ``error_code``, ``message_id`` and ``sent_at`` of the results are
read (what :func:`kwa_batch.send` returns and :func:`kwa_batch.load_results` reads back);
the work is vectorised: a million rows against three million receipts take seconds.

Example:
    >>> plan = kb.follow_up(results, "receipts.db")  # doctest: +SKIP
    >>> plan["action"].value_counts()  # doctest: +SKIP
    >>> plan[plan["action"].eq("retry") & plan["retry_at"].le(pd.Timestamp.now("UTC"))]
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..actions import RULES, US_MARKETING_PAUSED, Action, Rule, rule_for
from ..errors import Code, KwaBatchError
from ..results import Status, require_columns
from .delivery import load_receipts
from .store import CallbackStore, message_keys

__all__ = ["FOLLOW_UPS", "FOLLOW_UP_COLUMNS", "follow_up", "utc_moment"]

#: The columns :func:`follow_up` adds, in order.
FOLLOW_UP_COLUMNS = ("action", "retry_at", "reason", "decided_by")
#: The column counting how often a row was followed up (sent again) already.
FOLLOW_UPS = "follow_ups"

_TIME = "datetime64[us, UTC]"
_NEEDED = ("to", "status", "message_id", "sent_at")
_RECEIPT_NEEDED = ("message_id", "status", "error_code", "failed_at", "recipient")
_MARKETING_LIMIT = "131049"


def follow_up(
    results: pd.DataFrame,
    receipts: pd.DataFrame | str | Path | CallbackStore,
    *,
    now: datetime | None = None,
) -> pd.DataFrame:
    """The results with what to do next for each row: its action, when, and why.

    Args:
        results: a run's results (:func:`kwa_batch.send`, :func:`kwa_batch.load_results`);
            ``to``, ``status``, ``message_id`` and ``sent_at`` are read (``error_code`` and
            ``follow_ups`` too when present).
        receipts: :func:`kwa_batch.load_receipts`' frame, or the store to load it from.
        now: the moment the retries are timed from when a row has no time of its own
            (default: now, UTC).

    Returns:
        A copy of ``results`` (same index, order and ``attrs``) with
        :data:`FOLLOW_UP_COLUMNS`: ``action`` (:class:`kwa_batch.Action`'s values),
        ``retry_at`` (UTC; for ``retry`` only: not before then), ``reason`` (one line: the
        code, what it means, what to do) and ``decided_by`` (the code that decided it, as
        given; NA for ``done`` and ``wait``).

    Raises:
        KwaBatchError: a needed column is missing.
    """
    require_columns(results, _NEEDED)
    if not results.index.is_unique:
        raise KwaBatchError(
            "the results' index has repeated labels: follow_up gives one action per row, by "
            "label; pass the frame send() returned or load_results() read (one label a row)"
        )
    moment = utc_moment(now)
    if not isinstance(receipts, pd.DataFrame):
        receipts = load_receipts(receipts)
    lacking = [c for c in _RECEIPT_NEEDED if c not in receipts.columns]
    if lacking:
        raise KwaBatchError(
            f"the receipts have no {', '.join(lacking)} column(s): pass the store, or "
            "load_receipts() of it"
        )
    n = len(results)
    status = results["status"].astype("string").to_numpy(dtype=object, na_value=None)
    ids = results["message_id"].astype("string").str.strip()
    found = _match(ids, receipts)
    delivery = found["status"].to_numpy(dtype=object, na_value=None)

    # The code that decides each row: the receipt's for a message Kaleyra took and
    # reported as failed, else the row's own.
    own_code = (
        results["error_code"].astype("string")
        if "error_code" in results.columns
        else pd.Series(pd.NA, index=results.index, dtype="string")
    )
    # A message delivered or read is done, whatever else its callbacks said (a "failed"
    # received after "delivered", or the two id forms reporting apart): never retried.
    reached = found["reached"].to_numpy(dtype=bool, na_value=False)
    failed = np.isin(delivery, ("failed", "not-sent")) & ~reached
    code = np.where(
        failed,
        found["error_code"].astype("string").to_numpy(dtype=object, na_value=None),
        own_code.to_numpy(dtype=object, na_value=None),
    )
    http = (
        pd.to_numeric(results["http_status"], errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        if "http_status" in results.columns
        else np.full(n, np.nan)
    )
    rules, which = _rules(code, np.where(failed, "delivery", status), http)
    action = np.array([r.action.value for r in rules], dtype=object)[which]
    reason = np.array([_reason(r) for r in rules], dtype=object)[which]
    decided_by: np.ndarray = np.array(code, dtype=object)

    done = np.isin(delivery, ("delivered", "read")) | reached
    delivery = np.where(reached & ~np.isin(delivery, ("delivered", "read")), "delivered", delivery)
    sent = status == Status.SENT.value
    waiting = sent & ~done & ~failed
    action[done] = Action.DONE.value
    reason[done] = np.where(delivery[done] == "read", "read", "delivered")
    decided_by[done] = None
    action[waiting] = Action.WAIT.value
    reason[waiting] = np.where(
        pd.isna(delivery[waiting]),
        "accepted by Kaleyra, no receipt yet: wait for it",
        "accepted by Kaleyra, not yet delivered: wait for the receipt",
    )
    decided_by[waiting] = None
    held = status == Status.HOLDOUT.value  # an experiment's holdout: never to be sent
    action[held] = Action.FINAL.value
    reason[held] = "the experiment's holdout: kept from the message on purpose, never sent"
    decided_by[held] = None

    # Retries: when, and whether any is left.
    retry_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    retrying = np.flatnonzero(action == Action.RETRY.value)
    if len(retrying):
        _time_retries(
            retrying, rules, which, code, failed, results, found, receipts, moment,
            action, reason, retry_at,
        )  # fmt: skip

    out = results.drop(columns=[c for c in FOLLOW_UP_COLUMNS if c in results.columns])
    out["action"] = pd.array(action, dtype="string")
    out["retry_at"] = pd.DatetimeIndex(retry_at).tz_localize(UTC).astype(_TIME)
    out["reason"] = pd.array(reason, dtype="string")
    out["decided_by"] = pd.array(decided_by, dtype="string")
    out.attrs = dict(results.attrs)
    return out


def utc_moment(now: datetime | None = None) -> pd.Timestamp:
    """``now`` (default: now) as a UTC timestamp; a naive one is taken as UTC."""
    moment = pd.Timestamp(now if now is not None else datetime.now(UTC))
    return moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)


def _match(ids: pd.Series, receipts: pd.DataFrame) -> pd.DataFrame:
    """The receipt of each row's message (all NA where none), matched on
    :func:`~kwa_batch.receipts.store.message_keys` (``<uuid>`` and ``<uuid>:0`` alike): the
    first receipt of the message's key, and ``reached`` when any of its receipts says
    delivered or read."""
    columns = ["status", "error_code", "failed_at", "recipient"]
    keys = message_keys(ids)
    receipt_keys = message_keys(receipts["message_id"])
    # Only the receipts of these messages (a store holds other campaigns too): a lookup in a
    # few hundred thousand, not in millions.
    values = pa.array(keys.dropna().astype("str"), pa.string())
    wanted = pc.is_in(pa.array(receipt_keys.astype("str"), pa.string()), value_set=values)
    picked = wanted.to_numpy(zero_copy_only=False)
    mine = receipts.loc[picked].assign(_key=receipt_keys[picked].to_numpy())
    reached = mine["status"].isin(("delivered", "read")).fillna(False).to_numpy().copy()
    for name in ("delivered_at", "read_at"):
        if name in mine.columns:
            reached = reached | mine[name].notna().to_numpy()
    mine = mine.assign(_reached=reached)
    grouped = mine.groupby("_key", sort=False)
    firsts = mine.loc[~mine["_key"].duplicated().to_numpy(), ["_key", *columns]]
    table = firsts.set_index("_key")
    table["reached"] = grouped["_reached"].any()
    at = table.index.get_indexer(keys)
    found = table.reset_index(drop=True).reindex(at).reset_index(drop=True)  # -1: NA
    return found


def _rules(
    codes: np.ndarray, statuses: np.ndarray, http: np.ndarray
) -> tuple[list[Rule], np.ndarray]:
    """The rule of each row, and each row's position among the distinct rules (each code is
    looked up once). A code the table does not know is judged by what the row's status
    says: ``not_sent`` never reached Kaleyra (retry), ``unknown`` may have gone out (wait),
    an answer of HTTP 429, 401/403 or 5xx is that answer's own code; else ``final``."""
    which, distinct = pd.factorize(pd.Series(codes, dtype="object"), use_na_sentinel=False)
    rules = [rule_for(None if pd.isna(c) else c) for c in distinct]
    unknown = np.array([not (pd.isna(c) or c in RULES) for c in distinct], dtype=bool)
    odd = np.flatnonzero(unknown[which]) if len(which) else np.array([], dtype=np.int64)
    if len(odd):  # a few rows: judged by their status too
        kind = _kinds(statuses[odd], http[odd])
        pairs = pd.MultiIndex.from_arrays(
            [pd.Series(codes[odd], dtype="object"), pd.Series(kind, dtype="object")]
        )
        more, seen = pd.factorize(pairs)
        which = which.copy()
        which[odd] = len(rules) + more
        rules += [_rule(str(code), str(how)) for code, how in seen]
    return rules, which


def _kinds(statuses: np.ndarray, http: np.ndarray) -> np.ndarray:
    """What a row with a code the table does not know says of itself."""
    out = np.full(len(statuses), "", dtype=object)
    out[statuses == Status.NOT_SENT.value] = Code.NOTSENT.value
    out[statuses == Status.UNKNOWN.value] = Code.INFLIGHT.value
    answered = statuses == Status.FAILED.value
    out[answered & (http == 429)] = Code.HTTP429.value
    out[answered & np.isin(http, (401, 403))] = Code.HTTP401.value
    out[answered & (http >= 500)] = Code.HTTP5XX.value
    return out


def _rule(code: str, kind: str) -> Rule:
    given = rule_for(code)
    if not kind:
        return given
    like = rule_for(kind)
    return dataclasses.replace(
        like,
        code=code,
        meaning=f"{given.meaning}, on a row {_SAYS[kind]}",
        what_to_do=like.what_to_do,
    )


# What a row says of itself, by the code its status stands for.
_SAYS = {
    Code.NOTSENT.value: "never sent",
    Code.INFLIGHT.value: "that may have gone out",
    Code.HTTP429.value: "answered HTTP 429 (too fast)",
    Code.HTTP401.value: "whose credentials were refused",
    Code.HTTP5XX.value: "answered with a server error",
}


def _reason(rule: Rule) -> str:
    code = f"{rule.code}: " if rule.code else ""
    return f"{code}{rule.meaning}; {rule.what_to_do}"


def _time_retries(
    rows: np.ndarray,
    rules: list[Rule],
    which: np.ndarray,
    code: np.ndarray,
    failed: np.ndarray,
    results: pd.DataFrame,
    found: pd.DataFrame,
    receipts: pd.DataFrame,
    moment: pd.Timestamp,
    action: np.ndarray,
    reason: np.ndarray,
    retry_at: np.ndarray,
) -> None:
    """Fill ``retry_at`` of the rows to retry (or make them final: no try left, or a
    131049 to a US number), in place."""
    follow_ups = (
        pd.to_numeric(results[FOLLOW_UPS], errors="coerce").fillna(0).to_numpy()[rows]
        if FOLLOW_UPS in results.columns
        else np.zeros(len(rows))
    )
    tries = follow_ups.astype("int64") + 1
    # From when: the later of the failure's time and the row's own sent_at (a callback whose
    # timestamp is wrong, in the past, never brings a retry before a gap after the message
    # left); a row with no time at all is due now.
    sent_at = pd.to_datetime(results["sent_at"], errors="coerce", utc=True)
    times = np.stack(
        [
            pd.DatetimeIndex(found["failed_at"]).tz_localize(None).to_numpy()[rows],
            pd.DatetimeIndex(sent_at).tz_localize(None).to_numpy()[rows],
        ]
    ).astype("datetime64[us]")
    known_time = ~np.isnat(times)
    base = np.where(known_time, times, np.datetime64("1970-01-01", "us")).max(axis=0)
    timeless = ~known_time.any(axis=0)
    # How often the recipient met the code in the receipts lately (a per-user limit counts
    # every one of them; a row without a recipient in its receipt counts its own).
    in_receipts = np.flatnonzero(failed[rows])
    if len(in_receipts):
        seen = _times_met(
            found["recipient"].to_numpy(dtype=object, na_value=None)[rows][in_receipts],
            code[rows][in_receipts],
            base[in_receipts],
            [rules[which[r]] for r in rows[in_receipts].tolist()],
            receipts,
        )
        tries[in_receipts] = np.maximum(tries[in_receipts], seen)
    base[timeless] = np.datetime64(moment.tz_localize(None).to_datetime64(), "us")
    to = results["to"].astype("string").to_numpy(dtype=object, na_value="")[rows]
    row_rules = which[rows]
    for position in np.unique(row_rules).tolist():  # one pass per distinct code
        mine = np.flatnonzero(row_rules == position)
        rule = rules[position]
        rule_code = rule.code
        if rule_code == _MARKETING_LIMIT:
            us = np.fromiter((_in_us(t) for t in to[mine]), dtype=bool, count=len(mine))
            action[rows[mine[us]]] = Action.FINAL.value
            reason[rows[mine[us]]] = f"{rule.code}: {US_MARKETING_PAUSED}"
            mine = mine[~us]
        k = tries[mine]
        over = k > len(rule.gaps)
        spent = rows[mine[over]]
        action[spent] = Action.FINAL.value
        reason[spent] = (
            f"{_reason(rule)}; retried {len(rule.gaps)} time(s) already: no more retries"
        )
        mine, k = mine[~over], k[~over]
        gaps = np.array([np.timedelta64(g, "us") for g in rule.gaps], dtype="timedelta64[us]")
        retry_at[rows[mine]] = base[mine] + np.where(
            timeless[mine], np.timedelta64(0, "us"), gaps[k - 1]
        )
        if any(rule.gaps):
            reason[rows[mine]] = [
                f"{_reason(rule)} (try {t} of {len(rule.gaps)})" for t in k.tolist()
            ]


def _times_met(
    recipients: np.ndarray,
    codes: np.ndarray,
    at: np.ndarray,
    rules: list[Rule],
    receipts: pd.DataFrame,
) -> np.ndarray:
    """For each failure (a recipient, a code, when), how many failures with that code the
    recipient met in the receipts up to then, within twice the rule's retry gaps (a
    131049 of last year starts no count today); at least 1."""
    mine = pd.DataFrame(
        {
            "pos": np.arange(len(codes)),
            "recipient": pd.array(recipients, dtype="string"),
            "error_code": pd.array(codes, dtype="string"),
            "at": pd.DatetimeIndex(at).tz_localize(UTC).astype(_TIME),
            "span": pd.to_timedelta([2 * sum(r.gaps, timedelta()) for r in rules]),
        }
    ).dropna(subset=["recipient", "error_code"])
    counted = np.ones(len(codes), dtype="int64")
    if mine.empty:
        return counted
    failures = receipts["status"].eq("failed").fillna(False).to_numpy()
    met = receipts.loc[failures, ["recipient", "error_code", "failed_at"]]
    met = met[
        met["error_code"].isin(mine["error_code"].unique()).fillna(False).to_numpy()
        & met["recipient"].isin(mine["recipient"].unique()).fillna(False).to_numpy()
    ].astype({"recipient": "string", "error_code": "string"})
    joined = mine.merge(met, on=["recipient", "error_code"], how="inner")
    inside = joined["failed_at"].le(joined["at"]) & joined["failed_at"].gt(
        joined["at"] - joined["span"]
    )
    per_row = joined[inside.fillna(False).to_numpy()].groupby("pos").size()
    counted[per_row.index.to_numpy()] = np.maximum(per_row.to_numpy(), 1)
    return counted


@lru_cache(maxsize=65536)
def _in_us(number: str) -> bool:
    """Whether an E.164 number is a US number (not Canada or the Caribbean, which share
    +1)."""
    if not number.startswith("+1"):
        return False
    import phonenumbers

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) == "US"
    except phonenumbers.NumberParseException:
        return False
