"""Reading a ``Transfer-Encoding: chunked`` request body, strictly and within a limit.

Werkzeug's development decoder trusts its input: ``int(line, 16)`` accepts ``+5``,
``0x10`` and ``1_0``, a malformed size line surfaces as an ``OSError`` inside the
application, and nothing caps the body. :func:`read_chunked` reads the body before the
application runs, so the server can answer a malformed one with 400 at once and hand an
oversized one over as too large.
"""

from __future__ import annotations

import re
from typing import IO

__all__ = ["MAX_LINE", "BadChunkedBody", "read_chunked"]

#: Bytes allowed in a chunk size line or a trailer line.
MAX_LINE = 4096
_MAX_TRAILERS = 64
_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_LINE_ENDS = (b"\r\n", b"\n")


class BadChunkedBody(ValueError):
    """The chunked body does not follow RFC 9112; the message says where it went wrong."""


def read_chunked(rfile: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """Decode a chunked body from ``rfile``: ``(data, True)``, or ``(first bytes, False)``.

    A body longer than ``limit`` bytes is not read to its end: the first ``limit + 1``
    bytes come back with False (the rest is still on the connection, which must close).

    Raises:
        BadChunkedBody: a size line that is not hexadecimal or too long, a chunk without
            its CRLF, too many trailer lines, or a body that ends early.

    >>> import io
    >>> read_chunked(io.BytesIO(b"3\\r\\nabc\\r\\n0\\r\\n\\r\\n"), 10)
    (b'abc', True)
    >>> read_chunked(io.BytesIO(b"5\\r\\nabcde\\r\\n0\\r\\n\\r\\n"), 3)
    (b'abcd', False)
    """
    parts: list[bytes] = []
    total = 0
    while True:
        size = _chunk_size(_line(rfile, "a chunk size line"))
        if size == 0:
            break
        if total + size > limit:
            parts.append(rfile.read(limit + 1 - total))
            return b"".join(parts), False
        data = rfile.read(size)
        if len(data) < size:
            raise BadChunkedBody(f"the body ended inside a chunk ({len(data)} of {size} bytes)")
        parts.append(data)
        total += size
        if rfile.readline(2) not in _LINE_ENDS:
            raise BadChunkedBody("a chunk is not followed by CRLF")
    for _ in range(_MAX_TRAILERS):
        if _line(rfile, "a trailer line") in _LINE_ENDS:
            return b"".join(parts), True
    raise BadChunkedBody(f"more than {_MAX_TRAILERS} trailer lines")


def _line(rfile: IO[bytes], what: str) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if not line:
        raise BadChunkedBody(f"the body ended before {what}")
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise BadChunkedBody(f"{what} is longer than {MAX_LINE} bytes")
        raise BadChunkedBody(f"the body ended inside {what}")
    return line


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip(b" \t\r\n")
    if not _SIZE.fullmatch(text):
        shown = text[:16].decode("latin-1")
        raise BadChunkedBody(f"the chunk size {shown!r} is not a hexadecimal number")
    return int(text, 16)
