"""Applying received records to db/: idempotent, newest explicit write wins, never outside db/.

An add or a removal carries the time it was made; a removal beats every add
made before it, an add every removal made before it.  Links and unlinks the
same, by the link's mtime and the link tombstone an unlink leaves.  A ``seen`` record only
refreshes the last-seen time of an entry that exists (fswl.store.lastseen).

Records arrive already validated (fswl.sync.records); the writes go through
the store, whose make_dirs and resolve refuse any way out of db/.  The
whitelist used here has no spool listener: a received write is forwarded as
part of its origin's batch, never re-journalled as a local one.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from typing import Iterable

from fswl.errors import BadRecord, FswlError, UnsafePath
from fswl.names import network_from_parts
from fswl.store import journal
from fswl.store.whitelist import Whitelist
from fswl.sync.records import Record, check_entry_path, check_link_target, network_of

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """What applying a batch did."""

    written: int = 0  #: records that changed db/
    unchanged: int = 0  #: records already in effect, or beaten by a newer write
    refused: int = 0  #: records refused (logged)

    def __iadd__(self, other: Applied) -> Applied:
        self.written += other.written
        self.unchanged += other.unchanged
        self.refused += other.refused
        return self


def apply_records(wl: Whitelist, records: Iterable[Record | BadRecord], source: str) -> Applied:
    """Apply records in order; ``source`` names where they came from, for the log."""
    done = Applied()
    for record in records:
        if isinstance(record, BadRecord):
            log.warning("refused a record from %s: %s", source, record)
            done.refused += 1
            continue
        try:
            changed = apply_record(wl, record)
        except (FswlError, OSError) as exc:
            log.warning("refused %s %s from %s: %s", record.op, record.path, source, exc)
            done.refused += 1
            continue
        if changed:
            done.written += 1
        else:
            done.unchanged += 1
    return done


def apply_record(wl: Whitelist, record: Record) -> bool:
    """Apply one validated record; True if db/ changed."""
    if record.op in (journal.LINK, journal.UNLINK):
        return _apply_link(wl, record)
    sender = check_entry_path(record.path)
    directory = os.path.join(wl.db, os.path.dirname(record.path))
    entry = os.path.join(wl.db, record.path)
    tomb = wl.tree.tomb_path(directory, sender)
    if record.op == journal.REMOVE:
        if _mtime(tomb) >= record.when:
            return False
        _path, existed = wl.remove_at(directory, sender, record.when)
        return existed or _mtime(tomb) == record.when
    if record.op == journal.SEEN:
        return _apply_seen(wl, entry, record.when)
    if _mtime(entry) >= record.when:
        return False
    return wl.add_at(directory, sender, when=record.when)


def _apply_seen(wl: Whitelist, entry: str, when: float) -> bool:
    """The one place a `seen` record is applied, signed or not: it refreshes the age of an entry that
    exists and nothing else. It never creates one (it cannot tell "expired" from "never existed" or
    "removed here"), never revives one, never moves its mtime (the add time, which removals compare
    with), so it can never outweigh a removal. True if this node learnt a later last-seen time."""
    try:
        real = wl.tree.resolve(entry)
        if not stat.S_ISREG(os.lstat(real).st_mode):
            return False
    except (OSError, UnsafePath):
        return False  # no such entry here: nothing to refresh
    if when <= max(_mtime(real), wl.last_seen.get(wl.tree.relative(real)) or float("-inf")):
        return False
    return wl.touch_seen([entry], when) == 1


def _apply_link(wl: Whitelist, record: Record) -> bool:
    """A link or unlink carries its time like an entry's write: the newer of the link (the symlink's
    mtime) and the unlink (its link tombstone) wins, a tie goes to the unlink (fswl.store.links)."""
    version, levels = network_of(record.path)
    network = network_from_parts(version, levels)
    if record.op == journal.UNLINK:
        return wl.unlink_at(network, record.when)
    assert record.target is not None
    return wl.link_at(network, check_link_target(record.path, record.target), record.when)


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float("-inf")
