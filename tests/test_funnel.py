"""The funnel and the costs of a campaign equal a hand count (issue #19, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from hand_counted import (
    COUNTS,
    EXPECTED,
    RATE_CARD,
    ROW_COSTS,
    TEMPLATES,
    data_frame,
    fill_store,
    results_frame,
)
from openpyxl import load_workbook

import kwa_batch as kb
from kwa_batch.campaign_funnel import NO_TEMPLATE, TOTAL
from kwa_batch.errors import KwaBatchError
from kwa_batch.export import FUNNEL_SHEET
from kwa_batch.receipts.store import CallbackStore, StatusUpdate


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return fill_store(tmp_path / "receipts.db")


@pytest.fixture
def exported(tmp_path: Path) -> pd.DataFrame:
    """The results as `kwa-batch status` reads them: a workbook exported with data=."""
    path = kb.export_results(results_frame(), tmp_path / "results.xlsx", data=data_frame())
    return kb.load_results(path)


def check_hand_count(funnel: pd.DataFrame) -> None:
    assert set(funnel.index) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        row = funnel.loc[key]
        assert tuple(int(row[c]) for c in COUNTS) == expected["counts"], key
        codes = {c[len("code_") :]: int(row[c]) for c in funnel.columns if c.startswith("code_")}
        assert {c: n for c, n in codes.items() if n} == expected["codes"], key
        actions = {
            c[len("action_") :]: int(row[c]) for c in funnel.columns if c.startswith("action_")
        }
        assert {a: n for a, n in actions.items() if n} == expected["actions"], key
        assert float(row["cost"]) == pytest.approx(expected["cost"], abs=1e-12), key
        assert float(row["estimated_cost"]) == pytest.approx(expected["estimated"], abs=1e-12)
        assert int(row["unpriced"]) == expected["unpriced"], key


def test_the_funnel_of_an_exported_campaign_equals_the_hand_count(
    exported: pd.DataFrame, store: Path
) -> None:
    funnel = kb.funnel(exported, store, rates=RATE_CARD, templates=TEMPLATES)
    check_hand_count(funnel)
    assert funnel.index.names == ["by", "value"]
    assert list(funnel.index.get_level_values(0)) == ["template"] * 3 + ["country"] * 5 + ["total"]
    assert funnel.index[-1] == TOTAL
    assert funnel["cost"].dtype == "Float64"


def test_the_funnel_in_memory_equals_the_hand_count(store: Path) -> None:
    """send()'s frame with the input's columns joined (df.join(results)), and an open store."""
    results = results_frame().join(data_frame().drop(columns="to"))
    with CallbackStore(store) as opened:
        funnel = kb.funnel(results, opened, rates=RATE_CARD, templates=TEMPLATES)
    check_hand_count(funnel)


def test_without_a_template_column_every_row_is_no_template(store: Path) -> None:
    """send()'s frame alone carries `to` but no template: one group, countries still known;
    and the estimate, which needs to know what each message was, is NA but for the
    rejected row (which an estimate never counts)."""
    funnel = kb.funnel(results_frame(), store, rates=RATE_CARD)
    assert list(funnel.loc["template"].index) == [NO_TEMPLATE]
    assert funnel.loc[("template", NO_TEMPLATE), "rows"] == 12
    assert funnel.loc[("country", "IN"), "sent"] == 4
    assert float(funnel.loc[TOTAL, "cost"]) == pytest.approx(EXPECTED[TOTAL]["cost"])
    per_row = kb.costs(results_frame(), store, rates=RATE_CARD)
    assert per_row["estimated_cost"].isna().sum() == 11
    assert per_row.loc[9, "estimated_cost"] == 0


def test_costs_per_row_equal_the_hand_count(exported: pd.DataFrame, store: Path) -> None:
    costs = kb.costs(exported, store, rates=RATE_CARD, templates=TEMPLATES)
    assert costs.index.equals(exported.index)
    assert list(costs.columns) == ["cost", "estimated_cost", "cost_note"]
    got = [None if pd.isna(v) else round(float(v), 10) for v in costs["cost"]]
    assert got == ROW_COSTS
    assert costs.loc[4, "cost_note"] == "the rate card's marketing price"  # v2, GB
    assert costs.loc[10, "cost_note"] == "no receipt yet"
    assert costs.loc[11, "cost_note"] == "the callbacks gave no price"
    assert costs.loc[3, "estimated_cost"] == pytest.approx(0.0529)  # Guernsey, billed as GB


def test_without_a_rate_card_v2_costs_are_na_with_the_reason_never_0(
    exported: pd.DataFrame, store: Path
) -> None:
    costs = kb.costs(exported, store)
    for row, category in ((4, "marketing"), (5, "utility")):
        assert pd.isna(costs.loc[row, "cost"])
        assert costs.loc[row, "cost_note"] == (
            f"billable as {category}: no rate card to price it (rates= (--rate-card))"
        )
    assert costs["estimated_cost"].isna().all()
    funnel = kb.funnel(exported, store)
    total = funnel.loc[TOTAL]
    assert float(total["cost"]) == pytest.approx(0.0028)  # the v1 prices only
    assert int(total["unpriced"]) == 4
    assert "billable as marketing: no rate card" in total["cost_note"]
    assert funnel["estimated_cost"].isna().all()
    # A group whose rows all lack a price has no cost: NA, not 0.
    assert pd.isna(funnel.loc[("country", "GB"), "cost"])


def test_v2_categories_are_priced_by_the_rate_card_region_and_fallback(tmp_path: Path) -> None:
    """A v2 callback gives billable and a category, no amount: the card's price for the
    recipient's region, or its calling code's main region when the card lacks it."""
    when = datetime(2026, 12, 1, tzinfo=UTC)
    numbers = ["+919876543210", "+447911123456", "+5511987654321", "+33612345678"]
    with CallbackStore(tmp_path / "v2.db") as store:
        for n, number in enumerate(numbers):
            store.add_status(
                StatusUpdate(
                    f"m{n}:0",
                    "delivered",
                    when,
                    when,
                    recipient=number,
                    billable=True,
                    pricing_category="marketing",
                )
            )
    results = pd.DataFrame(
        {"to": numbers, "status": "sent", "message_id": [f"m{n}:0" for n in range(4)]}
    )
    costs = kb.costs(results, tmp_path / "v2.db", rates=RATE_CARD)
    assert costs["cost"].tolist()[:3] == [0.0107, 0.0529, 0.0625]  # IN, GG as GB, BR
    assert pd.isna(costs.loc[3, "cost"])  # France is not on the sample card
    assert costs.loc[3, "cost_note"] == "billable as marketing in FR: not on the rate card"


def test_the_workbook_funnel_sheet_equals_the_frame(store: Path, tmp_path: Path) -> None:
    path = kb.export_results(
        results_frame(),
        tmp_path / "campaign.xlsx",
        data=data_frame(),
        receipts=store,
        rates=RATE_CARD,
        templates=TEMPLATES,
    )
    funnel = kb.funnel(
        results_frame().join(data_frame().drop(columns="to")),
        store,
        rates=RATE_CARD,
        templates=TEMPLATES,
    )
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["Results", "Summary", "Errors", FUNNEL_SHEET, "Run"]
    rows = list(book[FUNNEL_SHEET].iter_rows(values_only=True))
    book.close()
    expected = funnel.reset_index().astype("object")
    assert list(rows[0]) == list(expected.columns)
    body = [[None if pd.isna(v) else v for v in row] for row in expected.itertuples(index=False)]
    width = len(expected.columns)  # a read-only sheet leaves trailing empty cells out
    assert [[*r, *[None] * (width - len(r))] for r in rows[1:]] == body
    written = kb.load_results(path)
    costs = [None if pd.isna(v) else round(float(v), 10) for v in written["cost"]]
    assert costs == ROW_COSTS
    assert written["delivery_status"].tolist()[:2] == ["read", "delivered"]
    assert written["estimated_cost"].notna().all()
    # What each row needs now, beside it (rows 2: 131049, 3: 131026, 7: E110).
    assert written["action"].tolist()[2:4] == ["retry", "final"]
    assert written.loc[7, "action"] == "stop"
    assert written.loc[3, "reason"].startswith("131026: message undeliverable")


def test_a_csv_export_carries_the_costs_and_no_funnel(store: Path, tmp_path: Path) -> None:
    path = kb.export_results(results_frame(), tmp_path / "c.csv", receipts=store)
    written = kb.load_results(path)
    assert pd.isna(written.loc[10, "cost"])
    assert written.loc[0, "cost"] == "0.0014"
    assert written.loc[10, "cost_note"] == "no receipt yet"


def test_rates_without_receipts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KwaBatchError, match="give receipts="):
        kb.export_results(results_frame(), tmp_path / "r.xlsx", rates=RATE_CARD)


def test_by_chooses_the_groups(exported: pd.DataFrame, store: Path) -> None:
    only = kb.funnel(exported, store, by="template")
    assert list(dict.fromkeys(only.index.get_level_values(0))) == ["template", "total"]
    by_name = kb.funnel(exported, store, by=("name",))
    assert len(by_name.loc["name"]) == 12
    assert list(kb.funnel(exported, store, by=()).index) == [TOTAL]
    with pytest.raises(KwaBatchError, match="by='campaign': the results have no such column"):
        kb.funnel(exported, store, by=("campaign",))


def test_results_without_message_ids_are_refused(store: Path) -> None:
    with pytest.raises(KwaBatchError, match="no message_id"):
        kb.funnel(pd.DataFrame({"to": ["+919876543210"], "status": ["sent"]}), store)


def test_the_chart_draws_the_total(exported: pd.DataFrame, store: Path, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    funnel = kb.funnel(exported, store, rates=RATE_CARD, templates=TEMPLATES)
    figure = kb.plot_funnel(funnel)
    left, right = figure.axes
    labels = [t.get_text() for t in left.get_yticklabels()]
    widths = [bar.get_width() for bar in left.patches]
    drawn = dict(zip(labels, widths, strict=True))  # both in the order drawn
    assert [drawn[s] for s in ("rows", "sent", "delivered", "read", "replied")] == [
        12, 9, 6, 3, 3,
    ]  # fmt: skip
    assert drawn["failed 131049 (retry): WhatsApp's per-user marketing…"] == 1
    assert drawn["failed E110 (stop): the account's balance is too low"] == 1
    shown = [t.get_text() for t in left.texts]
    assert shown[:5] == ["12", "9 (75% of rows)", "6 (67% of sent)", "3 (33% of sent)",
                         "3 (33% of sent)"]  # fmt: skip
    assert shown[5:] == ["1", "1", "1"]  # failures: counts (E110 was never sent)
    assert right.get_title() == "by template"
    title = figure._suptitle.get_text()
    assert "9 of 12 rows sent, 6 delivered, 3 replied" in title
    assert "cost 0.0597 against 0.1574 estimated (2 row(s) without a known cost)" in title
    figure.savefig(tmp_path / "funnel.png")
    assert (tmp_path / "funnel.png").stat().st_size > 1000


def test_costs_match_either_form_of_the_message_id(tmp_path: Path) -> None:
    """Review of #19: the funnel counted a row read whose cost said "no receipt yet"."""
    from datetime import UTC, datetime

    from kwa_batch.receipts.store import CallbackStore, StatusUpdate

    at = datetime(2026, 12, 1, tzinfo=UTC)
    with CallbackStore(tmp_path / "r.db") as store:
        store.add_status(StatusUpdate("bare", "delivered", at, at, price=0.01))
        store.add_status(StatusUpdate("long:0", "delivered", at, at, price=0.02))
        results = pd.DataFrame(
            {
                "to": ["+919876500001", "+919876500002"],
                "status": "sent",
                "message_id": ["bare:0", "long"],
            }
        )
        found = kb.costs(results, store)
    assert found["cost"].tolist() == [0.01, 0.02]


def _minimal(index: list[int]) -> pd.DataFrame:
    from datetime import UTC, datetime

    return pd.DataFrame(
        {
            "to": pd.array(["+919876500001"] * len(index), dtype="string"),
            "status": pd.array(["sent"] * len(index), dtype="string"),
            "message_id": pd.array([f"m{n}:0" for n in range(len(index))], dtype="string"),
            "sent_at": pd.array(
                [datetime(2026, 12, 1, tzinfo=UTC)] * len(index), dtype="datetime64[us, UTC]"
            ),
        },
        index=index,
    )


def test_the_funnel_of_no_rows_and_of_a_frame_without_error_codes(store: Path) -> None:
    assert kb.funnel(_minimal([]), store).empty
    counted = kb.funnel(_minimal([0, 1]), store)
    assert counted.loc[("total", "all"), "sent"] == 2


def test_a_repeated_index_is_refused_in_one_line(store: Path) -> None:
    with pytest.raises(KwaBatchError, match="repeated labels"):
        kb.funnel(_minimal([0, 0]), store)
