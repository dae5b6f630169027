"""The index saved to a file, so a restart at a million entries takes a second, not a walk.

File layout: MAGIC (format version inside), the SHA-256 of the payload, the
payload (a pickle of the index's tables, of the db/ path, and of the mtime of
every directory read into it, as ``MemoryIndex.stamps``).

A snapshot is trusted only after every directory it read is stat()ed again:
creating, removing or renaming anything in a directory (a ``touch``, an
``rm``, an ``ln -s``) changes that directory's mtime, so a directory whose
mtime differs, or that was stamped 0 because it changed as it was read, is
read again through the same code the live watcher uses. A file that is
truncated, corrupt, of another format or of another db/ is ignored and the
index is built from db/. What is served is therefore never older than db/
at start, whichever way the snapshot came about.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import pickle
from pathlib import Path

from sortedcontainers import SortedList

from fswl.index.loader import changed_directories, refresh_directory
from fswl.index.memory import MemoryIndex
from fswl.util import atomic

log = logging.getLogger(__name__)

#: The first bytes of a snapshot; bump the digit when the tables change shape.
MAGIC = b"FSWL-INDEX-SNAPSHOT 3\n"
_DIGEST = 32
#: More stale directories than this share of all means a full walk is quicker.
STALE_SHARE = 0.2
_TABLES = ("entries", "levels", "linked", "stamps")


def write(index: MemoryIndex, path: Path) -> int:
    """Save ``index`` to ``path`` atomically (temp file, then rename); returns its size in bytes."""
    with index.lock:
        state = {name: getattr(index, name) for name in _TABLES}
        state["db"] = index.tree.db
        state["starts"] = {version: list(starts) for version, starts in index.starts.items()}
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path, mode=0o600) as out:
        out.write(MAGIC + hashlib.sha256(payload).digest())
        out.write(payload)
    return len(MAGIC) + _DIGEST + len(payload)


def load(index: MemoryIndex, path: Path) -> int | None:
    """Fill an empty ``index`` from the snapshot and bring it up to date with db/.

    Returns the number of directories read again, or None when there is no
    usable snapshot (missing, corrupt, another db/, or too stale to pay off),
    in which case the index is left empty for a full load.
    """
    state = _read(path, index.tree.db)
    if state is None:
        return None
    db = index.tree.db
    stale = changed_directories(db, state["stamps"], state["stamps"])
    if len(stale) > STALE_SHARE * len(state["stamps"]):
        log.info("index snapshot: %d of %d directories changed; reading db/ instead", len(stale), len(state["stamps"]))
        return None
    with index.lock:
        index.restore({name: state[name] for name in _TABLES},
                      {version: SortedList(starts) for version, starts in state["starts"].items()})
        old = dict(index.stamps)
        for rel in sorted(stale, key=lambda r: (r.count("/"), r)):
            if not old[rel] or index.stamps.get(rel) == old[rel]:  # not yet read again with a parent
                refresh_directory(index, rel)
        index.generation += 1
    del state
    _release_freed_memory()
    log.info("index snapshot: loaded, %d changed directories read again", len(stale))
    return len(stale)


def _read(path: Path, db: str) -> dict | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("index snapshot %s unreadable (%s); reading db/", path, exc)
        return None
    head = len(MAGIC)
    if not data.startswith(MAGIC) or len(data) < head + _DIGEST:
        log.warning("index snapshot %s is not one this fswl writes; reading db/", path)
        return None
    payload = memoryview(data)[head + _DIGEST:]
    if hashlib.sha256(payload).digest() != data[head:head + _DIGEST]:
        log.warning("index snapshot %s is corrupt or truncated; reading db/", path)
        return None
    try:
        state = pickle.loads(payload)  # our own file, checked against its digest
    except Exception as exc:
        log.warning("index snapshot %s unreadable (%s); reading db/", path, exc)
        return None
    if not isinstance(state, dict) or state.get("db") != db:
        log.warning("index snapshot %s is of another db/; reading db/", path)
        return None
    return state


def _release_freed_memory() -> None:
    """Hand back to the system what unpickling freed (~50 MB at 1M entries), where glibc allows.

    The payload and the unpickler's memo are freed by then, but glibc keeps
    the pages unless asked; without this a start from the snapshot costs a
    quarter more resident memory than a start from the tree.
    """
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to ask
        pass
