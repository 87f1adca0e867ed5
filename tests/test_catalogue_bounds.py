"""load_templates given what a hostile user could give it: nested, huge, special, binary or
mistyped catalogues. Each is refused in one line (InputError) that says what is wrong, at
once and without a RecursionError; real files only."""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import ROOT, load_within

from kwa_batch.catalogue import MAX_CATALOGUE_BYTES, MAX_PARTS, load_templates
from kwa_batch.errors import InputError

SAMPLE_JSON = ROOT / "sample_data" / "templates.json"
SAMPLE_CSV = ROOT / "sample_data" / "templates.csv"


def template(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "hello",
        "language": "en",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Hi {{1}}"}],
    }
    base.update(fields)
    return base


def refused(source: Any) -> str:
    with pytest.raises(InputError) as info:
        load_templates(source)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[" * 200_000, "nests 200,000 levels deep"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nests 100,000 levels deep"),
        ('{"data": [' + "[" * 70 + "]" * 70 + "]}", "nests 72 levels deep"),
        ("12", "not WhatsApp's template format"),
        ('"data"', "not WhatsApp's template format"),
        ("null", "not WhatsApp's template format"),
        ("", "the file is empty"),
        ("  \n\t ", "the file is empty"),
        ("\x00\x01\x02\x03 garbage", "not valid JSON"),
        ('{"data": [{"name": ' + "9" * 5000 + "}]}", "not valid JSON"),
    ],
)
def test_hostile_json_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    message = refused(path)
    assert str(path) in message
    assert expected in message


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_json_in_another_unicode_encoding_loads(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(SAMPLE_JSON.read_text(encoding="utf-8"), encoding=encoding)
    pd.testing.assert_frame_equal(load_templates(path), load_templates(SAMPLE_JSON))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (template(name=["hello"]), "'name' is a list, not text"),
        (template(status=1), "'status' is a number, not text"),
        (template(category=True), "'category' is true, not text"),
        (template(name=10**5000), "'name' is a number, not text"),
        (template(components="BODY"), "'components' is a string, not a list"),
        (template(components={"type": "BODY"}), "'components' is an object, not a list"),
        (template(components=[{"type": "BODY", "text": {"t": "Hi"}}]), "'text' is an object"),
        (template(components=[{"type": ["BODY"]}]), "'type' is a list"),
        (
            template(components=[{"type": "BUTTONS", "buttons": {"type": "URL"}}]),
            "'buttons' is an object, not a list",
        ),
        (
            template(components=[{"type": "BUTTONS", "buttons": [{"type": "URL", "url": 7}]}]),
            "'url' is a number",
        ),
        (template(language={"code": ["en"]}), "'language code' is a list"),
    ],
)
def test_values_of_the_wrong_type_name_the_template(item: dict[str, Any], expected: str) -> None:
    message = refused({"data": [template(), template(name="other"), item]})
    assert "template 3" in message
    assert expected in message


class _Watched(dict[str, Any]):
    """A component or button that records every look at its fields (in ``looked``)."""

    def __init__(self, looked: list[str], **fields: Any) -> None:
        super().__init__(**fields)
        self.looked = looked

    def __getitem__(self, key: str) -> Any:
        self.looked.append(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.looked.append(key)
        return super().get(key, default)

    def items(self) -> Any:
        self.looked.append("items()")
        return super().items()

    def __iter__(self) -> Any:
        self.looked.append("iter()")
        return super().__iter__()


def test_ten_thousand_components_or_buttons() -> None:
    """Refused by their count alone: not one of the 10,000 is looked at (so the refusal
    costs nothing whatever each of them holds)."""
    looked: list[str] = []
    body = {"type": "BODY", "text": "Hi"}
    many = [_Watched(looked, type="FOOTER", text=str(i)) for i in range(10_000)] + [body]
    assert f"10,001 components, more than the {MAX_PARTS}" in refused([template(components=many)])
    buttons = [_Watched(looked, type="URL", url=f"https://x.example/{i}") for i in range(10_000)]
    components = [body, {"type": "BUTTONS", "buttons": buttons}]
    assert "10,000 buttons" in refused([template(components=components)])
    assert looked == []


def test_a_ten_megabyte_body(tmp_path: Path) -> None:
    huge = "Hi {{1}}" + "a" * (10 * 2**20 - 8)
    document = {"data": [template(components=[{"type": "BODY", "text": huge}])]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert "body is 10,485,760 characters long, more than the 4,096" in refused(path)
    csv_file = tmp_path / "t.csv"
    csv_file.write_text(f"template_name,lang_code,status,body\nx,en,approved,{huge}\n")
    assert "line 2: body is 10,485,760 characters" in refused(csv_file)
    frame = pd.DataFrame(
        {"template_name": ["x"], "lang_code": ["en"], "status": ["approved"], "body": [huge]}
    )
    assert "row 0: body is" in refused(frame)


def test_a_cell_that_cannot_be_text() -> None:
    frame = pd.DataFrame(
        {"template_name": [10**5000], "lang_code": ["en"], "status": ["approved"], "body": ["x"]},
        dtype=object,
    )
    assert "template_name cannot be read as text" in refused(frame)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".xlsx"])
def test_a_file_over_the_cap_is_refused_before_reading(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    with path.open("wb") as out:
        out.truncate(MAX_CATALOGUE_BYTES + 1)  # sparse: no disk used, nothing read
    assert "over the 32 MiB a template catalogue may be" in refused(path)


def _load_within(path: Path) -> BaseException | None:
    return load_within(load_templates, path, seconds=10)


@pytest.mark.parametrize("name", ["t.json", "t.csv", "t.xlsx", "t.fifo"])
def test_a_fifo_is_refused_at_once_as_a_fifo(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    os.mkfifo(path)
    error = _load_within(path)
    assert isinstance(error, InputError)
    assert "is a named pipe (FIFO), not a file" in str(error)
    assert "no such" not in str(error)


def test_devices_folders_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    error = _load_within(tmp_path / "zero.json")
    assert isinstance(error, InputError)
    assert "character device" in str(error)
    (tmp_path / "d.json").mkdir()
    assert "is a folder, not a template catalogue" in refused(tmp_path / "d.json")
    assert "no such template catalogue file" in refused(tmp_path / "gone.json")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"\r\n  \r\n", "the file is empty"),
        (bytes(range(256)) * 4, "is a binary file, not a CSV"),
        (b"template_name,lang_code,status,body\nx,en,approved,a\x00b\n", "binary"),
        (("a," * 100_000 + "body\n").encode(), "100,001 columns"),
        (
            b'template_name,lang_code,status,body\nx,en,approved,"unclosed\n',
            "line 2 opens a quoted value that is never closed",
        ),
    ],
)
def test_hostile_csv_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    assert expected in refused(path)


@pytest.mark.parametrize("bom", [codecs.BOM_UTF8, codecs.BOM_UTF16_LE])
def test_a_csv_with_a_byte_order_mark_loads(tmp_path: Path, bom: bytes) -> None:
    text = SAMPLE_CSV.read_text(encoding="utf-8")
    path = tmp_path / "t.csv"
    path.write_bytes(bom + text.encode("utf-8" if bom == codecs.BOM_UTF8 else "utf-16-le"))
    pd.testing.assert_frame_equal(load_templates(path), load_templates(SAMPLE_CSV))


@pytest.mark.parametrize(
    "content",
    [b"not a zip", b"PK\x03\x04" + b"\x00" * 100, bytes(range(256)) * 10],
)
def test_a_workbook_that_is_not_one(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "t.xlsx"
    path.write_bytes(content)
    assert "not a readable .xlsx workbook" in refused(path)


def test_an_empty_workbook(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    pd.DataFrame().to_excel(path, index=False)
    assert "is empty" in refused(path)
