"""The outcome chart draws what the results say."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest
from matplotlib.text import Text

from kwa_batch import plot_outcomes
from kwa_batch.results import STATUSES

matplotlib.use("Agg")


def test_chart_bars_match_the_counts(tmp_path) -> None:
    results = pd.DataFrame(
        {
            "status": ["sent"] * 5 + ["rejected", "rejected", "failed"],
            "error_code": [None] * 5 + ["E13009", "KWA004", "E13008"],
        }
    )
    figure = plot_outcomes(results)
    left, right = figure.axes
    widths = {bar.get_y(): bar.get_width() for bar in left.patches}
    assert sorted(widths.values()) == [0] * (len(STATUSES) - 3) + [1, 2, 5]  # one bar a status
    assert figure._suptitle.get_text() == "5 of 8 rows sent"
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert any(label.startswith("E13009") for label in labels)
    figure.savefig(tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 1000


def test_chart_without_errors_has_one_panel() -> None:
    figure = plot_outcomes(pd.DataFrame({"status": ["sent"] * 3, "error_code": [None] * 3}))
    assert len(figure.axes) == 1


def test_counts_have_integer_ticks_and_labels_in_both_panels() -> None:
    results = pd.DataFrame(
        {"status": ["sent", "rejected", "failed"], "error_code": [None, "E13009", "E13008"]}
    )
    figure = plot_outcomes(results)
    figure.canvas.draw()
    for axis in figure.axes:
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks), ticks
    left, right = figure.axes
    assert {t.get_text() for t in left.texts} >= {"1"}  # bar labels
    assert sorted(t.get_text() for t in right.texts) == ["1", "1"]


def test_the_readme_install_brings_matplotlib() -> None:
    """`pip install .` (the README's install) must bring what the README's example ends with,
    kb.plot_outcomes (issue #18); `kwa-batch[charts]` still resolves for old install lines."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads(
        (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    )["project"]
    names = [d.split(">")[0].split("[")[0].strip() for d in project["dependencies"]]
    assert "matplotlib" in names
    assert "charts" in project["optional-dependencies"]


def test_a_status_without_a_colour_of_its_own_draws_in_grey(monkeypatch) -> None:
    """Adding a status touches results.Status only: the chart does not need a colour for it."""
    from matplotlib.colors import to_hex

    from kwa_batch import charts

    colours = {k: v for k, v in charts.STATUS_COLORS.items() if k != "rejected"}
    monkeypatch.setattr(charts, "STATUS_COLORS", colours)
    results = pd.DataFrame({"status": ["sent", "rejected"], "error_code": [None, "E13009"]})
    figure = plot_outcomes(results)
    left, right = figure.axes
    drawn = {to_hex(bar.get_facecolor()) for bar in [*left.patches, *right.patches]}
    assert charts.OTHER_COLOR in drawn


def test_the_comparison_chart_draws_each_arms_rate_and_the_difference() -> None:
    import kwa_batch as kb

    frame = pd.DataFrame(
        {
            "arm": ["A"] * 100 + ["B"] * 100 + ["holdout"] * 20,
            "status": ["sent"] * 200 + ["holdout"] * 20,
            "converted": [True] * 10
            + [False] * 90
            + [True] * 30
            + [False] * 70
            + [True]
            + [False] * 19,
        }
    )
    compared = kb.compare(frame, "converted")
    figure = kb.plot_compare(compared)
    left, right = figure.axes
    assert sorted(round(bar.get_width(), 3) for bar in left.patches) == [0.05, 0.1, 0.3]
    assert [t.get_text() for t in left.get_yticklabels()] == ["A", "B", "holdout"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["B"]
    assert "+20.0%  p<0.001" in " ".join(t.get_text() for t in right.texts)
    assert "30.0% (30 of 100), +500% over the holdout" in [t.get_text() for t in left.texts]
    assert figure._suptitle.get_text() == "converted: B has the highest rate (30.0%)"
    with pytest.raises(kb.KwaBatchError, match="plot_compare"):
        kb.plot_compare(frame)


def _drawn(figure) -> list[tuple[str, bool]]:
    """Each text of a drawn figure as matplotlib lays it out: (text, read as mathtext)."""
    figure.canvas.draw()  # mathtext is parsed here: a bad formula raises
    return [text._preprocess_math(text.get_text()) for text in figure.findobj(Text)]


@pytest.mark.parametrize("name", ["Save $5 or $10", r"$\frac$ off"])
def test_a_dollar_in_an_arm_template_or_code_is_drawn_as_written(tmp_path, name: str) -> None:
    """A ``$`` from the campaign's data is no mathtext: drawn as written (not in italics),
    and a name matplotlib cannot parse breaks neither the chart nor the report."""
    import kwa_batch as kb

    frame = pd.DataFrame(
        {
            "to": [f"+9198765{i:05d}" for i in range(40)],
            "arm": ["A"] * 20 + [name] * 20,
            "status": ["sent"] * 39 + ["failed"],
            "message_id": [f"m{i}" for i in range(40)],
            "error_code": pd.array([pd.NA] * 39 + [name], dtype="string"),
            "template_name": ["promo"] * 20 + [name] * 20,
            "converted": [True, False] * 20,
            "sent_at": pd.Timestamp("2026-12-01 10:00", tz="UTC"),
        }
    )
    compared = kb.compare(frame.rename(columns={"converted": name}), name)
    for figure in (
        kb.plot_compare(compared, title=name),
        plot_outcomes(frame),
        kb.plot_funnel(kb.funnel(frame, kb.CallbackStore(tmp_path / "s.db"))),
    ):
        drawn = _drawn(figure)
        assert not [text for text, math in drawn if math]
        assert any(name in text for text, _ in drawn), drawn
    kb.report_html(frame, metric="converted", path=tmp_path / "r.html")


@pytest.mark.parametrize(
    ("a", "b", "title"),
    [
        ((10, 100), (30, 100), "converted: B has the highest rate (30.0%)"),
        ((30, 100), (10, 100), "converted: A has the highest rate (30.0%)"),  # B clearly worse
        (
            (30, 100),
            (31, 100),
            "converted: no clear winner (no arm is clearly the best at p < 0.05)",
        ),
    ],
)
def test_the_comparison_title_names_a_winner_only_when_clear(a, b, title: str) -> None:
    import kwa_batch as kb

    frame = pd.DataFrame(
        {
            "arm": ["A"] * a[1] + ["B"] * b[1],
            "status": "sent",
            "converted": [True] * a[0]
            + [False] * (a[1] - a[0])
            + [True] * b[0]
            + [False] * (b[1] - b[0]),
        }
    )
    assert kb.plot_compare(kb.compare(frame, "converted"))._suptitle.get_text() == title


def test_the_notebooks_winner_is_better_than_the_control_and_clearly_so() -> None:
    """The experiment notebook's decision (its cell c1a0e014, run here on set comparisons):
    a challenger clearly worse than the control is no winner, however small its p."""
    import json
    from pathlib import Path

    import kwa_batch as kb

    notebook = Path(__file__).parents[1] / "notebooks" / "experiment.ipynb"
    cell = next(c for c in json.loads(notebook.read_text())["cells"] if c["id"] == "c1a0e014")
    decision = "".join(cell["source"]).split("print(")[0]

    def winner(b: int) -> str:
        frame = pd.DataFrame(
            {
                "arm": ["A"] * 200 + ["B"] * 200 + ["holdout"] * 20,
                "status": "sent",
                "converted": [True] * 60 + [False] * 140 + [True] * b + [False] * (200 - b)
                + [False] * 20,
            }
        )  # fmt: skip
        scope = {"comparison": kb.compare(frame, "converted")}
        exec(decision, scope)  # the notebook's own lines
        return str(scope["winner"])

    assert winner(20) == "A"  # B far worse: p < 0.001, yet no winner
    assert winner(64) == "A"  # B a little better, not clearly
    assert winner(100) == "B"
