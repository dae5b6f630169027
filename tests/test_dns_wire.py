"""The hand-built hot path (fswl.dns.wire) against dnslib, the reference: same bytes, same fields."""

from __future__ import annotations

import random
import struct

import dns.edns
import dns.flags
import dns.message
import pytest

from fswl.dns.resolver import WhitelistResolver
from fswl.dns.server import answer_datagram
from fswl.dns.settings import DnsSettings
from fswl.app.home import Home
from fswl.index import Index
from fswl.index.loader import load_all

ZONE = "wl.example.org"
RELAYS = 60


@pytest.fixture(scope="module")
def resolvers(tmp_path_factory):
    """(fast, reference): two resolvers on one index; the reference has no hand-built path and no shortcut."""
    home = Home(tmp_path_factory.mktemp("wire") / "home")
    wl = home.whitelist
    for i in range(RELAYS):
        wl.add(f"user{i}@example{i % 7}.com", f"10.{i % 3}.{i}.1")
        if i % 3 == 0:
            wl.add(f"*@lists{i}.example.net", f"10.{i % 3}.{i}.0/24")
            wl.add(f"ann@mail.example{i % 7}.com", f"10.{i % 3}.{i}.1")
        if i % 4 == 0:
            wl.add("*", f"10.{i % 3}.{i}.1")
    wl.add("*", "192.0.2.0/24")
    index = Index(wl)
    load_all(index)
    fast = WhitelistResolver(index, DnsSettings(zone=ZONE), "http://127.0.0.1:8025")
    reference = WhitelistResolver(index, DnsSettings(zone=ZONE), "http://127.0.0.1:8025")
    reference.fast = None
    reference.shortcuts = False
    return fast, reference


def random_name(rng: random.Random) -> str:
    i = rng.randrange(RELAYS + 5)
    relay = f"1.{i}.{i % 3}.10"
    shape = rng.randrange(8)
    if shape == 0:
        name = relay
    elif shape == 1:
        name = f"user{i}.example{i % 7}.com.{relay}"
    elif shape == 2:
        name = f"someone.lists{i}.example.net.{rng.randrange(256)}.{i}.{i % 3}.10"
    elif shape == 3:
        name = f"x{rng.randrange(99)}.example.com.{rng.randrange(256)}.2.0.192"
    elif shape == 4:
        name = f"example{i % 7}.com.{relay}"  # an empty non-terminal
    elif shape == 5:
        name = f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 250)}"
    elif shape == 6:
        name = rng.choice([f"a.b.{i}.{i % 3}.10", f"com.{relay}", f"example.com.{relay}", f"x.example1.com.{relay}",
                           f"user{i}.example{i % 7}.com.x.{relay}", f"*.lists{i}.example.net.{relay}",
                           f"a.b.c.{relay}", f"lists{i}.example.net.{relay}", f"{i}.0.{i % 3}.10",
                           f"a.b.1.{i % 10}.{i % 3}.1", f"u.e.{i}.0.0{i % 3}.10", f"u.e.1.{i}.0.256",
                           f"first\\.last.example{i % 7}.com.{relay}", f"user{i}.example{i % 7}\\.com.{relay}",
                           f"x.mail.example{i % 7}.com.{relay}", f"mail.example{i % 7}.com.{relay}",
                           f"net.{relay}", f"junk.{relay}", f"-x-.{relay}", f"0{i}.{i % 3}.10", f"{i}.0{i % 3}.10"])
    else:
        name = f"nobody.example.org.{relay}"
    name = f"{name}.{ZONE}"
    if rng.random() < 0.5:  # resolvers randomise case (0x20)
        name = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return name


def random_query(rng: random.Random) -> bytes:
    kwargs: dict = {}
    edns = rng.randrange(3)
    if edns == 1:
        kwargs = {"use_edns": 0, "payload": rng.choice([512, 1232, 4096])}
    elif edns == 2:  # dig's default: a COOKIE option
        kwargs = {"use_edns": 0, "payload": 1232, "options": [dns.edns.GenericOption(10, rng.randbytes(8))]}
    query = dns.message.make_query(random_name(rng), rng.choice(["A", "A", "TXT", "ANY"]), **kwargs)
    if rng.random() < 0.3:
        query.flags &= ~dns.flags.RD
    if rng.random() < 0.3:
        query.flags |= dns.flags.AD | dns.flags.CD
    return query.to_wire()


def test_hand_built_replies_equal_dnslibs(resolvers) -> None:
    fast, reference = resolvers
    rng = random.Random(4)
    taken = 0
    for _ in range(3000):
        query = random_query(rng)
        hand = fast.fast.answer(query)
        expected = answer_datagram(reference, query)
        if hand is None:
            continue
        taken += 1
        assert hand == expected, dns.message.from_wire(query).question
        assert_same_fields(hand, expected)
    assert taken > 2000  # the common shapes really go the hand-built way


def test_replies_through_either_path_agree_field_for_field(resolvers) -> None:
    fast, reference = resolvers
    rng = random.Random(5)
    for _ in range(500):
        query = random_query(rng)
        assert_same_fields(answer_datagram(fast, query), answer_datagram(reference, query))


@pytest.mark.parametrize("name,why", [
    (ZONE, "the apex"),
    ("www.example.com", "outside the zone"),
])
def test_unusual_queries_go_to_dnslib(resolvers, name: str, why: str) -> None:
    fast, _ = resolvers
    assert fast.fast.answer(dns.message.make_query(name, "A").to_wire()) is None, why


def test_odd_shapes_go_to_dnslib(resolvers) -> None:
    fast, _ = resolvers
    query = dns.message.make_query(f"1.0.2.10.{ZONE}", "A").to_wire()
    assert fast.fast.answer(query) is not None
    compressed = query[:12] + b"\x01a\xc0\x0c" + query[-4:]
    odd = {
        "mx": query[:-4] + b"\x00\x0f\x00\x01",
        "chaos": query[:-4] + b"\x00\x01\x00\x03",
        "notify": query[:2] + bytes([query[2] | 0x20]) + query[3:],
        "two questions": query[:5] + b"\x02" + query[6:],
        "trailing bytes": query + b"\x00",
        "truncated": query[:-1],
        "compression": compressed,
        "a response": query[:2] + bytes([query[2] | 0x80]) + query[3:],
        "edns version 1": dns.message.make_query(f"1.0.2.10.{ZONE}", "A", use_edns=1).to_wire(),
    }
    for what, data in odd.items():
        assert fast.fast.answer(data) is None, what


def test_edns_payload_is_honoured_and_never_exceeded(resolvers) -> None:
    fast, reference = resolvers
    name = f"user0.example0.com.1.0.0.10.{ZONE}"
    query = dns.message.make_query(name, "TXT", use_edns=0, payload=4096).to_wire()
    reply = dns.message.from_wire(answer_datagram(fast, query))
    assert reply.payload == 1232 and reply.answer
    small = answer_datagram(fast, query, payload_limit=40)
    assert len(small) <= len(query) and dns.message.from_wire(small).flags & dns.flags.TC
    assert small == answer_datagram(reference, query, payload_limit=40)


def assert_same_fields(hand: bytes | None, expected: bytes | None) -> None:
    """Both parsed back with dnspython (a third implementation): every field equal."""
    assert (hand is None) == (expected is None)
    if hand is None:
        return
    one, two = dns.message.from_wire(hand), dns.message.from_wire(expected)
    assert (one.id, one.flags, one.rcode(), one.edns, one.payload) == (two.id, two.flags, two.rcode(), two.edns, two.payload)
    for section in ("question", "answer", "authority", "additional"):
        assert [(r.name.to_text(), r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in getattr(one, section)] == \
               [(r.name.to_text(), r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in getattr(two, section)]
    assert struct.unpack("!H", hand[:2]) == struct.unpack("!H", expected[:2])
