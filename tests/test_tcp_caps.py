"""Held TCP connections are capped per client address and in total, for DNS and for the policy service."""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path
from typing import Callable

import dns.exception
import dns.message
import dns.query
import pytest

from fswl.app.home import Home
from tests.harness import flood
from tests.harness.dnsd import fswl_serve
from tests.shell import wait_for

ZONE = "wl.example.org"
LISTED = f"dave.umkc.edu.63.134.129.57.{ZONE}"
REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=57.129.134.63\n"
           b"sender=dave@umkc.edu\nrecipient=someone@receiver.example\n\n")
#: The good client's address; the flood comes from 127.0.1.1 on (tests/harness/flood.py).
GOOD = "127.0.0.1"


def make_home(root: Path, service: str, total: int, per_client: int) -> Home:
    home = Home(root)
    home.whitelist.add("dave@umkc.edu", "57.129.134.63")
    if service == "dns":
        table = f"[dns]\nzone = \"{ZONE}\"\ntcp_connections = {total}\ntcp_connections_per_client = {per_client}\n" \
                "tcp_idle_seconds = 120\n"
    else:
        table = f"[policy]\nconnections = {total}\nconnections_per_client = {per_client}\n"
    home.config_path.write_text(table)
    return home


def good_tcp(service: str, port: int) -> Callable[[], bool]:
    """One good question over a new TCP connection from GOOD: True if answered as it should be."""
    def dns_query() -> bool:
        reply = dns.query.tcp(dns.message.make_query(LISTED, "A"), "127.0.0.1", port=port, timeout=5, source=GOOD)
        return [rr.to_text() for rrset in reply.answer for rr in rrset] == ["127.0.0.2"]

    def policy_request() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(GOOD, 0)) as conn:
            conn.sendall(REQUEST)
            data = b""
            while not data.endswith(b"\n\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return False
                data += chunk
        return data == b"action=DUNNO\n\n"

    return dns_query if service == "dns" else policy_request


def answered(ask: Callable[[], bool]) -> bool:
    try:
        return ask()
    except (OSError, EOFError, dns.exception.DNSException):
        return False


@pytest.mark.parametrize("service", ["dns", "policy"])
def test_connections_over_the_caps_are_closed_at_once_and_logged_once(tmp_path: Path, service: str) -> None:
    home = make_home(tmp_path / "home", service, total=8, per_client=3)
    log: list[str] = []
    with fswl_serve(home.root, service, log=log) as port:
        ask = good_tcp(service, port)
        one = flood.hold(port, per_source=5, sources=1)  # 3 held, 2 over the per-client cap
        try:
            assert len(flood.wait_closed(one, 2)) == 2
            others = flood.hold(port, per_source=3, sources=2, first_source=1)  # 3 + 6: one over the total
            assert len(flood.wait_closed(others, 1)) == 1
            time.sleep(0.5)
            assert len(flood.closed_by_server(one)) == 2 and len(flood.closed_by_server(others)) == 1  # the rest held
            assert not answered(ask)  # 8 held: the total is full for everyone
            flood.release(one)
            assert wait_for(lambda: answered(ask), seconds=10)  # room again: a good client gets in
        finally:
            flood.release(one)
            flood.release(others)
        assert wait_for(lambda: any("closed a new connection" in line for line in log), seconds=5)
    refusals = [line for line in log if "new connection" in line]
    assert len(refusals) == 1, "".join(refusals)  # four refusals, one line (the count follows a minute later)
    assert "the most per client (3)" in refusals[0] and "logged once per 60 s" in refusals[0]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(service: str, port: int, ask: Callable[[], bool]) -> dict[str, list[float]]:
    """Latencies of good questions: 200 over a new TCP connection each, and for DNS 1,000 over UDP."""
    times: dict[str, list[float]] = {"TCP": []}
    for _ in range(200):
        t0 = time.perf_counter()
        assert ask()
        times["TCP"].append(time.perf_counter() - t0)
    if service == "dns":
        times["UDP"] = []
        query = dns.message.make_query(LISTED, "A")
        for _ in range(1000):
            t0 = time.perf_counter()
            assert dns.query.udp(query, "127.0.0.1", port=port, timeout=5).answer
            times["UDP"].append(time.perf_counter() - t0)
    return times


def summary(times: dict[str, list[float]]) -> str:
    return ", ".join(f"{kind} p50 {statistics.median(values) * 1000:.2f} ms p99 {percentile(values, .99) * 1000:.2f} ms"
                     for kind, values in times.items())


@pytest.mark.slow
@pytest.mark.parametrize("service", ["dns", "policy"])
def test_good_queries_keep_their_latency_while_5000_connections_are_held(tmp_path: Path, service: str) -> None:
    """5,000 held connections (100 addresses x 50), each address one over its cap; good clients still answered."""
    per_client = 50
    wanted = flood.affordable(5000) // per_client * per_client
    sources = wanted // per_client
    assert sources >= 10, "the open-files hard limit is too low for this test"
    home = make_home(tmp_path / "home", service, total=wanted + 100, per_client=per_client)
    log: list[str] = []
    with fswl_serve(home.root, service, log=log) as port:
        ask = good_tcp(service, port)
        alone = measure(service, port, ask)
        started = time.monotonic()
        held = flood.hold(port, per_source=per_client + 1, sources=sources)
        opened = time.monotonic() - started
        try:
            closed = flood.wait_closed(held, sources, seconds=60)
            assert len(closed) == sources  # exactly one per address: over its cap of 50
            during = measure(service, port, ask)
            time.sleep(0.2)
            still = len(held) - len(flood.closed_by_server(held))
        finally:
            flood.release(held)
    print(f"\n{service}: {still} connections held ({sources} addresses x {per_client}; {sources} more, one per "
          f"address over its cap, closed at once), opened in {opened:.1f} s\n"
          f"  good queries alone:   {summary(alone)}\n  good queries while held: {summary(during)}")
    assert still == wanted
    assert all(percentile(values, 0.99) < 1.0 for values in during.values())  # loose: a loaded CI machine
    assert len([line for line in log if "new connection" in line]) == 1
