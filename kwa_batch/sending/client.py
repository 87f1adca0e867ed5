"""``KaleyraClient``: one WhatsApp request to Kaleyra's messages endpoint (v1 or v2), answered
tolerantly.

Kaleyra has two WhatsApp APIs and a business number belongs to one of them (see
``kaleyra-facts.md``). v1 (the default) posts a form to ``/v1/<SID>/messages``, to up to 100
comma-joined recipients; v2 posts JSON, ``{"messaging_object": <WhatsApp's message object>,
"extra_info": {refs}}`` (built by :mod:`kwa_batch.message_objects`), to
``/v2/<SID>/whatsapp/<sender digits>/messages``, one recipient per request. Both take the
same prepared fields (:meth:`KaleyraClient.build_fields`), so the run does not care which.

The client sends exactly one HTTP request per call and never retries on its own: whether a
failed request may be sent again is the sender's decision (see :mod:`kwa_batch.sending.run`),
because a POST that timed out may already have been processed. Each thread gets its own
pooled ``requests.Session`` (requests never promised that one Session is thread-safe).
Once a request's bytes are handed to the socket, the client says so
(:func:`kwa_batch.sending.limiter.written`): the rate limit counts a message from there.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from .._http.bounded import DEFAULT_DEADLINE, MAX_ANSWER_BYTES, BoundedSession
from ..config import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    NO_SENDER_FIX,
    Credentials,
    Secret,
    check_api_version,
    credentials_from_env,
    normalize_base_url,
)
from ..errors import (
    BAD_CREDENTIALS,
    OTHER_API_VERSION,
    AmbiguousSendError,
    ApiError,
    ApiVersionError,
    AuthenticationError,
    Code,
    ConfigurationError,
    ConnectError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
)
from ..fields import request_form
from ..message_objects import extra_info, messaging_object
from ..privacy import mask_phone
from .limiter import written

__all__ = ["KaleyraClient", "SendResult"]

log = logging.getLogger(__name__)

#: (connect, read) seconds. Connecting is quick or hopeless; an answer may take a while.
DEFAULT_TIMEOUT = (5.0, 30.0)
_RAW_LIMIT = 2000
_USER_AGENT = "kwa-batch/0.1 (+python-requests)"


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        written()  # the whole request is in the socket: the moment the rate limit counts


class _TLSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        written()


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter, whose connections say when a request was written."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


@dataclass(frozen=True)
class SendResult:
    """A successful answer from the messages endpoint.

    Attributes:
        request_id: the ``id`` Kaleyra gave the request.
        http_status: the HTTP status (200 or 202).
        message_ids: ``message_id`` for each recipient, keyed by the number as it was sent.
        created: the ``createdDateTime`` Kaleyra reported, as written.
        raw: the parsed JSON answer.
    """

    request_id: str | None
    http_status: int
    message_ids: dict[str, str]
    created: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def message_id_for(self, number: str) -> str | None:
        """Return the message id for ``number`` (with or without ``+``), or None if absent."""
        return self.message_ids.get(number) or self.message_ids.get(
            next((k for k in self.message_ids if _digits(k) == _digits(number)), "")
        )


class KaleyraClient:
    """Sends WhatsApp messages through Kaleyra's ``POST /v1/<SID>/messages`` (v1), or
    ``POST /v2/<SID>/whatsapp/<sender>/messages`` (v2).

    Args:
        sid: the account SID.
        api_key: the API key (kept secret: never shown in reprs, logs or errors).
        sender: the default ``from`` number (E.164), used when a message names none.
        base_url: the API host, e.g. ``https://api.in.kaleyra.io``, or a region name
            (``sg``, ``in``, ``eu``, ``na``).
        timeout: seconds, or a ``(connect, read)`` pair.
        pool_size: connections kept alive per thread.
        session_factory: builds the ``requests.Session`` for each thread (a seam for tests).
        api_version: ``"v1"`` (the default) or ``"v2"``: the API the sending numbers are on
            (a number on the other one is answered ``WA-401``, which stops a run). v2 sends
            one recipient per request.

    Raises:
        ConfigurationError: an empty SID or key, a base URL that is not one, an API version
            that is not ``v1`` or ``v2``.

    Example:
        >>> client = KaleyraClient("HXAP123", "secret-key", sender="+911234567890")
        >>> client
        KaleyraClient(sid='HXAP123', api_key=<hidden>, sender='+911234567890', base_url='https://api.kaleyra.io')
        >>> KaleyraClient("HXAP123", "k", sender="+911234567890", api_version="v2").messages_url
        'https://api.kaleyra.io/v2/HXAP123/whatsapp/911234567890/messages'
    """

    def __init__(
        self,
        sid: str,
        api_key: str | Secret,
        *,
        sender: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        pool_size: int = 4,
        session_factory: Any = None,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        if not sid or not str(sid).strip():
            raise ConfigurationError("the account SID is empty: pass sid= or set KALEYRA_SID")
        self._key = api_key if isinstance(api_key, Secret) else Secret(str(api_key))
        if not self._key:
            raise ConfigurationError("the API key is empty: pass api_key= or set KALEYRA_API_KEY")
        self.sid = str(sid).strip()
        self.sender = sender
        self.base_url = normalize_base_url(base_url)
        #: ``base_url`` as errors, reprs and the run's settings quote it: no userinfo.
        self.shown_url = shown_url(self.base_url)
        self.api_version = check_api_version(api_version)
        self.timeout = timeout
        self.pool_size = pool_size
        self._session_factory = session_factory
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Build a client from ``KALEYRA_SID``, ``KALEYRA_API_KEY``, ``KALEYRA_FROM``,
        ``KALEYRA_BASE_URL`` and ``KALEYRA_API_VERSION``; keyword arguments override them.

        Raises:
            ConfigurationError: the SID or the key is not set, or a value is unusable.
        """
        creds: Credentials = credentials_from_env(
            sid=overrides.pop("sid", None),
            api_key=overrides.pop("api_key", None),
            sender=overrides.pop("sender", None),
            base_url=overrides.pop("base_url", None),
            api_version=overrides.pop("api_version", None),
        )
        return cls(
            creds.sid,
            creds.api_key,
            sender=creds.sender,
            base_url=creds.base_url,
            api_version=creds.api_version,
            **overrides,
        )

    @property
    def groups_recipients(self) -> bool:
        """True when one request may carry several recipients (v1); v2 takes one."""
        return self.api_version == "v1"

    @property
    def messages_url(self) -> str:
        """The endpoint this client posts to (for v2, from the client's own sender; a
        sender not yet known is shown as ``<sender>``)."""
        return self.messages_url_for(self.sender)

    def messages_url_for(self, sender: str | None) -> str:
        """The endpoint a message from ``sender`` is posted to (v2 names it in the path)."""
        if self.api_version == "v1":
            return f"{self.base_url}/v1/{self.sid}/messages"
        number = _digits(sender) if sender else "<sender>"
        return f"{self.base_url}/v2/{self.sid}/whatsapp/{number}/messages"

    def __repr__(self) -> str:
        version = "" if self.api_version == DEFAULT_API_VERSION else ", api_version='v2'"
        return (
            f"KaleyraClient(sid={self.sid!r}, api_key=<hidden>, sender={self.sender!r}, "
            f"base_url={self.shown_url!r}{version})"
        )

    # -- sessions -----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._session_factory() if self._session_factory else requests.Session()
            # No retries inside urllib3: a retried POST could be sent twice.
            adapter = _Adapter(
                pool_connections=1,
                pool_maxsize=self.pool_size,
                max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
            if session.trust_env:
                # requests re-reads proxy and CA-bundle variables on every request (a scan of
                # os.environ each time); read them once for this session instead.
                settings = session.merge_environment_settings(
                    f"{self.base_url}/", {}, None, None, None
                )
                session.proxies.update(settings["proxies"])
                session.verify = settings["verify"]
                session.trust_env = False
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every pooled connection this client opened."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------

    def build_fields(
        self,
        to: str | Sequence[str],
        *,
        type: str = "text",
        body: str | None = None,
        template_name: str | None = None,
        params: str | Sequence[str] | None = None,
        lang_code: str | None = None,
        sender: str | None = None,
        ref: str | None = None,
        ref1: str | None = None,
        ref2: str | None = None,
        callback_url: str | None = None,
        channel: str = "whatsapp",
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Return the form fields of one request (without the key), as they will be sent.

        Raises:
            ConfigurationError: no sender was given here or on the client.
        """
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients:
            raise ValueError("no recipient given")
        from_number = sender or self.sender
        if not from_number:
            raise ConfigurationError(f"no sender number: {NO_SENDER_FIX}")
        if params is not None and not isinstance(params, str):
            params = _join_params(params)
        fields = {
            "type": type,
            "channel": channel,
            "from": from_number,
            "body": body,
            "template_name": template_name,
            "params": params,
            "lang_code": lang_code,
            "ref": ref,
            "ref1": ref1,
            "ref2": ref2,
            "callback_url": callback_url,
        }
        if extra:
            fields.update(extra)
        return request_form(recipients, fields, api_version=self.api_version)

    def send_message(
        self, to: str | Sequence[str], *, media_file: str | Path | None = None, **fields: Any
    ) -> SendResult:
        """Send one message to one or several recipients (at most 100; v2: one) in one
        request.

        Args:
            to: an E.164 number or a list of them.
            **fields: ``type``, ``body``, ``template_name``, ``params`` (a string or a list of
                values), ``lang_code``, ``sender``, ``ref``, ``ref1``, ``ref2``,
                ``callback_url``, ``channel``, ``extra`` (other API fields, e.g.
                ``{"media_url": ..., "caption": ...}`` for ``type="media"``).
            media_file: a local file sent as the ``media`` part of a multipart request
                (``type="media"`` or ``"mediatemplate"``), as production gateways do (v1
                only: v2 sends media by link).

        Returns:
            SendResult with a message id per recipient the API acknowledged.

        Raises:
            ApiError: the API refused the request (a subclass says why).
            ConnectError: nothing was sent (safe to retry).
            AmbiguousSendError: the request may have been processed (do not resend blindly).
        """
        data = self.build_fields(to, **fields)
        if media_file is not None and self.api_version != "v1":
            raise ConfigurationError(
                "media_file: Kaleyra's v2 API takes media by link: give media_url instead"
            )
        if media_file is None:
            return self.post(data)
        file = Path(media_file)
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"media_file {file}: {exc.strerror or exc}") from None
        return self.post(data, files={"media": (file.name, content)})

    def post(
        self, data: Mapping[str, str], *, files: Mapping[str, tuple[str, bytes]] | None = None
    ) -> SendResult:
        """Post prepared form fields (see :meth:`build_fields`), and file parts (multipart)
        when given, and parse the answer. A v2 client posts them as WhatsApp's message
        object (see :meth:`request_for`).

        Raises:
            ConfigurationError: a v2 request to several recipients, or with file parts.
        """
        recipients = [r for r in data.get("to", "").split(",") if r]
        url, body = self.request_for(data)
        if files and self.api_version != "v1":
            raise ConfigurationError("Kaleyra's v2 API takes media by link, not as a file part")
        log.debug("POST %s to %s", url, ",".join(mask_phone(r) for r in recipients))
        sending: dict[str, Any] = (
            {"data": body, "files": dict(files) if files else None}
            if self.api_version == "v1"
            else {"json": body}
        )
        try:
            response = self._session().post(
                url,
                headers={"api-key": self._key.reveal()},
                timeout=self.timeout,
                allow_redirects=False,
                **sending,
            )
        except requests.exceptions.ConnectTimeout:
            raise ConnectError(
                f"could not connect to {self.shown_url} in time: nothing was sent"
            ) from None
        except requests.exceptions.ReadTimeout:
            raise AmbiguousSendError(
                f"no answer from {self.shown_url} within the timeout: the message may have been "
                "sent",
                code=Code.TIMEOUT,
            ) from None
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                raise ConnectError(
                    f"could not connect to {self.shown_url}: nothing was sent ({_reason(exc)})"
                ) from None
            raise AmbiguousSendError(
                f"the connection to {self.shown_url} broke after the request was sent: the "
                f"message may have been sent ({_reason(exc)})",
                code=Code.DROPPED,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise AmbiguousSendError(
                f"the request to {self.shown_url} failed: {_reason(exc)}", code=Code.DROPPED
            ) from None
        return parse_response(
            response.status_code,
            response.text,
            response.headers,
            recipients,
            api_version=self.api_version,
        )

    def request_for(self, data: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        """The URL and body that :meth:`post` sends for prepared fields (the key aside).

        v1: the messages URL and the form as given. v2: the URL of the fields' sender and
        ``{"messaging_object": messaging_object(fields, to), "extra_info": extra_info(fields)}``,
        the row's ``callback_url`` in ``extra_info`` too.

        Raises:
            ConfigurationError: v2 fields with no sender, or several recipients.
        """
        if self.api_version == "v1":
            return self.messages_url, dict(data)
        recipients = [r for r in data.get("to", "").split(",") if r]
        if len(recipients) != 1:
            raise ConfigurationError(
                f"Kaleyra's v2 API takes one recipient per request, not {len(recipients)}: "
                "send each row on its own (kb.send plans them so)"
            )
        sender = data.get("from") or self.sender
        if not sender:
            raise ConfigurationError(f"no sender number: {NO_SENDER_FIX}")
        body: dict[str, Any] = {"messaging_object": messaging_object(data, recipients[0])}
        info = extra_info(data)
        if data.get("callback_url"):
            # v2's callbacks go to the callback profile set up in Kaleyra's console; the
            # row's URL travels beside the refs (the emulator takes it as that profile).
            info["callback_url"] = data["callback_url"]
        body["extra_info"] = info
        return self.messages_url_for(sender), body

    # -- the template catalogue ---------------------------------------------------------

    def templates(
        self,
        waba_id: str,
        *,
        limit: int | None = None,
        max_pages: int = 1000,
        deadline: float = DEFAULT_DEADLINE,
    ) -> Any:
        """The WhatsApp templates of a business account, as :func:`kwa_batch.load_templates`
        returns them: ``GET /v2/<SID>/whatsapp/<waba_id>/message_templates``, every page.

        Paging follows ``paging.next`` when the answer gives it (only to this client's own
        host: the key is never sent elsewhere), else ``paging.cursors.after``.

        Args:
            waba_id: the WhatsApp Business Account id.
            limit: templates per page to ask for (the API's default when None).
            max_pages: a guard against an API that pages forever.
            deadline: seconds the whole fetch (every page) may take: an API that sends its
                answer a byte at a time cannot hold the caller for longer (see
                :mod:`kwa_batch._http.bounded`; a client made with a ``session_factory`` of
                bounded sessions keeps theirs).

        Raises:
            ApiError: the API refused the request (:class:`AuthenticationError` for 401/403).
            ConnectError, AmbiguousSendError: no usable answer came back.
            InvalidResponseError: an answer that is not the template list.
        """
        from urllib.parse import quote

        waba = str(waba_id).strip()
        if not waba:
            raise ConfigurationError("the WhatsApp Business Account id is empty: pass waba_id=")
        url: str | None = f"{self.base_url}/v2/{self.sid}/whatsapp/{quote(waba, safe='')}"
        url = f"{url}/message_templates"
        params: dict[str, str] = {} if limit is None else {"limit": str(int(limit))}
        session = self._session()
        if isinstance(session, BoundedSession):
            return self._template_pages(waba, url, params, limit, max_pages, session)
        with BoundedSession(deadline=deadline, max_total_bytes=MAX_ANSWER_BYTES) as own_session:
            return self._template_pages(waba, url, params, limit, max_pages, own_session)

    def _template_pages(
        self,
        waba: str,
        url: str | None,
        params: dict[str, str],
        limit: int | None,
        max_pages: int,
        session: requests.Session,
    ) -> Any:
        """Every page of the template list (see :meth:`templates`)."""
        from urllib.parse import quote, urlsplit

        from ..catalogue import load_templates

        own = urlsplit(self.base_url)
        items: list[Any] = []
        seen: set[str] = set()
        while url is not None:
            if len(seen) >= max_pages:
                raise InvalidResponseError(
                    f"the template list did not end after {max_pages} pages",
                    code=Code.BADRESPONSE,
                    http_status=200,
                )
            seen.add(url + repr(sorted(params.items())))
            page = self._get_json(url, params, session)
            data = page.get("data")
            if not isinstance(data, list):
                raise InvalidResponseError(
                    "the template list has no 'data' list", code=Code.BADRESPONSE, http_status=200
                )
            items.extend(data)
            paging = page.get("paging") if isinstance(page.get("paging"), Mapping) else {}
            assert isinstance(paging, Mapping)
            cursors = paging.get("cursors") if isinstance(paging.get("cursors"), Mapping) else {}
            assert isinstance(cursors, Mapping)
            after = cursors.get("after")
            following = paging.get("next")
            url = None
            if isinstance(following, str) and following:
                target = urlsplit(following)
                if (target.scheme, target.netloc) != (own.scheme, own.netloc):
                    raise InvalidResponseError(
                        f"the template list's next page is on another host ({target.netloc}): "
                        "not followed, so that the API key is not sent there",
                        code=Code.BADRESPONSE,
                        http_status=200,
                    )
                url, params = following, {}
            elif data and isinstance(after, str) and after:
                url = f"{self.base_url}/v2/{self.sid}/whatsapp/{quote(waba, safe='')}"
                url = f"{url}/message_templates"
                params = {**({} if limit is None else {"limit": str(int(limit))}), "after": after}
            if url is not None and url + repr(sorted(params.items())) in seen:
                break  # the same page again: the list is complete
        log.debug("%d template(s) fetched for WABA %s in %d page(s)", len(items), waba, len(seen))
        return load_templates({"data": items})

    def _get_json(
        self, url: str, params: Mapping[str, str], session: requests.Session
    ) -> Mapping[str, Any]:
        """GET ``url`` with the key in the header; the answer as JSON, or the matching error."""
        try:
            response = session.get(
                url,
                params=dict(params),
                headers={"api-key": self._key.reveal()},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout:
            raise ConnectError(f"could not connect to {self.shown_url} in time") from None
        except requests.exceptions.ReadTimeout:
            raise AmbiguousSendError(
                f"no answer from {self.shown_url} within the timeout", code=Code.TIMEOUT
            ) from None
        except requests.exceptions.RequestException as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
                raise ConnectError(
                    f"could not connect to {self.shown_url} ({_reason(exc)})"
                ) from None
            raise AmbiguousSendError(
                f"the request to {self.shown_url} failed: {_reason(exc)}", code=Code.DROPPED
            ) from None
        if not 200 <= response.status_code < 300:
            parse_response(response.status_code, response.text, response.headers, [])
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, Mapping):
            raise InvalidResponseError(
                f"the API answered {response.status_code} with a body that is not a JSON "
                f"object: {response.text[:200]!r}",
                code=Code.BADRESPONSE,
                http_status=response.status_code,
                raw=response.text[:_RAW_LIMIT],
            )
        return payload


def _join_params(values: Iterable[object]) -> str:
    """Join template parameters CSV style: values holding a comma or quote are quoted."""
    out = []
    for value in values:
        text = str(value)
        if any(ch in text for ch in ',"\n'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when urllib3 failed before the request could be sent (refused, DNS, unreachable)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, NewConnectionError | NameResolutionError | ConnectionRefusedError):
            return True
        stack.extend([getattr(err, "reason", None), err.__cause__, err.__context__])
        stack.extend(a for a in getattr(err, "args", ()) if isinstance(a, BaseException))
    return False


def shown_url(url: str) -> str:
    """``url`` without its userinfo (``https://user:token@host`` → ``https://***@host``):
    what an error or a log may quote.

    The userinfo ends at the last ``@`` (a password may hold ``#``, ``?`` or ``/``, which a
    URL parser takes for the end of the authority), as :func:`kwa_batch.database.redact`
    reads it: where in doubt, more is hidden.

    >>> shown_url("https://me:s3cret@api.in.kaleyra.io")
    'https://***@api.in.kaleyra.io'
    >>> shown_url("https://me:pa#ss?w/rd@api.in.kaleyra.io")
    'https://***@api.in.kaleyra.io'
    """
    scheme, sep, rest = url.partition("://")
    _, at, after = rest.rpartition("@")
    return f"{scheme}://***@{after}" if sep and at else url


def _reason(exc: BaseException) -> str:
    reason: Any = exc
    for _ in range(4):
        inner = getattr(reason, "reason", None) or (
            reason.args[0] if getattr(reason, "args", None) else None
        )
        if not isinstance(inner, BaseException):
            break
        reason = inner
    return type(reason).__name__


def _first_code(payload: Any) -> str | None:
    """The error code of an answer: ``code`` (or ``error_code``, ``errorCode``), else
    ``error.code``, else the first of ``errors[].code`` (v2 writes it any of these ways)."""
    if not isinstance(payload, Mapping):
        return None
    for key in ("code", "error_code", "errorCode"):
        value = payload.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    error = payload.get("error")
    if isinstance(error, Mapping):
        found = _first_code(error)
        if found is not None:
            return found
    errors = payload.get("errors")
    if isinstance(errors, list):
        for item in errors:
            found = _first_code(item)
            if found is not None:
                return found
    return None


def _messages(payload: Any) -> list[str]:
    """Every human-readable reason in an error payload, whatever its shape."""
    if isinstance(payload, str):
        return [payload] if payload.strip() else []
    if isinstance(payload, Mapping):
        out: list[str] = []
        for key, value in payload.items():
            if key in ("code", "error_code", "errorCode", "status", "data", "id"):
                continue
            for text in _messages(value):
                out.append(
                    text if key in ("message", "error", "errors", "detail") else f"{key}: {text}"
                )
        return out
    if isinstance(payload, list):
        return [text for item in payload for text in _messages(item)]
    if isinstance(payload, int | float) and not isinstance(payload, bool):
        return [str(payload)]
    return []


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def parse_response(
    status: int,
    text: str,
    headers: Mapping[str, str],
    recipients: Sequence[str],
    *,
    api_version: str = "v1",
) -> SendResult:
    """Turn an HTTP answer into a :class:`SendResult`, or raise the matching :class:`ApiError`.

    Tolerant of the shapes seen in the wild: the document's ``{"id", "data": [...]}``, a bare
    ``{"id": "<uuid>:0"}``, and error bodies either ``{"code", "message"}``,
    ``{"error": {field: reason}}`` or ``{"errors": [{"code", "message"}]}``. An unreadable
    body never crashes: it is carried raw.

    v2's answer body is not documented: any 2xx is accepted (an empty or non-JSON body
    too: its rows then have no message id, kept in ``raw["body"]``), and the message id is read from
    whichever is there: ``messages[].id`` as WhatsApp writes it (at the top or under
    ``data``), ``data[].message_id`` as v1 writes it, or a top-level ``id``. Kaleyra's codes
    decide the error raised, whatever the HTTP status: ``WA-401`` (the number is on the
    other API version) :class:`ApiVersionError`, ``RBC001`` (wrong SID or key)
    :class:`AuthenticationError`.
    """
    raw = text[:_RAW_LIMIT]
    try:
        payload: Any = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None

    if 200 <= status < 300:
        if api_version != "v1" and not isinstance(payload, Mapping):
            # v2's answer is not documented: a 2xx is taken, whatever its body; no id in it
            # leaves the row unknown (see kwa_batch.sending.run), with the body kept.
            return SendResult(None, status, {}, raw={"body": raw} if raw else {})
        if not isinstance(payload, Mapping):
            raise InvalidResponseError(
                f"the API answered {status} with a body that is not JSON: {raw[:200]!r}",
                code=Code.BADRESPONSE,
                http_status=status,
                raw=raw,
            )
        error = payload.get("error")
        ids = _message_ids(payload, recipients)
        if api_version != "v1" and not ids:
            ids = _v2_message_ids(payload, recipients)
        said = _first_code(payload)
        # A code and no message id, whatever the 2xx: Kaleyra's refusal (WA-401 and RBC001
        # stop the run; WAV2101, WA400... are the row's), never "accepted".
        refused = said is not None and said != ACCEPTED_V2
        if not ids and refused and (said in _STOPPING or api_version != "v1"):
            _raise_for(status, str(said), payload, raw, headers)
        if error and not ids:
            code = _first_code(payload) or f"HTTP{status}"
            raise ApiError(
                "; ".join(_messages(error)) or raw,
                code=code,
                http_status=status,
                raw=raw,
                details=dict(payload),
            )
        request_id = payload.get("id")
        return SendResult(
            request_id=str(request_id).split(":")[0] if request_id else None,
            http_status=status,
            message_ids=ids,
            created=payload.get("createdDateTime"),
            raw=dict(payload),
        )

    _raise_for(status, _first_code(payload) or f"HTTP{status}", payload, raw, headers)
    raise AssertionError("unreachable")  # pragma: no cover


#: v2's code of an accepted message.
ACCEPTED_V2 = "WA202"
# Codes that stop a run, in any answer (a 2xx included).
_STOPPING = (OTHER_API_VERSION, BAD_CREDENTIALS)


def _raise_for(
    status: int, code: str, payload: Any, raw: str, headers: Mapping[str, str]
) -> NoReturn:
    """Raise the :class:`ApiError` an answer with ``code`` stands for."""
    reasons = _messages(payload) if payload is not None else []
    message = "; ".join(reasons) or (raw.strip()[:300] or f"HTTP {status} with an empty body")
    kwargs: dict[str, Any] = {
        "code": code,
        "http_status": status,
        "raw": raw,
        "details": dict(payload) if isinstance(payload, Mapping) else {},
    }
    if code == OTHER_API_VERSION:
        raise ApiVersionError(message, **kwargs)
    if status in (401, 403) or code == BAD_CREDENTIALS:
        raise AuthenticationError(message, **kwargs)
    if status == 429:
        raise RateLimitError(message, retry_after=_retry_after(headers), **kwargs)
    if status >= 500:
        raise ServerError(message, **kwargs)
    raise ApiError(message, **kwargs)


def _v2_message_ids(payload: Mapping[str, Any], recipients: Sequence[str]) -> dict[str, str]:
    """The message id of a v2 answer (one recipient): ``messages[0].id`` at the top or under
    ``data``, else a top-level ``id``; {} when there is none."""
    if len(recipients) != 1:
        return {}
    data = payload.get("data")
    for holder in (payload, data):
        messages = holder.get("messages") if isinstance(holder, Mapping) else None
        if isinstance(messages, list):
            for item in messages:
                found = item.get("id") if isinstance(item, Mapping) else None
                if isinstance(found, str | int) and not isinstance(found, bool) and str(found):
                    return {recipients[0]: str(found)}
    found = payload.get("id")
    if isinstance(found, str | int) and not isinstance(found, bool) and str(found).strip():
        return {recipients[0]: str(found)}
    return {}


def _message_ids(payload: Mapping[str, Any], recipients: Sequence[str]) -> dict[str, str]:
    """Map each recipient we sent to its message id, matching on digits (the API drops '+')."""
    by_digits = {_digits(r): r for r in recipients}
    ids: dict[str, str] = {}
    data = payload.get("data")
    if isinstance(data, list):
        for item in data:
            if not isinstance(item, Mapping):
                continue
            message_id = item.get("message_id") or item.get("id")
            recipient = str(item.get("recipient") or item.get("to") or item.get("mobile") or "")
            key = by_digits.get(_digits(recipient))
            if message_id and key is not None:
                ids[key] = str(message_id)
        if not ids and len(recipients) == 1 and len(data) == 1 and isinstance(data[0], Mapping):
            message_id = data[0].get("message_id") or data[0].get("id")
            if message_id:
                ids[recipients[0]] = str(message_id)
    elif len(recipients) == 1 and isinstance(payload.get("id"), str) and ":" in payload["id"]:
        # Some deployments answer with just {"id": "<uuid>:0"} for a single recipient.
        ids[recipients[0]] = payload["id"]
    return ids
