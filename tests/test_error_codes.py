"""Every code the library can put in a results file has its meaning and fix in one place:
the members of :class:`kwa_batch.errors.Code`; everywhere else names the member."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd

import kwa_batch as kb
from kwa_batch.errors import ERROR_CODES, NEVER_SENT_CODES, Code, Policy, Source, lookup_code
from kwa_batch.results import NEVER_SENT

PACKAGE = Path(__file__).resolve().parent.parent / "kwa_batch"
CODES = {code.value for code in Code}


def test_every_local_code_written_in_the_library_is_in_the_table() -> None:
    used: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for code in re.findall(r"\bKWA\d{3}\b", path.read_text(encoding="utf-8")):
            used.setdefault(code, str(path.relative_to(PACKAGE)))
    assert used, "no code found: the search itself is broken"
    missing = {code: where for code, where in used.items() if code not in ERROR_CODES}
    assert not missing, f"codes without an entry in errors.py's table: {missing}"
    for code in used:
        assert ERROR_CODES[code].fix, f"{code} has no fix"


def test_no_module_spells_a_code_as_a_bare_string() -> None:
    """A code is written once, as a member of ``Code``; the library names the member (the
    emulator plays Kaleyra and speaks its codes as the API does)."""
    bare: list[str] = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "emulator" or relative == Path("errors.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                spelled = re.match(r"(KWA\d{3}|[A-Z0-9]+)\b", node.value)
                if spelled and spelled.group(1) in CODES:
                    bare.append(f"{relative}:{node.lineno}: {node.value[:40]!r}")
    assert not bare, "codes spelled as strings, not as errors.Code members:\n" + "\n".join(bare)


def test_each_member_carries_its_meaning_fix_source_and_policy() -> None:
    for code in Code:
        entry = ERROR_CODES[code]
        assert (entry.code, entry.meaning, entry.fix) == (code.value, code.meaning, code.fix)
        assert code.meaning, code
        assert code.fix, code
        assert isinstance(code.source, Source)
        assert isinstance(code.policy, Policy)
        assert Code(code.value) is code
    assert len(ERROR_CODES) == len(Code)


def test_a_member_is_its_plain_string() -> None:
    assert Code.OPTED_OUT == "KWA025"
    assert f"{Code.OPTED_OUT}" == "KWA025"
    assert type(str(Code.OPTED_OUT)) is str
    assert {"KWA025": 1}[Code.OPTED_OUT] == 1
    assert lookup_code(Code.EXPIRED) is ERROR_CODES["KWA029"]


def test_the_codes_no_later_run_sends_follow_their_policy() -> None:
    assert NEVER_SENT == NEVER_SENT_CODES == {"KWA025", "KWA029"}
    assert all(type(code) is str for code in NEVER_SENT)


def _plain(values: pd.Series) -> bool:
    return all(type(value) is str for value in values.dropna())


def test_frames_hold_codes_as_plain_strings(tmp_path: Path) -> None:
    """Codes reach frames (and so files) as ``str``, never as enum members."""
    file = tmp_path / "r.csv"
    file.write_text(
        "to,type,body,template_name,callback_url\n"
        "+919876543210,text,hello,,\n"
        "+919876543210,text,hello,,\n"
        "12345,text,hi,,\n"
        "+919876543211,template,,,\n"
        "+919876543212,text,hi,,ftp://x\n"
        "+919876543213,fax,hi,,\n",
        encoding="utf-8",
    )
    report = kb.validate(kb.load_recipients(file))
    assert set(report.errors["error_code"]) >= {"KWA007", "E13009", "KWA002", "KWA005", "KWA003"}
    assert _plain(report.errors["error_code"])
    assert _plain(report.invalid["error_code"])
    assert _plain(report.summary().reset_index()["error_code"])
