"""What the emulator answers: the document's success body, and its error bodies.

Every answer is JSON (``Content-Type: application/json``). Success is HTTP 200 with the
document's shape, one ``data`` entry per recipient in the order given, ``recipient``
without ``+``::

    {"id": "<uuid4>", "type": "text", "body": "<body, or '' for a template>",
     "createdDateTime": "2020-01-29 06:22:21+00:00", "totalCount": 2,
     "data": [{"message_id": "<id>:0", "recipient": "919876543210"},
              {"message_id": "<id>:1", "recipient": "14155550123"}],
     "error": {}}

Kaleyra has not published the exact body of an error, and integrations show two shapes,
so every error (:class:`Refusal`) carries both: a ``code`` and ``message`` (the document's
description), and an ``error`` object of ``{field: reason}``::

    HTTP 400 {"code": "E13009", "message": "Invalid or in-correct input of the TO number.",
              "error": {"to": "invalid number: 12345"}, "data": []}

Codes: ``E13009`` (to), ``E13008`` (from), ``E413`` (HTML tags), ``E400`` (any other bad
or missing field, too many recipients, unreadable body; HTTP 413 for an oversized body),
``E401`` (SID or key), ``E404`` (path), ``E405`` (method), ``E429`` and ``E503`` (faults
and the rate limit, :mod:`kwa_batch.emulator.faults`), ``E500`` (the fault ``"500"``, or a
bug in the emulator itself), and WhatsApp's ``130429`` and ``131056`` when the limits
answer through the API (:mod:`kwa_batch.emulator.limits`).

v2 (``/v2/<SID>/whatsapp/<sender>/messages``) answers success with HTTP 202 and
``"code": "WA202"``; Kaleyra does not document the rest of that body, so its shape is a
setting (:class:`~kwa_batch.emulator.behaviour.VersionSettings`, :func:`success_v2`). Its
errors have the same shape as v1's, with v2's codes: ``WA400`` (a payload it refuses,
HTTP 400), ``RBC001`` (SID or key, 401), ``WA-401`` (the number is on the other API
version, 401; v1 calls from a v2 number get it too).

``Retry-After`` is written in seconds: an integer when whole (``"1"``), else a decimal
rounded up to the millisecond (``"0.25"``); HTTP allows only integers, so a client must
parse it as a float (:class:`~kwa_batch.sending.client.KaleyraClient` does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .limits import LIMIT_CODES

__all__ = [
    "MESSAGES",
    "Refusal",
    "Success",
    "seconds_text",
    "server_refusal",
    "success",
    "success_v2",
]

#: Each code's ``message``, as the document words it.
MESSAGES = {
    "E400": "Invalid or missing parameters.",
    "E401": "Invalid API key or SID",
    "E404": "Not found",
    "E405": "Method not allowed",
    "E413": "Invalid or In-Correct input for passing HTML tags in parameters.",
    "E429": "Too many requests: slow down and retry after Retry-After seconds.",
    "E503": "Service temporarily unavailable: retry later.",
    "E13008": "Invalid or in-correct input of the From number.",
    "E13009": "Invalid or in-correct input of the TO number.",
    "E500": "Internal server error",
    "WA400": "Invalid payload.",
    "RBC001": "Invalid SID or API key.",
    "WA-401": "The number is associated with different Version.",
    **LIMIT_CODES,
}


@dataclass(frozen=True)
class Refusal:
    """An error answer: HTTP status, code, ``{field: reason}`` and extra headers."""

    status: int
    code: str
    errors: dict[str, str]
    headers: tuple[tuple[str, str], ...] = ()

    def payload(self) -> dict[str, Any]:
        """The JSON body: ``code``, ``message``, ``error`` and an empty ``data``."""
        return {
            "code": self.code,
            "message": MESSAGES[self.code],
            "error": self.errors,
            "data": [],
        }


@dataclass(frozen=True)
class Success:
    """A success answer other than v1's HTTP 200: its status and JSON body."""

    status: int
    payload: dict[str, Any]


def seconds_text(seconds: float) -> str:
    """``Retry-After`` text: whole seconds as an integer, else rounded up to the millisecond.

    >>> seconds_text(1.0), seconds_text(0.25), seconds_text(0.0001)
    ('1', '0.25', '0.001')
    """
    millis = max(math.ceil(round(seconds * 1000, 6)), 0)
    whole, rest = divmod(millis, 1000)
    return str(whole) if rest == 0 else f"{whole}.{rest:03d}".rstrip("0")


def server_refusal(status: int, reason: str) -> bytes:
    """The body of an answer the server gives before the emulator sees the request."""
    code = "E503" if status == 503 else "E400"
    return json.dumps(Refusal(status, code, {"request": reason}).payload()).encode()


def success(
    request_id: str, kind: str, body: str | None, received: datetime, recipients: Sequence[str]
) -> dict[str, Any]:
    """The document's success answer for an accepted request (``body`` of a text only)."""
    return {
        "id": request_id,
        "type": kind,
        "body": (body or "") if kind == "text" else "",
        "createdDateTime": received.strftime("%Y-%m-%d %H:%M:%S+00:00"),
        "totalCount": len(recipients),
        "data": [
            {"message_id": f"{request_id}:{n}", "recipient": recipient}
            for n, recipient in enumerate(recipients)
        ],
        "error": {},
    }


def success_v2(wamid: str, recipient: str, shape: str) -> Success:
    """v2's answer to an accepted send (HTTP 202, ``WA202``), in one of the shapes of
    :data:`~kwa_batch.emulator.behaviour.V2_ANSWERS` (``recipient`` as digits).

    >>> success_v2("wamid.X", "919876543210", "id").payload
    {'code': 'WA202', 'message': 'Accepted', 'id': 'wamid.X'}
    """
    payload: dict[str, Any] = {"code": "WA202", "message": "Accepted"}
    if shape == "whatsapp":
        payload["messaging_product"] = "whatsapp"
        payload["contacts"] = [{"input": recipient, "wa_id": recipient}]
        payload["messages"] = [{"id": wamid}]
    elif shape == "v1":
        payload["data"] = [{"message_id": wamid, "recipient": recipient}]
    else:
        payload["id"] = wamid
    return Success(202, payload)
