"""Every code the library can put in a results file has its meaning and fix in the table."""

from __future__ import annotations

import re
from pathlib import Path

from kwa_batch.errors import ERROR_CODES

PACKAGE = Path(__file__).resolve().parent.parent / "kwa_batch"


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
