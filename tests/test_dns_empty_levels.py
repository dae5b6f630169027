"""A relay emptied by `fswl rm` (only `.tomb/` left) stops counting: the names above it are NXDOMAIN again."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.query
import dns.rcode

from fswl.app.home import Home
from fswl.index import MemoryIndex
from fswl.index.loader import load_all
from tests.harness.dnsd import fswl_serve
from tests.shell import wait_for

ZONE = "wl.example.org"


def rcode(port: int, name: str) -> int:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=5)
    return reply.rcode()


def test_names_above_an_emptied_relay_are_nxdomain(home: Home, fswl) -> None:
    fswl("add", "keep@y.org", "192.0.2.1", check=True)  # so the zone has something
    with fswl_serve(home.root, "dns") as port:
        fswl("add", "x@y.org", "10.1.2.3", check=True)
        for name in ("2.1.10", "1.10", "10"):
            assert wait_for(lambda: rcode(port, f"{name}.{ZONE}") == dns.rcode.NOERROR, seconds=10)
        fswl("rm", "x@y.org", "10.1.2.3", check=True)
        for name in ("3.2.1.10", "2.1.10", "1.10", "10"):
            assert wait_for(lambda: rcode(port, f"{name}.{ZONE}") == dns.rcode.NXDOMAIN, seconds=10), name
        assert rcode(port, f"1.2.0.192.{ZONE}") == dns.rcode.NOERROR


def test_empty_levels_do_not_count_in_the_index(home: Home) -> None:
    wl = home.whitelist
    wl.add("x@y.org", "10.1.2.3")
    wl.add("z@y.org", "10.1.9.0/24")
    wl.remove("x@y.org", "10.1.2.3")
    index = MemoryIndex(wl.tree)
    load_all(index)
    inside = ipaddress.ip_network
    assert not index.has_levels_within(inside("10.1.2.0/24"))
    assert not index.has_levels_within(inside("10.1.2.3/32"))
    assert index.has_levels_within(inside("10.1.0.0/16"))  # 10.1.9 still has an entry
    assert index.has_levels_within(inside("10.1.9.7/32"))  # covered by a level with entries
    wl.remove("z@y.org", "10.1.9.0/24")
    index = MemoryIndex(wl.tree)
    load_all(index)
    assert not index.has_levels_within(inside("10.0.0.0/8"))
