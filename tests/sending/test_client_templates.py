"""KaleyraClient.templates: the v2 template list, every page, from the emulator and from
small real servers that answer what the emulator never would."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
from conftest import ROOT

from kwa_batch import AuthenticationError, ConnectError, InvalidResponseError, KaleyraClient
from kwa_batch._http.serving import BackgroundServer
from kwa_batch.catalogue import load_templates
from kwa_batch.emulator.server import Emulator
from kwa_batch.errors import ConfigurationError

SAMPLE_JSON = json.loads((ROOT / "sample_data" / "templates.json").read_text(encoding="utf-8"))
CATALOGUE = load_templates(SAMPLE_JSON)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    # WhatsApp's JSON as the emulator serves it: a carousel and the buttons' order intact (a
    # catalogue frame, rebuilt into JSON by the emulator, keeps neither).
    with Emulator(templates=SAMPLE_JSON) as running:
        yield running


@pytest.mark.parametrize("paging", ["both", "next", "cursors"])
@pytest.mark.parametrize("limit", [None, 1, 2, 5, 1000])
def test_every_page_is_fetched(emu: Emulator, paging: str, limit: int | None) -> None:
    assert emu.templates is not None
    emu.templates.paging = paging
    try:
        with emu.client() as client:
            got = client.templates("102290129340398", limit=limit)
    finally:
        emu.templates.paging = "both"
    pd.testing.assert_frame_equal(got, CATALOGUE)


def test_a_wrong_key_is_an_authentication_error_without_the_key(emu: Emulator) -> None:
    client = KaleyraClient(emu.sid, "wrong-key-123", base_url=emu.url)
    with pytest.raises(AuthenticationError) as info:
        client.templates("1")
    assert info.value.http_status == 401
    assert "wrong-key-123" not in str(info.value) + repr(info.value) + info.value.raw


def test_an_empty_waba_id(emu: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="Business Account id is empty"):
        emu.client().templates("  ")


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = KaleyraClient("HX1", "key", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectError):
        client.templates("1")


Handler = Callable[[dict[str, Any]], tuple[int, str]]


@contextmanager
def serving(handler: Handler) -> Iterator[tuple[BackgroundServer, list[dict[str, Any]]]]:
    """A real HTTP server answering ``handler(environ)``; yields it and the requests seen."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append({"path": environ["PATH_INFO"], "query": environ.get("QUERY_STRING", ""),
                     "key": environ.get("HTTP_API_KEY")})  # fmt: skip
        status, body = handler(environ)
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [body.encode()]

    server = BackgroundServer(app, host="127.0.0.1", port=0, name="test-templates")
    server.start()
    try:
        yield server, seen
    finally:
        server.stop()


def page(names: list[str], **paging: Any) -> str:
    data = [{"name": n, "language": "en", "status": "APPROVED",
             "components": [{"type": "BODY", "text": "Hi"}]} for n in names]  # fmt: skip
    return json.dumps({"data": data, "paging": paging})


def test_a_next_link_to_another_host_is_not_followed() -> None:
    with serving(lambda env: (200, page(["a"], next="http://elsewhere.example/v2/x?after=1"))) as (
        server,
        seen,
    ):
        client = KaleyraClient("HX1", "secret-key-9", base_url=server.url)
        with pytest.raises(InvalidResponseError, match="another host") as info:
            client.templates("1")
    assert len(seen) == 1
    assert "secret-key-9" not in str(info.value)


def test_a_cursor_that_repeats_ends_the_list() -> None:
    def handler(env: dict[str, Any]) -> tuple[int, str]:
        return 200, page(["a"] if "after" not in env["QUERY_STRING"] else ["b"],
                         cursors={"after": "SAME"})  # fmt: skip

    with serving(handler) as (server, seen):
        got = KaleyraClient("HX1", "k", base_url=server.url).templates("77", limit=1)
    assert got["template_name"].tolist() == ["a", "b"]
    assert [s["query"] for s in seen] == ["limit=1", "limit=1&after=SAME"]
    assert all(s["path"] == "/v2/HX1/whatsapp/77/message_templates" for s in seen)
    assert {s["key"] for s in seen} == {"k"}


def test_an_empty_page_ends_the_list_even_with_a_cursor() -> None:
    def handler(env: dict[str, Any]) -> tuple[int, str]:
        first = "after" not in env["QUERY_STRING"]
        return 200, page(["a"] if first else [], cursors={"after": "c1" if first else "c2"})

    with serving(handler) as (server, seen):
        got = KaleyraClient("HX1", "k", base_url=server.url).templates("1")
    assert got["template_name"].tolist() == ["a"]
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (200, "<html>oops</html>", InvalidResponseError, "not a JSON object"),
        (200, '{"templates": []}', InvalidResponseError, "no 'data' list"),
        (403, '{"code": "E403", "message": "forbidden"}', AuthenticationError, "forbidden"),
    ],
)
def test_answers_that_are_not_a_template_list(
    status: int, body: str, error: type[Exception], match: str
) -> None:
    with serving(lambda env: (status, body)) as (server, _), pytest.raises(error, match=match):
        KaleyraClient("HX1", "k", base_url=server.url).templates("1")


def test_the_key_is_not_logged(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu.client().templates("1", limit=3)
    assert emu.api_key not in caplog.text
