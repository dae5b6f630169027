"""The spool: every local write as a record, sealed into per-origin numbered batches.

::

    spool/.open                 records of local writes not yet sealed (append-only)
    spool/.seen                 entries seen in use since the last access list
    spool/ORIGIN/0000000042.batch   a sealed batch, ours or received for forwarding
    spool/ORIGIN/.seq           the highest batch number of ORIGIN this node holds

A batch is written to a temporary file and renamed into place, so it is
whole or absent.  Local writers append one line each under ``flock`` to
``.open``; sealing renames ``.open`` away under the same lock, so no record
is ever lost between the two.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fswl.errors import BadRecord
from fswl.store import journal
from fswl.store.journal import Change
from fswl.sync.records import MAGIC, Record, from_change
from fswl.util import atomic

if TYPE_CHECKING:  # cryptography is a slow import; every CLI write loads this module
    from fswl.sync import signing

log = logging.getLogger(__name__)

#: Records per sealed batch: a large import becomes several batches of this size.
MAX_RECORDS = 50_000
OPEN = ".open"
SEALING = ".sealing"
SEEN = ".seen"
SEEN_SENT = ".seen-sent"
SEQ = ".seq"
DIRTY = ".dirty"
#: Dirty subtree keys remembered per process, so a large import appends each once.
MAX_DIRTY_REMEMBERED = 100_000
#: Past this size the dirty log is dropped with the digest index it qualifies
#: (the next reconciliation walks everything): it is marked on every node,
#: peered or not, but read only by reconciliations, which may be rare.
MAX_DIRTY_BYTES = 1 << 20
DIGESTS_LOCK = ".digests.lock"
_BATCH = re.compile(r"(\d{10})\.batch\Z")
ORIGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_origin(name: str) -> str:
    """Validate a node name (it becomes a directory of spool/)."""
    if not ORIGIN_NAME.match(name):
        raise BadRecord(f"{name[:70]!r} is not a node name (letters, digits, '.', '-', '_')")
    return name


class Spool:
    """The spool/ directory of one node named ``node``."""

    def __init__(self, root: str | os.PathLike[str], node: str) -> None:
        self.root = Path(root)
        self.node = check_origin(node)
        self._fds: dict[str, tuple[int, int, int]] = {}  # name -> (pid, fd, inode)
        self._dirty: set[str] = set()
        self._dirty_inode = -1

    # -- local writes --------------------------------------------------------

    def listener(self, change: Change) -> None:
        """A store listener: mark and journal every local write (see also fswl.sync.outbox)."""
        self.mark_dirty(change)
        self.journal(change)

    def journal(self, change: Change) -> None:
        """Append a local write to the records of the next batch (seen hits go to the access list)."""
        if change.op == journal.SEEN:
            self._append(SEEN, Record(journal.SEEN, change.path, change.when).line())
            return
        record = from_change(change)
        if record is not None:
            self._append(OPEN, record.line())

    def mark_dirty(self, change: Change) -> None:
        """A store listener: note the subtree a write touched, for the digest index (fswl.sync.digests)."""
        if change.op == journal.SEEN:
            return  # mtimes are not in digests
        from fswl.sync.digests import subtree_key

        key = subtree_key(change.path)
        if key is None:
            return
        # The write is already done: while the log is the one remembered, the
        # next digest build has yet to take it, and will see this write.
        try:
            status = os.stat(self.root / DIRTY)
            inode = status.st_ino
            if status.st_size > MAX_DIRTY_BYTES and self.drop_digests(wait=False):
                inode = -1
        except FileNotFoundError:
            inode = -1
        if inode != self._dirty_inode or len(self._dirty) >= MAX_DIRTY_REMEMBERED:
            self._dirty.clear()
        if key in self._dirty:
            return
        self._append(DIRTY, key.encode() + b"\n")
        self._dirty.add(key)
        self._dirty_inode = self._fds[DIRTY][2]

    def take_dirty(self) -> set[str]:
        """The subtree keys written since the last call (crash leftovers included)."""
        taken = self.root / ".dirty-taken"
        if not taken.exists():
            self._take(DIRTY, taken)
        try:
            return set(taken.read_text().split())
        except FileNotFoundError:
            return set()

    def dirty_done(self) -> None:
        (self.root / ".dirty-taken").unlink(missing_ok=True)

    def drop_digests(self, wait: bool = True) -> bool:
        """Forget the digest index and the dirty log, so the next reconciliation walks everything.

        Without ``wait``, gives up (False) while a reconciliation builds its
        digests: it holds the lock for seconds, and a writer must not stall.
        """
        from fswl.sync.digests import INDEX

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / DIGESTS_LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            for name in (INDEX, DIRTY, ".dirty-taken"):
                (self.root / name).unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)

    def _append(self, name: str, line: bytes) -> None:
        path = str(self.root / name)
        for _ in range(100):
            fd, inode = self._open(name, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = -1
                if current == inode:  # not sealed away meanwhile
                    os.write(fd, line)
                    return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            del self._fds[name]
        raise OSError(f"cannot append to {path}: it keeps being sealed")

    def _open(self, name: str, path: str) -> tuple[int, int]:
        held = self._fds.get(name)
        # A forked import worker must not share the parent's lock.
        if held is not None and held[0] == os.getpid():
            return held[1], held[2]
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._fds[name] = (os.getpid(), fd, os.fstat(fd).st_ino)
        return fd, self._fds[name][2]

    def close(self) -> None:
        for pid, fd, _ in self._fds.values():
            if pid == os.getpid():
                os.close(fd)
        self._fds.clear()

    # -- sealing ---------------------------------------------------------------

    def seal(self, signer: signing.Signer | None = None, access_list_every: float | None = None) -> list[int]:
        """Turn the journal of local writes into numbered batches; returns their numbers.

        With ``access_list_every`` (seconds), the entries seen in use are
        sealed too when the last access list is at least that old.
        """
        with self.locked(self.root / ".seal.lock"):
            if access_list_every is not None:
                self._take_access_list(access_list_every)
            sealing = self.root / SEALING
            if not sealing.exists():
                if not self._take(OPEN, sealing):
                    return []
            lines = [line for line in sealing.read_bytes().splitlines(keepends=True) if _whole(line)]
            numbers = []
            for start in range(0, len(lines), MAX_RECORDS):
                numbers.append(self._write_own(lines[start:start + MAX_RECORDS], signer))
            sealing.unlink()
            return numbers

    def _take(self, name: str, to: Path) -> bool:
        """Rename spool/NAME to ``to`` under the writers' lock; False if there is nothing."""
        path = self.root / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == 0:
                return False
            atomic.replace(path, to)
            return True
        finally:
            os.close(fd)

    def send_access_list(self, signer: signing.Signer | None = None) -> int:
        """Seal the entries seen in use since the last access list now, whatever its schedule; how many."""
        with self.locked(self.root / ".seal.lock"):
            count = self._take_access_list(0.0)
        self.seal(signer)
        return count

    def _take_access_list(self, every: float) -> int:
        stamp = self.root / SEEN_SENT
        try:
            last = stamp.stat().st_mtime
        except FileNotFoundError:
            last = 0.0
        if time.time() - last < every:
            return 0
        taken = self.root / ".seen-taken"
        if not taken.exists() and not self._take(SEEN, taken):
            stamp.touch()
            return 0
        latest: dict[str, bytes] = {}
        for line in taken.read_bytes().splitlines(keepends=True):
            latest[line.split(b"\t", 2)[1]] = line  # the last hit of each entry is enough
        self._append(OPEN, b"".join(latest.values()))
        taken.unlink()
        stamp.touch()
        return len(latest)

    def _write_own(self, lines: list[bytes], signer: signing.Signer | None) -> int:
        with self.locked(self._dir(self.node) / ".lock"):
            seq = self.highest(self.node) + 1
            header = b"%s %s %d %d\n" % (MAGIC, self.node.encode(), seq, len(lines))
            body = header + b"".join(lines)
            if signer is not None:
                body += signer.signature_line(body)
            self._install(self.node, seq, body)
            return seq

    # -- holdings --------------------------------------------------------------

    def origins(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(c.name for c in os.scandir(self.root) if c.is_dir() and ORIGIN_NAME.match(c.name))

    def holdings(self) -> dict[str, int]:
        """The highest batch number held of each origin (sealed ones only)."""
        return {origin: self.highest(origin) for origin in self.origins()}

    def highest(self, origin: str) -> int:
        try:
            return int((self._dir(origin, create=False) / SEQ).read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def numbers(self, origin: str) -> list[int]:
        """The numbers of the batches of ``origin`` still spooled, in order."""
        try:
            names = os.listdir(self._dir(origin, create=False))
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_BATCH.match, names) if m)

    def path(self, origin: str, seq: int) -> Path:
        return self._dir(origin, create=False) / f"{seq:010d}.batch"

    def read(self, origin: str, seq: int) -> bytes:
        return self.path(origin, seq).read_bytes()

    def store(self, origin: str, seq: int, data: bytes) -> None:
        """Keep a received batch for forwarding and note it as held."""
        with self.locked(self._dir(origin) / ".lock"):
            if seq > self.highest(origin):
                self._install(origin, seq, data)

    def raise_to(self, origin: str, seq: int) -> None:
        """Note ``seq`` as held without the batch: peers hold our batches past what we remember."""
        if self.hold(origin, seq):
            log.warning("peers hold batches of %s up to %d, past this spool's: numbering on from there", origin, seq)

    def hold(self, origin: str, seq: int) -> bool:
        """Note batches of ``origin`` up to ``seq`` as held without their files (their records came
        by reconciliation); returns whether that raised what was held."""
        with self.locked(self._dir(origin) / ".lock"):
            if seq <= self.highest(origin):
                return False
            atomic.write_atomic(self._dir(origin) / SEQ, str(seq).encode())
            return True

    def drain(self, origin: str, upto: int) -> int:
        """Remove the batches of ``origin`` numbered ``upto`` or lower; returns how many."""
        removed = 0
        for seq in self.numbers(origin):
            if seq > upto:
                break
            self.path(origin, seq).unlink(missing_ok=True)
            removed += 1
        return removed

    def pending(self) -> int:
        """Batches spooled, of every origin."""
        return sum(len(self.numbers(o)) for o in self.origins())

    def _install(self, origin: str, seq: int, data: bytes) -> None:
        atomic.write_atomic(self.path(origin, seq), data)
        atomic.write_atomic(self._dir(origin) / SEQ, str(seq).encode())

    def _dir(self, origin: str, create: bool = True) -> Path:
        """spool/ORIGIN; made only to be written in (``create``): merely reading a peer's header
        about an origin must not make it one this node holds and advertises."""
        directory = self.root / check_origin(origin)
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        return directory

    @contextmanager
    def locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _whole(line: bytes) -> bool:
    """A journal line as a writer left it: a crash can only cut the last one short."""
    if line.endswith(b"\n") and line.count(b"\t") == 3:
        return True
    log.warning("dropped a cut-off journal line: %r", line[:80])
    return False
