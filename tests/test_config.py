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
