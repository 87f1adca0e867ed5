"""A recipient file read in parts (issue #21 item 4): the parts together are the file as
``read_table`` / ``load_recipients`` read it whole, each row at its own line, whatever the
part size and wherever the reads cut the text."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kwa_batch as kb
from kwa_batch.loading import reading
from kwa_batch.loading.recipients import RECIPIENT_FILE, RecipientParts, line_numbers

MESSY = (
    '\n\nto,body,name\n+919876543210,"hi\nthere",a\n\n+919876543211,x,b\r\n'
    '+919876543212,"a,""b""",c\n+919876543213,y,z,extra\n  \n+919876543214,"q\n\nr",d\n'
    "+919876543215,,e\n+919876543216,last,f"
)


@pytest.fixture(autouse=True)
def _small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads of a few bytes, so that they cut records, quotes and characters anywhere."""
    monkeypatch.setattr(reading, "PART_BLOCK_BYTES", 11)
    monkeypatch.setattr(reading, "_SNIFF_BYTES", 64)


def same_table(path: Path, rows: int) -> list[reading.Table]:
    whole = reading.read_table(path, RECIPIENT_FILE)
    parts = list(reading.read_table_parts(path, RECIPIENT_FILE, rows))
    assert all(0 < len(part) <= rows for part in parts)
    assert all(part.header == whole.header for part in parts)
    assert np.concatenate([p.lines for p in parts]).tolist() == whole.lines.tolist()
    for i in range(len(whole.header)):
        glued = [str(v) for p in parts for v in p.columns[i]]
        assert glued == [str(v) for v in whole.columns[i]]
    malformed = [reason for p in parts for reason in p.malformed.values()]
    assert malformed == list(whole.malformed.values())
    return parts


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 100])
@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("utf-16", b""), ("cp1252", b"")],
)
def test_parts_are_the_file_read_whole(
    tmp_path: Path, rows: int, encoding: str, bom: bytes
) -> None:
    text = MESSY.replace("last", "dernière é")
    path = tmp_path / "r.csv"
    path.write_bytes(bom + text.encode(encoding))
    parts = same_table(path, rows)
    if rows == 1:
        assert [int(p.lines[0]) for p in parts] == [4, 7, 8, 9, 11, 14, 15]


def test_a_ragged_row_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(MESSY)
    parts = same_table(path, 2)
    reasons = [r for p in parts for r in p.malformed.values()]
    assert reasons == [
        "line 9 has 4 fields but the header has 3 fields (a value that holds a comma needs "
        "double quotes)"
    ]


def test_semicolons_detected_once_for_every_part(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("to;body\n" + "".join(f"+9198765432{i:02d};hi, you\n" for i in range(30)))
    parts = same_table(path, 4)
    assert {p.delimiter for p in parts} == {";"}


def test_a_file_mixing_encodings_is_refused_as_read_table_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    good = "".join(f"+9198765432{i:02d},hi\n" for i in range(40)).encode()
    path.write_bytes(
        b"to,body\n"
        + "+919876543298,Zoë\n".encode()
        + good
        + "+919876543299,José\n".encode("cp1252")
    )
    with pytest.raises(kb.InputError) as whole:
        reading.read_table(path, RECIPIENT_FILE)
    with pytest.raises(kb.InputError) as parts:
        list(reading.read_table_parts(path, RECIPIENT_FILE, 5))
    assert str(parts.value) == str(whole.value)
    assert "line 43 is not" in str(parts.value)


def test_a_line_not_in_the_encoding_given_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    good = "".join(f"+9198765432{i:02d},hi\n" for i in range(40)).encode()
    path.write_bytes(b"to,body\n" + good + "+919876543299,José\n".encode("cp1252"))
    with pytest.raises(kb.InputError, match=r"line 42 is not utf-8.*encoding=/--encoding"):
        list(reading.read_table_parts(path, RECIPIENT_FILE, 5, encoding="utf-8"))


def test_an_unclosed_quote_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = "".join(f"+9198765432{i:02d},hi\n" for i in range(20))
    path.write_text(f'to,body\n{rows}+919876543299,"never closed\n+919876543298,x\n')
    with pytest.raises(kb.InputError, match=r"line 22 opens a quoted value that is never closed"):
        list(reading.read_table_parts(path, RECIPIENT_FILE, 3))


@pytest.mark.parametrize("text", ["", "\n\n  \n", "to,body\n\n\n"])
def test_an_empty_file_is_refused_as_read_table_refuses_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(kb.InputError) as whole:
        reading.read_table(path, RECIPIENT_FILE)
    with pytest.raises(kb.InputError) as parts:
        list(reading.read_table_parts(path, RECIPIENT_FILE, 2))
    assert str(parts.value) == str(whole.value)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_recipient_parts_are_load_recipients_cut(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "Phone": [f"+9198765432{i:02d}" for i in range(23)],
            "Message": [f"hi {i}" for i in range(23)],
        }
    )
    path = tmp_path / f"r{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_excel(path, index=False)
    whole = kb.load_recipients(path, columns={"body": "Message"})
    parts = RecipientParts(path, 5, columns={"body": "Message"})
    assert parts.check() == 23
    cut = list(parts)
    assert [len(p) for p in cut] == [5, 5, 5, 5, 3]
    glued = pd.concat(cut)
    pd.testing.assert_frame_equal(glued, whole, check_index_type=False)
    assert list(pd.concat([line_numbers(p) for p in cut])) == list(line_numbers(whole))
    assert cut[2].attrs["columns"] == whole.attrs["columns"]
    assert cut[2].index[0] == 10  # each row keeps its position in the file


def test_a_header_that_reads_differently_further_down_is_refused(tmp_path: Path) -> None:
    # The recipient column is chosen among the phone-like ones that hold values: an empty
    # 'Mobile' at the start, filled further down, would be chosen by the whole file.
    path = tmp_path / "r.csv"
    rows = ["Phone,Mobile,body"] + [f"+9198765432{i:02d},,hi" for i in range(10)]
    rows += [f",+9198765433{i:02d},hi" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(kb.InputError, match=r"from line 12 on.*--column to=NAME"):
        RecipientParts(path, 10).check()
