"""kwa_batch: send WhatsApp messages through Kaleyra's API to the recipients in a spreadsheet.

The flow, one plain function per step::

    import kwa_batch as kb

    df = kb.load_recipients("sample_data/recipients.csv")
    report = kb.validate(df, default_region="IN", sender="+911234567890")
    with kb.Emulator() as emu:  # a local Kaleyra-compatible server
        results = kb.send(report, emu.client(), pacing=kb.Pacing(rate_limit=1000))
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

# The public API, listed once: every name imported here is public, and nothing else is.
# Type checkers read these imports; at run time they are read (not run) to derive
# ``__all__`` and where :func:`__getattr__` finds each name on first use.
if TYPE_CHECKING:
    from .accessor import KwaAccessor as KwaAccessor
    from .actions import Action as Action
    from .actions import rule_for as rule_for
    from .background import Job as Job
    from .background import start as start
    from .campaign_funnel import funnel as funnel
    from .catalogue import load_templates as load_templates
    from .charts import plot_compare as plot_compare
    from .charts import plot_funnel as plot_funnel
    from .charts import plot_outcomes as plot_outcomes
    from .costing import costs as costs
    from .emulator.server import Emulator as Emulator
    from .errors import ERROR_CODES as ERROR_CODES
    from .errors import AmbiguousSendError as AmbiguousSendError
    from .errors import ApiError as ApiError
    from .errors import ApiVersionError as ApiVersionError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import Code as Code
    from .errors import ConfigurationError as ConfigurationError
    from .errors import ConnectError as ConnectError
    from .errors import DatabaseError as DatabaseError
    from .errors import InputError as InputError
    from .errors import InvalidResponseError as InvalidResponseError
    from .errors import KwaBatchError as KwaBatchError
    from .errors import RateLimitError as RateLimitError
    from .errors import ServerError as ServerError
    from .errors import TransportError as TransportError
    from .errors import ValidationError as ValidationError
    from .errors import describe_code as describe_code
    from .experiments import assign as assign
    from .experiments import compare as compare
    from .export import export_results as export_results
    from .export import load_results as load_results
    from .html_report import report_html as report_html
    from .loading.recipients import load_recipients as load_recipients
    from .outcome import RunOutcome as RunOutcome
    from .pricing import estimate as estimate
    from .receipts.conversations import open_windows as open_windows
    from .receipts.delivery import load_receipts as load_receipts
    from .receipts.delivery import merge_receipts as merge_receipts
    from .receipts.follow_up import follow_up as follow_up
    from .receipts.optouts import OptOutSource as OptOutSource
    from .receipts.optouts import opt_outs as opt_outs
    from .receipts.receiver import Receiver as Receiver
    from .receipts.replies import replies as replies
    from .receipts.retrying import send_follow_ups as send_follow_ups
    from .receipts.store import CallbackStore as CallbackStore
    from .results import STATUSES as STATUSES
    from .results import Status as Status
    from .results import summarize as summarize
    from .sending.chain import validate as validate
    from .sending.client import KaleyraClient as KaleyraClient
    from .sending.client import SendResult as SendResult
    from .sending.pacing import Pacing as Pacing
    from .sending.retries import Retries as Retries
    from .sending.run import send as send
    from .sending.schedule import Schedule as Schedule
    from .streaming import send_file as send_file
    from .validation.phones import normalize_phone as normalize_phone
    from .validation.report import ValidationReport as ValidationReport
    from .validation.suppression import load_suppression as load_suppression
    from .validation.window_checks import closed_window_rows as closed_window_rows

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType


def _public_names() -> dict[str, str]:
    """Each public name and the module it lives in, from the first ``if TYPE_CHECKING:``
    block of this file, read through the module's loader (a file, a wheel, a zip)."""
    import ast

    get_source = getattr(__spec__.loader if __spec__ else None, "get_source", None)
    source = get_source(__name__) if get_source is not None else None
    if source is None:
        raise ImportError(
            "kwa_batch reads its public names from its own source (kwa_batch/__init__.py), "
            "which this installation lacks: install it with pip, which keeps the sources"
        )
    tree = ast.parse(source)
    block = next(node for node in tree.body if isinstance(node, ast.If))
    return {
        alias.name: node.module or ""
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


_HOMES = _public_names()
__all__ = sorted([*_HOMES, "__version__"])


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
