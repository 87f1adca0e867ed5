"""The emulator's ledger: every message it accepted, and how many requests it saw.

Each accepted recipient becomes one row of :attr:`Ledger.frame`
(:attr:`~kwa_batch.emulator.server.Emulator.messages`); a refused request adds nothing.
:attr:`Ledger.requests_seen` counts every request to ``/v1/<any SID>/messages``, refused
ones included. Messages answered with a fault after processing (``500``, ``reset``,
``late``) are in the ledger: they were accepted.

It keeps one tuple per request, not per message (1,000,000 messages sent 100 a request
take about 75 MB, not 330), and builds the DataFrame when asked.
"""

from __future__ import annotations

import base64
import random
import threading
import uuid
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from .media import MEDIA_FIELDS
from .request_checks import KEPT_FIELDS, Accepted

__all__ = ["LEDGER_COLUMNS", "Ledger"]

#: Columns of :attr:`Ledger.frame` (``Emulator.messages``), in order.
LEDGER_COLUMNS = (
    "message_id",
    "request_id",
    "to",
    "from",
    "type",
    "channel",
    "body",
    "template_name",
    "params",
    "lang_code",
    "ref",
    "ref1",
    "ref2",
    "callback_url",
    "source",
    *MEDIA_FIELDS,
    "api_version",
    "message_object",
    "received_at",
)


class Ledger:
    """The accepted messages, thread-safe.

    Args:
        ids: the generator request ids are drawn from (seeded: the same ids every run).
    """

    def __init__(self, ids: random.Random) -> None:
        self._ids = ids
        self._lock = threading.Lock()  # guards the entries, the counters and the generator
        # One entry per accepted request: (request_id, recipients, sender, type, channel,
        # *KEPT_FIELDS, api_version, message_object, received_at, message_ids), numbers
        # as digits; message_ids None when they are request_id:n.
        self._entries: list[tuple[Any, ...]] = []
        self._message_count = 0
        self._requests_seen = 0

    def saw_request(self) -> None:
        """Count one request to the endpoint, whatever its outcome."""
        with self._lock:
            self._requests_seen += 1

    def record(
        self, accepted: Accepted, received: datetime, message_ids: list[str] | None = None
    ) -> str:
        """Append an accepted request; return its request id (a seeded uuid4).

        Its messages' ids are ``<request id>:<n>`` (v1's), or ``message_ids`` (v2's wamids).
        """
        with self._lock:
            request_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
            self._entries.append(
                (
                    request_id,
                    accepted.recipients,
                    accepted.sender,
                    accepted.type,
                    accepted.channel,
                    *[accepted.kept.get(name) for name in KEPT_FIELDS],
                    accepted.api_version,
                    accepted.message_object,
                    received,
                    message_ids,
                )
            )
            self._message_count += len(accepted.recipients)
        return request_id

    def wamid(self, recipient: str) -> str:
        """A new WhatsApp message id for a v2 message to ``recipient`` (digits), drawn from
        the seeded generator: ``wamid.`` and URL-safe base64, as WhatsApp writes them."""
        with self._lock:
            drawn = self._ids.getrandbits(144).to_bytes(18, "big")
        raw = b"\x15\x02\x00\x11\x18" + recipient.encode() + b"\x15\x02\x00" + drawn
        return "wamid." + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def clear(self) -> None:
        """Forget every message and zero the counters."""
        with self._lock:
            self._entries.clear()
            self._message_count = 0
            self._requests_seen = 0

    @property
    def message_count(self) -> int:
        """Rows in :attr:`frame` (accepted messages), without building it."""
        return self._message_count

    @property
    def requests_seen(self) -> int:
        """HTTP requests received on the messages endpoints (v1 and v2, any SID), whatever
        their outcome."""
        with self._lock:
            return self._requests_seen

    @property
    def frame(self) -> pd.DataFrame:
        """One row per accepted message (per recipient), oldest first.

        Columns are :data:`LEDGER_COLUMNS`; ``to`` and ``from`` are E.164 with ``+``;
        ``type`` and ``channel`` lower-cased; other fields as received, NA when absent;
        ``api_version`` the API the message came by (``v1``, ``v2``); for a v2 message,
        ``message_id`` is its wamid, ``message_object`` WhatsApp's message object as JSON
        text, and ``type`` the object's (``text``, ``template``, ``interactive``, ``image``...),
        with ``body``, ``template_name``, ``lang_code``, ``params`` (the body's
        parameters, comma-joined), ``media_url`` and ``caption`` read from it;
        ``received_at`` is a tz-aware UTC timestamp. String columns use pandas' ``string``
        dtype.
        """
        import pyarrow as pa  # here, not at the top: the server itself does not need it

        with self._lock:
            requests = list(self._entries)
        counts = np.fromiter((len(r[1]) for r in requests), dtype=np.intp, count=len(requests))
        # Row -> request; None when every request had one recipient (nothing to repeat).
        rows = (
            None
            if len(counts) == 0 or (counts == 1).all()
            else pa.array(np.repeat(np.arange(len(requests), dtype=np.int64), counts))
        )

        def strings(
            values: list[str | None], *, repeat: bool = True
        ) -> pd.api.extensions.ExtensionArray:
            array = pa.array(values, type=pa.large_string())  # 3x faster than pd.array(list)
            if repeat and rows is not None:
                array = array.take(rows)
            return pd.array(array, dtype="string")

        columns: dict[str, Any] = {
            "message_id": strings(
                [
                    r[-1][n] if r[-1] is not None else f"{r[0]}:{n}"
                    for r in requests
                    for n in range(len(r[1]))
                ],
                repeat=False,
            ),
            "request_id": strings([r[0] for r in requests]),
            "to": strings(["+" + d for r in requests for d in r[1]], repeat=False),
            "from": strings(["+" + r[2] for r in requests]),
        }
        for i, name in enumerate(LEDGER_COLUMNS[4:-1], start=3):
            columns[name] = strings([r[i] for r in requests])
        received = pd.DatetimeIndex([r[-2] for r in requests], dtype="datetime64[us, UTC]")
        columns["received_at"] = (received if rows is None else received.take(rows)).array
        return pd.DataFrame(columns)
