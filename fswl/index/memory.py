"""The in-memory index of db/: Whitelist.lookup's answers with no disk access per query.

Shape, chosen for memory at a million entries:

- ``entries``: physical directory (relative to db/) -> one string holding
  its entries' file names (sender_to_name form, which never contains a
  newline), each between newlines: ``"\\ndave@umkc.edu\\n*@lists.org\\n"``.
  One string per directory instead of a tuple of strings is a third of
  the memory (at a million entries, 35 MB instead of 85), and a
  membership test is one substring search. A group's directory is one
  key, shared by every relay linked to it.
- ``levels[(version, prefixlen)]``: network address as an int -> the physical
  directory that answers for that tree level (its own, or a link's target).
- ``starts[version]``: sorted starts of every level, for empty non-terminals.
- No table for the hashed DNS form: its query names the relay, so the few
  senders listed at that relay's levels are hashed (with a bounded cache)
  and compared, which costs far less memory than a global digest table.

All mutation happens under one lock from the watcher thread; lookups read
plain dicts and tuples, which the GIL keeps consistent per operation.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
import time
from functools import lru_cache
from typing import Iterable

from sortedcontainers import SortedList

from fswl.names import (
    ANY_SENDER,
    LEVEL_BITS,
    IPAddress,
    IPNetwork,
    name_to_sender,
    parse_address,
    parse_sender,
    sender_hash,
    sender_to_name,
)
from fswl.store import Match, Tree

WIDTH = {4: 32, 6: 128}
#: Senders whose hashed label is remembered: a hot relay's lists, not all of db/.
HASH_CACHE_SIZE = 65536

_sender_hash = lru_cache(maxsize=HASH_CACHE_SIZE)(sender_hash)
_ANY_NEEDLE = f"\n{ANY_SENDER}\n"


def pack_names(names: Iterable[str]) -> str:
    """The ``entries`` string of a directory holding ``names`` ("" for none)."""
    unique = sorted(set(names))
    return "\n" + "\n".join(unique) + "\n" if unique else ""


def unpack_names(packed: str) -> list[str]:
    """The file names in an ``entries`` string."""
    return packed[1:-1].split("\n") if packed else []


class MemoryIndex:
    """Levels and entries of one db/, kept in memory."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.lock = threading.RLock()
        self.entries: dict[str, str] = {}
        self.levels: dict[tuple[int, int], dict[int, str]] = {
            (v, plen): {} for v, bits in LEVEL_BITS.items() for plen in range(bits, WIDTH[v] + 1, bits)
        }
        self.starts: dict[int, SortedList] = {4: SortedList(), 6: SortedList()}
        self._walk = self._level_walk()
        #: (version, prefixlen, network int) of levels that are links.
        self.linked: set[tuple[int, int, int]] = set()
        #: Directory (relative to db/; "" is db/ itself) -> mtime in ns when it was
        #: last read, 0 if it must be read again: the snapshot's staleness check.
        self.stamps: dict[str, int] = {}
        #: Changes to the index, for the SOA serial and for tests that wait.
        self.serial = int(time.time())
        self.generation = 0

    def restore(self, tables: dict[str, object], starts: dict[int, SortedList]) -> None:
        """Take over saved tables (``entries``, ``levels``, ``linked``, ``stamps``): fswl.index.snapshot's load."""
        for name, table in tables.items():
            setattr(self, name, table)
        self.starts = starts
        self._walk = self._level_walk()

    def _level_walk(self) -> dict[int, list[tuple[int, int, dict[int, str], tuple[int, int]]]]:
        """Per family, top level first: (prefixlen, shift, its table, (version, prefixlen)), for levels_int."""
        return {
            v: [(plen, WIDTH[v] - plen, self.levels[(v, plen)], (v, plen)) for plen in range(bits, WIDTH[v] + 1, bits)]
            for v, bits in LEVEL_BITS.items()
        }

    # -- questions ---------------------------------------------------------

    def lookup(self, sender: str, address: str | IPAddress) -> Match | None:
        """Exactly Whitelist.lookup's answer (same order, same Match)."""
        sender = parse_sender(sender)
        if isinstance(address, str):
            address = parse_address(address)
        found = self.find(sender, self._levels_of(address))
        return None if found is None else self._match(address, *found)

    def lookup_hashed(self, label: str, address: IPAddress) -> Match | None:
        """The hashed DNS form: an entry whose sender_hash is ``label``, else ``*``."""
        found = self._levels_of(address)
        if not found:
            return None
        entries = self.entries
        for plen, network_int, directory in found:
            for sender in self.senders_in(directory):
                if sender != ANY_SENDER and _sender_hash(sender) == label:
                    return self._match(address, sender, plen, network_int, directory)
        for plen, network_int, directory in found:
            if _ANY_NEEDLE in entries.get(directory, ""):
                return self._match(address, ANY_SENDER, plen, network_int, directory)
        return None

    def senders_in(self, directory: str) -> list[str]:
        """The senders listed in one physical directory."""
        return [name_to_sender(name) for name in unpack_names(self.entries.get(directory, ""))]

    def count(self) -> int:
        """Entries indexed, each physical directory counted once."""
        return sum(packed.count("\n") - 1 for packed in self.entries.values())

    def senders_at(self, address: IPAddress) -> Iterable[str]:
        """Every entry that applies to ``address`` (for empty non-terminal checks)."""
        for _plen, _net, directory in self._levels_of(address):
            yield from self.senders_in(directory)

    def has_levels_within(self, network: IPNetwork) -> bool:
        """True if a level with entries lies inside ``network``, or covers it.

        A level whose directory holds no entries (say only ``.tomb/`` after
        ``fswl rm``) counts only through the levels with entries below it,
        so the names above an emptied relay answer NXDOMAIN again.
        """
        version = network.version
        start = int(network.network_address)
        end = int(network.broadcast_address)
        bits = LEVEL_BITS[version]
        width = WIDTH[version]
        entries = self.entries
        levels = self.levels
        deeper = range(network.prefixlen - network.prefixlen % bits + bits, width + 1, bits)
        previous = None
        # Usually the first level found has entries; empty ones are rare leftovers.
        for level_start in self.starts[version].irange(start, end):
            if level_start == previous:
                continue
            previous = level_start
            for plen in deeper:
                directory = levels[(version, plen)].get(level_start)
                if directory is not None and entries.get(directory):
                    return True
        for plen in range(bits, network.prefixlen + 1, bits):
            shift = width - plen
            directory = levels[(version, plen)].get(start >> shift << shift)
            if directory is not None and entries.get(directory):
                return True
        return False

    def _levels_of(self, address: IPAddress) -> list[tuple[int, int, str]]:
        """(prefixlen, network int, directory) of the address's existing levels, most specific first."""
        return self.levels_int(address.version, int(address))

    def levels_int(self, version: int, value: int) -> list[tuple[int, int, str]]:
        """:meth:`_levels_of` for an address given as (version, int): the DNS fast path's form."""
        linked = self.linked
        found = []
        for plen, shift, table, key in self._walk[version]:
            network_int = value >> shift << shift
            directory = table.get(network_int)
            if directory is None:
                break  # no deeper level can exist without this one
            found.append((plen, network_int, directory))
            if linked and (*key, network_int) in linked:
                break  # a link: nothing exists below it
        found.reverse()
        return found

    def find(self, sender: str, levels: list[tuple[int, int, str]]) -> tuple[str, int, int, str] | None:
        """The first entry that lists a canonical ``sender`` at ``levels`` (from :meth:`levels_int`).

        Returns (entry, prefixlen, network int, directory): what :meth:`lookup`
        puts in its Match, without building one.
        """
        entries = self.entries
        # Most levels on the way to a relay hold no entries of their own.
        listed = [(packed, level) for level in levels if (packed := entries.get(level[2]))]
        if not listed:
            return None
        if sender == ANY_SENDER:
            candidates: tuple[tuple[str, str], ...] = ((ANY_SENDER, _ANY_NEEDLE),)
        else:
            wildcard = "*@" + sender.rpartition("@")[2]  # a domain needs no escaping: its own name
            exact = (sender, f"\n{sender_to_name(sender)}\n")
            if wildcard == sender:
                candidates = (exact, (ANY_SENDER, _ANY_NEEDLE))
            else:
                candidates = (exact, (wildcard, f"\n{wildcard}\n"), (ANY_SENDER, _ANY_NEEDLE))
        for candidate, needle in candidates:
            for packed, (plen, network_int, directory) in listed:
                if needle in packed:
                    return candidate, plen, network_int, directory
        return None

    def entry_path(self, directory: str, sender: str) -> str:
        """The file of an entry in a physical directory (what Match.path holds)."""
        return f"{self.tree.db}/{directory}/{sender_to_name(sender)}"  # os.path.join's result, quicker

    def _match(self, address: IPAddress, sender: str, plen: int, network_int: int, directory: str) -> Match:
        version = address.version
        network = ipaddress.ip_network((network_int, plen)) if version == 4 else ipaddress.IPv6Network((network_int, plen))
        via = directory if (version, plen, network_int) in self.linked else None
        return Match(sender, network, os.path.join(self.tree.db, directory, sender_to_name(sender)), via)

    @staticmethod
    def level_path(version: int, plen: int, network_int: int) -> str:
        """The directory (relative to db/) of a level: ``ip4/57/129/134``."""
        if version == 4:
            parts = [str((network_int >> (24 - 8 * i)) & 0xFF) for i in range(plen // 8)]
            return "ip4/" + "/".join(parts)
        parts = [f"{(network_int >> (112 - 16 * i)) & 0xFFFF:04x}" for i in range(plen // 16)]
        return "ip6/" + "/".join(parts)

    # -- changes (hold self.lock) ------------------------------------------

    def set_entries(self, directory: str, names: Iterable[str]) -> None:
        """Replace the entries of one physical directory, given as file names (sender_to_name form)."""
        new = pack_names(names)
        old = self.entries.get(directory, "")
        if new == old:
            return
        if new:
            # Interned: a directory string kept in entries and in levels is then stored once.
            self.entries[sys.intern(directory)] = new
        else:
            self.entries.pop(directory, None)
        self._changed()

    def set_level(self, version: int, plen: int, network_int: int, directory: str | None,
                  linked: bool = False) -> None:
        """Point a level at a physical directory (its own, or a link's target), or drop it."""
        table = self.levels[(version, plen)]
        key = (version, plen, network_int)
        if directory is None:
            if table.pop(network_int, None) is not None:
                self.starts[version].discard(network_int)
                self.linked.discard(key)
                self._changed()
            return
        if table.get(network_int) == directory and (key in self.linked) == linked:
            return
        if network_int not in table:
            self.starts[version].add(network_int)
        table[network_int] = sys.intern(directory)
        (self.linked.add if linked else self.linked.discard)(key)
        self._changed()

    def levels_below(self, version: int, plen: int, network_int: int) -> list[tuple[int, int, str]]:
        """(prefixlen, network int, directory) of every level strictly inside a network."""
        width = WIDTH[version]
        end = network_int + (1 << (width - plen)) - 1
        found = []
        for start in sorted(set(self.starts[version].irange(network_int, end))):
            for deeper in range(plen + LEVEL_BITS[version], width + 1, LEVEL_BITS[version]):
                directory = self.levels[(version, deeper)].get(start)
                if directory is not None:
                    found.append((deeper, start, directory))
        return found

    def drop_below(self, version: int, plen: int, network_int: int) -> None:
        """Forget every level inside a network (its directory went, or became a link)."""
        for deeper, start, directory in self.levels_below(version, plen, network_int):
            if (version, deeper, start) not in self.linked:
                self.set_entries(directory, ())
            self.set_level(version, deeper, start, None)

    def _changed(self) -> None:
        # The serial follows the clock, not a count, so a restart never lowers it.
        self.generation += 1
        self.serial = max(self.serial, int(time.time()))
