"""Digests of db/ subtrees, for full reconciliation of two nodes with few differences.

A directory's digest covers the names of its entries, its tombstones (a link
tombstone too), its links with their targets and times, and its
sub-directories with their digests; not the mtimes of entries and tombstones
(an entry's is its add time, carried by its record and settled against
tombstones; last-seen times travel in access lists). A link's time is in the
digest so that two nodes end with the same link, not merely the same target:
which of a link and an unlink is newer is decided by it.  Two nodes compare the
top level, then descend only into directories whose digests differ, and
exchange the records of what one has and the other lacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, NamedTuple

from fswl.names import FAMILIES
from fswl.store import journal
from fswl.store.tree import GROUPS_DIR, LINK_TOMB, TOMB_DIR, Tree
from fswl.sync.batches import DIGESTS_LOCK
from fswl.sync.records import Record
from fswl.util import atomic

if TYPE_CHECKING:
    from fswl.sync.batches import Spool

log = logging.getLogger(__name__)
ROOTS = (*FAMILIES.values(), GROUPS_DIR)
#: Path components of a subtree whose digest is kept between runs: ``ip4/57/129``.
SUBTREE_DEPTH = 3
INDEX = ".digests"
#: Kinds of child in a listing: a link tombstone is ``.tomb/.link`` of kind UNLINKED.
ENTRY, TOMB, LINK, DIR, UNLINKED = "e", "t", "l", "d", "u"
#: The name a link tombstone has in its relay's listing.
LINK_TOMB_NAME = TOMB_DIR + "/" + LINK_TOMB
#: The version of the digests kept in spool/.digests: a cache of another version is not used.
INDEX_VERSION = 2


class Child(NamedTuple):
    """One child of a directory as compared: kind, and mtime, link target or digest."""

    kind: str
    value: str | float


class Digests:
    """Listings and digests of the directories of one db/.

    With a ``spool``, the digests of second-level subtrees (``ip4/57/129``)
    are kept in ``spool/.digests`` and reused unless a write through fswl
    marked them dirty since (Spool.mark_dirty); only those are walked, and
    any listing below them is read when first asked for.  ``rescan`` walks
    everything, for a tree changed behind fswl's back.
    """

    def __init__(self, db: str, spool: Spool | None = None, rescan: bool = False) -> None:
        self.db = db
        self.listings: dict[str, dict[str, Child]] = {}
        self._subtrees: dict[str, str] = {}
        if spool is None:
            self.listings[""] = self._root({}, set())
            return
        index = spool.root / INDEX
        with spool.locked(spool.root / DIGESTS_LOCK):
            dirty = spool.take_dirty()
            cache = {} if rescan else _load(index)
            self.listings[""] = self._root(cache, dirty)
            _save(index, self._subtrees)
            spool.dirty_done()

    def _root(self, cache: dict[str, str], dirty: set[str]) -> dict[str, Child]:
        root: dict[str, Child] = {}
        for name in ROOTS:
            path = os.path.join(self.db, name)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                usable = cache if name != GROUPS_DIR else None
                root[name] = Child(DIR, self._walk(name, path, usable, dirty))
        return root

    def _walk(self, rel: str, path: str, cache: dict[str, str] | None = None, dirty: frozenset[str] | set[str] = frozenset()) -> str:
        listing: dict[str, Child] = {}
        try:
            children = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            children = None  # pruned by `fswl expire` meanwhile: an empty directory
        # The hot loop of a reconciliation: tens of thousands of children per walk.
        deeper = cache is not None and rel.count("/") + 1 < SUBTREE_DEPTH - 1
        with children or _nothing():
            for child in children or ():
                name = child.name
                if name[0] == ".":
                    if name == TOMB_DIR:
                        self._tombs(child.path, listing)
                elif child.is_dir(follow_symlinks=False):
                    sub = rel + "/" + name
                    if cache is None:
                        digest = self._walk(sub, child.path)
                    elif deeper:
                        digest = self._walk(sub, child.path, cache, dirty)
                    else:
                        digest = cache.get(sub) if sub not in dirty else None
                        if digest is None:
                            digest = self._walk(sub, child.path)
                        self._subtrees[sub] = digest
                    listing[name] = Child(DIR, digest)
                elif child.is_symlink():
                    if (link := _link(self.db, child.path)) is not None:
                        listing[name] = link
                elif child.is_file(follow_symlinks=False):
                    listing[name] = Child(ENTRY, child.stat(follow_symlinks=False).st_mtime)
        self.listings[rel] = listing
        return digest_of(listing)

    @staticmethod
    def _tombs(path: str, listing: dict[str, Child]) -> None:
        with os.scandir(path) as tombs:
            for tomb in tombs:
                if not tomb.is_file(follow_symlinks=False):
                    continue
                if tomb.name == LINK_TOMB:
                    listing[LINK_TOMB_NAME] = Child(UNLINKED, tomb.stat(follow_symlinks=False).st_mtime)
                elif not tomb.name.startswith("."):
                    listing[TOMB_DIR + "/" + tomb.name] = Child(TOMB, tomb.stat(follow_symlinks=False).st_mtime)

    def _ensure(self, rel: str) -> None:
        """Read the listings of the cached subtree holding ``rel``, if not read yet."""
        if rel in self.listings or not rel:
            return
        key = subtree_key(rel + "/x")
        if key is not None and key not in self.listings and os.path.isdir(os.path.join(self.db, key)):
            self._walk(key, os.path.join(self.db, key))

    def children(self, rel: str) -> dict[str, list[str | float]]:
        """A directory's listing in the form sent to a peer."""
        self._ensure(rel)
        return {name: [c.kind, c.value] for name, c in self.listings.get(rel, {}).items()}

    def records(self, rel: str, names: list[str] | None = None) -> list[Record]:
        """Records that recreate ``rel`` (or only ``names`` of it) on another node, subtrees included."""
        out: list[Record] = []
        self._ensure(rel)
        listing = self.listings.get(rel, {})
        # A link tombstone first: an unlink that wins must come before the entries of the relay's own
        # directory, or they would be added through the link into its group.
        for name in sorted(listing if names is None else names, key=lambda n: (n != LINK_TOMB_NAME, n)):
            child = listing.get(name)
            if child is None:
                continue
            path = f"{rel}/{name}" if rel else name
            if child.kind == ENTRY:
                out.append(Record(journal.ADD, path, float(child.value)))
            elif child.kind == TOMB:
                out.append(Record(journal.REMOVE, f"{rel}/{name[len(TOMB_DIR) + 1:]}", float(child.value)))
            elif child.kind == UNLINKED:
                out.append(Record(journal.UNLINK, rel, float(child.value)))
            elif child.kind == LINK:
                target, when = split_link(str(child.value))
                out.append(Record(journal.LINK, path, when, target))
            elif rel:  # a top-level root (ip4, ip6, groups) is a path of its own
                out.extend(self.records(path))
            else:
                out.extend(self.records(name))
        return out


def digest_of(listing: dict[str, Child]) -> str:
    """The digest of one directory listing (mtimes of entries and tombstones left out)."""
    lines = []
    for name in sorted(listing):
        kind, value = listing[name]
        lines.append(f"{kind}{name}\0{value}\n" if kind in (LINK, DIR) else f"{kind}{name}\n")
    return hashlib.blake2b("".join(lines).encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def compare(mine: dict[str, list[str | float]], theirs: dict[str, list[str | float]]
            ) -> tuple[list[str], list[str], list[str]]:
    """(names to pull, names to push, sub-directories to descend) between two listings."""
    pull, push, descend = [], [], []
    for name in set(mine) | set(theirs):
        a, b = mine.get(name), theirs.get(name)
        if a is None:
            pull.append(name)
        elif b is None:
            push.append(name)
        elif a[0] == DIR and b[0] == DIR:
            if a[1] != b[1]:
                descend.append(name)
        elif a[0] != b[0] or (a[0] == LINK and a[1] != b[1]):
            pull.append(name)  # a link here, a directory there: both sides' records settle it
            push.append(name)
    return sorted(pull), sorted(push), sorted(descend)


def _link(db: str, path: str) -> Child | None:
    """A link as compared; None for one that loops, dangles or leaves db/: a miss, never sent (fsck names it)."""
    check = Tree(db).check_link(path)
    if not check.ok:
        log.warning("digests skip %s: %s", os.path.relpath(path, db), check.problem)
        return None
    return Child(LINK, f"{os.readlink(path)}\t{os.lstat(path).st_mtime:.6f}")


def split_link(value: str) -> tuple[str, float]:
    """(target, time) of a link as a listing carries it: ``../../../groups/g<TAB>1732460002.000000``.

    The time is written to the microsecond, as records carry it, so that a
    link applied from a record lists exactly as it does on its origin.
    """
    target, _, when = value.rpartition("\t")
    try:
        return target, float(when)
    except ValueError:
        return value, 0.0  # a peer of an older version: its link has no time


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def subtree_key(path: str) -> str | None:
    """The kept subtree a path under db/ falls in (``ip4/57/129``), or None above that level or in groups/."""
    parts = path.split("/", SUBTREE_DEPTH)
    if parts[0] not in FAMILIES.values() or len(parts) < SUBTREE_DEPTH:
        return None
    return "/".join(parts[:SUBTREE_DEPTH])


def _load(index: Path) -> dict[str, str]:
    try:
        data = json.loads(index.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(data, dict) or data.pop("", None) != INDEX_VERSION:
        return {}  # written by an older fswl (links without times): walk everything once
    return data


def _save(index: Path, digests: dict[str, str]) -> None:
    # Durable: a cache older than the dirty marks already consumed would hide differences.
    atomic.write_atomic(index, json.dumps({"": INDEX_VERSION, **digests}, separators=(",", ":")))
