"""The change log: every process's writes to db/, one line each, for the index to follow.

inotify needs one watch per directory, and a large tree has more directories
than a default ``fs.inotify.max_user_watches`` allows, so the in-memory index
cannot rely on it alone. Every fswl write (CLI, sync, confirmations, expiry)
also appends its path here; the index tails this file, so fswl's own writes
show in answers within a second however large the tree. inotify still covers
hand edits (``touch``, ``rm``, ``ln -s``) where the limit allows.

The file is append-only and rotated to ``NAME.1`` past ROTATE_BYTES, at most
once per ROTATE_SECONDS; a follower finishes the rotated file before it reads
the new one, and one that slept through two rotations says so (``lost``), so
its owner reloads everything rather than miss a change.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from typing import BinaryIO

from fswl.store import journal
from fswl.store.journal import Change
from fswl.util import atomic

log = logging.getLogger(__name__)

#: Size at which the log is rotated; a follower polls many times a second,
#: so it never lags by more than a fraction of this.
ROTATE_BYTES = 4 << 20
#: A rotation waits this long after the previous one, so that a follower
#: polling several times a second never sleeps through two.
ROTATE_SECONDS = 10.0
#: Ops that change what is listed (an mtime refresh does not).
LOGGED_OPS = frozenset({journal.ADD, journal.REMOVE, journal.EXPIRE, journal.LINK, journal.UNLINK})


class ChangeLog:
    """Appends changed paths (relative to db/) to one file shared by every process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def __call__(self, change: Change) -> None:
        """A Whitelist listener: log the path of a change that alters a listing."""
        if change.op in LOGGED_OPS and "\n" not in change.path:
            self.append([change.path])

    def append(self, paths: list[str]) -> None:
        # One write() on an O_APPEND descriptor: lines of concurrent writers
        # never interleave. The shared lock keeps a rotation from slipping
        # between opening the file and writing to it, so once a follower sees
        # the new file, nothing more lands in the old one.
        data = "".join(f"{path}\n" for path in paths).encode("utf-8", "surrogateescape")
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if not _same_inode(self.path, os.fstat(fd).st_ino):
                    continue  # rotated since we opened it: open the new one
                os.write(fd, data)
                rotate = os.fstat(fd).st_size > ROTATE_BYTES
                fcntl.flock(fd, fcntl.LOCK_UN)
                if rotate:
                    self._rotate(fd)
                return
            finally:
                os.close(fd)

    def _rotate(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for writers mid-append
        try:
            if not _same_inode(self.path, os.fstat(fd).st_ino):
                return  # somebody rotated it meanwhile
            try:
                if time.time() - os.stat(self.path + ".1").st_ctime < ROTATE_SECONDS:
                    return  # the previous rotation is too recent; grow a little longer
            except FileNotFoundError:
                pass
            atomic.replace(self.path, self.path + ".1")  # a rename sets the ctime checked above
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


class ChangeFollower:
    """Reads what was appended to a ChangeLog since the last call, across rotations."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: BinaryIO | None = None
        self._inode = 0
        self._partial = b""
        #: Set when lines may have been missed (two rotations between reads):
        #: the reader should reload from db/ and clear it.
        self.lost = False
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        # Made if missing, so a follower always holds the file writers append
        # to: a log created and rotated between two reads is still read whole.
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        handle = os.fdopen(fd, "rb")
        if at_end:
            handle.seek(0, os.SEEK_END)
        self._file, self._inode = handle, os.fstat(fd).st_ino

    def read(self) -> list[str]:
        """Paths logged since the previous call (in order, possibly repeated)."""
        lines: list[str] = []
        if self._file is not None:
            lines += self._drain()
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = 0
        if inode and inode != self._inode:  # rotated (or first created): the old file is finished
            if self._file is not None:
                lines += self._drain()
                self._file.close()
                if self._partial or not _same_inode(self.path + ".1", self._inode):
                    self.lost = True  # the file between the old one and the new one went unread
            self._partial = b""
            self._open(at_end=False)
            if self._file is not None:
                lines += self._drain()
        return lines

    def _drain(self) -> list[str]:
        assert self._file is not None
        data = self._partial + self._file.read()
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "surrogateescape") for line in complete if line]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _same_inode(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except FileNotFoundError:
        return False


def log_mark(path: str) -> list[int]:
    """[inode, size] of the change log now, and the inode of its rotated file (0: none): a place
    in the log that :func:`logged_since` reads on from, in another process or a later run."""
    marks = []
    for name in (path, path + ".1"):
        try:
            status = os.stat(name)
            marks.append((status.st_ino, status.st_size))
        except FileNotFoundError:
            marks.append((0, 0))
    return [marks[0][0], marks[0][1], marks[1][0]]


def logged_since(path: str, mark: list[int]) -> set[str] | None:
    """Paths the change log got since ``mark``; None if part of it is gone unread (two rotations)."""
    inode, size, rotated = mark
    now = log_mark(path)
    if inode and now[0] == inode:
        return None if now[1] < size else _lines(path, size)
    if inode and now[2] == inode:
        return _lines(path + ".1", size) | _lines(path, 0)
    if not inode:  # no log then: each file there now was begun since
        return (_lines(path + ".1", 0) if now[2] and now[2] != rotated else set()) | _lines(path, 0)
    return None


def _lines(path: str, offset: int) -> set[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return set()
    return {line.decode("utf-8", "surrogateescape") for line in data.split(b"\n") if line}
