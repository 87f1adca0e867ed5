"""load_rate_card checks every line before anything is priced: finite plain prices from 0
up, one price per region and category, a region, category and currency on each row; a
refusal names the file, the line, the column, the value and the fix. Real files."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, load_within

from kwa_batch.errors import InputError
from kwa_batch.pricing import MAX_PRICE, load_rate_card

HEADER = "region,category,price,currency\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "card.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def refused(source: Path | pd.DataFrame) -> str:
    with pytest.raises(InputError) as info:
        load_rate_card(source)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("inf", "'inf' is not a finite number"),
        ("-inf", "'-inf' is not a finite number"),
        ("Infinity", "'Infinity' is not a finite number"),
        ("nan", "'nan' is not a finite number"),
        ("NaN", "'NaN' is not a finite number"),
        ("-0.5", "'-0.5' is negative: a price is 0 or more"),
        ("9" * 400, "'99999999999999999999'... (400 characters) is more than 1,000,000"),
        ("1e400", "'1e400' is more than 1,000,000"),
        ("2000000", "'2000000' is more than 1,000,000"),
        ('"0,0107"', "'0,0107' is not a number >= 0"),  # a decimal comma, quoted
        ("$0.01", "is not a number >= 0"),
        ("1_000", "is not a number >= 0"),
        ("0x10", "is not a number >= 0"),
        ("", "empty"),
    ],
)
def test_a_price_must_be_a_plain_finite_number_from_0(
    tmp_path: Path, price: str, expected: str
) -> None:
    path = write(tmp_path, f"# a comment\nIN,utility,0.0014,USD\n\nIN,marketing,{price},USD\n")
    message = refused(path)
    assert message.startswith(f"rate card {path}, line 5, column price: ")
    assert expected in message
    if price and price != "inf" and "-" not in price:
        assert "plain number such as 0.0107" in message


def test_a_zero_price_is_a_free_category(tmp_path: Path) -> None:
    card = load_rate_card(write(tmp_path, "IN,service,0,USD\nIN,marketing,0.0107,USD\n"))
    assert card["price"].tolist() == [0.0, 0.0107]
    assert MAX_PRICE == 1_000_000


def test_the_same_region_and_category_twice(tmp_path: Path) -> None:
    rows = "IN,marketing,0.01,USD\nGB,marketing,0.05,USD\nin, Marketing ,0.02,USD\n"
    path = write(tmp_path, rows)
    message = refused(path)
    assert f"rate card {path}, line 4: IN marketing is priced twice (also on line 2)" in message
    assert "keep one price per region and category" in message


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [
        (",marketing,0.01,USD", "region", "empty: write an ISO code such as IN"),
        ("India,marketing,0.01,USD", "region", "'INDIA' is not an ISO code such as IN"),
        ("IN,,0.01,USD", "category", "empty"),
        ("IN,market ing,0.01,USD", "category", "is not a category such as marketing"),
        ("IN,marketing,0.01,", "currency", "empty"),
        ("IN,marketing,0.01,dollars", "currency", "'DOLLARS' is not an ISO code such as USD"),
        ("IN,marketing", "price", "empty"),
    ],
)
def test_every_column_is_checked(tmp_path: Path, row: str, column: str, expected: str) -> None:
    message = refused(write(tmp_path, row + "\n"))
    assert f"line 2, column {column}: " in message
    assert expected in message


def test_a_frame_is_checked_the_same_way() -> None:
    frame = pd.DataFrame(
        {
            "region": ["IN", "IN"],
            "category": ["marketing", "utility"],
            "price": [0.01, float("inf")],
            "currency": ["USD", "USD"],
        }
    )
    assert "the rate card, row 1, column price: 'inf' is not a finite number" in refused(frame)
    frame.loc[1, "price"] = 0.02
    frame.loc[1, "category"] = "marketing"
    assert "row 1: IN marketing is priced twice (also on row 0)" in refused(frame)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"# only a comment\n\n", "the file is empty"),
        (bytes(range(256)) * 4, "is a binary file, not a CSV"),
        (b"region,category,price\nIN,marketing,1\n", "missing column(s) currency"),
    ],
)
def test_hostile_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "card.csv"
    path.write_bytes(content)
    assert expected in refused(path)


@pytest.mark.parametrize(
    ("bom", "encoding"), [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")]
)
def test_a_card_with_a_byte_order_mark_loads(tmp_path: Path, bom: bytes, encoding: str) -> None:
    sample = ROOT / "sample_data" / "rate_card.csv"
    path = tmp_path / "card.csv"
    path.write_bytes(bom + sample.read_text(encoding="utf-8").encode(encoding))
    pd.testing.assert_frame_equal(load_rate_card(path), load_rate_card(sample))


def test_semicolons_and_trailing_comments(tmp_path: Path) -> None:
    path = write(tmp_path, "IN;marketing;0,5;USD\n", header="region;category;price;currency\n")
    assert "'0,5' is not a number >= 0: write it as a plain number" in refused(path)
    path = write(tmp_path, "IN,marketing,0.5,USD  # Meta's card, July 2025\n")
    assert load_rate_card(path)["price"].tolist() == [0.5]


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "card.csv"
    os.mkfifo(path)
    error = load_within(load_rate_card, path, seconds=10)
    assert isinstance(error, InputError)
    assert "is a named pipe (FIFO), not a file" in str(error)


def test_a_card_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "card.csv"
    with path.open("wb") as out:
        out.truncate(64 * 2**20)
    assert "over the 4 MiB a rate card may be" in refused(path)
