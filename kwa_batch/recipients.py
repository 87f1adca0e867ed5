"""Loading recipient files (CSV, XLSX) into a DataFrame of strings, exactly as written.

Nothing is converted: ``0044…`` keeps its zeros, ``+91…`` its plus, a customer called "NA"
stays "NA"; only an empty cell is missing. Column names are trimmed and lower-cased, and
common names of the recipient column (``phone``, ``mobile``, ``msisdn``…) become ``to``.
Each row's line in the file is kept in ``df.attrs["line_numbers"]`` for reports, and rows
whose field count does not match the header in ``df.attrs["malformed"]`` (they load, and
validation rejects them with code ``KWA008``).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = ["API_COLUMNS", "TO_ALIASES", "LineNumbers", "line_numbers", "load_recipients"]

log = logging.getLogger(__name__)

#: The API's own field names, which are also the CSV's column names.
API_COLUMNS = (
    "to",
    "from",
    "type",
    "channel",
    "body",
    "template_name",
    "params",
    "lang_code",
    "ref",
    "ref1",
    "ref2",
    "callback_url",
)
#: Other names people give the recipient column.
TO_ALIASES = frozenset(
    {
        "to",
        "phone",
        "phone_number",
        "phone number",
        "phonenumber",
        "mobile",
        "mobile_number",
        "mobile number",
        "mobileno",
        "mobile_no",
        "number",
        "msisdn",
        "whatsapp",
        "whatsapp_number",
        "whatsapp number",
        "recipient",
        "cell",
        "cellphone",
    }
)
_SNIFF_BYTES = 64 * 1024


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
    values = [lines.get(label) if isinstance(lines, LineNumbers) else None for label in df.index]
    return pd.Series(values, index=df.index, dtype="Int64")


def load_recipients(
    path: str | Path,
    *,
    sheet_name: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Load a recipient file into a DataFrame of strings, every cell exactly as written.

    Args:
        path: a ``.csv`` (or ``.txt``/``.tsv``) or ``.xlsx`` file.
        sheet_name: for XLSX, the sheet to read (the first by default).
        encoding: force an encoding instead of detecting it.
        delimiter: force a delimiter instead of detecting it (``,`` ``;`` or tab).

    Returns:
        A frame indexed 0, 1, 2… in file order, with column ``to`` and any others.

    Raises:
        InputError: the file is missing, empty, binary, has no recipient column, or cannot
            be parsed; the message says which and what to do.

    Example:
        >>> df = load_recipients("sample_data/recipients.csv")  # doctest: +SKIP
        >>> df.attrs["line_numbers"].get(0)  # doctest: +SKIP
        2
    """
    file = Path(path)
    if not file.exists():
        raise InputError(f"{file}: no such file")
    if file.is_dir():
        raise InputError(f"{file}: is a folder, not a recipient file")
    if file.suffix.lower() in (".xlsx", ".xlsm"):
        header, rows, lines, malformed = _read_xlsx(file, sheet_name)
        source_encoding = None
    elif file.suffix.lower() == ".xls":
        raise InputError(f"{file}: old .xls workbooks are not supported: save it as .xlsx or .csv")
    else:
        raw = file.read_bytes()
        text, source_encoding = _decode(file, raw, encoding)
        header, rows, lines, malformed = _read_csv(file, text, delimiter)
    columns = _canonical_columns(file, header)
    frame = _build_frame(columns, rows)
    frame.attrs["source"] = str(file)
    frame.attrs["line_numbers"] = LineNumbers(np.asarray(lines, dtype=np.int64))
    frame.attrs["malformed"] = malformed
    if source_encoding:
        frame.attrs["encoding"] = source_encoding
    return frame


def _decode(file: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    if not raw.strip():
        raise InputError(
            f"{file}: the file is empty: it needs a header row and one row per recipient"
        )
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise InputError(f"{file}: cannot be read as {encoding}: {exc}") from None
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise InputError(f"{file}: the file says it is UTF-16 but is not") from None
    if b"\x00" in raw[:_SNIFF_BYTES] or raw.startswith(b"PK\x03\x04"):
        hint = (
            " (it looks like an .xlsx workbook: give it the .xlsx extension)"
            if raw.startswith(b"PK\x03\x04")
            else ""
        )
        raise InputError(f"{file}: is a binary file, not a CSV{hint}")
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    guess = best.encoding if best is not None else "cp1252"
    if guess.lower().replace("-", "_") in ("utf_8", "ascii"):
        guess = "cp1252"
    try:
        text = raw.decode(guess)
    except (UnicodeDecodeError, LookupError):
        guess = "latin-1"
        text = raw.decode(guess)
    log.warning(
        "%s is not UTF-8; read it as %s. Check accented names in the results, or save the file "
        "as 'CSV UTF-8' and load it again.",
        file,
        guess,
    )
    return text, guess


def _read_csv(
    file: Path, text: str, delimiter: str | None
) -> tuple[list[str], list[list[str]], list[int], dict[int, str]]:
    if delimiter is None:
        sample = text[:_SNIFF_BYTES]
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            first = sample.splitlines()[0] if sample else ""
            delimiter = max(",;\t", key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: dict[int, str] = {}
    start = 1
    try:
        for record in reader:
            if header is None:
                if not any(cell.strip() for cell in record):
                    start = reader.line_num + 1
                    continue
                header = record
                start = reader.line_num + 1
                continue
            if not any(cell.strip() for cell in record):
                start = reader.line_num + 1
                continue
            if len(record) != len(header):
                malformed[len(rows)] = (
                    f"line {start} has {len(record)} fields but the header has {len(header)}"
                )
                record = (record + [""] * len(header))[: len(header)]
            rows.append(record)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(
            f"{file}: cannot be parsed as CSV near line {reader.line_num}: {exc} "
            "(check for an unclosed quote)"
        ) from None
    if header is None:
        raise InputError(
            f"{file}: the file is empty: it needs a header row and one row per recipient"
        )
    if not rows:
        raise InputError(f"{file}: has a header but no rows: add one row per recipient")
    return header, rows, lines, malformed


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _read_xlsx(
    file: Path, sheet_name: str | int | None
) -> tuple[list[str], list[list[str]], list[int], dict[int, str]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InputError(f"{file}: is not a readable .xlsx workbook ({exc})") from None
    try:
        if sheet_name is None:
            sheet = workbook.worksheets[0]
        elif isinstance(sheet_name, int):
            sheet = workbook.worksheets[sheet_name]
        else:
            sheet = workbook[sheet_name]
    except (KeyError, IndexError):
        names = ", ".join(workbook.sheetnames)
        workbook.close()
        raise InputError(f"{file}: has no sheet {sheet_name!r} (it has: {names})") from None
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: dict[int, str] = {}
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = [_cell_text(v) for v in values]
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            while cells and not cells[-1].strip():
                cells.pop()
            header = cells
            continue
        extra = cells[len(header) :]
        if any(c.strip() for c in extra):
            malformed[len(rows)] = f"row {number} has values beyond the last header column"
        rows.append((cells + [""] * len(header))[: len(header)])
        lines.append(number)
    workbook.close()
    if header is None:
        raise InputError(
            f"{file}: the sheet is empty: it needs a header row and one row per recipient"
        )
    if not rows:
        raise InputError(f"{file}: has a header but no rows: add one row per recipient")
    return header, rows, lines, malformed


def _canonical_columns(file: Path, header: list[str]) -> list[str]:
    names = [str(h).strip().lower() for h in header]
    if any(not n for n in names):
        position = names.index("") + 1
        raise InputError(
            f"{file}: column {position} of the header has no name: name it or delete it"
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise InputError(
                f"{file}: the header names {name!r} twice (columns {seen[name]} and {position}): "
                "rename or remove one"
            )
        seen[name] = position
    candidates = [n for n in names if n in TO_ALIASES]
    if not candidates:
        raise InputError(
            f"{file}: no recipient column: name the column of phone numbers 'to' "
            f"(found: {', '.join(names)})"
        )
    if len(candidates) > 1:
        raise InputError(
            f"{file}: {' and '.join(repr(c) for c in candidates)} could both be the recipient "
            "column: rename the one to send to as 'to'"
        )
    return ["to" if n == candidates[0] else n for n in names]


def _build_frame(columns: list[str], rows: list[list[str]]) -> pd.DataFrame:
    data: Mapping[str, Any] = {
        name: pd.array([row[i] if row[i] != "" else None for row in rows], dtype="str")
        for i, name in enumerate(columns)
    }
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
