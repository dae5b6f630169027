"""Relay correlation: relays that many of the same senders use are proposed as one group.

The evidence is the senders each relay is known for: exact entries listed
at the relay in the tree, and the event log's confirmations and quota
admissions.  Two relays are similar when the Jaccard index of their sender
sets (shared / either) reaches a threshold with enough shared senders;
groups are the connected parts of that similarity graph.  An ISP's relays
sit in a few networks under one naming scheme, so a pair in different /16s
(IPv6: /32s) is kept apart unless both have names under one domain (PTR,
when asked for) or the operator forces it: a forwarding service that many
senders share must not pull two ISPs into one group.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from fswl.errors import BadRelay
from fswl.store.events import Event
from fswl.names import ANY_SENDER, IPAddress, parse_address
from fswl.store.walk import Listing

#: A sender known at more relays than this is skipped when pairing (its pairs cost grows as the square).
MAX_RELAYS_PER_SENDER = 500
#: The prefix within which relays are "the same network" without other evidence.
SAME_NETWORK_BITS = {4: 16, 6: 32}
#: Kinds of event that say a sender sends through a relay.
SENDER_EVENTS = ("confirm", "seen", "spf_pass")


@dataclass(frozen=True)
class CorrelateSettings:
    """[correlate] in fswl.toml."""

    #: Jaccard index of two relays' sender sets at which they are called similar.
    threshold: float = 0.3
    #: Shared senders two similar relays must have at least.
    min_senders: int = 3


@dataclass(frozen=True)
class Pair:
    """Two relays and how much their senders overlap."""

    a: IPAddress
    b: IPAddress
    shared: int
    jaccard: float
    related: str = ""  #: why the two may be grouped; "" when they may not (held)


@dataclass
class Proposal:
    """A proposed group with its evidence."""

    relays: list[IPAddress]
    pairs: list[Pair]
    senders: dict[IPAddress, int]  #: senders known per relay
    common: int  #: senders seen at two or more of the relays
    name: str = ""
    names: dict[IPAddress, str] = field(default_factory=dict)


def sender_sets(listings: Iterable[Listing], events: Iterable[Event],
                names: dict[IPAddress, str] | None = None) -> dict[IPAddress, set[str]]:
    """The senders known at each single relay (/32, /128): exact tree entries and log events.

    Relays already linked to a group are left out: they are grouped.  Host
    names recorded with events are put in ``names``.
    """
    sets: dict[IPAddress, set[str]] = defaultdict(set)
    linked: set[IPAddress] = set()
    for listing in listings:
        network = listing.network
        if network is None or network.prefixlen != network.max_prefixlen:
            continue
        if listing.via:
            linked.add(network.network_address)
            continue
        if listing.sender != ANY_SENDER and not listing.sender.startswith("*@"):
            sets[network.network_address].add(listing.sender)
    for event in events:
        if event.kind in SENDER_EVENTS and event.sender and not event.sender.startswith("*@"):
            try:
                relay = parse_address(event.ip)
            except BadRelay:
                continue
            sets[relay].add(event.sender)
            if event.name and names is not None:
                names[relay] = event.name
    return {relay: senders for relay, senders in sets.items() if relay not in linked}


def similar_pairs(sets: dict[IPAddress, set[str]], threshold: float, min_senders: int) -> list[Pair]:
    """Every pair of relays with Jaccard >= threshold and at least min_senders shared senders."""
    relays_of: dict[str, list[IPAddress]] = defaultdict(list)
    for relay, senders in sets.items():
        if len(senders) >= min_senders:
            for sender in senders:
                relays_of[sender].append(relay)
    shared: dict[tuple[IPAddress, IPAddress], int] = defaultdict(int)
    for relays in relays_of.values():
        if len(relays) > MAX_RELAYS_PER_SENDER:
            continue
        for a, b in itertools.combinations(sorted(relays, key=_order), 2):
            shared[(a, b)] += 1
    pairs = []
    for (a, b), count in shared.items():
        jaccard = count / (len(sets[a]) + len(sets[b]) - count)
        if count >= min_senders and jaccard >= threshold:
            pairs.append(Pair(a, b, count, jaccard))
    return sorted(pairs, key=lambda p: (_order(p.a), _order(p.b)))


def org_domain(name: str) -> str:
    """The naming scheme of a host name: its last two labels (three under a two-letter ccTLD's 2LD).

    A heuristic, not a public suffix list: out12.mail.isp.example -> isp.example,
    mx1.isp.co.uk -> isp.co.uk.
    """
    labels = name.lower().rstrip(".").split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def relatedness(a: IPAddress, b: IPAddress, names: dict[IPAddress, str]) -> str:
    """Why two relays may share a group ("" if nothing says so)."""
    bits = SAME_NETWORK_BITS[a.version]
    if a.version == b.version and _network(a, bits) == _network(b, bits):
        return f"same /{bits}"
    if names.get(a) and names.get(b) and org_domain(names[a]) == org_domain(names[b]):
        return f"both named under {org_domain(names[a])}"
    return ""


def propose(sets: dict[IPAddress, set[str]], threshold: float, min_senders: int, force: bool = False,
            name_of: Callable[[IPAddress], str] | None = None,
            recorded: dict[IPAddress, str] | None = None) -> tuple[list[Proposal], list[Pair]]:
    """The proposed groups, and the similar pairs held apart as unrelated networks.

    ``recorded`` are host names the event log holds; ``name_of`` looks up
    the others (PTR), asked only about relays in pairs that cross networks.
    """
    names: dict[IPAddress, str] = dict(recorded or {})
    kept: list[Pair] = []
    held: list[Pair] = []
    for pair in similar_pairs(sets, threshold, min_senders):
        why = relatedness(pair.a, pair.b, names)
        if not why and name_of is not None:
            for relay in (pair.a, pair.b):
                if not names.get(relay):
                    names[relay] = name_of(relay)
            why = relatedness(pair.a, pair.b, names)
        if not why and force:
            why = "forced"
        (kept if why else held).append(Pair(pair.a, pair.b, pair.shared, pair.jaccard, why))
    proposals = []
    for component in _components(kept):
        members = set(component)
        pairs = [p for p in kept if p.a in members]
        counts: dict[str, int] = defaultdict(int)
        for relay in component:
            for sender in sets[relay]:
                counts[sender] += 1
        proposal = Proposal(component, pairs, {r: len(sets[r]) for r in component},
                            sum(1 for n in counts.values() if n >= 2),
                            names={r: names[r] for r in component if names.get(r)})
        proposal.name = group_name(proposal)
        proposals.append(proposal)
    return proposals, held


def group_name(proposal: Proposal) -> str:
    """A group name: the relays' common naming domain if they have one, else from the first relay."""
    domains = {org_domain(n) for n in proposal.names.values()}
    if len(domains) == 1 and len(proposal.names) == len(proposal.relays):
        return domains.pop()
    first = proposal.relays[0]
    return "relays-" + str(first).replace(":", "-").replace(".", "-")


def _components(pairs: list[Pair]) -> list[list[IPAddress]]:
    parent: dict[IPAddress, IPAddress] = {}

    def find(x: IPAddress) -> IPAddress:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        parent[find(pair.a)] = find(pair.b)
    groups: dict[IPAddress, list[IPAddress]] = defaultdict(list)
    for relay in list(parent):
        groups[find(relay)].append(relay)
    return sorted((sorted(g, key=_order) for g in groups.values()), key=lambda g: _order(g[0]))


def _network(address: IPAddress, bits: int):
    return ipaddress.ip_network((address, bits), strict=False)


def _order(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))
