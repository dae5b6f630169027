"""WhitelistResolver: a DNS request in, the reply out, answered from the index (no sockets here)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Callable

from dnslib import A, DNSRecord, EDNS0, NS, OPCODE, QTYPE, RCODE, RR, SOA, TXT, DNSLabel

from fswl.dns import answers
from fswl.dns.names import Question, is_reverse_prefix, mailbox_labels, parse_question
from fswl.dns.settings import DnsSettings
from fswl.index.memory import MemoryIndex
from fswl.names import ANY_SENDER, IPAddress
from fswl.store import Match

log = logging.getLogger(__name__)

#: The UDP payload fswl advertises and honours at most (DNS flag day 2020).
EDNS_PAYLOAD = 1232
#: Without EDNS0, RFC 1035's limit.
CLASSIC_PAYLOAD = 512


class WhitelistResolver:
    """Answers the names of DESIGN "The DNS names" for one zone."""

    def __init__(self, index: MemoryIndex, settings: DnsSettings, base_url: str,
                 record_hit: Callable[[str], None] | None = None,
                 on_miss: Callable[[str, IPAddress], None] | None = None) -> None:
        self.index = index
        self.settings = settings
        self.zone = DNSLabel(settings.zone)
        self.zone_labels = tuple(label.lower() for label in self.zone.label)
        self.record_hit = record_hit
        self.on_miss = on_miss if settings.challenge_on_miss else None
        self.info = answers.info_text(base_url)

    def resolve(self, request: DNSRecord, handler: object = None) -> DNSRecord:
        """The reply to one request (dnslib's resolver interface)."""
        reply = request.reply(ra=0, aa=1)
        reply.header.rd = request.header.rd
        if request.header.opcode != OPCODE.QUERY:
            reply.header.rcode = RCODE.NOTIMP
            reply.header.aa = 0
            return reply
        if len(request.questions) != 1:
            reply.header.rcode = RCODE.FORMERR
            reply.header.aa = 0
            return reply
        if request.q.qtype in (QTYPE.AXFR, QTYPE.IXFR):  # transfers are the TCP server's, to allowed peers only
            reply.header.rcode = RCODE.REFUSED
            reply.header.aa = 0
            return reply
        opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if opt is not None:
            if (opt.ttl >> 16) & 0xFF:  # EDNS version above 0
                reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD, ext_rcode=1))
                reply.header.rcode = RCODE.NOERROR  # BADVERS is 16: ext_rcode 1 and rcode 0
                return reply
            reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD))
        labels = request.q.qname.label
        width = len(self.zone_labels)
        if len(labels) < width or tuple(l.lower() for l in labels[len(labels) - width:]) != self.zone_labels:
            reply.header.rcode = RCODE.REFUSED
            reply.header.aa = 0
            return reply
        self._answer(reply, [label.lower() for label in labels[: len(labels) - width]], request.q.qtype)
        return reply

    def _answer(self, reply: DNSRecord, rel: list[bytes], qtype: int) -> None:
        qname = reply.q.qname
        if not rel:
            return self._apex(reply, qtype)
        question = parse_question(rel)
        if question is None:
            return self._nodata(reply) if self._is_ent(rel) else self._nxdomain(reply)
        point = answers.test_point(question.address)
        if point is not None:
            if point:
                return self._listed(reply, qtype, answers.TEST_ANSWER, "RFC 5782 test point")
            return self._nxdomain(reply)
        address = question.address
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        match = self._lookup(question, address)
        if match is not None:
            if self.record_hit is not None:
                self.record_hit(match.path)
            text = answers.listed_text(match.kind, match.sender, str(match.network))
            return self._listed(reply, qtype, match.answer, text)
        if question.sender is not None and self.on_miss is not None:
            self.on_miss(question.sender, address)
        if self._has_names_below(question, rel, address):
            return self._nodata(reply)
        log.debug("not listed: %s", qname)
        return self._nxdomain(reply)

    def _lookup(self, question: Question, address: IPAddress) -> Match | None:
        if question.hashed is not None:
            return self.index.lookup_hashed(question.hashed, address)
        return self.index.lookup(question.sender or ANY_SENDER, address)

    def _has_names_below(self, question: Question, rel: list[bytes], address: IPAddress) -> bool:
        """Empty non-terminal: a listed name lies below this unlisted one."""
        if question.hashed is not None:
            return False
        head = rel[: len(rel) - (4 if question.address.version == 4 else 32)]
        for sender in self.index.senders_at(address):
            labels = mailbox_labels(sender) if sender != ANY_SENDER else []
            if len(labels) > len(head) and [l.lower() for l in labels[len(labels) - len(head):]] == head:
                return True
        return False

    def _is_ent(self, rel: list[bytes]) -> bool:
        """A reversed-address prefix with a listed relay (or test point) below it."""
        if not is_reverse_prefix(rel):
            return False
        if rel[0].isdigit() and len(rel) < 4:
            octets = [int(label) for label in reversed(rel)]
            network = ipaddress.ip_network((bytes(octets + [0] * (4 - len(octets))), 8 * len(octets)))
        else:
            nibbles = "".join(label.decode() for label in reversed(rel))
            network = ipaddress.ip_network((int(nibbles.ljust(32, "0"), 16), 4 * len(nibbles)))
        if any(point.version == network.version and point in network for point in answers.TEST_LISTED | answers.TEST_UNLISTED):
            return True
        return self.index.has_levels_within(network)

    def _apex(self, reply: DNSRecord, qtype: int) -> None:
        qname = reply.q.qname
        if qtype in (QTYPE.SOA, QTYPE.ANY):
            reply.add_answer(self._soa_rr(self.settings.ttl))
        elif qtype == QTYPE.NS:
            for name in self.settings.ns_names():
                reply.add_answer(RR(qname, QTYPE.NS, ttl=self.settings.ttl, rdata=NS(name)))
        elif qtype == QTYPE.TXT:
            reply.add_answer(RR(qname, QTYPE.TXT, ttl=self.settings.ttl, rdata=TXT(self.info)))
        else:
            reply.add_auth(self._soa_rr(self.settings.negative_ttl))

    def _listed(self, reply: DNSRecord, qtype: int, value: str, text: str) -> None:
        qname = reply.q.qname
        ttl = self.settings.ttl
        if qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(qname, QTYPE.A, ttl=ttl, rdata=A(value)))
        elif qtype == QTYPE.TXT:
            reply.add_answer(RR(qname, QTYPE.TXT, ttl=ttl, rdata=TXT(text)))
        else:
            self._nodata(reply)

    def _nodata(self, reply: DNSRecord) -> None:
        reply.add_auth(self._soa_rr(self.settings.negative_ttl))

    def _nxdomain(self, reply: DNSRecord) -> None:
        reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(self._soa_rr(self.settings.negative_ttl))

    def _soa_rr(self, ttl: int) -> RR:
        soa = answers.soa(self.settings, self.index.serial)
        record = SOA(soa.mname, soa.rname, (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum))
        return RR(self.zone, QTYPE.SOA, ttl=ttl, rdata=record)
