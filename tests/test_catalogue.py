"""load_templates: the catalogue from a user's CSV/XLSX, WhatsApp's JSON or a frame."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from kwa_batch.catalogue import TEMPLATE_COLUMNS, count_placeholders, load_templates
from kwa_batch.errors import InputError

SAMPLE_CSV = ROOT / "sample_data" / "templates.csv"
SAMPLE_JSON = ROOT / "sample_data" / "templates.json"


def test_both_sample_formats_give_the_same_catalogue() -> None:
    from_csv = load_templates(SAMPLE_CSV)
    from_json = load_templates(SAMPLE_JSON)
    pd.testing.assert_frame_equal(from_csv, from_json)
    assert tuple(from_csv.columns) == TEMPLATE_COLUMNS
    shipped = from_csv.set_index(["template_name", "lang_code"]).loc[("order_shipped", "en")]
    assert (shipped["status"], shipped["category"], shipped["body_params"]) == (
        "approved",
        "utility",
        3,
    )
    assert set(from_csv["status"]) == {"approved", "paused", "rejected", "pending", "disabled"}
    assert {"IMAGE", "DOCUMENT", "TEXT", "NONE"} <= set(from_csv["header_format"])


def test_sample_catalogue_covers_the_campaign_workbook() -> None:
    # notebooks/campaign.ipynb sends order_shipped (en) with name, order_id and amount.
    catalogue = load_templates(SAMPLE_CSV).set_index(["template_name", "lang_code"])
    assert catalogue.loc[("order_shipped", "en"), "body_params"] == 3


def test_xlsx_and_dataframe_sources(tmp_path: Path) -> None:
    expected = load_templates(SAMPLE_CSV)
    table = pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)
    path = tmp_path / "templates.xlsx"
    table.to_excel(path, index=False)
    pd.testing.assert_frame_equal(load_templates(path), expected, check_exact=True)
    pd.testing.assert_frame_equal(load_templates(table), expected)
    # Its own output loads to itself.
    pd.testing.assert_frame_equal(load_templates(expected), expected)


def test_whatsapp_json_is_read_tolerantly() -> None:
    document = {
        "data": [
            {
                "name": "hello",
                "language": {"code": "en_US", "policy": "deterministic"},  # older shape
                "status": "Approved",
                "category": "UTILITY",
                "quality_score": {"score": "GREEN"},  # unknown fields: ignored
                "components": [
                    "not an object",
                    {"type": "header", "format": "text", "text": "Hi {{1}}"},
                    {"type": "BODY", "text": "Order {{1}} and {{2}}, again {{1}}", "x": 1},
                    {"type": "BUTTONS", "buttons": [{"type": "PHONE_NUMBER", "text": "Call"}, 7]},
                    {"type": "CAROUSEL", "cards": []},
                ],
            }
        ],
        "paging": {"cursors": {"after": "x"}},
    }
    row = load_templates(document).iloc[0]
    assert row["lang_code"] == "en_US"
    assert row["status"] == "approved"
    assert row["category"] == "utility"
    assert (row["header_format"], row["header_text"], row["header_params"]) == (
        "TEXT",
        "Hi {{1}}",
        1,
    )
    assert row["body_params"] == 2
    assert pd.isna(row["url_button"])
    assert row["buttons"] == "PHONE_NUMBER: Call"
    assert load_templates(document["data"]).equals(load_templates(document))


def test_statuses_in_any_case_and_spelling() -> None:
    rows = pd.DataFrame(
        {
            "Template Name": ["a", "b", "c"],
            "Language": ["en", "en", "en"],
            "Status": ["PAUSED", "Submission Rejected", " approved "],
            "Body": ["x", "y", "z"],
        }
    )
    assert load_templates(rows)["status"].tolist() == ["paused", "submission_rejected", "approved"]


def test_cells_are_kept_as_written(write_csv) -> None:
    path = write_csv(
        "template_name,lang_code,status,body,url_button\n"
        'NA,en,approved,"Code 0012, {{1}}",https://x.example/t/{{1}}\n',
        name="templates.csv",
    )
    row = load_templates(path).iloc[0]
    assert row["template_name"] == "NA"  # not missing
    assert row["body"] == "Code 0012, {{1}}"
    assert (row["url_params"], row["buttons"]) == (1, "URL: https://x.example/t/{{1}}")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("template_name,status,body\nx,approved,y\n", "no 'lang_code' column"),
        ("template_name,lang_code,status,body\n,en,approved,y\n", "line 2: template_name is empty"),
        ("template_name,lang_code,status,body\nx,en,approved,\n", "line 2: body is empty"),
        (
            "template_name,lang_code,status,body\nx,en,approved,a\nx,en,paused,b\n",
            "line 3: template 'x' in 'en' appears twice",
        ),
        (
            "template_name,lang_code,status,body,header_format\nx,en,approved,a,GIF\n",
            "header_format 'GIF' is not one of",
        ),
    ],
)
def test_bad_catalogue_files_are_refused_with_the_row(
    write_csv, content: str, expected: str
) -> None:
    path = write_csv(content, name="templates.csv")
    with pytest.raises(InputError, match=expected):
        load_templates(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"templates_please": 1}', "not WhatsApp's template format"),
        ('{"data": [3]}', "template 1: not an object"),
        ('{"data": [{"language": "en", "status": "APPROVED"}]}', "template_name is empty"),
    ],
)
def test_bad_json_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        load_templates(path)


def test_missing_or_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such template catalogue"):
        load_templates(tmp_path / "nope.csv")
    other = tmp_path / "t.parquet"
    other.write_bytes(b"PAR1")
    with pytest.raises(InputError, match=r"\.csv, \.xlsx or \.json"):
        load_templates(other)


def test_json_round_trip_through_a_file(tmp_path: Path) -> None:
    document = json.loads(SAMPLE_JSON.read_text(encoding="utf-8"))
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    pd.testing.assert_frame_equal(load_templates(path), load_templates(document))


@pytest.mark.parametrize(
    ("text", "count"),
    [(None, 0), ("", 0), ("no placeholder", 0), ("{{1}} {{2}} {{1}}", 2), ("{{ 1 }}", 1)],
)
def test_count_placeholders(text: str | None, count: int) -> None:
    assert count_placeholders(text) == count


@pytest.mark.parametrize(
    "content",
    [
        'template_name,lang_code,status,body\nx,en,approved,"Hi {{1}}; order {{2}}; thanks"\n',
        'template_name;lang_code;status;body\nx;en;approved;"Hi {{1}}, order {{2}}, thanks"\n',
        "template_name\tlang_code\tstatus\tbody\nx\ten\tapproved\tHi {{1}}, order {{2}}; ok\n",
    ],
)
def test_the_delimiter_comes_from_the_header_not_the_bodies(write_csv, content: str) -> None:
    row = load_templates(write_csv(content, name="templates.csv")).iloc[0]
    assert (row["template_name"], row["body_params"]) == ("x", 2)


def test_a_file_that_is_not_utf8_is_read_as_a_recipient_file_is(write_csv, caplog) -> None:
    """One reader for every user's table: a catalogue saved by Excel in a Windows code page
    is read in it, with the same warning as a recipient file (it was refused)."""
    path = write_csv(
        "template_name,lang_code,status,body\nx,pt_BR,approved,Olá {{1}}\n",
        name="templates.csv",
        encoding="cp1252",
    )
    with caplog.at_level(logging.WARNING):
        catalogue = load_templates(path)
    assert catalogue.loc[0, "body"] == "Olá {{1}}"
    assert "is not UTF-8; read it as cp1252" in caplog.text


def test_a_catalogue_sheet_and_a_semicolon_file_are_read_as_recipient_files_are(
    tmp_path: Path,
) -> None:
    """The catalogue's workbook and CSV go through the same reader as recipients: ``;``
    detected, blank lines skipped, each row named by its line."""
    path = tmp_path / "templates.csv"
    path.write_text(
        "template_name;lang_code;status;body\n\nx;en;approved;Hi {{1}}\nx;en;paused;b\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="line 4: template 'x' in 'en' appears twice"):
        load_templates(path)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_save_then_load_gives_the_same_catalogue(tmp_path: Path, suffix: str) -> None:
    from kwa_batch.catalogue import save_templates

    catalogue = load_templates(SAMPLE_JSON)
    tricky = catalogue.copy()
    tricky.loc[0, "body"] = "=HYPERLINK({{1}}) 0012, {{2}}"  # stays text, not a formula
    path = save_templates(tricky, tmp_path / f"catalogue{suffix}")
    pd.testing.assert_frame_equal(load_templates(path), load_templates(tricky))
    with pytest.raises(InputError, match=r"use \.csv or \.xlsx"):
        save_templates(catalogue, tmp_path / "catalogue.json")


def test_save_templates_writes_a_csv_with_the_formula_rule(tmp_path: Path) -> None:
    """The catalogue is written by the package's one writer: a body that starts with ``=``
    cannot become a formula in a spreadsheet (and is read back as it was)."""
    from kwa_batch.catalogue import save_templates

    catalogue = load_templates(SAMPLE_JSON)
    catalogue.loc[0, "body"] = '=HYPERLINK("http://x") {{1}}'
    catalogue.loc[1, "body"] = "'=already quoted {{1}}"
    path = save_templates(catalogue, tmp_path / "catalogue.csv")
    written = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert '\'=HYPERLINK("http://x") {{1}}' in set(written["body"])
    assert not written["body"].str.startswith("=").any()
    pd.testing.assert_frame_equal(load_templates(path), load_templates(catalogue))


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_save_templates_replaces_the_file_in_one_step(tmp_path: Path, suffix: str) -> None:
    """Written next to its target and renamed into place (a failed write leaves the old file
    whole): the old file, kept under a second name, is untouched."""
    from kwa_batch.catalogue import save_templates

    catalogue = load_templates(SAMPLE_JSON)
    target = tmp_path / f"catalogue{suffix}"
    save_templates(catalogue.head(1), target)
    kept = tmp_path / f"kept{suffix}"
    os.link(target, kept)
    before = kept.read_bytes()
    save_templates(catalogue, target)
    assert kept.read_bytes() == before
    assert len(load_templates(target)) == len(catalogue)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, kept.name])
