"""Applying received records to db/: idempotent, newest write wins, never outside db/.

Records arrive already validated (fswl.sync.records); the writes go through
the store, whose make_dirs and resolve refuse any way out of db/.  The
whitelist used here has no spool listener: a received write is forwarded as
part of its origin's batch, never re-journalled as a local one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterable

from fswl.errors import BadRecord, FswlError
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
    current = _mtime(entry)
    if current >= record.when:
        return False
    if record.op == journal.SEEN:
        # Seen refreshes an entry that exists, never creates one: "seen" cannot tell an entry expired
        # here from one that never existed (or one a forger names).
        if current == float("-inf"):
            return False
        wl.tree.resolve(entry)  # the entry must be inside db/ before its mtime is touched
        os.utime(entry, (record.when, record.when), follow_symlinks=False)
        return True
    return wl.add_at(directory, sender, when=record.when)


def _apply_link(wl: Whitelist, record: Record) -> bool:
    version, levels = network_of(record.path)
    network = network_from_parts(version, levels)
    lexical = os.path.join(wl.db, record.path)
    if record.op == journal.UNLINK:
        if not os.path.islink(lexical):
            return False
        wl.unlink(network)
        return True
    assert record.target is not None
    group = check_link_target(record.path, record.target)
    before = os.readlink(lexical) if os.path.islink(lexical) else None
    wl.link(network, group)
    return before is None or os.readlink(lexical) != before


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float("-inf")
