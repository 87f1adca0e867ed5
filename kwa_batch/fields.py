"""The API's fields: the columns of a recipient file, their limits, and the one message frame.

Every other module takes these names from here: the loader maps a file's headers onto
:data:`API_COLUMNS`, validation checks them, the planner groups rows on
:data:`MESSAGE_COLUMNS` and the journal keys its records with :func:`row_keys`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a frame is made: the limits alone need none
    import pandas as pd

__all__ = [
    "API_COLUMNS",
    "BODY_MAX",
    "DERIVED_COLUMNS",
    "FOLLOW_UP_OF",
    "KNOWN_TYPES",
    "MAX_RECIPIENTS_PER_REQUEST",
    "MESSAGE_COLUMNS",
    "REF_MAX",
    "SESSION_TYPES",
    "V2_COLUMNS",
    "message_frame",
    "request_form",
    "row_keys",
]

#: The API's own field names, which are also the CSV's column names.
API_COLUMNS = (
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
    # Media messages and media and authentication templates (issue #12).
    "media_url",
    "caption",
    "param_header",
    "param_url",
    "verification_code",
    # The rich kinds WhatsApp's message objects carry, sent by Kaleyra's v2 API (issue #20).
    "buttons",
    "list",
    "list_button",
    "reply_to",
    "message_json",
    # Filled by validation: a carousel's card_N_media_url / card_N_params columns, gathered
    # as JSON ([{"media_url", "params"}, ...]), and the template's button types in order
    # (from the catalogue, on v2: which index each button value goes to), and the media
    # kinds of its header and of its cards' headers (IMAGE, VIDEO, DOCUMENT: what a link is
    # sent as, whatever its extension).
    "cards",
    "template_buttons",
    "header_format",
    "card_header_format",
)
#: The columns only Kaleyra's v2 API can send (v1's form has no such fields): a row that
#: fills one is refused on v1, and :func:`request_form` never sends them.
V2_COLUMNS = API_COLUMNS[API_COLUMNS.index("buttons") :]
#: Columns validation fills from others: never read from a file, and no part of a row's
#: key (the catalogue they come from may change between runs; the row does not).
DERIVED_COLUMNS = ("template_buttons", "header_format", "card_header_format")
#: The columns that make a message: two rows alike in all of them but ``to`` are the same
#: message (and can share one request).
MESSAGE_COLUMNS = tuple(name for name in API_COLUMNS if name != "to")
#: A column a recipients frame may carry (``kwa-batch follow-up`` writes it): what the row
#: retries (the message id of the attempt it follows up). It is no field of the API; where
#: it is filled, the row's key is that attempt and the number alone (not the content), so
#: that a journal records each retry once, apart from the row's first send and from its
#: other retries, whatever else changed since.
FOLLOW_UP_OF = "follow_up_of"
#: Message types the API document describes.
KNOWN_TYPES = (
    "text",
    "template",
    "media",
    "mediatemplate",
    "authenticationtemplate",
    "interactive",
)
#: The session message types: allowed only inside an open 24-hour conversation window (a
#: ``message_json`` row takes its object's type, WhatsApp's names among these).
SESSION_TYPES = (
    "text",
    "media",
    "interactive",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
)
#: The longest ``ref``, ``ref1``, ``ref2`` the API takes, in characters.
REF_MAX = 255
#: The longest text ``body``, in characters.
BODY_MAX = 4096
#: Kaleyra's documented cap of comma-joined recipients in one request.
MAX_RECIPIENTS_PER_REQUEST = 100

_KEY_CHUNK = 50_000
# The fields every content key is made of, in this order, whatever API_COLUMNS grows into:
# journals written by earlier versions must keep matching their rows. A field added later
# enters a key only where a row fills it.
_KEY_FIELDS = API_COLUMNS[:12]


def message_frame(valid: pd.DataFrame) -> pd.DataFrame:
    """The sendable fields of each validated row, as strings, with ``channel`` defaulted.

    One frame per run: the planner groups on it and the journal keys on it.
    """
    import pandas as pd

    frame = pd.DataFrame(index=valid.index)
    # One all-missing column shared by every field the rows do not use (copy-on-write keeps
    # them apart if one is ever written): 1M rows would otherwise hold ~8 MiB per field.
    missing = pd.Series(pd.NA, index=valid.index, dtype="str")
    for name in API_COLUMNS:
        frame[name] = valid[name].astype("str") if name in valid.columns else missing
    frame["channel"] = frame["channel"].fillna("whatsapp")
    if FOLLOW_UP_OF in valid.columns:
        frame[FOLLOW_UP_OF] = valid[FOLLOW_UP_OF].astype("str")
    return frame


def request_form(
    numbers: Sequence[str], fields: Mapping[str, object], *, api_version: str = "v1"
) -> dict[str, str]:
    """The fields of one request: ``to`` (the recipients comma-joined), then the message's
    fields as text, those that are missing (None, NA) left out; v2's own
    (:data:`V2_COLUMNS`) only for ``api_version="v2"`` (v1's form has no such fields; v2
    builds WhatsApp's message object from them).

    >>> request_form(["+919876543210", "+14155550123"], {"type": "text", "ref": None})
    {'to': '+919876543210,+14155550123', 'type': 'text'}
    """
    import pandas as pd

    dropped = () if api_version == "v2" else V2_COLUMNS
    form = {"to": ",".join(numbers)}
    for name, value in fields.items():
        if name != "to" and name not in dropped and value is not None and not pd.isna(value):
            form[name] = str(value)
    return form


def row_keys(messages: pd.DataFrame) -> pd.Series:
    """A stable content key per row: the recipient and every field of the message.

    Two rows with the same key are the same message to the same person; the journal keys
    its records on this, so a row edited since the last run counts as new.
    """
    import pandas as pd

    # Each field as "1<value>" or "0" when missing (so "" and missing differ), joined by a
    # separator no valid row holds (validation refuses control characters other than tab
    # and line breaks in every field).
    sha = hashlib.sha256
    keys: list[str] = []
    for start in range(0, len(messages), _KEY_CHUNK):  # in chunks: bounded memory
        chunk = messages.iloc[start : start + _KEY_CHUNK]
        parts = [
            ("1" + chunk[name].astype("str")).fillna("0").astype("object") for name in _KEY_FIELDS
        ]
        joined = parts[0].str.cat(parts[1:], sep="\x1f")
        for name in API_COLUMNS[len(_KEY_FIELDS) :]:
            if name not in DERIVED_COLUMNS and name in chunk.columns and chunk[name].notna().any():
                joined = joined + (f"\x1e{name}=" + chunk[name].astype("str")).fillna("")
        if FOLLOW_UP_OF in chunk.columns:
            # A retry is the attempt it follows up, to its number: the same retry whatever
            # else changed (another sender, a fixed callback_url), so never sent twice.
            retry = "\x1d" + chunk["to"].astype("str") + "\x1f" + chunk[FOLLOW_UP_OF].astype("str")
            joined = retry.fillna(joined.astype("str"))
        keys.extend(sha(text.encode("utf-8")).hexdigest()[:32] for text in joined)
    return pd.Series(keys, index=messages.index, dtype="str")
