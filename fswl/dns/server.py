"""The DNS responder's sockets: UDP and TCP on asyncio, never larger than asked, never a crash."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import threading
from typing import TYPE_CHECKING

from dnslib import DNSError, DNSLabelError, DNSRecord, QTYPE, RCODE

from fswl.util.connections import ConnectionCap
from fswl.dns.answers import reply_to
from fswl.dns.cache import CACHE_ENTRIES, ReplyCache
from fswl.dns.datagrams import open_datagrams
from fswl.dns.ratelimit import RateLimiter
from fswl.dns.resolver import CLASSIC_PAYLOAD, EDNS_PAYLOAD, PLAIN_UDP_RATIO, WhitelistResolver
from fswl.dns.settings import DnsSettings

if TYPE_CHECKING:
    from fswl.dns.transfer import ZoneTransfer

log = logging.getLogger(__name__)

#: Header bytes of a DNS message: the least a FORMERR reply needs.
HEADER_BYTES = 12
#: With port 0, tries at a port free for both UDP and TCP.
PORT_ATTEMPTS = 20
#: Connections the kernel queues for accept(); a burst beyond the default 100 would wait out SYN retries.
TCP_BACKLOG = 1024
#: TCP messages are at most this long (RFC 1035 length prefix).
MAX_TCP_MESSAGE = 65535
#: Longer UDP queries are answered afresh each time (no real question is this long; junk must not fill the cache).
CACHED_QUERY_BYTES = 300
#: Replies worth remembering: NOERROR and NXDOMAIN, not FORMERR/SERVFAIL/REFUSED to junk.
_CACHED_RCODES = (0, 3)


def answer_datagram(resolver: WhitelistResolver, data: bytes, payload_limit: int | None = None) -> bytes | None:
    """The wire reply to one query packet, or None when there is nothing safe to say.

    Garbage gets no reply; a packet with a readable header but a bad body gets
    a bare FORMERR header, never longer than what was sent. Replies that do
    not fit the client's payload (its EDNS0 size up to 1232; without EDNS0,
    512 and at most PLAIN_UDP_RATIO times the query) go out truncated
    (TC=1), so the client retries over TCP or with EDNS0.
    """
    fast = getattr(resolver, "fast", None)
    if fast is not None:
        try:
            wire = fast.answer(data, payload_limit)
        except Exception:  # the general path below answers, or reports, whatever this trips on
            log.debug("fast path failed", exc_info=True)
            wire = None
        if wire is not None:
            return wire
    try:
        request = DNSRecord.parse(data)
    except (DNSError, ValueError, IndexError, struct.error, UnicodeError):
        return _formerr(data)
    except Exception:  # dnslib tripping on bytes nobody foresaw: still a FORMERR, never a crash
        log.debug("dnslib could not parse %d bytes", len(data), exc_info=True)
        return _formerr(data)
    if request.header.qr:
        return None  # a response: answering it could loop two servers
    try:
        reply = resolver.resolve(request)
        wire = bytes(reply.pack())
    except (DNSError, DNSLabelError):  # e.g. a name over 255 octets: dnslib reads it but will not write it
        return _formerr(data)
    except Exception:  # fail safe: one odd question must not take the responder down
        log.exception("resolving %s failed", request.q.qname if request.questions else "?")
        return _formerr(data, RCODE.SERVFAIL)
    limit = payload_limit or _payload_limit(request, len(data))
    if len(wire) > limit:
        reply.rr, reply.auth = [], []
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        reply.header.tc = 1
        wire = bytes(reply.pack())
    return wire


def _payload_limit(request: DNSRecord, query_bytes: int) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(CLASSIC_PAYLOAD, min(rr.rclass, EDNS_PAYLOAD))
    return min(CLASSIC_PAYLOAD, PLAIN_UDP_RATIO * query_bytes)


def _formerr(data: bytes, rcode: int = RCODE.FORMERR) -> bytes | None:
    if len(data) < HEADER_BYTES or data[2] & 0x80:
        return None
    flags = ((data[2] & 0x79) | 0x80) << 8 | rcode  # QR set, opcode and RD kept, AA/TC cleared
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


class _UdpLoop:
    """One thread answering one UDP socket with blocking calls, a batch of datagrams at a time.

    A plain blocking loop costs a few µs per query where an asyncio datagram
    protocol costs several times that, and the lookups are memory only, so
    nothing here ever waits on anything but the socket (fswl.dns.datagrams).
    """

    def __init__(self, sock: socket.socket, resolver: WhitelistResolver, limiter: RateLimiter | None,
                 cache_size: int) -> None:
        self.sock = sock
        self.resolver = resolver
        self.limiter = limiter
        self.cache_size = cache_size
        self.datagrams = open_datagrams(sock)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="fswl-dns-udp", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked receive (ENOTCONN is expected)
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        # Everything the loop touches is a local: attribute and global lookups cost per packet.
        resolver, limiter = self.resolver, self.limiter
        index = resolver.index
        cache = ReplyCache(index, self.cache_size, answers_only=resolver.on_miss is not None)
        current, remember = cache.current, cache.put
        longest_cached = CACHED_QUERY_BYTES if self.cache_size > 0 else 0
        answer = answer_datagram
        datagrams = self.datagrams
        receive, source, host, send = datagrams.receive, datagrams.source, datagrams.host, datagrams.send
        while not self.stopping:
            replies = []
            queries = receive()
            known_replies = current()  # one freshness check per batch (microseconds of datagrams)
            for i, data in enumerate(queries):
                if limiter is not None and not limiter.allow(source(i)):
                    continue
                try:
                    key = data[2:] if HEADER_BYTES < len(data) <= longest_cached else None
                    if key is not None:
                        known = known_replies.get(key)
                        if known is not None:
                            replies.append((i, data[:2] + known))
                            continue
                    generation = index.generation
                    wire = answer(resolver, data)
                    if wire is not None:
                        replies.append((i, wire))
                        if key is not None and (wire[3] & 0x0F) in _CACHED_RCODES:
                            remember(key, wire[2:], generation)
                except Exception:  # never let one packet end the loop
                    log.exception("udp: answering %d bytes from %s failed", len(data), host(i))
            if replies:
                try:
                    send(replies)
                except Exception:  # never let one batch end the loop
                    log.exception("udp: sending %d replies failed", len(replies))


class DnsServer:
    """UDP and TCP listeners on one address, sharing one resolver."""

    def __init__(self, resolver: WhitelistResolver, host: str, port: int, rrl_per_second: int = 0,
                 reuse_port: bool = False, transfer: ZoneTransfer | None = None,
                 reply_cache: int = CACHE_ENTRIES, tcp_cap: ConnectionCap | None = None,
                 tcp_idle_seconds: float = DnsSettings.tcp_idle_seconds) -> None:
        self.resolver = resolver
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.limiter = RateLimiter(rrl_per_second) if rrl_per_second else None
        self.transfer = transfer
        self.reply_cache = reply_cache
        #: Held TCP connections, per client and in total ([dns] tcp_connections...).
        self.tcp_cap = tcp_cap or ConnectionCap("dns", DnsSettings.tcp_connections,
                                                DnsSettings.tcp_connections_per_client)
        self.tcp_idle_seconds = tcp_idle_seconds
        self._udp: _UdpLoop | None = None
        self._tcp: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        wanted = self.port
        self.tcp_cap.reserve_descriptors()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            if self.reuse_port:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                udp.bind((self.host, wanted))
                self.port = udp.getsockname()[1]  # port 0: the kernel's choice, shared with TCP
                self._tcp = await asyncio.start_server(self.tcp_cap.wrap(self._serve_tcp), self.host, self.port,
                                                       reuse_address=True, reuse_port=self.reuse_port or None,
                                                       backlog=TCP_BACKLOG)
            except OSError as exc:
                udp.close()
                # The kernel's free UDP port can be taken on TCP: with port 0, ask for another.
                if wanted or exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS:
                    raise
                continue
            break
        self._udp = _UdpLoop(udp, self.resolver, self.limiter, self.reply_cache)
        self._udp.start()

    async def stop(self) -> None:
        if self._udp is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._udp.stop)
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        self.tcp_cap.close()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        idle = self.tcp_idle_seconds
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), idle)
                (length,) = struct.unpack("!H", prefix)
                data = await asyncio.wait_for(reader.readexactly(length), idle)
                request = _transfer_request(data)
                if request is not None:
                    await self._transfer(request, peer[0], writer)
                    continue
                wire = answer_datagram(self.resolver, data, payload_limit=MAX_TCP_MESSAGE)
                if wire is not None:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _transfer(self, request: DNSRecord, host: str, writer: asyncio.StreamWriter) -> None:
        """Answer a zone transfer request: the zone to an allowed secondary, else one refusal."""
        if self.transfer is None or request.q.qtype != QTYPE.AXFR:
            refusal = _refused(request)  # IXFR too: fswl keeps no history to diff
        else:
            refusal = self.transfer.refusal(request, host)
        if refusal is not None:
            writer.write(_framed(refusal))
            await writer.drain()
            return
        await self.transfer.stream(request, host, writer)


def _transfer_request(data: bytes) -> DNSRecord | None:
    """The parsed request if ``data`` asks for a zone transfer (AXFR or IXFR), else None."""
    if len(data) <= HEADER_BYTES or data[2] & 0x80:
        return None
    try:
        request = DNSRecord.parse(data)
    except (DNSError, ValueError, IndexError, struct.error, UnicodeError):
        return None
    if len(request.questions) == 1 and request.q.qtype in (QTYPE.AXFR, QTYPE.IXFR):
        return request
    return None


def _framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def _refused(request: DNSRecord) -> bytes:
    reply = reply_to(request, aa=0)
    reply.header.rcode = RCODE.REFUSED
    return reply.pack()
