"""The callbacks the emulator posts, as Kaleyra would: delivery statuses and replies.

When the emulator accepts a message that has a ``callback_url``, it reports the message's
progress there, from background threads (the answer to the send does not wait):
``sent``, then ``delivered``, then ``read``; or ``sent``, then ``failed`` with an error
code (or ``failed`` alone, for a message that never left). What becomes of each message
is decided by :mod:`kwa_batch.emulator.fates` from
:class:`~kwa_batch.emulator.behaviour.CallbackSettings` (the shares drawn by a generator
seeded with the emulator's ``seed``, in the order messages arrive; prices, opt-outs,
WhatsApp's marketing and spam limits, replies); each step comes ``delay`` seconds after
the previous one, and a reply a step after ``read``. :meth:`CallbackPoster.reply` posts a
customer's message on demand. The callbacks of one message (its statuses, the reply to it)
are posted one after another, each once the one before was answered: posted from several
threads, a reply could otherwise overtake the ``read`` it follows on a loaded machine.

Status callbacks carry ``id`` (the ``message_id``), ``status``, ``mobile`` (the recipient,
digits without ``+``), ``timestamp`` (Unix seconds), ``ref``/``ref1``/``ref2`` when the
message had them, for ``failed`` ``error_code`` and ``error``, and for ``delivered``
``price`` (a number as text, e.g. ``0.0125``), ``billable`` (``true``/``false``) and
``pricing_category``. Incoming-message callbacks carry ``created_at``, ``type``
(``text``, or ``button`` for a quick-reply tap), ``from`` (the recipient), ``wanumber``
(the business number), ``body`` (the text, or the button's), ``payload`` (a button's),
``reply_to`` (the ``message_id`` answered) and ``name`` when given. They go as ``GET``
with query parameters, or as ``POST`` with a JSON body (``method``).

A message that came by **v2** gets v2-shaped callbacks, always ``POST`` with a JSON body
(whatever ``method``): a status is ``{"meta_object": {"value": {"metadata":
{"display_phone_number"}, "statuses": [{"id": wamid, "status", "timestamp",
"recipient_id", "errors": [{"code", "title"}] (failed), "pricing": {"billable",
"pricing_model", "category"} (delivered)}]}}, "extra_info": {"message_id": wamid, "ref",
...}}`` and a reply ``{"meta_object": {"value": {"metadata": {...}, "contacts": [...],
"messages": [{"from", "id", "timestamp", "type", "text": {"body"} | "button": {"payload",
"text"} | "interactive": {"type": "button_reply", "button_reply": {"id", "title"}},
"context": {"id": wamid}}]}}}``, WhatsApp's own objects as Kaleyra's v2 forwards them.

Callbacks go **only to loopback addresses** (``127.0.0.1`` and the rest of ``127/8``,
``::1``, ``localhost``): a ``callback_url`` naming any other host is skipped and logged,
and never contacted. Proxies from the environment are ignored and redirects are not
followed, so nothing leaves the machine. A callback that fails (nobody listening, an
error answer) is counted and logged, and not retried.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ..config import is_loopback_url
from ..privacy import mask_phone
from .behaviour import CallbackSettings
from .fates import Fates, Reply

__all__ = ["CallbackPoster", "CallbackSettings", "is_loopback_url", "v2_document"]

log = logging.getLogger(__name__)

_WORKERS = 4


def _shown(url: str) -> str:
    """A URL for the logs: without its query string, which may hold a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(order=True)
class _Due:
    at: float  # time.monotonic() when it is due
    seq: int  # keeps callbacks due at the same moment in the order they were planned
    url: str = field(compare=False)
    fields: dict[str, str] = field(compare=False)
    stamp: str = field(compare=False)  # the field that gets the time of posting
    business: str | None = field(compare=False, default=None)  # v2's: the sender's digits


class CallbackPoster:
    """Posts planned callbacks from a few background threads when they fall due.

    Threads start with the first callback; :meth:`stop` drops what is pending and joins
    them (a later callback starts them again).

    Args:
        settings: what to post (see :class:`CallbackSettings`).
        seed: makes the drawn outcomes reproducible.
    """

    def __init__(self, settings: CallbackSettings, *, seed: int | None = None) -> None:
        self.settings = settings
        self._rng = random.Random(None if seed is None else f"{seed}/callbacks")
        self._fates = Fates(settings, self._rng, seed)
        self._cond = threading.Condition()  # guards everything below
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._posting: set[str] = set()  # the messages with a callback being posted now
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._stats = dict.fromkeys(("posted", "failed", "skipped", "dropped"), 0)
        self._warned: set[str] = set()

    @property
    def stats(self) -> dict[str, int]:
        """Callbacks ``posted`` (2xx answer), ``failed``, ``pending``, ``dropped`` by stop,
        and messages ``skipped`` for a non-loopback ``callback_url``."""
        with self._cond:
            return {**self._stats, "pending": len(self._heap) + self._in_flight}

    # -- planning -------------------------------------------------------------------------

    def message_accepted(
        self,
        request_id: str,
        recipients: list[str],
        sender: str,
        refs: Mapping[str, str | None],
        url: str,
        failures: Mapping[int, tuple[str, str]] | None = None,
        *,
        failure: tuple[str, str] | None = None,
        kind: str = "text",
        category: str | None = None,
        message_ids: list[str] | None = None,
        buttons: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Plan the callbacks of an accepted request (numbers as digits, no ``+``).

        Each message's fate is decided by :class:`~kwa_batch.emulator.fates.Fates`:
        ``failures`` maps positions in ``recipients`` to ``(error_code, reason)`` of a
        platform limit (a single ``failed`` callback, before ``sent``); a ``failure``
        ``(code, reason)`` is the catalogue's refusal of the request's template. ``kind``
        is the message type, ``category`` its template's category in the catalogue.
        ``message_ids`` (v2's wamids, one a recipient) make the callbacks v2-shaped;
        ``buttons`` are the message's own ``(title, payload)`` a customer may tap.
        """
        if not self._allowed(url, len(recipients)):
            return
        delay = self.settings.delay
        extra = {name: value for name, value in refs.items() if value is not None}
        start = time.monotonic()
        with self._cond:
            v2 = sender if message_ids is not None else None
            for n, recipient in enumerate(recipients):
                message_id = message_ids[n] if message_ids is not None else f"{request_id}:{n}"
                fate = self._fates.decide(
                    sender,
                    recipient,
                    kind,
                    category,
                    start,
                    limited=failures.get(n) if failures else None,
                    failure=failure,
                    buttons=buttons,
                )
                base = {"id": message_id, "mobile": recipient, **extra}
                for k, status in enumerate(fate.statuses, start=1):
                    fields = {**base, "status": status}
                    if status == "failed" and fate.error is not None:
                        fields["error_code"], fields["error"] = fate.error
                    elif status == "delivered" and fate.price is not None:
                        fields["price"] = _decimal(fate.price)
                        fields["billable"] = "true" if fate.price > 0 else "false"
                        fields["pricing_category"] = fate.category
                    self._push(start + k * delay, url, fields, business=v2)
                if fate.reply is not None:
                    said = fate.reply
                    fields = _incoming(recipient, sender, said.body, None, message_id, said)
                    if v2 is not None:
                        fields["id"] = self._wamid(recipient)
                    self._push(start + 4 * delay, url, fields, stamp="created_at", business=v2)
            self._cond.notify_all()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("planned callbacks for %d message(s) to %s", len(recipients), _shown(url))

    def reply(
        self,
        customer: str,
        business: str,
        body: str,
        url: str,
        *,
        name: str | None = None,
        delay: float = 0.0,
        reply_to: str | None = None,
        payload: str | None = None,
        v2: bool = False,
        interactive: bool = False,
    ) -> bool:
        """Plan an incoming-message callback: ``customer`` wrote ``body`` to ``business``.

        Numbers are digits without ``+``. ``reply_to`` is the ``message_id`` answered; a
        ``payload`` makes it the tap of a quick-reply button (``type=button``, ``body``
        the button's text; with ``interactive``, of a reply button, ``payload`` its id).
        A STOP (:func:`~kwa_batch.emulator.fates.says_stop`) opts the customer out of
        marketing templates once posted. ``v2`` shapes it as v2's (module docstring).
        Returns False when ``url`` is not loopback (the callback is skipped and logged).
        """
        if not self._allowed(url, 1):
            return False
        kind = "text" if payload is None else "interactive" if interactive else "button"
        said = Reply(kind, body, payload)
        with self._cond:
            fields = _incoming(customer, business, body, name, reply_to, said)
            if v2:
                fields["id"] = self._wamid(customer)
            self._push(
                time.monotonic() + delay,
                url,
                fields,
                stamp="created_at",
                business=business if v2 else None,
            )
            self._cond.notify_all()
        log.debug("planned a reply from %s to %s", mask_phone(customer), mask_phone(business))
        return True

    def _allowed(self, url: str, messages: int) -> bool:
        if is_loopback_url(url):
            return True
        host = urlsplit(url).hostname or url[:40]
        with self._cond:
            self._stats["skipped"] += messages
            first = host not in self._warned
            if first and len(self._warned) < 1000:
                self._warned.add(host)
        (log.warning if first else log.debug)(
            "callback_url host %r is not a loopback address: its callbacks are skipped "
            "(the emulator only calls this machine)",
            host,
        )
        return False

    def _wamid(self, customer: str) -> str:
        """A WhatsApp id for a customer's message (v2); called with the lock held."""
        drawn = self._rng.getrandbits(128).to_bytes(16, "big")
        raw = b"\x15\x02\x00\x12\x18" + customer.encode() + b"\x15\x02\x00" + drawn
        return "wamid." + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _push(
        self,
        at: float,
        url: str,
        fields: dict[str, str],
        stamp: str = "timestamp",
        business: str | None = None,
    ) -> None:
        """Queue one callback (v2-shaped with a ``business`` number); called with the lock
        held."""
        heapq.heappush(self._heap, _Due(at, next(self._seq), url, fields, stamp, business))
        self._threads = [t for t in self._threads if t.is_alive()]
        if not self._stopping and len(self._threads) < min(_WORKERS, len(self._heap)):
            thread = threading.Thread(target=self._work, name="kwa-emulator-callbacks", daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- posting --------------------------------------------------------------------------

    def _work(self) -> None:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: callbacks stay local
        try:
            while True:
                with self._cond:
                    while True:
                        if self._stopping:
                            return
                        if self._heap:
                            wait = self._heap[0].at - time.monotonic()
                            taken = self._take_due() if wait <= 0 else None
                            if taken is not None:
                                due = taken
                                self._in_flight += 1
                                if due.stamp == "created_at":  # the customer says it now
                                    said = due.fields
                                    self._fates.heard(
                                        said["from"], said.get("body"), said.get("payload")
                                    )
                                break
                            # Due, but each waits for its message's earlier callback: look
                            # again when a post ends (notify) or soon.
                            self._cond.wait(wait if wait > 0 else 0.01)
                        else:
                            self._cond.wait()
                ok = False
                try:
                    ok = self._post(session, due)
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self._posting.discard(_message_of(due))
                        self._stats["posted" if ok else "failed"] += 1
                        self._cond.notify_all()
        finally:
            session.close()

    def _take_due(self) -> _Due | None:
        """The first callback due now whose message has no callback being posted (the
        caller holds the lock); ``None`` when every one due waits for an earlier one."""
        now = time.monotonic()
        passed: list[_Due] = []
        found = None
        while self._heap and self._heap[0].at <= now:
            due = heapq.heappop(self._heap)
            if _message_of(due) in self._posting:
                passed.append(due)
                continue
            found = due
            self._posting.add(_message_of(due))
            break
        for due in passed:
            heapq.heappush(self._heap, due)
        return found

    def _post(self, session: requests.Session, due: _Due) -> bool:
        payload = {**due.fields, due.stamp: str(int(time.time()))}
        timeout = self.settings.timeout
        try:
            if due.business is not None:
                response = session.post(
                    due.url,
                    json=v2_document(payload, due.business, due.stamp == "created_at"),
                    timeout=timeout,
                    allow_redirects=False,
                )
            elif self.settings.method == "GET":
                response = session.get(
                    due.url, params=payload, timeout=timeout, allow_redirects=False
                )
            else:
                response = session.post(
                    due.url, json=payload, timeout=timeout, allow_redirects=False
                )
        except requests.RequestException as exc:
            self._failed(due.url, type(exc).__name__)
            return False
        if not 200 <= response.status_code < 300:
            self._failed(due.url, f"HTTP {response.status_code}")
            return False
        return True

    def _failed(self, url: str, reason: str) -> None:
        shown = _shown(url)
        with self._cond:
            first = shown not in self._warned
            if first and len(self._warned) < 1000:
                self._warned.add(shown)
        if reason == "ConnectionError":
            # Nobody listening is the usual case when trying the emulator out: say so quietly.
            (log.info if first else log.debug)(
                "nobody is listening at %s, so its callbacks are dropped (run `kwa-batch "
                "receive` there to collect them)",
                shown,
            )
            return
        (log.warning if first else log.debug)("a callback to %s failed: %s", shown, reason)

    # -- control --------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every planned callback was posted; False if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> int:
        """Drop the pending callbacks and join the threads; return how many were dropped."""
        with self._cond:
            dropped = len(self._heap)
            self._heap.clear()
            self._stats["dropped"] += dropped
            self._stopping = True
            threads, self._threads = self._threads, []
            self._cond.notify_all()
        for thread in threads:
            thread.join(timeout=self.settings.timeout + 1)
        with self._cond:
            self._stopping = False
        if dropped:
            log.info("%d pending callback(s) dropped", dropped)
        return dropped

    def clear(self) -> None:
        """Drop the pending callbacks, zero the counters and forget what the fates
        remembered: marketing received, STOPs, restricted senders (threads keep running)."""
        with self._cond:
            self._heap.clear()
            self._stats = dict.fromkeys(self._stats, 0)
            self._fates.clear()
            self._cond.notify_all()


def _message_of(due: _Due) -> str:
    """The message a callback is about: a status's own id, or the one a reply answers."""
    return due.fields.get("reply_to") or due.fields.get("id") or f"#{due.seq}"


def _incoming(
    customer: str,
    business: str,
    body: str,
    name: str | None,
    reply_to: str | None,
    said: Reply,
) -> dict[str, str]:
    fields = {"type": said.type, "from": customer, "wanumber": business, "body": body}
    if name:
        fields["name"] = name
    if reply_to:
        fields["reply_to"] = reply_to
    if said.payload is not None:
        fields["payload"] = said.payload
    return fields


def v2_document(fields: Mapping[str, str], business: str, incoming: bool) -> dict[str, Any]:
    """A callback's flat fields (v1's) as v2's JSON document (module docstring):
    ``business`` the business number's digits, ``incoming`` for a customer's message."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": business},
    }
    if incoming:
        kind = fields["type"]
        message: dict[str, Any] = {
            "from": fields["from"],
            "id": fields["id"],
            "timestamp": fields["created_at"],
            "type": kind,
        }
        if kind == "button":
            message["button"] = {"payload": fields.get("payload", ""), "text": fields["body"]}
        elif kind == "interactive":
            reply = {"id": fields.get("payload", ""), "title": fields["body"]}
            message["interactive"] = {"type": "button_reply", "button_reply": reply}
        else:
            message["text"] = {"body": fields["body"]}
        if fields.get("reply_to"):
            message["context"] = {"from": business, "id": fields["reply_to"]}
        contact: dict[str, Any] = {"wa_id": fields["from"]}
        if fields.get("name"):
            contact["profile"] = {"name": fields["name"]}
        value["contacts"] = [contact]
        value["messages"] = [message]
        return {"meta_object": {"value": value}}
    status: dict[str, Any] = {
        "id": fields["id"],
        "status": fields["status"],
        "timestamp": fields["timestamp"],
        "recipient_id": fields["mobile"],
    }
    if "error_code" in fields:
        status["errors"] = [
            {"code": int(fields["error_code"]) if fields["error_code"].isdigit() else
             fields["error_code"], "title": fields.get("error", "")}
        ]  # fmt: skip
    if "billable" in fields:
        status["pricing"] = {
            "billable": fields["billable"] == "true",
            "pricing_model": "PMP",
            "category": fields.get("pricing_category", "service"),
        }
    value["statuses"] = [status]
    extra = {"message_id": fields["id"]}
    extra.update({n: fields[n] for n in ("ref", "ref1", "ref2") if n in fields})
    return {"meta_object": {"value": value}, "extra_info": extra}


def _decimal(price: float) -> str:
    """A price as Kaleyra writes it: a plain decimal number (``0.0125``, ``0``)."""
    return f"{price:.6f}".rstrip("0").rstrip(".") or "0"
