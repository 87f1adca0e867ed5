"""The HTML report (issue #22, item 3): one self-contained file, every value escaped,
opened in a real headless Chromium that shows its numbers and charts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SENDER
from postgres_server import missing

import kwa_batch as kb
from kwa_batch.cli import cli

#: A template name that would run if it were not escaped.
HOSTILE = "<script>document.title='PWNED'</script>"
_GREEN = (0x2D, 0xA4, 0x4E)  # charts.STATUS_COLORS["sent"]: the outcome chart's bar


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A real experiment against the emulator: 90 recipients in India, 30 in the UK, two
    arms and a holdout, receipts from the emulator's callbacks in a receiver's store, the
    results exported with the input's columns (a hostile template name among them)."""
    work = tmp_path_factory.mktemp("report")
    store = work / "receipts.db"
    df = pd.DataFrame(
        {
            "to": [f"+9198765{i:05d}" for i in range(90)] + [f"+4479111{i:05d}" for i in range(30)],
            "name": "Ana",
        }
    )
    df = kb.assign(df, ["A", "B"], holdout=0.1, seed=7, balanced=True)
    names = {"A": "promo_a", "B": "promo_b"}
    with (
        kb.Receiver(store) as receiver,
        kb.Emulator(latency=0.005, callbacks={"delay": 0.01, "read": 0.6}, seed=3) as emu,
    ):
        results = kb.send(
            df, emu.client(), sender=SENDER, template_name=names, params_from="name",
            callback_url=receiver.callback_url, progress=False, rate_limit=None,
        )  # fmt: skip
        emu.wait_for_callbacks(20)
    data = df.assign(template_name=df["arm"].map({**names, "A": HOSTILE}).fillna("promo_a"))
    rng = np.random.default_rng(5)
    data["converted"] = rng.random(len(df)) < np.where(df["arm"] == "B", 0.3, 0.1)
    path = kb.export_results(results, work / "results.xlsx", data=data)
    return {"work": work, "store": store, "results": kb.load_results(path), "path": path}


def addresses(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*['"]?([^'" >]+)""", page, flags=re.IGNORECASE)


@pytest.mark.slow  # a real campaign with its callbacks: seconds
def test_the_page_stands_alone_and_escapes_what_the_campaign_wrote(campaign) -> None:
    page = kb.report_html(campaign["results"], receipts=campaign["store"])
    found = addresses(page)
    assert found, "the charts are images inside the page"
    assert all(a.startswith("data:image/png;base64,") for a in found), found
    assert not re.search(r"https?://", " ".join(found))
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;" in page
    for heading in ("Outcome", "Delivery funnel", "Costs", "Failures", "Experiment"):
        assert f"<h2>{heading}" in page


def test_an_arm_name_is_escaped_too() -> None:
    results = pd.DataFrame(
        {
            "to": ["+919876500001", "+919876500002"],
            "status": "sent",
            "message_id": pd.array([pd.NA, pd.NA], dtype="string"),
            "error_code": pd.array([pd.NA, pd.NA], dtype="string"),
            "arm": ["<img src=x onerror=alert(1)>", "B"],
            "converted": [True, False],
        }
    )
    page = kb.report_html(results, metric="converted")
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        missing("Chromium is not installed (apt-get install chromium)")
    assert found is not None
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", *args, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_the_report_opens_in_headless_chromium_with_its_numbers_and_charts(
    campaign, runner, tmp_path: Path
) -> None:
    """``kwa-batch report --html``, then Chromium: the rendered DOM holds the counts the
    results hold, the hostile name as text (its script never ran), and the screenshot
    shows the charts."""
    results: pd.DataFrame = campaign["results"]
    target = tmp_path / "report.html"
    outcome = runner.invoke(
        cli,
        ["report", str(campaign["path"]), "--receipts", str(campaign["store"]),
         "--html", str(target), "--metric", "converted"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert f"Report: {target}" in outcome.output
    dom = browse(target, tmp_path / "profile", "--dump-dom").stdout
    assert "<title>PWNED</title>" not in dom
    assert "document.title=" in dom  # shown as text
    sent = int((results["status"] == "sent").sum())
    held = int((results["status"] == "holdout").sum())
    assert (sent, held) == (108, 12)
    text = re.sub(r"<[^>]+>", " ", dom)
    assert re.search(rf"\b{sent}\s+sent · 90%", text), text[:2000]
    assert re.search(rf"\b{held}\s+holdout · 10%", text)
    compared = kb.compare(results, "converted")
    for arm in ("A", "B"):
        n, k = int(compared.loc[arm, "n"]), int(compared.loc[arm, "successes"])
        assert re.search(rf"\b{arm}\s+{n}\s+{k}\s+{float(compared.loc[arm, 'rate']):.1%}", text)
    assert dom.count("<img") >= 3  # the outcome, the funnel, the experiment
    shot = tmp_path / "report.png"
    browse(target, tmp_path / "profile", "--window-size=1200,2400", f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (2400, 1200)
    white = (pixels > 245).all(axis=2).mean()
    assert white < 0.97, "the page is blank"
    green = (np.abs(pixels - np.array(_GREEN)).sum(axis=2) < 30).sum()
    assert green > 2_000, "the outcome chart's sent bar is drawn"


@pytest.mark.slow  # a real campaign with its callbacks: seconds
def test_report_html_needs_html_for_the_receipts(campaign, runner) -> None:
    outcome = runner.invoke(
        cli, ["report", str(campaign["path"]), "--receipts", str(campaign["store"])]
    )
    assert outcome.exit_code == 2
    assert "go with --html" in outcome.output


@pytest.mark.slow  # a real campaign with its callbacks: seconds
def test_status_counts_the_holdout_in_the_funnel(campaign, runner, tmp_path: Path) -> None:
    outcome = runner.invoke(
        cli,
        ["status", str(campaign["path"]), "--receipts", str(campaign["store"]),
         "--out", str(tmp_path / "status.xlsx")],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    header = next(line for line in outcome.output.splitlines() if line.lstrip().startswith("rows"))
    assert header.split()[-3:] == ["holdout", "cost", "estimated"]
    total = next(line for line in outcome.output.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["120", "108"]
    assert total.split()[-3] == "12"


def test_without_receipts_the_failures_say_how_to_fix_each_row(
    fresh_emulator: kb.Emulator, sample_csv: Path
) -> None:
    df = kb.load_recipients(sample_csv)
    results = kb.send(df, fresh_emulator.client(), sender=SENDER, progress=False)
    page = kb.report_html(results)
    assert "No receipts store was given" in page
    assert "Re-export the column as text" in page  # KWA004's own fix, from the code table
    assert "<h2>Experiment" not in page  # no arm column, no experiment
    assert "Exit code of the run: 1." in page


@pytest.mark.slow  # a real campaign with its callbacks: seconds
def test_compare_merges_the_receipts_it_is_given(campaign) -> None:
    results, store = campaign["results"], campaign["store"]
    merged = kb.merge_receipts(results, store)
    given = kb.compare(results, "read", receipts=store)
    pd.testing.assert_frame_equal(given, kb.compare(merged, "read"))
    assert int(given["successes"].sum()) == int((merged["delivery_status"] == "read").sum()) > 0
    replied = kb.compare(results, "replied", receipts=store)
    tied = results.join(kb.replies(results, store)[["replied"]])
    pd.testing.assert_frame_equal(replied, kb.compare(tied, "replied"))


@pytest.mark.slow  # a campaign with its callbacks into PostgreSQL: seconds
def test_the_report_reads_a_store_on_postgresql(runner, tmp_path: Path, postgres_url: str) -> None:
    """Every reader takes the store's URL as it takes its path (issue #21): the report too."""
    url = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:S3CRET@")
    df = pd.DataFrame({"to": [f"+9198765{i:05d}" for i in range(6)], "body": "Hi"})
    with (
        kb.Receiver(url) as receiver,
        kb.Emulator(callbacks={"delay": 0.01, "read": 1.0}, seed=3) as emu,
    ):
        results = kb.send(
            df, emu.client(), sender=SENDER, callback_url=receiver.callback_url, progress=False
        )
        assert emu.wait_for_callbacks(20)
    path = kb.export_results(results, tmp_path / "results.xlsx")
    page = tmp_path / "report.html"
    outcome = runner.invoke(cli, ["report", str(path), "--receipts", url, "--html", str(page)])
    assert outcome.exit_code == 0, outcome.output
    assert "S3CRET" not in outcome.output
    text = page.read_text()
    assert "S3CRET" not in text
    bare = tmp_path / "bare.html"
    assert runner.invoke(cli, ["report", str(path), "--html", str(bare)]).exit_code == 0
    six = re.compile(r"<td[^>]*>\s*6\s*</td>")
    # Six delivered and six read, from the database, beside the six rows and six sent.
    assert len(six.findall(text)) > len(six.findall(bare.read_text()))
