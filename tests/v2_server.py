"""An independent stand-in for Kaleyra's WhatsApp API v2, written from the v2 section of
``kaleyra-facts.md`` only (not from the project's emulator or client): the tests of the v2
client send to it, so that a misreading of v2 on one side cannot hide on the other.

What the facts say, and what it does:

- ``POST /v2/<SID>/whatsapp/<sender number>/messages`` with the ``api-key`` header: another
  path is 404, another method 405, another key ``RBC001`` (wrong SID or key).
- A JSON body ``{"messaging_object": {...}, "extra_info": {...}}``; ``messaging_object`` is
  WhatsApp's message object: ``messaging_product: "whatsapp"``, ``to`` (one recipient),
  ``type``, and the object of that type (``text``, ``template``, ``image``...). Anything
  else is ``WA400``.
- A number belongs to one API version: a sender declared on v1 is answered ``WA-401``.
- Success is HTTP 202. Its body is not in the documents, so each server answers in one of
  the shapes the client must read (:data:`SHAPES`): WhatsApp's ``messages[].id`` at the top
  or under ``data``, v1's ``data[].message_id``, or a top-level ``id``.

Every request is recorded (:attr:`V2Server.requests`), accepted or not, in arrival order.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

#: The answer shapes of a 202, by name.
SHAPES = ("messages", "data_messages", "data", "id")
#: A 202 that names no message id (the client cannot tell what became of the row).
NO_ID = "no_id"
#: The message types WhatsApp's message object may carry, as named in the facts.
TYPES = (
    "text",
    "template",
    "image",
    "document",
    "video",
    "audio",
    "interactive",
    "location",
    "contacts",
    "sticker",
    "reaction",
)

SID = "HXV2TEST"
KEY = "v2-test-key"


@dataclass
class Received:
    """One request as the server saw it."""

    seq: int
    method: str
    path: str
    sender: str | None
    api_key_ok: bool
    body: Any
    status: int = 0
    code: str | None = None
    wamid: str | None = None
    answered_seq: int = 0  # how many answers were sent before this one arrived
    answer_index: int = -1  # how many answers were sent before this one's


@dataclass
class V2Server:
    """A v2 endpoint on 127.0.0.1 (a free port), in a ``with`` block.

    Args:
        shape: the success answer's shape, one of :data:`SHAPES`.
        v1_senders: senders (digits) declared on v1: answered ``WA-401``.
        latency: seconds each answer takes (a real API's are tens of milliseconds: the time
            a client needs to act on one answer is then small beside the time others take).
        sid, api_key: the account it accepts.
    """

    shape: str = "messages"
    v1_senders: frozenset[str] = frozenset()
    latency: float = 0.0
    sid: str = SID
    api_key: str = KEY
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _answers: int = 0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if self.shape not in (*SHAPES, NO_ID):
            raise ValueError(f"shape {self.shape!r}: one of {SHAPES} or {NO_ID!r}")
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give the client."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> V2Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def accepted(self) -> list[Received]:
        """The requests answered 202."""
        return [r for r in self.requests if r.status == 202]

    def arrived_after(self, answered: Received) -> list[Received]:
        """The requests that arrived once ``answered``'s answer was given."""
        return [r for r in self.requests if r.answered_seq > answered.answer_index]

    # -- the application ------------------------------------------------------------------

    def _app(self, environ: Any, start_response: Any) -> Any:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        with self._lock:
            seen = Received(
                seq=next(self._seq),
                method=request.method,
                path=request.path,
                sender=None,
                api_key_ok=request.headers.get("api-key") == self.api_key,
                body=None,
                answered_seq=self._answers,
            )
            self.requests.append(seen)
        status, body = self._answer(request, seen)
        if self.latency:
            time.sleep(self.latency)  # before the answer is counted as given
        with self._lock:
            seen.status = status
            seen.answer_index = self._answers
            self._answers += 1
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _answer(self, request: Request, seen: Received) -> tuple[int, dict[str, Any]]:
        parts = request.path.strip("/").split("/")
        if len(parts) != 5 or parts[0] != "v2" or parts[2] != "whatsapp" or parts[4] != "messages":
            return 404, {"error": {"message": f"no such endpoint: {request.path}"}}
        if request.method != "POST":
            return 405, {"error": {"message": "POST only"}}
        if parts[1] != self.sid or not seen.api_key_ok:
            seen.code = "RBC001"
            return 401, {"code": "RBC001", "message": "Invalid SID or API key"}
        seen.sender = parts[3]
        try:
            seen.body = json.loads(request.get_data(as_text=True))
        except ValueError:
            return self._refuse(seen, "the body is not JSON")
        if request.mimetype != "application/json":
            return self._refuse(seen, f"Content-Type {request.mimetype!r}, not application/json")
        problem = _check(seen.body)
        if problem:
            return self._refuse(seen, problem)
        if not seen.sender.isdigit():
            return self._refuse(seen, f"sender {seen.sender!r} is not a number")
        if seen.sender in self.v1_senders:
            seen.code = "WA-401"
            return 401, {
                "error": {"code": "WA-401", "message": "Number associated with different Version"}
            }
        wamid = "wamid." + uuid.uuid4().hex.upper()
        seen.wamid = wamid
        to = seen.body["messaging_object"]["to"]
        return 202, self._accepted(wamid, to)

    @staticmethod
    def _refuse(seen: Received, why: str) -> tuple[int, dict[str, Any]]:
        seen.code = "WA400"
        return 400, {"errors": [{"code": "WA400", "message": why}]}

    def _accepted(self, wamid: str, to: str) -> dict[str, Any]:
        whatsapp = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }
        if self.shape == "messages":
            return {"code": "WA202", **whatsapp}
        if self.shape == "data_messages":
            return {"code": "WA202", "message": "Accepted", "data": whatsapp}
        if self.shape == "data":
            return {"id": str(uuid.uuid4()), "data": [{"recipient": to, "message_id": wamid}]}
        if self.shape == NO_ID:
            return {"code": "WA202", "message": "Accepted"}
        return {"id": wamid}


class _Quiet(WSGIRequestHandler):
    """No access log on stderr."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _check(body: Any) -> str | None:
    """What is wrong with a send body (None when nothing is)."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    unknown = set(body) - {"messaging_object", "extra_info"}
    if unknown:
        return f"unknown field(s): {sorted(unknown)}"
    info = body.get("extra_info", {})
    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
        return "extra_info is not an object of strings"
    message = body.get("messaging_object")
    if not isinstance(message, dict):
        return "messaging_object is missing"
    if message.get("messaging_product") != "whatsapp":
        return "messaging_object.messaging_product is not 'whatsapp'"
    to = message.get("to")
    if not isinstance(to, str) or not to.lstrip("+").isdigit():
        return f"messaging_object.to {to!r} is not one number"
    kind = message.get("type")
    if kind not in TYPES:
        return f"messaging_object.type {kind!r} is not a WhatsApp message type"
    if not isinstance(message.get(kind), dict):
        return f"messaging_object.{kind} is missing"
    if kind == "text" and not isinstance(message["text"].get("body"), str):
        return "messaging_object.text.body is missing"
    if kind == "template":
        template = message["template"]
        if not template.get("name") or not isinstance(template.get("language"), dict):
            return "messaging_object.template needs a name and a language"
    return None
