"""The verdict of :func:`kwa_batch.validate`: :class:`ValidationReport`, and how the
problems found column by column become its long-form ``errors`` frame.

Internal to validation except :class:`ValidationReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pc

from ..errors import ConfigurationError, KwaBatchError, ValidationError, describe_code
from ..fields import API_COLUMNS
from ..loading.recipients import LineNumbers
from ..results import ARM_COLUMN, HOLDOUT_ARM
from ..tables import Sheet, write_csv, write_xlsx
from .arms import arm_cells

__all__ = ["ValidationReport"]

_ERROR_COLUMNS = ["row", "line", "column", "value", "check", "error_code", "message"]
# Within a row, problems are listed column by column in the API's order (a row-level one
# first), then check by check in this order.
_COLUMN_ORDER = {name: rank for rank, name in enumerate(API_COLUMNS, start=1)}
_CHECK_ORDER = {
    name: rank
    for rank, name in enumerate(
        [
            "row_shape",
            "phone_mangled",
            "phone_several",
            "phone_valid",
            "sender_valid",
            "type_known",
            "channel_known",
            "value_required",
            "body_required",
            "template_required",
            "no_html",
            "control_chars",
            "body_control_chars",
            "body_length",
            "ref_length",
            "params_format",
            "params_empty",
            "lang_code_format",
            "url",
            "window_open",
            "duplicate",
        ]
    )
}


@dataclass
class ValidationReport:
    """The verdict on every row: which will be sent, which will not, and why.

    Attributes:
        data: the input frame, as given.
        valid: rows that pass, as they will be sent: ``to``/``from`` normalised to E.164,
            ``type`` filled, campaign-wide settings and built ``body``/``params`` filled in;
            other columns as given.
        invalid: rows that fail, as given, with ``error_code`` (the first) and ``errors``
            (every reason) columns.
        errors: one line per problem: ``row`` (the input's index label), ``line`` (in the
            file), ``column``, ``value``, ``check``, ``error_code``, ``message``.
        default_region, sender: the settings the rows were checked with.
        settings: every setting ``validate`` was given (as text and counts, for records).
        arguments: the arguments themselves, to validate the same data again with another
            sender (see :func:`kwa_batch.send`).
        live_opt_outs: the suppression sources that change while a campaign runs (receipts
            stores): :func:`kwa_batch.send` reads them again while it sends.
        sends_with: what :meth:`send` calls: :func:`kwa_batch.send`, attached by
            :func:`kwa_batch.validate` (validation never imports sending).
    """

    data: pd.DataFrame
    valid: pd.DataFrame
    invalid: pd.DataFrame
    errors: pd.DataFrame
    default_region: str | None = None
    sender: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    arguments: dict[str, Any] = field(default_factory=dict, repr=False)
    live_opt_outs: tuple[Any, ...] = ()
    sends_with: Callable[..., pd.DataFrame] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when every row is valid."""
        return bool(self.invalid.empty)

    @property
    def holdout(self) -> pd.Index:
        """The valid rows of an experiment's holdout (an ``arm`` column saying
        ``holdout``, in any case, :func:`kwa_batch.assign`): checked as the others, never
        sent."""
        if ARM_COLUMN not in self.valid.columns:
            return self.valid.index[:0]
        held = arm_cells(self.valid[ARM_COLUMN]).eq(HOLDOUT_ARM).fillna(False)
        return self.valid.index[held.to_numpy(dtype=bool)]

    @property
    def to_send(self) -> pd.DataFrame:
        """The valid rows that a send sends: all but the :attr:`holdout`."""
        held = self.holdout
        return self.valid.drop(index=held) if len(held) else self.valid

    def send(self, client: Any, **kwargs: Any) -> pd.DataFrame:
        """Send the valid rows: :func:`kwa_batch.send` on this report.

        The rejected rows stay in the results, so the chain
        ``df.kwa.validate(...).send(client)`` returns one result per input row.

        Raises:
            ConfigurationError: the report was made by the validation layer's own
                ``validate`` (``kwa_batch.validation``), which cannot send: use
                :func:`kwa_batch.validate`, or ``kb.send(report, client)``.
        """
        if self.sends_with is None:
            raise ConfigurationError(
                "this report was made by kwa_batch.validation.validate, which does not "
                "send: make it with kb.validate(...), or send it with kb.send(report, client)"
            )
        return self.sends_with(self, client, **kwargs)

    def preview(self, rows: int = 3) -> pd.DataFrame:
        """The first valid messages as their recipients will read them: template bodies
        with the parameters filled in (with the catalogue validate was given)."""
        from .preview import render_messages

        return render_messages(self.valid, self.arguments.get("templates"), rows)

    def summary(self) -> pd.DataFrame:
        """Rows with each error code, most frequent first, with what it means and the fix."""
        if self.errors.empty:
            return pd.DataFrame(
                {"rows": pd.Series(dtype="int64"), "meaning": pd.Series(dtype="str")}
            ).rename_axis("error_code")
        counts = self.errors.groupby("error_code")["row"].nunique().rename("rows")
        out = counts.to_frame()
        out["meaning"] = pd.array([describe_code(c) for c in out.index], dtype="str")
        return out.sort_values("rows", ascending=False, kind="stable")

    def raise_for_errors(self) -> None:
        """Raise :class:`ValidationError` describing the first problems, if any row is invalid."""
        if self.ok:
            return
        first = self.errors.head(3)
        lines = "; ".join(_describe(row) for row in first.itertuples(index=False))
        more = len(self.errors) - len(first)
        tail = f" (and {more} more)" if more > 0 else ""
        raise ValidationError(f"{len(self.invalid)} invalid row(s): {lines}{tail}")

    def save(self, path: str | Path) -> Path:
        """Write the problems to ``path``: ``.csv`` (one line per problem) or ``.xlsx``
        (sheets ``Problems`` and ``Summary``); cells are text, never formulas.

        Raises:
            KwaBatchError: the extension is not supported or the file cannot be written.
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in (".csv", ".xlsx"):
            raise KwaBatchError(f"cannot write a report to {target.name!r}: use .csv or .xlsx")
        problems = self.errors.copy()
        problems["fix"] = pd.array([describe_code(c) for c in problems["error_code"]], "str")
        summary = self.summary().reset_index()
        if suffix == ".csv":
            return write_csv(problems, target, phones=("value",))  # numbers as written
        # On paper: where, what and how to fix it first; the 0-based row hidden (a reader
        # has the file's line).
        first = ["line", "error_code", "column", "value", "message", "fix"]
        order = [c for c in first if c in problems.columns]
        problems = problems[[*order, *(c for c in problems.columns if c not in order)]]
        sheets = [Sheet("Problems", problems, hidden=["row"]), Sheet("Summary", summary)]
        return write_xlsx(target, sheets)

    def __repr__(self) -> str:
        return (
            f"<ValidationReport: {len(self.data)} rows, {len(self.valid)} valid, "
            f"{len(self.invalid)} invalid>"
        )

    def _repr_html_(self) -> str:
        import html

        head = (
            f"<p><b>ValidationReport</b>: {len(self.data):,} rows, "
            f"<span style='color:#1a7f37'>{len(self.valid):,} valid</span>, "
            f"<span style='color:#cf222e'>{len(self.invalid):,} invalid</span></p>"
        )
        if self.errors.empty:
            return head
        summary = self.summary()
        rows = "".join(
            f"<tr><td><code>{html.escape(str(code))}</code></td><td>{int(r['rows']):,}</td>"
            f"<td style='text-align:left'>{html.escape(str(r['meaning']))}</td></tr>"
            for code, r in summary.iterrows()
        )
        by_code = (
            "<table><thead><tr><th>error_code</th><th>rows</th><th>meaning and fix</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
        )
        shown = self.errors.head(20)
        table = shown.to_html(index=False, escape=True, na_rep="")
        more = (
            f"<p>… and {len(self.errors) - len(shown):,} more problems (see <code>.errors</code>)"
            "</p>"
            if len(self.errors) > len(shown)
            else ""
        )
        return f"{head}{by_code}<p><b>First problems</b></p>{table}{more}"


def _describe(row: Any) -> str:
    where = f"line {row.line}" if pd.notna(row.line) else f"row {row.row}"
    value = "" if pd.isna(row.value) else str(row.value)
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"{where}, column {row.column!r} = {shown!r}: {row.message}"


@dataclass
class Problems:
    """Failures collected as positional parts, assembled into the errors frame at the end."""

    parts: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        positions: np.ndarray[Any, Any],
        column: str,
        check: str,
        code: str | pd.Series,
        message: str | pd.Series,
        values: pd.Series,
    ) -> None:
        """Record failures at ``positions`` (0…n-1) of one ``check`` on one ``column``;
        ``code`` and ``message`` are one text for all or one per position."""
        if len(positions) == 0:
            return
        self.parts.append(
            {
                "pos": np.asarray(positions, dtype=np.int64),
                "column": column,
                "check": check,
                "code": code,
                "message": message,
                "value": values,
            }
        )

    def mask(self, n: int) -> np.ndarray[Any, Any]:
        """Which of ``n`` rows have a problem."""
        out = np.zeros(n, dtype=bool)
        for part in self.parts:
            out[part["pos"]] = True
        return out


def _text_chunks(value: str | pd.Series, n: int) -> list[pa_arrow.Array]:
    """``value`` (one text for ``n`` rows, or a column) as large_string chunks, uncopied."""
    if isinstance(value, str):
        return [pa_arrow.repeat(pa_arrow.scalar(value, type=pa_arrow.large_string()), n)]
    array = pa_arrow.array(value.astype("str").array)
    chunks = array.chunks if isinstance(array, pa_arrow.ChunkedArray) else [array]
    return [chunk.cast(pa_arrow.large_string()) for chunk in chunks]


def assemble(problems: Problems, df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """The long-form errors frame, in row order, then column and check order; and the
    position of each of its lines' rows."""
    if not problems.parts:
        out = pd.DataFrame({c: pd.Series(dtype="str") for c in _ERROR_COLUMNS})
        out["row"] = pd.Series(df.index[:0])
        out["line"] = pd.Series(dtype="Int64")
        return out, np.zeros(0, dtype=np.int64)
    pos = np.concatenate([p["pos"] for p in problems.parts])
    rank = np.concatenate(
        [
            np.full(
                len(p["pos"]),
                _COLUMN_ORDER.get(p["column"], 0 if p["column"] == "*" else 99) * 100
                + _CHECK_ORDER.get(p["check"], 99),
            )
            for p in problems.parts
        ]
    )
    order = np.lexsort((rank, pos))
    in_order = bool((order == np.arange(len(order))).all())
    taken = pa_arrow.array(order)

    def column(key: str) -> Any:
        chunks = [c for p in problems.parts for c in _text_chunks(p[key], len(p["pos"]))]
        joined = pa_arrow.chunked_array(chunks, type=pa_arrow.large_string())
        return pd.array(joined if in_order else joined.take(taken), dtype="str")

    positions = pos[order]
    labels = df.index.take(positions)
    out = pd.DataFrame(
        {
            "row": labels,
            "line": file_lines(df, labels),
            "column": column("column"),
            "value": column("value"),
            "check": column("check"),
            "error_code": column("code"),
            "message": column("message"),
        }
    )
    return out, positions


def file_lines(df: pd.DataFrame, labels: pd.Index) -> Any:
    """The file line of each of ``labels`` (nullable integers; NA when unknown)."""
    lines = df.attrs.get("line_numbers")
    if isinstance(lines, LineNumbers):
        return lines.lookup(labels)
    return pd.array([None] * len(labels), dtype="Int64")


def row_reasons(errors: pd.DataFrame, positions: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """Per invalid row, in row order: its first code and every reason, joined with "; "."""
    if not len(positions):
        return pd.array([], dtype="str"), pd.array([], dtype="str")
    starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
    ends = np.r_[starts[1:], len(positions)]
    text = errors["column"] + ": " + errors["message"]
    codes = pa_arrow.array(errors["error_code"].array)
    joined = pa_arrow.array(text.array)
    if len(starts) < len(positions):
        firsts = pa_arrow.array(starts)
        codes, joined = codes.take(firsts), joined.take(firsts)
    several = np.flatnonzero(ends - starts > 1)
    if len(several):
        spans = [np.arange(starts[i], ends[i]) for i in several]
        values = pa_arrow.array(text.array).take(pa_arrow.array(np.concatenate(spans)))
        flat = iter(values.to_pylist())
        merged = ["; ".join(next(flat) for _ in span) for span in spans]
        mask = np.zeros(len(starts), dtype=bool)
        mask[several] = True
        joined = pc.replace_with_mask(
            joined, pa_arrow.array(mask), pa_arrow.array(merged, type=joined.type)
        )
    return pd.array(codes, dtype="str"), pd.array(joined, dtype="str")
