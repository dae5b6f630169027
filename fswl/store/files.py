"""The file primitives every store write is made of: an O_EXCL create, a utime, an unlink.

Kept apart from fswl.store.whitelist so that the modules built on the store
(links, maintenance) use the same few, race-safe steps without importing it.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from fswl.errors import EntryNameTaken

CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def stamp(path: str, when: float | None) -> bool:
    """Create an empty file or date it ``when`` or now; False if a concurrent writer removed it meanwhile."""
    try:
        os.close(os.open(path, CREATE, 0o644))
    except FileExistsError:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(mode):
            raise EntryNameTaken(path) from None
    try:
        # Now is time.time(): utime(None)'s coarse clock can read before a removal made just now.
        os.utime(path, (when, when) if when is not None else (time.time(),) * 2, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def mtime(path: str) -> float:
    """The path's own mtime (a symlink's, not its target's); -inf if it does not exist."""
    try:
        return os.lstat(path).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return float("-inf")


def unlink_quietly(path: str) -> bool:
    """Remove a file; False if it was not there (or is a directory)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno != errno.EISDIR:
            raise
        return False
    return True
