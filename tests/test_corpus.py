"""A corpus of hostile recipient files, each loaded and validated end to end.

Every case writes its file into tmp_path (CSV bytes in some encoding, or an XLSX workbook)
and states what must happen: refused with a one-line reason, or loaded with these rows
valid and these (line, column, code) problems — nothing more, nothing less.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook

from kwa_batch import InputError, load_recipients, validate
from kwa_batch.loading.reading import _read_csv, _read_csv_fast
from kwa_batch.loading.recipients import line_numbers

SENDER = "+911234567890"
OK = "+919876543210"


@dataclass
class Case:
    """One hostile file and what must come of it."""

    name: str
    write: Callable[[Path], Path]
    refused: str | None = None  # a part of the InputError's message
    valid: int | None = None  # rows that pass
    problems: set[tuple[int, str, str]] = field(default_factory=set)  # (line, column, code)
    region: str | None = None
    check: Callable[[pd.DataFrame], None] | None = None  # more about the loaded frame
    settings: dict[str, Any] = field(default_factory=dict)


def csv(text: str, encoding: str = "utf-8", prefix: bytes = b"", name: str = "r.csv") -> Any:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(prefix + text.encode(encoding))
        return path

    return write


def raw(data: bytes, name: str = "r.csv") -> Any:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return write


def xlsx(*rows: list[Any], second: list[list[Any]] | None = None) -> Any:
    def write(folder: Path) -> Path:
        book = Workbook()
        sheet = book.active
        for row in rows:
            sheet.append(row)
        if second is not None:
            other = book.create_sheet("Other")
            for row in second:
                other.append(row)
        path = folder / "r.xlsx"
        book.save(path)
        return path

    return write


def body_is(expected: str) -> Callable[[pd.DataFrame], None]:
    def check(df: pd.DataFrame) -> None:
        assert df.loc[0, "body"] == expected

    return check


def attrs_are(**expected: Any) -> Callable[[pd.DataFrame], None]:
    def check(df: pd.DataFrame) -> None:
        for key, value in expected.items():
            assert df.attrs[key] == value, key

    return check


ACCENTS = "Olá José, ça va? Señor Müller – 5 €"
WESTERN = f'to,name,body\n{OK},José Núñez,"{ACCENTS}"\n'
HTML_FIELDS = [
    "to",
    "from",
    "type",
    "channel",
    "template_name",
    "params",
    "lang_code",
    "ref",
    "ref1",
    "ref2",
    "callback_url",
]


def html_case(column: str) -> Case:
    base = {
        "to": OK,
        "from": SENDER,
        "type": "template",
        "channel": "whatsapp",
        "template_name": "order_shipped",
        "params": "Priya,A1",
        "lang_code": "en",
        "ref": "r",
        "ref1": "r",
        "ref2": "r",
        "callback_url": "https://example.com/cb",
    }
    base[column] = f"<b>{base[column]}</b>"
    header = ",".join(base)
    row = ",".join(f'"{v}"' for v in base.values())
    expected = {(2, column, "E413")}
    # A tag also breaks the shape of the fields that have one: the report says both.
    shaped = {"to": "E13009", "from": "E13008", "type": "KWA003", "channel": "KWA003"}
    if column in shaped:
        expected.add((2, column, shaped[column]))
    if column == "type":
        expected.add((2, "type", "KWA003"))
    if column == "lang_code":
        expected.add((2, "lang_code", "KWA011"))
    if column == "callback_url":
        expected.add((2, "callback_url", "KWA005"))
    return Case(f"html in {column}", csv(f"{header}\n{row}\n"), valid=0, problems=expected)


CASES = [
    # Encodings.
    Case("utf-8", csv(WESTERN), valid=1, check=body_is(ACCENTS)),
    Case(
        "utf-8 with BOM",
        csv(WESTERN, prefix=codecs.BOM_UTF8),
        valid=1,
        check=attrs_are(encoding="utf-8-sig"),
    ),
    Case(
        "utf-16 LE with BOM, tabs (Excel 'Unicode text')",
        csv(f"to\tname\tbody\n{OK}\tJosé Núñez\t{ACCENTS}\n", "utf-16"),
        valid=1,
        check=attrs_are(encoding="utf-16", delimiter="\t"),
    ),
    Case(
        "utf-16 BE with BOM",
        csv(WESTERN, "utf-16-be", prefix=codecs.BOM_UTF16_BE),
        valid=1,
        check=body_is(ACCENTS),
    ),
    Case("utf-16 LE without BOM", csv(WESTERN, "utf-16-le"), valid=1, check=body_is(ACCENTS)),
    Case(
        "cp1252, detected and reported",
        csv(WESTERN, "cp1252"),
        valid=1,
        check=lambda df: (body_is(ACCENTS)(df), attrs_are(encoding="cp1252")(df)),
    ),
    Case(
        "latin-1 accents",
        csv(f"to,name\n{OK},Renée Müller\n", "latin-1"),
        valid=0,
        problems={(2, "body", "KWA002")},
        check=lambda df: df.loc[0, "name"] == "Renée Müller" or pytest.fail(df.loc[0, "name"]),
    ),
    Case(
        "cp1251 Cyrillic",
        csv(f'to,name,body\n{OK},Иван Петров,"Здравствуйте, заказ отправлен"\n', "cp1251"),
        valid=1,
        check=body_is("Здравствуйте, заказ отправлен"),
    ),
    Case(
        "BOM says UTF-8, bytes are not",
        raw(codecs.BOM_UTF8 + WESTERN.encode("cp1252")),
        refused="says it is UTF-8 but is not",
    ),
    # Delimiters.
    Case("semicolon", csv(f"to;body\n{OK};Hello, world\n"), valid=1, check=body_is("Hello, world")),
    Case("tab", csv(f"to\tbody\n{OK}\tHello\n"), valid=1, check=attrs_are(delimiter="\t")),
    Case("pipe", csv(f"to|body\n{OK}|Hello\n"), valid=1, check=attrs_are(delimiter="|")),
    Case(
        "semicolon with quoted ; and line breaks",
        csv(f'to;body\n{OK};"a;b\nc"\n+447911123456;x\n'),
        valid=2,
        check=lambda df: line_numbers(df).tolist() == [2, 4] or pytest.fail("lines"),
    ),
    Case("one column only", csv(f"to\n{OK}\n"), valid=0, problems={(2, "body", "KWA002")}),
    # Numbers a spreadsheet mangled, or that are not numbers.
    Case(
        "scientific notation",
        csv("to,body\n9.19876543210E+11,x\n"),
        valid=0,
        problems={(2, "to", "KWA004")},
    ),
    Case(
        "trailing .0", csv("to,body\n919876543210.0,x\n"), valid=0, problems={(2, "to", "KWA004")}
    ),
    Case(
        "a letter O", csv("to,body\n+91 98765 4321O,x\n"), valid=0, problems={(2, "to", "E13009")}
    ),
    Case("trailing x", csv("to,body\n+919876543210x,x\n"), valid=0, problems={(2, "to", "E13009")}),
    Case(
        "Excel's apostrophe",
        csv("to,body\n'+919876543210,x\n"),
        valid=0,
        problems={(2, "to", "E13009")},
    ),
    Case(
        "separators of every kind",
        csv('to,body\n"+91\u00a098765-43210",x\n(+44) 7911.123.456,x\n0044/7911/123457,x\n'),
        valid=3,
    ),
    Case(
        "national number without a region",
        csv("to,body\n09876543210,x\n"),
        valid=0,
        problems={(2, "to", "E13009")},
    ),
    Case("national number with region IN", csv("to,body\n098765 43210,x\n"), valid=1, region="IN"),
    Case(
        "leading zeros and NA kept as text",
        csv(f"to,body,ref,name\n{OK},x,007,NA\n"),
        valid=1,
        check=lambda df: (
            (df.loc[0, "ref"], df.loc[0, "name"]) == ("007", "NA") or pytest.fail("cells changed")
        ),
    ),
    # Boundaries.
    Case("ref of 255", csv(f"to,body,ref\n{OK},x,{'r' * 255}\n"), valid=1),
    Case(
        "ref of 256",
        csv(f"to,body,ref,ref1,ref2\n{OK},x,{'r' * 256},{'r' * 256},{'r' * 256}\n"),
        valid=0,
        problems={(2, "ref", "KWA001"), (2, "ref1", "KWA001"), (2, "ref2", "KWA001")},
    ),
    Case("body of 4,096", csv(f"to,body\n{OK},{'b' * 4096}\n"), valid=1),
    Case(
        "body of 4,097",
        csv(f"to,body\n{OK},{'b' * 4097}\n"),
        valid=0,
        problems={(2, "body", "KWA001")},
    ),
    Case(
        "a 200,000-character cell (over csv's default field limit)",
        csv(f'to,body\n{OK},"{"b" * 200_000}"\n+447911123456,x,extra\n'),
        valid=0,
        problems={(2, "body", "KWA001"), (3, "*", "KWA008")},
    ),
    # HTML in every field but body; body may hold it.
    *[html_case(column) for column in HTML_FIELDS],
    Case("html in body is fine", csv(f"to,body\n{OK},<b>Hello</b>\n"), valid=1),
    Case(
        "control characters",
        csv(f'to,body,ref\n{OK},"two\nlines\tand a tab",a\x07b\n'),
        valid=0,
        problems={(2, "ref", "KWA006")},
    ),
    # Duplicates.
    Case(
        "the same row twice",
        csv(f"to,body\n{OK},Hi\n{OK},Hi\n"),
        valid=1,
        problems={(3, "to", "KWA007")},
    ),
    Case(
        "the same number written two ways",
        csv(f"to,body\n{OK},Hi\n+91 98765 43210,Hi\n00919876543210,Hi\n"),
        valid=1,
        problems={(3, "to", "KWA007"), (4, "to", "KWA007")},
    ),
    Case("same number, other message", csv(f"to,body\n{OK},Hi\n{OK},Hello\n"), valid=2),
    # Ragged rows.
    Case(
        "too many and too few fields",
        csv(f"to,body\n{OK},Hi\n+447911123456,Hi,extra\n+919845012345\n{OK},Bye\n"),
        valid=2,
        problems={(3, "*", "KWA008"), (4, "*", "KWA008")},
    ),
    Case(
        "ragged after a quoted line break",
        csv(f'to,body\n{OK},"a\nb"\n+447911123456,x,y\n'),
        valid=1,
        problems={(4, "*", "KWA008")},
    ),
    Case(
        "CRLF, blank lines and rows of empty cells",
        csv(f"to,body\r\n\r\n{OK},Hi\r\n,\r\n  ,  \r\n+447911123456,Hi\r\n"),
        valid=2,
        check=lambda df: line_numbers(df).tolist() == [3, 6] or pytest.fail("lines"),
    ),
    Case(
        "old Mac line endings (CR only)",
        csv(f"to,body\r{OK},Hi\r+447911123456,Hi\r"),
        valid=2,
        check=lambda df: line_numbers(df).tolist() == [2, 3] or pytest.fail("lines"),
    ),
    # Headers.
    Case(
        "aliases and spaced API names",
        csv(f"Mobile No.,Template Name,Params,Lang Code\n{OK},order_shipped,A,en\n"),
        valid=1,
        check=lambda df: (
            list(df.columns) == ["to", "template_name", "params", "lang_code"]
            or pytest.fail(str(df.columns))
        ),
    ),
    Case(
        "an explicit 'to' beside a phone column",
        csv(f"to,phone,body\n{OK},020 1234,x\n"),
        valid=1,
    ),
    Case("trailing empty column", csv(f"to,body,\n{OK},Hi,\n"), valid=1),
    Case("no recipient column", csv("name,body\nA,Hi\n"), refused="no recipient column"),
    Case("two recipient columns", csv("phone,telephone\n1,2\n"), refused="could each be"),
    Case("duplicate headers", csv("to,Body,body \n1,2,3\n"), refused="names 'body' twice"),
    Case("unnamed column with values", csv("to,,body\n1,2,3\n"), refused="has no name"),
    # Empty, binary and broken files.
    Case("empty", raw(b""), refused="the file is empty"),
    Case("only spaces and line breaks", raw(b"  \r\n\n\t"), refused="the file is empty"),
    Case("only a BOM", raw(codecs.BOM_UTF8), refused="the file is empty"),
    Case("header only", csv("to,body\n"), refused="no rows"),
    Case("header and blank rows", csv("to,body\n,\n\n"), refused="no rows"),
    Case("binary", raw(b"\x00\x01\x02\x03binary\x00\xff" * 20), refused="binary"),
    Case("a PNG", raw(b"\x89PNG\r\n\x1a\n" + bytes(range(256))), refused="PNG image"),
    Case("a PDF", raw(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), refused="PDF"),
    Case("an xlsx named .csv", raw(b"PK\x03\x04" + bytes(64)), refused="xlsx"),
    Case(
        "an old .xls named .csv",
        raw(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)),
        refused=".xls",
    ),
    Case("unclosed quote", csv(f'to,body\n{OK},"unclosed\n'), refused="never closed"),
    Case("a .xls file", raw(b"whatever", name="r.xls"), refused="old .xls"),
    Case("a corrupt .xlsx", raw(b"PK\x03\x04 not really", name="r.xlsx"), refused="not a readable"),
    # Workbooks.
    Case(
        "xlsx with numeric cells",
        xlsx(
            ["Phone", "Body", "Ref"],
            [919876543210, "Hi", 42],
            [4.47911123456e11, "Hello", 3.5],
            [1e16, "Big", None],
        ),
        valid=2,
        problems={(4, "to", "KWA004")},
        check=lambda df: (
            (df["to"].tolist(), df["ref"].tolist()[:2])
            == (["919876543210", "447911123456", "1e+16"], ["42", "3.5"])
            or pytest.fail(str(df))
        ),
    ),
    Case(
        "xlsx with blank rows and trailing empty columns",
        xlsx(
            ["to", "body", None], [], [OK, "Hi", None], [None, None, None], ["+447911123456", "Hi"]
        ),
        valid=2,
        check=lambda df: line_numbers(df).tolist() == [3, 5] or pytest.fail("lines"),
    ),
    Case("xlsx empty sheet", xlsx(), refused="the sheet is empty"),
    Case("xlsx header only", xlsx(["to", "body"]), refused="no rows"),
    Case(
        "xlsx values beyond the header",
        xlsx(["to", "body"], [OK, "Hi", "stray"]),
        valid=0,
        problems={(2, "*", "KWA008")},
    ),
]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_file(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    if case.refused is not None:
        with pytest.raises(InputError) as info:
            load_recipients(path)
        assert case.refused in str(info.value)
        assert "\n" not in str(info.value)
        assert str(path) in str(info.value) or path.name in str(info.value)
        return
    df = load_recipients(path)
    assert list(df.index) == list(range(len(df)))
    assert all(pd.api.types.is_string_dtype(t) for t in df.dtypes)
    if case.check is not None:
        case.check(df)
    report = validate(df, default_region=case.region, sender=SENDER, **case.settings)
    found = {
        (int(line), column, code)
        for line, column, code in zip(
            report.errors["line"], report.errors["column"], report.errors["error_code"], strict=True
        )
    }
    assert found == case.problems
    assert len(report.valid) == case.valid
    assert len(report.valid) + len(report.invalid) == len(df)
    assert report.errors["message"].str.len().min() > 20 if len(report.errors) else True


CSV_CASES = [c for c in CASES if c.refused is None and "xlsx" not in c.name]


@pytest.mark.parametrize("case", CSV_CASES, ids=[case.name for case in CSV_CASES])
def test_both_csv_parsers_agree(case: Case, tmp_path: Path) -> None:
    """pyarrow's fast path, where it takes a file, reads it as Python's csv module does."""
    df = load_recipients(case.write(tmp_path))
    data = case.write(tmp_path).read_bytes()
    encoding = df.attrs["encoding"]
    text = data.decode(encoding).lstrip("\ufeff")
    fast = _read_csv_fast(tmp_path / "x.csv", text.encode("utf-8"), df.attrs["delimiter"])
    slow = _read_csv(tmp_path / "x.csv", text, df.attrs["delimiter"])
    if fast is None:
        return  # the file needs the csv module (ragged rows, odd quotes, bare CR)
    assert fast[0] == slow[0]
    assert [list(c) for c in fast[1]] == [list(c) for c in slow[1]]
    assert list(fast[2]) == list(slow[2])
    assert fast[3] == slow[3]
    assert fast[4] == slow[4]
