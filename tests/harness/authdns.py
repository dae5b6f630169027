"""A tiny authoritative DNS server (dnslib) on a loopback port, serving a zone the test can change."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import DNSLogger, DNSServer

#: Ports tried for one free on both UDP and TCP.
BIND_ATTEMPTS = 20


class ZoneResolver:
    """Answers from master-file text: NXDOMAIN for unknown names, NODATA for other types.

    Names in ``slow`` are answered after ``delay`` seconds (a name server that times out).
    """

    def __init__(self, zone: str, slow: tuple[str, ...] = (), delay: float = 3.0) -> None:
        self.lock = threading.Lock()
        self.load(zone)
        self.slow = {DNSLabel(name) for name in slow}
        self.delay = delay
        self.queries: list[tuple[str, str]] = []

    def load(self, zone: str) -> None:
        records = RR.fromZone(zone)
        with self.lock:
            self.records = records

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        self.queries.append((str(qname), qtype))
        if qname in self.slow:
            time.sleep(self.delay)
        with self.lock:
            named = [rr for rr in self.records if rr.rname == qname]
        if not named:
            reply.header.rcode = RCODE.NXDOMAIN
        for rr in named:
            if QTYPE[rr.rtype] == qtype:
                reply.add_answer(rr)
        return reply


@contextmanager
def authoritative_dns(resolver: ZoneResolver) -> Iterator[int]:
    """Serve ``resolver`` on 127.0.0.1 over UDP and TCP (same port); yield the port."""
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data")
    for _attempt in range(BIND_ATTEMPTS):
        udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet)
            break
        except OSError:  # the kernel's free UDP port is taken on TCP: pick another
            udp.server.server_close()
    else:
        raise OSError(f"no port free on both UDP and TCP after {BIND_ATTEMPTS} attempts")
    udp.start_thread()
    tcp.start_thread()
    try:
        yield port
    finally:
        for server in (udp, tcp):
            server.stop()
            server.server.server_close()
