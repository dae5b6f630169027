"""WhitelistResolver: a DNS request in, the reply out, answered from the index (no sockets here)."""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Callable

from dnslib import A, DNSRecord, EDNS0, NS, OPCODE, QTYPE, RCODE, RR, SOA, TXT, DNSLabel

from fswl.dns import answers
from fswl.dns.names import Question, mailbox_labels, parse_question, reverse_prefix_networks, split_reverse
from fswl.dns.settings import DnsSettings
from fswl.dns.wire import FastPath
from fswl.index.memory import MemoryIndex, unpack_names
from fswl.errors import BadSender
from fswl.names import ANY_SENDER, IPAddress, parse_sender, sender_kind
from fswl.store import Match
from fswl.constants import ANSWERS

log = logging.getLogger(__name__)

#: The UDP payload fswl advertises and honours at most (DNS flag day 2020).
EDNS_PAYLOAD = 1232
#: Without EDNS0, RFC 1035's limit.
CLASSIC_PAYLOAD = 512
#: Without EDNS0 a UDP reply is at most this many times its query's size, else TC=1 (and TCP). A plain
#: query has no cookie and nothing else to show its source is real: what a forged one gets back stays small.
PLAIN_UDP_RATIO = 3
NOERROR = RCODE.NOERROR
# Plain ints for the hot path: every QTYPE.X is a Python-level __getattr__ call in dnslib.
_QTYPE_A, _QTYPE_TXT, _QTYPE_ANY = int(QTYPE.A), int(QTYPE.TXT), int(QTYPE.ANY)
#: Decisions with no answer record (the SOA goes in the authority section).
NODATA = (RCODE.NOERROR, 0, "")
NXDOMAIN_NONE = (RCODE.NXDOMAIN, 0, "")
#: Local parts the IPv4 fast path takes as they are (parse_sender would not change them).
_SAFE_LOCAL = re.compile(rb"[a-z0-9!#$&'*+=?^_`{|}~.-]+")
_DOMAIN = re.compile(rb"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*")
#: The reversed-address labels the shortcut reads: "0" to "255", as parse_reverse accepts them.
_OCTETS = {str(octet).encode(): octet for octet in range(256)}
#: Longer senders go the general way (parse_sender's length limits).
_SAFE_SENDER_CHARS = 200


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
        #: The hand-written reader and writer of the common query (fswl.dns.wire).
        self.fast = FastPath(self, EDNS_PAYLOAD, CLASSIC_PAYLOAD, PLAIN_UDP_RATIO)
        #: Whether decide() may take the IPv4 shortcut (tests switch it off to compare).
        self.shortcuts = True

    def resolve(self, request: DNSRecord, handler: object = None) -> DNSRecord:
        """The reply to one request (dnslib's resolver interface)."""
        reply = answers.reply_to(request)
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
        decision = self.decide(rel, qtype)
        if decision is None:
            return self._apex(reply, qtype)
        rcode, rtype, value = decision
        reply.header.rcode = rcode
        if rtype == QTYPE.A:
            reply.add_answer(RR(reply.q.qname, QTYPE.A, ttl=self.settings.ttl, rdata=A(value)))
        elif rtype == QTYPE.TXT:
            text = TXT(answers.txt_chunks(value))
            reply.add_answer(RR(reply.q.qname, QTYPE.TXT, ttl=self.settings.ttl, rdata=text))
        else:
            reply.add_auth(self._soa_rr(self.settings.negative_ttl))

    def decide(self, rel: list[bytes], qtype: int) -> tuple[int, int, str] | None:
        """What a name below the apex answers: (rcode, QTYPE.A/TXT or 0 for none, value).

        ``rel`` is the lowercased labels below the apex; None means the apex
        itself (SOA, NS, TXT there). Both the dnslib reply and the hand-built
        one (fswl.dns.wire) are made from this, so they cannot differ in what
        they say, only in how it is encoded.
        """
        if not rel:
            return None
        fast = self._decide_ipv4(rel, qtype) if self.shortcuts else None
        if fast is not None:
            return fast
        question = parse_question(rel)
        if question is None:
            return NODATA if self._is_ent(rel) else NXDOMAIN_NONE
        point = answers.test_point(question.address)
        if point is not None:
            if point:
                return self._listed(qtype, answers.TEST_ANSWER, "RFC 5782 test point")
            return NXDOMAIN_NONE
        address = question.address
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        match = self._lookup(question, address)
        if match is not None:
            if self.record_hit is not None:
                self.record_hit(match.path)
            text = answers.listed_text(match.kind, match.sender, str(match.network)) if qtype == QTYPE.TXT else ""
            return self._listed(qtype, match.answer, text)
        if question.sender is not None and self.on_miss is not None:
            self.on_miss(question.sender, address)
        if self._has_names_below(question, rel, address):
            return NODATA
        return NXDOMAIN_NONE

    def _decide_ipv4(self, rel: list[bytes], qtype: int) -> tuple[int, int, str] | None:
        """The common shapes, without building objects: relay-wide and mailbox names of IPv4 relays.

        Returns None for anything else (hashed form, test points, odd
        senders, misses that may be empty non-terminals), which the general
        path then answers; so this may only ever agree with it.
        """
        count = len(rel)
        if count != 4 and not 6 <= count < 32:
            return None
        value = 0
        for label in rel[-1:-5:-1]:  # first octet is the rightmost label
            octet = _OCTETS.get(label)  # only canonical decimal octets: no "007", no "256"
            if octet is None:
                return None
            value = value << 8 | octet
        if value >> 24 == 127:
            return None  # test points live here
        if count == 4:
            sender = ANY_SENDER
        else:
            local = rel[0]
            domain = rel[1:-4]
            joined = b".".join(domain)  # as the general path joins them (an escaped dot reads the same)
            if not _SAFE_LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(joined):
                return None
            if len(local) == 1 and len(joined) == 2 * len(domain) - 1:
                return None  # single-character labels throughout: the general path reads an IPv6 prefix
            sender = (local + b"@" + joined).decode("ascii")
            if len(sender) > _SAFE_SENDER_CHARS:
                return None
        levels = self.index.levels_int(4, value)
        found = self.index.find(sender, levels)
        if found is None:
            listed_near = any(self.index.entries.get(directory) for _plen, _net, directory in levels)
            if listed_near and count != 4 and b"." in rel[0]:
                return None  # the general path splits dotted local parts
            if sender != ANY_SENDER and self.on_miss is not None:
                self.on_miss(sender, ipaddress.IPv4Address(value))
            if listed_near and (count == 4 or self._names_below(".".join(l.decode("ascii") for l in rel[:-4]), levels)):
                return NODATA  # an empty non-terminal: listed mailbox names lie below it
            return NXDOMAIN_NONE
        matched, plen, network_int, directory = found
        if self.record_hit is not None:
            self.record_hit(self.index.entry_path(directory, matched))
        kind = sender_kind(matched)
        text = ""
        if qtype == _QTYPE_TXT:
            text = answers.listed_text(kind, matched, str(ipaddress.IPv4Network((network_int, plen))))
        return self._listed(qtype, ANSWERS[kind], text)

    def _lookup(self, question: Question, address: IPAddress) -> Match | None:
        if question.hashed is not None:
            return self.index.lookup_hashed(question.hashed, address)
        return self.index.lookup(question.sender or ANY_SENDER, address)

    def _names_below(self, head: str, levels: list[tuple[int, int, str]]) -> bool:
        """:meth:`_has_names_below` for a dot-free mailbox name ``head`` (``local.domain``).

        A listed mailbox name lies below it when some entry's domain is
        ``head`` or ends with ``.head``: then ``head``'s labels are a proper
        suffix of that entry's labels.
        """
        suffix = "." + head
        entries = self.index.entries
        for _plen, _net, directory in levels:
            for name in unpack_names(entries.get(directory, "")):
                domain = name.rpartition("@")[2]  # a domain is never escaped in a file name
                if name != ANY_SENDER and (domain == head or domain.endswith(suffix)):
                    return True
        return False

    def _has_names_below(self, question: Question, rel: list[bytes], address: IPAddress) -> bool:
        """Empty non-terminal: a listed name lies below this unlisted one."""
        head = rel[: len(rel) - (4 if question.address.version == 4 else 32)]
        return self._names_below_head(head, address)

    def _names_below_head(self, head: list[bytes], address: IPAddress) -> bool:
        """True if some listed mailbox name at ``address`` ends with the labels ``head`` (and is longer).

        With ``*`` listed every sender's name answers 127.0.0.4, so a name
        with a sender below it (``edu``: ``x.edu``) exists too; the exports'
        wildcard has such names as well.
        """
        for sender in self.index.senders_at(address):
            if sender == ANY_SENDER:
                if len(head) == 1 and _could_be_domain(head[0]):
                    return True
                continue
            labels = mailbox_labels(sender)
            if len(labels) > len(head) and [l.lower() for l in labels[len(labels) - len(head):]] == head:
                return True
        return False

    def _is_ent(self, rel: list[bytes]) -> bool:
        """An empty non-terminal that is no question: a reversed-address prefix with a listed relay
        (or test point) below it, or a label below a relay that ends listed names (``edu.<rev-ip>``)."""
        for network in reverse_prefix_networks(rel):  # 8.b.d.0.1.0.0.2 is also a label below 2.0.0.1
            if any(point.version == network.version and point in network
                   for point in answers.TEST_LISTED | answers.TEST_UNLISTED):
                return True
            if self.index.has_levels_within(network):
                return True
        split = split_reverse(rel)
        if split is None or len(split[0]) != 1:
            return False
        head, address = split
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return self._names_below_head(head, address)

    def _apex(self, reply: DNSRecord, qtype: int) -> None:
        qname = reply.q.qname
        if qtype in (QTYPE.SOA, QTYPE.ANY):
            reply.add_answer(self._soa_rr(self.settings.ttl))
        elif qtype == QTYPE.NS:
            for name in self.settings.ns_names():
                reply.add_answer(RR(qname, QTYPE.NS, ttl=self.settings.ttl, rdata=NS(name)))
        elif qtype == QTYPE.TXT:
            text = TXT(answers.txt_chunks(self.info))
            reply.add_answer(RR(qname, QTYPE.TXT, ttl=self.settings.ttl, rdata=text))
        else:
            reply.add_auth(self._soa_rr(self.settings.negative_ttl))

    def _listed(self, qtype: int, value: str, text: str) -> tuple[int, int, str]:
        if qtype == _QTYPE_A or qtype == _QTYPE_ANY:
            return (NOERROR, _QTYPE_A, value)
        if qtype == _QTYPE_TXT:
            return (NOERROR, _QTYPE_TXT, text)
        return NODATA

    def _soa_rr(self, ttl: int) -> RR:
        soa = answers.soa(self.settings, self.index.serial)
        record = SOA(soa.mname, soa.rname, (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum))
        return RR(self.zone, QTYPE.SOA, ttl=ttl, rdata=record)


def _could_be_domain(label: bytes) -> bool:
    """True if ``label`` ends some sender's domain, so names like ``x.<label>`` are mailbox names."""
    try:
        parse_sender("postmaster@" + label.decode("ascii"))
    except (BadSender, UnicodeError):
        return False
    return True
