"""The v1 messages endpoint: one request in, one answer out, as a WSGI application.

:class:`MessagesEndpoint` takes a request to ``/v1/<SID>/messages`` through its stages, the
first failing one answering (:mod:`kwa_batch.emulator.request_checks` lists them):

1. the route, then the SID and the key (the body is read first: the key may travel in it);
2. a fault drawn before the checks (``429``, ``503``; :mod:`kwa_batch.emulator.faults`);
3. the body (:mod:`kwa_batch.emulator.bodies`) and the fields
   (:func:`~kwa_batch.emulator.request_checks.check_fields`);
4. a queued fault, the API's rate limit, WhatsApp's limits when they answer through the
   API (:mod:`kwa_batch.emulator.limits`);
5. the ledger (:mod:`kwa_batch.emulator.ledger`), the callbacks
   (:mod:`kwa_batch.emulator.callbacks`), the template catalogue's verdict
   (:mod:`kwa_batch.emulator.template_catalogue`), and the answer
   (:mod:`kwa_batch.emulator.answers`).

Every answer is delayed by ``latency`` seconds plus a uniform random ``0..jitter`` seconds,
*after* the message is recorded, as a slow real server would: a client that gives up
waiting cannot know whether it was sent. The template list (``/v2/...``) is served by the
catalogue, when there is one.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from .._http.serving import ABORT, CAN_ABORT
from ..privacy import mask_phone
from .answers import Refusal, seconds_text, success
from .behaviour import NetworkSettings
from .bodies import EmulatorRequest, read_fields
from .request_checks import Accepted, check_fields

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .callbacks import CallbackPoster
    from .faults import Misbehaviour
    from .ledger import Ledger
    from .limits import EmulatedLimits
    from .template_catalogue import EmulatedTemplates

__all__ = ["KEY_FIELD", "MessagesEndpoint"]

log = logging.getLogger(__name__)

#: The key's name, as a header or a field.
KEY_FIELD = "api-key"
_ENDPOINT = re.compile(r"/v1/([^/]+)/messages/?")


class MessagesEndpoint:
    """The WSGI application of one emulator: the parts it plays, wired together.

    ``network`` may be replaced while serving: it is read for every answer. ``callbacks``
    False means no status callbacks (the poster still posts :meth:`Emulator.reply`'s).
    """

    def __init__(
        self,
        *,
        sid: str,
        api_key: str,
        network: NetworkSettings,
        ledger: Ledger,
        misbehaviour: Misbehaviour,
        limits: EmulatedLimits,
        templates: EmulatedTemplates | None,
        poster: CallbackPoster,
        callbacks: bool,
        seed: int | None,
    ) -> None:
        self.sid = sid
        self.api_key = api_key
        self.network = network
        self.ledger = ledger
        self.misbehaviour = misbehaviour
        self.limits = limits
        self.templates = templates
        self.poster = poster
        self.callbacks = callbacks
        self._jitter = random.Random(None if seed is None else f"{seed}/jitter")
        self.stopping = threading.Event()  # wakes "late" answers when the server stops

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request; a ``"reset"`` fault drops the connection (or raises
        :class:`ConnectionAbortedError` in a server that cannot drop it)."""
        refusal_or_payload, fault = self.answer(EmulatorRequest(environ))
        network = self.network
        delay = network.latency
        if network.jitter > 0:
            delay += self._jitter.random() * network.jitter
        if fault == "late":
            self.stopping.wait(delay + self.misbehaviour.settings.late_delay)
        elif delay > 0:
            time.sleep(delay)
        if fault == "reset":
            if not environ.get(CAN_ABORT):
                raise ConnectionAbortedError(
                    "fault 'reset': the emulator dropped the connection after recording the message"
                )
            environ[ABORT] = True
            return []
        if isinstance(refusal_or_payload, Refusal):
            status, payload = refusal_or_payload.status, refusal_or_payload.payload()
            extra = list(refusal_or_payload.headers)
        else:
            status, payload, extra = 200, refusal_or_payload, []
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra],
        )
        return [body]

    def answer(self, request: Request) -> tuple[Refusal | dict[str, Any], str | None]:
        """Route, authenticate, check and record one request.

        Returns the answer and the fault that changes how it is delivered (``"reset"`` or
        ``"late"``; the others are answers of their own).
        """
        listed = self.templates and self.templates.route(request, self.sid, self.api_key)
        if listed:
            status, answer = listed
            return (
                answer if status == 200 else Refusal(status, answer["code"], answer["error"])
            ), None
        match = _ENDPOINT.fullmatch(request.path)
        if match is None:
            return Refusal(404, "E404", {"path": "no such endpoint: use /v1/<SID>/messages"}), None
        self.ledger.saw_request()
        if request.method not in ("GET", "POST"):
            return Refusal(
                405,
                "E405",
                {"method": f"{request.method} is not allowed: use POST (or GET)"},
                headers=(("Allow", "GET, POST"),),
            ), None

        fields, body_problem = read_fields(request)
        key = request.headers.get(KEY_FIELD, "").strip() or fields.pop(KEY_FIELD, "").strip()
        fields.pop(KEY_FIELD, None)
        if match.group(1) != self.sid:
            return Refusal(401, "E401", {"sid": "unknown account SID in the URL"}), None
        if not key:
            return Refusal(401, "E401", {KEY_FIELD: "missing: send it in the api-key header"}), None
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            return Refusal(401, "E401", {KEY_FIELD: "invalid for this SID"}), None

        drawn = self.misbehaviour.before_checks()  # refuses a request unprocessed
        if drawn is not None:
            return drawn, None
        if body_problem is not None:
            return Refusal(body_problem.status, "E400", {"request": body_problem.reason}), None

        outcome = check_fields(fields)
        if isinstance(outcome, Refusal):
            log.debug("refused %s: %s", outcome.code, ", ".join(outcome.errors))
            return outcome, None
        admitted = self.misbehaviour.admit(len(outcome.recipients))
        if isinstance(admitted, Refusal):
            return admitted, None
        limited = self.limits.admit(outcome.sender, outcome.recipients)
        if limited.refusal is not None:
            code, reason, wait = limited.refusal
            headers = (("Retry-After", seconds_text(wait)),)
            return Refusal(429, code, {"request": reason}, headers=headers), None
        failure = self.templates and self.templates.failure(outcome.type, fields)
        category = self.templates.category(outcome.type, fields) if self.templates else None
        payload = self._record(outcome, limited.failures, failure or None, category)
        if admitted == "500":
            return self.misbehaviour.refusal("500"), None
        return payload, admitted

    def _record(
        self,
        accepted: Accepted,
        failures: Mapping[int, tuple[str, str]] | None = None,
        failure: tuple[str, str] | None = None,
        category: str | None = None,
    ) -> dict[str, Any]:
        """Put the request in the ledger, plan its callbacks, build the success answer."""
        received = datetime.now(UTC)
        kept = accepted.kept
        recipients = accepted.recipients
        request_id = self.ledger.record(accepted, received)
        if failure is not None and self.templates is not None:
            self.templates.note(request_id, recipients, kept, failure)
        callback_url = kept["callback_url"]
        if callback_url is not None and self.callbacks:
            refs = {name: kept[name] for name in ("ref", "ref1", "ref2")}
            self.poster.message_accepted(
                request_id,
                recipients,
                accepted.sender,
                refs,
                callback_url,
                failures,
                failure=failure,
                kind=accepted.type,
                category=category,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "accepted %s %s message(s) to %s",
                len(recipients),
                accepted.type,
                ",".join(mask_phone(r) for r in recipients),
            )
        return success(request_id, accepted.type, kept["body"], received, recipients)
