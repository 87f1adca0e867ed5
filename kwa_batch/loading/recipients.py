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

Only regular files are read (a FIFO or a device is refused before it is opened, by
:mod:`kwa_batch.loading.files`), up to :data:`MAX_FILE_BYTES`; workbooks are read by
:mod:`kwa_batch.loading.sheets`, within its limits.

CSV files are parsed by pyarrow; a file whose quoting pyarrow might read differently from
Python's ``csv`` module, or that has ragged rows, is read by the ``csv`` module instead. Both
give the same frame. pyarrow reads on the calling thread (``use_threads=False``): its threaded
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
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from ..errors import InputError
from .files import FileKind, open_regular_file, read_open_file
from .files import check_regular_file as check_file_is_regular
from .headers import TO_ALIASES, read_header

__all__ = [
    "MAX_FILE_BYTES",
    "RECIPIENT_FILE",
    "TO_ALIASES",
    "LineNumbers",
    "RowProblems",
    "check_regular_file",
    "decode_text",
    "line_numbers",
    "load_recipients",
]

log = logging.getLogger(__name__)

#: The largest recipient file read; a larger one is refused before a byte is read.
MAX_FILE_BYTES = 2 * 2**30
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


class RowProblems(dict[Any, str]):
    """``df.attrs["malformed"]``: the reason of each malformed row, by index label.

    It never changes once loaded, so copies of the frame share it (pandas deep-copies
    ``attrs`` on most operations).
    """

    def __deepcopy__(self, memo: dict[int, object]) -> RowProblems:
        return self


class LineNumbers:
    """Line (CSV) or row (XLSX) numbers of a loaded frame, aligned with its 0…n-1 index.

    Kept in ``df.attrs``; deep copies share it (it never changes), so pandas operations that
    copy attrs stay cheap on large files.
    """

    __slots__ = ("_lines",)

    def __init__(self, lines: np.ndarray[Any, Any]) -> None:
        self._lines = lines

    def get(self, label: object) -> int | None:
        """The line of the row labelled ``label`` in the loaded frame, if known."""
        if isinstance(label, int | np.integer) and 0 <= int(label) < len(self._lines):
            return int(self._lines[int(label)])
        return None

    def lookup(self, labels: pd.Index) -> pd.arrays.IntegerArray:
        """The lines of many labels at once (NA where unknown), as nullable integers."""
        values = labels.to_numpy()
        n = len(self._lines)
        if values.dtype.kind in "iu":
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
        return isinstance(other, LineNumbers) and (
            other._lines is self._lines or bool(np.array_equal(other._lines, self._lines))
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
    suffix = file.suffix.lower()
    if suffix == ".xls":
        raise InputError(f"{file}: old .xls workbooks are not supported: save it as .xlsx or .csv")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InputError(f"delimiter {delimiter!r}: use one character such as , ; or a tab")
    attrs: dict[str, Any] = {"source": str(file)}
    others: list[str] = []
    with _open_regular(file) as handle:
        if suffix in (".xlsx", ".xlsm"):
            header, values, lines, malformed, attrs["sheet"], others = _read_xlsx(
                file, handle, sheet_name
            )
            raw = None
        else:
            if sheet_name is not None:
                log.warning(
                    "%s: --sheet %r / sheet_name= is for .xlsx workbooks: a CSV file has one "
                    "table, and it is read",
                    file,
                    sheet_name,
                )
            raw = _read_all(file, handle)
    if raw is not None:
        attrs["encoding"], data = _decode(file, raw, encoding)
        del raw  # ``data`` is the same bytes when the file is UTF-8
        found = delimiter or _sniff_delimiter(data[:_SNIFF_BYTES].decode("utf-8", "ignore"))
        parsed = _read_csv_fast(file, data, found)
        if parsed is None:
            parsed = _read_csv(file, data.decode("utf-8"), found)
        header, values, lines, malformed = parsed
        attrs["delimiter"] = found
    try:
        named = read_header(file, header, values, columns)
    except InputError as exc:
        raise _other_sheets(exc, attrs.get("sheet", ""), others) from None
    frame = pd.DataFrame(
        {name: value for name, value in zip(named.names, values, strict=True) if name is not None}
    )
    if frame.empty and not len(frame.columns):  # pragma: no cover - header checked above
        raise InputError(f"{file}: has no columns")
    frame.index = pd.RangeIndex(len(frame))
    frame.attrs.update(attrs)
    frame.attrs["line_numbers"] = LineNumbers(np.asarray(lines, dtype=np.int64))
    frame.attrs["malformed"] = RowProblems(malformed)
    frame.attrs["columns"] = named.mapped
    frame.attrs["notes"] = named.notes
    return frame


# ---------------------------------------------------------------------------------------
# Only regular files.

#: Recipient files, for :mod:`kwa_batch.loading.files`: what its messages call them, and the limit.
RECIPIENT_FILE = FileKind(
    "recipient file",
    "save the recipients as a .csv or .xlsx file first",
    MAX_FILE_BYTES,
    "split it into smaller files",
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


def _open_regular(file: Path) -> IO[bytes]:
    """The file opened for reading, once it is known to be a regular file of a sane size."""
    return open_regular_file(file, RECIPIENT_FILE)


def _read_all(file: Path, handle: IO[bytes]) -> bytes:
    """The file's bytes, never more than the limit (a file may grow while it is read)."""
    return read_open_file(file, handle, RECIPIENT_FILE)


# ---------------------------------------------------------------------------------------
# Bytes to text.


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
        _refuse_empty(file, data)
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
        _refuse_empty(file, raw)
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


def decode_text(path: str | Path, raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """A file's bytes as text, its encoding detected as a recipient file's is (for other
    lists read from files: one detector for the whole package).

    Args:
        path: the file, for messages.
        raw: its bytes.
        encoding: force an encoding instead of detecting it.

    Returns:
        The encoding's name and the text (without a byte-order mark).

    Raises:
        InputError: the bytes are empty, binary, mix encodings or do not match their BOM.

    Example:
        >>> decode_text("dnc.csv", "+44 7911 123456;résilié".encode("utf-16"))
        ('utf-16', '+44 7911 123456;résilié')
    """
    name, data = _decode(Path(path), raw, encoding)
    return name, data.decode("utf-8")


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
    bad, utf8_text = _lines_not_utf8(raw)
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
    _refuse_empty(file, data)
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
    for candidate in (guess, "latin-1"):
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


_VISIBLE = re.compile(rb"[^ \t\r\n\f\v]")


def _refuse_empty(file: Path, data: bytes) -> None:
    if _VISIBLE.search(data) is None:
        raise InputError(
            f"{file}: the file is empty: it needs a header row and one row per recipient"
        )


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

_Parsed = tuple[list[str], list[Any], np.ndarray[Any, Any], dict[int, str]]


def _read_csv_fast(file: Path, data: bytes, delimiter: str) -> _Parsed | None:
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
    row_lines = lines[rows][keep]
    if not len(row_lines):
        raise InputError(f"{file}: has a header but no rows: add one row per recipient")
    out = [pd.array(c, dtype="str") for c in columns]
    return header, out, row_lines, {}


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


def _read_csv(file: Path, text: str, delimiter: str) -> _Parsed:
    """Parse with Python's csv module: the reference, and the path for ragged files."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: dict[int, str] = {}
    start = 1
    with _large_fields():
        try:
            for record in reader:
                blank = all(_BLANK_CELL.fullmatch(cell) for cell in record)
                if header is None:
                    if not blank:
                        header = record
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
                        f"line {start} has {_fields(len(record))} but the header has "
                        f"{_fields(len(header))} ({why})"
                    )
                    record = (record + [""] * len(header))[: len(header)]
                rows.append(record)
                lines.append(start)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise _unparsable(file, exc, start, reader.line_num, delimiter) from None
    if header is None:
        raise InputError(
            f"{file}: the file is empty: it needs a header row and one row per recipient"
        )
    if not rows:
        raise InputError(f"{file}: has a header but no rows: add one row per recipient")
    columns = [
        pd.array([row[i] if row[i] != "" else None for row in rows], dtype="str")
        for i in range(len(header))
    ]
    return header, columns, np.asarray(lines, dtype=np.int64), malformed


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


def _read_xlsx(
    file: Path, handle: IO[bytes], sheet_name: str | int | None
) -> tuple[list[str], list[Any], np.ndarray[Any, Any], dict[int, str], str, list[str]]:
    """The sheet's table: the first row with text is the header, the rest are rows; and,
    when no sheet was asked for, the workbook's other sheets (for the messages).

    Built from the cells present (:mod:`kwa_batch.loading.sheets`), so what it costs follows the
    cells in the file, not the size the sheet claims.
    """
    from .sheets import MAX_CELLS, read_sheet  # only for workbooks

    sheet = read_sheet(file, handle, sheet_name)
    others = [name for name in sheet.sheets if name != sheet.title] if sheet_name is None else []
    header: list[str] | None = None
    rows: list[dict[int, str]] = []
    lines: list[int] = []
    malformed: dict[int, str] = {}
    for number, cells in sheet.rows:
        if all(_BLANK_CELL.fullmatch(text) for text in cells.values()):
            continue
        if header is None:
            width = max(c for c, text in cells.items() if text.strip())
            header = [cells.get(c, "") for c in range(1, width + 1)]
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
    if header is None:
        raise _other_sheets(
            InputError(
                f"{file}: the sheet is empty ({sheet.title!r}): it needs a header row and one "
                "row per recipient"
            ),
            sheet.title,
            others,
        )
    if not rows:
        raise _other_sheets(
            InputError(
                f"{file}: has a header but no rows (sheet {sheet.title!r}): add one row per "
                "recipient"
            ),
            sheet.title,
            others,
        )
    columns = []
    for position in range(1, len(header) + 1):
        values: list[str | None] = [None] * len(rows)
        for i, cells in enumerate(rows):
            text = cells.get(position)
            if text:
                values[i] = text
        columns.append(pd.array(values, dtype="str"))
    return header, columns, np.asarray(lines, dtype=np.int64), malformed, sheet.title, others


def _other_sheets(error: InputError, title: str, others: list[str]) -> InputError:
    """``error``, naming the workbook's other sheets when the first one was read by default
    (its data may be on another: instructions often come first)."""
    if not others:
        return error
    shown = ", ".join(repr(name) for name in others[:10])
    more = f" and {len(others) - 10} more" if len(others) > 10 else ""
    return InputError(
        f"{error} (read from the first sheet, {title!r}; the workbook also has {shown}{more}: "
        "read another with --sheet NAME / sheet_name=)"
    )
