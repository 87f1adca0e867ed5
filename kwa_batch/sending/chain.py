"""The method chain: :func:`kwa_batch.validate`, whose report sends itself.

``kb.validate(df, ...).send(client)`` and ``df.kwa.validate(...).send(client)`` need a
report that knows :func:`kwa_batch.send`, but validation sits below sending and never
imports it. So the public ``validate`` is the validation layer's own
(:func:`kwa_batch.validation.validator.validate`, same arguments, same checks) with the
sender attached here, a layer up: no import runs upward, lazily or not.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ParamSpec

from ..validation.report import ValidationReport
from ..validation.validator import validate as _validate
from .run import send

__all__ = ["validate"]

P = ParamSpec("P")


def _sendable(check: Callable[P, ValidationReport]) -> Callable[P, ValidationReport]:
    @functools.wraps(check)
    def validate(*args: P.args, **kwargs: P.kwargs) -> ValidationReport:
        return dataclasses.replace(check(*args, **kwargs), sends_with=send)

    return validate


validate = _sendable(_validate)
