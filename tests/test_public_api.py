"""The public API is exactly what __all__ says, and each name is documented."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb

PUBLIC = [
    "Action",
    "rule_for",
    "follow_up",
    "send_follow_ups",
    "ERROR_CODES",
    "STATUSES",
    "AmbiguousSendError",
    "ApiError",
    "ApiVersionError",
    "CallbackStore",
    "Code",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectError",
    "DatabaseError",
    "Emulator",
    "InputError",
    "InvalidResponseError",
    "Job",
    "KaleyraClient",
    "KwaAccessor",
    "KwaBatchError",
    "OptOutSource",
    "Pacing",
    "RateLimitError",
    "Receiver",
    "Retries",
    "RunOutcome",
    "Schedule",
    "SendResult",
    "ServerError",
    "Status",
    "TransportError",
    "ValidationError",
    "ValidationReport",
    "__version__",
    "assign",
    "closed_window_rows",
    "compare",
    "costs",
    "describe_code",
    "estimate",
    "export_results",
    "funnel",
    "plot_compare",
    "report_html",
    "load_receipts",
    "load_recipients",
    "load_results",
    "load_suppression",
    "load_templates",
    "merge_receipts",
    "normalize_phone",
    "open_windows",
    "opt_outs",
    "plot_funnel",
    "plot_outcomes",
    "replies",
    "send",
    "send_file",
    "start",
    "summarize",
    "validate",
]


def test_all_is_pinned() -> None:
    assert sorted(kb.__all__) == sorted(PUBLIC)
    for name in kb.__all__:
        assert hasattr(kb, name), name


@pytest.mark.parametrize(
    "name", [n for n in PUBLIC if n[0].isalpha() and callable(getattr(kb, n, None))]
)
def test_public_callables_have_docstrings(name: str) -> None:
    assert (getattr(kb, name).__doc__ or "").strip(), name


def test_every_exception_derives_from_kwa_batch_error() -> None:
    for name in PUBLIC:
        value = getattr(kb, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, kb.KwaBatchError), name


def test_accessor_chain(fresh_emulator: kb.Emulator) -> None:
    df = pd.DataFrame({"to": ["+919876543210", "bad"], "body": ["Hi", "Hi"]})
    report = df.kwa.validate(sender=SENDER)
    assert isinstance(report, kb.ValidationReport)
    results = df.kwa.send(fresh_emulator.client(), sender=SENDER, progress=False)
    assert results["status"].tolist() == ["sent", "rejected"]
    assert list(results.index) == list(df.index)


def test_report_send_keeps_rejected_rows(fresh_emulator: kb.Emulator) -> None:
    df = pd.DataFrame({"to": ["+919876543210", "bad"], "name": ["Priya", "X"]})
    results = df.kwa.validate(
        sender=SENDER, template_name="order_shipped", params_from=["name"]
    ).send(fresh_emulator.client(), progress=False)
    assert results["status"].tolist() == ["sent", "rejected"]
    row = fresh_emulator.messages.iloc[0]
    assert row["template_name"] == "order_shipped"
    assert row["params"] == "Priya"


def test_send_forwards_validation_settings_for_a_frame(fresh_emulator: kb.Emulator) -> None:
    df = pd.DataFrame({"to": ["+919876543210"], "name": ["Priya"], "order_id": ["A1"]})
    results = kb.send(
        df,
        fresh_emulator.client(),
        sender=SENDER,
        body_template="Hi {name}, order {order_id} has shipped",
        progress=False,
    )
    assert results.loc[0, "status"] == "sent"
    assert fresh_emulator.messages.iloc[0]["body"] == "Hi Priya, order A1 has shipped"
    report = kb.validate(df, sender=SENDER, body_template="x {name}")
    with pytest.raises(kb.ConfigurationError, match="already validated"):
        kb.send(report, fresh_emulator.client(), body_template="y", progress=False)


def test_a_report_of_kb_validate_sends_itself(fresh_emulator: kb.Emulator) -> None:
    df = pd.DataFrame({"to": ["+919876543210", "bad"], "body": ["Hi", "Hi"]})
    results = kb.validate(df, sender=SENDER).send(fresh_emulator.client(), progress=False)
    assert results["status"].tolist() == ["sent", "rejected"]


def test_a_report_of_the_validation_layer_says_how_to_send_it() -> None:
    from kwa_batch.validation import validate

    report = validate(pd.DataFrame({"to": ["+919876543210"], "body": ["Hi"]}), sender=SENDER)
    with pytest.raises(kb.ConfigurationError, match=r"kb\.send\(report, client\)"):
        report.send(object())


def test_the_package_imports_from_a_zip(tmp_path) -> None:
    """A zipapp or a zipped site-packages: the public names are read through the loader,
    not by opening ``__file__`` (which is no file inside a zip)."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    package = Path(kb.__file__).parent
    archive = tmp_path / "kb.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in package.rglob("*.py"):
            zipped.write(path, path.relative_to(package.parent))
    code = "import kwa_batch as kb; print(kb.__file__); print(kb.send.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(archive)},
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(archive / "kwa_batch" / "__init__.py"), "send"]
