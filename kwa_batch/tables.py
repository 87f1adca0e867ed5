"""Frames to the files people open in Excel or LibreOffice: one writer, one safety rule.

Both the results (:func:`kwa_batch.export_results`) and the validation report
(:meth:`kwa_batch.ValidationReport.save`) are written here, so they share:

- **one formula-injection rule** (OWASP): in a CSV, a text cell that starts with
  ``= + - @``, a tab or a carriage return gets a leading ``'`` — unless it cannot hold a
  formula: anywhere, one signed number (``-5``, ``+2.5``, ``+919876543210``: a spreadsheet
  shows it and computes nothing); in a column of phone numbers (``to``, ``from``,
  ``to_as_written``, and columns named like a phone: ``phone``, ``mobile``, ``whatsapp``…),
  a value made only of digits, spaces and ``+ ( ) - . /`` (a number as written, never
  altered, so ``load_recipients`` reads it back the same). So a body ``-2+3`` is written
  ``'-2+3`` (a spreadsheet would show ``1``). In a workbook every string is typed as text,
  so no cell is ever a formula and nothing needs altering.
- **atomic writes**: the file is written next to its target under a temporary name,
  flushed to disk and renamed into place, so a failed write (a full disk, a killed
  process) never leaves a truncated file where the user expects results.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .errors import KwaBatchError

__all__ = [
    "MAX_WIDTH",
    "PAGE_WIDTH",
    "Sheet",
    "append_csv",
    "atomic_write",
    "csv_safe",
    "csv_unguard",
    "is_phone_column",
    "plain",
    "write_csv",
    "write_xlsx",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A cell guarded by csv_safe: the ' it adds, then what made the cell risky.
_GUARDED = r"'+[=+\-@\t\r]"
# Only digits, spaces (also the non-breaking ones) and + ( ) - . /: a phone number as
# written, where a spreadsheet may compute (-2+3) but nothing harmful fits.
_PHONE_LIKE = r"[0-9+ \u00a0\u202f\u2007()\-./]*"
# One signed number, which a spreadsheet shows as a number and computes nothing from.
_SIGNED_NUMBER = r"[+-][0-9]+(?:\.[0-9]+)?"
# The columns of phone numbers as written.
_PHONE_COLUMNS = frozenset({"to", "from", "to_as_written"})
_PHONE_NAME = re.compile(
    r"(?:^|[^a-z])(?:phone|mobile|msisdn|whatsapp|tel|cell|wa_?id)(?:$|[^a-z])", re.IGNORECASE
)
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: The widest a column gets, in characters: longer texts wrap within it (on paper too).
MAX_WIDTH = 40
_MIN_WIDTH = 6
_DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
# The height of one line of text (Calibri 11, the default font), in points, and the
# characters a wrapped line loses to the word that does not fit.
_LINE_HEIGHT = 15
_WRAP_SLACK = 4
#: How many characters of columns a landscape page holds at a size still read at arm's
#: length (about 85% on A4 or Letter with narrow margins): a table's printed columns stop
#: there, the rest stay in the file for whoever filters or sorts.
PAGE_WIDTH = 160


def is_phone_column(name: object) -> bool:
    """Whether a column holds phone numbers as written (``to``, ``from``, ``phone``…).

    >>> is_phone_column("to"), is_phone_column("Mobile No"), is_phone_column("body")
    (True, True, False)
    """
    return str(name) in _PHONE_COLUMNS or bool(_PHONE_NAME.search(str(name)))


def csv_safe(values: pd.Series, *, phone: bool = False) -> pd.Series:
    """Text cells a spreadsheet would compute, with a leading ``'`` (vectorised; see the
    module): ``phone`` for a column of phone numbers as written.

    >>> csv_safe(pd.Series(["=1+1", "-2+3", "+1", "@SUM(A1)", "hi"])).tolist()
    ["'=1+1", "'-2+3", '+1', "'@SUM(A1)", 'hi']
    >>> csv_safe(pd.Series(["+91 98765 43210", "=1+1"]), phone=True).tolist()
    ['+91 98765 43210', "'=1+1"]

    A cell that already starts with the guard (``'=1``) gets one more, so that
    :func:`csv_unguard` gives back exactly what was written.

    >>> csv_safe(pd.Series(["'=1", "'quoted'"])).tolist()
    ["''=1", "'quoted'"]
    """
    text = values.astype("str")
    harmless = text.str.fullmatch(_SIGNED_NUMBER)
    if phone:
        harmless = harmless | text.str.fullmatch(_PHONE_LIKE)
    risky = (text.str.startswith(_FORMULA_START) & ~harmless) | text.str.match(_GUARDED)
    risky = risky.fillna(False).astype(bool) & values.notna().to_numpy()
    if not risky.any():
        return values
    return text.where(~risky, "'" + text).where(values.notna(), values)


def csv_unguard(values: pd.Series) -> pd.Series:
    """Text cells as they were before :func:`csv_safe`: one leading ``'`` before
    ``= + - @``, a tab or a carriage return removed (for files this package writes and
    reads back, such as a template catalogue).

    >>> csv_unguard(pd.Series(["'=1+1", "''=1", "'quoted'"])).tolist()
    ['=1+1', "'=1", "'quoted'"]
    """
    text = values.astype("str")
    guarded = text.str.match(_GUARDED).fillna(False).astype(bool) & values.notna().to_numpy()
    if not guarded.any():
        return values
    return text.where(~guarded, text.str.slice(1)).where(values.notna(), values)


def plain(frame: pd.DataFrame, index_name: str = "row") -> pd.DataFrame:
    """The frame with its index as the first column and times as naive UTC (spreadsheets
    have no time zones)."""
    name = str(frame.index.name) if frame.index.name is not None else index_name
    out = frame.reset_index(names=name)
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert(UTC).dt.tz_localize(None)
    return out


def atomic_write(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then move the file to ``target`` in one step.

    Raises:
        KwaBatchError: the file could not be written (the target is left as it was).
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise KwaBatchError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as done:
            os.fsync(done.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        raise KwaBatchError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return target


def write_csv(
    frame: pd.DataFrame,
    target: Path,
    *,
    date_format: str | None = None,
    phones: Iterable[str] = (),
) -> Path:
    """Write ``frame`` (no index) as UTF-8 CSV with a BOM (Excel then reads accents and
    emoji), text cells made formula-safe (phone numbers as written kept, in the columns
    named like phones and in ``phones``), atomically."""
    out = _formula_safe(frame, phones)

    def write(path: Path) -> None:
        # CRLF, as RFC 4180 writes it: a cell holding a lone \r is then quoted (with "\n"
        # as the terminator, csv leaves it bare and a reader splits the row there).
        out.to_csv(
            path, index=False, encoding="utf-8-sig", date_format=date_format, lineterminator="\r\n"
        )

    return atomic_write(target, write)


def append_csv(
    frame: pd.DataFrame,
    handle: IO[str],
    *,
    header: bool,
    date_format: str | None = None,
    phones: Iterable[str] = (),
) -> None:
    """Append ``frame`` to a CSV file open as text (opened with ``encoding="utf-8-sig"``,
    the BOM comes first) as :func:`write_csv` writes a whole one: formula-safe, CRLF; the
    header only with ``header``. For a file written part by part."""
    out = _formula_safe(frame, phones)
    out.to_csv(handle, index=False, header=header, date_format=date_format, lineterminator="\r\n")


def _formula_safe(frame: pd.DataFrame, phones: Iterable[str]) -> pd.DataFrame:
    """``frame`` with its text cells made formula-safe (phone numbers as written kept)."""
    out = frame.copy()
    phone_columns = set(phones)
    for name in out.columns:
        if pd.api.types.is_string_dtype(out[name].dtype) or out[name].dtype == object:
            phone = name in phone_columns or is_phone_column(name)
            out[name] = csv_safe(out[name], phone=phone)
    return out


class Sheet:
    """One sheet of a workbook to write: a table (a frame) or free rows (a summary).

    Every sheet prints landscape, one page wide and as many pages tall as it takes, with
    gridlines, its first row repeated on each page; long texts wrap (rows grow to fit).

    Args:
        title: the sheet's name.
        frame: a table, written with a bold frozen header, an autofilter and widths that
            fit (at most :data:`MAX_WIDTH`); datetime columns as dates.
        rows: free rows instead (lists of values); ``bold`` are the indices of header
            rows; ``formats`` maps ``(row, column)`` to a number format.
        widths: column widths for free rows.
        wrap: the names (a table) or positions (free rows) of columns of long text, wrapped
            within their width; a table's printed columns wrap whenever they are too long.
        printed: how many of a table's first columns are printed (all when None; never
            more than fit :data:`PAGE_WIDTH`), or how many of the free rows (all when None):
            the rest stay in the file for whoever filters or sorts, off the page.
        hidden: a table's columns kept in the file but hidden (what reads the file back
            needs them, a reader does not).
        for_machines: the whole sheet is for what reads the file back: hidden, so it is
            neither in a reader's tabs nor printed with the workbook.
    """

    def __init__(
        self,
        title: str,
        frame: pd.DataFrame | None = None,
        *,
        rows: Sequence[Sequence[Any]] | None = None,
        bold: Iterable[int] = (),
        formats: dict[tuple[int, int], str] | None = None,
        widths: Sequence[float] = (),
        wrap: Iterable[str | int] = (),
        printed: int | None = None,
        hidden: Iterable[str] = (),
        for_machines: bool = False,
    ) -> None:
        if (frame is None) == (rows is None):
            raise ValueError("a sheet holds a frame or rows, not both")
        self.title = title
        self.frame = frame
        self.rows = rows
        self.bold = set(bold)
        self.formats = formats or {}
        self.widths = list(widths)
        self.wrap = set(wrap)
        self.printed = printed
        self.hidden = set(hidden)
        self.for_machines = for_machines


def write_xlsx(target: Path, sheets: Sequence[Sheet]) -> Path:
    """Write the sheets to an ``.xlsx`` workbook, atomically; every string is text."""
    from openpyxl import Workbook

    def write(path: Path) -> None:
        book = Workbook(write_only=True)
        try:
            for sheet in sheets:
                out = book.create_sheet(sheet.title)
                if sheet.for_machines:
                    out.sheet_state = "hidden"
                if sheet.frame is not None:
                    _write_table(out, sheet)
                else:
                    _write_rows(out, sheet)
            # Zipped in memory, then written in one go: a full disk then fails our write,
            # not zipfile's, which leaves a half-closed archive behind to fail again later.
            zipped = io.BytesIO()
            book.save(zipped)
        except BaseException:
            _discard(book)
            raise
        path.write_bytes(zipped.getbuffer())

    return atomic_write(target, write)


def _discard(book: Any) -> None:
    """After a failed save (a full disk): close what openpyxl's streaming sheets still hold
    open, so that nothing fails later, at garbage collection, on a closed file."""
    for sheet in book.worksheets:
        rows, writer = getattr(sheet, "_rows", None), getattr(sheet, "_writer", None)
        with contextlib.suppress(Exception):
            if rows is not None:
                rows.close()
        with contextlib.suppress(Exception):
            if writer is not None:
                writer.close()


def _cell(
    sheet: Any,
    value: Any,
    *,
    bold: bool = False,
    number_format: str | None = None,
    wrap: bool = False,
    top: bool = False,
) -> Any:
    """A write-only cell; strings are always text (a leading ``=`` never makes a formula);
    ``wrap``: long text wraps within the column; ``top``: aligned to the top of a row
    made taller for a wrapped text."""
    from openpyxl.cell import WriteOnlyCell

    if isinstance(value, str):
        value = _xml_safe(value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    if bold:
        cell.font = _style("bold")
    if number_format:
        cell.number_format = number_format
    if wrap or top:
        cell.alignment = _style("wrap" if wrap else "top")
    return cell


@functools.cache
def _style(name: str) -> Any:
    """The few styles the writer uses, made once."""
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    if name == "bold":
        return Font(bold=True)
    if name == "heading fill":
        return PatternFill("solid", fgColor="DDE3EA")
    if name == "heading border":
        return Border(bottom=Side(style="thin"))
    return Alignment(vertical="top", wrap_text=name == "wrap" or None)


def _xml_safe(value: str) -> str:
    """Control characters cannot be stored in a workbook: show them as ``\\xNN`` instead."""
    return _ILLEGAL_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _write_rows(sheet: Any, spec: Sheet) -> None:
    from openpyxl.utils import get_column_letter

    assert spec.rows is not None
    _print_layout(sheet)
    for position, width in enumerate(spec.widths, start=1):
        sheet.column_dimensions[get_column_letter(position)].width = width
    shown = len(spec.rows) if spec.printed is None else min(spec.printed, len(spec.rows))
    if 0 < shown < len(spec.rows):
        columns = max([len(spec.widths), *(len(r) for r in spec.rows[:shown])])
        sheet.print_area = f"A1:{get_column_letter(max(columns, 1))}{shown}"
    for number, values in enumerate(spec.rows):
        lines = [
            _lines(value, spec.widths[column])
            for column, value in enumerate(values)
            if column in spec.wrap and isinstance(value, str) and column < len(spec.widths)
        ]
        tall = max(lines, default=1) > 1
        if tall:
            sheet.row_dimensions[number + 1].height = _LINE_HEIGHT * max(lines)
        sheet.append(
            [
                _cell(
                    sheet,
                    value,
                    bold=number in spec.bold,
                    number_format=spec.formats.get((number, column)),
                    wrap=column in spec.wrap and isinstance(value, str),
                    top=tall,
                )
                for column, value in enumerate(values)
            ]
        )


def _print_layout(sheet: Any) -> None:
    """Landscape, as wide as one page and as many pages tall as it takes, narrow margins,
    gridlines, the first row repeated on every page."""
    from openpyxl.worksheet.properties import PageSetupProperties

    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0  # as many pages down as it takes
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.print_title_rows = "1:1"
    sheet.print_options.gridLines = True
    margins = sheet.page_margins
    margins.left = margins.right = 0.4
    margins.top = margins.bottom = 0.5
    margins.header = margins.footer = 0.2


def _widths(frame: pd.DataFrame) -> list[float]:
    """Each column's width: its longest text (of the first 500 rows) or header word, at
    least :data:`_MIN_WIDTH` and at most :data:`MAX_WIDTH` characters."""
    widths = []
    for name in frame.columns:
        sample = frame[name].head(500).astype("str")
        longest = max(
            [
                *(len(word) for word in str(name).split()),
                *(len(v) for v in sample if isinstance(v, str)),
            ]
        )
        widths.append(float(min(max(longest + 2, _MIN_WIDTH), MAX_WIDTH)))
    return widths


def _printed_columns(widths: Sequence[float], printed: int | None, hidden: Sequence[bool]) -> int:
    """How many first columns go on paper: at most ``printed``, at least one, no more than
    fit :data:`PAGE_WIDTH` (hidden columns take no room)."""
    limit = len(widths) if printed is None else max(1, min(printed, len(widths)))
    used = 0.0
    for position in range(limit):
        if hidden[position]:
            continue
        used += widths[position]
        if used > PAGE_WIDTH and position > 0:
            return position
    return limit


def _per_line(width: float) -> int:
    """The characters of text a wrapped line of a column ``width`` wide holds, counted
    low: a width counts digits, and text averages a tenth narrower; the word that does
    not fit moves to the next line."""
    return max(int(width * 1.1) - _WRAP_SLACK, 1)


def _lines(text: str, width: float) -> int:
    """The lines ``text`` takes when wrapped at ``width`` (see :func:`_heights`)."""
    per_line = _per_line(width)
    return sum(max(1, -(-len(part) // per_line)) for part in text.split("\n"))


def _heights(frame: pd.DataFrame, wrapped: dict[str, float]) -> list[int]:
    """The lines each row's wrapped texts take at their column's width (at least one).

    Spreadsheets do not all size rows to their wrapped text when they open a file (nor
    when they print it), so the writer gives each row the height its longest text needs;
    a line holds a few characters less than the width, for the words that do not fit."""
    lines = pd.Series(1, index=frame.index, dtype="int64")
    for name, width in wrapped.items():
        text = frame[name].astype("str").fillna("")
        per_line = _per_line(width)
        needed = (text.str.len() + per_line - 1) // per_line + text.str.count("\n")
        lines = lines.combine(needed.fillna(1).astype("int64"), max)
    return [int(n) for n in lines]


def _write_table(sheet: Any, spec: Sheet) -> None:
    from openpyxl.utils import get_column_letter

    frame = spec.frame
    assert frame is not None
    _print_layout(sheet)
    columns = [str(c) for c in frame.columns]
    widths = _widths(frame)
    hidden = [name in spec.hidden for name in columns]
    printed = _printed_columns(widths, spec.printed, hidden)
    last_row = len(frame) + 1
    if printed < len(columns):
        sheet.print_area = f"A1:{get_column_letter(printed)}{last_row}"
    # Printed long texts wrap: those named so, and any column too long for its width (off
    # paper, rows keep one line: the screen shows more of them).
    wrapped = {
        i
        for i, name in enumerate(columns)
        if i < printed and (name in spec.wrap or widths[i] >= MAX_WIDTH)
    }
    for position, (width, hide) in enumerate(zip(widths, hidden, strict=True), start=1):
        dimension = sheet.column_dimensions[get_column_letter(position)]
        dimension.width = width
        dimension.hidden = hide
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(len(columns), 1))}{last_row}"
    header = []
    for name in columns:
        cell = _cell(sheet, name, bold=True, wrap=True)
        cell.fill, cell.border = _style("heading fill"), _style("heading border")
        header.append(cell)
    sheet.append(header)
    dates = {
        i for i, name in enumerate(columns) if pd.api.types.is_datetime64_any_dtype(frame[name])
    }
    heights = _heights(frame, {columns[i]: widths[i] for i in wrapped})
    values = frame.astype("object").where(frame.notna(), None)
    for number, row in enumerate(values.itertuples(index=False, name=None), start=2):
        # Only the rows whose text wraps are styled (top-aligned, wrapped): styling every
        # cell of a large file triples the time it takes to write.
        tall = heights[number - 2] > 1
        if tall:
            sheet.row_dimensions[number].height = _LINE_HEIGHT * heights[number - 2]
        cells: list[Any] = []
        for i, value in enumerate(row):
            if value is None:
                cells.append(None)
            elif i in dates:
                moment = value.to_pydatetime()
                cells.append(_cell(sheet, moment, number_format=_DATE_FORMAT, top=tall))
            elif tall:
                wrap = i in wrapped and isinstance(value, str)
                cells.append(_cell(sheet, value, wrap=wrap, top=True))
            elif isinstance(value, str) and (value.startswith("=") or _ILLEGAL_XML.search(value)):
                cells.append(_cell(sheet, value))
            else:
                cells.append(value)
        sheet.append(cells)
