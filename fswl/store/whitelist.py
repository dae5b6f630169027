"""Whitelist: add, remove and look up (sender, relay) entries in db/.

Every write is either an ``O_EXCL`` create of an empty file, a ``mkdir``, an
``unlink`` or a rename into place, so any number of processes may write at
once and nothing is ever half-written.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

from fswl.constants import ANSWERS
from fswl.errors import Conflict, FswlError, ListenerFailed, NotADirectoryInTree, UnsafePath
from fswl.names import (
    ANY_SENDER,
    LEVEL_BITS,
    IPAddress,
    IPNetwork,
    address_parts,
    boundary_networks,
    domain_wildcard,
    parse_address,
    parse_relay,
    parse_sender,
    sender_kind,
    sender_to_name,
)
from fswl.store import journal, links
from fswl.store.files import CREATE, mtime, stamp, unlink_quietly
from fswl.store.journal import Change, Listener
from fswl.store.lastseen import LastSeen, state_path
from fswl.store.tree import Tree

if TYPE_CHECKING:
    from fswl.store.walk import Listing as Listing

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Attempts at writing into a directory that `fswl expire` keeps pruning.
_PRUNE_RETRIES = 3


@dataclass(frozen=True)
class Match:
    """The entry that lists a (sender, relay) pair."""

    sender: str  #: the entry: ``dave@umkc.edu``, ``*@umkc.edu`` or ``*``
    network: IPNetwork  #: the tree level it was found at (the relay or a prefix)
    path: str  #: the entry file, with symlinks resolved (still under db/)
    via: str | None  #: the linked directory, relative to db/, if reached through a symlink

    @property
    def kind(self) -> str:
        """``exact``, ``domain`` or ``relay``."""
        return sender_kind(self.sender)

    @property
    def answer(self) -> str:
        """The A record a DNS query for this match returns."""
        return ANSWERS[self.kind]


class Whitelist:
    """The whitelist kept in one db/ directory."""

    def __init__(self, db: str | os.PathLike[str], listeners: Iterable[Listener] = ()) -> None:
        self.tree = Tree(db)
        self.db = self.tree.db
        self.listeners: list[Listener] = list(listeners)
        self.last_seen = LastSeen(state_path(self.db))  # apart from db/: an entry's mtime is its add time

    # -- reading ----------------------------------------------------------

    def lookup(self, sender: str, address: str | IPAddress) -> Match | None:
        """Find the entry that lists ``sender`` sending through ``address``.

        Order (DESIGN "The tree"): the exact sender, then ``*@domain``, then
        ``*``; each at the relay's own directory first, then at every
        enclosing prefix, following group links but never out of db/.
        Links are resolved only where one was met, so a plain hit costs a
        handful of lstat calls.
        """
        sender = parse_sender(sender)
        if isinstance(address, str):
            address = parse_address(address)
        levels = self._existing_levels(address)
        for candidate in _candidates(sender):
            name = sender_to_name(candidate)
            for depth in range(len(levels), 0, -1):
                directory, linked = levels[depth - 1]
                path = directory + os.sep + name
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue  # an entry is a plain file; fsck reports anything else
                except OSError:
                    continue
                via = None
                if linked:
                    try:
                        real_dir = self.tree.resolve(directory)
                    except UnsafePath as exc:
                        log.warning("lookup skipped: %s", exc)
                        continue
                    path = real_dir + os.sep + name
                    via = self.tree.relative(real_dir)
                return Match(candidate, _prefix(address, depth), path, via)
        return None

    def _existing_levels(self, address: IPAddress) -> list[tuple[str, bool]]:
        """(directory, is a link) for the relay and its enclosing prefixes that exist, top-down.

        A linked directory (a group) is flat: it ends the descent, so that a
        group linked at two depths never mixes up their sub-levels.
        """
        path = self.tree.family_dir(address.version)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                path = self.tree.resolve(path)
        except (OSError, UnsafePath) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("lookup skipped: %s", exc)
            return []
        levels = []
        for part in address_parts(address):
            path = path + os.sep + part
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                break
            if stat.S_ISLNK(mode):
                levels.append((path, True))
                break
            if not stat.S_ISDIR(mode):
                break
            levels.append((path, False))
        return levels

    def entries(self, relay: str | IPNetwork | None = None) -> Iterator[Listing]:
        """Every listed (network, sender), or those overlapping ``relay``; see fswl.store.walk."""
        from fswl.store.walk import walk

        network = parse_relay(relay) if isinstance(relay, str) else relay
        for listing in walk(self.tree):
            if network is None or (
                listing.network is not None
                and listing.network.version == network.version
                and listing.network.overlaps(network)
            ):
                yield listing

    # -- writing ----------------------------------------------------------

    def add(self, sender: str, relay: str | IPNetwork, *, when: float | None = None) -> list[str]:
        """List ``sender`` for ``relay``; returns the entry paths written.

        An existing entry is re-added: its mtime (the add time) is refreshed.  ``when`` replays
        another node's write: an entry whose tombstone is newer than ``when`` stays removed.
        """
        sender = parse_sender(sender)
        written = []
        for network in self._networks(relay):
            lexical = self.tree.relay_dir(network)
            if self._in_dir(lexical, lambda d: self._create(d, sender, when)):
                written.append(self.tree.entry_path(self.make_dirs(lexical), sender))
        return written

    def add_many(self, sender: str, networks: Iterable[IPNetwork],
                 progress: Callable[[int], None] | None = None,
                 refused: Callable[[IPNetwork, str], None] | None = None) -> int:
        """List ``sender`` for many networks (an import; safe to rerun after a crash); returns entries listed.

        A network that cannot be written (under a link, through a bad link) goes to ``refused`` (else raises).
        """
        sender = parse_sender(sender)
        name = sender_to_name(sender)
        parents: dict[str, str] = {}
        count = 0
        for network in networks:
            for piece in boundary_networks(network):
                try:
                    count += self._add_piece(piece, sender, name, parents)
                except FswlError as exc:
                    if refused is None:
                        raise
                    refused(network, str(exc))
            if progress:
                progress(1)
        return count

    def _add_piece(self, piece: IPNetwork, sender: str, name: str, parents: dict[str, str]) -> bool:
        head, leaf = os.path.split(lexical := self.tree.relay_dir(piece))
        parent = parents.get(head) or parents.setdefault(head, self.make_dirs(head))  # resolved once per run
        if parent != head:  # a link on the way: make_dirs judges the whole path (a linked level is refused)
            return self._in_dir(lexical, lambda d: self._create(d, sender, None))
        directory = parent + os.sep + leaf
        try:
            os.mkdir(directory)  # made just now: no entry, no tombstone, unless a concurrent writer got in
            os.close(os.open(directory + os.sep + name, CREATE, 0o644))
        except FileExistsError:
            return self._in_dir(directory, lambda d: self._create(d, sender, None))
        self.emit(Change(journal.ADD, self.tree.relative(directory + os.sep + name)))
        return True

    def remove(self, sender: str, relay: str | IPNetwork) -> list[tuple[str, bool]]:
        """Remove ``sender`` for ``relay``, leaving a tombstone so mirrors drop it too.

        Returns (entry path, whether it existed) for each directory.
        """
        sender = parse_sender(sender)
        done = []
        now = time.time()
        for network in self._networks(relay):
            done.append(self._in_dir(self.tree.relay_dir(network), lambda d: self._remove(d, sender, now)))
        return done

    def add_at(self, directory: str, sender: str, when: float | None = None) -> bool:
        """Create an entry in a directory under db/ (a relay, prefix or group)."""
        sender = parse_sender(sender)
        return self._in_dir(directory, lambda d: self._create(d, sender, when))

    def remove_at(self, directory: str, sender: str, when: float | None = None) -> tuple[str, bool]:
        """Remove an entry from a directory under db/, leaving a tombstone dated ``when``."""
        sender = parse_sender(sender)
        at = when or time.time()
        return self._in_dir(directory, lambda d: self._remove(d, sender, at))

    def touch_seen(self, paths: Iterable[str], when: float | None = None) -> int:
        """Note existing entries as seen in use (never in their mtime: that is the add time); returns how many."""
        at = time.time() if when is None else when
        seen = []
        for path in paths:
            try:
                real = self.tree.resolve(path)
                if stat.S_ISREG(os.lstat(real).st_mode):  # gone meanwhile: being seen never brings it back
                    seen.append((self.tree.relative(real), at))
            except (OSError, UnsafePath):
                pass
        self.last_seen.record(seen)
        for rel, _ in seen:
            self.emit(Change(journal.SEEN, rel, when=at))
        return len(seen)

    def link(self, relay: str | IPNetwork, group: str) -> str:
        """Make a relay or prefix directory a symlink to db/groups/GROUP, dated now; see fswl.store.links."""
        return links.link(self, relay, group)

    def unlink(self, relay: str | IPNetwork, keep_entries: bool = False) -> str:
        """Undo :meth:`link`, leaving a link tombstone; with ``keep_entries`` the group's entries are copied back."""
        return links.unlink(self, relay, keep_entries)

    def link_at(self, network: IPNetwork, group: str, when: float) -> bool:
        """Replay a link made at ``when``: the newer of it, a link tombstone and another link wins."""
        return links.link_at(self, network, group, when)

    def unlink_at(self, network: IPNetwork, when: float) -> bool:
        """Replay an unlink made at ``when``: it leaves a link tombstone unless the link here is newer."""
        return links.unlink_at(self, network, when)

    def emit(self, change: Change) -> None:
        """Announce a write that is done to every listener, then raise if any of them failed.

        Raising after the write, rather than logging and going on, because a
        failed listener is most often the sync journal (a full disk, spool/
        unwritable), and a write left out of it reaches peers only in a
        reconciliation nobody knows to run. The store cannot mark that for
        the next round itself (sync is built on the store, not the other way
        round); an error the CLI prints, a round counts and a daemon logs is
        seen. Every listener still hears of the change first, and nothing is undone.
        """
        failed: list[tuple[Listener, Exception]] = []
        for listener in self.listeners:
            try:
                listener(change)
            except Exception as exc:
                failed.append((listener, exc))
        if failed:
            listener, exc = failed[0]
            error = ListenerFailed(change.op, change.path, _listener_name(listener), exc)
            log.error("%s", error)
            raise error

    # -- helpers ------------------------------------------------------------

    def _networks(self, relay: str | IPNetwork) -> list[IPNetwork]:
        return boundary_networks(parse_relay(relay) if isinstance(relay, str) else relay)

    def make_dirs(self, path: str) -> str:
        """Create ``path`` (under db/) level by level; returns it with links resolved.

        Each existing symlink on the way is checked before anything is made
        below it, so a link that leads out of db/ can never be written through.

        :raises UnsafePath: if the way leaves db/, dangles or loops.
        """
        rel = self.tree.relative(path)
        if rel == "." :
            return self.db
        if rel.startswith(".."):
            raise UnsafePath(path, "not under db/")
        os.makedirs(self.db, exist_ok=True)
        current = self.db
        parts = rel.split(os.sep)
        for depth, part in enumerate(parts, 1):
            step = current + os.sep + part
            # lstat first: on ext4 a mkdir that fails with EEXIST costs far more.
            try:
                mode = os.lstat(step).st_mode
            except FileNotFoundError:
                try:
                    os.mkdir(step)
                    current = step
                    continue
                except FileExistsError:  # a concurrent writer made it
                    mode = os.lstat(step).st_mode
            if stat.S_ISLNK(mode):
                lexical, step = step, self.tree.resolve(step)
                mode = os.stat(step).st_mode
                if depth < len(parts) and current != self.db:
                    raise Conflict(
                        f"{self.tree.relative(lexical)} is linked to {self.tree.relative(step)}, and a linked "
                        "directory holds entries only: add to that group, or `fswl unlink` it first"
                    )
            if not stat.S_ISDIR(mode):
                raise NotADirectoryInTree(path, self.tree.relative(step))
            current = step
        return current

    def _create(self, directory: str, sender: str, when: float | None) -> bool:
        path = self.tree.entry_path(directory, sender)
        tomb = self.tree.tomb_path(directory, sender)
        if when is not None and mtime(tomb) >= when:
            return False  # removed after this write was made: the removal wins
        if not stamp(path, when):
            return False  # a concurrent removal came last
        unlink_quietly(tomb)
        self.emit(Change(journal.ADD, self.tree.relative(path), when=mtime(path)))
        return True

    def _remove(self, directory: str, sender: str, when: float) -> tuple[str, bool]:
        path = self.tree.entry_path(directory, sender)
        tomb = self.tree.tomb_path(directory, sender)
        # The tombstone first: a crash between the two leaves both, and fsck
        # settles that by age; the other order could lose the removal.
        try:
            os.mkdir(os.path.dirname(tomb))
        except FileExistsError:
            pass
        if not stamp(tomb, when):
            return path, False  # a concurrent add came last
        existed = mtime(path) <= when and unlink_quietly(path)
        self.emit(Change(journal.REMOVE, self.tree.relative(path), when=when))
        return path, existed

    def _in_dir(self, lexical: str, write: Callable[[str], T]) -> T:
        """Run ``write(directory)`` in a made directory, again if `fswl expire` pruned it meanwhile."""
        for attempt in range(_PRUNE_RETRIES):
            directory = self.make_dirs(lexical)
            try:
                return write(directory)
            except FileNotFoundError:
                if attempt == _PRUNE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


def _candidates(sender: str) -> list[str]:
    if sender == ANY_SENDER:
        return [ANY_SENDER]
    wildcard = domain_wildcard(sender)
    if wildcard == sender:
        return [sender, ANY_SENDER]
    return [sender, wildcard, ANY_SENDER]  # type: ignore[list-item]


def _prefix(address: IPAddress, depth: int) -> IPNetwork:
    import ipaddress

    return ipaddress.ip_network((address, depth * LEVEL_BITS[address.version]), strict=False)


def _listener_name(listener: Listener) -> str:
    """``the sync outbox``, ``ChangeLog``: who failed, for the error message."""
    name = getattr(listener, "__qualname__", None) or type(listener).__name__
    return f"the {name} listener"
