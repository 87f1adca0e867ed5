"""The public API is exactly what __all__ says, and each name is documented."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SENDER

import kwa_batch as kb

PUBLIC = [
    "ERROR_CODES",
    "STATUSES",
    "AmbiguousSendError",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectError",
    "Emulator",
    "InputError",
    "InvalidResponseError",
    "KaleyraClient",
    "KwaAccessor",
    "KwaBatchError",
    "RateLimitError",
    "Receiver",
    "SendResult",
    "ServerError",
    "TransportError",
    "ValidationError",
    "ValidationReport",
    "__version__",
    "closed_window_rows",
    "describe_code",
    "export_results",
    "load_receipts",
    "load_recipients",
    "load_results",
    "merge_receipts",
    "normalize_phone",
    "open_windows",
    "plot_outcomes",
    "send",
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
