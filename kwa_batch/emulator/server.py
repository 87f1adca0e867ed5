"""A local Kaleyra-compatible server: real HTTP on 127.0.0.1, playing the WhatsApp endpoints.

:class:`Emulator` answers ``POST`` and ``GET /v1/<SID>/messages`` the way Kaleyra's API
document ("Send a Text Message through WhatsApp") describes, and ``POST
/v2/<SID>/whatsapp/<sender>/messages`` (WhatsApp's message object, Kaleyra's v2:
:mod:`.v2_checks`) beside it, each number answering both unless declared one
(``versions=``), and keeps a ledger of every
message it accepted (:attr:`Emulator.messages`, a DataFrame). This module holds the
emulator's life cycle and its public face; each part it plays has its own room (the
package's documentation lists them): the checks in :mod:`.request_checks`, the answers in
:mod:`.answers`, the faults in :mod:`.faults`, the settings in :mod:`.behaviour`.

It serves with werkzeug's threaded server, HTTP/1.1 keep-alive, from a background thread
(:mod:`kwa_batch._http.serving`: the read deadline, the connection cap and the body limits,
the first two set by :class:`~kwa_batch.emulator.behaviour.NetworkSettings`). Werkzeug's
access log is silenced (it would print phone numbers); the emulator logs numbers masked to
their last four digits, never the key. Any request it cannot read gets a 4xx, never a 500
(a 500 is the fault ``"500"``, or a bug).
"""

from __future__ import annotations

import json
import logging
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self, Unpack

import pandas as pd

from .._http.serving import BackgroundServer, Served
from .answers import Refusal, server_refusal
from .behaviour import (
    CallbackSettings,
    FaultSettings,
    LimitSettings,
    NetworkSettings,
    VersionSettings,
    non_negative,
)
from .bodies import MAX_REQUEST_BYTES
from .callbacks import CallbackPoster
from .endpoint import MessagesEndpoint
from .faults import FaultControls, Misbehaviour
from .keywords import Shortcuts, settle, settle_callbacks, settle_versions
from .ledger import Ledger
from .limits import EmulatedLimits
from .request_checks import e164_digits
from .template_catalogue import EmulatedTemplates

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..sending.client import KaleyraClient

__all__ = ["Emulator"]

log = logging.getLogger(__name__)


class Emulator(FaultControls, Served):
    """A Kaleyra-compatible WhatsApp endpoint on 127.0.0.1, with a ledger of what it accepted.

    ``Emulator()`` and ``Emulator(latency=0.2)`` are the common forms; the settings come
    grouped in a few types (:mod:`kwa_batch.emulator.behaviour`), or one by one.

    Args:
        host: the address to listen on (keep it on loopback).
        port: the port; 0 picks a free one when the server starts.
        sid: the account SID the endpoint answers to (default: a fresh ``HXEMU...``).
        api_key: the key it expects (default: a random token; read it from ``api_key``).
        seed: makes request ids (and the default SID), jitter, fault draws and the
            callbacks' outcomes (:mod:`kwa_batch.emulator.fates`) reproducible.
        network: a :class:`~kwa_batch.emulator.behaviour.NetworkSettings`: ``latency``,
            ``jitter``, ``read_timeout``, ``max_connections``.
        faults: a :class:`~kwa_batch.emulator.behaviour.FaultSettings`, or just its
            ``{fault: probability}`` (``"429"``, ``"503"``, ``"500"``, ``"reset"``,
            ``"late"``, see :mod:`kwa_batch.emulator.faults`).
        limits: a :class:`~kwa_batch.emulator.behaviour.LimitSettings`: the API's own
            ``rate_limit``, WhatsApp's ``throughput`` and ``pair_interval`` per sender,
            and how those are ``answer``-ed (:mod:`kwa_batch.emulator.limits`).
        callbacks: the callbacks posted to a message's ``callback_url`` (loopback hosts
            only): a :class:`~kwa_batch.emulator.callbacks.CallbackSettings`, a mapping
            of its fields (``{"delay": 0.05, "read": 0.7}``), True for its defaults
            (``sent`` then ``delivered``), or False for none.
        templates: a template catalogue to play (a frame from
            :func:`kwa_batch.load_templates`, WhatsApp's JSON or a ``.json`` path;
            :mod:`kwa_batch.emulator.template_catalogue`).
        versions: which of Kaleyra's API versions each business number belongs to,
            ``{"+911234567890": "v2"}`` (a call by the other version answers HTTP 401
            ``WA-401``), or a :class:`~kwa_batch.emulator.behaviour.VersionSettings`;
            default: every number answers both.
        v2_numbers: numbers on v2 only, the short form of ``versions={n: "v2"}``.
        v2_answer: the shape of v2's success body (HTTP 202 ``WA202``): ``"whatsapp"``
            (default, ``messages[].id``), ``"v1"`` (``data[].message_id``) or ``"id"``
            (a top-level ``id``).
        **shortcuts: one setting at a time, each onto its group: ``latency``, ``jitter``,
            ``read_timeout``, ``max_connections`` (network); ``retry_after``,
            ``late_delay`` (faults); ``rate_limit``, ``throughput``, ``pair_interval``,
            ``limit_answer`` (limits); ``not_on_whatsapp``, ``opted_out``,
            ``spam_threshold``, ``marketing_window``, ``prices`` (callbacks: what
            happens after ``sent``, :mod:`kwa_batch.emulator.fates`).

    Raises:
        ValueError: a value its settings type refuses (a negative or non-finite number of
            seconds, a rate limit of 0 or less, an unknown fault, a probability outside
            ``[0, 1]``, a callback setting :class:`CallbackSettings` refuses), an empty
            SID or key.
        TypeError: an unknown keyword, a setting given both in its group and alone
            (``network=NetworkSettings(...)`` with ``latency=``), or a callback setting
            alone with ``callbacks=False``.

    Example:
        >>> with Emulator(latency=0.05) as emu:  # doctest: +SKIP
        ...     emu.client(sender="+911234567890").send_message("+919876543210", body="Hi")
        ...     emu.messages[["to", "type", "body"]]
        >>> Emulator(faults={"429": 0.05, "reset": 0.01}, seed=7)  # doctest: +SKIP
        >>> Emulator(network=NetworkSettings(latency=0.2, jitter=0.05))  # doctest: +SKIP
    """

    _kind = "emulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sid: str | None = None,
        api_key: str | None = None,
        seed: int | None = None,
        network: NetworkSettings | None = None,
        faults: FaultSettings | Mapping[str, float] | None = None,
        limits: LimitSettings | None = None,
        callbacks: CallbackSettings | Mapping[str, Any] | bool = True,
        templates: Any = None,
        versions: VersionSettings | Mapping[str, str] | None = None,
        v2_numbers: Iterable[str] = (),
        v2_answer: str | None = None,
        **shortcuts: Unpack[Shortcuts],
    ) -> None:
        network, fault_settings, limit_settings = settle(network, faults, limits, shortcuts)
        version_settings = settle_versions(versions, v2_numbers, v2_answer)
        if sid is not None and not sid.strip():
            raise ValueError("sid must not be empty")
        if api_key is not None and not api_key:
            raise ValueError("api_key must not be empty")
        self.host = host
        self.seed = seed
        ids = random.Random(seed)
        self.sid = sid.strip() if sid is not None else "HXEMU" + f"{ids.getrandbits(40):010X}"
        self.api_key = api_key if api_key is not None else secrets.token_hex(16)
        callback_settings = settle_callbacks(callbacks, shortcuts)
        self._poster = CallbackPoster(callback_settings or CallbackSettings(), seed=seed)
        #: The template catalogue played (:mod:`kwa_batch.emulator.template_catalogue`), or None.
        self.templates = None if templates is None else EmulatedTemplates(templates)
        #: WhatsApp's limits as played, with their counts (``limits.violations``).
        self.limits = EmulatedLimits(
            throughput=limit_settings.throughput,
            pair_interval=limit_settings.pair_interval,
            answer=limit_settings.answer,
        )
        self._ledger = Ledger(ids)
        self._misbehaviour = Misbehaviour(fault_settings, limit_settings.rate_limit, seed)
        self._endpoint = MessagesEndpoint(
            sid=self.sid,
            api_key=self.api_key,
            network=network,
            ledger=self._ledger,
            misbehaviour=self._misbehaviour,
            limits=self.limits,
            templates=self.templates,
            poster=self._poster,
            callbacks=callback_settings is not None,
            seed=seed,
            versions=version_settings,
        )
        self._http = BackgroundServer(
            self.wsgi_app,
            host=host,
            port=int(port),
            name="kwa-emulator",
            error_body=json.dumps(Refusal(500, "E500", {}).payload()).encode(),
            refusal=server_refusal,
            max_body=MAX_REQUEST_BYTES,
            read_timeout=network.read_timeout,
            max_connections=network.max_connections,
            secrets=(self.api_key,),
        )

    # -- settings -------------------------------------------------------------------------

    @property
    def network(self) -> NetworkSettings:
        """The network settings in force (``latency`` and ``jitter`` may change while
        serving: assign them; ``read_timeout`` and ``max_connections`` are fixed)."""
        return self._endpoint.network

    @property
    def latency(self) -> float:
        """Seconds each answer is delayed; assign to change it while serving."""
        return self.network.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._endpoint.network = replace(self.network, latency=seconds)

    @property
    def jitter(self) -> float:
        """Up to this many seconds more per answer; assign to change it while serving."""
        return self.network.jitter

    @jitter.setter
    def jitter(self, seconds: float) -> None:
        self._endpoint.network = replace(self.network, jitter=seconds)

    @property
    def limit_settings(self) -> LimitSettings:
        """The limits in force: the API's rate limit and WhatsApp's, as settings."""
        limits = self.limits
        return LimitSettings(
            self.rate_limit, limits.throughput, limits.pair_interval, limits.answer
        )

    @property
    def versions(self) -> VersionSettings:
        """The API versions played: each declared number's, and v2's answer shape."""
        return self._endpoint.versions

    @property
    def v2_messages_url(self) -> str:
        """v2's send URL without its sender, ``{url}/v2/{sid}/whatsapp``: add
        ``/<sender digits>/messages``."""
        return f"{self.url}/v2/{self.sid}/whatsapp"

    @property
    def callbacks(self) -> CallbackSettings | None:
        """The callback settings in force (None: the emulator posts no status callbacks)."""
        return self._poster.settings if self._endpoint.callbacks else None

    # -- addresses and life cycle ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served (the one picked, once started with ``port=0``)."""
        return self._http.port

    @property
    def url(self) -> str:
        """The base URL a client uses, e.g. ``http://127.0.0.1:54321``.

        Raises:
            RuntimeError: the emulator was never started with port 0 (no port known yet).
        """
        return self._http.url

    @property
    def messages_url(self) -> str:
        """The full endpoint URL, ``{url}/v1/{sid}/messages``."""
        return f"{self.url}/v1/{self.sid}/messages"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._http.running

    def __repr__(self) -> str:
        parts = [
            self.url if self.running else "not started",
            f"sid={self.sid!r}",
            "api_key=<hidden>",
            f"latency={self.latency}",
        ]
        if self.jitter:
            parts.append(f"jitter={self.jitter}")
        if self.faults:
            parts.append(f"faults={self.faults}")
        if self.rate_limit is not None:
            parts.append(f"rate_limit={self.rate_limit:g}")
        parts.append(f"messages={self.message_count}")
        return f"Emulator({', '.join(parts)})"

    def start(self) -> Self:
        """Start serving in a daemon thread (no-op when already running); return self.

        Raises:
            OSError: the port cannot be bound (e.g. already in use).
        """
        self._endpoint.stopping.clear()
        if self._http.start():
            log.info("Kaleyra emulator listening on %s (SID %s)", self.url, self.sid)
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive connections and join the thread (idempotent).

        Answers held back by the fault ``"late"`` are released (to closed connections);
        callbacks not posted yet are dropped (:meth:`wait_for_callbacks` first to keep
        them).
        """
        port = self._http.port
        self._endpoint.stopping.set()
        stopped = self._http.stop()
        self._poster.stop()
        if stopped:
            log.info("Kaleyra emulator on port %s stopped", port)

    def client(self, **kwargs: Any) -> KaleyraClient:
        """Return a :class:`~kwa_batch.sending.client.KaleyraClient` aimed at this emulator.

        Keyword arguments go to the client (``sender=``, ``timeout=``...). No sender is
        set by default: pass one, as with the real API.
        """
        from ..sending.client import KaleyraClient

        return KaleyraClient(self.sid, self.api_key, base_url=self.url, **kwargs)

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI callable serving the endpoint (mountable in any WSGI server).

        Mounted elsewhere than in :meth:`start`'s server, the fault ``"reset"`` raises
        :class:`ConnectionAbortedError` (after recording the message) instead of
        dropping the connection.
        """
        return self._endpoint(environ, start_response)

    # -- what it saw ----------------------------------------------------------------------

    @property
    def messages(self) -> pd.DataFrame:
        """The ledger: one row per accepted message (per recipient), oldest first.

        Columns are :data:`~kwa_batch.emulator.ledger.LEDGER_COLUMNS`; see
        :attr:`kwa_batch.emulator.ledger.Ledger.frame`. Messages answered with a fault
        after processing (``500``, ``reset``, ``late``) are here: they were accepted.
        """
        return self._ledger.frame

    @property
    def message_count(self) -> int:
        """Rows in :attr:`messages` (accepted messages), without building the DataFrame."""
        return self._ledger.message_count

    @property
    def requests_seen(self) -> int:
        """HTTP requests received on the messages endpoints (v1 and v2, any SID), whatever
        their outcome."""
        return self._ledger.requests_seen

    def reset(self) -> None:
        """Forget every accepted message and zero the counters.

        Also empties the :meth:`inject` queue, the rate limit's window and the pending
        callbacks, and forgets what :mod:`kwa_batch.emulator.fates` remembered (marketing
        templates received, STOPs heard, restricted senders); the fault probabilities,
        the rate limit and the callback settings stay in force.
        """
        self._ledger.clear()
        self._misbehaviour.reset()
        self._poster.clear()
        if self.templates is not None:
            self.templates.clear()
        self.limits.reset()

    # -- callbacks ------------------------------------------------------------------------

    @property
    def callback_stats(self) -> dict[str, int]:
        """Callbacks ``posted`` (answered 2xx), ``failed``, ``pending``, ``dropped`` by
        :meth:`stop`, and messages ``skipped`` for a ``callback_url`` that is not loopback.
        """
        return self._poster.stats

    def wait_for_callbacks(self, timeout: float | None = 10.0) -> bool:
        """Block until every callback planned so far was posted; False if ``timeout`` ran out.

        Example:
            >>> results = send(report, emu.client())  # doctest: +SKIP
            >>> emu.wait_for_callbacks()  # doctest: +SKIP
            True
        """
        return self._poster.wait(timeout)

    def reply(
        self,
        from_number: str,
        to_business: str,
        body: str,
        url: str,
        *,
        name: str | None = None,
        delay: float = 0.0,
        reply_to: str | None = None,
        payload: str | None = None,
        version: str | None = None,
        interactive: bool = False,
    ) -> bool:
        """Post an incoming-message callback to ``url``: ``from_number`` wrote ``body``.

        It plays a recipient answering the business number ``to_business`` (which opens
        their 24-hour window). Numbers are E.164, with or without ``+``. ``reply_to``
        names the ``message_id`` answered; with a ``payload`` it is the tap of a
        quick-reply button whose text is ``body`` (``type=button``). A ``STOP`` (or a
        button whose payload or text begins with STOP) opts the number out: marketing
        templates to it fail with 131050 from then on. Works whatever the callback
        settings; returns False when ``url`` is not a loopback address (the callback is
        skipped and logged). ``version`` ``"v2"`` shapes the callback as v2's
        (``meta_object.value.messages[]``, ``reply_to`` its ``context.id``, an
        ``interactive`` tap a reply button's); default: the version ``to_business`` is
        declared on (v1 when it answers both).

        Raises:
            ValueError: a number that is not plausible E.164, a negative ``delay``, a
                version other than ``v1``/``v2``.

        Example:
            >>> emu.reply("+919876543210", "+911234567890", "Yes please", receiver.callback_url)
            ... # doctest: +SKIP
            True
        """
        customer, business = e164_digits(from_number), e164_digits(to_business)
        if customer is None or business is None:
            wrong = from_number if customer is None else to_business
            raise ValueError(f"not a plausible E.164 number: {wrong!r}")
        shape = version or self.versions.of(business) or "v1"
        if shape not in ("v1", "v2"):
            raise ValueError(f'version must be "v1" or "v2", not {version!r}')
        return self._poster.reply(
            customer,
            business,
            body,
            url,
            name=name,
            delay=non_negative("delay", delay),
            reply_to=reply_to,
            payload=payload,
            v2=shape == "v2",
            interactive=interactive,
        )
