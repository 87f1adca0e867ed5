"""Loading recipient files: every cell a string exactly as written, clear refusals."""

from __future__ import annotations

import codecs
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.csv as pa_csv
import pytest
from conftest import load_within
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from kwa_batch import InputError, KwaBatchError, load_recipients, validate
from kwa_batch.loading.reading import _read_csv, _read_csv_fast
from kwa_batch.loading.recipients import MAX_FILE_BYTES, check_regular_file, line_numbers


def test_sample_file_loads_as_strings(sample_csv: Path) -> None:
    df = load_recipients(sample_csv)
    assert len(df) == 20
    assert list(df.index) == list(range(20))
    assert all(pd.api.types.is_string_dtype(t) for t in df.dtypes)
    assert df.loc[0, "to"] == "+919876543210"
    assert df.loc[1, "to"] == "+91 98450 12345"
    assert df.loc[16, "to"] == "9.19876543210E+11"
    assert line_numbers(df).tolist() == list(range(2, 22))


def test_cells_are_kept_exactly_and_only_empty_is_missing(write_csv) -> None:
    path = write_csv("to,name,ref\n0044 7911 123456,NA,007\n+919876543210,,N/A\n")
    df = load_recipients(path)
    assert df.loc[0, "to"] == "0044 7911 123456"
    assert df.loc[0, "name"] == "NA"
    assert df.loc[0, "ref"] == "007"
    assert pd.isna(df.loc[1, "name"])
    assert df.loc[1, "ref"] == "N/A"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_are_detected(write_csv, delimiter: str) -> None:
    text = delimiter.join(["to", "body"]) + "\n" + delimiter.join(["+919876543210", "Hi"]) + "\n"
    df = load_recipients(write_csv(text))
    assert list(df.columns) == ["to", "body"]
    assert df.loc[0, "body"] == "Hi"


@pytest.mark.parametrize(
    ("prefix", "encoding"),
    [(b"", "utf-8"), (codecs.BOM_UTF8, "utf-8"), (b"", "utf-16"), (b"", "cp1252")],
)
def test_encodings(write_csv, prefix: bytes, encoding: str) -> None:
    text = "to,body\n+919876543210,Olá José, ça va?\n".replace(
        "Olá José, ça va?", '"Olá José, ça va?"'
    )
    path = write_csv(prefix + text.encode(encoding))
    df = load_recipients(path)
    assert df.loc[0, "body"] == "Olá José, ça va?"
    assert df.columns[0] == "to"


def test_line_numbers_follow_multiline_cells(write_csv) -> None:
    df = load_recipients(write_csv('to,body\n+919876543210,"two\nlines"\n\n+447911123456,x\n'))
    assert line_numbers(df).tolist() == [2, 5]


@pytest.mark.parametrize("alias", ["Phone", " mobile ", "MSISDN", "WhatsApp", "phone_number"])
def test_recipient_column_aliases(write_csv, alias: str) -> None:
    df = load_recipients(write_csv(f"{alias},Body\n+919876543210,Hi\n"))
    assert list(df.columns) == ["to", "body"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("   \n\n", "empty"),
        ("to,body\n", "no rows"),
        ("name,body\nA,Hi\n", "no recipient column"),
        ("phone,telephone\n1,2\n", "could each be the recipient column"),
        ("to,body,Body\n1,2,3\n", "names 'body' twice"),
        ("to,,body\n1,2,3\n", "column 2 of the header has no name"),
        (b"\x00\x01\x02binary\x00", "binary"),
        (b"PK\x03\x04rest-of-a-zip", "xlsx"),
        ('to,body\n+919876543210,"unclosed\n', "never closed"),
    ],
)
def test_unusable_files_are_refused_in_one_line(write_csv, content, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_recipients(write_csv(content))
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_recipients(tmp_path / "nope.csv")


def test_ragged_rows_load_and_are_rejected_with_their_line(write_csv) -> None:
    path = write_csv("to,body\n+919876543210,Hi\n+447911123456,Hi,extra\n+919845012345\n")
    df = load_recipients(path)
    assert len(df) == 3
    report = validate(df, sender="+911234567890")
    assert list(report.valid.index) == [0]
    ragged = report.errors[report.errors["error_code"] == "KWA008"]
    assert ragged["line"].tolist() == [3, 4]
    assert "3 fields" in ragged["message"].iloc[0]


def test_xlsx_numeric_cells_come_back_without_decimal(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Phone", "Body", "Ref"])
    sheet.append([919876543210, "Hi", 42])
    sheet.append(["+447911123456", "Hello", None])
    path = tmp_path / "r.xlsx"
    book.save(path)
    df = load_recipients(path)
    assert df.loc[0, "to"] == "919876543210"
    assert df.loc[0, "ref"] == "42"
    assert df.loc[1, "to"] == "+447911123456"
    assert pd.isna(df.loc[1, "ref"])
    assert line_numbers(df).tolist() == [2, 3]


def test_xlsx_missing_sheet(tmp_path: Path) -> None:
    book = Workbook()
    book.active.append(["to"])
    book.active.append(["+919876543210"])
    path = tmp_path / "r.xlsx"
    book.save(path)
    with pytest.raises(InputError, match="no sheet 'Other'"):
        load_recipients(path, sheet_name="Other")


# --- Encodings are detected and reported ------------------------------------------------------


def test_legacy_encoding_is_reported(write_csv, caplog: pytest.LogCaptureFixture) -> None:
    text = 'to,name,body\n+919876543210,José Núñez,"Olá, ça va? Cañón – 5 €"\n'
    with caplog.at_level(logging.WARNING, logger="kwa_batch.loading.recipients"):
        df = load_recipients(write_csv(text.encode("cp1252")))
    assert df.attrs["encoding"] == "cp1252"
    assert df.loc[0, "name"] == "José Núñez"
    assert "is not UTF-8; read it as cp1252" in caplog.text


def test_utf8_files_are_reported_as_such(write_csv, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        df = load_recipients(write_csv("to,body\n+919876543210,Olá\n"))
    assert df.attrs["encoding"] == "utf-8"
    assert df.attrs["delimiter"] == ","
    assert caplog.text == ""


def test_forced_encoding_and_delimiter(write_csv) -> None:
    path = write_csv("to;body\n+919876543210;Olá\n".encode("latin-1"))
    df = load_recipients(path, encoding="latin-1", delimiter=";")
    assert df.loc[0, "body"] == "Olá"
    assert df.attrs["encoding"] == "latin-1"
    with pytest.raises(InputError, match="cannot be read as utf-8"):
        load_recipients(path, encoding="utf-8")
    with pytest.raises(InputError, match="use one character"):
        load_recipients(path, delimiter=";;")


def test_xlsx_sheet_by_name_or_position(tmp_path: Path) -> None:
    book = Workbook()
    book.active.append(["to"])
    book.active.append(["+919876543210"])
    other = book.create_sheet("Campaign")
    other.append(["Mobile", "Body"])
    other.append(["+447911123456", "Hi"])
    path = tmp_path / "r.xlsx"
    book.save(path)
    assert load_recipients(path, sheet_name="Campaign").loc[0, "to"] == "+447911123456"
    assert load_recipients(path, sheet_name=1).attrs["sheet"] == "Campaign"
    assert load_recipients(path).attrs["sheet"] == "Sheet"


def test_a_sheet_is_found_whatever_the_case_of_its_name(tmp_path: Path) -> None:
    """Issue #18: --sheet recipients did not find 'Recipients' (Excel's names ignore case)."""
    book = Workbook()
    book.active.append(["to"])
    book.active.append(["+919876543210"])
    other = book.create_sheet("Campaign")
    other.append(["to"])
    other.append(["+447911123456"])
    path = tmp_path / "r.xlsx"
    book.save(path)
    df = load_recipients(path, sheet_name="CAMPAIGN")
    assert df.attrs["sheet"] == "Campaign"
    assert df.loc[0, "to"] == "+447911123456"
    with pytest.raises(InputError, match=r"no sheet 'Campaigns' \(it has: Sheet, Campaign\)"):
        load_recipients(path, sheet_name="Campaigns")


def test_a_sheet_name_that_matches_several_in_case_only_is_not_guessed(tmp_path: Path) -> None:
    """Two sheets whose names differ only in case (a workbook from elsewhere): the message
    names both and asks for one as written; the exact name still finds its sheet."""
    book = Workbook()
    book.active.title = "Data"
    book.active.append(["to"])
    book.active.append(["+919876543210"])
    other = book.create_sheet("DATA")  # openpyxl, as Excel, calls it DATA1
    other.append(["to"])
    other.append(["+447911123456"])
    saved = tmp_path / "saved.xlsx"
    book.save(saved)
    path = tmp_path / "r.xlsx"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = data.replace(b'name="DATA1"', b'name="DATA"')
            target.writestr(item, data)
    assert load_recipients(path, sheet_name="DATA").loc[0, "to"] == "+447911123456"
    with pytest.raises(InputError, match=r"differ from it only in case \('Data', 'DATA'\)"):
        load_recipients(path, sheet_name="data")


def test_attrs_survive_pandas_operations_cheaply(write_csv) -> None:
    df = load_recipients(write_csv("to,body\n+919876543210,a\n+447911123456,b,extra\n"))
    copy = df[df["body"].notna()].copy()
    assert copy.attrs["line_numbers"] is df.attrs["line_numbers"]
    assert copy.attrs["malformed"] is df.attrs["malformed"]
    assert dict(copy.attrs["malformed"]) == {
        1: "line 3 has 3 fields but the header has 2 fields (a value that holds a comma needs "
        "double quotes)"
    }
    assert line_numbers(copy.iloc[[1]]).tolist() == [3]


# --- Properties ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_an_input_error(data: bytes) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / "r.csv"
        path.write_bytes(data)
        try:
            df = load_recipients(path)
        except KwaBatchError:
            return
        assert "to" in df.columns
        validate(df, sender="+911234567890")
    finally:
        shutil.rmtree(folder)


_PLAIN = st.lists(st.sampled_from(["a", "b", " ", "é", "+91", "\t", "NA"]), max_size=4).map("".join)
_QUOTED = st.lists(
    st.sampled_from(["a", " ", "é", ",", ";", '""', "\n", "\r\n", "\t"]), max_size=5
).map(lambda parts: '"' + "".join(parts) + '"')


@st.composite
def csv_texts(draw: st.DrawFn) -> tuple[str, str]:
    """CSV text with two columns, quoted values (delimiters, quotes, line breaks inside),
    blank lines, lines of spaces or of delimiters, LF or CRLF."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    field = st.one_of(_PLAIN.map(lambda t: t.replace(delimiter, "")), _QUOTED)
    line = st.one_of(
        st.tuples(field, field).map(lambda pair: delimiter.join(pair)),
        st.sampled_from(["", "  ", delimiter]),
    )
    lines = draw(st.lists(line, max_size=6))
    return end.join(["to" + delimiter + "body", *lines]) + draw(
        st.sampled_from(["", end])
    ), delimiter


@settings(max_examples=300, deadline=None)
@given(csv_texts())
def test_fast_and_csv_module_paths_agree(document: tuple[str, str]) -> None:
    text, delimiter = document
    path = Path("unused.csv")

    def read(parse, content):  # the parsed file, or the reason it was refused
        try:
            return parse(path, content, delimiter)
        except InputError as exc:
            return str(exc)

    fast = read(_read_csv_fast, text.encode("utf-8"))
    if fast is None:
        return  # left to the csv module
    slow = read(_read_csv, text)
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
        return
    assert fast[0] == slow[0]
    assert [list(c) for c in fast[1]] == [list(c) for c in slow[1]]
    assert list(fast[2]) == list(slow[2])
    assert fast[3] == slow[3]
    assert fast[4] == slow[4]


# --- Only regular files ---------------------------------------------------------------------


def _load_within(path: Path) -> BaseException | None:
    return load_within(load_recipients, path)


@pytest.mark.parametrize("name", ["f.csv", "f.xlsx"])
def test_a_fifo_is_refused_at_once(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    os.mkfifo(path)
    error = _load_within(path)
    assert isinstance(error, InputError)
    assert "named pipe (FIFO)" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("target", "message"),
    [("/dev/zero", "character device"), ("/dev/null", "character device")],
)
def test_a_link_to_a_device_is_refused(tmp_path: Path, target: str, message: str) -> None:
    link = tmp_path / "r.csv"
    link.symlink_to(target)
    error = _load_within(link)
    assert isinstance(error, InputError)
    assert message in str(error)
    assert f"links to {target}" in str(error)


def test_folders_and_links_to_folders_and_broken_links(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    (tmp_path / "l.csv").symlink_to(tmp_path / "d.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(InputError, match="is a folder"):
        load_recipients(tmp_path / "d.csv")
    with pytest.raises(InputError, match=r"is a folder, not a recipient file \(it links to"):
        load_recipients(tmp_path / "l.csv")
    with pytest.raises(InputError, match=r"no such file \(a broken link"):
        load_recipients(tmp_path / "b.csv")


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used, nothing read
    with pytest.raises(InputError, match="over the 2 GiB a recipient file may be"):
        load_recipients(path)


def test_the_cli_refuses_a_fifo_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    os.mkfifo(path)
    done = subprocess.run(
        [sys.executable, "-m", "kwa_batch", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,  # a deadline against the hang this test is about
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "named pipe (FIFO)" in done.stderr


# --- Mixed encodings ------------------------------------------------------------------------


def test_utf8_rows_with_a_cp1252_row_are_refused_naming_the_line(write_csv) -> None:
    data = (
        "to,name\n+919876543210,José Núñez\n".encode()
        + "+447911123456,Renée Müller\n".encode("cp1252")
        + "+919845012345,François\n+919845012346,Zoë\n".encode()
        + "+919845012347,Ægir\n".encode("cp1252")
    )
    with pytest.raises(InputError) as info:
        load_recipients(write_csv(data))
    message = str(info.value)
    assert "mixes encodings" in message
    assert "lines 3, 6 are not" in message
    assert "CSV UTF-8" in message
    assert "--encoding" in message
    assert "\n" not in message
    forced = load_recipients(write_csv(data), encoding="cp1252")  # the way out it names
    assert forced.loc[1, "name"] == "Renée Müller"


@pytest.mark.parametrize("encoding", ["cp1252", "cp1251", "cp1250"])
def test_a_file_wholly_in_one_code_page_still_loads(write_csv, encoding: str) -> None:
    names = {
        "cp1252": ["José Núñez", "Renée Müller", "Ægir Ø"],
        "cp1251": ["Віктор Іванів", "Київ", "Ґанна Єва"],
        "cp1250": ["Łukasz Żółć", "Dvořák", "Győző"],
    }[encoding]
    text = "to,name\n" + "".join(f"+91987654321{i},{n}\n" for i, n in enumerate(names))
    df = load_recipients(write_csv(text.encode(encoding)))
    assert df["name"].tolist() == names


# --- The exit path --------------------------------------------------------------------------


def test_pyarrow_reads_csv_on_the_calling_thread(
    write_csv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's threaded reader drops our Python buffer on a worker thread; when that
    happens as the interpreter exits, the process aborts (exit 134, apache/arrow#34314: 2-5%
    of `kwa-batch send` runs that stop on missing credentials). The race itself cannot be
    forced in a test, so this holds the cause: every read is serial."""
    seen: list[bool] = []
    real = pa_csv.read_csv

    def spy(source: Any, **options: Any) -> Any:
        seen.append(options["read_options"].use_threads)
        return real(source, **options)

    monkeypatch.setattr(pa_csv, "read_csv", spy)
    df = load_recipients(write_csv("to,body\n+919876543210,Hi\n+447911123456,Hello\n"))
    assert len(df) == 2
    assert seen == [False]


def test_check_regular_file_is_for_readers_that_open_paths_themselves(
    tmp_path: Path, sample_csv: Path
) -> None:
    check_regular_file(sample_csv)
    os.mkfifo(tmp_path / "f.csv")
    with pytest.raises(InputError, match="named pipe"):
        check_regular_file(tmp_path / "f.csv")
    with pytest.raises(InputError, match="no such file"):
        check_regular_file(tmp_path / "nope.csv")


def test_an_unclosed_quote_is_named_with_its_line_and_the_fix(write_csv) -> None:
    path = write_csv('to,body\n+919876543210,Hi\n+447911123456,"Hello\n+919845012345,Hey\n')
    with pytest.raises(InputError) as info:
        load_recipients(path)
    assert str(info.value) == (
        f"{path}: line 3 opens a quoted value that is never closed (the rest of the file, to "
        'line 4, would be inside it): add the missing closing quote ("), or remove the stray one'
    )


def test_text_after_a_closing_quote_is_named_with_its_line_and_the_fix(write_csv) -> None:
    path = write_csv('to;body\n+919876543210;"Hi" there\n')
    with pytest.raises(InputError) as info:
        load_recipients(path)
    assert str(info.value) == (
        f"{path}: line 2 has a quoted value followed by more text before the next semicolon: "
        'quote the whole value and double each quote inside it ("like ""this""")'
    )


def test_too_many_fields_loads_and_is_refused_with_its_line(write_csv) -> None:
    path = write_csv("to,body\n+919876543210,Hi,there\n+447911123456,Hello\n")
    report = validate(load_recipients(path), sender="+911234567890")
    (message,) = report.errors["message"]
    assert message == (
        "line 2 has 3 fields but the header has 2 fields (a value that holds a comma needs "
        "double quotes): check its quotes and delimiters"
    )
