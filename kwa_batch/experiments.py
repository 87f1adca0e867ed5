"""Experiments: recipients split into arms and a holdout (:func:`assign`), and the arms
compared on what became of their messages (:func:`compare`).

**Assignment.** Each recipient gets a number ``u`` in [0, 1) from the SHA-256 of the seed
and its normalised number (E.164; the value as written for a number validation would
refuse), so the same recipient draws the same ``u`` whatever the row order, in every run
with the same seed; rows of one recipient share their arm. By default each arm is read from
``u`` alone: a recipient's arm depends only on the seed, its number and the arms and
shares asked, so it keeps its arm as the list grows, when the list is assigned in parts
(a file read in chunks) and when a run resumes; the shares hold statistically, as a
binomial draw (10,000 recipients in 45/45/10 land within a point or two). ``balanced=True``
is for a fixed list: the recipients of each stratum (all of them, or one country or value
of ``by``) are ranked by ``u`` and cut into consecutive blocks of the shares asked, from a
start the seed and the stratum draw, so each arm gets its share of every stratum to within
one recipient; the arm of a recipient then depends on who else is in the list (adding
recipients may move others to another arm).

**Comparison.** :func:`compare` counts, per arm, its rows ``n`` (rejected rows left out:
their data would have been refused in any arm; for ``delivered``, ``read`` and ``replied``
the rows sent alone, as a message not sent or of unknown fate cannot be read) and
``successes`` of a metric, and tests
each arm against the first (the control): ``diff`` of the rates, its 95% interval and
``p_value``. The rule: when every expected count of the 2×2 table (arm and control,
success and not) is at least 5, the two-proportion z test (pooled; the same p as
``scipy.stats.chi2_contingency(..., correction=False)``) and the Wald interval
(unpooled); otherwise Fisher's exact test (``scipy.stats.fisher_exact``, two-sided) and
Newcombe's hybrid score interval. The ``test`` column names the one used. ``lift`` is an
arm's rate over the holdout's, less 1 (``0.2``: 20% more than without the message); the
holdout's rate is counted for a metric that can happen without a message (a boolean
column such as ``converted``); ``delivered``, ``read`` and ``replied`` cannot, so there it
is NA and ``note`` says why.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ConfigurationError, InputError, KwaBatchError
from .pricing import UNKNOWN_REGION, regions_of
from .receipts.delivery import merge_receipts
from .receipts.replies import replies
from .receipts.store import CallbackStore
from .results import ARM_COLUMN, HOLDOUT_ARM, Status, require_columns
from .validation.arms import arm_cells
from .validation.phones import normalize_phones

__all__ = ["COMPARE_COLUMNS", "MESSAGE_METRICS", "assign", "compare"]

#: The columns of :func:`compare`'s frame, in order.
COMPARE_COLUMNS = (
    "n", "successes", "rate", "diff", "ci_low", "ci_high", "p_value", "test", "lift", "note",
)  # fmt: skip
#: The metrics only a message can bring about: undefined for the holdout.
MESSAGE_METRICS = ("delivered", "read", "replied")
#: The smallest expected count of the 2×2 table for the z test; below, Fisher's exact.
MIN_EXPECTED = 5.0
_Z = float(stats.norm.ppf(0.975))
_BY_COUNTRY = "country"


def assign(
    df: pd.DataFrame,
    arms: Sequence[str] | Mapping[str, float] = ("A", "B"),
    *,
    holdout: float = 0.1,
    seed: int | str = 7,
    by: str | None = None,
    balanced: bool = False,
    default_region: str | None = None,
) -> pd.DataFrame:
    """Split the recipients into arms and a holdout: ``df`` with an ``arm`` column.

    Args:
        df: the recipients (a ``to`` column), as :func:`kwa_batch.load_recipients` reads
            them.
        arms: the arms' names, as text (equal shares), or a mapping of name to weight
            (``{"A": 2, "B": 1}``: A twice B's share of what the holdout leaves; numpy's
            numbers too).
        holdout: the share of recipients never sent anything (status ``holdout``), in
            [0, 1); 0 for none.
        seed: the experiment's seed (a whole number, ``7.0`` read as ``7``, or a text):
            the same seed gives every recipient the same arm.
        by: stratify (with ``balanced=True``): ``"country"`` (each number's ISO region)
            or a column of ``df``; each stratum is cut exactly in the shares asked.
        balanced: cut each stratum exactly in its shares, for a fixed list (adding
            recipients may move others); the default reads each recipient's arm from its
            hash alone, stable across runs and a growing list (see the module).
        default_region: how to read numbers written without ``+``, as for
            :func:`kwa_batch.validate`.

    Returns:
        A copy of ``df`` with ``arm`` (text: an arm's name, or ``"holdout"``); an
        ``arm`` column already there is replaced.

    Raises:
        ConfigurationError: arms, weights, holdout or ``by`` cannot be used.
        InputError: there is no ``to`` column.

    Example:
        >>> df = pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(1000)]})
        >>> assign(df, ["A", "B"], holdout=0.1, seed=7)["arm"].value_counts().to_dict()
        {'A': 442, 'B': 440, 'holdout': 118}
    """
    names, shares = _shares(arms, holdout)
    seed = _seed(seed)
    if by is not None and not balanced:
        raise ConfigurationError(
            f"assign: by={by!r} cuts each stratum exactly: pass balanced=True as well (for a "
            "fixed list: adding recipients may then move others), or leave by out"
        )
    if "to" not in df.columns:
        raise InputError(
            f"assign: no 'to' column (columns: {', '.join(map(str, df.columns))}): name "
            "the column of phone numbers 'to'"
        )
    key = _recipients(df["to"], default_region)
    # Each recipient once (its rows share its arm), with the stratum of its first row.
    codes, uniques = pd.factorize(key)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    keys = pd.Series(np.asarray(uniques, dtype=object))
    strata = _strata(df, key, by).to_numpy(dtype=object)[first]
    u = _draws(keys, seed)
    edges = np.cumsum(shares)
    edges[-1] = 1.0
    if balanced:
        position = np.empty(len(keys))
        for stratum, rows in pd.Series(strata).groupby(strata, sort=False).indices.items():
            order = np.argsort(u[rows], kind="stable")
            if (np.diff(u[rows][order]) == 0).any():  # a tie of 64 bits: broken by the key
                order = np.lexsort((keys.to_numpy()[rows], u[rows]))
            start = _draws(pd.Series([f"stratum|{stratum}"]), seed)[0]
            ranks = np.empty(len(rows))
            ranks[order] = np.arange(len(rows))
            position[rows] = (ranks + start) / len(rows)
    else:
        position = u
    chosen = np.minimum(np.searchsorted(edges, position, side="right"), len(names) - 1)
    arms_of_rows = np.asarray(names, dtype=object)[chosen][codes]
    out = df.copy()
    out[ARM_COLUMN] = pd.array(arms_of_rows, dtype="string")
    return out


def _shares(arms: Sequence[str] | Mapping[str, float], holdout: float) -> tuple[list[str], Any]:
    """The arms' names (holdout last) and their shares, checked."""
    if isinstance(arms, str):
        raise ConfigurationError(
            f"arms={arms!r}: give a list of names (arms=['A', 'B']) or name → weight"
        )
    weights = dict(arms) if isinstance(arms, Mapping) else dict.fromkeys(arms, 1.0)
    for name in weights:
        if not isinstance(name, str):
            raise ConfigurationError(
                f"arms: {name!r} is not text: name each arm with text, e.g. {str(name)!r}"
            )
    names = list(weights)
    if not names:
        raise ConfigurationError("arms=[]: give at least one arm, e.g. arms=['A', 'B']")
    if len(set(names)) < len(names) or len(names) < len(list(arms)):
        raise ConfigurationError(f"arms={list(arms)!r}: each arm's name once")
    for name in names:
        if not name.strip() or name.strip().lower() == HOLDOUT_ARM or name != name.strip():
            raise ConfigurationError(
                f"arms: {name!r} cannot name an arm (the holdout is asked with holdout=): "
                "give each arm a name of its own"
            )
    values: list[float] = []
    for name, weight in weights.items():
        if isinstance(weight, bool | np.bool_) or not isinstance(weight, numbers.Real):
            raise ConfigurationError(f"arms: weight {weight!r} of {name!r} is not a number")
        if not math.isfinite(weight) or weight <= 0:
            raise ConfigurationError(f"arms: weight {weight!r} of {name!r}: give a positive number")
        values.append(float(weight))
    if isinstance(holdout, bool | np.bool_) or not isinstance(holdout, numbers.Real):
        raise ConfigurationError(f"holdout={holdout!r}: give a share in [0, 1), e.g. 0.1")
    if not 0 <= holdout < 1:
        raise ConfigurationError(
            f"holdout={holdout!r}: give a share in [0, 1), e.g. 0.1 for 10% (0 for none)"
        )
    total = sum(values)
    shares = [w / total * (1 - holdout) for w in values]
    if holdout > 0:
        names.append(HOLDOUT_ARM)
        shares.append(float(holdout))
    return names, np.array(shares)


def _seed(seed: object) -> int | str:
    """The seed as its hash reads it: ``7``, ``7.0`` and ``np.int64(7)`` are one seed."""
    if isinstance(seed, str):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_):
        return int(seed)
    if isinstance(seed, numbers.Real) and not isinstance(seed, bool | np.bool_):
        whole = float(seed)
        if whole.is_integer():
            return int(whole)
    raise ConfigurationError(
        f"seed={seed!r}: give a whole number or a text (seed=7, seed='spring-2026')"
    )


def _recipients(to: pd.Series, region: str | None) -> pd.Series:
    """Each row's recipient: its E.164 number, else the value as written (trimmed)."""
    phones = normalize_phones(to, region)
    written = to.astype("string").str.strip()
    return phones["e164"].astype("string").fillna(written).fillna("").astype("str")


def _strata(df: pd.DataFrame, key: pd.Series, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series("all", index=df.index, dtype="str")
    if by == _BY_COUNTRY and _BY_COUNTRY not in df.columns:
        own, _ = regions_of(key.where(key.str.startswith("+")))
        return own.where(own != UNKNOWN_REGION, "(unknown)")
    if by not in df.columns:
        raise ConfigurationError(
            f"by={by!r}: no such column; stratify by 'country' or a column of the frame "
            f"({', '.join(map(str, df.columns))})"
        )
    return df[by].astype("string").fillna("(none)").astype("str")


def _draws(keys: pd.Series, seed: int | str) -> np.ndarray[Any, Any]:
    """Each key's number in [0, 1): the first 8 bytes of sha256(seed|key)."""
    prefix = f"{seed}|"
    sha256 = hashlib.sha256
    digests = b"".join(sha256(f"{prefix}{key}".encode()).digest()[:8] for key in keys.tolist())
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64


def compare(
    results: pd.DataFrame,
    metric: str = "read",
    *,
    receipts: str | Path | CallbackStore | None = None,
    arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare an experiment's arms on a metric: counts, rates, the difference against the
    first arm with its 95% interval and p-value, and the lift over the holdout.

    Args:
        results: the results of a send of :func:`assign`'s frame (an ``arm`` column), with
            the receipts merged (:func:`kwa_batch.merge_receipts`; :func:`kwa_batch.replies`
            joined for ``replied``), or give ``receipts=``.
        metric: ``delivered`` (read ones included), ``read``, ``replied``, or a yes/no
            column of ``results`` (``converted``: a fact from elsewhere, joined in): bool,
            0/1 ints or 1.0/0.0 floats, or true/false (yes/no) text; a missing value is
            refused (fill it: ``fillna(0)`` where missing means no conversion).
        receipts: the callback store, to merge the receipts (and the replies) here.
        arms: the arms in order, the first the control, never the holdout (default: the
            arms' names sorted, the holdout last).

    Returns:
        A frame indexed by arm with :data:`COMPARE_COLUMNS`: ``n``, ``successes``, ``rate``,
        ``diff`` (against the first arm), ``ci_low`` and ``ci_high`` (its 95% interval),
        ``p_value``, ``test`` (``z`` or ``fisher``: the rule is in the module),
        ``lift`` (over the holdout) and ``note`` (why a value is NA).

    Raises:
        KwaBatchError: no ``arm`` column, an unknown metric, a metric column with a value
            that is no yes or no, or none, receipts that were not merged, or the holdout
            asked as the control.

    Example:
        >>> merged = kb.merge_receipts(results, "receipts.db")  # doctest: +SKIP
        >>> kb.compare(merged, "read")  # doctest: +SKIP
    """
    require_columns(results, ("status",))
    if ARM_COLUMN not in results.columns:
        raise KwaBatchError(
            "compare: the results have no arm column: split the recipients with "
            "kb.assign(df) before sending (results of that frame carry it)"
        )
    frame = _with_metric(results, metric, receipts)
    status = frame["status"].astype("string")
    arm = arm_cells(frame[ARM_COLUMN])
    counted = status.ne(Status.REJECTED).fillna(True)
    message_only = metric in MESSAGE_METRICS
    if message_only:  # a message's fate: of the rows sent (the holdout's rows as they are)
        counted = counted & (status.eq(Status.SENT) | arm.eq(HOLDOUT_ARM)).fillna(False)
    success = _successes(frame, metric, counted)
    order = _order(arm, arms)
    out = pd.DataFrame(index=pd.Index(order, name=ARM_COLUMN))
    n = [int((counted & arm.eq(a).fillna(False)).sum()) for a in order]
    k = [int((success & counted & arm.eq(a).fillna(False)).sum()) for a in order]
    rates = [k_i / n_i if n_i else math.nan for k_i, n_i in zip(k, n, strict=True)]
    notes = ["" for _ in order]
    shown_k: list[Any] = list(k)
    rows: list[tuple[float, float, float, float, Any]] = []
    for i, name in enumerate(order):
        if name == HOLDOUT_ARM and message_only:  # no message, so no such success
            rates[i], shown_k[i] = math.nan, pd.NA
            notes[i] = f"{metric} needs a message: undefined for the holdout"
        if i == 0:
            rows.append((0.0, math.nan, math.nan, math.nan, pd.NA))
            notes[i] = notes[i] or "the control: the other arms are compared with it"
        elif name == HOLDOUT_ARM or not n[i] or not n[0]:
            rows.append((math.nan, math.nan, math.nan, math.nan, pd.NA))
        else:
            rows.append(_two_proportions(k[i], n[i], k[0], n[0]))
    out["n"] = pd.array(n, dtype="Int64")
    out["successes"] = pd.array(shown_k, dtype="Int64")
    out["rate"] = pd.array(rates, dtype="Float64")
    for position, column in enumerate(("diff", "ci_low", "ci_high", "p_value")):
        out[column] = pd.array([row[position] for row in rows], dtype="Float64")
    out["test"] = pd.array([row[4] for row in rows], dtype="string")
    out["lift"] = pd.array(_lifts(order, rates, notes, metric), dtype="Float64")
    if message_only:
        for i, name in enumerate(order):
            if name != HOLDOUT_ARM:
                said = f"n: the rows sent ({metric} needs a message; not sent, unknown left out)"
                notes[i] = f"{notes[i]}; {said}" if notes[i] else said
    out["note"] = pd.array([note or pd.NA for note in notes], dtype="string")
    out.attrs["metric"] = metric
    return out


def _with_metric(
    results: pd.DataFrame, metric: str, receipts: str | Path | CallbackStore | None
) -> pd.DataFrame:
    """``results`` with what the metric needs, merged from ``receipts`` when given."""
    if metric in ("delivered", "read"):
        if receipts is not None:
            return merge_receipts(results, receipts)
        if "delivery_status" not in results.columns:
            raise KwaBatchError(
                f"compare(metric={metric!r}): the results have no delivery_status: merge "
                "the receipts first (kb.merge_receipts(results, store)) or give receipts="
            )
        return results
    if metric == "replied":
        if receipts is not None:
            return results.drop(columns=["replied"], errors="ignore").join(
                replies(results, receipts)[["replied"]]
            )
        if "replied" not in results.columns:
            raise KwaBatchError(
                "compare(metric='replied'): the results have no replied column: join "
                "kb.replies(results, store) first, or give receipts="
            )
        return results
    if metric not in results.columns:
        raise KwaBatchError(
            f"compare(metric={metric!r}): give delivered, read, replied, or a yes/no column "
            f"of the results (columns: {', '.join(map(str, results.columns))})"
        )
    return results


def _successes(frame: pd.DataFrame, metric: str, counted: pd.Series) -> pd.Series:
    """Each row's success on ``metric``; a value that is no yes or no, or none, in a row
    ``counted`` is refused in one line."""
    if metric == "delivered":  # read ones included, and a "failed" after "delivered"
        delivered = frame["delivery_status"].isin(("delivered", "read")).fillna(False)
        for name in ("delivered_at", "read_at"):
            if name in frame.columns:
                delivered = delivered | frame[name].notna()
        return delivered.astype(bool)
    if metric == "read":
        read = frame["delivery_status"].eq("read").fillna(False)
        if "read_at" in frame.columns:
            read = read | frame["read_at"].notna()
        return read.astype(bool)
    column = frame[metric]
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        values = column.astype("Float64")  # bool, 0/1 ints, 1.0/0.0 floats (a left join's)
        missing = values.isna()
        bad = ~missing & ~values.isin((0.0, 1.0))
        success = values.eq(1.0)
    else:
        text = column.astype("string").str.strip().str.lower()
        missing = text.isna() | text.eq("")
        bad = ~missing & ~text.isin(_YES + _NO)
        success = text.isin(_YES)
    mask = counted.to_numpy(dtype=bool)
    if bool((bad.to_numpy(dtype=bool, na_value=False) & mask).any()):
        row = column[bad.to_numpy(dtype=bool, na_value=False) & mask]
        raise KwaBatchError(
            f"compare(metric={metric!r}): row {row.index[0]!r} holds {row.tolist()[0]!r}, not a "
            "yes or no: give True/False (or 1/0, yes/no) in the column"
        )
    if bool((missing.to_numpy(dtype=bool, na_value=True) & mask).any()):
        row = column[missing.to_numpy(dtype=bool, na_value=True) & mask]
        raise KwaBatchError(
            f"compare(metric={metric!r}): row {row.index[0]!r} has no value: fill the column "
            f"first, e.g. results[{metric!r}].fillna(0) where missing means no conversion"
        )
    return success.fillna(False).astype(bool)


_YES = ("true", "1", "1.0", "yes")
_NO = ("false", "0", "0.0", "no")


def _order(arm: pd.Series, arms: Sequence[str] | None) -> list[str]:
    present = [str(a) for a in arm.dropna().unique()]
    if arms is not None:
        if len(arms) and str(arms[0]) == HOLDOUT_ARM:
            raise KwaBatchError(
                "compare(arms=[...]): the holdout cannot be the control (it is the baseline of "
                "lift): put an arm first, e.g. arms=['A', 'B']"
            )
        missing = [a for a in arms if a not in present]
        if missing:
            raise KwaBatchError(
                f"compare(arms=...): no row of arm {missing[0]!r} (arms: {', '.join(present)})"
            )
        listed = [str(a) for a in arms]
        rest = [a for a in present if a not in listed and a != HOLDOUT_ARM]
        order = [*listed, *sorted(rest)]
    else:
        order = sorted(a for a in present if a != HOLDOUT_ARM)
    if HOLDOUT_ARM in present and HOLDOUT_ARM not in order:
        order.append(HOLDOUT_ARM)
    if not [a for a in order if a != HOLDOUT_ARM]:
        raise KwaBatchError("compare: no row belongs to an arm (only the holdout, or none)")
    return list(order)


def _two_proportions(k1: int, n1: int, k0: int, n0: int) -> tuple[float, float, float, float, str]:
    """Arm (k1 of n1) against control (k0 of n0): diff, its 95% interval, p, the test."""
    p1, p0 = k1 / n1, k0 / n0
    diff = p1 - p0
    total = k1 + k0
    expected = (
        np.outer([n1, n0], [total, n1 + n0 - total]) / (n1 + n0) if n1 + n0 else np.zeros((2, 2))
    )
    if float(expected.min()) >= MIN_EXPECTED:
        pooled = total / (n1 + n0)
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        p_value = float(2 * stats.norm.sf(abs(diff) / se0)) if se0 else 1.0
        se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        return diff, diff - _Z * se, diff + _Z * se, p_value, "z"
    table = [[k1, n1 - k1], [k0, n0 - k0]]
    p_value = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    l1, u1 = _wilson(k1, n1)
    l0, u0 = _wilson(k0, n0)
    low = diff - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return diff, low, high, p_value, "fisher"


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval of k successes in n."""
    p = k / n
    denominator = 1 + _Z**2 / n
    centre = (p + _Z**2 / (2 * n)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _lifts(order: list[str], rates: list[float], notes: list[str], metric: str) -> list[Any]:
    """Each arm's rate over the holdout's, less 1; NA with the reason where undefined."""
    if HOLDOUT_ARM not in order:
        return [math.nan] * len(order)
    base = rates[order.index(HOLDOUT_ARM)]
    out: list[Any] = []
    for i, name in enumerate(order):
        if name == HOLDOUT_ARM:
            out.append(math.nan)
            if not notes[i]:
                notes[i] = "the holdout: the baseline of lift"
        elif metric in MESSAGE_METRICS:
            out.append(math.nan)
            if not notes[i]:
                notes[i] = f"no lift: {metric} needs a message, so the holdout has no rate"
        elif math.isnan(base) or base == 0:
            out.append(math.nan)
            if not notes[i]:
                notes[i] = "no lift: the holdout's rate is 0"
        else:
            out.append(rates[i] / base - 1)
    return out
