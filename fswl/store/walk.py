"""Walking db/: every listing as the lookup sees it, and every oddity found on the way."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterator

from fswl.errors import BadName, BadSender
from fswl.names import (
    FAMILIES,
    IPNetwork,
    is_level_name,
    name_to_sender,
    network_from_parts,
    parse_sender,
)
from fswl.store.tree import GROUPS_DIR, TOMB_DIR, Tree


@dataclass(frozen=True)
class Listing:
    """One entry as it applies to one network (or to a group no relay links to yet)."""

    network: IPNetwork | None  #: None for an entry of a group seen on its own
    sender: str
    path: str  #: the entry file, symlinks resolved
    mtime: float  #: when it was explicitly added (last-seen times are in fswl.store.lastseen)
    via: str | None  #: the linked directory relative to db/, when reached through a link
    group: str | None = None  #: for entries walked in db/groups/


@dataclass(frozen=True)
class Problem:
    """Something in db/ that fswl does not follow or use."""

    path: str  #: relative to db/
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def walk(tree: Tree, problems: list[Problem] | None = None, groups: bool = False) -> Iterator[Listing]:
    """Yield every entry for every relay and prefix, following group links inside db/.

    Entries of a linked directory are yielded once for every network that
    links to it, the way lookups see them.  With ``groups``, entries of
    db/groups/ are also yielded on their own (``network`` None).  Whatever is
    skipped (links leaving db/, stray files) is appended to ``problems``.
    """
    sink: list[Problem] = [] if problems is None else problems
    for version, family in FAMILIES.items():
        yield from _walk_level(tree, version, os.path.join(tree.db, family), (), None, sink)
    if groups:
        yield from _walk_groups(tree, sink)


def _walk_level(tree: Tree, version: int, lexical: str, parts: tuple[str, ...], via: str | None,
                problems: list[Problem]) -> Iterator[Listing]:
    real = lexical
    linked = False
    try:
        is_link = stat.S_ISLNK(os.lstat(lexical).st_mode)
    except FileNotFoundError:
        return
    if is_link:
        check = tree.check_link(lexical)
        if check.resolved is None:
            problems.append(Problem(tree.relative(lexical), check.problem))
            return
        real = check.resolved
        via = tree.relative(real)
        linked = True  # a linked directory is flat: its entries only
    network = network_from_parts(version, parts) if parts else None
    try:
        children = list(os.scandir(real))
    except OSError as exc:
        problems.append(Problem(tree.relative(lexical), exc.strerror or str(exc)))
        return
    max_depth = 4 if version == 4 else 8
    for child in sorted(children, key=lambda c: _level_order(version, c.name)):
        if child.name.startswith("."):
            continue
        child_lexical = os.path.join(lexical, child.name)
        # follow_symlinks=False: is_dir() on a looping link raises ELOOP; links are checked below.
        if is_level_name(version, child.name) and (child.is_dir(follow_symlinks=False) or child.is_symlink()):
            if linked or len(parts) >= max_depth:
                problems.append(Problem(tree.relative(child.path), "a sub-level inside a linked directory or below a /32, /128; ignored"))
            else:
                yield from _walk_level(tree, version, child_lexical, parts + (child.name,), via, problems)
            continue
        if network is None:
            problems.append(Problem(tree.relative(child_lexical), "not a tree level; ignored"))
            continue
        sender = _entry_sender(child, problems, tree, child_lexical)
        if sender is not None:
            yield Listing(network, sender, child.path, child.stat(follow_symlinks=False).st_mtime, via)


def _level_order(version: int, name: str) -> tuple[int, int, str]:
    """A level's own entries by name, then its sub-levels in numeric order."""
    if is_level_name(version, name):
        return (1, int(name, 10 if version == 4 else 16), "")
    return (0, 0, name)


def _walk_groups(tree: Tree, problems: list[Problem]) -> Iterator[Listing]:
    root = os.path.join(tree.db, GROUPS_DIR)
    if os.path.islink(root) and not (check := tree.check_link(root)).ok:
        problems.append(Problem(GROUPS_DIR, check.problem))
        return
    try:
        groups = sorted(os.scandir(root), key=lambda c: c.name)
    except FileNotFoundError:
        return
    except OSError as exc:
        problems.append(Problem(GROUPS_DIR, exc.strerror or str(exc)))
        return
    for group in groups:
        if group.name.startswith("."):
            continue
        if group.is_symlink() and not (check := tree.check_link(group.path)).ok:
            problems.append(Problem(tree.relative(group.path), check.problem))
            continue
        if not group.is_dir(follow_symlinks=False):
            continue
        try:
            children = sorted(os.scandir(group.path), key=lambda c: c.name)
        except OSError as exc:
            problems.append(Problem(tree.relative(group.path), exc.strerror or str(exc)))
            continue
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir(follow_symlinks=False):
                problems.append(Problem(tree.relative(child.path), "a group holds entries only; directory ignored"))
                continue
            sender = _entry_sender(child, problems, tree, child.path)
            if sender is not None:
                mtime = child.stat(follow_symlinks=False).st_mtime
                yield Listing(None, sender, child.path, mtime, None, group.name)


def _entry_sender(child: os.DirEntry[str], problems: list[Problem], tree: Tree, lexical: str) -> str | None:
    if child.is_symlink() and not (check := tree.check_link(lexical)).ok:
        problems.append(Problem(tree.relative(lexical), check.problem))
        return None
    if not child.is_file(follow_symlinks=False):
        problems.append(Problem(tree.relative(lexical), "an entry must be a plain empty file; ignored"))
        return None
    try:
        sender = name_to_sender(child.name)
        if parse_sender(sender) != sender:
            raise BadName(child.name, "not a canonical sender")
    except (BadName, BadSender) as exc:
        problems.append(Problem(tree.relative(lexical), f"{exc} Rename it with `fswl add`; ignored"))
        return None
    return sender


def tomb_dirs(tree: Tree) -> Iterator[str]:
    """Every .tomb directory in db/ (physical walk, links not followed)."""
    for top, dirs, _files in os.walk(tree.db):
        if TOMB_DIR in dirs:
            yield os.path.join(top, TOMB_DIR)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
