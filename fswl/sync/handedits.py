"""Hand edits of db/ (touch, rm, ln -s), journalled for peers at the start of every round.

fswl's own writes are journalled as they happen (fswl.sync.outbox); an edit
made with ``touch``, ``rm`` or ``ln -s`` is not. So each round first asks
which directories changed since the last round, and journals what changed
in them that fswl did not write:

- ``spool/.hand.sqlite`` keeps, per directory of db/ (levels, groups), the
  mtime it had and what it listed when it was last read. A round stats each
  directory (no listing is read unless its mtime moved), reads those that
  moved, and compares them with the listing kept: an entry, link or level
  that came or went is a difference. Comparing with what the directory
  listed, rather than with what a peer holds, is what tells "removed here by
  hand" from "never had it": a reconciliation cannot (docs/mirrors.md).
- The differences fswl made itself are in the change log
  (fswl.store.changelog), which every fswl writer appends to, received sync
  writes included; the position reached is kept with the listings. The rest
  were made by hand: a new entry becomes an add (dated by its mtime, so a
  restored old file does not beat a later removal, and a ``touch`` does), a
  vanished one a removal with a tombstone here (dated by its directory's
  mtime), a link that came a link (dated by the symlink's mtime), one that
  went an unlink with a link tombstone here, as `fswl unlink` leaves.

The first round with no listings kept only records them: there is nothing to
compare with. When the change log rotated twice since the last round, fswl's
writes cannot be told from hand edits, so nothing is journalled that round
and the log says so.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import posixpath
import sqlite3
import stat
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from fswl.errors import BadRecord, FswlError
from fswl.names import FAMILIES, is_level_name, network_from_parts, parse_group
from fswl.store import journal
from fswl.store.changelog import log_mark, logged_since
from fswl.store.files import mtime
from fswl.store.journal import Change
from fswl.store.tree import GROUPS_DIR, TOMB_DIR
from fswl.store.whitelist import Whitelist
from fswl.sync.records import MAX_LEVELS, check_entry_path, check_link_target, from_change, network_of, parse_record

log = logging.getLogger(__name__)

STATE = ".hand.sqlite"
LOCK = ".hand.lock"
#: A directory changed this recently when read may change again within the
#: same mtime tick; it is kept with mtime 0, "read again next round" (git's racy-clean rule).
RACY_NS = 2_000_000_000
ENTRY, DIR, LINK = "e", "d", "l"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (rel TEXT PRIMARY KEY, mtime INTEGER NOT NULL, listing TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Scan:
    """What one look at db/ found."""

    edits: list[Change] = field(default_factory=list)  #: hand edits, in the order journalled
    checked: int = 0  #: directories whose mtime was compared
    read: int = 0  #: directories listed (mtime moved, or new)
    baseline: bool = False  #: no listings were kept: recorded, nothing journalled
    lost: bool = False  #: the change log rotated unread: recorded, nothing journalled


def journal_hand_edits(db: str, spool_root: str, changelog: str, listener: Callable[[Change], None] | None,
                       dry_run: bool = False) -> Scan:
    """Find the hand edits made since the last call; unless ``dry_run``, write their tombstones,
    announce each to ``listener`` (mark for digests, journal for peers) and keep the new listings."""
    os.makedirs(spool_root, exist_ok=True)
    fd = os.open(os.path.join(spool_root, LOCK), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two rounds at once: the second finds nothing new
        state = os.path.join(spool_root, STATE)
        for attempt in range(2):
            conn = sqlite3.connect(state, timeout=60)
            try:
                conn.executescript(_SCHEMA)
                return _Scanner(db, conn, changelog, listener, dry_run).run()
            except sqlite3.DatabaseError as exc:  # a damaged file: start over, as at the first round
                if attempt or dry_run:
                    raise FswlError(f"{state}: {exc}; remove it (the next round records db/ afresh)") from None
                log.warning("hand edits: %s unreadable (%s); recording db/ afresh", state, exc)
                os.unlink(state)
            finally:
                conn.close()
        raise AssertionError("unreachable")
    finally:
        os.close(fd)


class _Scanner:
    def __init__(self, db: str, conn: sqlite3.Connection, changelog: str,
                 listener: Callable[[Change], None] | None, dry_run: bool) -> None:
        self.db, self.conn, self.changelog = db, conn, changelog
        self.listener, self.dry_run = listener, dry_run
        self.scan = Scan()
        self.rows: dict[str, tuple[int, str] | None] = {}  # rel -> (mtime, listing) to keep, None to drop
        self.found: list[Change] = []  # differences, fswl's own among them
        self.moved: dict[str, tuple[str, set[str]]] = {}  # relay made a link -> (target, entries it had)

    def run(self) -> Scan:
        mark = log_mark(self.changelog)  # before any listing: a write logged after it shows next round
        previous = self._meta("log")
        stamps = dict(self.conn.execute("SELECT rel, mtime FROM dirs"))
        if not stamps or previous is None:
            self.scan.baseline = True
            self._came_dir("")
        else:
            self.scan.checked = len(stamps)
            changed = []
            for rel, known in stamps.items():  # the whole cost of a round on an unchanged tree
                try:
                    moved = os.lstat(f"{self.db}/{rel}" if rel else self.db).st_mtime_ns != known
                except OSError:
                    moved = True
                if moved or not known:
                    changed.append(rel)
            for rel in sorted(changed, key=lambda r: (r.count("/"), r)):
                if rel not in self.rows:
                    self._compare(rel)
            logged = logged_since(self.changelog, json.loads(previous))
            if logged is None:
                self.scan.lost = True
                log.warning("hand edits: the change log rotated twice since the last round, so edits made by "
                            "hand since then cannot be told from fswl's own; none journalled this round "
                            "(`fswl sync --rescan` carries creations)")
            else:
                checked = (_checked(self.db, c) for c in self.found if not self._by_fswl(c, logged))
                self.scan.edits = [c for c in checked if c is not None]
        if not self.dry_run:
            self._apply()
            self._keep(mark)
        return self.scan

    # -- comparing ---------------------------------------------------------------

    def _compare(self, rel: str) -> None:
        row = self.conn.execute("SELECT listing FROM dirs WHERE rel = ?", (rel,)).fetchone()
        old: dict[str, str] = json.loads(row[0]) if row else {}
        read = self._read(rel)
        if read is None:
            self._gone_dir(rel, self._parent_mtime(rel))
            return
        when = read[0] / 1e9
        new = read[1]
        for name in sorted(old.keys() | new.keys()):
            a, b = old.get(name), new.get(name)
            if a == b:
                continue
            path = f"{rel}/{name}" if rel else name
            if a == DIR and b is not None and b[0] == LINK:
                # As `fswl link` does, the relay's entries go with it into the group: no removals.
                self.moved[path] = (b[1:], self._drop_rows(path))
            elif a is not None and not (a[0] == LINK and b is not None and b[0] == LINK):
                self._gone(path, a, when)
            if b is not None:
                self._came(path, b)

    def _gone(self, path: str, kind: str, when: float) -> None:
        if kind == ENTRY:
            self.found.append(Change(journal.REMOVE, path, when=when))
        elif kind[0] == LINK:
            self.found.append(Change(journal.UNLINK, path, when=when))
        else:
            self._gone_dir(path, when)

    def _gone_dir(self, rel: str, when: float) -> None:
        """A directory that went (``rm -r``): each entry and link it had, at any depth, went with it."""
        for sub, listing in self.conn.execute(
                "SELECT rel, listing FROM dirs WHERE rel = ? OR (rel > ? AND rel < ?) ORDER BY rel",
                (rel, rel + "/", rel + "0")).fetchall():
            for name, kind in sorted(json.loads(listing).items()):
                if kind != DIR:
                    self._gone(f"{sub}/{name}", kind, when)
            self.rows[sub] = None

    def _drop_rows(self, rel: str) -> set[str]:
        entries: set[str] = set()
        for sub, listing in self.conn.execute(
                "SELECT rel, listing FROM dirs WHERE rel = ? OR (rel > ? AND rel < ?)",
                (rel, rel + "/", rel + "0")).fetchall():
            if sub == rel:
                entries = {n for n, k in json.loads(listing).items() if k == ENTRY}
            self.rows[sub] = None
        return entries

    def _came(self, path: str, kind: str) -> None:
        if kind == DIR:
            self._came_dir(path)
            return
        try:
            when = os.lstat(os.path.join(self.db, path)).st_mtime
        except OSError:
            return  # gone again meanwhile
        if kind == ENTRY:
            self.found.append(Change(journal.ADD, path, when=when))
        else:
            self.found.append(Change(journal.LINK, path, target=kind[1:], when=when))

    def _came_dir(self, rel: str) -> None:
        """A directory not kept yet (all of db/ at the first round): everything in it is new."""
        read = self._read(rel)
        for name, kind in sorted(read[1].items()) if read is not None else ():
            path = f"{rel}/{name}" if rel else name
            if kind == DIR:
                self._came_dir(path)
            elif not self.scan.baseline:
                self._came(path, kind)

    def _read(self, rel: str) -> tuple[int, dict[str, str]] | None:
        """(mtime, listing) of a real directory of db/, kept for the next round; None if it is not one."""
        path = f"{self.db}/{rel}" if rel else self.db
        try:
            status = os.lstat(path)  # before the listing: a change during the read moves it past this
            children = os.scandir(path)
        except OSError:
            return None
        if not stat.S_ISDIR(status.st_mode):
            return None
        self.scan.read += 1
        listing: dict[str, str] = {}
        subdirs, files = _allowed(rel)
        with children:
            for child in children:
                name = child.name
                if name[0] == ".":
                    continue
                try:
                    if child.is_symlink():
                        if subdirs(name):
                            listing[name] = LINK + os.readlink(child.path)
                    elif child.is_dir(follow_symlinks=False):
                        if subdirs(name):
                            listing[name] = DIR
                    elif files and child.is_file(follow_symlinks=False):
                        listing[name] = ENTRY
                except OSError:
                    continue  # went meanwhile
        mtime = status.st_mtime_ns
        self.rows[rel] = (0 if time.time_ns() - mtime < RACY_NS else mtime, json.dumps(listing, separators=(",", ":")))
        return mtime, listing

    def _parent_mtime(self, rel: str) -> float:
        parent = _mtime_ns(self.db, posixpath.dirname(rel))
        return parent / 1e9 if parent else time.time()

    def _by_fswl(self, change: Change, logged: set[str]) -> bool:
        """Whether the change log names this change (or a relay it was under, for `fswl link`)."""
        path = change.path
        while path:
            if path in logged:
                return True
            path = posixpath.dirname(path)
        if change.op == journal.ADD:  # an entry `fswl link` moved into its group
            group, name = posixpath.split(change.path)
            for relay, (target, entries) in self.moved.items():
                if name in entries and relay in logged and _lands_on(relay, target) == group:
                    return True
        return False

    # -- writing -------------------------------------------------------------------

    def _apply(self) -> None:
        """Make each hand edit what the matching fswl command would have made, and announce it."""
        listeners = [self.listener] if self.listener is not None else []
        wl = Whitelist(self.db, listeners)
        done = []
        for change in self.scan.edits:
            directory, name = os.path.split(os.path.join(self.db, change.path))
            try:
                if change.op == journal.LINK:
                    wl.emit(change)  # dated by the symlink's own mtime, its time from now on
                elif change.op == journal.UNLINK:  # leaves the link tombstone `fswl unlink` would
                    if os.path.islink(os.path.join(directory, name)) or not wl.unlink_at(
                            network_from_parts(*network_of(change.path)), change.when):
                        continue  # linked again meanwhile, or a newer unlink is on record
                elif change.op == journal.ADD:
                    # Removes an older tombstone, as `fswl add` does.
                    if not (os.path.lexists(os.path.join(directory, name))
                            and wl.add_at(directory, check_entry_path(change.path), when=change.when)):
                        continue
                else:
                    if os.path.lexists(os.path.join(directory, name)):
                        continue  # made again meanwhile
                    wl.remove_at(directory, check_entry_path(change.path), when=change.when)
            except (FswlError, OSError) as exc:
                log.warning("hand edits: %s %s not journalled: %s", change.op, change.path, exc)
                continue
            done.append(change)
        self.scan.edits = done
        if done:
            log.info("hand edits: journalled %d (%s)", len(done), ", ".join(f"{c.op} {c.path}" for c in done[:5]))

    def _keep(self, mark: list[int]) -> None:
        with self.conn:
            if self.scan.baseline:
                self.conn.execute("DELETE FROM dirs")
            self.conn.executemany("DELETE FROM dirs WHERE rel = ?", [(r,) for r, v in self.rows.items() if v is None])
            self.conn.executemany("INSERT OR REPLACE INTO dirs VALUES (?, ?, ?)",
                                  [(r, *v) for r, v in self.rows.items() if v is not None])
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('log', ?)", (json.dumps(mark),))

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None


def _allowed(rel: str) -> tuple[Callable[[str], bool], bool]:
    """(which sub-directory or link names a directory may hold, whether it holds entries)."""
    if not rel:
        return (lambda name: name in FAMILIES.values() or name == GROUPS_DIR), False
    parts = rel.split("/")
    if parts[0] == GROUPS_DIR:
        if len(parts) == 1:
            return _is_group, False
        return (lambda name: False), True  # a group is flat
    version = 4 if parts[0] == FAMILIES[4] else 6
    depth = len(parts) - 1
    if depth >= MAX_LEVELS[parts[0]]:
        return (lambda name: False), True
    return (lambda name: is_level_name(version, name)), depth > 0


def _is_group(name: str) -> bool:
    try:
        parse_group(name)
    except FswlError:
        return False
    return True


def _checked(db: str, change: Change) -> Change | None:
    """A hand edit as peers will accept it (a name fswl would write, a link onto a group), or None:
    not one fswl would make, or already beaten by a newer tombstone (a removal on record wins)."""
    if change.op == journal.LINK:
        target = _canonical_target(change.path, change.target or "")
        if target is None:
            log.info("hand edits: link %s -> %s lands on no group; not journalled (see `fswl fsck`)",
                     change.path, change.target)
            return None
        change = replace(change, target=target)
    record = from_change(change)
    try:
        if record is None:
            return None
        parse_record(record.line())
    except BadRecord as exc:
        log.info("hand edits: %s %s not journalled: %s (see `fswl fsck`)", change.op, change.path, exc)
        return None
    if change.op in (journal.ADD, journal.REMOVE):
        directory, name = posixpath.split(change.path)
        if mtime(os.path.join(db, directory, TOMB_DIR, name)) >= change.when:
            return None  # removed at that time or later: the removal on record wins
    return change


def _canonical_target(path: str, target: str) -> str | None:
    """The target `fswl link` would write for a link landing on groups/GROUP, however it was spelt."""
    group = _lands_on(path, target)
    if group is None:
        return None
    canonical = posixpath.relpath(group, posixpath.dirname(path))
    try:
        check_link_target(path, canonical)
    except BadRecord:
        return None
    return canonical


def _lands_on(path: str, target: str) -> str | None:
    """``groups/NAME`` that a link at ``path`` with ``target`` names, lexically; None if anything else."""
    if not target or target.startswith("/"):
        return None  # an absolute link may point anywhere (fsck names it); only relative ones travel
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    parts = joined.split("/")
    return joined if len(parts) == 2 and parts[0] == GROUPS_DIR and _is_group(parts[1]) else None


def _mtime_ns(db: str, rel: str) -> int | None:
    try:
        return os.lstat(f"{db}/{rel}" if rel else db).st_mtime_ns
    except OSError:
        return None
