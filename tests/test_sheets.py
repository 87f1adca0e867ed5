"""Reading worksheets safely: costs follow the cells present, limits refuse in one line.

The hostile workbooks are built here, small, with zipfile. Each bomb is loaded in a child
process (a generous deadline instead of a hang, and its peak memory measured apart from
the test run's); what must come of it is a correct load or one InputError line.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from kwa_batch import InputError, load_recipients
from kwa_batch.loading import sheets as sheets_module
from kwa_batch.loading.recipients import line_numbers
from kwa_batch.loading.sheets import MAX_CELL_CHARS, MAX_COLUMNS, MAX_TOTAL_CHARS

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
OK = "+919876543210"


_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
CONTENT_TYPES = (  # what openpyxl needs to open the file too (for comparisons)
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_TYPE}.worksheet+xml"/>'
    "</Types>"
)
SHARED_TYPE = (
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_TYPE}.sharedStrings+xml"/>'
)


def write_xlsx(
    path: Path,
    sheet_data: str,
    *,
    shared: list[str] | None = None,
    dimension: str = "A1",
    raw_sheet: str | None = None,
    shared_items: str | None = None,
) -> Path:
    """A minimal workbook: one sheet with ``sheet_data`` inside ``<sheetData>``."""
    sheet = raw_sheet or (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}">'
        f'<dimension ref="{dimension}"/><sheetData>{sheet_data}</sheetData></worksheet>'
    )
    rels = (
        f'<Relationships xmlns="{PKG}">'
        f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
        + (
            f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
            if shared is not None or shared_items is not None
            else ""
        )
        + "</Relationships>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        has_shared = shared is not None or shared_items is not None
        types = CONTENT_TYPES.replace("</Types>", SHARED_TYPE + "</Types>")
        archive.writestr("[Content_Types].xml", types if has_shared else CONTENT_TYPES)
        archive.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" '
            f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr("xl/_rels/workbook.xml.rels", rels)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        if shared is not None or shared_items is not None:
            items = shared_items or "".join(f"<si><t>{text}</t></si>" for text in shared or [])
            archive.writestr("xl/sharedStrings.xml", f'<sst xmlns="{MAIN}" count="1">{items}</sst>')
    return path


def cell(ref: str, value: str, kind: str = "inlineStr") -> str:
    if kind == "inlineStr":
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'
    return f'<c r="{ref}" t="{kind}"><v>{value}</v></c>'


def header_row() -> str:
    return f'<row r="1">{cell("A1", "to")}{cell("B1", "body")}</row>'


# --- The bombs ------------------------------------------------------------------------------


def dimension_bomb(folder: Path) -> Path:
    """1.6 KB: claims A1:XFD1048576, holds A1, A2 and A1048576."""
    rows = (
        f'<row r="1">{cell("A1", "to")}</row><row r="2">{cell("A2", OK)}</row>'
        f'<row r="1048576">{cell("A1048576", "+447911123456")}</row>'
    )
    return write_xlsx(folder / "dimension.xlsx", rows, dimension="A1:XFD1048576")


def shared_string_bomb(folder: Path) -> Path:
    """100,000 cells pointing at one 40 KB shared string."""
    rows = header_row() + "".join(
        f'<row r="{n}">{cell(f"A{n}", OK)}{cell(f"B{n}", "0", "s")}</row>'
        for n in range(2, 100_002)
    )
    return write_xlsx(folder / "shared.xlsx", rows, shared=["b" * 40_000], dimension="A1:B100001")


def total_text_bomb(folder: Path) -> Path:
    """10,000 cells pointing at one 30,000-character string: 300 M characters in all."""
    rows = header_row() + "".join(
        f'<row r="{n}">{cell(f"B{n}", "0", "s")}</row>' for n in range(2, 10_002)
    )
    return write_xlsx(folder / "total.xlsx", rows, shared=["b" * 30_000], dimension="A1:B10001")


def wide_bomb(folder: Path) -> Path:
    """20,000 rows, each with a value in column XFD (16,384)."""
    rows = header_row() + "".join(
        f'<row r="{n}">{cell(f"A{n}", OK)}{cell(f"XFD{n}", "x")}</row>' for n in range(2, 20_002)
    )
    return write_xlsx(folder / "wide.xlsx", rows, dimension="A1:XFD20001")


CHILD = """
import json, resource, sys
from kwa_batch import InputError, load_recipients
try:
    df = load_recipients(sys.argv[1])
    out = {"rows": len(df), "lines": [int(n) for n in df.attrs["line_numbers"]._lines]}
except InputError as exc:
    out = {"refused": str(exc)}
# VmHWM is this program's own peak; ru_maxrss also counts the parent's memory at the fork
# (Linux keeps it across exec), so a large pytest process would seem to be the child's.
try:
    with open("/proc/self/status") as status:
        kib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["peak_mib"] = kib / 1024
print(json.dumps(out))
"""


def load_in_child(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=120,  # a deadline against a hang, not a measure
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


PEAK_MIB = 600  # the interpreter, pandas and pyarrow take ~150 MiB; a bomb took gigabytes


def test_dimension_bomb_loads_the_three_cells_present(tmp_path: Path) -> None:
    path = dimension_bomb(tmp_path)
    assert path.stat().st_size < 2_000
    result = load_in_child(path)
    assert result["rows"] == 2
    assert result["lines"] == [2, 1_048_576]
    assert result["peak_mib"] < PEAK_MIB


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (shared_string_bomb, f"40,000 characters in B2 (a cell holds at most {MAX_CELL_CHARS:,})"),
        (total_text_bomb, f"more than {MAX_TOTAL_CHARS:,} characters of text"),
        (wide_bomb, f"a value in XFD2, beyond column AMJ ({MAX_COLUMNS:,} columns"),
    ],
    ids=["shared string", "total text", "column XFD"],
)
def test_bombs_are_refused_in_one_line(tmp_path: Path, build: Any, message: str) -> None:
    result = load_in_child(build(tmp_path))
    assert message in result["refused"]
    assert "CSV UTF-8" in result["refused"]
    assert "\n" not in result["refused"]
    assert result["peak_mib"] < PEAK_MIB


# --- Broken workbooks: one line each --------------------------------------------------------


@pytest.mark.parametrize(
    ("sheet", "shared", "message"),
    [
        (header_row() + f'<row r="2">{cell("A2", "7", "s")}</row>', ["x"], "shared-string index"),
        (header_row() + f'<row r="2">{cell("A2", "-1", "s")}</row>', ["x"], "shared-string index"),
        (header_row() + f'<row r="2">{cell("A2", "x", "s")}</row>', ["x"], "shared-string index"),
        (
            header_row() + f'<row r="2">{cell("A2", "12abc", "n")}</row>',
            None,
            "not a value of type",
        ),
        (header_row() + f'<row r="2">{cell("A2", "yes", "b")}</row>', None, "not a value of type"),
        (header_row() + '<row r="2"><c r="A2"><v>1</v></row>', None, "not a readable .xlsx"),
        (header_row() + '<row r="two"><c r="A2"><v>1</v></c></row>', None, "not a number"),
        (header_row() + '<row r="2"><c r="2A"><v>1</v></c></row>', None, "not a cell"),
        (header_row() + '<row r="2000000"><c><v>1</v></c></row>', None, "rows go from 1"),
        ("<x>" * 100 + "</x>" * 100, None, "nests deeper"),
    ],
    ids=[
        "index out of range",
        "negative index",
        "index not a number",
        "number not a number",
        "boolean not a number",
        "malformed XML",
        "row number not a number",
        "cell name",
        "row beyond Excel",
        "deep nesting",
    ],
)
def test_broken_sheets_are_one_input_error(
    tmp_path: Path, sheet: str, shared: list[str] | None, message: str
) -> None:
    path = write_xlsx(tmp_path / "r.xlsx", sheet, shared=shared)
    with pytest.raises(InputError, match=message) as info:
        load_recipients(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "not a readable .xlsx"),
        (lambda data: b"PK\x03\x04" + bytes(200), "not a readable .xlsx"),
        (lambda data: data.replace(b"xl/workbook.xml", b"xl/workbook.xmk"), "not a readable"),
    ],
    ids=["truncated", "not a zip", "no workbook part"],
)
def test_damaged_archives_are_one_input_error(tmp_path: Path, damage: Any, message: str) -> None:
    path = write_xlsx(tmp_path / "r.xlsx", header_row() + f'<row r="2">{cell("A2", OK)}</row>')
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputError, match=message) as info:
        load_recipients(path)
    assert "\n" not in str(info.value)


def test_a_part_that_unpacks_beyond_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheets_module, "MAX_PART_BYTES", 100_000)
    rows = header_row() + f'<row r="2">{cell("A2", OK)}</row>' + "<!-- padding -->" * 10_000
    path = write_xlsx(tmp_path / "r.xlsx", rows)
    assert path.stat().st_size < 5_000
    with pytest.raises(InputError, match="unpacks to more than"):
        load_recipients(path)


def test_cells_without_r_attributes_follow_each_other(tmp_path: Path) -> None:
    def bare(value: str) -> str:
        return f'<c t="inlineStr"><is><t>{value}</t></is></c>'

    rows = f"<row>{bare('to')}{bare('body')}</row><row>{bare(OK)}<c><v>42</v></c></row>"
    df = load_recipients(write_xlsx(tmp_path / "r.xlsx", rows))
    assert df.loc[0, "to"] == OK
    assert df.loc[0, "body"] == "42"
    assert line_numbers(df).tolist() == [2]


# --- The same cells as openpyxl gives them --------------------------------------------------


def _openpyxl_text(value: object) -> str:
    """What the loader read through openpyxl before it streamed the XML itself."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def test_cells_read_as_openpyxl_reads_them(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Phone", "Body", "When", "Day", "Time", "Flag", "Amount", "Big", "Small"])
    values: list[list[Any]] = [
        [919876543210, "Olá José", dt.datetime(2026, 3, 1, 9, 30), dt.date(2026, 3, 1)],
        ["+447911123456", "=not a formula", None, None, dt.time(14, 5), True, 3.5, 1e16, 1e-7],
        [4.47911123456e11, "", dt.datetime(1900, 1, 1), None, None, False, -2, 12345678901234567],
    ]
    for row in values:
        sheet.append(row)
    sheet["B3"] = "tab\tand\nline"
    sheet["C4"].number_format = "[h]:mm:ss"
    sheet["C4"] = dt.timedelta(hours=30)
    path = tmp_path / "r.xlsx"
    book.save(path)
    reference = load_workbook(path, read_only=True, data_only=True)
    expected = [
        [_openpyxl_text(v) for v in row] for row in reference.active.iter_rows(values_only=True)
    ]
    reference.close()
    df = load_recipients(path)
    got = [list(df.columns)] + [["" if pd.isna(v) else v for v in row] for row in df.values]
    header = ["to", "body", *expected[0][2:]]  # the user's own headers as written
    assert got[0] == header
    assert got[1:] == [(row + [""] * 9)[:9] for row in expected[1:]]


def test_strict_ooxml_and_shared_rich_text(tmp_path: Path) -> None:
    strict = "http://purl.oclc.org/ooxml/spreadsheetml/main"
    sheet = (
        f'<worksheet xmlns="{strict}"><sheetData><row r="1">{cell("A1", "to")}</row>'
        f'<row r="3">{cell("A3", "0", "s")}</row></sheetData></worksheet>'
    )
    items = "<si><r><t>+91</t></r><r><t>9876543210</t></r><rPh><t>hint</t></rPh></si>"
    path = write_xlsx(tmp_path / "r.xlsx", "", raw_sheet=sheet, shared_items=items)
    df = load_recipients(path)
    assert df.loc[0, "to"] == OK
    assert line_numbers(df).tolist() == [3]


def test_empty_cells_count_against_the_cell_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheets_module, "MAX_CELLS", 1_000)
    rows = header_row() + f'<row r="2">{cell("A2", OK)}{"<c/>" * 1_000}</row>'
    with pytest.raises(InputError, match="more than 1,000 cells"):
        load_recipients(write_xlsx(tmp_path / "r.xlsx", rows))


def test_rows_beyond_an_understated_dimension_are_not_dropped(tmp_path: Path) -> None:
    """openpyxl's read-only mode stopped at the claimed dimension: these rows were lost."""
    rows = header_row() + "".join(
        f'<row r="{n}">{cell(f"A{n}", f"+9198765432{n:02}")}</row>' for n in range(2, 6)
    )
    df = load_recipients(write_xlsx(tmp_path / "r.xlsx", rows, dimension="A1"))
    assert line_numbers(df).tolist() == [2, 3, 4, 5]
