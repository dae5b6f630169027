"""Reading db/ into a MemoryIndex: the whole tree at start, one directory per change after."""

from __future__ import annotations

import logging
import os
import stat
import time
from typing import Iterable

from fswl.errors import BadName, BadSender
from fswl.index.memory import WIDTH, MemoryIndex
from fswl.names import FAMILIES, LEVEL_BITS, is_level_name, name_to_sender, parse_sender
from fswl.store.tree import GROUPS_DIR

log = logging.getLogger(__name__)

#: Directories modified this recently when read are read again on the next start (see stamp()).
RACY_NS = 2_000_000_000
_FAMILY_VERSION = {name: version for version, name in FAMILIES.items()}


def load_all(index: MemoryIndex) -> int:
    """Load every level and group of db/; returns the number of entries indexed."""
    with index.lock:
        stamp(index, "")
        for version, family in FAMILIES.items():
            _load_children(index, version, family, 0, 0)
        load_groups(index)
    return index.count()


def load_groups(index: MemoryIndex, only_new: bool = False) -> None:
    """Load every group directory (or, with ``only_new``, those not seen before)."""
    groups = os.path.join(index.tree.db, GROUPS_DIR)
    stamp(index, GROUPS_DIR)
    if os.path.isdir(groups) and _family_ok(index, GROUPS_DIR):
        for child in _scan(index, GROUPS_DIR):
            if child.is_dir(follow_symlinks=False) and not child.name.startswith("."):
                rel = f"{GROUPS_DIR}/{child.name}"
                if not only_new or rel not in index.stamps:
                    load_entries(index, rel)


def stamp(index: MemoryIndex, rel: str) -> None:
    """Remember a directory's mtime just before it is read, for the snapshot's staleness check.

    A directory changed within RACY_NS of being read may have changed again
    in the same timestamp tick after the read, so it is stamped 0: "always
    read again" (git's racy-clean rule).
    """
    try:
        mtime = os.stat(os.path.join(index.tree.db, rel)).st_mtime_ns
    except OSError:
        index.stamps.pop(rel, None)
        return
    index.stamps[rel] = 0 if time.time_ns() - mtime < RACY_NS else mtime


def reload_path(index: MemoryIndex, rel: str) -> None:
    """Bring the index up to date after something changed at ``rel`` (relative to db/)."""
    parts = rel.split("/")
    with index.lock:
        if parts[0] == GROUPS_DIR and len(parts) >= 2:
            load_entries(index, f"{GROUPS_DIR}/{parts[1]}")
            return
        version = _FAMILY_VERSION.get(parts[0])
        if version is None:
            return
        bits = LEVEL_BITS[version]
        depth = 0
        while depth + 1 < len(parts) and depth < WIDTH[version] // bits and is_level_name(version, parts[depth + 1]):
            depth += 1
        levels = parts[1 : depth + 1]
        if depth == 0:
            _load_children(index, version, parts[0], 0, 0)
            return
        if depth == len(parts) - 1:  # the level itself appeared, went, or became a link
            load_level(index, version, levels)
        elif not parts[depth + 1].startswith("."):  # an entry in that level
            directory = "/".join(parts[: depth + 1])
            if (version, depth * bits, _network_int(version, levels)) not in index.linked:
                load_entries(index, directory)


def _first_link(index: MemoryIndex, parts: list[str]) -> int | None:
    """The depth of the shallowest of ``parts`` (a path under db/) that is a symlink (a few lstat calls)."""
    path = index.tree.db
    for depth, part in enumerate(parts):
        path = path + os.sep + part
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return depth
        except OSError:
            return None
    return None


def reload_logged(index: MemoryIndex, rel: str) -> None:
    """reload_path for a path from the change log, which names only the entry or link.

    inotify would also have announced each level directory made or pruned on
    the way; here the highest level whose existence the index has wrong is
    reloaded instead (a few lstat calls).
    """
    parts = rel.split("/")
    version = _FAMILY_VERSION.get(parts[0])
    if version is not None:
        bits = LEVEL_BITS[version]
        for depth in range(1, min(len(parts), WIDTH[version] // bits + 1)):
            if not is_level_name(version, parts[depth]):
                break
            levels = parts[1 : depth + 1]
            key = (version, depth * bits, _network_int(version, levels))
            on_disk = os.path.lexists(os.path.join(index.tree.db, *parts[: depth + 1]))
            with index.lock:
                if on_disk != (key[2] in index.levels[key[:2]]):
                    load_level(index, version, levels)
                    return
                if key in index.linked:
                    break
    reload_path(index, rel)


def load_level(index: MemoryIndex, version: int, levels: list[str]) -> None:
    """(Re)load one level directory, what it links to, and everything below it."""
    tree = index.tree
    bits = LEVEL_BITS[version]
    plen, network_int = len(levels) * bits, _network_int(version, levels)
    rel = "/".join([FAMILIES[version], *levels])
    path = os.path.join(tree.db, rel)
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # gone, or below a link that loops or dangles now: a miss either way
        mode = None
    if mode is None or not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        _forget(index, version, plen, network_int, rel)
        return
    if stat.S_ISLNK(mode):
        check = tree.check_link(path)
        if check.resolved is None:
            log.warning("index skips %s: %s", rel, check.problem)
            _forget(index, version, plen, network_int, rel)
            return
        target = tree.relative(check.resolved)
        if not os.path.isdir(os.path.join(tree.db, target)):
            _forget(index, version, plen, network_int, rel)
            return
        index.drop_below(version, plen, network_int)
        if (version, plen, network_int) not in index.linked:
            index.set_entries(rel, ())
        index.set_level(version, plen, network_int, target, linked=True)
        load_entries(index, target)
        return
    index.set_level(version, plen, network_int, rel, linked=False)
    _load_children(index, version, rel, plen, network_int)


def load_entries(index: MemoryIndex, directory: str) -> None:
    """Set the entries of one physical directory from its files."""
    names = []
    stamp(index, directory)
    children = _scan(index, directory)
    for child in children:
        if _is_entry(child):
            names.append(child.name)
    index.set_entries(directory, names)


def _load_children(index: MemoryIndex, version: int, rel: str, plen: int, network_int: int) -> None:
    """Entries of a real level directory, and each sub-level; forget sub-levels that went."""
    bits = LEVEL_BITS[version]
    stamp(index, rel)
    children = _scan(index, rel) if plen or _family_ok(index, rel) else []
    names = []
    present = set()
    for child in children:
        if child.name.startswith("."):
            continue
        if plen < WIDTH[version] and is_level_name(version, child.name) and (child.is_dir(follow_symlinks=False) or child.is_symlink()):
            levels = rel.split("/")[1:] + [child.name]
            present.add(_network_int(version, levels))
            load_level(index, version, levels)
        elif plen and _is_entry(child):
            names.append(child.name)
    if plen:
        index.set_entries(rel, names)
    for deeper, start, _directory in index.levels_below(version, plen, network_int) if plen else _top(index, version):
        if deeper == plen + bits and start not in present:
            _forget(index, version, deeper, start, MemoryIndex.level_path(version, deeper, start))


def _scan(index: MemoryIndex, rel: str) -> list[os.DirEntry[str]]:
    """The children of a directory of db/; none if it went, or cannot be read (logged)."""
    try:
        return list(os.scandir(os.path.join(index.tree.db, rel)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:  # ELOOP through a link made since, EACCES: a miss, never a stop
        log.warning("index skips %s: %s", rel, exc.strerror or exc)
        return []


def _family_ok(index: MemoryIndex, family: str) -> bool:
    """ip4/, ip6/ or groups/ may be a link only to somewhere inside db/; anything else is a miss."""
    path = os.path.join(index.tree.db, family)
    if not os.path.islink(path):
        return True
    check = index.tree.check_link(path)
    if check.resolved is None:
        log.warning("index skips %s: %s", family, check.problem)
    return check.resolved is not None


def _top(index: MemoryIndex, version: int) -> list[tuple[int, int, str]]:
    bits = LEVEL_BITS[version]
    return [(bits, start, d) for start, d in index.levels[(version, bits)].items()]


def _forget(index: MemoryIndex, version: int, plen: int, network_int: int, rel: str) -> None:
    index.stamps.pop(rel, None)
    index.drop_below(version, plen, network_int)
    if (version, plen, network_int) not in index.linked:
        index.set_entries(rel, ())
    index.set_level(version, plen, network_int, None)


def _is_entry(child: os.DirEntry[str]) -> bool:
    """True for a file whose name is exactly the file name of a canonical sender."""
    if child.name.startswith(".") or not child.is_file(follow_symlinks=False):
        return False
    try:
        sender = name_to_sender(child.name)
        return parse_sender(sender) == sender
    except (BadName, BadSender):
        return False  # `fswl fsck` reports it


def _network_int(version: int, levels: list[str]) -> int:
    bits = LEVEL_BITS[version]
    width = WIDTH[version]
    value = 0
    for i, part in enumerate(levels):
        value |= int(part, 10 if version == 4 else 16) << (width - bits * (i + 1))
    return value


def directory_mtime(db: str, rel: str) -> int | None:
    """The mtime (ns) of a directory of db/ ("" is db/ itself), or None if it is gone."""
    try:
        # An f-string, not os.path.join: this runs once per directory of db/ at start and per sweep.
        return os.stat(f"{db}/{rel}" if rel else db).st_mtime_ns
    except OSError:
        return None


def changed_directories(db: str, stamps: dict[str, int], rels: Iterable[str]) -> list[str]:
    """Those of ``rels`` whose mtime is not the one stamped when they were read (or was racy): to read again."""
    return [rel for rel in rels
            if (known := stamps.get(rel)) is not None and (not known or directory_mtime(db, rel) != known)]


def refresh_directory(index: MemoryIndex, rel: str) -> None:
    """Read one changed directory again, as the live watcher would after an event there."""
    if rel == "":  # a family or groups/ came or went
        stamp(index, "")
        for family in FAMILIES.values():
            if family not in index.stamps or not os.path.isdir(os.path.join(index.tree.db, family)):
                reload_path(index, family)
        if GROUPS_DIR not in index.stamps:
            load_groups(index)
    elif rel == GROUPS_DIR:  # a group came (one that went is stale itself)
        load_groups(index, only_new=True)
    else:
        # A level above may have become a link since rel was read: read that
        # link again instead of following it (it may loop or leave db/).
        parts = rel.split("/")
        linked = _first_link(index, parts[:-1])
        reload_path(index, rel if linked is None else "/".join(parts[: linked + 1]))
