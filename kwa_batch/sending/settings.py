"""A run's settings as values, and the keywords of earlier versions mapped onto them.

:func:`kwa_batch.send` takes three settings objects, :class:`~.pacing.Pacing`,
:class:`~.schedule.Schedule` and :class:`~.retries.Retries` (:func:`kwa_batch.estimate` the
first two). Code written before them passed each setting as a keyword (``rate_limit=1000``,
``quiet_hours="21:00-09:00"``, ``max_attempts=2``): such a keyword still works, and sets that
field of its object, the rest keeping their defaults. Which object a keyword belongs to is
read from the objects' own fields, so that a new setting is added in one place: its type.
Giving an object and one of its keywords is refused (two values for one setting).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import ConfigurationError
from .pacing import Pacing
from .retries import Retries
from .schedule import Schedule

__all__ = ["setting_from"]

_S = TypeVar("_S", Pacing, Schedule, Retries)


def setting_from(
    where: str, name: str, kind: type[_S], given: object, options: dict[str, Any]
) -> _S:
    """The ``name=`` setting of one call of ``where`` (``"send"``, ``"estimate"``): ``given``,
    or a ``kind`` made of the keywords of ``options`` that are its fields (they are removed
    from ``options``: what is left is not this setting).

    Raises:
        ConfigurationError: ``given`` and one of its keywords are both given, ``given`` is not
            a ``kind``, or a keyword's value is out of range.
    """
    keywords = {f.name: options.pop(f.name) for f in dataclasses.fields(kind) if f.name in options}
    if given is None:
        return kind(**keywords)
    if not isinstance(given, kind):
        raise ConfigurationError(
            f"{where}({name}={given!r}): give a kb.{kind.__name__}(...), "
            f"e.g. {name}=kb.{kind.__name__}({_example(kind)}), or leave it out for the defaults"
        )
    if keywords:
        shown = ", ".join(f"{key}={value!r}" for key, value in keywords.items())
        raise ConfigurationError(
            f"{where}({name}=..., {shown}): {', '.join(keywords)} "
            f"{'is' if len(keywords) == 1 else 'are'} part of {name}, given twice; give "
            f"{'it' if len(keywords) == 1 else 'them'} once, in the object: "
            f"dataclasses.replace({name}, {shown})"
        )
    return given


def _example(kind: type[Any]) -> str:
    return {
        "Pacing": "rate_limit=80",
        "Schedule": 'quiet_hours="21:00-09:00"',
        "Retries": "max_attempts=4",
    }[kind.__name__]
