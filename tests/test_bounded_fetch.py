"""The template list fetched within bounds (kwa_batch._http.bounded.BoundedSession): one overall
deadline over every page whatever the server drips, a size cap, a JSON depth; against real
servers on 127.0.0.1 that answer as no API should (tests/hostile_servers.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from hostile_servers import LIST, drip, endless_pages, response, serving, whole

from kwa_batch import KaleyraClient
from kwa_batch._http.bounded import BoundedSession, json_depth
from kwa_batch.errors import AmbiguousSendError, InputError, InvalidResponseError


def bounded(**kwargs: float) -> Callable[[], BoundedSession]:
    return lambda: BoundedSession(**kwargs)  # type: ignore[arg-type]


def fetch(url: str, **kwargs: float) -> object:
    with KaleyraClient("HX1", "key", base_url=url, session_factory=bounded(**kwargs)) as client:
        return client.templates("1")


@pytest.mark.parametrize(
    "at_once",
    [0, len(response(LIST)) - len(LIST)],  # from the status line; the headers, then the body
    ids=["status-line", "body"],
)
def test_a_slow_drip_is_given_up_at_the_overall_deadline(at_once: int) -> None:
    dripped: list[str] = []
    with serving(drip(LIST, at_once=at_once, every=0.5, log=dripped)) as url:
        started = time.monotonic()
        with pytest.raises(AmbiguousSendError, match=r"overall deadline of 1\.5 s") as info:
            fetch(url, deadline=1.5)
        took = time.monotonic() - started
        seen = list(dripped)  # the server's side, the moment the client gave up
    assert info.value.code == "TIMEOUT"
    assert took > 1.4, took  # a lower bound: not before the deadline
    # The client cut the drip short (about a minute long) while the server was still
    # dripping: not at its end, and not because the server itself stopped.
    assert {"whole", "stopped"}.isdisjoint(seen), seen
    assert seen.count("byte") < len(response(LIST)) - at_once


def test_the_deadline_covers_every_page_not_each() -> None:
    served: list[int] = []
    ended: list[str] = []
    with serving(endless_pages(0.2, served), ended=ended) as url:
        with pytest.raises(AmbiguousSendError, match="overall deadline"):
            fetch(url, deadline=1.5)
        gave_up = list(ended)
    assert len(served) >= 3  # each page came quickly: only the whole list was too slow
    # The client gave up on the list, not the server on the client: a deadline per page
    # would read on (1000 pages, the client's guard, x 0.2 s) until the server's lifetime.
    assert gave_up == [], gave_up


def test_an_answer_in_time_is_read_whole() -> None:
    with serving(whole(LIST)) as url:
        catalogue = fetch(url, deadline=10)
    assert catalogue["template_name"].tolist() == ["hi"]  # type: ignore[index]


@pytest.mark.parametrize(
    "body", [b"[" * 200_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000], ids=["[", "{"]
)
def test_deep_json_is_refused_in_one_line(body: bytes) -> None:
    with serving(whole(body)) as url, pytest.raises(InvalidResponseError) as info:
        fetch(url)
    assert "levels deep" in str(info.value)
    assert "\n" not in str(info.value)


def test_an_answer_over_the_cap_is_refused() -> None:
    big = b'{"data": [], "x": "' + b"a" * (2 * 2**20) + b'"}'
    with serving(whole(big)) as url, pytest.raises(InvalidResponseError, match="over 1 MiB"):
        fetch(url, max_bytes=2**20)


def test_the_pages_together_are_capped() -> None:
    served: list[int] = []
    with (
        serving(endless_pages(0, served)) as url,
        pytest.raises(InvalidResponseError, match="in all"),
    ):
        fetch(url, max_total_bytes=2000)
    assert len(served) < 20


def test_values_of_the_wrong_type_from_the_api() -> None:
    body = json.dumps(
        {"data": [{"name": ["hi"], "language": "en", "status": "APPROVED", "components": []}]}
    ).encode()
    with serving(whole(body)) as url, pytest.raises(InputError, match="'name' is a list"):
        fetch(url)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("", 0),
        ("3", 0),
        ('"[[[["', 0),
        ('{"a": "\\"[", "b": [[]]}', 3),
        ("[" * 70, 70),
        ('[{"a": [1, {"b": "}}}"}]}]', 4),
    ],
)
def test_json_depth(text: str, depth: int) -> None:
    assert json_depth(text) == depth
    assert json_depth(text.encode("utf-16")) == depth


def test_json_depth_is_linear() -> None:
    """Eight times the text costs about eight times as much (a quadratic reading: 64 times).

    Nothing structural counts the work of a regular expression and numpy, so the bound is
    relative: the large text against the small one, in this thread's CPU time (what other
    processes on the machine do is not counted), the best of three interleaved tries each,
    with a margin of three over linear."""

    def text(items: int) -> str:
        item = '{"name": "x[{", "text": "' + "a" * 50 + '"}'
        return '{"data": [' + ",".join([item] * items) + "]}"

    small, large = text(40_000), text(320_000)
    costs: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(3):
        for name, document in (("small", small), ("large", large)):
            started = time.thread_time()
            assert json_depth(document) == 3
            costs[name].append(time.thread_time() - started)
    ratio = min(costs["large"]) / max(min(costs["small"]), 1e-6)
    assert ratio < 3 * 8, costs


def test_the_librarys_own_fetch_is_bounded_too() -> None:
    """client.templates() on a plain client (no session_factory): once it waited as long as
    the drip lasted, and a nested answer raised RecursionError."""
    dripped: list[str] = []
    with serving(drip(LIST, at_once=0, every=0.5, log=dripped)) as url:
        with (
            KaleyraClient("HX1", "key", base_url=url) as client,
            pytest.raises(AmbiguousSendError, match=r"overall deadline of 1\.5 s"),
        ):
            client.templates("1", deadline=1.5)
        seen = list(dripped)  # cut short by the client, mid-drip (see the test above)
    assert {"whole", "stopped"}.isdisjoint(seen), seen
    with (
        serving(whole(b"[" * 200_000)) as url,
        KaleyraClient("HX1", "key", base_url=url) as client,
        pytest.raises(InvalidResponseError),
    ):
        client.templates("1")
