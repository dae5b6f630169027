"""Expiry of idle entries and old tombstones, and fsck of db/."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from fswl.errors import BadName
from fswl.names import FAMILIES, name_to_sender
from fswl.store import journal
from fswl.store.journal import Change
from fswl.store.tree import GROUPS_DIR, LINK_TOMB, TOMB_DIR
from fswl.store.walk import Problem, walk
from fswl.store.whitelist import Whitelist

DAY = 86400.0


@dataclass
class ExpireReport:
    entries: list[str] = field(default_factory=list)  #: paths relative to db/
    tombstones: list[str] = field(default_factory=list)
    directories: int = 0  #: empty relay directories pruned


def expire(wl: Whitelist, days: float, tomb_days: float, dry_run: bool = False,
           now: float | None = None, progress: Callable[[int], None] | None = None) -> ExpireReport:
    """Remove entries neither added nor seen for ``days``, and tombstones older than ``tomb_days``.

    Link tombstones (``RELAY/.tomb/.link``) age out like entry tombstones;
    until then the relay directory holding one is not pruned, empty or not.

    An entry's age is the later of its mtime (the explicit add) and its
    last-seen time on this node (fswl.store.lastseen).  Expiry leaves no
    tombstone: every node ages out its own idle entries, and an entry in use
    on another node is kept here by that node's access list.
    """
    now = time.time() if now is None else now
    entry_cutoff, tomb_cutoff = now - days * DAY, now - tomb_days * DAY
    recent = wl.last_seen.since(entry_cutoff)
    report = ExpireReport()
    for path, is_tomb, mtime in _physical_files(wl):
        if progress:
            progress(1)
        if mtime >= (tomb_cutoff if is_tomb else entry_cutoff):
            continue
        rel = wl.tree.relative(path)
        if not is_tomb and rel in recent:
            continue  # seen in use within the window
        (report.tombstones if is_tomb else report.entries).append(rel)
        if dry_run:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        if not is_tomb:
            wl.emit(Change(journal.EXPIRE, rel, when=now))
    if not dry_run:
        # Rows older than the window can no longer keep anything: the entries they kept are now
        # younger by their add time, or expired.
        wl.last_seen.forget(report.entries, before=entry_cutoff)
        report.directories = _prune_empty(wl)
    return report


def fsck(wl: Whitelist, repair: bool = False) -> list[Problem]:
    """Report what lookups skip: links leaving db/, stray files, entries with live tombstones.

    With ``repair``, an entry and its tombstone are settled by age (the newer
    wins) and temporary files left by a crash are removed; links are only
    reported, since an admin made them.
    """
    problems: list[Problem] = []
    for _ in walk(wl.tree, problems, groups=True):
        pass
    for top, dirs, files in os.walk(wl.db):
        for name in dirs + files:
            path = os.path.join(top, name)
            if name.startswith(".link-"):
                problems.append(Problem(wl.tree.relative(path), "temporary link left by an interrupted `fswl link`"))
                if repair:
                    os.unlink(path)
            elif stat.S_ISLNK(os.lstat(path).st_mode) and top == wl.db:
                problems.append(Problem(name, "db/ itself must not hold links"))
        if os.path.basename(top) == TOMB_DIR:
            problems.extend(_settle_tombstones(wl, top, files, repair))
        dirs[:] = [d for d in dirs if d == TOMB_DIR or not d.startswith(".")]
    return problems


def _settle_tombstones(wl: Whitelist, tomb_dir: str, names: list[str], repair: bool) -> Iterator[Problem]:
    live_dir = os.path.dirname(tomb_dir)
    for name in names:
        tomb, entry = os.path.join(tomb_dir, name), os.path.join(live_dir, name)
        if name == LINK_TOMB:
            yield from _check_link_tomb(wl, tomb, repair)
            continue
        try:
            name_to_sender(name)
        except BadName as exc:
            yield Problem(wl.tree.relative(tomb), str(exc))
            continue
        if not os.path.lexists(entry):
            continue
        loser = entry if os.lstat(tomb).st_mtime >= os.lstat(entry).st_mtime else tomb
        yield Problem(wl.tree.relative(entry), f"both listed and removed; the newer wins, {'remove' if repair else 'would remove'} {wl.tree.relative(loser)}")
        if repair:
            os.unlink(loser)


def _check_link_tomb(wl: Whitelist, tomb: str, repair: bool) -> Iterator[Problem]:
    """A link tombstone belongs in a relay directory, as a plain file; anywhere else it means nothing."""
    relay = os.path.dirname(os.path.dirname(tomb))
    rel = wl.tree.relative(relay).split(os.sep)
    if rel[0] in FAMILIES.values() and len(rel) > 1 and stat.S_ISREG(os.lstat(tomb).st_mode):
        return
    yield Problem(wl.tree.relative(tomb), f"a link tombstone outside a relay directory, or not a plain file; "
                                          f"{'removed' if repair else 'remove it (`fswl fsck --repair`)'}")
    if repair:
        os.unlink(tomb)


def _physical_files(wl: Whitelist) -> Iterator[tuple[str, bool, float]]:
    """(path, is tombstone, mtime) of every file under ip4/, ip6/ and groups/, links not followed."""
    for top_name in (*FAMILIES.values(), GROUPS_DIR):
        for top, dirs, files in os.walk(os.path.join(wl.db, top_name)):
            is_tomb = os.path.basename(top) == TOMB_DIR
            for name in files:
                if name.startswith(".") and not (is_tomb and name == LINK_TOMB):
                    continue
                path = os.path.join(top, name)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield path, is_tomb, st.st_mtime
            dirs[:] = [d for d in dirs if d == TOMB_DIR or not d.startswith(".")]


def _prune_empty(wl: Whitelist) -> int:
    """Remove empty relay directories (and empty .tomb) bottom-up; groups are kept for their links."""
    pruned = 0
    for family in FAMILIES.values():
        root = os.path.join(wl.db, family)
        for top, _dirs, _files in os.walk(root, topdown=False):
            if top == root:
                continue
            try:
                os.rmdir(top)  # fails harmlessly when a writer got there first
            except OSError:
                continue
            pruned += 1
    return pruned

