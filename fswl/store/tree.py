"""Paths inside one db/ directory, and symlink resolution that never leaves it."""

from __future__ import annotations

import os
import stat

from fswl.constants import MAX_SYMLINK_HOPS
from fswl.errors import UnsafePath
from fswl.names import FAMILIES, IPNetwork, network_parts, sender_to_name

#: Sibling directory holding tombstones of explicitly removed entries.
TOMB_DIR = ".tomb"
#: Directory under db/ holding groups (virtual relays).
GROUPS_DIR = "groups"


class Tree:
    """The layout of a db/ directory: where each relay, entry and tombstone lives."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = os.path.abspath(db)
        self._prefix = self.db + os.sep
        self._real = os.path.realpath(self.db)

    def family_dir(self, version: int) -> str:
        return os.path.join(self.db, FAMILIES[version])

    def relay_dir(self, network: IPNetwork) -> str:
        """The directory of a boundary network: ``db/ip4/57/129/134/63``."""
        return os.path.join(self.family_dir(network.version), *network_parts(network))

    def group_dir(self, group: str) -> str:
        return os.path.join(self.db, GROUPS_DIR, group)

    def entry_path(self, directory: str, sender: str) -> str:
        return os.path.join(directory, sender_to_name(sender))

    def tomb_path(self, directory: str, sender: str) -> str:
        return os.path.join(directory, TOMB_DIR, sender_to_name(sender))

    def relative(self, path: str) -> str:
        """A path relative to db/, as sync and the journal carry it."""
        if path.startswith(self._prefix):  # the common case, without relpath's normalising
            return path[len(self._prefix):]
        return os.path.relpath(path, self.db)

    def resolve(self, path: str) -> str:
        """Follow every symlink in ``path`` (a path under db/) without leaving db/.

        Returns the resolved path, spelled under db/.  Only the part below db/
        is examined, one lstat per component, which keeps hits cheap.

        :raises UnsafePath: if a link leads outside db/, dangles or loops.
        """
        rel = self.relative(path)
        if rel == ".":
            return self.db
        if rel.startswith(".." + os.sep) or rel == "..":
            raise UnsafePath(path, "not under db/")
        pending = rel.split(os.sep)[::-1]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    raise UnsafePath(path, "a link climbs above db/")
                done.pop()
                continue
            done.append(part)
            current = self._prefix + os.sep.join(done)
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                raise UnsafePath(path, f"{self.relative(current)} does not exist (dangling link?)") from None
            except OSError as exc:
                raise UnsafePath(path, f"{self.relative(current)}: {exc.strerror}") from None
            if not stat.S_ISLNK(mode):
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UnsafePath(path, "symlink loop")
            target = os.readlink(current)
            done.pop()
            if os.path.isabs(target):
                target = self._inside(target, path)
                done = []
            pending.extend(target.split(os.sep)[::-1])
        return self._prefix + os.sep.join(done) if done else self.db

    def _inside(self, target: str, path: str) -> str:
        for root in (self.db, self._real):
            if target == root or target.startswith(root + os.sep):
                return os.path.relpath(target, root)
        raise UnsafePath(path, f"a link points to {target}, outside db/")
