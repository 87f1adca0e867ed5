"""``Emulator``'s one-by-one keywords, each onto a field of its settings object.

``Emulator(latency=0.2)`` is ``Emulator(network=NetworkSettings(latency=0.2))``: every
keyword ``Emulator`` took before its settings were grouped still works (:data:`SHORTCUTS`
says where each goes). So do the callback settings a campaign's life after ``sent`` is
played with: ``Emulator(not_on_whatsapp=0.05, spam_threshold=0.3)`` is
``Emulator(callbacks={"not_on_whatsapp": 0.05, "spam_threshold": 0.3})``. A field given
both ways (``network=NetworkSettings(...)`` with ``latency=``) is refused: one place per
setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from .behaviour import (
    CallbackSettings,
    FaultSettings,
    LimitSettings,
    NetworkSettings,
    VersionSettings,
)

__all__ = ["SHORTCUTS", "Shortcuts", "settle", "settle_callbacks", "settle_versions"]


class Shortcuts(TypedDict, total=False):
    """The keywords ``Emulator`` takes one by one, each setting a field of its settings."""

    latency: float
    jitter: float
    read_timeout: float
    max_connections: int | None
    retry_after: float
    late_delay: float
    rate_limit: float | None
    throughput: float | None
    pair_interval: float | None
    limit_answer: str
    not_on_whatsapp: float
    opted_out: Iterable[str]
    spam_threshold: float | None
    marketing_window: float
    prices: Mapping[str, float]


#: Each one-by-one keyword: (the ``Emulator`` keyword of its group, the field it sets).
SHORTCUTS: dict[str, tuple[str, str]] = {
    "latency": ("network", "latency"),
    "jitter": ("network", "jitter"),
    "read_timeout": ("network", "read_timeout"),
    "max_connections": ("network", "max_connections"),
    "retry_after": ("faults", "retry_after"),
    "late_delay": ("faults", "late_delay"),
    "rate_limit": ("limits", "rate_limit"),
    "throughput": ("limits", "throughput"),
    "pair_interval": ("limits", "pair_interval"),
    "limit_answer": ("limits", "answer"),
    "not_on_whatsapp": ("callbacks", "not_on_whatsapp"),
    "opted_out": ("callbacks", "opted_out"),
    "spam_threshold": ("callbacks", "spam_threshold"),
    "marketing_window": ("callbacks", "marketing_window"),
    "prices": ("callbacks", "prices"),
}
_TYPES = {"network": NetworkSettings, "faults": FaultSettings, "limits": LimitSettings}


def settle(
    network: NetworkSettings | None,
    faults: FaultSettings | Mapping[str, float] | None,
    limits: LimitSettings | None,
    shortcuts: Mapping[str, Any],
) -> tuple[NetworkSettings, FaultSettings, LimitSettings]:
    """The three settings objects from ``Emulator``'s keywords: the grouped ones, with the
    one-by-one keywords (:data:`SHORTCUTS`) applied to the group they belong to.

    ``faults`` may be a :class:`FaultSettings` or a mapping of probabilities (then
    ``retry_after=`` and ``late_delay=`` complete it).

    Raises:
        TypeError: an unknown keyword; a setting given both in its group's object and on
            its own; ``network`` or ``limits`` given as something other than its type.
        ValueError: a value its settings type refuses.
    """
    unknown = sorted(set(shortcuts) - set(SHORTCUTS))
    if unknown:
        raise TypeError(f"Emulator() got an unexpected keyword argument {unknown[0]!r}")
    given: dict[str, Any] = {"network": network, "faults": faults, "limits": limits}
    for group, kind in _TYPES.items():
        value = given[group]
        if value is not None and not isinstance(value, kind) and group != "faults":
            raise TypeError(f"{group}= takes a {kind.__name__}, not {type(value).__name__}")
    changes: dict[str, dict[str, Any]] = {group: {} for group in _TYPES}
    for name, value in shortcuts.items():
        group, setting = SHORTCUTS[name]
        if group not in _TYPES:
            continue  # settle_callbacks'
        if isinstance(given[group], _TYPES[group]):
            type_name = _TYPES[group].__name__
            raise TypeError(
                f"{name}= and {group}= both given: set {setting} in one place, "
                f"{group}={type_name}(..., {setting}=...) or {name}=... alone"
            )
        changes[group][setting] = value
    if faults is not None and not isinstance(faults, FaultSettings):
        changes["faults"]["probabilities"] = faults  # FaultSettings checks it is a mapping
    built = {
        group: given[group] if isinstance(given[group], kind) else kind(**changes[group])
        for group, kind in _TYPES.items()
    }
    return built["network"], built["faults"], built["limits"]


def settle_callbacks(
    callbacks: CallbackSettings | Mapping[str, Any] | bool | None, shortcuts: Mapping[str, Any]
) -> CallbackSettings | None:
    """The callback settings from ``Emulator(callbacks=...)`` and the one-by-one keywords
    that set a field of them (``not_on_whatsapp=``...); None: no status callbacks.

    Raises:
        TypeError: a setting given both in ``callbacks`` and on its own, or one given on
            its own with ``callbacks=False`` (nothing would play it).
        ValueError: a value :class:`CallbackSettings` refuses.
    """
    changes = {
        setting: shortcuts[name]
        for name, (group, setting) in SHORTCUTS.items()
        if group == "callbacks" and name in shortcuts
    }
    if not changes:
        return CallbackSettings.coerce(callbacks)
    name = next(iter(changes))
    if callbacks is None or callbacks is False:
        raise TypeError(
            f"{name}= is played in the status callbacks, and callbacks=False turns them off: "
            "drop one of the two"
        )
    if isinstance(callbacks, CallbackSettings):
        raise TypeError(
            f"{name}= and callbacks= both given: set {name} in one place, "
            f"callbacks=CallbackSettings(..., {name}=...) or {name}=... alone"
        )
    given = dict(callbacks) if isinstance(callbacks, Mapping) else {}
    twice = sorted(set(map(str, given)) & set(changes))
    if twice:
        raise TypeError(
            f"{twice[0]}= and callbacks={{'{twice[0]}': ...}} both given: set it in one place"
        )
    return CallbackSettings.coerce({**given, **changes})


def settle_versions(
    versions: VersionSettings | Mapping[str, str] | None,
    v2_numbers: Iterable[str],
    v2_answer: str | None,
) -> VersionSettings:
    """The version settings from ``Emulator(versions=..., v2_numbers=..., v2_answer=...)``:
    ``v2_numbers`` adds ``{number: "v2"}`` to a mapping, ``v2_answer`` sets ``answer``.

    Raises:
        TypeError: ``v2_numbers`` or ``v2_answer`` with a :class:`VersionSettings`
            (set them in it), or ``v2_numbers`` given as one string.
        ValueError: a value :class:`VersionSettings` refuses.
    """
    if isinstance(v2_numbers, str):
        raise TypeError("v2_numbers= takes a list of numbers, e.g. ['+911234567890']")
    numbers = list(v2_numbers)
    if isinstance(versions, VersionSettings):
        if numbers or v2_answer is not None:
            raise TypeError(
                "v2_numbers=/v2_answer= and versions=VersionSettings(...) both given: set "
                "them in one place"
            )
        return versions
    given = dict(versions or {})
    given.update(dict.fromkeys(numbers, "v2"))
    return VersionSettings(given, answer=v2_answer or "whatsapp")
