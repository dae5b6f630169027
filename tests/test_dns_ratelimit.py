"""Response-rate limiting (`[dns] rrl_per_second`): answers per second per client /24 or /56, never a flood."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import dns.message
import dns.query

from fswl.dns.ratelimit import RateLimiter
from fswl.app.home import Home
from tests.harness.dnsd import fswl_serve

ZONE = "wl.example.org"


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def test_a_network_gets_its_rate_and_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    answered = [limiter.allow(packed(f"192.0.2.{n % 250}")) for n in range(30)]
    assert answered == [True] * 10 + [False] * 20  # one /24, one bucket
    assert limiter.allow(packed("192.0.3.1"))  # the next /24 has its own
    clock.now += 0.5
    assert [limiter.allow(packed("192.0.2.7")) for _ in range(6)] == [True] * 5 + [False]


def test_ipv6_networks_are_56s_and_mapped_ipv4_is_ipv4() -> None:
    limiter = RateLimiter(2, clock=Clock())
    assert [limiter.allow(packed(f"2001:db8:0:{n:x}::1")) for n in range(3)] == [True, True, False]  # one /56
    assert limiter.allow(packed("2001:db8:0:100::1"))  # another /56
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d: each /24 still has its own bucket.
    assert [limiter.allow(packed(f"::ffff:198.51.{n}.1")) for n in range(5)] == [True] * 5
    assert [limiter.allow(packed("::ffff:198.51.0.9")), limiter.allow(packed("198.51.0.10"))] == [True, False]


def test_memory_stays_bounded_under_a_flood_of_sources() -> None:
    limiter = RateLimiter(1, clock=Clock())
    for n in range(RateLimiter.MAX_CLIENTS + 10):
        limiter.allow(n.to_bytes(4, "big"))
    assert len(limiter.buckets) <= RateLimiter.MAX_CLIENTS


def answered(port: int, source: str, count: int) -> int:
    """How many of ``count`` queries sent at once from ``source`` get an answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(1.0)
        for n in range(count):
            query = dns.message.make_query(f"{n}.2.0.192.{ZONE}", "A")
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
        replies = 0
        try:
            while True:
                sock.recv(4096)
                replies += 1
        except socket.timeout:
            return replies


def test_a_flood_from_one_network_is_cut_to_the_rate(tmp_path: Path) -> None:
    root = tmp_path / "home"
    Home(root).whitelist.add("*", "192.0.2.0/24")
    (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\nrrl_per_second = 20\n')
    with fswl_serve(root, "dns") as port:
        flooded = answered(port, "127.0.0.1", 200)
        assert 20 <= flooded <= 30  # the bucket, and what refilled while the flood went by
        assert answered(port, "127.0.1.1", 10) == 10  # another /24 is not punished
        reply = dns.query.udp(dns.message.make_query(f"1.2.0.192.{ZONE}", "A"), "127.0.0.1", port=port, timeout=5)
        assert reply.answer  # a second later the flooded network is answered again
