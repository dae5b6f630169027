"""The exports answer what fswl answers: real rbldnsd, real NSD and `fswl serve dns` side by side.

A generated tree (relays, groups, /24 and /16 prefixes, list sources,
relay-wide ``*``, IPv6) is exported with the CLI, loaded into rbldnsd and
NSD, and served by fswl; a few thousand mixed questions go to all three over
UDP and the answers must agree: rcode, A values and TTL, TXT, the negative
TTL.  The documented differences (docs/exports.md) are asserted as such.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from fswl.dns.names import reverse_labels
from fswl.app.home import Home
from fswl.names import sender_hash
from tests.conftest import require, run_fswl
from tests.harness.dnsd import fswl_serve
from tests.harness.exporttree import Tree, build_tree
from tests.harness.secondaries import nsd, rbldnsd

ZONE = "wl.example.org"
ZONE_LABELS = tuple(ZONE.encode().split(b"."))
SEED = 5782
#: Every third question also asks TXT.
TXT_EVERY = 3


@dataclass(frozen=True)
class Answer:
    """What a reply says, in the terms the comparison cares about."""

    rcode: str
    a: tuple[str, ...]
    a_ttl: int | None
    txt: tuple[bytes, ...] | None
    negative_ttl: int | None

    @property
    def nodata(self) -> bool:
        return self.rcode == "NOERROR" and not self.a and not self.txt


def ask(port: int, labels: tuple[bytes, ...], rdtype: str) -> Answer:
    name = dns.name.Name(labels + ZONE_LABELS + (b"",))
    reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=5)
    a = tuple(sorted(rr.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset))
    a_ttl = next((rrset.ttl for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A), None)
    txt = tuple(sorted(b"".join(rr.strings) for rrset in reply.answer if rrset.rdtype == dns.rdatatype.TXT for rr in rrset))
    soa = next((rrset.ttl for rrset in reply.authority if rrset.rdtype == dns.rdatatype.SOA), None)
    return Answer(dns.rcode.to_text(reply.rcode()), a, a_ttl, txt if rdtype == "TXT" else None,
                  soa if not reply.answer else None)


def rev(address) -> tuple[bytes, ...]:
    return tuple(reverse_labels(ipaddress.ip_address(address)))


def mailbox(sender: str, address) -> tuple[bytes, ...]:
    local, domain = sender.rsplit("@", 1)
    return (local.encode(),) + tuple(domain.encode().split(b".")) + rev(address)


def hashed(sender: str, address) -> tuple[bytes, ...]:
    return (sender_hash(sender).encode(),) + rev(address)


def questions(tree: Tree, count: int, rng: random.Random) -> list[tuple[str, tuple[bytes, ...]]]:
    """(kind, labels) for hits of every kind, near misses, misses, groups, prefixes, test points."""
    relays = sorted(tree.relays, key=lambda a: (a.version, int(a)))
    linked = [a for a in tree.linked if not isinstance(a, ipaddress._BaseNetwork)]
    out: list[tuple[str, tuple[bytes, ...]]] = []
    for point in ("127.0.0.2", "127.0.0.1", "::ffff:7f00:2", "::ffff:7f00:1"):
        out.append(("test point", rev(point)))
        out.append(("test point", mailbox("someone@example.org", point)))
    while len(out) < count:
        roll = rng.random()
        if roll < 0.45:
            address = rng.choice(relays)
            senders = tree.relays[address]
            sender = rng.choice(senders)
            local = f"x{rng.randrange(1000)}"
            if sender == "*":
                out.append(("relay-wide", rev(address)))
                out.append(("any sender", mailbox(f"{local}@elsewhere.example", address)))
                out.append(("hashed any", hashed(f"{local}@elsewhere.example", address)))
            elif sender.startswith("*@"):
                out.append(("domain", mailbox(f"{local}{sender[1:]}", address)))
                out.append(("hashed domain", hashed(sender, address)))
            else:
                out.append(("exact", mailbox(sender, address)))
                out.append(("hashed exact", hashed(sender, address)))
                out.append(("near: other local", mailbox(f"{local}@{sender.split('@')[1]}", address)))
                out.append(("relay name", rev(address)))
                neighbour = address + 1 if int(address) % 2 else address - 1
                out.append(("near: neighbour", mailbox(sender, neighbour)))
        elif roll < 0.6:
            network = rng.choice(sorted(tree.prefixes, key=lambda n: (n.version, n)))
            address = network.network_address + rng.randrange(min(network.num_addresses, 1 << 32))
            out.append(("prefix relay-wide", rev(address)))
            for sender in tree.prefixes[network]:
                if sender.startswith("*@"):
                    out.append(("prefix domain", mailbox(f"x{rng.randrange(99)}{sender[1:]}", address)))
                elif sender != "*":
                    out.append(("prefix exact", mailbox(sender, address)))
            out.append(("prefix any", mailbox("anyone@example.com", address)))
        elif roll < 0.7:
            address = rng.choice(linked)
            group = tree.linked[address]
            out.append(("group domain", mailbox(f"x{rng.randrange(99)}@{group}.example", address)))
            out.append(("group exact", mailbox(f"user@{group}.example", address)))
            out.append(("group relay", rev(address)))
            out.append(("group hashed", hashed(f"user@{group}.example", address)))
        elif roll < 0.78:
            address = rng.choice(relays)
            if not any(address in n for n in tree.prefixes if "*" in tree.prefixes[n]):
                labels = rev(address)
                out.append(("ent: reversed prefix", labels[1 + rng.randrange(len(labels) - 1):]))
                exact = [s for s in tree.relays[address] if not s.startswith("*")]
                if exact:
                    out.append(("ent: domain", mailbox(exact[0], address)[1:]))
                if exact and "*" not in tree.relays[address]:  # under "*", rbldnsd's wildcard answers (4.)
                    out.append(("ent: last label", mailbox(exact[0], address)[-len(labels) - 1:]))
        else:
            version = 4 if rng.random() < 0.8 else 6
            value = rng.randrange(1 << 32) if version == 4 else int(ipaddress.IPv6Address("2001:db8::")) + rng.randrange(1 << 64)
            address = ipaddress.ip_address(value) if version == 4 else ipaddress.IPv6Address(value)
            out.append(("miss", rev(address)))
            out.append(("miss", mailbox("u1@d1.example", address)))
            out.append(("miss hashed", hashed("u1@d1.example", address)))
    return out[:count]


@contextmanager
def three_servers(tmp_path: Path, root: Path) -> Iterator[tuple[int, int, int]]:
    """Export ``root`` both ways; yield the ports of fswl, rbldnsd and NSD serving it."""
    rbldnsd_bin = require("rbldnsd", "the differential export test")
    nsd_bin = require("nsd", "the differential export test")
    for fmt in ("rbldnsd", "zone"):
        run_fswl(root, "export", "--format", fmt, "--output", str(tmp_path / fmt), check=True, timeout=300)
    with fswl_serve(root, "dns") as fswl_port, \
            rbldnsd(rbldnsd_bin, tmp_path / "rbldnsd", ZONE, tmp_path / "rbldnsd-run") as rbl_port, \
            nsd(nsd_bin, tmp_path / "zone", ZONE, tmp_path / "nsd-run") as nsd_port:
        yield fswl_port, rbl_port, nsd_port


def differential(tmp_path: Path, relays: int, count: int, wide: bool = False) -> None:
    root = tmp_path / "home"
    tree = build_tree(Home(root).db, relays, SEED, wide=wide)
    asked = questions(tree, count, random.Random(SEED))
    with three_servers(tmp_path, root) as (fswl_port, rbl_port, nsd_port):
        seen: Counter[str] = Counter()
        mismatches = []
        for i, (kind, labels) in enumerate(asked):
            for rdtype in ("A", "TXT") if i % TXT_EVERY == 0 else ("A",):
                want = ask(fswl_port, labels, rdtype)
                seen[f"{want.rcode} {want.a}"] += rdtype == "A"
                zone = ask(nsd_port, labels, rdtype)
                if zone != want:
                    mismatches.append(("nsd", kind, labels, rdtype, want, zone))
                rbl = ask(rbl_port, labels, rdtype)
                if want.nodata:  # the documented difference: rbldnsd knows no empty non-terminals
                    if kind.startswith("ent") and rbl.rcode != "NXDOMAIN":
                        mismatches.append(("rbldnsd ENT", kind, labels, rdtype, want, rbl))
                elif rbl != want:
                    mismatches.append(("rbldnsd", kind, labels, rdtype, want, rbl))
        assert not mismatches, f"{len(mismatches)} differ, first: {mismatches[:5]}"
        # The mix really holds every kind of answer.
        for answer in ("NOERROR ('127.0.0.2',)", "NOERROR ('127.0.0.3',)", "NOERROR ('127.0.0.4',)",
                       "NOERROR ()", "NXDOMAIN ()"):
            assert seen[answer] >= count // 100, (answer, seen)
        assert_documented_differences(tree, fswl_port, nsd_port, rbl_port)


def assert_documented_differences(tree: Tree, fswl_port: int, nsd_port: int, rbl_port: int) -> None:
    """docs/exports.md, "Differences": each one, exactly as written there."""
    star16 = next(n for n, s in tree.prefixes.items() if s == ["*"] and n.version == 4 and n.prefixlen == 16)
    relay = next(a for a, s in tree.relays.items() if a.version == 4 and "*" not in s and
                 not any(a in n for n in tree.prefixes))
    # 1. An empty non-terminal: NODATA from fswl and NSD, NXDOMAIN from rbldnsd.
    for labels in (rev(relay), rev(relay)[2:]):
        assert ask(fswl_port, labels, "A").nodata and ask(nsd_port, labels, "A").nodata
        assert ask(rbl_port, labels, "A").rcode == "NXDOMAIN"
    # 2. Part of a reversed address under a relay-wide prefix: fswl says NODATA, the wildcard lists it.
    partial = rev(star16.network_address + 0x4200)[1:]  # 66.b.a: nothing listed below it but the /16
    assert ask(fswl_port, partial, "A").nodata
    assert ask(nsd_port, partial, "A").a == ("127.0.0.4",) and ask(rbl_port, partial, "A").a == ("127.0.0.4",)
    # 3. A sender at a subdomain of a *@domain entry: the wildcard reaches it, fswl does not.
    address, sender = next((a, s) for a, ss in tree.relays.items() for s in ss
                           if s.startswith("*@list") and "*" not in ss and a.version == 4
                           and not any(a in n for n in tree.prefixes))
    deeper = mailbox(f"bob@sub.{sender[2:]}", address)
    assert ask(fswl_port, deeper, "A").rcode == "NXDOMAIN"
    assert ask(nsd_port, deeper, "A").a == ("127.0.0.3",) and ask(rbl_port, deeper, "A").a == ("127.0.0.3",)
    # 4. A name that is no question, below a relay listed for every sender: the wildcard answers it.
    #    fswl: a label that could end a domain is an empty non-terminal (x.not-a-hash.<relay> is
    #    listed), one that cannot is NXDOMAIN.
    star = next(a for a, s in tree.relays.items() if "*" in s and a.version == 4 and not any(a in n for n in tree.prefixes))
    for label, fswl_says in ((b"not-a-hash", "NOERROR"), (b"-not-a-domain-", "NXDOMAIN")):
        garbage = (label,) + rev(star)
        assert ask(fswl_port, garbage, "A").rcode == fswl_says and not ask(fswl_port, garbage, "A").a
        assert ask(nsd_port, garbage, "A").a == ("127.0.0.4",) and ask(rbl_port, garbage, "A").a == ("127.0.0.4",)
    # 5. The IPv4-mapped IPv6 name of a listed relay: fswl and rbldnsd fold it to IPv4, the zone lacks it.
    mapped = rev(f"::ffff:{star}")
    assert ask(fswl_port, mapped, "A") == ask(rbl_port, mapped, "A") and ask(fswl_port, mapped, "A").a == ("127.0.0.4",)
    assert ask(nsd_port, mapped, "A").rcode == "NXDOMAIN"


@pytest.mark.integration
def test_exports_answer_what_fswl_answers(tmp_path: Path) -> None:
    differential(tmp_path, relays=10_000, count=3_000)


@pytest.mark.integration
@pytest.mark.slow
def test_exports_answer_what_fswl_answers_with_wide_expansions(tmp_path: Path) -> None:
    """With *@domain on a /16 and an IPv6 /112: 65,536 addresses written out each."""
    differential(tmp_path, relays=20_000, count=5_000, wide=True)


ODD_SENDERS = ["first.last@umkc.edu", "a$b@umkc.edu", "#hash@umkc.edu", "o'neil@umkc.edu", "x+tag@umkc.edu",
               "josé@umkc.edu", "semi;colon@umkc.edu", "back\\slash@umkc.edu", "quote\"d@umkc.edu", "!bang@umkc.edu"]


@pytest.mark.integration
def test_odd_local_parts_travel_through_both_formats(tmp_path: Path) -> None:
    """Local parts with dots, $, #, quotes, backslashes and UTF-8: escaped for each format, answered alike."""
    home = Home(tmp_path / "home")
    for sender in ODD_SENDERS:
        home.whitelist.add(sender, "57.129.134.63")
    home.whitelist.add("*", "57.129.134.63")
    with three_servers(tmp_path, home.root) as (fswl_port, rbl_port, nsd_port):
        for sender in ODD_SENDERS:
            local = sender.rsplit("@", 1)[0].encode()
            for labels in (mailbox(sender, "57.129.134.63"), (local, b"other", b"example") + rev("57.129.134.63"),
                           hashed(sender, "57.129.134.63")):
                for rdtype in ("A", "TXT"):
                    want = ask(fswl_port, labels, rdtype)
                    assert want.a or want.txt, (labels, want)
                    assert ask(nsd_port, labels, rdtype) == want, labels
                    assert ask(rbl_port, labels, rdtype) == want, labels
