"""The campaign checks :func:`kwa_batch.validate` runs when given a template catalogue or
a suppression list: what the platform would refuse after saying ``sent``.

:func:`campaign_findings` takes the messages as validate built them (positional, the API's
columns) and the input frame (for ``media_url``, ``param_header`` and ``param_url``, which
are not API columns of the text endpoint), and returns the refusals to record, with the
languages an empty ``lang_code`` resolved to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalogue import TEMPLATE_COLUMNS, load_templates
from .suppression import SUPPRESSED_CODE, SUPPRESSION_COLUMNS, load_suppression, suppressed_rows
from .template_checks import Finding, check_templates

__all__ = [
    "TEMPLATE_FIELDS",
    "CampaignCheck",
    "as_catalogue",
    "as_suppression",
    "campaign_findings",
    "live_sources",
]

#: Template fields beyond the text endpoint's columns, read from the input when present.
TEMPLATE_FIELDS = ("media_url", "param_header", "param_url")


@dataclass
class CampaignCheck:
    """What :func:`campaign_findings` found.

    Attributes:
        findings: refusals, each with positions 0…n-1 of the messages.
        lang_code: the messages' ``lang_code`` with resolved languages filled in (None
            when no catalogue was given).
        template_buttons: each message's template's button types in order (None when no
            catalogue was given).
        catalogue: the catalogue used, or None.
        suppression: the suppression list used, or None.
    """

    findings: list[Finding] = field(default_factory=list)
    lang_code: pd.Series | None = None
    template_buttons: pd.Series | None = None
    header_format: pd.Series | None = None
    card_header_format: pd.Series | None = None
    catalogue: pd.DataFrame | None = None
    suppression: pd.DataFrame | None = None


def as_catalogue(templates: Any) -> pd.DataFrame:
    """A catalogue frame from what ``validate(templates=...)`` takes (see load_templates)."""
    if isinstance(templates, pd.DataFrame) and set(TEMPLATE_COLUMNS) <= set(templates.columns):
        return templates
    return load_templates(templates)


def _is_source(item: Any) -> bool:
    if isinstance(item, pd.DataFrame | Path) or callable(getattr(item, "opt_outs", None)):
        return True
    return isinstance(item, str) and Path(item).is_file()


def live_sources(suppress: Any) -> tuple[Any, ...]:
    """The sources of ``validate(suppress=...)`` that change while a campaign runs: those
    with an ``opt_outs()`` method (receipts stores), read again by :func:`kwa_batch.send`."""
    items = suppress if isinstance(suppress, list | tuple) else [suppress]
    return tuple(item for item in items if callable(getattr(item, "opt_outs", None)))


def as_suppression(suppress: Any, default_region: str | None = None) -> pd.DataFrame:
    """A suppression frame from what ``validate(suppress=...)`` takes: one source, a list
    of sources (files, stores, frames), or a list/Series of numbers."""
    if isinstance(suppress, pd.DataFrame) and list(suppress.columns) == list(SUPPRESSION_COLUMNS):
        return suppress
    if (
        isinstance(suppress, list | tuple)
        and suppress
        and all(_is_source(item) for item in suppress)
    ):
        return load_suppression(*suppress, default_region=default_region)
    return load_suppression(suppress, default_region=default_region)


def _extra_column(df: pd.DataFrame, name: str) -> Any:
    if name in df.columns:
        return name
    key = name.replace("_", "")
    found = [c for c in df.columns if "".join(ch for ch in str(c).lower() if ch.isalnum()) == key]
    return found[0] if len(found) == 1 else None


def campaign_findings(
    prepared: pd.DataFrame,
    df: pd.DataFrame,
    *,
    templates: Any = None,
    suppress: Any = None,
    default_region: str | None = None,
) -> CampaignCheck:
    """Check the built messages against a catalogue and a suppression list.

    Args:
        prepared: the messages as validate built them, indexed 0…n-1 (``to`` in E.164).
        df: the input frame, same rows in the same order.
        templates: a catalogue, or anything :func:`load_templates` reads; None: no check.
        suppress: numbers, files or stores (see :func:`as_suppression`); None: no check.
        default_region: for numbers of the suppression list written nationally.

    Raises:
        InputError: the catalogue or the suppression list cannot be read.
    """
    out = CampaignCheck()
    if templates is not None:
        out.catalogue = as_catalogue(templates)
        messages = prepared.reset_index(drop=True)
        extra = {}
        for name in TEMPLATE_FIELDS:
            column = _extra_column(df, name)
            if column is not None:
                extra[name] = df[column].reset_index(drop=True)
        if extra:
            messages = messages.assign(**extra)
        check = check_templates(messages, out.catalogue)
        out.findings.extend(check.findings)
        out.lang_code = check.lang_code
        out.template_buttons = check.template_buttons
        out.header_format = check.header_format
        out.card_header_format = check.card_header_format
    if suppress is not None:
        out.suppression = as_suppression(suppress, default_region)
        to = prepared["to"].reset_index(drop=True)
        mask, messages_text = suppressed_rows(to, out.suppression)
        if mask.any():
            out.findings.append(
                Finding(
                    positions=np.flatnonzero(mask),
                    column="to",
                    check="suppressed",
                    code=SUPPRESSED_CODE,
                    message=messages_text,
                    values=to[mask].reset_index(drop=True).astype("str"),
                )
            )
    return out
