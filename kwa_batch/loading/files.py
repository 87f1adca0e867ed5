"""Reading a user's file safely: only a regular file, never more than its kind may hold.

A FIFO or a device given as a file blocks a reader for ever (opening a FIFO waits for a
writer; ``/dev/zero`` never ends), and a folder or a socket cannot be read at all. Each is
refused before it is opened, in one line that says what it is ("is a named pipe (FIFO), not
a file"); a regular file is opened without blocking, checked again on the open descriptor
(the path may change in between), and read up to its kind's limit.

The table reader (:mod:`kwa_batch.loading.reading`) opens every user's table through it:
recipient files, template catalogues, suppression lists and rate cards, each with its own
:class:`FileKind`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import InputError

__all__ = [
    "FileKind",
    "check_regular_file",
    "open_regular_file",
    "read_open_file",
    "read_regular_file",
]

_SPECIAL = (
    (stat.S_ISDIR, "is a folder, not a {noun}"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a file"),
    (stat.S_ISCHR, "is a character device, not a file"),
    (stat.S_ISBLK, "is a block device, not a file"),
    (stat.S_ISSOCK, "is a socket, not a file"),
)


@dataclass(frozen=True)
class FileKind:
    """What a file is for, in the messages that refuse one, and how large it may be.

    Attributes:
        noun: what the file is, e.g. ``"recipient file"``.
        fix: what to do instead of giving a FIFO, a device or a socket.
        max_bytes: the largest file read; a larger one is refused before a byte is read.
        too_large: what to do with a larger one.
        rows: what its rows are, for a table with none: ``"one row per recipient"``.
    """

    noun: str
    fix: str
    max_bytes: int
    too_large: str
    rows: str = "one row per entry"


def _refuse_special(file: Path, mode: int, kind: FileKind) -> None:
    """Refuse anything but a regular file (reading a FIFO or a device never ends)."""
    if stat.S_ISREG(mode):
        return
    what = next((text for test, text in _SPECIAL if test(mode)), "is not a regular file")
    link = f" (it links to {os.path.realpath(file)})" if file.is_symlink() else ""
    fix = "" if stat.S_ISDIR(mode) else f": {kind.fix}"
    raise InputError(f"{file}: {what.format(noun=kind.noun)}{link}{fix}")


def _size(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _refuse_large(file: Path, size: int, kind: FileKind) -> None:
    if size > kind.max_bytes:
        limit = kind.max_bytes
        allowed = f"{limit / 2**30:.0f} GiB" if limit >= 2**30 else f"{limit / 2**20:.0f} MiB"
        raise InputError(
            f"{file}: is {_size(size)}, over the {allowed} a {kind.noun} may be: {kind.too_large}"
        )


def check_regular_file(path: str | Path, kind: FileKind) -> None:
    """Refuse, before anything opens it, a path that is not a regular file of a sane size.

    For readers that open the path themselves (pyarrow, pandas, openpyxl): a FIFO would block
    them forever and a link to ``/dev/zero`` would fill memory.

    Raises:
        InputError: the path is missing, a folder, a FIFO, a device or a socket (or a link to
            one), or larger than ``kind.max_bytes``.

    Example:
        >>> kind = FileKind("rate card", "save it as a .csv file", 2**20, "shorten it")
        >>> check_regular_file("sample_data/rate_card.csv", kind)  # doctest: +SKIP
    """
    file = Path(path)
    try:
        info = os.stat(file)
    except FileNotFoundError:
        broken = " (a broken link)" if file.is_symlink() else ""
        raise InputError(f"{file}: no such file{broken}") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    _refuse_special(file, info.st_mode, kind)
    _refuse_large(file, info.st_size, kind)


def open_regular_file(path: str | Path, kind: FileKind) -> IO[bytes]:
    """The file opened for reading (binary), once it is known to be a regular file of a sane
    size.

    It is checked before it is opened (opening a FIFO blocks until a writer comes), opened
    without blocking, and checked again on the open descriptor (the path may have changed
    in between).

    Raises:
        InputError: as :func:`check_regular_file`, or the file cannot be opened.
    """
    file = Path(path)
    check_regular_file(file, kind)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        broken = " (a broken link)" if file.is_symlink() else ""
        raise InputError(f"{file}: no such file{broken}") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        _refuse_special(file, info.st_mode, kind)
        _refuse_large(file, info.st_size, kind)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_open_file(path: str | Path, handle: IO[bytes], kind: FileKind) -> bytes:
    """The bytes of a file opened by :func:`open_regular_file`, never more than the limit
    (a file may grow while it is read).

    Raises:
        InputError: the file cannot be read, or it grew past ``kind.max_bytes``.
    """
    file = Path(path)
    try:
        raw = handle.read(kind.max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    _refuse_large(file, len(raw), kind)
    return raw


def read_regular_file(path: str | Path, kind: FileKind) -> bytes:
    """The bytes of a regular file no larger than ``kind.max_bytes``, read without ever
    blocking on a FIFO or a device.

    Raises:
        InputError: as :func:`check_regular_file`, or the file cannot be read.
    """
    with open_regular_file(path, kind) as handle:
        return read_open_file(path, handle, kind)
