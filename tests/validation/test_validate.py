"""validate(): every rule, its code, its boundaries, and the report."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import SENDER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwa_batch import ConfigurationError, ValidationError, ValidationReport, validate


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


# --- Messages built from columns ------------------------------------------------------------


def test_params_from_fills_template_params_in_order_and_quotes_commas() -> None:
    df = frame(
        to=["+919876543210", "+447911123456", "+6591234567"],
        name=["Priya", "Tan, Wei Ling", 'Ann "Jo"'],
        order_id=["A1", "A2", "A3"],
        params=[None, None, "own,params"],
    )
    report = validate(
        df, sender=SENDER, template_name="order_shipped", params_from=["name", "order_id"]
    )
    assert report.ok, report.errors
    assert report.valid["params"].tolist() == [
        "Priya,A1",
        '"Tan, Wei Ling",A2',
        "own,params",  # a row's own params win
    ]
    assert report.valid["type"].tolist() == ["template"] * 3
    assert report.valid["template_name"].tolist() == ["order_shipped"] * 3


def test_params_from_accepts_a_comma_separated_string_and_loose_names() -> None:
    df = frame(to=["+919876543210"], **{"Order ID": ["A1"], "name": ['Ann "Jo"']})
    report = validate(df, sender=SENDER, template_name="t", params_from="name, order id")
    assert report.valid.loc[0, "params"] == '"Ann ""Jo""",A1'


def test_body_template_fills_text_bodies() -> None:
    df = frame(to=["+919876543210", "+447911123456"], name=["Priya", "Olivia"], order=["A1", "A2"])
    report = validate(df, sender=SENDER, body_template="Hi {name}, order {order} has shipped")
    assert report.ok
    assert report.valid["body"].tolist() == [
        "Hi Priya, order A1 has shipped",
        "Hi Olivia, order A2 has shipped",
    ]
    assert report.valid["type"].tolist() == ["text", "text"]


def test_an_empty_value_makes_only_that_row_invalid() -> None:
    df = frame(to=["+919876543210", "+447911123456"], name=["Priya", " "], order=["A1", "A2"])
    report = validate(df, sender=SENDER, body_template="Hi {name}, order {order}")
    assert list(report.valid.index) == [0]
    assert codes(report) == ["KWA009"]
    assert report.errors.loc[0, "column"] == "name"
    assert "body_template uses {name}" in report.errors.loc[0, "message"]
    report = validate(df, sender=SENDER, template_name="t", params_from=["name", "order"])
    assert codes(report) == ["KWA009"]  # not also an empty parameter in params
    assert "WhatsApp refuses empty template parameters" in report.errors.loc[0, "message"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"body_template": "Hi {nom}"}, "body_template uses {nom}, but there is no column 'nom'"),
        ({"params_from": ["name", "missing"]}, "params_from names 'missing'"),
        ({"body_template": "Hi {}"}, "empty or numbered placeholder"),
        ({"body_template": "Hi {name:>10}"}, "only plain {column} placeholders"),
        ({"body_template": "Hi {name"}, "cannot be read"),
        ({"default_region": "XX"}, "unknown region 'XX'"),
    ],
)
def test_settings_that_cannot_work_fail_before_anything_runs(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        validate(frame(to=["+919876543210"], name=["A"]), sender=SENDER, **settings)


def test_campaign_settings_fill_only_empty_cells() -> None:
    df = frame(
        to=["+919876543210", "+447911123456"],
        template_name=[None, "own_template"],
        lang_code=["pt_BR", None],
        callback_url=[None, "https://own.example/cb"],
        params=["A", "B"],
    )
    report = validate(
        df,
        sender=SENDER,
        template_name="campaign",
        lang_code="en",
        callback_url="https://example.com/cb",
    )
    assert report.ok
    assert report.valid["template_name"].tolist() == ["campaign", "own_template"]
    assert report.valid["lang_code"].tolist() == ["pt_BR", "en"]
    assert report.valid["callback_url"].tolist() == [
        "https://example.com/cb",
        "https://own.example/cb",
    ]
    assert report.settings["template_name"] == "campaign"


def test_explicit_type_text_is_kept_even_with_a_campaign_template() -> None:
    df = frame(to=["+919876543210"], type=["text"], body=["Hi"])
    report = validate(df, sender=SENDER, template_name="campaign")
    assert report.ok
    assert report.valid.loc[0, "type"] == "text"


# --- More rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ("A", True),
        ("A,B", True),
        ('"Tan, Wei Ling",A1008', True),
        ('"say ""hi""",x', True),
        ("A,,B", False),
        ("A,", False),
        (",A", False),
        ('"",A', False),
        ('A"B', False),
        ('"unclosed,A', False),
    ],
)
def test_params_must_be_well_formed(params: str, ok: bool) -> None:
    report = validate(
        frame(to=["+919876543210"], template_name=["t"], params=[params]), sender=SENDER
    )
    assert report.ok is ok
    if not ok:
        assert codes(report) == ["KWA010"]


@pytest.mark.parametrize(
    ("lang", "ok"),
    [("en", True), ("pt_BR", True), ("fil", True), ("EN", False), ("en-US", False), (" en", False)],
)
def test_lang_code_shape(lang: str, ok: bool) -> None:
    report = validate(
        frame(to=["+919876543210"], template_name=["t"], lang_code=[lang]), sender=SENDER
    )
    assert report.ok is ok
    if not ok:
        assert codes(report) == ["KWA011"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/cb", True),
        ("http://127.0.0.1:8765/kaleyra/callback?x=1", True),
        ("example.com/cb", False),
        ("ftp://example.com", False),
        ("https://exa mple.com", False),
        ("https://", False),
    ],
)
def test_callback_url_must_be_http(url: str, ok: bool) -> None:
    report = validate(frame(to=["+919876543210"], body=["x"], callback_url=[url]), sender=SENDER)
    assert report.ok is ok


def test_channel_whatsapp_in_any_case_and_type_case() -> None:
    report = validate(
        frame(to=["+919876543210"], body=["x"], channel=[" WhatsApp "], type=["TEXT"]),
        sender=SENDER,
    )
    assert report.ok
    assert report.valid.loc[0, "type"] == "text"


def test_invalid_sender_argument_rejects_rows_without_their_own() -> None:
    df = frame(to=["+919876543210", "+447911123456"], body=["a", "b"], **{"from": [None, SENDER]})
    report = validate(df, sender="12345")
    assert list(report.valid.index) == [1]
    assert codes(report) == ["E13008"]
    assert report.errors.loc[0, "value"] == "12345"


def test_rows_without_any_sender_are_left_to_the_client() -> None:
    report = validate(frame(to=["+919876543210"], body=["a"]))
    assert report.ok
    assert "from" not in report.valid.columns


def test_ragged_rows_report_their_shape_only(write_csv) -> None:
    from kwa_batch import load_recipients

    df = load_recipients(write_csv("to,body,ref\n+919876543210,Hi,r\n<b>bad</b>\n"))
    report = validate(df, sender=SENDER)
    assert codes(report) == ["KWA008"]


def test_malformed_rows_follow_their_label_after_filtering(write_csv) -> None:
    from kwa_batch import load_recipients

    df = load_recipients(
        write_csv("to,body\n+919876543210,a\n+447911123456,b,extra\n+919845012345,c\n")
    )
    report = validate(df.iloc[[1, 2]], sender=SENDER)
    assert report.errors["row"].tolist() == [1]
    assert report.errors["line"].tolist() == [3]
    assert list(report.valid.index) == [2]


# --- The report ------------------------------------------------------------------------------


def test_errors_frame_columns_and_dtypes() -> None:
    report = validate(frame(to=["bad", "+919876543210"], body=["x", None]), sender=SENDER)
    assert list(report.errors.columns) == [
        "row",
        "line",
        "column",
        "value",
        "check",
        "error_code",
        "message",
    ]
    assert str(report.errors["line"].dtype) == "Int64"
    assert report.errors["check"].tolist() == ["phone_valid", "body_required"]
    assert list(report.invalid.columns) == ["to", "body", "error_code", "errors"]
    empty = validate(frame(to=["+919876543210"], body=["x"]), sender=SENDER)
    assert list(empty.errors.columns) == list(report.errors.columns)
    assert empty.summary().empty


def test_valid_rows_keep_other_columns_and_the_index() -> None:
    df = frame(to=["+91 98765 43210"], body=["x"], name=["Priya"])
    df.index = pd.Index(["first"])
    report = validate(df, sender=SENDER)
    assert list(report.valid.index) == ["first"]
    assert report.valid.loc["first", "name"] == "Priya"
    assert report.valid.loc["first", "to"] == "+919876543210"
    assert report.data is df


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_report_is_saved_for_spreadsheets(tmp_path, suffix: str) -> None:
    from openpyxl import load_workbook

    report = validate(frame(to=["=HYPERLINK(1)", "+919876543210"], body=["x", "y"]), sender=SENDER)
    path = report.save(tmp_path / f"problems{suffix}")
    if suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        assert "'=HYPERLINK(1)" in text
        assert "E13009" in text
    else:
        book = load_workbook(path)
        assert book.sheetnames == ["Problems", "Summary"]
        cell = book["Problems"]["D2"]
        assert cell.value == "=HYPERLINK(1)"
        assert cell.data_type == "s"


def test_report_save_refuses_other_formats(tmp_path) -> None:
    from kwa_batch import KwaBatchError

    report = validate(frame(to=["bad"], body=["x"]), sender=SENDER)
    with pytest.raises(KwaBatchError, match=r"use \.csv or \.xlsx"):
        report.save(tmp_path / "r.json")


def test_html_repr_lists_codes_and_escapes_values() -> None:
    report = validate(frame(to=["<script>alert(1)</script>"], body=["x"]), sender=SENDER)
    html = report._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "E413" in html
    assert "meaning and fix" in html


def test_models_are_pandera_models() -> None:
    from pandera.pandas import DataFrameModel

    from kwa_batch.validation.rules import MessageRow, TemplateMessage, TextMessage

    for model in (MessageRow, TextMessage, TemplateMessage):
        assert issubclass(model, DataFrameModel)
    checks = {c.name for col in TemplateMessage.to_schema().columns.values() for c in col.checks}
    assert {"phone_valid", "template_required", "params_format", "no_html"} <= checks


# --- Arbitrary cells never raise anything but a KwaBatchError --------------------------------

_CELL = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["+919876543210", "9.19876543210E+11", "<b>x</b>", "template", "text", ""]),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional=dict.fromkeys(
                (
                    "from",
                    "type",
                    "channel",
                    "body",
                    "template_name",
                    "params",
                    "lang_code",
                    "ref",
                    "callback_url",
                    "name",
                ),
                _CELL,
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(_CELL, min_size=6, max_size=6),
    st.sampled_from([None, "IN", "GB"]),
    st.sampled_from([None, "Hi {name}", "{name}"]),
    st.sampled_from([None, ["name"]]),
)
def test_arbitrary_cells_never_raise_anything_but_a_kwabatch_error(
    rows, numbers, region, body_template, params_from
) -> None:
    from kwa_batch import KwaBatchError

    df = pd.DataFrame(rows)
    df["to"] = numbers[: len(df)]
    try:
        report = validate(
            df,
            default_region=region,
            sender=SENDER,
            body_template=body_template,
            params_from=params_from,
        )
    except KwaBatchError:
        return
    assert len(report.valid) + len(report.invalid) == len(df)
    assert report.valid["to"].str.fullmatch(r"\+[1-9]\d{6,14}").all()
    assert set(report.invalid.index) == set(report.errors["row"])


def test_repeated_api_columns_are_an_input_error() -> None:
    from kwa_batch import InputError

    df = pd.DataFrame([["+919876543210", "x", "y"]], columns=["to", "body", "body"])
    with pytest.raises(InputError, match="more than one column named 'body'"):
        validate(df)


def test_validate_runs_without_pandera_and_the_models_agree() -> None:
    """validate() runs the check table itself (fast start); the pandera models built from
    the same table flag the same rows."""
    import subprocess
    import sys

    script = (
        "import sys, pandas as pd\n"
        "from kwa_batch import validate\n"
        "validate(pd.DataFrame({'to': ['+919876543210', 'x'], 'body': ['Hi', None]}),"
        " sender='+911234567890')\n"
        "print('pandera' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr

    import pandera.errors

    from kwa_batch.validation.rules import TextMessage

    df = frame(
        to=["+919876543210", "+14155550123", "+447911123456"],
        body=["<b>x</b> ok", "", "fine"],
        ref=["<i>r</i>", None, "a" * 300],
    )
    report = validate(df, sender=SENDER)
    ours = {(int(r.row), r.check) for r in report.errors.itertuples() if r.check != "phone_valid"}
    prepared = report.valid.reindex(df.index).assign(
        to=["+919876543210", "+14155550123", "+447911123456"],
        body=df["body"].replace("", None),
        ref=df["ref"],
        type="text",
    )
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        TextMessage.validate(prepared, lazy=True)
    theirs = {
        (int(i), str(e.check.name))
        for e in caught.value.schema_errors
        for i in e.check_output.index[~e.check_output.to_numpy(dtype=bool, na_value=False)]
    }
    assert ours == theirs
