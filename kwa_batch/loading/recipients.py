"""Loading recipient files (CSV, XLSX) into a DataFrame of strings, exactly as written.

Nothing is converted: ``0044…`` keeps its zeros, ``+91…`` its plus, a customer called "NA"
stays "NA"; only an empty cell is missing. Headers are read by :mod:`kwa_batch.loading.headers`:
the user's own are kept as written (trimmed), the API's own names are recognised however
they are cased and spaced (``Template Name`` is ``template_name``), ``columns=`` maps any
field from any column, and the common names of the recipient column (``Phone``,
``Mobile No.``, Google Contacts' ``Phone 1 - Value``, Outlook's ``Mobile Phone``…) become
``to``.

What the loader found is kept in ``df.attrs``:

- ``line_numbers``: each row's line in the file (:class:`LineNumbers`), for reports;
- ``malformed``: rows whose field count does not match the header, by index label, with
  the reason (they load, padded or cut to the header, and validation rejects them with
  code ``KWA008``);
- ``encoding`` (CSV) and ``delimiter`` (CSV), ``sheet`` (XLSX), ``source`` (the path);
- ``columns``: the fields mapped by ``columns=`` and the header each came from;
- ``notes``: what the loader chose and says so (the recipient column among several).

A file that is not UTF-8 is read in the legacy encoding charset-normalizer detects
(cp1252, latin-1…), and a warning says so: check the accents, or save it as "CSV UTF-8".
A file with UTF-8 lines and lines in another encoding is refused, naming the lines that are
not UTF-8 (read whole in a code page, its UTF-8 names would come out garbled).

The file is read by :mod:`kwa_batch.loading.reading`, the reader of every user's table: only
a regular file (a FIFO or a device is refused before it is opened), up to
:data:`MAX_FILE_BYTES`; workbooks within :mod:`kwa_batch.loading.sheets`' limits; CSV in the
encoding and with the delimiter it detects. This module makes recipients of its table.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .files import FileKind
from .files import check_regular_file as check_file_is_regular
from .headers import TO_ALIASES, read_header
from .reading import WORKBOOK_SUFFIXES, EmptyTableError, Table, read_table, read_table_parts

__all__ = [
    "MAX_FILE_BYTES",
    "PARTS_ABOVE_ROWS",
    "RECIPIENT_FILE",
    "TO_ALIASES",
    "LineNumbers",
    "RecipientParts",
    "RowProblems",
    "check_regular_file",
    "line_numbers",
    "load_recipients",
]

log = logging.getLogger(__name__)

#: The largest recipient file read whole; a larger one is refused before a byte is read
#: (read in parts, :class:`RecipientParts`, a file may be larger).
MAX_FILE_BYTES = 2 * 2**30
#: Above this many rows, :func:`load_recipients` warns that the file would better be sent
#: in parts (``kwa-batch send --chunk-rows``, :func:`kwa_batch.send_file`): a million
#: rows and their results take about a gigabyte in memory.
PARTS_ABOVE_ROWS = 1_000_000


class RowProblems(dict[Any, str]):
    """``df.attrs["malformed"]``: the reason of each malformed row, by index label.

    It never changes once loaded, so copies of the frame share it (pandas deep-copies
    ``attrs`` on most operations).
    """

    def __deepcopy__(self, memo: dict[int, object]) -> RowProblems:
        return self


class LineNumbers:
    """Line (CSV) or row (XLSX) numbers of a loaded frame, aligned with its index: labels
    0…n-1, or ``start``… for a part of a file read in parts (:func:`recipient_parts`).

    Kept in ``df.attrs``; deep copies share it (it never changes), so pandas operations that
    copy attrs stay cheap on large files.
    """

    __slots__ = ("_lines", "_start")

    def __init__(self, lines: np.ndarray[Any, Any], start: int = 0) -> None:
        self._lines = lines
        self._start = start

    def get(self, label: object) -> int | None:
        """The line of the row labelled ``label`` in the loaded frame, if known."""
        if isinstance(label, int | np.integer):
            position = int(label) - self._start
            if 0 <= position < len(self._lines):
                return int(self._lines[position])
        return None

    def lookup(self, labels: pd.Index) -> pd.arrays.IntegerArray:
        """The lines of many labels at once (NA where unknown), as nullable integers."""
        values = labels.to_numpy()
        n = len(self._lines)
        if values.dtype.kind in "iu":
            values = values - self._start
            inside = (values >= 0) & (values < n)
            lines = self._lines[np.where(inside, values, 0)] if n else np.zeros(len(values))
            return pd.arrays.IntegerArray(np.where(inside, lines, 0).astype(np.int64), ~inside)
        found = [self.get(label) for label in values]
        return pd.array(found, dtype="Int64")

    def __len__(self) -> int:
        return len(self._lines)

    def __deepcopy__(self, memo: dict[int, object]) -> LineNumbers:
        return self

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LineNumbers)
            and other._start == self._start
            and (other._lines is self._lines or bool(np.array_equal(other._lines, self._lines)))
        )

    def __hash__(self) -> int:
        return id(self._lines)

    def __repr__(self) -> str:
        return f"LineNumbers(<{len(self._lines)} rows>)"


def line_numbers(df: pd.DataFrame) -> pd.Series:
    """The file line of each row of ``df`` (nullable integers; NA when not from a file)."""
    lines = df.attrs.get("line_numbers")
    if isinstance(lines, LineNumbers):
        return pd.Series(lines.lookup(df.index), index=df.index)
    return pd.Series(pd.array([None] * len(df), dtype="Int64"), index=df.index)


def load_recipients(
    path: str | Path,
    *,
    sheet_name: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Load a recipient file into a DataFrame of strings, every cell exactly as written.

    Args:
        path: a ``.csv`` (or ``.txt``/``.tsv``) or ``.xlsx`` file.
        sheet_name: for XLSX, the sheet to read (the first by default).
        encoding: force an encoding instead of detecting it.
        delimiter: force a delimiter instead of detecting it (``,`` ``;`` tab or ``|``).
        columns: API field -> the file's column, named as its header writes it, e.g.
            ``{"to": "Phone 1 - Value", "body": "Message"}`` (see :mod:`kwa_batch.loading.headers`
            for what is recognised without it).

    Returns:
        A frame indexed 0, 1, 2… in file order, with column ``to`` and any others (the
        user's own headers as written); see the module docstring for what ``df.attrs`` holds.

    Raises:
        InputError: the file is missing, empty, binary, has no recipient column, or cannot
            be parsed; ``columns`` names a field or a column that does not exist; the
            message says which and what to do.

    Example:
        >>> df = load_recipients("sample_data/recipients.csv")  # doctest: +SKIP
        >>> df.attrs["line_numbers"].get(0)  # doctest: +SKIP
        2
        >>> load_recipients("contacts.csv", columns={"to": "Phone 1 - Value"})  # doctest: +SKIP
    """
    file = Path(path)
    try:
        table = read_table(
            file, RECIPIENT_FILE, sheet=sheet_name, encoding=encoding, delimiter=delimiter
        )
    except EmptyTableError as exc:
        raise _other_sheets(exc, exc.table, sheet_name) from None
    try:
        named = read_header(file, table.header, table.columns, columns)
    except InputError as exc:
        raise _other_sheets(exc, table, sheet_name) from None
    frame = _recipients(file, table, named.names, 0)
    frame.attrs["columns"] = named.mapped
    frame.attrs["notes"] = named.notes
    if len(frame) > PARTS_ABOVE_ROWS:
        log.warning(
            "%s: %s rows are held in memory together (with their results): above %s rows, "
            "send the file in parts, which keeps memory flat: kwa-batch send %s "
            "--chunk-rows 100000 --out results.parquet (kb.send_file(path, client, "
            "out='results.parquet'))",
            file,
            f"{len(frame):,}",
            f"{PARTS_ABOVE_ROWS:,}",
            file,
        )
    return frame


def _recipients(file: Path, table: Table, names: list[str | None], start: int) -> pd.DataFrame:
    """The recipients of ``table`` as a frame of text, indexed from ``start``."""
    attrs: dict[str, Any] = {"source": str(file)}
    if table.sheet is not None:
        attrs["sheet"] = table.sheet
    else:
        attrs["encoding"], attrs["delimiter"] = table.encoding, table.delimiter
    frame = pd.DataFrame(
        {name: value for name, value in zip(names, table.columns, strict=True) if name is not None}
    )
    if frame.empty and not len(frame.columns):  # pragma: no cover - header checked above
        raise InputError(f"{file}: has no columns")
    frame.index = pd.RangeIndex(start, start + len(frame))
    frame.attrs.update(attrs)
    frame.attrs["line_numbers"] = LineNumbers(table.lines, start)
    frame.attrs["malformed"] = RowProblems({start + k: v for k, v in table.malformed.items()})
    return frame


class RecipientParts:
    """A recipient file read in parts of at most ``rows`` rows: iterate to get each part
    as :func:`load_recipients` loads a file (the same columns, cells and ``attrs``), indexed
    by its rows' positions in the whole file (0-based), its ``line_numbers`` the file's.

    Only one part is in memory at a time. A CSV file is read as it goes
    (:func:`~kwa_batch.loading.reading.read_table_parts`); a workbook, which its limits
    keep small (:mod:`kwa_batch.loading.sheets`), is read whole and cut.
    :meth:`check` reads the whole file once first, so that a file that cannot be read is
    refused before anything is done with its first part.

    Example:
        >>> parts = RecipientParts("big.csv", 100_000)  # doctest: +SKIP
        >>> parts.check()  # the rows of the file  # doctest: +SKIP
        10000000
        >>> for df in parts: ...  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        rows: int,
        *,
        sheet_name: str | int | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.rows = rows
        self._options: dict[str, str | int | None] = {
            "sheet_name": sheet_name,
            "encoding": encoding,
            "delimiter": delimiter,
        }
        self._columns = columns
        self._names: list[str | None] | None = None
        self._notes: tuple[dict[str, str], list[str]] = ({}, [])

    @property
    def workbook(self) -> bool:
        """Whether the file is a workbook (read whole, then cut)."""
        return self.path.suffix.lower() in WORKBOOK_SUFFIXES

    def check(self) -> int:
        """Read every part once, refusing what :func:`load_recipients` refuses; the number
        of rows.

        Raises:
            InputError: as :func:`load_recipients` (the line named is the file's), or the
                header reads differently further down (a recipient column empty at the
                start): name it with ``columns=`` / ``--column``.
        """
        return sum(len(part) for part in self)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        start = 0
        for table in self._tables():
            names = self._named(table)
            frame = _recipients(self.path, table, names, start)
            frame.attrs["columns"], frame.attrs["notes"] = self._notes
            start += len(frame)
            yield frame

    def _tables(self) -> Iterator[Table]:
        if self.workbook:
            sheet = self._options["sheet_name"]
            try:
                table = read_table(self.path, RECIPIENT_FILE, sheet=sheet)
            except EmptyTableError as exc:
                raise _other_sheets(exc, exc.table, sheet) from None
            for begin in range(0, len(table), self.rows):
                end = begin + self.rows
                yield dataclasses.replace(
                    table,
                    columns=[c[begin:end] for c in table.columns],
                    lines=table.lines[begin:end],
                    malformed={
                        k - begin: v for k, v in table.malformed.items() if begin <= k < end
                    },
                )
            return
        encoding, delimiter = self._options["encoding"], self._options["delimiter"]
        yield from read_table_parts(
            self.path,
            RECIPIENT_FILE_IN_PARTS,
            self.rows,
            encoding=None if encoding is None else str(encoding),
            delimiter=None if delimiter is None else str(delimiter),
        )

    def _named(self, table: Table) -> list[str | None]:
        """The fields of the header, read from the first part, the same in every part."""
        named = read_header(self.path, table.header, table.columns, self._columns)
        if self._names is None:
            self._names = named.names
            self._notes = (named.mapped, named.notes)
        elif named.names != self._names:
            first = ", ".join(f"{w!r}" for w in self._names if w)
            raise InputError(
                f"{self.path}: the header reads differently from line {int(table.lines[0])} "
                f"on (a column empty until then holds values; read at the start as {first}): "
                "name the recipient column with --column to=NAME / columns={'to': NAME}"
            )
        return self._names


# ---------------------------------------------------------------------------------------
# Only regular files.

#: Recipient files, for :mod:`kwa_batch.loading.files`: what its messages call them, and the limit.
RECIPIENT_FILE = FileKind(
    "recipient file",
    "save the recipients as a .csv or .xlsx file first",
    MAX_FILE_BYTES,
    "send it in parts (kwa-batch send --chunk-rows 100000 --out results.parquet, or "
    "kb.send_file), or split it into smaller files",
    "one row per recipient",
)
#: A recipient file read in parts: only a part is in memory at a time, so it may be larger.
RECIPIENT_FILE_IN_PARTS = dataclasses.replace(
    RECIPIENT_FILE, max_bytes=2**40, too_large="split it into smaller files"
)


def check_regular_file(path: str | Path) -> None:
    """Refuse, before anything opens it, a path that is not a regular file of a sane size.

    For readers that open the path themselves (pyarrow, pandas, openpyxl): a FIFO would block
    them forever and a link to ``/dev/zero`` would fill memory. (The check itself lives in
    :mod:`kwa_batch.loading.files`, shared with the other loaders.)

    Raises:
        InputError: the path is missing, a folder, a FIFO, a device or a socket (or a link to
            one), or larger than :data:`MAX_FILE_BYTES`.

    Example:
        >>> check_regular_file("sample_data/recipients.csv")  # doctest: +SKIP
    """
    check_file_is_regular(path, RECIPIENT_FILE)


def _other_sheets(error: InputError, table: Table, sheet_name: str | int | None) -> InputError:
    """``error``, naming the workbook's other sheets when the first one was read by default
    (its data may be on another: instructions often come first)."""
    others = [n for n in table.sheets if n != table.sheet] if sheet_name is None else []
    if not others:
        return error
    shown = ", ".join(repr(name) for name in others[:10])
    more = f" and {len(others) - 10} more" if len(others) > 10 else ""
    return InputError(
        f"{error} (read from the first sheet, {table.sheet!r}; the workbook also has "
        f"{shown}{more}: read another with --sheet NAME / sheet_name=)"
    )
