"""kwa_batch: send WhatsApp messages through Kaleyra's API to the recipients in a spreadsheet.

The flow, one plain function per step::

    import kwa_batch as kb

    df = kb.load_recipients("sample_data/recipients.csv")
    report = kb.validate(df, default_region="IN", sender="+911234567890")
    with kb.Emulator() as emu:  # a local Kaleyra-compatible server
        results = kb.send(report, emu.client(), concurrency=8)
    kb.export_results(results, "results.xlsx")

Every name is imported on first use, so ``import kwa_batch`` costs nothing that is not
used (the command line starts without pandas; the emulator's and the receiver's server is
loaded only for them). The ``df.kwa`` accessor is registered as soon as pandas is imported.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from .accessor import KwaAccessor
    from .catalogue import load_templates
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
    from .receipts.optouts import OptOutSource, opt_outs
    from .receipts.receipts import load_receipts, merge_receipts
    from .receipts.receiver import Receiver
    from .receipts.windows import open_windows
    from .recipients import load_recipients
    from .results import STATUSES, summarize
    from .sending.client import KaleyraClient, SendResult
    from .sending.run import send
    from .validation.phones import normalize_phone
    from .validation.report import ValidationReport
    from .validation.suppression import load_suppression
    from .validation.validate import validate
    from .validation.windows import closed_window_rows

# Where each public name lives.
_HOMES = {
    "KwaAccessor": "accessor",
    "plot_outcomes": "charts",
    "Emulator": "emulator.server",
    **dict.fromkeys(
        (
            "ERROR_CODES",
            "AmbiguousSendError",
            "ApiError",
            "AuthenticationError",
            "ConfigurationError",
            "ConnectError",
            "InputError",
            "InvalidResponseError",
            "KwaBatchError",
            "RateLimitError",
            "ServerError",
            "TransportError",
            "ValidationError",
            "describe_code",
        ),
        "errors",
    ),
    "load_templates": "catalogue",
    "export_results": "export",
    "load_results": "export",
    "load_receipts": "receipts.receipts",
    "merge_receipts": "receipts.receipts",
    "Receiver": "receipts.receiver",
    "open_windows": "receipts.windows",
    "opt_outs": "receipts.optouts",
    "OptOutSource": "receipts.optouts",
    "load_recipients": "recipients",
    "STATUSES": "results",
    "summarize": "results",
    "KaleyraClient": "sending.client",
    "SendResult": "sending.client",
    "send": "sending.run",
    "estimate": "pricing",
    "normalize_phone": "validation.phones",
    "ValidationReport": "validation.report",
    "load_suppression": "validation.suppression",
    "validate": "validation.validate",
    "closed_window_rows": "validation.windows",
}

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
    "OptOutSource",
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
    "estimate",
    "export_results",
    "load_receipts",
    "load_recipients",
    "load_results",
    "load_suppression",
    "load_templates",
    "merge_receipts",
    "normalize_phone",
    "open_windows",
    "opt_outs",
    "plot_outcomes",
    "send",
    "summarize",
    "validate",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'kwa_batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _RegisterAccessor:
    """A meta path finder (importlib.abc.MetaPathFinder's protocol, without importing it:
    that costs more than all of this package's start-up) that registers ``df.kwa`` right
    after pandas is imported, whoever imports it."""

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "pandas":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec("pandas")
        loader = spec.loader if spec is not None else None
        if loader is None:
            return spec
        exec_module = loader.exec_module

        def exec_and_register(module: ModuleType) -> None:
            exec_module(module)
            importlib.import_module(".accessor", __name__)

        loader.exec_module = exec_and_register  # type: ignore[method-assign]
        return spec


if "pandas" in sys.modules:
    importlib.import_module(".accessor", __name__)
else:
    sys.meta_path.insert(0, _RegisterAccessor())
