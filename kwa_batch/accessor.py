"""``df.kwa``: the flow as DataFrame methods, registered when kwa_batch and pandas are both
imported (in either order).

results = df.kwa.validate(sender="+911234567890").send(client)
df.kwa.send(client)           # validate and send in one call
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from .sending.client import KaleyraClient
    from .validation.report import ValidationReport

__all__ = ["KwaAccessor"]


@pd.api.extensions.register_dataframe_accessor("kwa")
class KwaAccessor:
    """Validate and send the recipients in this DataFrame (``df.kwa.validate()``…)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def validate(self, **kwargs: Any) -> ValidationReport:
        """:func:`kwa_batch.validate` on this frame; keyword arguments as there."""
        from .sending.chain import validate

        return validate(self._frame, **kwargs)

    def send(self, client: KaleyraClient, **kwargs: Any) -> pd.DataFrame:
        """Validate this frame and send its valid rows: :func:`kwa_batch.send`.

        Validation arguments (``default_region``, ``sender``…) and sending arguments
        (``pacing``, ``schedule``, ``journal``…) may be mixed.
        """
        from .sending.run import send

        return send(self._frame, client, **kwargs)
