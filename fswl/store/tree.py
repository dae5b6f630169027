"""Paths inside one db/ directory, and symlink resolution that never leaves it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from fswl.constants import MAX_SYMLINK_HOPS
from fswl.errors import UnsafePath
from fswl.names import FAMILIES, IPNetwork, network_parts, sender_to_name

#: Sibling directory holding tombstones of explicitly removed entries.
TOMB_DIR = ".tomb"
#: The tombstone of a link, in the .tomb/ of the relay directory an unlink leaves: ``ip4/64/12/88/.tomb/.link``.
#: Its mtime is the time of the unlink. An entry's name never starts with "." (names.sender_to_name), so it
#: cannot collide with an entry's tombstone.
LINK_TOMB = ".link"
#: Directory under db/ holding groups (virtual relays).
GROUPS_DIR = "groups"

#: What a symlink under db/ turns out to be (Tree.check_link): the one classification
#: that lookups, the index, walk/ls/export, fsck and sync digests all use.
LINK_OK, LINK_LOOP, LINK_DANGLING, LINK_ESCAPES, LINK_UNREADABLE = "ok", "loop", "dangling", "escapes", "unreadable"
_LINK_TEXT = {
    LINK_LOOP: "a symlink loop",
    LINK_DANGLING: "a dangling symlink",
    LINK_ESCAPES: "a symlink leading outside db/",
    LINK_UNREADABLE: "a symlink that cannot be followed",
}


@dataclass(frozen=True)
class LinkCheck:
    """A symlink's fate: followed inside db/ (``resolved``), or a miss with a report."""

    state: str  #: one of the LINK_* values
    resolved: str | None  #: the path it leads to, spelled under db/, when ``ok``
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == LINK_OK

    @property
    def problem(self) -> str:
        """The one-line report for fsck, ls and the logs (empty for a good link)."""
        if self.ok:
            return ""
        detail = "" if self.state == LINK_LOOP else f" ({self.detail.replace(' (dangling link?)', '')})"
        return f"{_LINK_TEXT[self.state]}{detail}; a miss for every lookup: fix or remove it"


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

    def link_tomb_path(self, relay_dir: str) -> str:
        """Where the unlink of the link at ``relay_dir`` is recorded: ``RELAY/.tomb/.link``."""
        return os.path.join(relay_dir, TOMB_DIR, LINK_TOMB)

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
                    raise UnsafePath(path, "a link climbs above db/", LINK_ESCAPES)
                done.pop()
                continue
            done.append(part)
            current = self._prefix + os.sep.join(done)
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                raise UnsafePath(path, f"{self.relative(current)} does not exist (dangling link?)", LINK_DANGLING) from None
            except OSError as exc:
                raise UnsafePath(path, f"{self.relative(current)}: {exc.strerror}", LINK_UNREADABLE) from None
            if not stat.S_ISLNK(mode):
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UnsafePath(path, "symlink loop", LINK_LOOP)
            target = os.readlink(current)
            done.pop()
            if os.path.isabs(target):
                target = self._inside(target, path)
                done = []
            pending.extend(target.split(os.sep)[::-1])
        return self._prefix + os.sep.join(done) if done else self.db

    def check_link(self, path: str) -> LinkCheck:
        """Classify ``path`` (a symlink under db/, or a path through one): never raises.

        One bad link is a miss for what lies behind it and nothing else: every
        reader asks here instead of following it (``os.scandir``, ``is_dir()``
        and ``os.stat`` raise ELOOP on a loop, and follow a link out of db/).
        """
        try:
            return LinkCheck(LINK_OK, self.resolve(path))
        except UnsafePath as exc:
            return LinkCheck(exc.kind, None, str(exc.args[1]))

    def _inside(self, target: str, path: str) -> str:
        for root in (self.db, self._real):
            if target == root or target.startswith(root + os.sep):
                return os.path.relpath(target, root)
        raise UnsafePath(path, f"a link points to {target}, outside db/", LINK_ESCAPES)
