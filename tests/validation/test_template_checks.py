"""check_templates and render_messages against the sample catalogue."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import ROOT

from kwa_batch.catalogue import load_templates
from kwa_batch.errors import ERROR_CODES
from kwa_batch.validation.preview import render_messages
from kwa_batch.validation.template_checks import check_templates

CATALOGUE = load_templates(ROOT / "sample_data" / "templates.csv")
GOOD = {"template_name": "order_shipped", "lang_code": "en", "params": "Priya,A1005,2436.50"}


def findings(rows: list[dict[str, str | None]]) -> list[tuple[int, str, str, str]]:
    found = check_templates(pd.DataFrame(rows), CATALOGUE)
    out = []
    for finding in found.findings:
        for pos, message in zip(finding.positions, finding.message, strict=True):
            out.append((int(pos), finding.column, finding.code, message))
    return sorted(out)


def only(row: dict[str, str | None]) -> tuple[str, str, str]:
    got = findings([row])
    assert len(got) == 1, got
    return got[0][1:]


def test_a_matching_row_passes() -> None:
    assert findings([GOOD]) == []


@pytest.mark.parametrize(
    ("row", "column", "code", "message"),
    [
        (
            {**GOOD, "params": "Priya,A1005"},
            "params",
            "KWA019",
            "order_shipped (en) takes 3 parameters; this row has 2",
        ),
        (
            {**GOOD, "params": '"Tan, Wei Ling",A1008,"1,200.00",x'},
            "params",
            "KWA019",
            "this row has 4",
        ),
        (
            {**GOOD, "template_name": "order_shiped"},
            "template_name",
            "KWA013",
            "no template named 'order_shiped' in the catalogue: did you mean 'order_shipped'?",
        ),
        (
            {**GOOD, "template_name": "black_friday"},
            "template_name",
            "KWA013",
            "use an approved template's name",
        ),
        (
            {**GOOD, "lang_code": None},
            "lang_code",
            "KWA014",
            "order_shipped exists in 2 languages (en, hi): fill lang_code",
        ),
        (
            {**GOOD, "lang_code": "pt_BR"},
            "lang_code",
            "KWA015",
            "order_shipped has no 'pt_BR' version (languages: en, hi)",
        ),
        (
            {"template_name": "spring_sale", "params": "A,B"},
            "template_name",
            "KWA017",
            "spring_sale (en) is paused",
        ),
        (
            {"template_name": "festive_offer", "params": "A,B"},
            "template_name",
            "KWA018",
            "is disabled",
        ),
        ({"template_name": "winter_sale", "params": "A"}, "template_name", "KWA016", "is rejected"),
        (
            {"template_name": "feedback_request", "params": "A,B"},
            "template_name",
            "KWA016",
            "is pending",
        ),
        (
            {"template_name": "order_invoice", "params": "A,B"},
            "media_url",
            "KWA020",
            "order_invoice (en) has a document header: fill media_url",
        ),
        (
            {"template_name": "order_invoice", "params": "A,B", "media_url": "invoice.pdf"},
            "media_url",
            "KWA020",
            "full https link",
        ),
        (
            {
                "template_name": "order_invoice",
                "params": "A,B",
                "media_url": "https://x.example/a.JPG?v=2",
            },
            "media_url",
            "KWA021",
            "header is a document, but media_url links a .jpg file (an image)",
        ),
        (
            {"template_name": "delivery_update", "params": "9,11", "param_url": "A1005"},
            "param_header",
            "KWA022",
            "delivery_update (en) has a header with a placeholder (Order {{1}})",
        ),
        (
            {"template_name": "delivery_update", "params": "9,11", "param_header": "A1005"},
            "param_url",
            "KWA023",
            "dynamic link button (https://shop.example.com/track/{{1}})",
        ),
        (
            {**GOOD, "params": "Priya,A1005,2436.50     INR"},
            "params",
            "KWA024",
            "more than four spaces in a row",
        ),
        (
            {
                "template_name": "delivery_update",
                "params": "9,11",
                "param_header": "A\t1005",
                "param_url": "A1005",
            },
            "param_header",
            "KWA024",
            "param_header holds a line break, a tab",
        ),
        (
            {
                "template_name": "delivery_update",
                "params": "9,11",
                "param_header": "A1005",
                "param_url": "A\n1005",
            },
            "param_url",
            "KWA024",
            "param_url holds a line break",
        ),
    ],
)
def test_each_mismatch_has_its_code_and_names_it(
    row: dict[str, str | None], column: str, code: str, message: str
) -> None:
    got_column, got_code, got_message = only(row)
    assert (got_column, got_code) == (column, code)
    assert message in got_message
    assert ERROR_CODES[code].fix


def test_the_issue_s_example_message() -> None:
    catalogue = load_templates(
        pd.DataFrame(
            {"template_name": ["order_shipped"], "lang_code": ["en"], "status": ["approved"],
             "body": ["Hi {{1}}, order {{2}} has shipped"]}
        )
    )  # fmt: skip
    rows = pd.DataFrame({"template_name": ["order_shipped"], "params": ["a,b,c"]})
    [finding] = check_templates(rows, catalogue).findings
    assert finding.message[0].startswith("order_shipped (en) takes 2 parameters; this row has 3")


def test_an_empty_lang_code_takes_the_only_language() -> None:
    rows = pd.DataFrame(
        {"template_name": ["spring_sale", "delivery_update", None], "lang_code": [None, "", None]}
    )
    check = check_templates(rows, CATALOGUE)
    assert check.lang_code is not None
    assert check.lang_code.tolist()[:2] == ["en", "en"]
    assert pd.isna(check.lang_code.iloc[2])


def test_text_rows_and_other_types_are_left_alone() -> None:
    rows = [
        {"type": "text", "body": "Hi", "template_name": "nonsense"},
        {"type": "Template", "template_name": "nonsense"},
        {
            "type": "mediatemplate",
            "template_name": "order_invoice",
            "params": "A,B",
            "media_url": "https://x.example/i.pdf",
        },
    ]
    assert [(p, code) for p, _, code, _ in findings(rows)] == [(1, "KWA013")]


def test_many_rows_at_once_positions_line_up() -> None:
    good = pd.DataFrame([GOOD] * 1000)
    good.loc[[3, 500, 999], "params"] = "only,two"
    good.loc[[10, 11], "template_name"] = "spring_sale"
    good.index = pd.RangeIndex(5000, 6000)  # positions, not labels
    check = check_templates(good, CATALOGUE)
    by_code = {f.code: f.positions.tolist() for f in check.findings}
    assert by_code["KWA019"] == [3, 10, 11, 500, 999]  # spring_sale takes 2
    assert by_code["KWA017"] == [10, 11]
    assert check.mask(1000).sum() == 5


def test_render_shows_the_message_as_the_recipient_reads_it() -> None:
    rows = pd.DataFrame(
        [
            {"to": "+919876543210", **GOOD, "params": '"Tan, Wei Ling",A1008,"2,436.50"'},
            {
                "to": "+919876543211",
                "template_name": "delivery_update",
                "params": "9:00,11:00",
                "param_header": "A1005",
                "param_url": "A1005",
            },
            {"to": "+919876543212", "body": "Plain text"},
            {"to": "+919876543213", "template_name": "unknown"},
            {"to": "+919876543214", **GOOD},
        ],
        index=[10, 11, 12, 13, 14],
    )
    shown = render_messages(rows, CATALOGUE, rows=4)
    assert shown.index.tolist() == [10, 11, 12, 13]
    assert shown.loc[10, "message"] == (
        "Hi Tan, Wei Ling, your order A1008 of ₹2,436.50 has shipped. We will message you "
        "again when it is out for delivery.\nReply STOP to unsubscribe\n"
        "[https://shop.example.com/orders]"
    )
    assert shown.loc[11, "message"].splitlines() == [
        "Order A1005",
        "Your parcel is out for delivery today between 9:00 and 11:00.",
        "[https://shop.example.com/track/A1005]",
    ]
    assert shown.loc[10, "template"] == "order_shipped (en)"
    assert shown.loc[12, "message"] == "Plain text"
    assert pd.isna(shown.loc[12, "template"])
    assert pd.isna(shown.loc[13, "message"])


def test_render_without_a_catalogue_shows_text_only() -> None:
    rows = pd.DataFrame({"to": ["+1", "+2"], "body": ["Hi", None], "template_name": [None, "x"]})
    shown = render_messages(rows)
    assert shown["message"].iloc[0] == "Hi"
    assert pd.isna(shown["message"].iloc[1])
