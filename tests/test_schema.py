"""validate(): every rule, its code, its boundaries, and the report."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SENDER

from kwa_batch import ValidationError, ValidationReport, validate


def frame(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame({k: pd.array(v, dtype="str") for k, v in columns.items()})


def codes(report: ValidationReport) -> list[str]:
    return report.errors["error_code"].tolist()


def test_valid_rows_are_normalised() -> None:
    report = validate(
        frame(to=["+91 98765 43210", "07911 123456"], body=["Hi", "Hello"]),
        default_region="GB",
        sender="+91 12345 67890",
    )
    assert report.ok
    assert report.valid["to"].tolist() == ["+919876543210", "+447911123456"]
    assert report.valid["from"].tolist() == ["+911234567890", "+911234567890"]
    assert report.valid["type"].tolist() == ["text", "text"]


def test_row_sender_wins_over_argument() -> None:
    report = validate(
        frame(
            to=["+919876543210", "+447911123456"],
            body=["a", "b"],
            **{"from": ["+919845012345", None]},
        ),
        sender=SENDER,
    )
    assert report.valid["from"].tolist() == ["+919845012345", SENDER]


@pytest.mark.parametrize(
    ("columns", "code", "column"),
    [
        ({"to": ["12345"], "body": ["x"]}, "E13009", "to"),
        ({"to": [None], "body": ["x"]}, "E13009", "to"),
        ({"to": ["9.19876543210E+11"], "body": ["x"]}, "KWA004", "to"),
        ({"to": ["+919876543210"], "body": ["x"], "from": ["123"]}, "E13008", "from"),
        ({"to": ["+919876543210"], "body": [None]}, "KWA002", "body"),
        ({"to": ["+919876543210"], "type": ["template"]}, "KWA002", "template_name"),
        ({"to": ["+919876543210"], "body": ["x"], "type": ["image"]}, "KWA003", "type"),
        ({"to": ["+919876543210"], "body": ["x"], "channel": ["sms"]}, "KWA003", "channel"),
        (
            {"to": ["+919876543210"], "body": ["x"], "callback_url": ["example.com/cb"]},
            "KWA005",
            "callback_url",
        ),
        ({"to": ["+919876543210"], "body": ["x"], "ref": ["a\nb"]}, "KWA006", "ref"),
        ({"to": ["+919876543210"], "body": ["x\x07"]}, "KWA006", "body"),
    ],
)
def test_each_rule_has_its_code(columns: dict[str, list[object]], code: str, column: str) -> None:
    report = validate(frame(**columns), sender=SENDER)
    assert not report.ok
    assert (code, column) in list(
        zip(report.errors["error_code"], report.errors["column"], strict=True)
    )
    assert report.invalid.loc[0, "error_code"] == code


@pytest.mark.parametrize(
    "field",
    ["to", "from", "template_name", "params", "lang_code", "ref", "ref1", "ref2", "callback_url"],
)
def test_html_is_refused_in_every_field_but_body(field: str) -> None:
    columns: dict[str, list[object]] = {
        "to": ["+919876543210"],
        "body": ["<b>bold</b> is fine here"],
    }
    columns[field] = [(columns.get(field, [""])[0] or "") + "<script>x</script>"]
    if field == "template_name":
        columns["type"] = ["template"]
    report = validate(frame(**columns), sender=SENDER)
    assert "E413" in codes(report)
    assert report.errors.loc[report.errors["error_code"] == "E413", "column"].tolist() == [field]


def test_html_in_body_is_allowed() -> None:
    assert validate(frame(to=["+919876543210"], body=["<b>Hi</b>"]), sender=SENDER).ok


@pytest.mark.parametrize("field", ["ref", "ref1", "ref2"])
@pytest.mark.parametrize(("length", "ok"), [(255, True), (256, False)])
def test_ref_limit(field: str, length: int, ok: bool) -> None:
    report = validate(
        frame(to=["+919876543210"], body=["x"], **{field: ["r" * length]}), sender=SENDER
    )
    assert report.ok is ok
    if not ok:
        assert codes(report) == ["KWA001"]
        assert "256 characters; the limit is 255" in report.errors.loc[0, "message"]


@pytest.mark.parametrize(("length", "ok"), [(4096, True), (4097, False)])
def test_body_limit(length: int, ok: bool) -> None:
    report = validate(frame(to=["+919876543210"], body=["b" * length]), sender=SENDER)
    assert report.ok is ok


def test_duplicates_keep_the_first_and_name_it() -> None:
    df = frame(to=["+919876543210", "+91 98765 43210", "+919876543210"], body=["Hi", "Hi", "Other"])
    report = validate(df, sender=SENDER)
    assert list(report.valid.index) == [0, 2]
    assert codes(report) == ["KWA007"]
    assert "row 0" in report.errors.loc[0, "message"]


def test_template_type_is_inferred_from_template_name() -> None:
    report = validate(
        frame(to=["+919876543210"], template_name=["order_shipped"], params=["A,B"]), sender=SENDER
    )
    assert report.ok
    assert report.valid.loc[0, "type"] == "template"


def test_report_lists_every_problem_of_a_row_and_keeps_the_index() -> None:
    df = frame(to=["bad", "+919876543210"], body=[None, "ok"], ref=["<i>x</i>", None])
    df.index = pd.Index([100, 200])
    report = validate(df, sender=SENDER)
    assert list(report.invalid.index) == [100]
    assert list(report.valid.index) == [200]
    assert set(codes(report)) == {"E13009", "KWA002", "E413"}
    assert report.invalid.loc[100, "errors"].count(";") == 2
    assert set(report.summary().index) == {"E13009", "KWA002", "E413"}


def test_raise_for_errors_and_reprs() -> None:
    report = validate(frame(to=["bad"], body=["x"]), sender=SENDER)
    with pytest.raises(ValidationError, match="1 invalid row"):
        report.raise_for_errors()
    assert repr(report) == "<ValidationReport: 1 rows, 0 valid, 1 invalid>"
    html = report._repr_html_()
    assert "<table" in html
    assert "E13009" in html
    validate(frame(to=["+919876543210"], body=["x"]), sender=SENDER).raise_for_errors()


def test_missing_to_column_is_an_input_error() -> None:
    from kwa_batch import InputError

    with pytest.raises(InputError, match="no 'to' column"):
        validate(pd.DataFrame({"phone": ["+919876543210"]}))
