"""DNS that resolvers accept: long TXT through a real unbound, no AD/CD echoed, no UDP amplification."""

from __future__ import annotations

import socket
import subprocess

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from fswl.dns.resolver import WhitelistResolver
from fswl.dns.server import answer_datagram
from fswl.dns.settings import DnsSettings
from fswl.app.home import Home
from fswl.index import Index
from fswl.index.loader import load_all
from fswl.names import sender_hash
from tests.conftest import require
from tests.harness.dnsd import fswl_serve
from tests.harness.unbound import unbound
from tests.test_dns import V6_RELAY, add_names_table_entries

ZONE = "wl.example.org"
#: 225 characters: its TXT ("sender ... listed via ...") is over one 255-octet character-string.
LONG_SENDER = "l" * 64 + "@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 24 + ".example"
LONG_RELAY = "198.51.100.7"
LONG_TEXT = f"sender {LONG_SENDER} listed via {LONG_RELAY}/32".encode()
LONG_NAME = f"{sender_hash(LONG_SENDER)}.7.100.51.198.{ZONE}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("resolvers") / "home"
    home = Home(root)
    add_names_table_entries(home.whitelist)
    home.whitelist.add(LONG_SENDER, LONG_RELAY)
    with fswl_serve(root, "dns") as port:
        yield home, port


def udp(port: int, query: dns.message.Message) -> dns.message.Message:
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=5)


def txt_strings(reply: dns.message.Message) -> list[tuple[bytes, ...]]:
    return [rr.strings for rrset in reply.answer for rr in rrset if rrset.rdtype == dns.rdatatype.TXT]


def test_a_long_txt_is_split_into_character_strings(server) -> None:
    _, port = server
    assert len(LONG_SENDER) == 225 and len(LONG_TEXT) > 255
    for query in (dns.message.make_query(LONG_NAME, "TXT", use_edns=0),
                  dns.message.make_query(LONG_NAME, "TXT")):
        for reply in (udp(port, query), dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)):
            if reply.flags & dns.flags.TC:
                assert query.edns < 0  # only plain UDP may be cut (the amplification cap)
                continue
            assert reply.rcode() == dns.rcode.NOERROR
            [strings] = txt_strings(reply)
            assert len(strings) == 2 and all(len(s) <= 255 for s in strings) and b"".join(strings) == LONG_TEXT


def test_unbound_in_front_of_fswl_resolves_a_long_txt(server, tmp_path) -> None:
    _, port = server
    binary = require("unbound", "the resolver-acceptance test")
    with unbound(binary, ZONE, port, tmp_path / "unbound") as resolver:
        for tcp in (False, True):
            query = dns.message.make_query(LONG_NAME, "TXT", use_edns=0)
            send = dns.query.tcp if tcp else dns.query.udp
            reply = send(query, "127.0.0.1", port=resolver, timeout=10)
            assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())  # not SERVFAIL
            assert b"".join(txt_strings(reply)[0]) == LONG_TEXT
        short = udp(resolver, dns.message.make_query(f"dave.umkc.edu.63.134.129.57.{ZONE}", "A", use_edns=0))
        assert [rr.to_text() for rrset in short.answer for rr in rrset] == ["127.0.0.2"]
        missing = udp(resolver, dns.message.make_query(f"bob.umkc.edu.63.134.129.57.{ZONE}", "A"))
        assert missing.rcode() == dns.rcode.NXDOMAIN  # minimised QNAMEs walk the empty non-terminals above it
        apex = udp(resolver, dns.message.make_query(ZONE, "TXT"))  # over plain UDP fswl says TC=1 for this one
        assert apex.rcode() == dns.rcode.NOERROR and b"/why" in txt_strings(apex)[0][0]
        dig = require("dig")
        out = subprocess.run([dig, "-p", str(resolver), "@127.0.0.1", LONG_NAME, "TXT"], capture_output=True,
                             text=True, timeout=30).stdout
        assert "status: NOERROR" in out and '" "' in out  # two character-strings, quoted apart


def test_fast_path_and_dnslib_split_a_long_txt_alike(server) -> None:
    home, _ = server
    index = Index(home.whitelist)
    load_all(index)
    fast = WhitelistResolver(index, DnsSettings(zone=ZONE), "http://127.0.0.1:8025")
    reference = WhitelistResolver(index, DnsSettings(zone=ZONE), "http://127.0.0.1:8025")
    reference.fast = None
    reference.shortcuts = False
    for edns in (0, None):
        query = dns.message.make_query(LONG_NAME, "TXT", use_edns=edns).to_wire()
        hand = fast.fast.answer(query, payload_limit=1232)
        assert hand is not None and hand == answer_datagram(reference, query, payload_limit=1232)
        assert b"".join(txt_strings(dns.message.from_wire(hand))[0]) == LONG_TEXT


#: (name, qtype) pairs through the fast path and through dnslib, with answers and without.
FLAG_CASES = [
    (f"dave.umkc.edu.63.134.129.57.{ZONE}", "A"),  # listed: the fast path
    (f"dave.umkc.edu.63.134.129.57.{ZONE}", "TXT"),
    (f"9.9.9.9.{ZONE}", "A"),  # NXDOMAIN with the SOA
    (f"dave.umkc.edu.63.134.129.57.{ZONE}", "MX"),  # NODATA, through dnslib
    (ZONE, "SOA"),  # the apex: dnslib
    (ZONE, "NS"),
    ("www.example.com", "A"),  # REFUSED
]


@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
@pytest.mark.parametrize("name,rdtype", FLAG_CASES, ids=[f"{n[:24]}-{t}" for n, t in FLAG_CASES])
def test_ad_and_cd_are_never_echoed(server, name: str, rdtype: str, edns: bool) -> None:
    """An authority for an unsigned zone never sets AD (RFC 4035 3.1.6, RFC 6840 5.8); CD is not echoed."""
    _, port = server
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else None)
    query.flags |= dns.flags.AD | dns.flags.CD
    for reply in (udp(port, query), dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)):
        assert not reply.flags & (dns.flags.AD | dns.flags.CD), dns.flags.to_text(reply.flags)
        assert reply.flags & dns.flags.RD  # RD is copied, as RFC 1035 says


def test_dig_adflag_cdflag_gets_neither_back(server) -> None:
    _, port = server
    dig = require("dig")
    for name in (f"dave.umkc.edu.63.134.129.57.{ZONE}", ZONE):
        out = subprocess.run([dig, "+adflag", "+cdflag", "-p", str(port), "@127.0.0.1", name, "A"],
                             capture_output=True, text=True, timeout=20).stdout
        [flags] = [line for line in out.splitlines() if line.startswith(";; flags:")]
        assert flags.split(";")[2].split(":")[1].split() == ["qr", "aa", "rd"], flags


QTYPES = ["A", "AAAA", "TXT", "SOA", "NS", "ANY", "MX", "CNAME", "PTR", "SRV", "CAA", "HINFO", "DNSKEY", "DS",
          "NSEC", "RRSIG", "SPF", "NULL", "TYPE65", "TYPE9999"]
NAME_FORMS = [
    ZONE,  # the apex
    f"2.0.0.127.{ZONE}",  # test points
    f"1.0.0.127.{ZONE}",
    f"2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.{ZONE}",
    f"4.2.0.192.{ZONE}",  # a relay listed for every sender
    f"x.4.2.0.192.{ZONE}",
    f"dave.umkc.edu.63.134.129.57.{ZONE}",  # mailbox form
    f"a.b.63.134.129.57.{ZONE}",
    f"bob.example.net.{V6_RELAY}.{ZONE}",
    f"{sender_hash('dave@umkc.edu')}.63.134.129.57.{ZONE}",  # hashed form
    LONG_NAME,
    f"63.134.129.57.{ZONE}",  # empty non-terminals
    f"edu.63.134.129.57.{ZONE}",
    f"57.{ZONE}",
    f"8.b.d.0.1.0.0.2.{ZONE}",
    f"9.9.9.9.{ZONE}",  # missing
    f"a.{ZONE}",
    f"no.such.name.{ZONE}",
    f"ns.{ZONE}",
    f"{'x' * 63}.{'y' * 63}.{'z' * 63}.{'w' * 40}.{ZONE}",  # long names
    "a.example.com",  # outside the zone
    "com",
]


def test_no_plain_udp_answer_exceeds_three_times_its_query(server) -> None:
    """Without EDNS (no cookie, nothing to show the source is real) a reply is at most 3x the query."""
    _, port = server
    worst = (0.0, "")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for name in NAME_FORMS:
            for rdtype in QTYPES:
                query = dns.message.make_query(name, rdtype, use_edns=None)
                wire = query.to_wire()
                sock.sendto(wire, ("127.0.0.1", port))
                reply, _ = sock.recvfrom(65535)
                ratio = len(reply) / len(wire)
                assert len(reply) <= 3 * len(wire), f"{name} {rdtype}: {len(wire)} -> {len(reply)} bytes"
                assert dns.message.from_wire(reply).id == query.id
                worst = max(worst, (ratio, f"{name} {rdtype}"))
    print(f"largest plain UDP reply: {worst[0]:.2f}x the query ({worst[1]})")


def test_what_plain_udp_cuts_is_whole_over_edns_and_tcp(server) -> None:
    _, port = server
    plain = udp(port, dns.message.make_query(ZONE, "TXT"))
    assert plain.flags & dns.flags.TC and not plain.answer  # the apex text: 33 bytes would have become 111
    for reply in (udp(port, dns.message.make_query(ZONE, "TXT", use_edns=0)),
                  dns.query.tcp(dns.message.make_query(ZONE, "TXT"), "127.0.0.1", port=port, timeout=5)):
        assert not reply.flags & dns.flags.TC and b"/why" in txt_strings(reply)[0][0]
    listed = udp(port, dns.message.make_query(f"dave.umkc.edu.63.134.129.57.{ZONE}", "TXT"))
    assert not listed.flags & dns.flags.TC and listed.answer  # what mail servers ask is not cut
