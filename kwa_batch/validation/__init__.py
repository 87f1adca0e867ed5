"""Validation: every row checked before anything is sent.

``phones`` and ``numbering`` read phone numbers (libphonenumber, vectorised); ``compose``
builds messages from columns; ``rules`` holds the check table (also as pandera models) and
what each failure means; ``window_checks`` holds the conversation-window rule,
``template_checks`` and ``campaign`` the catalogue's and the suppression list's;
``validator`` runs them all; ``report`` is the verdict, :class:`ValidationReport`.
"""

from __future__ import annotations

from .report import ValidationReport
from .validator import validate

__all__ = ["ValidationReport", "validate"]
