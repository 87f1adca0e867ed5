"""Credentials and settings: from arguments first, else from the environment.

The library never reads the environment behind the caller's back: only
:func:`credentials_from_env` (used by ``KaleyraClient.from_env()`` and the CLI) does.
The API key is kept in a :class:`Secret`, whose repr and str never show it.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = [
    "API_VERSIONS",
    "CALLBACK_PATH",
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "ENV_API_KEY",
    "ENV_API_VERSION",
    "ENV_BASE_URL",
    "ENV_FROM",
    "ENV_SID",
    "ENV_STORE",
    "ENV_TOKEN",
    "NO_SENDER_FIX",
    "REGIONAL_BASE_URLS",
    "Credentials",
    "Secret",
    "check_api_version",
    "credentials_from_env",
    "is_loopback_url",
    "normalize_base_url",
    "other_api_version",
]

DEFAULT_BASE_URL = "https://api.kaleyra.io"
#: Kaleyra's regional API hosts; ``base_url`` also accepts these short names.
REGIONAL_BASE_URLS = {
    "sg": "https://api.kaleyra.io",
    "in": "https://api.in.kaleyra.io",
    "eu": "https://api.eu.kaleyra.io",
    "na": "https://api.na.kaleyra.ai",
}

ENV_SID = "KALEYRA_SID"
ENV_API_KEY = "KALEYRA_API_KEY"
ENV_FROM = "KALEYRA_FROM"
ENV_BASE_URL = "KALEYRA_BASE_URL"
ENV_API_VERSION = "KALEYRA_API_VERSION"
#: Kaleyra's WhatsApp APIs: a business number belongs to one of them (a call through the
#: other is answered ``WA-401``). v1 posts a form to ``/v1/<SID>/messages``; v2 posts
#: WhatsApp's message object to ``/v2/<SID>/whatsapp/<sender>/messages``.
API_VERSIONS = ("v1", "v2")
DEFAULT_API_VERSION = "v1"
#: Where a sender may come from, said to whoever gave none (the sender rule itself is
#: :mod:`kwa_batch.validation.sender`).
NO_SENDER_FIX = f"fill the 'from' column, pass sender= (--from), or set {ENV_FROM}"
#: The receiver's store and token, for ``kwa-batch receive`` and a WSGI server's config.
ENV_STORE = "KWA_RECEIVER_STORE"
ENV_TOKEN = "KWA_RECEIVER_TOKEN"
#: The path on a receiver that Kaleyra's callbacks go to.
CALLBACK_PATH = "/kaleyra/callback"  # as the sample data and the docs write it


class Secret:
    """A string that never shows itself in reprs, logs or exception messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def check_api_version(value: object, *, given_as: str = "api_version") -> str:
    """``value`` as one of :data:`API_VERSIONS` (case and spaces forgiven).

    Raises:
        ConfigurationError: any other value, in one line naming it and the choices.

    >>> check_api_version(" V2 ")
    'v2'
    """
    text = str(value).strip().lower()
    if text not in API_VERSIONS:
        raise ConfigurationError(
            f"{given_as} {str(value)!r} is not a Kaleyra API version: give "
            f"{' or '.join(API_VERSIONS)} (the one the sending number is on)"
        )
    return text


def other_api_version(version: str) -> str:
    """The API version that is not ``version`` (a number on it is answered ``WA-401``).

    >>> other_api_version("v1")
    'v2'
    """
    return API_VERSIONS[1 - API_VERSIONS.index(check_api_version(version))]


def normalize_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash, or the URL of a region name.

    The key travels in every request, so plain ``http`` is accepted only for a loopback
    host (``127.0.0.0/8``, ``::1``, ``localhost``: the emulator, a local proxy).

    Raises:
        ConfigurationError: not an http(s) URL, or plain ``http`` to another host.

    >>> normalize_base_url("in")
    'https://api.in.kaleyra.io'
    >>> normalize_base_url("http://127.0.0.1:8080/")
    'http://127.0.0.1:8080'
    """
    value = base_url.strip()
    if value.lower() in REGIONAL_BASE_URLS:
        return REGIONAL_BASE_URLS[value.lower()]
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    try:
        parts.port  # noqa: B018  (raises ValueError for a port that is not one)
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https") or not parts.netloc:
        regions = ", ".join(REGIONAL_BASE_URLS)
        raise ConfigurationError(
            f"base URL {value!r} is not an http(s) URL: use e.g. {DEFAULT_BASE_URL} "
            f"or a region name ({regions})"
        )
    if scheme == "http" and not is_loopback_url(value):
        secure = "https" + value[len(parts.scheme) :]
        raise ConfigurationError(
            f"base URL {_masked(value)!r} is plain http: the API key would travel "
            f"unencrypted. Use {_masked(secure).rstrip('/')!r} (plain http is "
            "accepted only for a loopback host: 127.0.0.1, ::1, localhost)"
        )
    return value.rstrip("/")


@functools.lru_cache(maxsize=1024)
def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is a loopback address or ``localhost`` (where a
    plain-http base URL is allowed, and the only place the emulator posts callbacks).

    The host is read by two parsers, the standard library's and urllib3's (the one that
    dials): both must find a loopback host, so that a URL they read differently (such as
    ``http://example.com\\@127.0.0.1/``) is refused.

    >>> is_loopback_url("http://127.0.0.1:8765/cb"), is_loopback_url("https://example.com/")
    (True, False)
    """
    from urllib3.util import parse_url  # here: the command line starts without urllib3

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
        dialled = parse_url(url)
    except ValueError:  # urllib3's LocationParseError is a ValueError too
        return False
    if parts.scheme.lower() not in ("http", "https") or dialled.scheme not in ("http", "https"):
        return False
    return _loopback_host(parts.hostname) and _loopback_host(dialled.host)


def _loopback_host(host: str | None) -> bool:
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _masked(url: str) -> str:
    """``url`` with the password of ``user:password@`` masked (a message must not show it)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}").geturl()


@dataclass(frozen=True, repr=False)
class Credentials:
    """What is needed to talk to Kaleyra: account SID, API key, default sender, base URL,
    and the API version the sending number is on."""

    sid: str
    api_key: Secret
    sender: str | None = None
    base_url: str = DEFAULT_BASE_URL
    api_version: str = DEFAULT_API_VERSION

    def __repr__(self) -> str:
        return (
            f"Credentials(sid={self.sid!r}, api_key=<hidden>, sender={self.sender!r}, "
            f"base_url={self.base_url!r}, api_version={self.api_version!r})"
        )


def api_version_from_env(
    api_version: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """The API version given, else ``KALEYRA_API_VERSION``, else ``v1``.

    Raises:
        ConfigurationError: a value that is not ``v1`` or ``v2`` (naming where it came from).

    >>> api_version_from_env(environ={"KALEYRA_API_VERSION": "v2"})
    'v2'
    """
    env = os.environ if environ is None else environ
    if api_version:
        return check_api_version(api_version)
    if env.get(ENV_API_VERSION, "").strip():
        return check_api_version(env[ENV_API_VERSION], given_as=ENV_API_VERSION)
    return DEFAULT_API_VERSION


def credentials_from_env(
    *,
    sid: str | None = None,
    api_key: str | None = None,
    sender: str | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Build :class:`Credentials` from the arguments, falling back to ``KALEYRA_*`` variables
    (``KALEYRA_API_VERSION``: ``v1``, the default, or ``v2``).

    Raises:
        ConfigurationError: the SID or the key is missing, the base URL is not a URL, or the
            API version is not one.
    """
    env = os.environ if environ is None else environ
    version = api_version_from_env(api_version, environ=env)
    sid = sid or env.get(ENV_SID) or None
    key = api_key or env.get(ENV_API_KEY) or None
    missing = [name for name, value in ((ENV_SID, sid), (ENV_API_KEY, key)) if not value]
    if missing:
        raise ConfigurationError(
            f"missing {' and '.join(missing)}: set the environment variable(s), "
            "pass --sid/--api-key, or use --emulator to try things locally"
        )
    assert sid is not None
    assert key is not None
    return Credentials(
        sid=sid.strip(),
        api_key=Secret(key.strip()),
        sender=(sender or env.get(ENV_FROM) or None),
        base_url=normalize_base_url(base_url or env.get(ENV_BASE_URL) or DEFAULT_BASE_URL),
        api_version=version,
    )
