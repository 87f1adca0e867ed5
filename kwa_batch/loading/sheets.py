"""Reading a worksheet's cells safely: time and memory in proportion to the cells present.

An ``.xlsx`` file is a zip of XML parts, and what it claims costs nothing to claim: a 1.6 KB
workbook can say its sheet spans ``A1:XFD1048576``, hold a cell in column XFD on every row,
or point 100,000 cells at one 40 KB shared string. openpyxl's read-only mode pads every row
to the claimed width and height (hours of CPU, gigabytes of memory), so this module streams
the sheet's XML itself (``xml.etree.ElementTree.iterparse``), keeps only the cells that hold
a value, and refuses a file that crosses one of the limits below with one line that names
the limit and the fix. Every parse error (zip, XML, a bad index) is an :class:`InputError`.

Cells come back as the text Excel shows, as openpyxl gives them with ``data_only=True``:
numbers without a spurious ``.0`` (``919876543210``), dates as ISO text, booleans as
``TRUE``/``FALSE``, formulas as their cached result, errors as written (``#N/A``).

Entity expansion ("billion laughs") is refused by the expat parser Python links
(2.4 and later); external entities are never fetched by ElementTree.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree as ET

from ..errors import InputError

__all__ = [
    "MAX_CELLS",
    "MAX_CELL_CHARS",
    "MAX_COLUMNS",
    "MAX_PART_BYTES",
    "MAX_ROWS",
    "MAX_TOTAL_CHARS",
    "SheetRows",
    "read_sheet",
]

#: Rows of a sheet (Excel's own limit): a row number beyond it is not a worksheet.
MAX_ROWS = 1_048_576
#: Columns holding a value: a recipient table needs a few dozen.
MAX_COLUMNS = 1_024
#: Characters in one cell (Excel's own limit).
MAX_CELL_CHARS = 32_767
#: Characters of text in the whole table (shared strings counted once per cell using them).
MAX_TOTAL_CHARS = 256 * 2**20
#: Cells in a sheet (empty ones included) or its shared-string table, and cells of the
#: loaded table (rows x header columns): 1,048,576 rows of 16 columns.
MAX_CELLS = 2**24
#: Uncompressed bytes of one XML part (a zip bomb stops here).
MAX_PART_BYTES = 2**30
_MAX_DEPTH = 64
_SMALL_PART_BYTES = 64 * 2**20  # workbook.xml, its relations, styles.xml

_CELL_REF = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")
_STRICT_DATES = {14, 15, 16, 17, 18, 19, 20, 21, 22, 45, 46, 47}


@dataclass(frozen=True)
class SheetRows:
    """The cells of one worksheet that hold a value.

    Attributes:
        title: the sheet's name.
        rows: ``(row number, {column number: text})`` in file order, 1-based, for each row
            with at least one cell holding text (an empty cell is absent).
        sheets: the names of every worksheet of the workbook, in order.
    """

    title: str
    rows: list[tuple[int, dict[int, str]]]
    sheets: tuple[str, ...] = ()


def read_sheet(file: Path, stream: IO[bytes], sheet_name: str | int | None) -> SheetRows:
    """Read one worksheet of the workbook in ``stream`` (the first by default).

    Args:
        file: the workbook's path, for messages.
        stream: the open workbook, binary and seekable.
        sheet_name: the sheet's name (in any case, as Excel reads it) or its position (0
            is the first worksheet).

    Raises:
        InputError: the file is not a readable workbook, has no such sheet, or crosses a
            limit (the message names it and what to do).
    """
    try:
        with zipfile.ZipFile(stream) as archive:
            return _Workbook(file, archive).read(sheet_name)
    except InputError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        ET.ParseError,
        KeyError,
        ValueError,
        EOFError,
        OSError,
        RuntimeError,  # an encrypted member
        NotImplementedError,  # a compression zipfile does not know
        IndexError,
    ) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{file}: is not a readable .xlsx workbook ({reason}): open it in Excel and save "
            "it again, or save it as CSV UTF-8"
        ) from None


def _local(tag: str) -> str:
    """A tag without its namespace (transitional and strict OOXML use different ones)."""
    return tag.rsplit("}", 1)[-1]


def _attr(element: ET.Element, name: str) -> str | None:
    """An attribute by local name, namespaced or not (``r:id``)."""
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


class _Limited:
    """A part of the archive read through a byte budget (a zip bomb stops at the limit)."""

    def __init__(self, file: Path, part: str, handle: IO[bytes], limit: int) -> None:
        self._file, self._part, self._handle, self._left = file, part, handle, limit
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size if size >= 0 else self._left + 1)
        self._left -= len(chunk)
        if self._left < 0:
            raise InputError(
                f"{self._file}: its part {self._part} unpacks to more than "
                f"{self._limit // 2**20:,} MiB (the limit): the workbook is damaged or "
                "built to exhaust memory; save the table as CSV UTF-8"
            )
        return chunk


class _Workbook:
    def __init__(self, file: Path, archive: zipfile.ZipFile) -> None:
        self.file, self.archive = file, archive
        self.names = set(archive.namelist())

    def _open(self, part: str, limit: int) -> _Limited:
        if part not in self.names:
            raise KeyError(f"no part {part}")
        return _Limited(self.file, part, self.archive.open(part), limit)

    def _tree(self, part: str) -> ET.Element:
        return ET.fromstring(self._open(part, _SMALL_PART_BYTES).read())

    def _relations(self, part: str) -> dict[str, tuple[str, str]]:
        """``Id -> (type, target part)`` for the part's relations file."""
        folder, name = posixpath.split(part)
        rels = posixpath.join(folder, "_rels", name + ".rels")
        if rels not in self.names:
            return {}
        found: dict[str, tuple[str, str]] = {}
        for rel in self._tree(rels):
            target = rel.get("Target", "")
            if rel.get("TargetMode") == "External":
                continue
            path = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            found[rel.get("Id", "")] = (rel.get("Type", ""), posixpath.normpath(path))
        return found

    def read(self, sheet_name: str | int | None) -> SheetRows:
        main = next(
            (
                t
                for kind, t in self._relations("_rels/.rels").values()
                if kind.endswith("/officeDocument")
            ),
            "xl/workbook.xml",
        )
        book = self._tree(main)
        relations = self._relations(main)
        sheets: list[tuple[str, str]] = []
        date1904 = False
        for element in book.iter():
            tag = _local(element.tag)
            if tag == "workbookPr":
                date1904 = element.get("date1904", "").lower() in ("1", "true")
            elif tag == "sheet":
                kind, target = relations.get(_attr(element, "id") or "", ("", ""))
                if kind.endswith("/worksheet"):
                    sheets.append((element.get("name", ""), target))
        if not sheets:
            raise InputError(f"{self.file}: the workbook has no worksheet")
        title, part = self._choose(sheets, sheet_name)
        styles = next((t for k, t in relations.values() if k.endswith("/styles")), None)
        strings = next((t for k, t in relations.values() if k.endswith("/sharedStrings")), None)
        cells = _Cells(
            self.file,
            self._shared_strings(strings) if strings in self.names else [],
            self._date_styles(styles) if styles in self.names else {},
            date1904,
        )
        rows = list(cells.rows(self._open(part, MAX_PART_BYTES)))
        return SheetRows(title, rows, tuple(name for name, _ in sheets))

    def _choose(
        self, sheets: list[tuple[str, str]], sheet_name: str | int | None
    ) -> tuple[str, str]:
        if sheet_name is None:
            return sheets[0]
        if isinstance(sheet_name, int) and -len(sheets) <= sheet_name < len(sheets):
            return sheets[sheet_name]
        for sheet in sheets:
            if sheet[0] == sheet_name:
                return sheet
        # As Excel does: sheet names are the same whatever their case ("recipients" finds
        # "Recipients"); should a workbook from elsewhere hold two such, neither is guessed.
        if isinstance(sheet_name, str):
            same = [s for s in sheets if s[0].casefold() == sheet_name.casefold()]
            if len(same) == 1:
                return same[0]
            if same:
                names = ", ".join(repr(name) for name, _ in same)
                raise InputError(
                    f"{self.file}: has no sheet {sheet_name!r}, and {len(same)} sheets whose "
                    f"names differ from it only in case ({names}): give one of them exactly as "
                    "written"
                )
        names = ", ".join(name for name, _ in sheets)
        raise InputError(f"{self.file}: has no sheet {sheet_name!r} (it has: {names})")

    def _date_styles(self, part: str) -> dict[int, bool]:
        """Style index -> True for a duration format, False for a date, absent otherwise."""
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

        tree = self._tree(part)
        custom = {
            int(f.get("numFmtId", "-1")): f.get("formatCode", "")
            for f in tree.iter()
            if _local(f.tag) == "numFmt"
        }
        found: dict[int, bool] = {}
        xfs = next((e for e in tree if _local(e.tag) == "cellXfs"), None)
        for index, xf in enumerate(xfs if xfs is not None else []):
            number = int(xf.get("numFmtId", "0"))
            code = custom.get(number, BUILTIN_FORMATS.get(number))
            if is_date_format(code) or (code is None and number in _STRICT_DATES):
                found[index] = bool(is_timedelta_format(code))
        return found

    def _shared_strings(self, part: str) -> list[str]:
        strings: list[str] = []
        total = 0
        for element, parent in _stream(self.file, self._open(part, MAX_PART_BYTES), "si"):
            text = _text_of(element)
            total += len(text)
            if total > MAX_TOTAL_CHARS or len(strings) >= MAX_CELLS:
                raise InputError(
                    f"{self.file}: its shared strings hold more than "
                    f"{MAX_TOTAL_CHARS:,} characters or {MAX_CELLS:,} strings (the limit): "
                    "split the file, or save the table as CSV UTF-8"
                )
            strings.append(text)
            parent.remove(element)
        return strings


def _stream(file: Path, source: _Limited, wanted: str) -> Iterator[tuple[ET.Element, ET.Element]]:
    """Each complete ``wanted`` element with its parent; every other finished element is
    dropped from the tree at once, so memory holds one element at a time."""
    stack: list[ET.Element] = []
    names: dict[str, str] = {}  # tag -> local name, computed once per tag
    for event, element in ET.iterparse(source, events=("start", "end")):
        if event == "start":
            stack.append(element)
            if len(stack) > _MAX_DEPTH:
                raise InputError(f"{file}: its XML nests deeper than {_MAX_DEPTH} levels")
            continue
        stack.pop()
        tag = element.tag
        name = names.get(tag) or names.setdefault(tag, _local(tag))
        if name == wanted and stack:
            yield element, stack[-1]
        elif stack and not _inside(stack, wanted):
            stack[-1].remove(element)


def _inside(stack: list[ET.Element], wanted: str) -> bool:
    return any(_local(e.tag) == wanted for e in stack[-3:])


def _text_of(element: ET.Element) -> str:
    """A string item's text (``<t>`` and rich-text runs, not phonetic hints), as openpyxl."""
    parts = [child.text or "" for child in element if _local(child.tag) == "t"]
    for run in element:
        if _local(run.tag) == "r":
            parts.extend(t.text or "" for t in run if _local(t.tag) == "t")
    return "".join(parts).replace("x005F_", "")


def _column(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _letters(column: int) -> str:
    from openpyxl.utils import get_column_letter

    return str(get_column_letter(column)) if 1 <= column <= 18_278 else str(column)


class _Cells:
    """The sheet's XML to rows of text, counting against the limits as it goes."""

    def __init__(
        self, file: Path, strings: list[str], dates: dict[int, bool], date1904: bool
    ) -> None:
        self.file, self.strings, self.dates = file, strings, dates
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900

        self.epoch = CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900
        self.total = 0
        self.cells = 0

    def rows(self, source: _Limited) -> Iterator[tuple[int, dict[int, str]]]:
        current: ET.Element | None = None
        number = column = 0
        values: dict[int, str] = {}
        for cell, row in _stream(self.file, source, "c"):
            if row is not current:
                if values:
                    yield number, values
                values = {}
                current = row
                number = self._row_number(row.get("r"), number)
                column = 0
            column = self._column_of(cell, number, column)
            self.cells += 1
            if self.cells > MAX_CELLS:
                self._refuse(f"more than {MAX_CELLS:,} cells", "split the file")
            text = self._text(cell, number, column) if len(cell) else ""
            row.remove(cell)
            if text:
                self._count(text, number, column)
                values[column] = text
        if values:
            yield number, values

    def _row_number(self, declared: str | None, previous: int) -> int:
        try:
            number = int(declared) if declared is not None else previous + 1
        except ValueError:
            raise InputError(f"{self.file}: row number {declared!r} is not a number") from None
        if not 1 <= number <= MAX_ROWS:
            self._refuse(f"a row numbered {number:,} (rows go from 1 to {MAX_ROWS:,})", "")
        return number

    def _column_of(self, cell: ET.Element, row: int, previous: int) -> int:
        ref = cell.get("r")
        if ref is None:
            return previous + 1
        match = _CELL_REF.fullmatch(ref)
        if match is None:
            raise InputError(f"{self.file}: row {row} has a cell named {ref!r}, not a cell")
        return _column(match.group(1))

    def _count(self, text: str, row: int, column: int) -> None:
        where = f"{_letters(column)}{row}"
        if column > MAX_COLUMNS:
            self._refuse(
                f"a value in {where}, beyond column {_letters(MAX_COLUMNS)} "
                f"({MAX_COLUMNS:,} columns, the limit)",
                "delete the cells to the right of the table",
            )
        if len(text) > MAX_CELL_CHARS:
            self._refuse(
                f"{len(text):,} characters in {where} (a cell holds at most {MAX_CELL_CHARS:,})",
                "shorten the cell",
            )
        self.total += len(text)
        if self.total > MAX_TOTAL_CHARS:
            self._refuse(
                f"more than {MAX_TOTAL_CHARS:,} characters of text (the limit) by {where}",
                "split the file",
            )

    def _refuse(self, what: str, fix: str) -> None:
        advice = f"{fix}, or save the table as CSV UTF-8" if fix else "save it again from Excel"
        raise InputError(f"{self.file}: the sheet has {what}: {advice}")

    def _text(self, cell: ET.Element, row: int, column: int) -> str:
        kind = cell.get("t", "n")
        if kind == "inlineStr":
            inline = next((e for e in cell if _local(e.tag) == "is"), None)
            return _text_of(inline) if inline is not None else ""
        value = next((e.text for e in cell if _local(e.tag) == "v"), None)
        if not value:
            return ""
        try:
            return self._convert(kind, value, cell)
        except (ValueError, IndexError, OverflowError):
            what = (
                f"a shared-string index (the workbook has {len(self.strings):,} strings)"
                if kind == "s"
                else f"a value of type {kind!r}"
            )
            raise InputError(
                f"{self.file}: cell {_letters(column)}{row} holds {value[:40]!r}, which is not "
                f"{what}: the workbook is damaged; open it in Excel and save it again"
            ) from None

    def _convert(self, kind: str, value: str, cell: ET.Element) -> str:
        if kind == "s":
            index = int(value)
            if not 0 <= index < len(self.strings):
                raise IndexError(index)
            return self.strings[index]
        if kind == "b":
            return "TRUE" if int(value) else "FALSE"
        if kind in ("str", "e"):
            return value
        if kind == "d":
            from datetime import datetime

            return _shown(datetime.fromisoformat(value))
        number: Any = float(value) if any(c in value for c in ".eE") else int(value)
        style = int(cell.get("s", "0") or 0)
        if style in self.dates:
            from openpyxl.utils.datetime import from_excel

            try:
                return _shown(from_excel(number, self.epoch, timedelta=self.dates[style]))
            except (OverflowError, ValueError):
                return "#VALUE!"  # what openpyxl reads for a date beyond the calendar
        return _shown(number)


def _shown(value: object) -> str:
    """A value as the text it shows: ``919876543210``, not ``919876543210.0``."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
