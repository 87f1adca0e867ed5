"""A small campaign whose funnel and costs are counted by hand (issue #19, item 5).

Twelve rows, two templates and text, three countries, written to a real callback store:

=====  ==============  =============  ===========  ==========================  =================
row    to              template       result       callbacks                   cost
=====  ==============  =============  ===========  ==========================  =================
0      +91 98765 00001 order_shipped  sent         read, price 0.0014; reply   0.0014 (price)
1      +91 98765 00002 order_shipped  sent         delivered, price 0.0014     0.0014 (price)
2      +91 98765 00003 spring_sale    sent         failed 131049               0 (not delivered)
3      +44 7911 123456 spring_sale    sent         failed 131026 (Guernsey)    0 (not delivered)
4      +44 7400 123404 spring_sale    sent         read, v2 marketing          GB marketing 0.0529
5      +1 415 555 0105 order_shipped  sent         delivered, v2 utility       US utility 0.0040
6      +1 415 555 0106 (text)         sent         read, v2 not billable       0
7      +91 98765 00008 order_shipped  failed E110  (none)                      0 (never sent)
8      +91 98765 00009 spring_sale    not_sent     (none)                      0 (never sent)
9      98765           order_shipped  rejected     (none)                      0 (never sent)
10     +91 98765 00011 (text)         sent         (none yet)                  NA: no receipt yet
11     +44 7400 123412 order_shipped  sent         delivered, no price; reply  NA: no price
=====  ==============  =============  ===========  ==========================  =================

Replies: row 0's message answered as ``<uuid>`` (no ``:0``), row 11's as ``<uuid>:0``; one
reply answers a message of another campaign (not counted), and one from row 2's customer
names no message: it is tied to the last message sent to that number before it (row 2's,
as :func:`kwa_batch.replies` ties them).

Estimated (sample rate card, sample catalogue: order_shipped utility, spring_sale
marketing, text service): IN utility 0.0014, IN marketing 0.0107, GB marketing 0.0529, GB
utility 0.0220, US utility 0.0040, service 0; a rejected row 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from kwa_batch.receipts.store import CallbackStore, IncomingMessage, StatusUpdate
from kwa_batch.results import ResultsBuilder

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
RATE_CARD = SAMPLES / "rate_card.csv"
TEMPLATES = SAMPLES / "templates.csv"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

TO = [
    "+919876500001", "+919876500002", "+919876500003", "+447911123456", "+447400123404",
    "+14155550105", "+14155550106", "+919876500008", "+919876500009", "98765",
    "+919876500011", "+447400123412",
]  # fmt: skip
TEMPLATE = [
    "order_shipped", "order_shipped", "spring_sale", "spring_sale", "spring_sale",
    "order_shipped", None, "order_shipped", "spring_sale", "order_shipped", None,
    "order_shipped",
]  # fmt: skip
# (status, error_code) as send() left each row.
OUTCOMES = [
    ("sent", None), ("sent", None), ("sent", None), ("sent", None), ("sent", None),
    ("sent", None), ("sent", None), ("failed", "E110"), ("not_sent", "KWA029"),
    ("rejected", "E13009"), ("sent", None), ("sent", None),
]  # fmt: skip


def message_id(row: int) -> str:
    return f"7c0a{row:04d}-2f1e-4c55-9a61-0123456789ab:0"


def data_frame() -> pd.DataFrame:
    """The input the campaign was sent from (its own columns: template_name, name)."""
    return pd.DataFrame(
        {
            "to": TO,
            "template_name": pd.array(TEMPLATE, dtype="str"),
            "name": [f"Customer {i}" for i in range(12)],
        }
    )


def results_frame() -> pd.DataFrame:
    """What send() returned for the campaign."""
    builder = ResultsBuilder(pd.RangeIndex(12))
    rows: list[dict[str, Any]] = []
    for row, (status, code) in enumerate(OUTCOMES):
        fields: dict[str, Any] = {"to": TO[row], "status": status, "error_code": code}
        if status == "sent":
            fields |= {"message_id": message_id(row), "sent_at": T0, "attempts": 1}
        elif code:
            fields["error_message"] = f"refused ({code})"
        rows.append(fields)
    builder.fill(list(range(12)), rows)
    return builder.frame()


def _status(row: int, status: str, **extra: Any) -> StatusUpdate:
    when = T0 + timedelta(minutes=row)
    return StatusUpdate(message_id(row), status, when, when, recipient=TO[row], **extra)


def _reply(key: str, customer: str, reply_to: str | None, body: str) -> IncomingMessage:
    when = T0 + timedelta(hours=1)
    return IncomingMessage(
        key, customer, "+911234567890", when, when, type="text", body=body, reply_to=reply_to
    )


def fill_store(path: Path) -> Path:
    """The campaign's callbacks in a real store at ``path``."""
    v2 = {"billable": True}
    with CallbackStore(path) as store:
        for update in [
            _status(0, "sent"), _status(0, "delivered", price=0.0014), _status(0, "read"),
            _status(1, "sent", price=0.0014), _status(1, "delivered", price=0.0014),
            _status(2, "failed", error_code="131049", error="marketing limit"),
            _status(3, "sent"), _status(3, "failed", error_code="131026", error="undeliverable"),
            _status(4, "delivered", **v2, pricing_category="marketing"),
            _status(4, "read", **v2, pricing_category="marketing"),
            _status(5, "delivered", **v2, pricing_category="utility"),
            _status(6, "read", billable=False, pricing_category="service"),
            _status(11, "sent"), _status(11, "delivered"),
            # another campaign's message: not one of these rows
            StatusUpdate("ffff0000-0000-0000-0000-000000000000:0", "delivered", T0, T0, price=9.0),
        ]:  # fmt: skip
            store.add_status(update)
        store.add_incoming(_reply("r0", TO[0], message_id(0).removesuffix(":0"), "Thanks!"))
        store.add_incoming(_reply("r11", TO[11], message_id(11), "When does it arrive?"))
        store.add_incoming(_reply("r-other", TO[1], "ffff0000-0000-0000-0000-000000000000", "?"))
        store.add_incoming(_reply("r-none", TO[2], None, "hello"))
    return path


#: The hand count: (by, value) -> the counts, the codes and actions of failures, the costs.
COUNTS = ("rows", "sent", "delivered", "read", "replied", "failed", "not_sent", "rejected")
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("template", "order_shipped"): {  # rows 0 1 5 7 9 11
        "counts": (6, 4, 4, 1, 2, 1, 0, 1),
        "codes": {"E110": 1},
        "actions": {"stop": 1},
        "cost": 0.0014 + 0.0014 + 0.0040,  # row 11 unknown
        "estimated": 0.0014 * 3 + 0.0040 + 0.0220,  # 0 1 7 IN, 5 US, 11 GB; 9 rejected: 0
        "unpriced": 1,
    },
    ("template", "spring_sale"): {  # rows 2 3 4 8
        "counts": (4, 3, 1, 1, 1, 2, 1, 0),
        "codes": {"131049": 1, "131026": 1},
        "actions": {"retry": 1, "final": 1},
        "cost": 0.0529,
        "estimated": 0.0107 * 2 + 0.0529 * 2,  # 2 8 IN; 3 GG (billed as GB), 4 GB
        "unpriced": 0,
    },
    ("template", "(no template)"): {  # rows 6 10
        "counts": (2, 2, 1, 1, 0, 0, 0, 0),
        "codes": {},
        "actions": {},
        "cost": 0.0,  # row 6 not billable; row 10 unknown
        "estimated": 0.0,  # service
        "unpriced": 1,
    },
    ("country", "IN"): {  # rows 0 1 2 7 8 10
        "counts": (6, 4, 2, 1, 2, 2, 1, 0),
        "codes": {"131049": 1, "E110": 1},
        "actions": {"retry": 1, "stop": 1},
        "cost": 0.0014 * 2,
        "estimated": 0.0014 * 3 + 0.0107 * 2,
        "unpriced": 1,
    },
    ("country", "GB"): {  # rows 4 11
        "counts": (2, 2, 2, 1, 1, 0, 0, 0),
        "codes": {},
        "actions": {},
        "cost": 0.0529,
        "estimated": 0.0529 + 0.0220,
        "unpriced": 1,
    },
    ("country", "US"): {  # rows 5 6
        "counts": (2, 2, 2, 1, 0, 0, 0, 0),
        "codes": {},
        "actions": {},
        "cost": 0.0040,
        "estimated": 0.0040,
        "unpriced": 0,
    },
    ("country", "GG"): {  # row 3: Guernsey, billed as GB
        "counts": (1, 1, 0, 0, 0, 1, 0, 0),
        "codes": {"131026": 1},
        "actions": {"final": 1},
        "cost": 0.0,
        "estimated": 0.0529,
        "unpriced": 0,
    },
    ("country", "(unknown)"): {  # row 9
        "counts": (1, 0, 0, 0, 0, 0, 0, 1),
        "codes": {},
        "actions": {},
        "cost": 0.0,
        "estimated": 0.0,
        "unpriced": 0,
    },
    ("total", "all"): {
        "counts": (12, 9, 6, 3, 3, 3, 1, 1),
        "codes": {"131049": 1, "131026": 1, "E110": 1},
        "actions": {"retry": 1, "final": 1, "stop": 1},
        "cost": 0.0014 * 2 + 0.0529 + 0.0040,
        "estimated": 0.0014 * 3 + 0.0107 * 2 + 0.0529 * 2 + 0.0220 + 0.0040,
        "unpriced": 2,
    },
}
#: Each row's cost by hand (None: NA), with the rate card.
ROW_COSTS = [0.0014, 0.0014, 0.0, 0.0, 0.0529, 0.0040, 0.0, 0.0, 0.0, 0.0, None, None]
