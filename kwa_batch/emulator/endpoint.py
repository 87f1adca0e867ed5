"""The messages endpoints, v1 and v2: one request in, one answer out, as a WSGI application.

:class:`MessagesEndpoint` takes a request to ``/v1/<SID>/messages`` through its stages, the
first failing one answering (:mod:`kwa_batch.emulator.request_checks` lists them):

1. the route, then the SID and the key (the body is read first: the key may travel in it),
   then the sender's API version (``from`` a number declared v2: 401 ``WA-401``,
   :class:`~kwa_batch.emulator.behaviour.VersionSettings`);
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

A v2 send, ``POST /v2/<SID>/whatsapp/<sender digits>/messages`` with the ``api-key``
header and the JSON body ``{"messaging_object", "extra_info"}``, goes through the same
stages with v2's words: a wrong SID or key is 401 ``RBC001``; a sender declared v1 is 401
``WA-401``; the body is checked by :mod:`kwa_batch.emulator.v2_checks` (400 ``WA400``);
the faults, the rate limit, WhatsApp's limits, the ledger, the catalogue's verdict
(:meth:`~kwa_batch.emulator.template_catalogue.EmulatedTemplates.failure_v2`) and the fates
are v1's; success is HTTP 202 ``WA202`` with the message's wamid, in the shape set by
:attr:`~kwa_batch.emulator.behaviour.VersionSettings.answer`. Its callbacks go to
``extra_info.callback_url``, the emulator's stand-in for Kaleyra's callback profiles
(configured in Kaleyra's console and named in the send), v2-shaped
(:mod:`kwa_batch.emulator.callbacks`).
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
from .answers import Refusal, Success, seconds_text, success, success_v2
from .behaviour import NetworkSettings, VersionSettings
from .bodies import EmulatorRequest, read_fields
from .request_checks import Accepted, check_fields, e164_digits
from .v2_checks import check_send

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
_V2_ENDPOINT = re.compile(r"/v2/([^/]+)/whatsapp/([^/]+)/messages/?")


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
        versions: VersionSettings | None = None,
    ) -> None:
        self.sid = sid
        self.versions = versions or VersionSettings()
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
        elif isinstance(refusal_or_payload, Success):
            status, payload, extra = refusal_or_payload.status, refusal_or_payload.payload, []
        else:
            status, payload, extra = 200, refusal_or_payload, []
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra],
        )
        return [body]

    def answer(self, request: Request) -> tuple[Refusal | Success | dict[str, Any], str | None]:
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
        v2 = _V2_ENDPOINT.fullmatch(request.path)
        if v2 is not None:
            return self._answer_v2(request, v2.group(1), v2.group(2))
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
        sender = e164_digits(fields.get("from", ""))
        if sender is not None and self.versions.of(sender) == "v2":
            return _other_version(sender, "v2"), None
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

    def _answer_v2(
        self, request: Request, sid: str, sender_text: str
    ) -> tuple[Refusal | Success, str | None]:
        """A v2 send through its stages (the module docstring)."""
        self.ledger.saw_request()
        if request.method != "POST":
            return Refusal(
                405, "E405", {"method": f"{request.method} is not allowed: use POST"},
                headers=(("Allow", "POST"),),
            ), None  # fmt: skip
        key = request.headers.get(KEY_FIELD, "").strip()
        if sid != self.sid:
            return Refusal(401, "RBC001", {"sid": "unknown account SID in the URL"}), None
        if not key or not secrets.compare_digest(key.encode(), self.api_key.encode()):
            reason = "invalid for this SID" if key else "missing: send it in the api-key header"
            return Refusal(401, "RBC001", {KEY_FIELD: reason}), None
        drawn = self.misbehaviour.before_checks()
        if drawn is not None:
            return drawn, None
        sender = e164_digits(sender_text)
        if sender is None:
            return Refusal(
                400, "WA400", {"sender": f"not a number in E.164: {sender_text[:40]}"}
            ), None
        if self.versions.of(sender) == "v1":
            return _other_version(sender, "v1"), None
        try:
            document = json.loads(request.get_data(cache=False) or b"null")
        except (ValueError, UnicodeError, RecursionError):
            return Refusal(
                400, "WA400", {"body": "not JSON: send the message as a JSON object"}
            ), None
        outcome = check_send(document, sender)
        if isinstance(outcome, Refusal):
            log.debug("refused %s: %s", outcome.code, ", ".join(outcome.errors))
            return outcome, None
        accepted = outcome.accepted
        admitted = self.misbehaviour.admit(1)
        if isinstance(admitted, Refusal):
            return admitted, None
        limited = self.limits.admit(sender, accepted.recipients)
        if limited.refusal is not None:
            code, reason, wait = limited.refusal
            headers = (("Retry-After", seconds_text(wait)),)
            return Refusal(429, code, {"request": reason}, headers=headers), None
        failure = category = None
        buttons = outcome.buttons
        if accepted.type == "template":
            template = outcome.message["template"]
            if self.templates is not None:
                failure = self.templates.failure_v2(template)
                category = self.templates.category_v2(template)
            buttons = _quick_replies(template, self.templates)
        wamid = self.ledger.wamid(accepted.recipients[0])
        self._record(accepted, limited.failures, failure, category, wamid=wamid, buttons=buttons)
        if admitted == "500":
            return self.misbehaviour.refusal("500"), None
        return success_v2(wamid, accepted.recipients[0], self.versions.answer), admitted

    def _record(
        self,
        accepted: Accepted,
        failures: Mapping[int, tuple[str, str]] | None = None,
        failure: tuple[str, str] | None = None,
        category: str | None = None,
        *,
        wamid: str | None = None,
        buttons: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, Any]:
        """Put the request in the ledger, plan its callbacks, build the success answer
        (v1's; a v2 send has its ``wamid``, and its own ``buttons``)."""
        received = datetime.now(UTC)
        kept = accepted.kept
        recipients = accepted.recipients
        message_ids = None if wamid is None else [wamid]
        request_id = self.ledger.record(accepted, received, message_ids)
        if failure is not None and self.templates is not None:
            self.templates.note(request_id, recipients, kept, failure, message_ids)
        callback_url = kept.get("callback_url")
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
                message_ids=message_ids,
                buttons=buttons,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "accepted %s %s message(s) to %s",
                len(recipients),
                accepted.type,
                ",".join(mask_phone(r) for r in recipients),
            )
        return success(request_id, accepted.type, kept.get("body"), received, recipients)


def _other_version(sender: str, version: str) -> Refusal:
    """``WA-401``: ``sender`` (digits) belongs to ``version``, and was called by the other."""
    other = "v1" if version == "v2" else "v2"
    return Refusal(
        401,
        "WA-401",
        {
            "from": f"+{sender} is associated with different Version: it is on {version}, "
            f"not {other}; send through /{version}/"
        },
    )


def _quick_replies(
    template: Mapping[str, Any], templates: EmulatedTemplates | None
) -> tuple[tuple[str, str], ...]:
    """A v2 template's quick-reply buttons as ``(text, payload)`` (the text from the
    catalogue, else the payload)."""
    found: list[tuple[str, str]] = []
    for part in template.get("components") or []:
        if not isinstance(part, Mapping) or str(part.get("sub_type", "")).lower() != "quick_reply":
            continue
        index = int(str(part.get("index", 0))) if str(part.get("index", 0)).isdigit() else 0
        for parameter in part.get("parameters") or []:
            payload = parameter.get("payload") if isinstance(parameter, Mapping) else None
            if isinstance(payload, str) and payload:
                text = templates.button_text(template, index) if templates else None
                found.append((text or payload, payload))
    return tuple(found)
