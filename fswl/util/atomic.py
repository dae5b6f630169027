"""The one durability discipline: every file fswl replaces goes through here.

A new version is written to a temp file beside the old one (same directory,
so the rename is atomic), fsynced, renamed over it, and the directory
fsynced, so readers see the old file or the new one whole, and after a
crash or power loss the rename is either there with all its bytes or not
at all.  Renames of whole files (log rotation, a code marked used, a batch
taken for sealing, a link swapped in) go through :func:`replace`, which
fsyncs the directories too.  docs/security.md lists which writes are durable.

Temp files are named ``.tmp-NAME.RANDOM``: hidden, and never matching the
names readers look for, so one left by a `kill -9` is never read, served
or synced.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import IO, Iterator

#: Every temp file this module makes starts so (fsck and tests look for leftovers).
TEMP_PREFIX = ".tmp-"


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o666, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` whole or not at all (str is written as UTF-8).

    ``mode`` is that of a new file before the umask, as for ``open()``; pass
    0o600 for secrets.  ``durable=False`` skips the fsyncs, for caches that
    are rebuilt when lost.
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    with replacing(path, mode=mode, durable=durable) as handle:
        handle.write(raw)


@contextmanager
def replacing(path: str | os.PathLike[str], *, mode: int = 0o666, durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file to write the new ``path`` into; it replaces ``path`` only if the block ends normally."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f"{TEMP_PREFIX}{os.path.basename(path)}.{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        sync_dir(directory)


def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, durable: bool = True) -> None:
    """``os.replace(src, dst)``, then (``durable``) fsync the directories, so a crash keeps the rename."""
    os.replace(src, dst)
    if durable:
        src_dir = os.path.dirname(os.path.abspath(src))
        dst_dir = os.path.dirname(os.path.abspath(dst))
        sync_dir(dst_dir)
        if src_dir != dst_dir:
            sync_dir(src_dir)


def sync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory, so the names made, renamed or removed in it survive a crash."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # gone meanwhile (pruned), or not a directory we may open: nothing to keep
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and /proc-like ones) refuse fsync on directories; the rename stands
    finally:
        os.close(fd)


def is_temp(name: str) -> bool:
    """True for a temp file name this module makes."""
    return name.startswith(TEMP_PREFIX)
