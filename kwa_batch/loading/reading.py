"""Reading a user's table (CSV or XLSX) as text, exactly as written: the one reader.

Recipient files (:mod:`kwa_batch.loading.recipients`), template catalogues
(:mod:`kwa_batch.catalogue`), suppression lists (:mod:`kwa_batch.validation.suppression`)
and rate cards (:mod:`kwa_batch.pricing`) are all read by :func:`read_table` (or
:func:`read_tables`, every sheet of a workbook), so they share what a user's file meets:

- only a regular file, within its kind's size (:mod:`kwa_batch.loading.files`: a FIFO or a
  device is refused before it is opened);
- a ``.xlsx`` workbook read by :mod:`kwa_batch.loading.sheets`, within its limits, its sheet
  named in any case (``--sheet recipients`` finds ``Recipients``);
- any other file read as CSV: UTF-8, UTF-16/32 (with a byte-order mark or without), or the
  legacy code page charset-normalizer detects (cp1252, latin-1…, with a warning); a file
  that mixes encodings, a binary file, or an unclosed quote is refused in one line naming
  the line; the delimiter (``,`` ``;`` tab or ``|``) is detected; blank lines are skipped;
- at most :data:`~kwa_batch.loading.sheets.MAX_COLUMNS` columns, in a CSV file as in a sheet;
- the same messages, in the words of the file's :class:`~kwa_batch.loading.files.FileKind`.

Nothing is converted: every cell is text (``0044…`` keeps its zeros), an empty cell is
missing. What each table means (its columns, its checks) stays with its caller.

CSV files are parsed by pyarrow; a file whose quoting pyarrow might read differently from
Python's ``csv`` module, or that has ragged rows, is read by the ``csv`` module instead. Both
give the same table. pyarrow reads on the calling thread (``use_threads=False``): its threaded
reader releases our Python buffer from a worker thread, which aborts the process
(``terminate called without an active exception``, exit 134) when that happens while the
interpreter exits (apache/arrow#34314); on a 1M-row file the serial read is as fast here.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from ..errors import InputError
from .files import FileKind, open_regular_file, read_open_file

__all__ = [
    "WORKBOOK_SUFFIXES",
    "EmptyTableError",
    "Table",
    "read_table",
    "read_table_parts",
    "read_tables",
]

log = logging.getLogger(__name__)

#: The suffixes read as workbooks; any other file is read as CSV text.
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t", "|")
# A record is blank when every cell is empty or holds only these (Python's csv path and the
# pyarrow path agree on it).
_BLANK = " \t\r\n\f\v\u00a0"
_BLANK_CELL = re.compile(f"[{_BLANK}]*")
_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"SQLite format 3": "a SQLite database",
}


@dataclass(frozen=True)
class Table:
    """A user's table as read: the header and the columns of text under it.

    Attributes:
        source: the file.
        header: the header's cells as written (``[]`` when the file holds nothing).
        columns: one array of text (``str`` dtype, NA for an empty cell) per header cell.
        lines: each row's line in the file (CSV) or its row number (XLSX).
        header_line: the header's line (or row), 0 when there is none.
        malformed: rows (by position) whose field count does not match the header, with
            the reason; they are padded or cut to the header.
        encoding, delimiter: how a CSV file was read.
        sheet: the worksheet read; ``sheets``: every worksheet of the workbook.
    """

    source: Path
    header: list[str]
    columns: list[Any]
    lines: np.ndarray[Any, Any]
    header_line: int = 0
    malformed: dict[int, str] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    sheets: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.lines)

    def frame(self) -> pd.DataFrame:
        """The rows as a frame of text, its columns named as the header writes them
        (indexed 0, 1, 2… in file order)."""
        frame = pd.DataFrame(dict(enumerate(self.columns)), index=pd.RangeIndex(len(self)))
        frame.columns = pd.Index(self.header, dtype="object") if self.header else frame.columns
        return frame

    def labels(self) -> list[str]:
        """Where each row is, for messages: ``line 5`` in a CSV file, ``row 5`` in a sheet."""
        word = "row" if self.sheet is not None else "line"
        return [f"{word} {int(n)}" for n in self.lines]


class EmptyTableError(InputError):
    """The file (or the sheet) holds no header, or a header and no rows; ``table`` is what
    was read (its ``sheet`` and ``sheets`` tell a workbook's other sheets)."""

    def __init__(self, message: str, table: Table) -> None:
        super().__init__(message)
        self.table = table


def read_table(
    path: str | Path,
    kind: FileKind,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    comments: bool = False,
    empty: bool = False,
) -> Table:
    """Read a user's table: a worksheet of a ``.xlsx`` workbook, or a CSV file.

    Args:
        path: the file.
        kind: what the file is for (messages, size limit, what its rows are).
        sheet: a workbook's sheet by name (in any case) or position (the first by default);
            for a CSV file, ignored with a warning.
        encoding: a CSV file's encoding, instead of detecting it.
        delimiter: a CSV file's delimiter, instead of detecting it.
        comments: a CSV file's text from ``#`` to the end of its line is a comment.
        empty: give back an empty file, or a header without rows, instead of refusing it.

    Raises:
        InputError: the file is not a regular file, too large, binary, not text in any
            encoding, cannot be parsed, or has no such sheet; :class:`EmptyTableError` when
            it holds no rows (unless ``empty``). The message says which and what to do.

    Example:
        >>> from kwa_batch.loading.recipients import RECIPIENT_FILE
        >>> table = read_table("sample_data/recipients.csv", RECIPIENT_FILE)  # doctest: +SKIP
        >>> table.header[0], table.labels()[0]  # doctest: +SKIP
        ('to', 'line 2')
    """
    return _read(Path(path), kind, sheet, encoding, delimiter, comments, empty, every=False)[0]


def read_tables(
    path: str | Path, kind: FileKind, *, sheet: str | int | None = None, empty: bool = False
) -> list[Table]:
    """Every sheet of a workbook (or the one ``sheet`` names), each read as
    :func:`read_table` reads one; a CSV file is one table."""
    return _read(Path(path), kind, sheet, None, None, False, empty, every=sheet is None)


#: How much of a file :func:`read_table_parts` reads at a time.
PART_BLOCK_BYTES = 1 << 20
#: The longest record (line, or lines inside quotes) a file read in parts may hold.
MAX_RECORD_BYTES = 64 << 20


def read_table_parts(
    path: str | Path,
    kind: FileKind,
    rows: int,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Iterator[Table]:
    """A CSV file's table in parts of at most ``rows`` rows, read as it goes: what is in
    memory is one part, whatever the file's size.

    Each part is parsed by the reader of :func:`read_table` (the header, then the part's
    lines), so its cells, its malformed rows and their messages are the same, and each
    row's line is its line in the file. The file is split only between records (a line
    break inside double quotes is part of its value). The encoding is detected from the
    file's start (a byte-order mark, UTF-16 without one, else UTF-8, else the code page
    :func:`read_table` would guess, with the same warning); a file whose later lines are
    not in that encoding is refused naming the first such line.

    Raises:
        InputError: as :func:`read_table` (:class:`EmptyTableError` for a file without a
            header or rows), part by part; a record longer than
            :data:`MAX_RECORD_BYTES` (an unclosed quote).
    """
    file = Path(path)
    if file.suffix.lower() in (*WORKBOOK_SUFFIXES, ".xls"):
        raise InputError(f"{file}: a workbook is read whole (read_table), not in parts")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InputError(f"delimiter {delimiter!r}: use one character such as , ; or a tab")
    with open_regular_file(file, kind) as handle:
        first = True
        for table in _parts(file, _utf8_blocks(file, handle, encoding), rows, delimiter):
            _refuse_wide(table, kind)
            if first:
                _refuse_empty(table, kind)
            first = False
            yield table


def _utf8_blocks(
    file: Path, handle: IO[bytes], encoding: str | None
) -> Iterator[tuple[str, bytes]]:
    """The file's text as UTF-8 bytes, block by block, each with the encoding's name."""
    head = handle.read(_SNIFF_BYTES)
    codec = encoding
    if codec is None:
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            codec = "utf-32"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            codec = "utf-16"
        elif head.startswith(codecs.BOM_UTF8):
            codec = "utf-8-sig"
        elif b"\x00" in head:
            codec = _utf16_without_bom(head)
            if codec is None:
                raise InputError(f"{file}: is a binary file, not a CSV")
        else:
            codec = _scan_utf8(file, handle, head)
    try:
        decoder = codecs.getincrementaldecoder(codec)()
    except LookupError:
        raise InputError(f"{file}: cannot be read as {codec}: unknown encoding") from None
    utf8 = codecs.lookup(codec).name == "utf-8"  # the bytes are checked, not copied
    lines = 1
    block = head
    first = True
    while True:
        final = len(block) < (_SNIFF_BYTES if first else PART_BLOCK_BYTES)
        try:
            text = decoder.decode(block, final=final)
        except UnicodeDecodeError as exc:
            line = lines + block[: max(exc.start, 0)].count(b"\n")
            raise InputError(
                f"{file}: line {line} is not {codec} (the file is read in parts, in the "
                "encoding of its start): save the file as CSV UTF-8, or pass "
                "encoding=/--encoding"
            ) from None
        if first:
            text = text.lstrip("\ufeff")
            _refuse_binary(file, text)
        data = block if utf8 and codec != "utf-8-sig" else _utf8(file, text)
        lines += block.count(b"\n")
        yield codec, data
        if final:
            return
        first = False
        try:
            block = handle.read(PART_BLOCK_BYTES)
        except OSError as exc:
            raise InputError(f"{file}: cannot be read: {exc.strerror or exc}") from None


def _scan_utf8(file: Path, handle: IO[bytes], head: bytes) -> str:
    """The encoding of a file without a byte-order mark, decided as :func:`_decode` decides
    it for the whole file, reading it once (a block at a time) from ``handle``, which is
    left at the end of ``head``: UTF-8, else refused if it mixes encodings, else the code
    page its start and the first line that is not UTF-8 read best in (with a warning)."""
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise InputError(f"{file}: is {what}, not a CSV file")
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        _decode(file, head, None)  # the messages of a workbook given as CSV
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    bad: int | None = None
    block = head
    while block:
        try:
            decoder.decode(block, final=False)
        except UnicodeDecodeError as exc:
            bad = offset + max(exc.start, 0)
            break
        offset += len(block)
        block = handle.read(PART_BLOCK_BYTES)
    if bad is None and decoder.getstate()[0]:
        bad = offset - len(decoder.getstate()[0])  # a character cut off at the end
    if bad is None:
        handle.seek(len(head))
        return "utf-8"
    handle.seek(0)
    lines_bad: list[int] = []
    utf8_text = False
    number, rest = 0, b""
    while block := handle.read(PART_BLOCK_BYTES):
        text = rest + block
        cut = text.rfind(b"\n") + 1
        found, utf8 = _lines_not_utf8(text[:cut] if cut else b"")
        lines_bad += [number + n for n in found if cut]
        utf8_text |= utf8
        number += text[:cut].count(b"\n")
        rest = text[cut:]
    found, utf8 = _lines_not_utf8(rest)
    lines_bad += [number + n for n in found if rest]
    _refuse_mixed_lines(file, lines_bad, utf8_text or utf8)
    handle.seek(max(bad - _SNIFF_BYTES // 2, 0))
    around = handle.read(_SNIFF_BYTES)
    sample = head if bad < _SNIFF_BYTES else head + b"\n" + around
    guess = _legacy_guess(sample)
    log.warning(
        "%s is not UTF-8; read it as %s. Check accented names in the results, or save the "
        "file as 'CSV UTF-8' and load it again (or pass encoding=/--encoding).",
        file,
        guess,
    )
    handle.seek(len(head))
    return guess


def _parts(
    file: Path, blocks: Iterator[tuple[str, bytes]], rows: int, delimiter: str | None
) -> Iterator[Table]:
    """Cut the text into parts of ``rows`` records (the first: and its header), and parse
    each with the header in front of it."""
    pieces: list[bytes] = []
    size = 0
    found = 0  # records ended in ``pieces``
    inside = False  # within double quotes at the end of ``pieces``
    line = 1  # the file's line where ``pieces`` starts
    header: _Header | None = None
    codec = "utf-8"
    yielded = False
    for codec, block in blocks:
        start = 0
        while start < len(block):
            want = rows + (1 if header is None else 0) - found
            cut, ended, inside = _record_ends(block, start, want, inside)
            found += ended
            if cut is None:
                pieces.append(block[start:])
                size += len(block) - start
                if size > MAX_RECORD_BYTES and found == 0:
                    raise InputError(
                        f"{file}: line {line} starts a record longer than "
                        f"{MAX_RECORD_BYTES >> 20} MiB (a quote that is never closed?): add "
                        'the missing closing quote ("), or remove the stray one'
                    )
                break
            pieces.append(block[start:cut])
            start = cut
            data = b"".join(pieces)
            table, header = _part(file, data, codec, delimiter, header, line)
            if table is not None:
                yielded = True
                yield table
            if header is None:  # only blank lines so far: keep them, read on
                found = 0
                continue
            line += data.count(b"\n")
            pieces, size, found = [], 0, 0
    data = b"".join(pieces)
    table, header = _part(file, data, codec, delimiter, header, line)
    if table is not None:
        yield table
    elif header is None:
        yield _read_text(file, data, codec, delimiter, False)  # no header: refused by the caller
    elif not yielded:
        yield _read_text(file, header.text, codec, header.delimiter, False)  # no rows: too


@dataclass(frozen=True)
class _Header:
    """A file's header, as found in its first part, to put in front of the others."""

    cells: list[str]
    text: bytes
    delimiter: str


def _record_ends(block: bytes, start: int, want: int, inside: bool) -> tuple[int | None, int, bool]:
    """Where the ``want``-th record ending in ``block[start:]`` ends (after its line
    break), or None; how many records end before that; whether that spot is inside
    double quotes."""
    buf = np.frombuffer(block, dtype=np.uint8)[start:]
    quotes = np.flatnonzero(buf == ord('"'))
    newlines = np.flatnonzero(buf == ord("\n"))
    outside = (np.searchsorted(quotes, newlines) + int(inside)) % 2 == 0
    ends = newlines[outside]
    if len(ends) >= want:
        end = int(ends[want - 1]) + 1
        return start + end, want, False
    return None, len(ends), (len(quotes) + int(inside)) % 2 == 1


def _part(
    file: Path,
    data: bytes,
    codec: str,
    delimiter: str | None,
    header: _Header | None,
    line: int,
) -> tuple[Table | None, _Header | None]:
    """One part's table (None when it holds no rows), and the header, found in the first
    part that has one (until then the text is kept for the next part)."""
    if header is None:
        table = _read_text(file, data, codec, delimiter, False)
        if not table.header:
            return None, None
        found = table.delimiter or ","
        written = io.StringIO()
        csv.writer(written, delimiter=found, lineterminator="\n").writerow(table.header)
        header = _Header(table.header, written.getvalue().encode(), found)
        return (table if len(table) else None), header
    if _is_empty(data):
        return None, header
    offset = line - 1 - header.text.count(b"\n")
    table = _read_text(file, header.text + data, codec, header.delimiter, False, offset)
    return (table if len(table) else None), header


def _read(
    file: Path,
    kind: FileKind,
    sheet: str | int | None,
    encoding: str | None,
    delimiter: str | None,
    comments: bool,
    empty: bool,
    *,
    every: bool,
) -> list[Table]:
    suffix = file.suffix.lower()
    if suffix == ".xls":
        raise InputError(f"{file}: old .xls workbooks are not supported: save it as .xlsx or .csv")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InputError(f"delimiter {delimiter!r}: use one character such as , ; or a tab")
    with open_regular_file(file, kind) as handle:
        if suffix in WORKBOOK_SUFFIXES:
            tables = _read_workbook(file, handle, sheet, every=every)
        else:
            if sheet is not None:
                log.warning(
                    "%s: --sheet %r / sheet_name= is for .xlsx workbooks: a CSV file has one "
                    "table, and it is read",
                    file,
                    sheet,
                )
            raw = read_open_file(file, handle, kind)
    if suffix not in WORKBOOK_SUFFIXES:
        found_encoding, data = _decode(file, raw, encoding)
        del raw  # ``data`` is the same bytes when the file is UTF-8
        tables = [_read_text(file, data, found_encoding, delimiter, comments)]
        _refuse_wide(tables[0], kind)
    if not empty:
        for table in tables:
            _refuse_empty(table, kind)
    return tables


def _refuse_wide(table: Table, kind: FileKind) -> None:
    """Refuse a CSV header wider than a workbook may be (:data:`~.sheets.MAX_COLUMNS`)."""
    from .sheets import MAX_COLUMNS

    if len(table.header) > MAX_COLUMNS:
        raise InputError(
            f"{table.source}: its header has {len(table.header):,} columns, more than the "
            f"{MAX_COLUMNS:,} a {kind.noun} may have: keep only the table's columns (or check "
            "the delimiter)"
        )


def _refuse_empty(table: Table, kind: FileKind) -> None:
    """Refuse a table without a header, or without rows, in the words of its kind."""
    if table.sheet is None:
        if not table.header:
            raise EmptyTableError(
                f"{table.source}: the file is empty: it needs a header row and {kind.rows}",
                table,
            )
        if not len(table):
            raise EmptyTableError(
                f"{table.source}: has a header but no rows: add {kind.rows}", table
            )
        return
    if not table.header:
        raise EmptyTableError(
            f"{table.source}: the sheet is empty ({table.sheet!r}): it needs a header row and "
            f"{kind.rows}",
            table,
        )
    if not len(table):
        raise EmptyTableError(
            f"{table.source}: has a header but no rows (sheet {table.sheet!r}): add {kind.rows}",
            table,
        )


# ---------------------------------------------------------------------------------------
# CSV files.

_COMMENT = re.compile(rb"#[^\r\n]*")


def _read_text(
    file: Path,
    data: bytes,
    found_encoding: str,
    delimiter: str | None,
    comments: bool,
    offset: int = 0,
) -> Table:
    """A CSV file's table, from its text as UTF-8 bytes (see :func:`_decode`); ``offset``
    is added to the line of every row after the header (a part of a file read after its
    header: see :func:`read_table_parts`)."""
    if comments:
        data = _COMMENT.sub(b"", data)
    if _is_empty(data):
        empty = np.zeros(0, dtype=np.int64)
        return Table(file, [], [], empty, encoding=found_encoding, delimiter=delimiter)
    found = delimiter or _sniff_delimiter(data[:_SNIFF_BYTES].decode("utf-8", "ignore"))
    parsed = _read_csv_fast(file, data, found, offset)
    if parsed is None:
        parsed = _read_csv(file, data.decode("utf-8"), found, offset)
    header, columns, lines, malformed, header_line = parsed
    return Table(
        file,
        header,
        columns,
        lines,
        header_line=header_line,
        malformed=malformed,
        encoding=found_encoding,
        delimiter=found,
    )


def _decode(file: Path, raw: bytes, encoding: str | None) -> tuple[str, bytes]:
    """The name of the file's encoding, and its text as UTF-8 bytes (``raw`` itself, without
    a copy, when the file is UTF-8 already)."""
    if encoding:
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise InputError(f"{file}: cannot be read as {encoding}: {exc}") from None
        return encoding, _utf8(file, text.lstrip("\ufeff"))
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return _decode_as(file, raw, "utf-32")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_as(file, raw, "utf-16")
    if raw.startswith(codecs.BOM_UTF8):
        data = raw[len(codecs.BOM_UTF8) :]
        if _first_bad_utf8(data) is not None:
            lines = _shown_lines(_lines_not_utf8(data)[0])
            raise InputError(
                f"{file}: the file says it is UTF-8 but is not ({lines} not): save it again as "
                "CSV UTF-8"
            )
        _refuse_binary(file, data[:_SNIFF_BYTES].decode("utf-8", "ignore"))
        return "utf-8-sig", data
    for magic, what in _BINARY_MAGIC.items():
        if raw.startswith(magic):
            raise InputError(f"{file}: is {what}, not a CSV file")
    if raw.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{file}: is a binary file, not a CSV (it looks like an .xlsx workbook: give it the "
            ".xlsx extension)"
        )
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{file}: is a binary file, not a CSV (it looks like an old Excel .xls workbook: "
            "save it as .xlsx or CSV UTF-8)"
        )
    head = raw[:_SNIFF_BYTES]
    if b"\x00" in head:
        utf16 = _utf16_without_bom(head)
        if utf16 is None:
            raise InputError(f"{file}: is a binary file, not a CSV")
        return _decode_as(file, raw, utf16)
    bad = _first_bad_utf8(raw)
    if bad is None:
        _refuse_binary(file, head.decode("utf-8", "ignore"))
        return "utf-8", raw
    _refuse_mixed(file, raw)
    text, guess = _decode_legacy(raw, bad)
    _refuse_binary(file, text[:_SNIFF_BYTES])
    log.warning(
        "%s is not UTF-8; read it as %s. Check accented names in the results, or save the "
        "file as 'CSV UTF-8' and load it again (or pass encoding=/--encoding).",
        file,
        guess,
    )
    return guess, _utf8(file, text)


_SHOWN_LINES = 10


def _lines_not_utf8(raw: bytes) -> tuple[list[int], bool]:
    """The lines (1-based) that do not decode as UTF-8, and whether some other line holds
    non-ASCII text that does (the sign of a file whose rows were saved in two encodings)."""
    bad: list[int] = []
    utf8_text = False
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
        else:
            utf8_text = True
    return bad, utf8_text


def _shown_lines(lines: list[int]) -> str:
    """``line 5 is`` or ``lines 5, 9 and 3 more are``."""
    shown = ", ".join(str(n) for n in lines[:_SHOWN_LINES])
    more = f" and {len(lines) - _SHOWN_LINES:,} more" if len(lines) > _SHOWN_LINES else ""
    return f"line {shown} is" if len(lines) == 1 else f"lines {shown}{more} are"


def _refuse_mixed(file: Path, raw: bytes) -> None:
    """Refuse a file with UTF-8 lines and lines in another encoding.

    Read whole in one code page, its UTF-8 lines come out garbled (``JosĂ©``); read as UTF-8,
    the others would. Which code page a lone line is in cannot be told from a name or two,
    so the file is refused with the lines that are not UTF-8, rather than guessed.
    """
    _refuse_mixed_lines(file, *_lines_not_utf8(raw))


def _refuse_mixed_lines(file: Path, bad: list[int], utf8_text: bool) -> None:
    """:func:`_refuse_mixed`, from the lines that are not UTF-8 and whether some other line
    holds non-ASCII UTF-8 text."""
    if bad and utf8_text:
        raise InputError(
            f"{file}: mixes encodings: its accented text is UTF-8 but {_shown_lines(bad)} "
            "not (saved in another encoding, such as Windows cp1252): fix those lines and save "
            "the file again as CSV UTF-8, or pass encoding=/--encoding to read the whole file "
            "in one encoding"
        )


def _utf8(file: Path, text: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{file}: holds characters that are not text: save it as CSV UTF-8"
        ) from None
    return data


def _first_bad_utf8(data: bytes) -> int | None:
    """Where ``data`` stops being UTF-8 (None if it all is), checked in slices so that no
    decoded copy of a large file is kept."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 22
    for start in range(0, max(len(data), 1), step):
        try:
            decoder.decode(data[start : start + step], final=start + step >= len(data))
        except UnicodeDecodeError as exc:
            return max(start + exc.start, 0)
    return None


def _decode_as(file: Path, raw: bytes, encoding: str) -> tuple[str, bytes]:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise InputError(
            f"{file}: the file says it is {encoding.upper()} but is not: save it again as CSV UTF-8"
        ) from None
    text = text.lstrip("\ufeff")
    _refuse_binary(file, text[:_SNIFF_BYTES])
    return encoding, _utf8(file, text)


def _utf16_without_bom(head: bytes) -> str | None:
    """``utf-16-le``/``-be`` when NUL bytes sit at every other place, as in UTF-16 text."""
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


# Windows code pages Excel writes "CSV" in, most used first (the tie-break).
_LEGACY = ("cp1252", "cp1250", "cp1251", "cp1256", "cp1253", "cp1254", "cp1257", "cp1255")
_PLAUSIBLE_SYMBOLS = frozenset("€–—‘’“”…°£¥©®™«»·•¿¡ºª×÷§¶¢")


def _plausible(text: str) -> float:
    """The share of non-ASCII characters that are letters or common typographic symbols
    (a wrong code page turns letters into marks, controls or odd symbols)."""
    others = [ch for ch in text if ord(ch) > 127]
    if not others:
        return 1.0
    good = sum(1 for ch in others if ch.isalpha() or ch in _PLAUSIBLE_SYMBOLS)
    return good / len(others)


def _decode_legacy(raw: bytes, bad: int) -> tuple[str, str]:
    """The text of a file that is not UTF-8, in the Windows code page it most plausibly is.

    Each code page that decodes a sample (the start of the file, and around the first byte
    that is not UTF-8) is scored on how plausible its non-ASCII characters are; among the
    best, charset-normalizer's language model decides, and cp1252 wins ties. Short samples
    cannot always be told apart (Western and Central European letters share bytes): the
    caller reports the choice, and ``encoding=`` overrides it.
    """
    sample = raw[:_SNIFF_BYTES]
    if bad >= _SNIFF_BYTES:
        sample += b"\n" + raw[max(bad - _SNIFF_BYTES // 2, 0) : bad + _SNIFF_BYTES // 2]
    guess = _legacy_guess(sample)
    for candidate in (guess, "latin-1"):
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _legacy_guess(sample: bytes) -> str:
    """The code page :func:`_decode_legacy` reads a file in, from its ``sample`` (the
    start, and around the first byte that is not UTF-8)."""
    scores: dict[str, float] = {}
    for candidate in _LEGACY:
        try:
            scores[candidate] = _plausible(sample.decode(candidate))
        except UnicodeDecodeError:
            continue
    best = max(scores.values(), default=0.0)
    finalists = [c for c in _LEGACY if c in scores and scores[c] >= best - 0.02]
    guess = finalists[0] if finalists else "latin-1"
    if len(finalists) > 1:
        try:
            from charset_normalizer import from_bytes

            matches = list(from_bytes(sample, cp_isolation=finalists))
        except Exception:  # the language model is only a tie-break
            matches = []
        if matches:
            top = min(
                matches,
                key=lambda m: (
                    round(m.chaos, 2),
                    -round(m.coherence, 2),
                    finalists.index(m.encoding) if m.encoding in finalists else len(_LEGACY),
                ),
            )
            if top.encoding in finalists:
                guess = top.encoding
    if guess != "cp1252" and "cp1252" in scores and sample.decode("cp1252") == sample.decode(guess):
        guess = "cp1252"  # the same text either way: name the common one
    return guess


_VISIBLE = re.compile(rb"[^ \t\r\n\f\v]")


def _is_empty(data: bytes) -> bool:
    """Whether the text holds nothing but spaces and line breaks."""
    return _VISIBLE.search(data) is None


def _refuse_binary(file: Path, text: str) -> None:
    sample = text[:_SNIFF_BYTES]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if controls > max(8, len(sample) // 20):
        raise InputError(f"{file}: is a binary file, not a CSV")


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first records into the same number (>1) of fields."""
    lines = text[:_SNIFF_BYTES].splitlines()
    sample = "\n".join(lines[:50] if len(lines) > 1 else lines)
    best, best_score = ",", (0, 0)
    for candidate in _DELIMITERS:
        try:
            records = [
                r
                for r in csv.reader(io.StringIO(sample), delimiter=candidate)
                if any(c.strip() for c in r)
            ]
        except csv.Error:
            continue
        if len(lines) > 50 and len(records) > 1:
            records = records[:-1]  # the last may be cut by the sample
        if not records:
            continue
        width = len(records[0])
        same = sum(1 for r in records if len(r) == width)
        score = (same if width > 1 else 0, width)
        if score > best_score:
            best, best_score = candidate, score
    return best


# ---------------------------------------------------------------------------------------
# CSV text to columns.

# The header, its columns, each row's line, the malformed rows, the header's line.
_Parsed = tuple[list[str], list[Any], np.ndarray[Any, Any], dict[int, str], int]


def _read_csv_fast(file: Path, data: bytes, delimiter: str, offset: int = 0) -> _Parsed | None:
    """Parse with pyarrow, or return None where Python's csv module must decide."""
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None  # a bare carriage return ends a line for csv, not for this path
    found = _line_bounds(data, delimiter)
    if found is None:
        return None
    starts, content_ends, lines, records, multiline = found
    first = records[0]
    header_text = data[starts[first] : content_ends[first]].decode("utf-8", "replace")
    try:
        header = next(csv.reader(io.StringIO(header_text, newline=""), delimiter=delimiter))
    except (csv.Error, StopIteration):
        return None
    if not any(_BLANK_CELL.fullmatch(cell) is None for cell in header):
        return None  # a blank first line: the csv path skips it and explains the rest
    rows = records[1:]
    if not len(rows):
        return None
    read = _arrow_rows(data, int(starts[rows[0]]), len(header), delimiter, multiline)
    if read is None:
        return None
    table, odd = read
    if odd:
        if any(_BLANK_CELL.fullmatch(text) is None for text in odd):
            return None  # ragged rows: the csv path loads them and says which
        # Lines of spaces were skipped: drop them from the line numbers too.
        texts = [data[starts[r] : content_ends[r]] for r in rows]
        rows = np.array(
            [
                r
                for r, t in zip(rows, texts, strict=True)
                if _BLANK_CELL.fullmatch(t.decode("utf-8", "replace")) is None
            ],
            dtype=np.int64,
        )
    if table.num_rows != len(rows):
        return None
    columns = [table.column(i) for i in range(table.num_columns)]
    keep = ~_blank_rows(columns)
    if not keep.all():
        mask = pa.array(keep)
        columns = [c.filter(mask) for c in columns]
    row_lines = lines[rows][keep] + offset
    out = [pd.array(c, dtype="str") for c in columns]
    return header, out, row_lines, {}, int(lines[first])


def _line_bounds(data: bytes, delimiter: str) -> tuple[Any, Any, Any, Any, bool] | None:
    """Where each record starts and ends, its line in the file, the non-empty records, and
    whether values span lines; None where quotes do not open and close fields cleanly."""
    buf = np.frombuffer(data, dtype=np.uint8)
    size = len(buf)
    sep = ord(delimiter)
    quotes = np.flatnonzero(buf == ord('"'))
    newlines = np.flatnonzero(buf == ord("\n"))
    if len(quotes) % 2:
        return None  # an unclosed quote: the csv module says where
    multiline = False
    boundaries = newlines
    if len(quotes):
        # The quotes must open and close fields (or be doubled inside them) for their
        # parity to tell which newlines are inside a value.
        opening, closing = quotes[0::2], quotes[1::2]
        before = np.where(opening > 0, buf[np.maximum(opening - 1, 0)], ord("\n"))
        doubled_open = np.r_[False, opening[1:] == closing[:-1] + 1]
        after = np.where(closing + 1 < size, buf[np.minimum(closing + 1, size - 1)], ord("\n"))
        doubled_close = np.r_[closing[:-1] + 1 == opening[1:], False]
        if not (
            ((before == sep) | (before == ord("\n")) | doubled_open).all()
            and ((after == sep) | (after == ord("\n")) | (after == ord("\r")) | doubled_close).all()
        ):
            return None
        inside = np.searchsorted(quotes, newlines) % 2 == 1
        multiline = bool(inside.any())
        boundaries = newlines[~inside]
    starts = np.r_[0, boundaries + 1]
    ends = np.r_[boundaries, size]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    content_ends = ends - has_cr
    lines = np.asarray(np.searchsorted(newlines, starts)) + 1
    records = np.flatnonzero(content_ends > starts)
    if not len(records):
        return None
    return starts, content_ends, lines, records, multiline


def _arrow_rows(
    data: bytes, start: int, width: int, delimiter: str, multiline: bool
) -> tuple[pa.Table, list[str]] | None:
    """The rows after the header, read by pyarrow as text, and the rows it found ragged
    (None where pyarrow cannot read them)."""
    names = [f"c{i}" for i in range(width)]
    odd: list[str] = []

    def on_invalid_row(row: Any) -> str:
        odd.append(row.text)
        return "skip"

    try:
        table = pa_csv.read_csv(
            pa.py_buffer(memoryview(data)[start:]),
            # Serial: see the module docstring (a worker thread must never hold our buffer).
            read_options=pa_csv.ReadOptions(column_names=names, encoding="utf8", use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=multiline,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.large_string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
                check_utf8=True,
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    return table, odd


def _blank_rows(columns: list[pa.Array]) -> np.ndarray[Any, Any]:
    """Rows whose every cell is empty or blank (checked column by column, on the rows
    still in doubt)."""
    import pyarrow.compute as pc

    n = len(columns[0]) if columns else 0
    doubt = np.ones(n, dtype=bool)
    pattern = f"^[{_BLANK}]*$"
    for column in columns:
        rows = np.flatnonzero(doubt)
        if not len(rows):
            break
        values = column if len(rows) == n else column.take(pa.array(rows))
        blank = pc.or_kleene(pc.is_null(values), pc.match_substring_regex(values, pattern))
        doubt[rows] = np.asarray(blank.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)
    return doubt


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


@contextmanager
def _large_fields() -> Any:
    """Let the csv module read fields longer than its default 128 KiB (restored after)."""
    previous = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _read_csv(file: Path, text: str, delimiter: str, offset: int = 0) -> _Parsed:
    """Parse with Python's csv module: the reference, and the path for ragged files
    (``offset``: added to the lines after the header)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: dict[int, str] = {}
    start = header_line = 1
    with _large_fields():
        try:
            for record in reader:
                blank = all(_BLANK_CELL.fullmatch(cell) for cell in record)
                if header is None:
                    if not blank:
                        header, header_line = record, start
                    start = reader.line_num + 1
                    continue
                if blank:
                    start = reader.line_num + 1
                    continue
                if len(record) != len(header):
                    why = (
                        f"a value that holds a {_DELIMITER_NAMES.get(delimiter, delimiter)} "
                        "needs double quotes"
                        if len(record) > len(header)
                        else "a field is missing"
                    )
                    malformed[len(rows)] = (
                        f"line {start + offset} has {_fields(len(record))} but the header has "
                        f"{_fields(len(header))} ({why})"
                    )
                    record = (record + [""] * len(header))[: len(header)]
                rows.append(record)
                lines.append(start + offset)
                start = reader.line_num + 1
        except csv.Error as exc:
            shift = offset if header is not None else 0
            raise _unparsable(
                file, exc, start + shift, reader.line_num + shift, delimiter
            ) from None
    if header is None:
        return [], [], np.zeros(0, dtype=np.int64), {}, 0
    columns = [
        pd.array([row[i] if row[i] != "" else None for row in rows], dtype="str")
        for i in range(len(header))
    ]
    return header, columns, np.asarray(lines, dtype=np.int64), malformed, header_line


_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


def _unparsable(file: Path, exc: csv.Error, start: int, line: int, delimiter: str) -> InputError:
    """A plain sentence for what Python's csv module could not parse, and the fix."""
    text = str(exc)
    if "unexpected end of data" in text or "EOF" in text:
        rest = f" (the rest of the file, to line {line}, would be inside it)"
        rest = "" if line == start else rest
        return InputError(
            f"{file}: line {start} opens a quoted value that is never closed{rest}: add the "
            'missing closing quote ("), or remove the stray one'
        )
    if "expected after" in text:
        name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
        return InputError(
            f"{file}: line {line} has a quoted value followed by more text before the next "
            f"{name}: quote the whole value and double each quote inside it "
            '("like ""this""")'
        )
    return InputError(
        f"{file}: line {line} cannot be read as CSV ({text}): check its quotes and delimiters"
    )


# ---------------------------------------------------------------------------------------
# Workbooks.


def _read_workbook(
    file: Path, handle: IO[bytes], sheet: str | int | None, *, every: bool
) -> list[Table]:
    """The sheet's table (or every sheet's), built from the cells present
    (:mod:`kwa_batch.loading.sheets`), so what it costs follows the cells in the file, not the
    size the sheet claims."""
    from .sheets import read_sheet  # only for workbooks

    first = read_sheet(file, handle, 0 if every else sheet)
    found = [first]
    if every:
        found += [read_sheet(file, handle, i) for i in range(1, len(first.sheets))]
    return [_sheet_table(file, rows) for rows in found]


def _sheet_table(file: Path, sheet: Any) -> Table:
    """One worksheet's table: the first row with text is the header, the rest are rows."""
    from .sheets import MAX_CELLS

    header: list[str] | None = None
    header_line = 0
    rows: list[dict[int, str]] = []
    lines: list[int] = []
    malformed: dict[int, str] = {}
    for number, cells in sheet.rows:
        if all(_BLANK_CELL.fullmatch(text) for text in cells.values()):
            continue
        if header is None:
            width = max(c for c, text in cells.items() if text.strip())
            header = [cells.get(c, "") for c in range(1, width + 1)]
            header_line = number
            continue
        if any(c > len(header) and text.strip() for c, text in cells.items()):
            malformed[len(rows)] = f"row {number} has values beyond the last header column"
        rows.append(cells)
        lines.append(number)
        if len(rows) * len(header) > MAX_CELLS:
            raise InputError(
                f"{file}: the sheet's table passes {MAX_CELLS:,} cells ({len(header):,} "
                f"columns, {len(rows):,} rows by row {number}), the limit: split the file, "
                "or save it as CSV UTF-8"
            )
    columns = []
    for position in range(1, len(header or []) + 1):
        values: list[str | None] = [None] * len(rows)
        for i, cells in enumerate(rows):
            text = cells.get(position)
            if text:
                values[i] = text
        columns.append(pd.array(values, dtype="str"))
    return Table(
        file,
        header or [],
        columns,
        np.asarray(lines, dtype=np.int64),
        header_line=header_line,
        malformed=malformed,
        sheet=sheet.title,
        sheets=tuple(sheet.sheets),
    )
