"""Experiments (issue #22, item 2): arms and a holdout assigned per recipient, the holdout
never sent, and the arms compared with the statistics scipy gives on the same counts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import SENDER
from openpyxl import load_workbook
from scipy import stats

import kwa_batch as kb
from kwa_batch.errors import ConfigurationError, KwaBatchError
from kwa_batch.experiments import COMPARE_COLUMNS


def recipients(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(start, start + n)]})


def test_assign_on_10000_gives_45_45_10_and_the_same_arm_when_the_rows_are_shuffled() -> None:
    df = recipients(10_000)
    assigned = kb.assign(df, arms=["A", "B"], holdout=0.1, seed=7)
    shares = assigned["arm"].value_counts(normalize=True)
    assert shares["A"] == pytest.approx(0.45, abs=0.02)
    assert shares["B"] == pytest.approx(0.45, abs=0.02)
    assert shares["holdout"] == pytest.approx(0.10, abs=0.02)
    shuffled = kb.assign(df.sample(frac=1, random_state=3), arms=["A", "B"], holdout=0.1, seed=7)
    assert shuffled["arm"].sort_index().equals(assigned["arm"])
    # Another run, the same seed: the same arms; another seed: others.
    assert kb.assign(df, arms=["A", "B"], holdout=0.1, seed=7)["arm"].equals(assigned["arm"])
    other = kb.assign(df, arms=["A", "B"], holdout=0.1, seed=8)["arm"]
    assert (other != assigned["arm"]).mean() > 0.3


def test_the_hash_is_pinned_so_a_running_experiment_keeps_its_arms() -> None:
    """A recipient's draw is sha256(seed|E.164): a change of the scheme would move the
    customers of every experiment under way, so it is pinned here."""
    df = pd.DataFrame({"to": ["+919876543210", "+447911123456", "+1 415 555 0123"]})
    arms = kb.assign(df, ["A", "B"], holdout=0.1, seed=7, balanced=False)["arm"]
    assert arms.tolist() == ["B", "holdout", "A"]


def test_numpys_weights_and_a_whole_float_seed_are_read_as_numbers() -> None:
    df = recipients(300)
    plain = kb.assign(df, {"A": 2, "B": 1}, seed=7)["arm"]
    assert kb.assign(df, {"A": np.int64(2), "B": np.float64(1)}, seed=7)["arm"].equals(plain)
    assert kb.assign(df, {"A": 2, "B": 1}, seed=7.0)["arm"].equals(plain)
    assert kb.assign(df, {"A": 2, "B": 1}, seed=np.int64(7))["arm"].equals(plain)
    for seed in (7.5, True):
        with pytest.raises(ConfigurationError, match=f"seed={seed!r}: give a whole number"):
            kb.assign(df, seed=seed)


def test_a_recipient_written_two_ways_gets_one_arm() -> None:
    df = pd.DataFrame({"to": ["+91 98765 43210", "919876543210", "+919876543211"]})
    assigned = kb.assign(df, ["A", "B", "C"], holdout=0.0, seed=1)
    assert assigned.loc[0, "arm"] == assigned.loc[1, "arm"]


@pytest.mark.parametrize("balanced", [True, False])
def test_weights_give_their_shares(balanced: bool) -> None:
    assigned = kb.assign(
        recipients(9_000), {"A": 2, "B": 1}, holdout=0.1, seed="spring", balanced=balanced
    )
    shares = assigned["arm"].value_counts(normalize=True)
    assert shares["A"] == pytest.approx(0.6, abs=0.02)
    assert shares["B"] == pytest.approx(0.3, abs=0.02)


def test_stratified_by_country_each_country_is_split_in_the_shares() -> None:
    india = recipients(301)
    uk = pd.DataFrame({"to": [f"+4479111{i:05d}" for i in range(97)]})
    df = pd.concat([india, uk], ignore_index=True)
    assigned = kb.assign(df, ["A", "B"], holdout=0.2, seed=5, by="country", balanced=True)
    for rows in (slice(0, 301), slice(301, None)):
        counts = assigned["arm"].iloc[rows].value_counts()
        n = int(counts.sum())
        for arm, share in (("A", 0.4), ("B", 0.4), ("holdout", 0.2)):
            assert abs(int(counts[arm]) - share * n) <= 1, (rows, counts.to_dict())


@pytest.mark.parametrize(
    ("arms", "holdout", "by", "message"),
    [
        ("AB", 0.1, None, "give a list of names"),
        ([], 0.1, None, "at least one arm"),
        (["A", "A"], 0.1, None, "each arm's name once"),
        (["A", "holdout"], 0.1, None, "cannot name an arm"),
        (["A", "Holdout "], 0.1, None, "cannot name an arm"),
        ([1, 2], 0.1, None, "arms: 1 is not text: name each arm with text, e.g. '1'"),
        (["A", "B"], 0.1, "country", "by='country' cuts each stratum exactly: pass balanced=True"),
        ({"A": 1, "B": 0}, 0.1, None, "weight 0 of 'B': give a positive number"),
        (["A", "B"], 1.0, None, r"holdout=1.0: give a share in \[0, 1\)"),
        (["A", "B"], 0.1, "region", "by='region': no such column"),
    ],
)
def test_unusable_arguments_are_refused_in_one_line(arms, holdout, by, message) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        kb.assign(recipients(10), arms, holdout=holdout, by=by, balanced=by == "region")
    assert "\n" not in str(caught.value)


def read_results(a: tuple[int, int], b: tuple[int, int]) -> pd.DataFrame:
    """Results with receipts merged: arm A reads a[0] of a[1], arm B b[0] of b[1]."""
    rows = []
    for arm, (read, n) in (("A", a), ("B", b)):
        rows += [(arm, "read")] * read + [(arm, "delivered")] * (n - read)
    frame = pd.DataFrame(rows, columns=["arm", "delivery_status"])
    return frame.assign(status="sent")


def test_compare_500_of_1000_against_600_of_1000_matches_scipy() -> None:
    compared = kb.compare(read_results((500, 1000), (600, 1000)), metric="read")
    assert list(compared.columns) == list(COMPARE_COLUMNS)
    assert list(compared.index) == ["A", "B"]
    b = compared.loc["B"]
    assert (int(b["n"]), int(b["successes"]), float(b["rate"])) == (1000, 600, 0.6)
    assert float(b["diff"]) == pytest.approx(0.10)
    # The pooled z test is the chi-square test of the 2x2 table without correction.
    table = [[600, 400], [500, 500]]
    expected_p = stats.chi2_contingency(table, correction=False).pvalue
    assert float(b["p_value"]) == pytest.approx(expected_p, rel=1e-9)
    assert float(b["p_value"]) < 0.001
    half = stats.norm.ppf(0.975) * math.sqrt(0.6 * 0.4 / 1000 + 0.5 * 0.5 / 1000)
    assert float(b["ci_low"]) == pytest.approx(0.10 - half)
    assert float(b["ci_high"]) == pytest.approx(0.10 + half)
    assert (round(float(b["ci_low"]), 4), round(float(b["ci_high"]), 4)) == (0.0566, 0.1434)
    assert b["test"] == "z"
    assert float(compared.loc["A", "diff"]) == 0.0
    assert pd.isna(compared.loc["A", "p_value"])


def test_small_counts_take_fishers_exact_test() -> None:
    compared = kb.compare(read_results((2, 10), (7, 10)), metric="read")
    b = compared.loc["B"]
    assert b["test"] == "fisher"
    assert float(b["p_value"]) == pytest.approx(
        stats.fisher_exact([[7, 3], [2, 8]]).pvalue, rel=1e-12
    )
    assert float(b["ci_low"]) < 0.5 < float(b["ci_high"])
    assert float(b["ci_low"]) >= -1
    assert float(b["ci_high"]) <= 1


def experiment_with_holdout() -> pd.DataFrame:
    """A: 100 of 1000 converted, B: 150 of 1000, holdout: 25 of 500; every arm read half."""
    frames = []
    for arm, n, converted, status in (
        ("A", 1000, 100, "sent"),
        ("B", 1000, 150, "sent"),
        ("holdout", 500, 25, "holdout"),
    ):
        frames.append(
            pd.DataFrame(
                {
                    "arm": arm,
                    "status": status,
                    "delivery_status": (["read", "delivered"] * n)[:n]
                    if status == "sent"
                    else pd.NA,
                    "converted": [True] * converted + [False] * (n - converted),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_lift_over_the_holdout_for_a_boolean_column() -> None:
    compared = kb.compare(experiment_with_holdout(), metric="converted")
    assert list(compared.index) == ["A", "B", "holdout"]
    assert float(compared.loc["holdout", "rate"]) == pytest.approx(0.05)
    assert float(compared.loc["A", "lift"]) == pytest.approx(0.10 / 0.05 - 1)
    assert float(compared.loc["B", "lift"]) == pytest.approx(0.15 / 0.05 - 1)
    assert pd.isna(compared.loc["holdout", "lift"])
    assert pd.isna(compared.loc["holdout", "p_value"])


def test_a_message_metric_has_no_holdout_rate_and_says_why() -> None:
    compared = kb.compare(experiment_with_holdout(), metric="read")
    holdout = compared.loc["holdout"]
    assert int(holdout["n"]) == 500
    assert pd.isna(holdout["rate"])
    assert pd.isna(holdout["successes"])
    assert "needs a message" in holdout["note"]
    assert pd.isna(compared.loc["B", "lift"])
    assert "needs a message" in compared.loc["B", "note"]


@pytest.mark.parametrize(
    "converted",
    [
        [1.0, 0.0, 1.0, 1.0, 0.0],  # a left join's float column, filled with 0
        [1, 0, 1, 1, 0],
        [True, False, True, True, False],
        pd.array([True, False, True, True, False], dtype="boolean"),
        ["True", " false", "TRUE ", "yes", "0"],
    ],
)
def test_a_yes_or_no_column_of_floats_ints_bools_or_text_is_read(converted: list[Any]) -> None:
    results = pd.DataFrame(
        {"arm": ["A", "A", "B", "B", "B"], "status": "sent", "converted": converted}
    )
    compared = kb.compare(results, "converted")
    assert compared["successes"].tolist() == [1, 2]
    assert compared["n"].tolist() == [2, 3]


def test_a_rejected_rows_missing_value_is_not_asked_for() -> None:
    results = pd.DataFrame(
        {
            "arm": ["A", "A", "B"],
            "status": ["sent", "rejected", "sent"],
            "converted": [1.0, None, 0.0],
        }
    )
    assert kb.compare(results, "converted")["n"].tolist() == [1, 1]


def test_a_message_metric_counts_the_rows_sent_alone() -> None:
    """read needs a message: a row not sent (stopped, held) or of unknown fate is no
    unread message, so it is left out of n, and the note says so."""
    results = read_results((5, 10), (5, 10))
    results.loc[results.index[-3:], ["status", "delivery_status"]] = ["not_sent", pd.NA]
    results.loc[results.index[-4], ["status", "delivery_status"]] = ["unknown", pd.NA]
    compared = kb.compare(results, "read")
    assert compared["n"].tolist() == [10, 6]
    assert "n: the rows sent" in str(compared.loc["B", "note"])
    converted = results.assign(converted=False)
    assert kb.compare(converted, "converted")["n"].tolist() == [10, 10]  # not a message's


def test_rejected_rows_are_not_counted() -> None:
    results = read_results((5, 10), (5, 10))
    results.loc[0, "status"] = "rejected"
    results.loc[0, "delivery_status"] = pd.NA
    assert int(kb.compare(results, "read").loc["A", "n"]) == 9


@pytest.mark.parametrize(
    ("frame", "metric", "message"),
    [
        (pd.DataFrame({"status": ["sent"]}), "read", "no arm column: split the recipients"),
        (pd.DataFrame({"status": ["sent"], "arm": ["A"]}), "read", "merge the receipts first"),
        (pd.DataFrame({"status": ["sent"], "arm": ["A"]}), "replied", "kb.replies"),
        (pd.DataFrame({"status": ["sent"], "arm": ["A"]}), "clicks", "give delivered, read"),
        (
            pd.DataFrame({"status": ["sent"], "arm": ["A"], "converted": ["maybe"]}),
            "converted",
            "row 0 holds 'maybe', not a yes or no",
        ),
        (
            pd.DataFrame({"status": ["sent"] * 2, "arm": ["A"] * 2, "converted": [1, 2]}),
            "converted",
            "row 1 holds 2, not a yes or no",
        ),
        (
            pd.DataFrame({"status": ["sent"] * 2, "arm": ["A"] * 2, "converted": [1.0, None]}),
            "converted",
            r"row 1 has no value: .*\.fillna\(0\) where missing means no conversion",
        ),
        (
            pd.DataFrame({"status": ["sent"] * 2, "arm": ["A"] * 2, "converted": [True, None]}),
            "converted",
            "row 1 has no value",
        ),
        (
            pd.DataFrame({"status": ["sent"] * 2, "arm": ["A"] * 2, "converted": ["yes", " "]}),
            "converted",
            "row 1 has no value",
        ),
    ],
)
def test_compare_refuses_in_one_line(frame: pd.DataFrame, metric: str, message: str) -> None:
    with pytest.raises(KwaBatchError, match=message) as caught:
        kb.compare(frame, metric)
    assert "\n" not in str(caught.value)


def test_a_holdout_row_is_never_sent(fresh_emulator: kb.Emulator, tmp_path: Path) -> None:
    """Counted at the emulator; the holdout's status is holdout, the run exits 0, the
    journal never holds a holdout row (a second run sends nothing), estimate skips it."""
    df = kb.assign(
        recipients(60).assign(name="Ana"), ["A", "B"], holdout=0.25, seed=11, balanced=True
    )
    held = df.index[df["arm"] == "holdout"]
    assert len(held) == 15
    journal = tmp_path / "run.db"
    kwargs = {
        "sender": SENDER,
        "template_name": {"A": "promo_a", "B": "promo_b"},
        "params_from": "name",
        "progress": False,
    }
    results = kb.send(df, fresh_emulator.client(), journal=journal, **kwargs)
    assert fresh_emulator.message_count == 45
    sent_to = set(fresh_emulator.messages["to"].str.lstrip("+"))
    assert not sent_to & set(df.loc[held, "to"].str.lstrip("+"))
    assert (results.loc[held, "status"] == "holdout").all()
    assert results.loc[held, "error_code"].isna().all()
    assert results.loc[held, "message_id"].isna().all()
    assert results["arm"].equals(df["arm"].astype("string"))
    outcome = results.attrs["run"]
    assert outcome.exit_code == 0
    assert outcome.counts["holdout"] == 15
    # Each arm got its own template.
    by_template = fresh_emulator.messages.set_index("to")["template_name"]
    for label in df.index[df["arm"] != "holdout"]:
        expected = "promo_a" if df.loc[label, "arm"] == "A" else "promo_b"
        assert by_template[df.loc[label, "to"]] == expected
    again = kb.send(df, fresh_emulator.client(), journal=journal, **kwargs)
    assert fresh_emulator.message_count == 45
    assert (again.loc[held, "status"] == "holdout").all()
    import sqlite3

    with sqlite3.connect(journal) as db:
        journalled = {row[0] for row in db.execute("SELECT recipient FROM rows")}
    assert len(journalled) == 45
    report = kb.validate(df, sender=SENDER, template_name="promo", params_from="name")
    assert int(kb.estimate(report).attrs["summary"]["messages"]) == 45


def test_holdout_rows_are_no_errors_and_follow_up_leaves_them(tmp_path: Path) -> None:
    results = pd.DataFrame(
        {
            "to": ["+919876500001", "+919876500002"],
            "status": pd.array(["sent", "holdout"], dtype="string"),
            "message_id": pd.array(["m1", pd.NA], dtype="string"),
            "error_code": pd.array([pd.NA, pd.NA], dtype="string"),
            "error_message": pd.array([pd.NA, pd.NA], dtype="string"),
            "sent_at": pd.to_datetime(["2026-12-01 10:00", pd.NaT], utc=True),
            "arm": pd.array(["A", "holdout"], dtype="string"),
        }
    )
    empty = pd.DataFrame(columns=["message_id", "status", "error_code", "failed_at", "recipient"])
    plan = kb.follow_up(results, empty)
    assert plan.loc[1, "action"] == "final"
    assert "holdout" in plan.loc[1, "reason"]
    assert kb.summarize(results).loc["holdout", "rows"] == 1
    path = kb.export_results(results, tmp_path / "r.xlsx")
    sheet = load_workbook(path)["Errors"]
    assert sheet.max_row == 1  # the header alone: a holdout row is not an error
    summary = " ".join(
        str(cell) for row in load_workbook(path)["Summary"].iter_rows(values_only=True)
        for cell in row if cell
    )  # fmt: skip
    assert "1 were the experiment's holdout (kept from the message on purpose" in summary
    assert "were not:" not in summary
    back = kb.load_results(path)
    assert back["status"].tolist() == ["sent", "holdout"]
    assert back["arm"].tolist() == ["A", "holdout"]


def test_a_message_per_arm_needs_an_arm_for_each() -> None:
    df = kb.assign(recipients(20).assign(name="Ana"), ["A", "B"], holdout=0.1, seed=2)
    with pytest.raises(ConfigurationError, match="gives no value for arm 'B'"):
        kb.validate(df, sender=SENDER, template_name={"A": "promo_a"}, params_from="name")
    with pytest.raises(ConfigurationError, match=r"no arm column: split it with kb\.assign"):
        kb.validate(recipients(2), sender=SENDER, body_template={"A": "Hi"})
    report = kb.validate(
        df, sender=SENDER, body_template={"A": "Hi {name}", "B": "Hello {name}, a gift"}
    )
    assert report.ok
    bodies = report.valid.groupby("arm")["body"].first().to_dict()
    assert bodies == {"A": "Hi Ana", "B": "Hello Ana, a gift", "holdout": "Hi Ana"}
    assert list(report.holdout) == list(df.index[df["arm"] == "holdout"])
    assert len(report.to_send) == 20 - len(report.holdout)
    assert np.array_equal(report.to_send.index, df.index[df["arm"] != "holdout"])


def test_the_command_line_sends_a_file_with_an_arm_column(
    runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kwa-batch send` of an assigned file: the holdout said, never sent, exit 0; and
    --dry-run plans no request for it."""
    from kwa_batch.cli import cli

    monkeypatch.chdir(tmp_path)
    df = kb.assign(
        recipients(20).assign(body="Hello"), ["A", "B"], holdout=0.2, seed=4, balanced=True
    )
    df.to_csv("assigned.csv", index=False)
    outcome = runner.invoke(cli, ["send", "assigned.csv", "--emulator", "--out", "r.xlsx"])
    assert outcome.exit_code == 0, outcome.output
    assert "4 valid row(s) in the experiment's holdout (arm column): never sent" in outcome.output
    assert "Outcome: 16 sent, 4 holdout" in outcome.output
    assert "Errors sheet" not in outcome.output
    results = kb.load_results("r.xlsx")
    assert (results["status"] == "holdout").sum() == 4
    planned = runner.invoke(cli, ["send", "assigned.csv", "--emulator", "--dry-run"])
    assert "16 message(s) to 16 recipient(s)" in planned.output, planned.output


def test_a_message_delivered_then_reported_failed_counts_as_delivered() -> None:
    """As follow_up judges it: delivered is delivered, whatever came after."""
    at = pd.Timestamp("2026-12-01 10:00", tz="UTC")
    results = pd.DataFrame(
        {
            "arm": ["A", "A", "B", "B"],
            "status": "sent",
            "delivery_status": ["failed", "failed", "read", "sent"],
            "delivered_at": [at, pd.NaT, at, pd.NaT],
        }
    )
    assert kb.compare(results, "delivered")["successes"].tolist() == [1, 1]


def test_the_control_is_the_first_arm_asked() -> None:
    results = read_results((500, 1000), (600, 1000))
    compared = kb.compare(results, "read", arms=["B", "A"])
    assert list(compared.index) == ["B", "A"]
    assert float(compared.loc["A", "diff"]) == pytest.approx(-0.10)
    with pytest.raises(KwaBatchError, match="no row of arm 'C'"):
        kb.compare(results, "read", arms=["C"])


@pytest.mark.parametrize("metric", ["read", "converted"])
def test_the_holdout_cannot_be_the_control(metric: str) -> None:
    """The holdout is the baseline of lift: as the control, read's diffs would be taken
    against a rate it has not got."""
    with pytest.raises(KwaBatchError, match="the holdout cannot be the control") as caught:
        kb.compare(experiment_with_holdout(), metric, arms=["holdout", "A", "B"])
    assert "\n" not in str(caught.value)


def test_stratified_by_a_column_of_the_frame() -> None:
    df = recipients(200).assign(tier=["gold"] * 50 + ["silver"] * 150)
    assigned = kb.assign(df, ["A", "B"], holdout=0.0, seed=9, by="tier", balanced=True)
    counts = assigned.groupby("tier")["arm"].value_counts().to_dict()
    assert counts == {
        ("gold", "A"): 25, ("gold", "B"): 25, ("silver", "A"): 75, ("silver", "B"): 75,
    }  # fmt: skip


def test_a_row_the_journal_records_as_sent_is_never_reported_held_out(
    fresh_emulator: kb.Emulator, tmp_path: Path
) -> None:
    """A list assigned again (other shares, another seed) may put a row sent before in the
    holdout: the journal wins, the row comes back sent with its message_id, from_journal."""
    journal = tmp_path / "run.db"
    first = recipients(4).assign(body="hi", arm=["A", "B", "A", "B"])
    sent = kb.send(first, fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    assert (sent["status"] == "sent").all()
    again = first.assign(arm=["holdout", "B", "A", "holdout"])
    resumed = kb.send(again, fresh_emulator.client(sender=SENDER), journal=journal, progress=False)
    assert fresh_emulator.message_count == 4
    assert resumed["status"].tolist() == ["sent"] * 4
    assert resumed["message_id"].equals(sent["message_id"])
    assert resumed["from_journal"].all()
    assert "in the holdout now" in " ".join(resumed.attrs["run"].resume)


def test_the_default_arm_depends_on_the_recipient_alone_as_the_list_grows() -> None:
    """The default is the hash alone: adding recipients moves no one already assigned; the
    shares of 10,000 still hold (45/45/10 within 2 points, the first test)."""
    before = kb.assign(recipients(200), ["A", "B"], holdout=0.1, seed=7)
    grown = kb.assign(
        pd.concat([recipients(200), recipients(40, start=500)], ignore_index=True),
        ["A", "B"],
        holdout=0.1,
        seed=7,
    )
    assert grown["arm"].iloc[:200].equals(before["arm"])
    alone = kb.assign(recipients(200), ["A", "B"], holdout=0.1, seed=7, balanced=False)
    assert before["arm"].equals(alone["arm"])


def test_an_arm_cell_is_stripped_and_the_holdout_matched_in_any_case(
    fresh_emulator: kb.Emulator,
) -> None:
    """A spreadsheet's "Holdout" or "holdout " is the holdout: never sent; "B " is arm B."""
    df = recipients(4).assign(name="Ana", arm=["A", "Holdout", "holdout ", "B "])
    results = kb.send(
        df,
        fresh_emulator.client(sender=SENDER),
        template_name={"A": "promo_a", "B": "promo_b"},
        params_from="name",
        progress=False,
    )
    assert fresh_emulator.message_count == 2
    assert results["status"].tolist() == ["sent", "holdout", "holdout", "sent"]
    assert results["arm"].tolist() == ["A", "holdout", "holdout", "B"]
    sent = fresh_emulator.messages.set_index("to")["template_name"]
    assert sent[df.loc[3, "to"]] == "promo_b"
    compared = kb.compare(df.assign(status="sent", converted=[1, 0, 0, 1]), "converted")
    assert list(compared.index) == ["A", "B", "holdout"]


@pytest.mark.parametrize("name", ["Arm", "ARM", " arm"])
def test_an_arm_column_named_almost_arm_is_refused_not_sent(name: str) -> None:
    """ "Arm" from a spreadsheet would be an unknown column: its holdout sent to. Refused."""
    df = recipients(2).assign(body="Hi", **{name: ["A", "holdout"]})
    with pytest.raises(
        kb.InputError, match=f"column {name!r} looks like an experiment's arm"
    ) as caught:
        kb.validate(df, sender=SENDER)
    assert "\n" not in str(caught.value)
