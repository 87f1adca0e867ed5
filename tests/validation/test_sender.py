"""The sender rule, one home: the library, the planner, the client and the command line say
the same thing about a missing or an unusable sender."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SENDER

import kwa_batch as kb
from kwa_batch.cli import cli
from kwa_batch.config import NO_SENDER_FIX
from kwa_batch.errors import ConfigurationError
from kwa_batch.sending.client import KaleyraClient
from kwa_batch.sending.planner import plan_requests
from kwa_batch.validation.sender import (
    INVALID_SENDER_FIX,
    choose_sender,
    same_sender,
)


def test_the_first_sender_given_wins() -> None:
    assert choose_sender(None, " ", SENDER, "+447911123456") == SENDER
    assert choose_sender(None, "") is None


def test_senders_are_compared_as_numbers() -> None:
    assert same_sender(SENDER, "+91 12345 67890")
    assert same_sender("01234 567890", SENDER, "IN")
    assert not same_sender(SENDER, "+447911123456")
    assert not same_sender("0000", "0000 ")
    assert same_sender(None, "")


def test_a_row_refused_for_its_sender_and_the_command_line_give_the_same_fix(
    tmp_path: Path,
) -> None:
    report = kb.validate(pd.DataFrame({"to": ["+919876543210"], "body": ["hi"]}), sender="12")
    (message,) = report.errors.loc[report.errors["column"] == "from", "message"]
    assert message.endswith(INVALID_SENDER_FIX)
    file = tmp_path / "r.csv"
    file.write_text("to,body\n+919876543210,hi\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(file), "--from", "12"])
    assert result.exit_code == 2
    assert INVALID_SENDER_FIX in result.output


def test_no_sender_is_refused_with_one_fix_by_the_planner_and_the_client() -> None:
    messages = pd.DataFrame({"to": ["+919876543210"], "from": [pd.NA], "type": ["text"],
                             "body": ["hi"]})  # fmt: skip
    with pytest.raises(ConfigurationError) as planned:
        list(plan_requests(messages))
    client = KaleyraClient("HX", "key", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError) as built:
        client.build_fields("+919876543210", body="hi")
    assert str(planned.value).endswith(NO_SENDER_FIX)
    assert str(built.value).endswith(NO_SENDER_FIX)
