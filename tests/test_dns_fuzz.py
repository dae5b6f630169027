"""Malformed packets never crash or stall the responder, and never get a reply larger than they are."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import dns.message
import pytest
from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fswl.dns.resolver import CLASSIC_PAYLOAD, EDNS_PAYLOAD, WhitelistResolver
from fswl.dns.server import answer_datagram
from fswl.dns.settings import DnsSettings
from fswl.app.home import Home
from fswl.index import Index
from fswl.index.loader import load_all
from tests.harness.dnsd import fswl_serve

ZONE = "wl.example.org"
#: How long the live test waits for a reply before taking the packet as unanswered.
LIVE_WAIT = 0.015
#: One packet may take this long at most (a stall would take far longer).
PACKET_SECONDS = 0.25
NAMES = [f"dave.umkc.edu.63.134.129.57.{ZONE}", f"4.2.0.192.{ZONE}", ZONE, f"9.9.9.9.{ZONE}", "example.com",
         f"2.0.0.127.{ZONE}", f"{'a' * 52}.63.134.129.57.{ZONE}"]


def fill(home: Home) -> None:
    wl = home.whitelist
    wl.add("dave@umkc.edu", "57.129.134.63")
    wl.add("*@lists.umkc.edu", "57.129.134.0/24")
    wl.add("*", "192.0.2.0/24")


@pytest.fixture(scope="module")
def resolver(tmp_path_factory) -> WhitelistResolver:
    home = Home(tmp_path_factory.mktemp("fuzz") / "home")
    fill(home)
    index = Index(home.whitelist)
    load_all(index)
    return WhitelistResolver(index, DnsSettings(zone=ZONE), "http://127.0.0.1:8025")


def valid_query(rng: random.Random) -> bytes:
    kwargs = {"use_edns": 0, "payload": rng.choice([0, 512, 4096])} if rng.random() < 0.4 else {}
    return dns.message.make_query(rng.choice(NAMES), rng.choice(["A", "TXT", "ANY", "SOA", "NS", "MX", "AXFR"]),
                                  **kwargs).to_wire()


def mutate(rng: random.Random) -> bytes:
    """One malformed (or odd) packet: the shapes attackers and broken clients send."""
    query = bytearray(valid_query(rng))
    kind = rng.randrange(10)
    if kind == 0:  # random bytes
        return os.urandom(rng.randrange(0, 600))
    if kind == 1:  # truncated
        return bytes(query[: rng.randrange(len(query))])
    if kind == 2:  # compression loops and wild pointers
        pointer = rng.choice([12, 13, len(query), 0x3FFF, rng.randrange(0x4000)])
        return bytes(query[:12] + rng.choice([b"", b"\x01a", b"\x03abc\x01b"]) + struct.pack("!H", 0xC000 | pointer)
                     + query[-4:])
    if kind == 3:  # huge counts
        struct.pack_into("!HHHH", query, 4, *(rng.choice([0, 1, 2, 255, 0xFFFF]) for _ in range(4)))
        return bytes(query)
    if kind == 4:  # wrong opcodes, QR, odd flag bits and rcodes
        query[2] = rng.randrange(256)
        query[3] = rng.randrange(256)
        return bytes(query)
    if kind == 5:  # flipped bytes
        for _ in range(rng.randrange(1, 6)):
            query[rng.randrange(len(query))] = rng.randrange(256)
        return bytes(query)
    if kind == 6:  # labels too long, names too long
        return bytes(query[:12] + bytes([rng.randrange(64, 256)]) + os.urandom(rng.randrange(80)) + b"\x00\x00\x01\x00\x01")
    if kind == 7:  # a name of many labels
        return bytes(query[:12] + b"\x01a" * rng.randrange(100, 200) + b"\x00\x00\x01\x00\x01")
    if kind == 8:  # trailing garbage or a broken OPT record
        return bytes(query + os.urandom(rng.randrange(1, 40)))
    return bytes(query)  # a well-formed query, as a control


def is_malformed(data: bytes) -> bool:
    """Anything but one well-formed standard query: what must never be amplified."""
    try:
        request = DNSRecord.parse(data)
    except Exception:
        return True
    return bool(request.header.qr or request.header.opcode or len(request.questions) != 1)


def has_edns(data: bytes) -> bool:
    try:
        return any(rr.rtype == 41 for rr in DNSRecord.parse(data).ar)
    except Exception:
        return False


def check(resolver: WhitelistResolver, data: bytes) -> None:
    started = time.monotonic()
    reply = answer_datagram(resolver, data)
    assert time.monotonic() - started < PACKET_SECONDS
    if reply is None:
        return
    assert isinstance(reply, bytes)
    if is_malformed(data):
        assert len(reply) <= len(data), data
    assert len(reply) <= (EDNS_PAYLOAD if has_edns(data) else CLASSIC_PAYLOAD)


def run_seeded(resolver: WhitelistResolver, count: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        check(resolver, mutate(rng))


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes(resolver, data: bytes) -> None:
    check(resolver, data)


@given(st.integers(min_value=0, max_value=2**32 - 1))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_queries(resolver, seed: int) -> None:
    check(resolver, mutate(random.Random(seed)))


def test_a_few_thousand_mutations(resolver) -> None:
    run_seeded(resolver, 5_000, seed=1)


@pytest.mark.slow
def test_a_hundred_thousand_mutations(resolver) -> None:
    started = time.monotonic()
    run_seeded(resolver, 100_000, seed=2)
    assert time.monotonic() - started < 150


@pytest.mark.slow
@given(st.binary(max_size=600) | st.integers(min_value=0, max_value=2**32 - 1).map(lambda s: mutate(random.Random(s))))
@settings(max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hypothesis_shrinks_what_breaks(resolver, data: bytes) -> None:
    check(resolver, data)


@pytest.mark.parametrize("count", [pytest.param(300, id="short"),
                                   pytest.param(10_000, id="long", marks=pytest.mark.slow)])
def test_the_live_server_survives(tmp_path, count: int) -> None:
    home = Home(tmp_path / "home")
    fill(home)
    rng = random.Random(count)
    with fswl_serve(home.root, "dns") as port:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(LIVE_WAIT)
        try:
            for _ in range(count):
                data = mutate(rng)
                sock.sendto(data, ("127.0.0.1", port))
                try:
                    reply = sock.recv(65535)
                except socket.timeout:
                    continue  # garbage gets no answer at all
                if reply[:2] != data[:2]:
                    continue  # a late reply to an earlier packet
                if is_malformed(data):
                    assert len(reply) <= len(data)
                assert len(reply) <= EDNS_PAYLOAD
            # Still answering, and promptly.
            sock.settimeout(5)
            while True:  # drain late replies
                try:
                    sock.settimeout(0.2)
                    sock.recv(65535)
                except socket.timeout:
                    break
            sock.settimeout(5)
            query = dns.message.make_query(NAMES[0], "A")
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            reply = dns.message.from_wire(sock.recv(65535))
            assert reply.id == query.id and reply.answer[0][0].to_text() == "127.0.0.2"
        finally:
            sock.close()
