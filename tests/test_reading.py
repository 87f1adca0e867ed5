"""One reader for every user's table: recipient files, template catalogues, suppression lists
and rate cards meet the same encodings, the same workbooks, the same sheet names and the same
refusals, because :mod:`kwa_batch.loading.reading` reads them all."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from kwa_batch import InputError, load_recipients
from kwa_batch.catalogue import load_templates
from kwa_batch.loading.files import FileKind
from kwa_batch.loading.reading import EmptyTableError, read_table, read_tables
from kwa_batch.pricing import load_rate_card
from kwa_batch.validation.suppression import load_suppression

# Each loader, with a small table it accepts (its header, one row with an accent) and the
# cell to read back from what it loaded.
LOADERS: dict[str, tuple[Callable[..., Any], list[list[str]], Callable[[Any], str]]] = {
    "recipients": (
        load_recipients,
        [["to", "body"], ["+919876543210", "Olá José"]],
        lambda df: df.loc[0, "body"],
    ),
    "catalogue": (
        load_templates,
        [["template_name", "lang_code", "status", "body"], ["x", "pt_BR", "approved", "Olá {{1}}"]],
        lambda df: df.loc[0, "body"],
    ),
    "suppression": (
        load_suppression,
        [["phone", "reason"], ["+919876543210", "pediu à loja"]],
        lambda df: df.loc[0, "reason"],
    ),
    "rate card": (
        load_rate_card,
        [["region", "category", "price", "currency"], ["IN", "marketing", "0.01", "USD"]],
        lambda df: df.loc[0, "category"],
    ),
}
EXPECTED = {
    "recipients": "Olá José",
    "catalogue": "Olá {{1}}",
    "suppression": "pediu à loja",
    "rate card": "marketing",
}


def _csv(rows: list[list[str]], delimiter: str = ",") -> str:
    return "".join(delimiter.join(row) + "\r\n" for row in rows)


@pytest.mark.parametrize("name", LOADERS)
@pytest.mark.parametrize("encoding", ["cp1252", "utf-16-le", "utf-16"])
def test_every_loader_reads_the_encodings_a_recipient_file_may_have(
    tmp_path: Path, name: str, encoding: str
) -> None:
    """cp1252 (Excel's "CSV" on Windows) and UTF-16 without a byte-order mark were refused
    by the catalogue and the rate card, which read only UTF-8 or text with a BOM."""
    load, rows, cell = LOADERS[name]
    path = tmp_path / "table.csv"
    path.write_bytes(_csv(rows, delimiter=";").encode(encoding))
    assert cell(load(path)) == EXPECTED[name]


@pytest.mark.parametrize("name", LOADERS)
def test_every_loader_reads_a_workbook_by_a_sheet_name_in_any_case(
    tmp_path: Path, name: str
) -> None:
    """The rate card read a workbook as text (and refused it); the others read it through
    the one reader, whose sheet names ignore case."""
    load, rows, cell = LOADERS[name]
    book = Workbook()
    book.active.title = "Notes"
    book.active.append(["see the other sheet"])
    data = book.create_sheet("Table")
    for row in rows:
        data.append(row)
    path = tmp_path / "table.xlsx"
    book.save(path)
    if name == "recipients":
        assert cell(load(path, sheet_name="TABLE")) == EXPECTED[name]
    elif name == "suppression":
        assert cell(load(path, sheet="table")) == EXPECTED[name]
    else:  # the catalogue and the rate card take the first sheet
        del book["Notes"]
        book.save(path)
        assert cell(load(path)) == EXPECTED[name]


@pytest.mark.parametrize("name", LOADERS)
def test_every_loader_refuses_a_fifo_in_the_same_words(tmp_path: Path, name: str) -> None:
    load = LOADERS[name][0]
    path = tmp_path / "table.csv"
    os.mkfifo(path)
    with pytest.raises(InputError, match=r"is a named pipe \(FIFO\), not a file"):
        load(path)


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("recipients", "one row per recipient"),
        ("catalogue", "one row per template"),
        ("rate card", "one row per region and category"),
    ],
)
def test_an_empty_table_is_refused_in_the_same_words(tmp_path: Path, name: str, rows: str) -> None:
    load, table, _ = LOADERS[name]
    path = tmp_path / "table.csv"
    path.write_text(_csv(table[:1]), encoding="utf-8")
    with pytest.raises(InputError, match=f"has a header but no rows: add {rows}"):
        load(path)
    path.write_text("\r\n \r\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"the file is empty: it needs a header row and {rows}"):
        load(path)


KIND = FileKind("test table", "save it as a file", 2**20, "shorten it", "one row per thing")


def test_read_table_gives_text_as_written_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("# note\nname,code\n\n007,NA\n,x # y\n", encoding="utf-8")
    table = read_table(path, KIND, comments=True)
    assert table.header == ["name", "code"]
    assert table.header_line == 2
    assert table.labels() == ["line 4", "line 5"]
    frame = table.frame()
    assert frame["name"].tolist()[0] == "007"
    assert frame["code"].tolist() == ["NA", "x "]
    assert frame["name"].isna().tolist() == [False, True]
    assert all(str(t) == "str" for t in frame.dtypes)


def test_read_tables_reads_every_sheet(tmp_path: Path) -> None:
    book = Workbook()
    book.active.append(["a"])
    book.active.append(["1"])
    other = book.create_sheet("Two")
    other.append(["b"])
    path = tmp_path / "t.xlsx"
    book.save(path)
    first, second = read_tables(path, KIND, empty=True)
    assert (first.sheet, first.labels(), second.sheet, len(second)) == (
        "Sheet",
        ["row 2"],
        "Two",
        0,
    )
    with pytest.raises(EmptyTableError, match=r"no rows \(sheet 'Two'\): add one row per thing"):
        read_tables(path, KIND)
