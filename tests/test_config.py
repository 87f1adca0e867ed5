"""Credentials: arguments first, then KALEYRA_* variables; the key never shows."""

from __future__ import annotations

import pickle

import pytest

from kwa_batch import ConfigurationError, KaleyraClient
from kwa_batch.config import Secret, credentials_from_env, normalize_base_url

KEY = "Ac4c0ffee0123456789abcdef21f"


def test_environment_is_read_and_arguments_win() -> None:
    env = {
        "KALEYRA_SID": "HXAP1",
        "KALEYRA_API_KEY": KEY,
        "KALEYRA_FROM": "+911234567890",
        "KALEYRA_BASE_URL": "eu",
    }
    creds = credentials_from_env(environ=env)
    assert creds.sid == "HXAP1"
    assert creds.api_key.reveal() == KEY
    assert creds.base_url == "https://api.eu.kaleyra.io"
    assert credentials_from_env(sid="OTHER", environ=env).sid == "OTHER"
    assert KEY not in repr(creds)


@pytest.mark.parametrize(
    ("env", "missing"),
    [({}, "KALEYRA_SID and KALEYRA_API_KEY"), ({"KALEYRA_SID": "HX"}, "KALEYRA_API_KEY")],
)
def test_missing_credentials_say_what_to_set(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigurationError, match=f"missing {missing}"):
        credentials_from_env(environ=env)


@pytest.mark.parametrize("url", ["ftp://x", "api.kaleyra.io", ""])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        normalize_base_url(url)


def test_secret_never_shows_itself() -> None:
    secret = Secret(KEY)
    assert KEY not in repr(secret)
    assert KEY not in str(secret)
    assert KEY not in f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_client_from_env_and_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALEYRA_SID", "HXAP1")
    monkeypatch.setenv("KALEYRA_API_KEY", KEY)
    monkeypatch.setenv("KALEYRA_BASE_URL", "http://127.0.0.1:9/")
    client = KaleyraClient.from_env(timeout=3)
    assert client.messages_url == "http://127.0.0.1:9/v1/HXAP1/messages"
    assert KEY not in repr(client)
    assert client.timeout == 3
    assert KEY not in repr(vars(client))


@pytest.mark.parametrize(
    "url",
    [
        "http://api.kaleyra.io",
        "HTTP://api.in.kaleyra.io/",
        "http://0.0.0.0:8080",
        "http://10.0.0.5",
        "http://localhost.example.com",
        "http://127.0.0.1@api.kaleyra.io",  # the host is api.kaleyra.io
        "http://api.kaleyra.io\\@127.0.0.1/",  # two parsers read two hosts
        "http://[::ffff:127.0.0.1]",
        "http://127.1",
    ],
)
def test_plain_http_is_refused_unless_the_host_is_loopback(url: str) -> None:
    with pytest.raises(ConfigurationError, match="plain http: the API key would travel"):
        normalize_base_url(url)
    with pytest.raises(ConfigurationError, match="Use 'https://"):
        KaleyraClient("HX", KEY, base_url=url)
    env = {"KALEYRA_SID": "HX", "KALEYRA_API_KEY": KEY, "KALEYRA_BASE_URL": url}
    with pytest.raises(ConfigurationError) as raised:
        credentials_from_env(environ=env)
    assert KEY not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost",
        "http://LOCALHOST:1",
        "http://[::1]:8080",
        "https://api.kaleyra.io",
        "https://10.0.0.5",
    ],
)
def test_plain_http_to_a_loopback_host_and_https_are_accepted(url: str) -> None:
    assert normalize_base_url(url + "/") == url


def test_the_refusal_masks_a_password_in_the_url() -> None:
    with pytest.raises(ConfigurationError) as raised:
        normalize_base_url("http://me:pa55word@api.kaleyra.io")
    assert "pa55word" not in str(raised.value)
    assert "https://me:***@api.kaleyra.io" in str(raised.value)


def test_a_port_that_is_not_one_is_not_a_url() -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        normalize_base_url("http://127.0.0.1:99999")
