"""kwa_batch: send WhatsApp messages through Kaleyra's API to the recipients in a spreadsheet.

The flow, one plain function per step::

    import kwa_batch as kb

    df = kb.load_recipients("sample_data/recipients.csv")
    report = kb.validate(df, default_region="IN", sender="+911234567890")
    with kb.Emulator() as emu:  # a local Kaleyra-compatible server
        results = kb.send(report, emu.client(), concurrency=8)
    kb.export_results(results, "results.xlsx")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .accessor import KwaAccessor
from .charts import plot_outcomes
from .emulator.server import Emulator
from .errors import (
    ERROR_CODES,
    AmbiguousSendError,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    InputError,
    InvalidResponseError,
    KwaBatchError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
    describe_code,
)
from .export import export_results, load_results
from .receipts.receipts import load_receipts, merge_receipts
from .receipts.receiver import Receiver
from .receipts.windows import closed_window_rows, open_windows
from .recipients import load_recipients
from .results import STATUSES, summarize
from .sending.client import KaleyraClient, SendResult
from .sending.run import send
from .validation.phones import normalize_phone
from .validation.rules import ValidationReport, validate

__all__ = [
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
