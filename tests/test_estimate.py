"""estimate(): cost by region and category from a rate card, requests, duration, and what
pacing holds back — checked against a hand count on the sample rate card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.errors import InputError
from kwa_batch.fields import message_frame
from kwa_batch.pricing import describe, describe_table, load_rate_card
from kwa_batch.sending.planner import plan_requests

SAMPLE = Path(__file__).parent.parent / "sample_data"
NOON = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)


def campaign() -> kb.ValidationReport:
    """India 3 (2 marketing to the same person, 1 utility), UK 2 marketing, US 3 marketing in
    3 zones, Brazil 1 utility, India 1 text (service)."""
    marketing = ("mediatemplate", "new_collection", "Ana,20%", "en")
    utility = ("template", "order_shipped", "Ana,A-1,500", "en")
    rows = [
        ("+919876500001", *marketing),
        ("+919876500001", "mediatemplate", "new_collection", "Ana,30%", "en"),
        ("+919876500002", *utility),
        ("+447911123451", *marketing),
        ("+447911123452", *marketing),
        ("+12125550101", *marketing),
        ("+13125550102", *marketing),
        ("+14155550103", *marketing),
        ("+5511987650001", *utility),
    ]
    frame = pd.DataFrame(rows, columns=["to", "type", "template_name", "params", "lang_code"])
    text = pd.DataFrame({"to": ["+919876500003"], "body": ["Thanks for your reply"]})
    frame["media_url"] = "https://cdn.example.com/monsoon.jpg"
    frame = pd.concat([frame, text], ignore_index=True).astype("str")
    frame = frame.where(frame != "nan", pd.NA).astype("str")
    templates = kb.load_templates(SAMPLE / "templates.csv")
    return kb.validate(frame, sender=SENDER, templates=templates)


def test_the_estimate_matches_a_hand_count_on_the_sample_rate_card() -> None:
    report = campaign()
    assert len(report.valid) == 10, report.errors
    result = kb.estimate(
        report, rates=SAMPLE / "rate_card.csv", rate_limit=2, quiet_hours="21:00-09:00", now=NOON
    )
    table = result.set_index(["region", "category"])
    assert table.loc[("IN", "marketing"), ["messages", "recipients"]].tolist() == [2, 1]
    assert table.loc[("US", "marketing"), ["messages", "recipients"]].tolist() == [3, 3]
    assert table.loc[("IN", "service"), "messages"] == 1
    # By hand, from sample_data/rate_card.csv (USD): IN marketing 2 x 0.0107, IN utility
    # 0.0014, IN service 0, GB marketing 2 x 0.0529, US marketing 3 x 0.0250, BR utility 0.0068.
    by_hand = 2 * 0.0107 + 0.0014 + 0 + 2 * 0.0529 + 3 * 0.0250 + 0.0068
    assert result.attrs["summary"]["cost"] == pytest.approx(by_hand)
    assert table["cost"].sum() == pytest.approx(by_hand)
    assert set(result["currency"]) == {"USD"}
    summary = result.attrs["summary"]
    assert summary["messages"] == 10
    assert summary["recipients"] == 9
    assert summary["duration_seconds"] == 5.0  # 10 messages at 2/s
    # As send() groups them at 2/s (groups of 2): the six rows of one marketing message in
    # 3 requests, the other marketing row 1, the two utility rows (same params) 1, the text 1.
    assert summary["requests"] == 6
    assert len(list(plan_requests(message_frame(report.valid)))) == 4  # unlimited: groups of 100
    assert summary["held_back"] == {"KWA027": 3}  # the three US zones at 12:00 UTC
    assert "cost: 0.2104 USD" in describe(summary)
    html = result._repr_html_()
    assert "duration_seconds" in html
    assert "<table" in html


def test_rows_off_the_card_are_counted_not_priced() -> None:
    card = pd.DataFrame(
        {"region": ["IN"], "category": ["marketing"], "price": ["0.01"], "currency": ["INR"]}
    )
    result = kb.estimate(campaign(), rates=card)
    assert result["cost"].isna().sum() == len(result) - 1
    assert result.attrs["summary"]["unpriced_messages"] == 8
    assert "8 message(s) not priced (no rate for their region and category)" in describe(
        result.attrs["summary"]
    )


def test_the_table_says_why_a_row_has_no_price() -> None:
    card = pd.DataFrame(
        {"region": ["IN"], "category": ["marketing"], "price": ["0.0107"], "currency": ["USD"]}
    )
    found = kb.estimate(campaign(), rates=card, templates=None)
    lines = describe_table(found)
    assert lines[0].split() == ["region", "category", "messages", "recipients", "price", "cost"]
    assert "nan" not in "\n".join(lines).lower()
    assert any(
        line.split()[:7] == ["IN", "marketing", "2", "1", "0.0107", "USD", "0.0214"]
        for line in lines
    )
    assert any(
        line.split()[:2] == ["GB", "marketing"] and line.endswith("not on the rate card")
        for line in lines
    )


def test_without_a_rate_card_nothing_is_said_of_one() -> None:
    summary = kb.estimate(campaign()).attrs["summary"]
    assert summary["unpriced_messages"] == 10
    assert not any(
        "priced" in line or "cost" in line for line in describe(summary, rate_card=False)
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("region,category,price\nIN,marketing,1\n", "missing column"),
        (
            "region,category,price,currency\nIN,marketing,$1,USD\n",
            r"line 2, column price: '\$1' is not a number >= 0",
        ),
        ("region,category,price,currency\nIN,marketing,-1,USD\n", "'-1' is negative"),
    ],
)
def test_a_bad_rate_card_says_what_is_wrong(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "card.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_rate_card(path)
