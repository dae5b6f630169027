"""`fswl serve dns` over real sockets: dnspython and dig, UDP and TCP, every row of the names table."""

from __future__ import annotations

import os
import random
import subprocess

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from fswl.app.home import Home
from fswl.store import Whitelist
from fswl.names import sender_hash
from tests.conftest import require
from tests.harness.dnsd import fswl_serve
from tests.shell import ln_s, touch, wait_for

ZONE = "wl.example.org"
#: The longest sender whose mailbox name still fits in 255 octets under this zone.
LONG_SENDER = "x" * 40 + "@" + ".".join(["d" * 55, "e" * 55, "f" * 45]) + ".example"
V6_RELAY = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"  # 2001:db8::1


def add_names_table_entries(wl: Whitelist) -> Whitelist:
    """The entries the names-table tests ask about: each kind, a prefix, a group, IPv6."""
    wl.add("dave@umkc.edu", "57.129.134.63")
    wl.add("first.last@umkc.edu", "57.129.134.63")
    wl.add("*@lists.umkc.edu", "57.129.134.0/24")
    wl.add("*", "192.0.2.0/24")
    wl.add("*@aol.com", "64.12.88.0/24")
    wl.link("64.12.88.0/24", "aol-out")
    wl.add("bob@example.net", "2001:db8::1")
    return wl


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns") / "home"
    home = Home(root)
    wl = add_names_table_entries(home.whitelist)
    wl.add(LONG_SENDER, "198.51.100.1")
    with fswl_serve(root, "dns") as port:
        yield home, port


def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False, **kwargs) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=port, timeout=5)


def a_values(reply: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset if rrset.rdtype == dns.rdatatype.A)


ROWS = [
    ("63.134.129.57", dns.rcode.NOERROR, []),  # relay with entries, no "*": an empty non-terminal
    ("4.2.0.192", dns.rcode.NOERROR, ["127.0.0.4"]),
    ("5.2.0.192", dns.rcode.NOERROR, ["127.0.0.4"]),
    ("9.9.9.9", dns.rcode.NXDOMAIN, []),
    ("dave.umkc.edu.63.134.129.57", dns.rcode.NOERROR, ["127.0.0.2"]),
    (r"first\.last.umkc.edu.63.134.129.57", dns.rcode.NOERROR, ["127.0.0.2"]),
    ("anyone.lists.umkc.edu.63.134.129.57", dns.rcode.NOERROR, ["127.0.0.3"]),
    ("anyone.lists.umkc.edu.9.134.129.57", dns.rcode.NOERROR, ["127.0.0.3"]),
    ("anyone.example.org.4.2.0.192", dns.rcode.NOERROR, ["127.0.0.4"]),
    ("bob.umkc.edu.63.134.129.57", dns.rcode.NXDOMAIN, []),
    ("umkc.edu.63.134.129.57", dns.rcode.NOERROR, []),  # below it: dave.umkc.edu...
    ("x.aol.com.200.88.12.64", dns.rcode.NOERROR, ["127.0.0.3"]),  # through the group link
    (f"{sender_hash('dave@umkc.edu')}.63.134.129.57", dns.rcode.NOERROR, ["127.0.0.2"]),
    (f"{sender_hash('*@lists.umkc.edu')}.63.134.129.57", dns.rcode.NOERROR, ["127.0.0.3"]),
    (f"{sender_hash('eve@evil.example')}.4.2.0.192", dns.rcode.NOERROR, ["127.0.0.4"]),
    (f"{sender_hash('eve@evil.example')}.63.134.129.57", dns.rcode.NXDOMAIN, []),
    ("2.0.0.127", dns.rcode.NOERROR, ["127.0.0.2"]),
    ("1.0.0.127", dns.rcode.NXDOMAIN, []),
    ("0.0.127", dns.rcode.NOERROR, []),
    ("127", dns.rcode.NOERROR, []),
    ("134.129.57", dns.rcode.NOERROR, []),
    ("135.129.57", dns.rcode.NXDOMAIN, []),
    ("2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", dns.rcode.NOERROR, ["127.0.0.2"]),
    ("1.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", dns.rcode.NXDOMAIN, []),
    (f"bob.example.net.{V6_RELAY}", dns.rcode.NOERROR, ["127.0.0.2"]),
    (f"ann.example.net.{V6_RELAY}", dns.rcode.NXDOMAIN, []),
    ("8.b.d.0.1.0.0.2", dns.rcode.NOERROR, []),
    ("no.such.name", dns.rcode.NXDOMAIN, []),
    # A domain's last labels below a relay: empty non-terminals of the mailbox names (RFC 8020, 9156).
    ("edu.63.134.129.57", dns.rcode.NOERROR, []),
    ("EDU.63.134.129.57", dns.rcode.NOERROR, []),
    ("edu.9.134.129.57", dns.rcode.NOERROR, []),  # *@lists.umkc.edu on the /24
    ("com.63.134.129.57", dns.rcode.NXDOMAIN, []),
    (f"net.{V6_RELAY}", dns.rcode.NOERROR, []),
    ("com.88.12.64", dns.rcode.NXDOMAIN, []),  # not an address, nothing below
    ("com.1.88.12.64", dns.rcode.NOERROR, []),  # through the group link
    ("aol.com.1.88.12.64", dns.rcode.NOERROR, []),
    ("junk.4.2.0.192", dns.rcode.NOERROR, []),  # "*": x.junk.4.2.0.192 answers 127.0.0.4
    ("x.junk.4.2.0.192", dns.rcode.NOERROR, ["127.0.0.4"]),
    ("-bad-.4.2.0.192", dns.rcode.NXDOMAIN, []),  # no sender's domain ends so
    # Reversed IPv4 labels are decimal without leading zeros; IPv6 ones single hex digits.
    ("057", dns.rcode.NXDOMAIN, []),
    ("0134.129.57", dns.rcode.NXDOMAIN, []),
    ("01", dns.rcode.NXDOMAIN, []),
    ("2.00", dns.rcode.NXDOMAIN, []),
    ("57", dns.rcode.NOERROR, []),
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name,rcode,values", ROWS, ids=[r[0][:40] for r in ROWS])
def test_names_table(server, name: str, rcode: int, values: list[str], tcp: bool) -> None:
    _, port = server
    reply = ask(port, f"{name}.{ZONE}", tcp=tcp)
    assert reply.rcode() == rcode
    assert a_values(reply) == values
    assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
    if not values:
        [soa] = reply.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 300


def test_txt_explains_the_listing(server) -> None:
    _, port = server
    reply = ask(port, f"dave.umkc.edu.63.134.129.57.{ZONE}", "TXT")
    assert [rr.strings for rrset in reply.answer for rr in rrset] == [(b"sender dave@umkc.edu listed via 57.129.134.63/32",)]
    apex = ask(port, ZONE, "TXT", use_edns=0)  # over plain UDP it is more than 3x the query: TC=1
    assert b"http://127.0.0.1:8025/why" in apex.answer[0][0].strings[0]


def test_apex_soa_and_ns(server) -> None:
    _, port = server
    soa = ask(port, ZONE, "SOA").answer[0][0]
    assert soa.mname.to_text() == f"ns.{ZONE}." and soa.rname.to_text() == f"hostmaster.{ZONE}." and soa.minimum == 300
    assert [rr.to_text() for rr in ask(port, ZONE, "NS").answer[0]] == [f"ns.{ZONE}."]
    assert ask(port, ZONE, "A").answer == []


def test_outside_the_zone_is_refused_and_never_recursed(server) -> None:
    _, port = server
    reply = ask(port, "www.example.com", "A")
    assert reply.rcode() == dns.rcode.REFUSED and reply.answer == []
    axfr = ask(port, ZONE, "AXFR", tcp=True)
    assert axfr.rcode() == dns.rcode.REFUSED


def test_case_is_ignored_and_echoed(server) -> None:
    _, port = server
    rng = random.Random(0x20)
    name = f"dave.umkc.edu.63.134.129.57.{ZONE}"
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    reply = ask(port, mixed)
    assert a_values(reply) == ["127.0.0.2"]
    assert reply.question[0].name.to_text() == mixed + "." and reply.answer[0].name.to_text() == mixed + "."


def test_the_longest_answer_fits_in_512_bytes(server) -> None:
    _, port = server
    local, domain = LONG_SENDER.split("@")
    name = f"{local}.{domain}.1.100.51.198.{ZONE}"
    for tcp in (False, True):
        reply = ask(port, name, "TXT", tcp=tcp)
        assert not reply.flags & dns.flags.TC and len(reply.to_wire()) <= 512
        assert reply.answer[0][0].strings == (f"sender {LONG_SENDER} listed via 198.51.100.1/32".encode(),)
    edns = ask(port, name, "A", use_edns=0, payload=4096)
    assert edns.edns == 0 and edns.payload == 1232  # fswl advertises no more than it will send


def test_an_answer_over_the_limit_is_truncated(server) -> None:
    from fswl.dns.resolver import WhitelistResolver
    from fswl.dns.server import answer_datagram
    from fswl.dns.settings import DnsSettings
    from fswl.index.memory import MemoryIndex

    home, _ = server
    index = MemoryIndex(home.whitelist.tree)
    resolver = WhitelistResolver(index, DnsSettings(), "http://x")
    query = dns.message.make_query(f"2.0.0.127.{ZONE}", "TXT")
    whole = answer_datagram(resolver, query.to_wire())
    cut = answer_datagram(resolver, query.to_wire(), payload_limit=len(whole) - 1)
    reply = dns.message.from_wire(cut)
    assert reply.flags & dns.flags.TC and reply.answer == [] and len(cut) < len(whole)


def test_dig_sees_what_a_mail_server_sees(server) -> None:
    _, port = server
    dig = require("dig")
    out = subprocess.run([dig, "+short", "-p", str(port), "@127.0.0.1", f"dave.umkc.edu.63.134.129.57.{ZONE}", "A"],
                         capture_output=True, text=True, timeout=20).stdout
    assert out.split() == ["127.0.0.2"]
    out = subprocess.run([dig, "+tcp", "-p", str(port), "@127.0.0.1", f"9.9.9.9.{ZONE}", "A"],
                         capture_output=True, text=True, timeout=20).stdout
    assert "status: NXDOMAIN" in out and "SOA" in out


def test_changes_show_within_a_second(server) -> None:
    home, port = server
    name = f"carol.example.org.7.0.0.10.{ZONE}"
    assert ask(port, name).rcode() == dns.rcode.NXDOMAIN
    touch(home.db / "ip4/10/0/0/7/carol@example.org")  # an admin's touch, not fswl
    assert wait_for(lambda: a_values(ask(port, name)) == ["127.0.0.2"])
    os.unlink(home.db / "ip4/10/0/0/7/carol@example.org")
    assert wait_for(lambda: ask(port, name).rcode() == dns.rcode.NXDOMAIN)
    touch(home.db / "groups/isp/*@example.org")
    ln_s("../../../../groups/isp", home.db / "ip4/10/0/0/8")
    assert wait_for(lambda: a_values(ask(port, f"carol.example.org.8.0.0.10.{ZONE}")) == ["127.0.0.3"])



def test_a_repeated_query_is_answered_from_the_cache_with_its_own_id(server) -> None:
    _, port = server
    query = dns.message.make_query(f"dave.umkc.edu.63.134.129.57.{ZONE}", "A")
    replies = []
    for query_id in (1, 2, 0xBEEF):
        query.id = query_id
        replies.append(dns.query.udp(query, "127.0.0.1", port=port, timeout=5))
    assert [reply.id for reply in replies] == [1, 2, 0xBEEF]
    assert all(a_values(reply) == ["127.0.0.2"] for reply in replies)
    assert len({reply.to_wire()[2:] for reply in replies}) == 1
