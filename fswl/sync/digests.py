"""Digests of db/ subtrees, for full reconciliation of two nodes with few differences.

A directory's digest covers the names of its entries, its tombstones, its
links with their targets and its sub-directories with their digests; not
mtimes (last-seen times travel in access lists).  Two nodes compare the
top level, then descend only into directories whose digests differ, and
exchange the records of what one has and the other lacks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

from fswl.names import FAMILIES
from fswl.store import journal
from fswl.store.tree import GROUPS_DIR, TOMB_DIR
from fswl.sync.records import Record

ROOTS = (*FAMILIES.values(), GROUPS_DIR)
#: Kinds of child in a listing.
ENTRY, TOMB, LINK, DIR = "e", "t", "l", "d"


@dataclass
class Child:
    """One child of a directory as compared: kind, and mtime, link target or digest."""

    kind: str
    value: str | float


class Digests:
    """Listings and digests of every directory of one db/, computed in one walk."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.listings: dict[str, dict[str, Child]] = {}
        root: dict[str, Child] = {}
        for name in ROOTS:
            path = os.path.join(db, name)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                root[name] = Child(DIR, self._walk(name, path))
        self.listings[""] = root

    def _walk(self, rel: str, path: str) -> str:
        listing: dict[str, Child] = {}
        with os.scandir(path) as children:
            for child in children:
                name = child.name
                if name == TOMB_DIR:
                    with os.scandir(child.path) as tombs:
                        for tomb in tombs:
                            if tomb.is_file(follow_symlinks=False) and not tomb.name.startswith("."):
                                listing[TOMB_DIR + "/" + tomb.name] = Child(TOMB, tomb.stat(follow_symlinks=False).st_mtime)
                elif name.startswith("."):
                    continue
                elif child.is_symlink():
                    listing[name] = Child(LINK, os.readlink(child.path))
                elif child.is_dir(follow_symlinks=False):
                    listing[name] = Child(DIR, self._walk(rel + "/" + name, child.path))
                elif child.is_file(follow_symlinks=False):
                    listing[name] = Child(ENTRY, child.stat(follow_symlinks=False).st_mtime)
        self.listings[rel] = listing
        return digest_of(listing)

    def children(self, rel: str) -> dict[str, list[str | float]]:
        """A directory's listing in the form sent to a peer."""
        return {name: [c.kind, c.value] for name, c in self.listings.get(rel, {}).items()}

    def records(self, rel: str, names: list[str] | None = None) -> list[Record]:
        """Records that recreate ``rel`` (or only ``names`` of it) on another node, subtrees included."""
        out: list[Record] = []
        listing = self.listings.get(rel, {})
        for name in (sorted(listing) if names is None else names):
            child = listing.get(name)
            if child is None:
                continue
            path = f"{rel}/{name}" if rel else name
            if child.kind == ENTRY:
                out.append(Record(journal.ADD, path, float(child.value)))
            elif child.kind == TOMB:
                out.append(Record(journal.REMOVE, f"{rel}/{name[len(TOMB_DIR) + 1:]}", float(child.value)))
            elif child.kind == LINK:
                out.append(Record(journal.LINK, path, 0.0, str(child.value)))
            elif rel:  # a top-level root (ip4, ip6, groups) is a path of its own
                out.extend(self.records(path))
            else:
                out.extend(self.records(name))
        return out


def digest_of(listing: dict[str, Child]) -> str:
    """The digest of one directory listing (mtimes of entries and tombstones left out)."""
    hasher = hashlib.blake2b(digest_size=16)
    for name in sorted(listing):
        child = listing[name]
        hasher.update(child.kind.encode())
        hasher.update(name.encode("utf-8", "surrogateescape"))
        if child.kind in (LINK, DIR):
            hasher.update(b"\0" + str(child.value).encode("utf-8", "surrogateescape"))
        hasher.update(b"\n")
    return hasher.hexdigest()


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
