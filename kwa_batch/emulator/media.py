"""The emulator's checks of media messages and media and authentication templates.

Kaleyra documents, beside ``text`` and ``template``:

- ``type=media``: a media message (a session message, like text: only inside an open
  conversation window), with a ``media_url`` or a ``media`` file part (multipart), and an
  optional ``caption``;
- ``type=mediatemplate``: a template with a media header (``media_url`` or a ``media``
  file part), a text header's ``param_header`` or a dynamic link's ``param_url``;
- ``type=authenticationtemplate``: a one-time-password template, with
  ``verification_code``.

:func:`media_errors` gives the ``{field: reason}`` the emulator answers with HTTP 400
``E400`` when a request of these types lacks what it needs. Whether a template matches
the catalogue is :mod:`.template_catalogue`'s business (after acceptance, as the platform does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MAX_CAPTION_LENGTH", "MEDIA_FIELDS", "MEDIA_TYPES", "media_errors"]

#: The message types of this module.
MEDIA_TYPES = ("media", "mediatemplate", "authenticationtemplate")
#: Their fields, kept in the emulator's ledger as received.
MEDIA_FIELDS = ("media_url", "caption", "param_header", "param_url", "verification_code")
#: Characters a media caption may hold (WhatsApp's limit).
MAX_CAPTION_LENGTH = 1024
_LINK = re.compile(r"https?://[^\s/]+\S*")
_CODE = re.compile(r"[0-9A-Za-z]{1,15}")


def media_errors(kind: str, fields: Mapping[str, str]) -> dict[str, str]:
    """What a request of ``kind`` (one of :data:`MEDIA_TYPES`) lacks, ``{field: reason}``;
    empty when it has all it needs. ``fields["media"]`` stands for a ``media`` file part."""
    errors: dict[str, str] = {}
    link = fields.get("media_url")
    if link is not None and not _LINK.fullmatch(link.strip()):
        errors["media_url"] = f"not an http(s) link: {link[:60]}"
    if kind == "media":
        if link is None and "media" not in fields:
            errors["media_url"] = "missing: a media message needs media_url or a media file part"
        caption = fields.get("caption")
        if caption is not None and len(caption) > MAX_CAPTION_LENGTH:
            errors["caption"] = f"longer than {MAX_CAPTION_LENGTH} characters ({len(caption)})"
    else:
        if "template_name" not in fields:
            errors["template_name"] = f"missing: a {kind} needs template_name"
        if kind == "authenticationtemplate":
            code = fields.get("verification_code")
            if code is None:
                errors["verification_code"] = "missing: an authentication template needs it"
            elif not _CODE.fullmatch(code.strip()):
                errors["verification_code"] = "must be 1 to 15 letters or digits"
    return errors
