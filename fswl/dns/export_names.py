"""Every DNS name fswl answers positively, from one walk of db/: what secondaries are given.

The zone transfer (fswl.dns.transfer) and the export formats (fswl.export)
both spell these records; they live in dns/ so that export builds on dns
and never the reverse.

A DNS zone cannot say "any address in this /24" for names below the
address, nor "exactly one label here", so the tree is mapped this way:

- ``*`` at a prefix is a wildcard at the prefix's reversed name
  (``*.134.129.57``): it answers the relay-wide name and every name below
  each address in the prefix, at no cost in size.
- Every other entry at a prefix is expanded to each address of the prefix
  (256 names for a /24, 65,536 for a /16, refused beyond
  :data:`MAX_EXPANSION_ADDRESSES`); an address with entries of its own is
  written out in full, with every covering prefix's entries folded in by
  the lookup order (exact, ``*@domain``, ``*``; most specific level first).
- Below each written address: the mailbox name and the hashed name of each
  entry, ``*.<domain>.<rev-ip>`` for ``*@domain``, and, because a wildcard
  never reaches past a name that exists (RFC 4592), a wildcard under every
  name that exists wherever ``*`` or ``*@domain`` still applies below it.

What a wildcard cannot do is listed in docs/exports.md ("Differences").
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Callable, Iterator

from fswl.dns import answers
from fswl.dns.names import mailbox_labels, mailbox_sender, reverse_labels
from fswl.dns.settings import DnsSettings
from fswl.errors import BadSender
from fswl.names import (
    ANY_SENDER,
    LEVEL_BITS,
    IPAddress,
    IPNetwork,
    domain_wildcard,
    parse_domain,
    sender_hash,
    sender_kind,
)
from fswl.store import Problem
from fswl.store.tree import Tree
from fswl.store.walk import walk
from fswl.constants import ANSWERS

log = logging.getLogger(__name__)

#: A prefix whose entries (other than ``*``) would be written for more
#: addresses than this is left out of the export, with a warning.
MAX_EXPANSION_ADDRESSES = 65536
#: RFC 1035: octets in a name and in one label, on the wire.
MAX_NAME_OCTETS = 255
MAX_LABEL_OCTETS = 63
WIDTH = {4: 32, 6: 128}
#: Bits per label of the reversed name: an octet, or a nibble.
LABEL_BITS = {4: 8, 6: 4}
WILDCARD = b"*"
TEST_POINT_TEXT = "RFC 5782 test point"

Level = tuple[int, int, int]  # (version, prefixlen, network as int)
Answer = tuple[str, str]  # (A value, TXT)


@dataclass(frozen=True)
class Record:
    """One owner name with its A value and TXT."""

    owner: tuple[bytes, ...]  #: labels below the zone apex, leftmost first; b"*" first for a wildcard
    value: str
    text: str
    #: A relay-wide name that rbldnsd's ip4trie/ip6trie section already answers alike.
    in_trie: bool = False


@dataclass(frozen=True)
class RelayListing:
    """A level listed for every sender (``*``), as rbldnsd's trie sections list it."""

    network: IPNetwork
    text: str


class ExportNames:
    """The names of one db/, for one zone: walk once, then stream :meth:`records`."""

    def __init__(self, tree: Tree, settings: DnsSettings) -> None:
        self.settings = settings
        self.zone_octets = sum(len(label) + 1 for label in settings.zone.strip(".").encode().split(b".")) + 1
        #: Entries left out, one line each (the CLI prints them as warnings).
        self.skipped: list[str] = []
        self.problems: list[Problem] = []
        self.levels: dict[Level, set[str]] = {}
        for listing in walk(tree, self.problems):
            net = listing.network
            self.levels.setdefault((net.version, net.prefixlen, int(net.network_address)), set()).add(listing.sender)
        if self.problems:
            log.info("export: %d things in db/ not followed (see `fswl fsck`)", len(self.problems))
        self._set_aside_test_points()
        self.stars = {level for level, senders in self.levels.items() if ANY_SENDER in senders}
        self.addresses = self._written_addresses()

    # -- what is written ---------------------------------------------------

    def relay_listings(self) -> list[RelayListing]:
        """Every ``*`` level, in address order (rbldnsd's ip4trie/ip6trie)."""
        return [RelayListing(_network(level), _relay_text(_network(level))) for level in sorted(self.stars)]

    def records(self, tick: Callable[[int], None] = lambda n: None) -> Iterator[Record]:
        """Every positive name, address by address; ``tick(1)`` after each address."""
        for _version, point in _TEST_POINTS:
            rev = tuple(reverse_labels(point))
            for owner in (rev, (WILDCARD,) + rev):
                yield Record(owner, answers.TEST_ANSWER, TEST_POINT_TEXT)
        yield from self._prefix_wildcards()
        for version, value in self.addresses:
            yield from self._address_records(version, value)
            tick(1)

    # -- building ------------------------------------------------------------

    def _set_aside_test_points(self) -> None:
        """Levels holding an RFC 5782 test point are not exported: the test points answer there."""
        for level in sorted(self.levels):
            version, plen, value = level
            shift = WIDTH[version] - plen
            if any(v == version and int(point) >> shift == value >> shift for v, point in _ALL_TEST_POINTS):
                self.skipped.append(f"{_network(level)}: holds an RFC 5782 test point; its entries are not exported")
                del self.levels[level]

    def _written_addresses(self) -> list[tuple[int, int]]:
        """Addresses written out in full: those with entries, and prefixes' entries expanded."""
        found = set()
        for (version, plen, value), senders in self.levels.items():
            width = WIDTH[version]
            if plen == width:
                found.add((version, value))
                continue
            others = sorted(senders - {ANY_SENDER})
            if not others:
                continue  # a wildcard at the prefix answers it
            count = 1 << (width - plen)
            if count > MAX_EXPANSION_ADDRESSES:
                network = _network((version, plen, value))
                self.skipped.append(
                    f"{network}: {', '.join(others)} would take 2^{width - plen} names per entry (more than "
                    f"{MAX_EXPANSION_ADDRESSES}); list them on narrower prefixes to export them")
                senders.intersection_update({ANY_SENDER})
                continue
            found.update((version, value + i) for i in range(count))
        self.levels = {level: senders for level, senders in self.levels.items() if senders}
        return sorted(found)

    def _prefix_wildcards(self) -> Iterator[Record]:
        """``*.<prefix>`` for each ``*`` prefix and under every name that exists inside one."""
        partial: set[tuple[int, int, int]] = set()  # (version, labels, value of the leading bits)
        for version, plen, value in self.stars:
            step = LABEL_BITS[version]
            for count in range(1, min(plen, WIDTH[version] - step) // step + 1):  # a relay's own: below
                partial.add((version, count, value >> (WIDTH[version] - count * step)))
        for version, value in self.addresses:
            step = LABEL_BITS[version]
            for count in range(1, WIDTH[version] // step):
                partial.add((version, count, value >> (WIDTH[version] - count * step)))
        for version, count, lead in sorted(partial):
            step = LABEL_BITS[version]
            bits = count * step
            star = self._star_covering(version, bits, lead << (WIDTH[version] - bits))
            if star is not None:
                owner = (WILDCARD,) + _partial_labels(version, count, lead)
                yield Record(owner, ANSWERS["relay"], _relay_text(_network(star)))

    def _star_covering(self, version: int, bits: int, value: int) -> Level | None:
        """The most specific ``*`` level at or above a /bits network."""
        level_bits = LEVEL_BITS[version]
        for plen in range(bits - bits % level_bits, 0, -level_bits):
            level = (version, plen, value >> (WIDTH[version] - plen) << (WIDTH[version] - plen))
            if level in self.stars:
                return level
        return None

    def _address_records(self, version: int, value: int) -> Iterator[Record]:
        address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
        rev = tuple(reverse_labels(address))
        found = self._effective(version, value)
        star = found.get(ANY_SENDER)
        out: dict[tuple[bytes, ...], Answer] = {}
        nodes: set[tuple[bytes, ...]] = set()
        if star is not None:
            out[rev] = out[(WILDCARD,) + rev] = _entry_answer(ANY_SENDER, star)
        for sender in sorted(found):
            if sender == ANY_SENDER:
                continue
            listed = _entry_answer(sender, found[sender])  # a listed sender is its own first candidate
            out[(sender_hash(sender).encode(),) + rev] = listed
            labels = tuple(mailbox_labels(sender))
            if len(labels[0]) > MAX_LABEL_OCTETS or not self._fits(labels + rev):
                continue  # no mailbox form (DNS limits): only the hashed name answers it
            out[labels + rev] = listed
            nodes.update(labels[i:] for i in range(1 if labels[0] == WILDCARD else 0, len(labels)))
        for node in sorted(nodes):
            if len(node) >= 2 and node[0] != WILDCARD:
                listed = self._mailbox_answer(node, found)
                if listed is not None:
                    out[node + rev] = listed
            below = self._below_answer(node, found)
            if below is not None and self._fits((WILDCARD,) + node + rev):
                out[(WILDCARD,) + node + rev] = below
        in_trie = star is not None and not self._under_prefix_star(version, value)
        for owner in sorted(out):
            value_text = out[owner]
            yield Record(owner, value_text[0], value_text[1], in_trie=in_trie and owner == rev)

    def _effective(self, version: int, value: int) -> dict[str, Level]:
        """Each sender that applies to the address, at its most specific level."""
        found: dict[str, Level] = {}
        width = WIDTH[version]
        for plen in range(width, 0, -LEVEL_BITS[version]):
            level = (version, plen, value >> (width - plen) << (width - plen))
            for sender in self.levels.get(level, ()):
                found.setdefault(sender, level)
        return found

    def _answer(self, sender: str, found: dict[str, Level]) -> Answer | None:
        """The lookup order: the sender, then ``*@domain``, then ``*``."""
        candidates = [sender]
        wildcard = domain_wildcard(sender)
        if wildcard is not None and wildcard != sender:
            candidates.append(wildcard)
        if sender != ANY_SENDER:
            candidates.append(ANY_SENDER)
        return _first_answer(candidates, found)

    def _mailbox_answer(self, labels: tuple[bytes, ...], found: dict[str, Level]) -> Answer | None:
        """What the responder answers for ``<local>.<domain...>`` (fswl.dns.names.parse_question)."""
        sender = mailbox_sender(labels)
        return None if sender is None else self._answer(sender, found)

    def _below_answer(self, node: tuple[bytes, ...], found: dict[str, Level]) -> Answer | None:
        """What any name one label below ``node`` asks: ``*@node`` or ``*``."""
        try:
            domain = parse_domain(b".".join(node).decode("ascii"))
        except (BadSender, UnicodeDecodeError):
            return None  # not a domain: the responder answers nothing below it
        return _first_answer(["*@" + domain, ANY_SENDER], found)

    def _under_prefix_star(self, version: int, value: int) -> bool:
        return self._star_covering(version, WIDTH[version] - LEVEL_BITS[version], value) is not None

    def _fits(self, owner: tuple[bytes, ...]) -> bool:
        return sum(len(label) + 1 for label in owner) + self.zone_octets <= MAX_NAME_OCTETS


def _entry_answer(sender: str, level: Level) -> Answer:
    """A and TXT for a match of entry ``sender`` at ``level`` (fswl.dns.resolver does the same)."""
    kind = sender_kind(sender)
    return ANSWERS[kind], answers.listed_text(kind, sender, str(_network(level)))


def _first_answer(candidates: list[str], found: dict[str, Level]) -> Answer | None:
    for candidate in candidates:
        level = found.get(candidate)
        if level is not None:
            return _entry_answer(candidate, level)
    return None


def _network(level: Level) -> IPNetwork:
    version, plen, value = level
    if version == 4:
        return ipaddress.IPv4Network((value, plen))
    return ipaddress.IPv6Network((value, plen))


def _relay_text(network: IPNetwork) -> str:
    return answers.listed_text("relay", ANY_SENDER, str(network))


def _partial_labels(version: int, count: int, lead: int) -> tuple[bytes, ...]:
    """The reversed name of the leading ``count`` labels of an address: ``134.129.57``."""
    if version == 4:
        return tuple(str((lead >> (8 * i)) & 0xFF).encode() for i in range(count))
    return tuple(f"{(lead >> (4 * i)) & 0xF:x}".encode() for i in range(count))


_ALL_TEST_POINTS: list[tuple[int, IPAddress]] = sorted(
    ((p.version, p) for p in answers.TEST_LISTED | answers.TEST_UNLISTED), key=lambda vp: (vp[0], int(vp[1])))
_TEST_POINTS: list[tuple[int, IPAddress]] = sorted(
    ((p.version, p) for p in answers.TEST_LISTED), key=lambda vp: (vp[0], int(vp[1])))
