"""The emulator's settings as objects: each keyword of old onto its object, conflicts refused,
values checked with their name, and the command line building the same objects."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kwa_batch.emulator.behaviour import (
    DEFAULT_PRICES,
    CallbackSettings,
    FaultSettings,
    LimitSettings,
    NetworkSettings,
)
from kwa_batch.emulator.keywords import SHORTCUTS
from kwa_batch.emulator.server import Emulator

SENDER = "+911234567890"
VALID = {"to": "+919876543210", "from": SENDER, "type": "text", "channel": "whatsapp", "body": "Hi"}

# A value for each one-by-one keyword, other than its default.
SHORTCUT_VALUES: dict[str, Any] = {
    "latency": 0.25,
    "jitter": 0.125,
    "read_timeout": 3.0,
    "max_connections": 7,
    "retry_after": 2.5,
    "late_delay": 0.75,
    "rate_limit": 40.0,
    "throughput": 20.0,
    "pair_interval": 6.0,
    "limit_answer": "api",
    "not_on_whatsapp": 0.05,
    "opted_out": frozenset({"919876543210"}),
    "spam_threshold": 0.3,
    "marketing_window": 60.0,
    "prices": {**DEFAULT_PRICES, "marketing": 0.05},
}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def settings_of(emu: Emulator, group: str) -> Any:
    return {
        "network": emu.network,
        "faults": emu.fault_settings,
        "limits": emu.limit_settings,
        "callbacks": emu.callbacks,
    }[group]


def test_every_shortcut_has_a_value_here() -> None:
    assert set(SHORTCUT_VALUES) == set(SHORTCUTS)


@pytest.mark.parametrize("name", sorted(SHORTCUTS))
def test_each_keyword_of_old_sets_its_field(name: str) -> None:
    group, field = SHORTCUTS[name]
    emu = Emulator(**{name: SHORTCUT_VALUES[name]})
    assert getattr(settings_of(emu, group), field) == SHORTCUT_VALUES[name]


@pytest.mark.parametrize("name", sorted(SHORTCUTS))
def test_a_setting_given_twice_is_refused_naming_both(name: str) -> None:
    group, field = SHORTCUTS[name]
    objects = {
        "network": NetworkSettings(),
        "faults": FaultSettings(),
        "limits": LimitSettings(),
        "callbacks": CallbackSettings(),
    }
    with pytest.raises(TypeError, match=re.escape(f"{name}= and {group}= both given")) as info:
        Emulator(**{group: objects[group], name: SHORTCUT_VALUES[name]})
    assert field in str(info.value)


def test_the_grouped_objects_are_the_settings_in_force() -> None:
    network = NetworkSettings(latency=0.01, jitter=0.02, read_timeout=4, max_connections=9)
    faults = FaultSettings({"503": 0.5}, retry_after=3, late_delay=0.5)
    limits = LimitSettings(rate_limit=50, throughput=10, pair_interval=2, answer="api")
    emu = Emulator(network=network, faults=faults, limits=limits, callbacks=False)
    assert (emu.network, emu.fault_settings, emu.limit_settings) == (network, faults, limits)
    assert (emu.latency, emu.jitter, emu.rate_limit, emu.retry_after) == (0.01, 0.02, 50.0, 3.0)
    assert emu.faults == {"503": 0.5}
    assert emu.callbacks is None


def test_a_fault_settings_object_is_served(http: requests.Session) -> None:
    with Emulator(faults=FaultSettings({"429": 1.0}, retry_after=2.5), api_key="k") as emu:
        answer = http.post(emu.messages_url, data=VALID, headers={"api-key": "k"}, timeout=10)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2.5"
    assert emu.message_count == 0


def test_a_limit_settings_object_is_enforced(http: requests.Session) -> None:
    limits = LimitSettings(throughput=1, answer="api")
    with Emulator(limits=limits, api_key="k", callbacks=False) as emu:
        first = http.post(emu.messages_url, data=VALID, headers={"api-key": "k"}, timeout=10)
        again = http.post(emu.messages_url, data=VALID, headers={"api-key": "k"}, timeout=10)
    assert (first.status_code, again.status_code) == (200, 429)
    assert again.json()["code"] == "130429"


def test_a_probabilities_mapping_takes_retry_after_and_late_delay_beside_it() -> None:
    emu = Emulator(faults={"429": 0.5}, retry_after=2, late_delay=0.5)
    assert emu.fault_settings == FaultSettings({"429": 0.5}, retry_after=2.0, late_delay=0.5)


def test_the_common_forms_stay_simple() -> None:
    assert Emulator().network == NetworkSettings()
    assert Emulator(latency=0.2).network == NetworkSettings(latency=0.2)
    assert Emulator().limit_settings == LimitSettings()
    assert Emulator().callbacks == CallbackSettings()


def test_an_unknown_keyword_is_refused_like_python_does() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'latncy'"):
        Emulator(latncy=0.2)  # type: ignore[call-arg]


def test_a_group_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="network= takes a NetworkSettings, not float"):
        Emulator(network=0.2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limits= takes a LimitSettings, not dict"):
        Emulator(limits={"rate_limit": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: NetworkSettings(latency=-1), "latency must be zero or more seconds, not -1"),
        (lambda: NetworkSettings(jitter=math.inf), "jitter must be zero or more seconds"),
        (lambda: NetworkSettings(read_timeout=0), "read_timeout must be a number of seconds"),
        (lambda: NetworkSettings(max_connections=0), "max_connections must be 1 or more"),
        (lambda: NetworkSettings(latency="slow"), "latency must be zero or more seconds"),  # type: ignore[arg-type]
        (lambda: FaultSettings({"404": 0.1}), "unknown fault '404'"),
        (lambda: FaultSettings({"429": 2}), "from 0 to 1"),
        (lambda: FaultSettings(retry_after=-1), "retry_after must be zero or more seconds"),
        (lambda: FaultSettings(late_delay=math.nan), "late_delay must be zero or more seconds"),
        (lambda: LimitSettings(rate_limit=0), "rate_limit must be more than 0 messages"),
        (lambda: LimitSettings(throughput=0.5), "throughput must be at least 1 message"),
        (lambda: LimitSettings(pair_interval=-6), "pair_interval must be more than 0 seconds"),
        (lambda: LimitSettings(answer="webhook"), "(limit_answer) must be one of callback, api"),
    ],
)
def test_bad_values_are_refused_with_their_name(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_settings_are_frozen_and_numbers_normalised() -> None:
    network = NetworkSettings(latency=1, read_timeout=5)
    assert isinstance(network.latency, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        network.latency = 2.0  # type: ignore[misc]
    assert LimitSettings(rate_limit=10).rate_limit == 10.0


def test_latency_changes_while_serving_and_is_checked() -> None:
    emu = Emulator(latency=0.1, jitter=0.05)
    emu.latency = 0.5
    assert emu.network == NetworkSettings(latency=0.5, jitter=0.05)
    with pytest.raises(ValueError, match="latency"):
        emu.latency = -1
    emu.late_delay = 0.4
    emu.rate_limit = 5
    assert (emu.fault_settings.late_delay, emu.limit_settings.rate_limit) == (0.4, 5.0)
    with pytest.raises(ValueError, match="rate_limit"):
        emu.rate_limit = 0


def test_the_command_line_builds_the_same_objects() -> None:
    from kwa_batch.cli.servers import _emulator

    emu = _emulator(
        host="127.0.0.1",
        port=0,
        sid=None,
        api_key=None,
        latency=200.0,
        jitter=50.0,
        fault_specs=("429=0.25",),
        retry_after=2.0,
        late_delay=3.0,
        rate=40.0,
        seed=7,
        callback_specs=("read=0.5", "method=POST"),
    )
    assert emu.network == NetworkSettings(latency=0.2, jitter=0.05)
    assert emu.fault_settings == FaultSettings({"429": 0.25}, retry_after=2.0, late_delay=3.0)
    assert emu.limit_settings == LimitSettings(rate_limit=40.0)
    assert emu.callbacks == CallbackSettings(read=0.5, method="POST")
