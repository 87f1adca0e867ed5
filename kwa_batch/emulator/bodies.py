"""Reading a request as Kaleyra does: form fields from the query and from a multipart,
urlencoded or JSON body, whatever the body claims to be, within limits.

A body that cannot be read is a :class:`BadBody` (400, or 413 past
:data:`MAX_REQUEST_BYTES`), never a 500: nested JSON, lone surrogates, over-long multipart
boundaries and values of the wrong kind each have their reason.
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Request

__all__ = ["MAX_REQUEST_BYTES", "BadBody", "EmulatorRequest", "parse_body", "read_fields"]

#: The largest request body accepted, in bytes (larger: 413).
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# RFC 2046 allows 70 characters; a longer "boundary" is not one.
_MAX_BOUNDARY = 200


class BadBody(Exception):
    """The request body cannot be read; answered after authentication."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class EmulatorRequest(Request):
    """A werkzeug request that refuses bodies over :data:`MAX_REQUEST_BYTES`."""

    max_content_length = MAX_REQUEST_BYTES


def _last_values(multi: MultiDict[str, str]) -> dict[str, str]:
    return {key: values[-1] for key, values in multi.lists() if values}


def _json_value(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
    ):
        return ",".join(str(item) for item in value)
    raise BadBody(f"field {name!r} must be a string, a number or a list of them")


def parse_body(raw: bytes, content_type: str) -> dict[str, str]:
    """Read form fields from a body, by what it is rather than by what it claims to be."""
    if not raw.strip():
        return {}
    mimetype, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if boundary is None and raw.startswith(b"--"):
        boundary = raw[2 : raw.find(b"\n", 0, _MAX_BOUNDARY + 4)].strip().decode("latin-1")
    if boundary and len(boundary) > _MAX_BOUNDARY:
        raise BadBody(f"the multipart boundary is longer than {_MAX_BOUNDARY} characters")
    if boundary:
        try:
            form, files = MultiPartParser(max_form_memory_size=MAX_REQUEST_BYTES).parse(
                io.BytesIO(raw), boundary.encode("latin-1"), len(raw)
            )
        except (ValueError, RequestEntityTooLarge) as exc:
            raise BadBody(f"the multipart body cannot be parsed ({exc})") from None
        fields = _last_values(form)
        if "media" in files:  # a file part: only that it came is recorded
            fields["media"] = files["media"].filename or "media"
        for upload in files.values():
            upload.close()
        return fields
    declared_json = mimetype == "application/json" or mimetype.endswith("+json")
    if declared_json or raw.lstrip().startswith(b"{"):
        try:
            document = json.loads(raw)
        except RecursionError:
            raise BadBody("the JSON body is nested too deeply") from None
        except ValueError:
            if declared_json:
                raise BadBody("the body is not valid JSON") from None
        else:
            if not isinstance(document, dict):
                raise BadBody("the JSON body must be an object of fields")
            converted = {name: _json_value(name, value) for name, value in document.items()}
            return {name: value for name, value in converted.items() if value is not None}
    text = raw.decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True))


def read_fields(request: Request) -> tuple[dict[str, str], BadBody | None]:
    """Query parameters overlaid with body fields; empty or blank ones count as absent."""
    fields = _last_values(request.args)
    problem: BadBody | None = None
    try:
        raw = request.get_data(cache=False)
        fields.update(parse_body(raw, request.headers.get("Content-Type", "")))
    except RequestEntityTooLarge:
        problem = BadBody(f"the request body is larger than {MAX_REQUEST_BYTES} bytes", 413)
    except BadBody as exc:
        problem = exc
    kept = {name.strip(): value for name, value in fields.items() if value.strip()}
    unreadable = [name for name, value in kept.items() if not _is_unicode(name + value)]
    if unreadable:  # lone surrogates (JSON's "\ud800"): text no answer or ledger can hold
        for name in unreadable:
            del kept[name]
        shown = ", ".join(
            repr(name[:40].encode("utf-8", "backslashreplace").decode()) for name in unreadable
        )
        problem = problem or BadBody(f"not valid Unicode (a lone surrogate) in {shown}")
    return {name: value for name, value in kept.items() if name}, problem


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate, which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
