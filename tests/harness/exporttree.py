"""A generated tree for export tests and bench/export.py: relays, groups, prefixes, list sources, IPv6.

Files are made directly (mkdir, O_CREAT, symlink), as an admin's script
would, so that building 100k relays takes seconds.  ``Tree`` remembers what
was made, so a test can ask about each kind of name.
"""

from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from fswl.names import address_parts, network_parts, sender_to_name

GROUPS = 5


@dataclass
class Tree:
    """What was built: each relay or prefix with its entries (through groups too)."""

    relays: dict[ipaddress._BaseAddress, list[str]] = field(default_factory=dict)
    prefixes: dict[ipaddress._BaseNetwork, list[str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    linked: dict[object, str] = field(default_factory=dict)  #: relay or prefix -> group


def build_tree(db: Path, relays: int, seed: int = 5782, wide: bool = False) -> Tree:
    """Make ``relays`` IPv4 relays (plus prefixes, groups and IPv6) under db/.

    ``wide`` adds the expensive shapes: ``*@domain`` on a /16 and on an IPv6 /112.
    """
    rng = random.Random(seed)
    tree = Tree()
    for g in range(GROUPS):
        senders = [f"*@g{g}.example", f"user@g{g}.example"] + (["*"] if g == 0 else [])
        tree.groups[f"g{g}"] = senders
        _entries(db / "groups" / f"g{g}", senders)
    seen: set[int] = set()
    while len(seen) < relays:
        value = rng.randrange(11 << 24, 200 << 24)
        if value >> 24 != 127:
            seen.add(value)
    for value in sorted(seen):
        address = ipaddress.IPv4Address(value)
        if rng.random() < 0.05:
            group = f"g{rng.randrange(GROUPS)}"
            _link(db, address_parts(address), group, 4)
            tree.linked[address] = group
            continue
        tree.relays[address] = _senders(rng)
    # Prefixes: relay-wide /24s and a /16 (with relays and a /24 inside), list sources on /24s.
    chosen = rng.sample(sorted(tree.relays), 11)
    for address in chosen[:5]:
        tree.prefixes[ipaddress.ip_network(f"{address}/24", strict=False)] = ["*"]
    for i, address in enumerate(chosen[5:10]):
        tree.prefixes[ipaddress.ip_network(f"{address}/24", strict=False)] = [f"*@pfx{i}.example", f"boss@pfx{i}.example"]
    wide16 = ipaddress.ip_network(f"{chosen[10]}/16", strict=False)
    tree.prefixes[wide16] = ["*"]
    inner = ipaddress.ip_network(f"{wide16.network_address + 0x0500}/24")
    tree.prefixes[inner] = ["*"]
    for k in range(3):
        tree.relays[wide16.network_address + 0x0500 + 7 + k] = [f"u{k}@inner.example"]
        tree.relays[wide16.network_address + 0x0900 + k] = [f"u{k}@deep.example", f"*@deeplist.example"]
    grouped = next(n for n in (ipaddress.ip_network(f"100.{i}.77.0/24") for i in range(64, 128))
                   if not (db / "ip4" / "100" / str(n.network_address.packed[1]) / "77").exists())
    if wide:
        tree.prefixes[ipaddress.ip_network("198.18.0.0/16")] = ["*@wide.example"]
    # IPv6: /128 relays, a relay-wide /64 with a relay inside, a relay-wide /48.
    base = int(ipaddress.IPv6Address("2001:db8::"))
    for i in range(max(20, relays // 50)):
        address = ipaddress.IPv6Address(base + (rng.randrange(1 << 16) << 80) + rng.randrange(1 << 32))
        tree.relays[address] = _senders(rng)
    v64 = ipaddress.IPv6Network("2001:db8:ffff:1::/64")
    tree.prefixes[v64] = ["*"]
    tree.relays[v64.network_address + 0x25] = ["me@v6.example"]
    tree.prefixes[ipaddress.IPv6Network("2001:db8:fffe::/48")] = ["*"]
    if wide:
        tree.prefixes[ipaddress.IPv6Network("2001:db8:fffd::/112")] = ["*@v6list.example"]
    for address, senders in tree.relays.items():
        _entries(db / ("ip4" if address.version == 4 else "ip6") / Path(*address_parts(address)), senders)
    for network, senders in tree.prefixes.items():
        _entries(db / ("ip4" if network.version == 4 else "ip6") / Path(*network_parts(network)), senders)
    _link(db, network_parts(grouped), "g1", 4)  # a whole /24 shares a group's entries
    tree.linked[grouped] = "g1"
    return tree


def _senders(rng: random.Random) -> list[str]:
    senders = [f"u{rng.randrange(50)}@d{rng.randrange(200)}.example"]
    if rng.random() < 0.3:
        senders.append(f"first.last{rng.randrange(9)}@d{rng.randrange(200)}.example")
    if rng.random() < 0.2:
        senders.append(f"*@list{rng.randrange(40)}.example")
    if rng.random() < 0.1:
        senders.append("*")
    return sorted(set(senders))


def _entries(directory: Path, senders: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for sender in senders:
        os.close(os.open(directory / sender_to_name(sender), os.O_CREAT | os.O_WRONLY, 0o644))


def _link(db: Path, parts: tuple[str, ...], group: str, version: int) -> None:
    link = db / ("ip4" if version == 4 else "ip6") / Path(*parts)
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(os.path.relpath(db / "groups" / group, link.parent), link)
