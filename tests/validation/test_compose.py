"""Building messages from columns, and the fix a missing body names (issue #14)."""

from __future__ import annotations

import pandas as pd
import pytest

from kwa_batch import load_recipients, validate
from kwa_batch.validation.compose import body_hint

SENDER = "+911234567890"
_NEEDS_BODY = "a text message needs a body: fill it, or give a template_name to send a template"


@pytest.mark.parametrize("header", ["Message", "Text", "Content", "message text", "SMS"])
def test_a_message_column_beside_a_missing_body_is_named_in_the_fix(write_csv, header) -> None:
    df = load_recipients(write_csv(f"Mobile,Name,{header}\n+919876543210,Priya,Hi\n"))
    report = validate(df, sender=SENDER)
    (message,) = report.errors["message"]
    quoted = f"'{header}'" if " " in header else header
    assert message == (
        f"{_NEEDS_BODY}; the file has a {header!r} column: map it with --column "
        f"body={quoted} / columns={{'body': {header!r}}}"
    )


def test_several_message_columns_are_all_named(write_csv) -> None:
    df = load_recipients(write_csv("to,Message,Text\n+919876543210,a,b\n"))
    (message,) = validate(df, sender=SENDER).errors["message"]
    assert message.endswith(
        "the file has 'Message' and 'Text' columns: map the one to send with --column "
        "body=NAME / columns={'body': NAME}"
    )


def test_no_hint_with_a_body_column_or_without_a_message_column(write_csv) -> None:
    df = load_recipients(write_csv("to,body,Message\n+919876543210,,Hi\n"))
    assert validate(df, sender=SENDER).errors["message"].tolist() == [_NEEDS_BODY]
    df = load_recipients(write_csv("to,Name\n+919876543210,Priya\n"))
    assert validate(df, sender=SENDER).errors["message"].tolist() == [_NEEDS_BODY]


def test_the_hint_is_one_text_for_every_row() -> None:
    n = 50_000
    df = pd.DataFrame({"to": ["+919876543210"] * n, "Message": ["Hi"] * n})
    errors = validate(df, sender=SENDER).errors
    assert len(errors) == n
    assert errors["message"].nunique() == 1
    assert body_hint(df.columns) in errors["message"].iloc[0]


def test_mapping_the_message_column_sends_it(write_csv) -> None:
    df = load_recipients(
        write_csv("Mobile,Name,Message\n+919876543210,Priya,Hi\n"), columns={"body": "Message"}
    )
    report = validate(df, sender=SENDER)
    assert report.ok
    assert report.valid.loc[0, "body"] == "Hi"
