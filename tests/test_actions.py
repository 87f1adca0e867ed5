"""The outcome policy: every code of the facts file's table has the action it prescribes."""

from __future__ import annotations

from datetime import timedelta

import pytest

import kwa_batch as kb
from kwa_batch.actions import RULES, STOP_CODES, TEMPLATE_CODES, Action, Scope, rule_for
from kwa_batch.errors import Code

# The facts file's table ("What a bulk sender should do with each outcome"), and the issue.
EXPECTED = {
    "131049": Action.RETRY,
    "131050": Action.SUPPRESS,
    "131026": Action.FINAL,
    "131047": Action.FINAL,
    "130472": Action.FINAL,
    "130429": Action.RETRY,
    "131056": Action.RETRY,
    "131057": Action.RETRY,
    "4": Action.RETRY,
    "80007": Action.RETRY,
    "131048": Action.STOP,
    "368": Action.STOP,
    "131031": Action.STOP,
    "133010": Action.STOP,
    "WAV2101": Action.STOP,
    "E110": Action.STOP,
    "131009": Action.FIX,
    "132000": Action.FIX,
    "132001": Action.FIX,
    "132012": Action.FIX,
    "132018": Action.FIX,
    "WA500": Action.RETRY,
    "E13008": Action.FIX,
    "E13009": Action.FIX,
    "E413": Action.FIX,
}


@pytest.mark.parametrize(("code", "action"), sorted(EXPECTED.items()))
def test_each_code_of_the_table_has_its_action(code: str, action: Action) -> None:
    assert rule_for(code).action is action


def test_131049_waits_growing_gaps_never_within_a_day() -> None:
    rule = rule_for("131049")
    assert rule.gaps == (timedelta(hours=24), timedelta(hours=48), timedelta(hours=96))
    assert rule.gap(1) == timedelta(hours=24)
    assert rule.gap(4) is None  # past the last try: final


def test_wa500_is_retried_after_5_10_15_minutes() -> None:
    assert rule_for("WA500").gaps == tuple(timedelta(minutes=m) for m in (5, 10, 15))


def test_stop_codes_stop_the_number_and_template_codes_hold_the_template() -> None:
    assert {"131048", "368", "131031", "133010", "WAV2101", "E110"} <= STOP_CODES
    assert {"132015", "132016"} == TEMPLATE_CODES
    assert all(RULES[c].scope is Scope.NUMBER for c in STOP_CODES)


@pytest.mark.parametrize("given", ["999999", "WA777", "weird code"])
def test_an_unknown_code_is_final_and_kept_as_given(given: str) -> None:
    rule = rule_for(given)
    assert rule.action is Action.FINAL
    assert rule.code == given
    assert given in rule.meaning


@pytest.mark.parametrize("given", [None, "", "  "])
def test_no_code_is_final_too(given: str | None) -> None:
    assert rule_for(given).action is Action.FINAL


@pytest.mark.parametrize("given", [131049, 131049.0, "131049.0", " 131049 "])
def test_a_code_read_as_a_number_is_the_same_code(given: object) -> None:
    assert rule_for(given) is RULES["131049"]


def test_every_own_code_has_a_rule_derived_from_its_policy() -> None:
    for code in Code:
        assert rule_for(code.value).code == code.value
    assert rule_for(Code.EXPIRED).action is Action.FINAL
    assert rule_for(Code.QUIET_HOURS).action is Action.RETRY
    assert rule_for(Code.TIMEOUT).action is Action.WAIT  # may have gone out: never resent
    assert rule_for(Code.HTTP401).action is Action.STOP


def test_the_public_names() -> None:
    assert kb.rule_for is rule_for
    assert kb.Action is Action


def test_the_readme_shows_the_table_as_the_code_has_it() -> None:
    from pathlib import Path

    from kwa_batch.actions import markdown_table

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- outcome-table")
    start = readme.index("\n", start) + 1
    shown = readme[start : readme.index("<!-- /outcome-table -->")].strip()
    assert shown == markdown_table(), (
        "the README's outcome table differs from kwa_batch/actions.py: paste "
        "`python -c 'from kwa_batch.actions import markdown_table; print(markdown_table())'`"
    )
