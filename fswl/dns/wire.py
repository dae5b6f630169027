"""The hot path: the common query read and its reply written by hand, byte for byte as dnslib would.

Most queries a DNSWL sees have one shape: one question, QTYPE A, TXT or ANY,
class IN, maybe an EDNS0 OPT record, and an answer that is one A or TXT
record, or none with the SOA in the authority section. Parsing and packing
those with dnslib costs ~90 µs; by hand it costs a few. Anything else
(other opcodes or types, compression in the question, the apex, odd flags,
replies that would need truncating) returns None here and goes through
dnslib, which stays the reference: tests compare the two byte for byte.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from dnslib import DNSLabel

from fswl.dns import answers

if TYPE_CHECKING:
    from fswl.dns.resolver import WhitelistResolver

QTYPE_A = 1
QTYPE_TXT = 16
QTYPE_ANY = 255
QTYPE_OPT = 41
CLASS_IN = 1
HEADER_BYTES = 12
#: Counts of a plain query: one question, nothing else; or one OPT record.
_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_QTYPES = {b"\x00\x01\x00\x01": QTYPE_A, b"\x00\x10\x00\x01": QTYPE_TXT, b"\x00\xff\x00\x01": QTYPE_ANY}
#: SOA records remembered by the question's last labels (what compression depends on).
SOA_CACHE_SIZE = 4096
#: Pointer to the question name, right after the header.
_QNAME_POINTER = b"\xc0\x0c"


class FastPath:
    """Reads the common query and writes its reply for one resolver; None means "ask dnslib"."""

    def __init__(self, resolver: WhitelistResolver, edns_payload: int, classic_payload: int,
                 plain_ratio: int) -> None:
        self.resolver = resolver
        self.edns_payload = edns_payload
        self.classic_payload = classic_payload
        #: Without EDNS a reply is at most this many times the query (fswl.dns.resolver.PLAIN_UDP_RATIO).
        self.plain_ratio = plain_ratio
        settings = resolver.settings
        self.zone = tuple(DNSLabel(settings.zone).label)
        self.zone_lower = tuple(label.lower() for label in self.zone)
        self.width = len(self.zone)
        self.ttl = struct.pack("!I", settings.ttl)
        self.negative_ttl = struct.pack("!I", settings.negative_ttl)
        # The OPT record dnslib's EDNS0(udp_len=EDNS_PAYLOAD) packs to.
        self.opt = b"\x00\x00\x29" + struct.pack("!H", edns_payload) + b"\x00\x00\x00\x00\x00\x00"
        self.names = [tuple(DNSLabel(name).label) for name in (settings.zone, *self._soa_names())]
        self.suffix_limit = max(len(name) for name in self.names)
        self._soa_cache: dict[tuple, bytes] = {}

    def _soa_names(self) -> tuple[str, str]:
        soa = answers.soa(self.resolver.settings, 0)
        return soa.mname, soa.rname

    def answer(self, data: bytes, payload_limit: int | None = None) -> bytes | None:
        """The reply to ``data`` if it has the common shape, else None."""
        size = len(data)
        if size < 17 or data[2] & 0xFE or data[3] & 0xCF:
            return None  # a response, another opcode, AA/TC/RA/Z or rcode bits set
        counts = data[4:12]
        edns = counts == _COUNTS_EDNS
        if not edns and counts != _COUNTS_PLAIN:
            return None
        labels = []
        starts = []
        pos = HEADER_BYTES
        length = data[pos]
        while length:
            if length > 63:
                return None  # a pointer (compression) or a reserved label type
            end = pos + 1 + length
            starts.append(pos)
            labels.append(data[pos + 1:end])
            pos = end
            if pos >= size:
                return None
            length = data[pos]
        question_end = pos + 5
        if pos - HEADER_BYTES >= 255 or question_end > size:
            return None
        if not data[HEADER_BYTES:pos].isascii():
            return None  # dnslib refuses labels that are not UTF-8; let it say so
        qtype = _QTYPES.get(data[pos + 1:question_end])
        if qtype is None:
            return None
        if edns:
            limit = self._edns_limit(data, question_end, size)
            if limit is None:
                return None
        elif question_end != size:
            return None
        else:
            limit = min(self.classic_payload, self.plain_ratio * size)
        if payload_limit is not None:
            limit = payload_limit
        width = self.width
        count = len(labels)
        if count <= width:
            return None  # the apex (SOA, NS) or outside the zone
        rel = [label.lower() for label in labels[: count - width]]
        if tuple(label.lower() for label in labels[count - width:]) != self.zone_lower:
            return None
        decision = self.resolver.decide(rel, qtype)
        if decision is None:
            return None
        rcode, rtype, value = decision
        head = data[:2] + bytes((0x84 | (data[2] & 0x01), rcode))  # QR AA and the query's RD; never AD or CD
        question = data[HEADER_BYTES:question_end]
        if rtype == QTYPE_A:
            record = _QNAME_POINTER + b"\x00\x01\x00\x01" + self.ttl + b"\x00\x04" + _packed_ipv4(value)
            body = b"\x00\x01\x00\x01\x00\x00"
        elif rtype == QTYPE_TXT:
            text = value.encode("utf-8")
            if len(text) > answers.TXT_CHUNK:  # several character-strings, as every TXT writer splits them
                text = b"".join(bytes((len(chunk),)) + chunk for chunk in answers.txt_chunks(value))
            else:
                text = bytes((len(text),)) + text
            record = _QNAME_POINTER + b"\x00\x10\x00\x01" + self.ttl + struct.pack("!H", len(text)) + text
            body = b"\x00\x01\x00\x01\x00\x00"
        else:
            tail = starts[max(0, count - self.suffix_limit)]  # all the SOA's names could point into
            key = (data[tail:question_end], tail, self.resolver.index.serial)
            record = self._soa_cache.get(key)
            if record is None:
                record = self._soa_record(labels, question_end)
                if len(self._soa_cache) > SOA_CACHE_SIZE:
                    self._soa_cache.clear()
                self._soa_cache[key] = record
            body = b"\x00\x01\x00\x00\x00\x01"
        if edns:
            wire = head + body + b"\x00\x01" + question + record + self.opt
        else:
            wire = head + body + b"\x00\x00" + question + record
        if len(wire) > limit:
            return None  # dnslib truncates
        return wire

    def _edns_limit(self, data: bytes, start: int, size: int) -> int | None:
        """The payload an OPT record right after the question allows; None if it is not a plain one."""
        if start + 11 > size or data[start] != 0 or data[start + 1:start + 3] != b"\x00\x29":
            return None
        if data[start + 6]:
            return None  # EDNS version above 0: BADVERS, dnslib's
        (rdlength,) = struct.unpack_from("!H", data, start + 9)
        pos = start + 11
        end = pos + rdlength
        if end != size:
            return None
        while pos < end:  # options: each must be whole (a cookie from dig, say)
            if pos + 4 > end:
                return None
            (option_length,) = struct.unpack_from("!H", data, pos + 2)
            pos += 4 + option_length
        if pos != end:
            return None
        (payload,) = struct.unpack_from("!H", data, start + 3)
        return max(self.classic_payload, min(payload, self.edns_payload))

    def _soa_record(self, labels: list[bytes], question_end: int) -> bytes:
        """The SOA record of the authority section, compressed against the question as dnslib does."""
        # Only question suffixes that the SOA's own names could point at matter.
        count = len(labels)
        offsets = {}
        pos = HEADER_BYTES
        for i in range(count):
            if count - i <= self.suffix_limit:
                offsets[tuple(labels[i:])] = pos
            pos += 1 + len(labels[i])
        return self._pack_soa(offsets, question_end)

    def _pack_soa(self, names: dict[tuple, int], start: int) -> bytes:
        settings = self.resolver.settings
        soa = answers.soa(settings, self.resolver.index.serial)
        out = bytearray()
        _encode_name(out, self.names[0], names, start)
        out += b"\x00\x06\x00\x01" + self.negative_ttl + b"\x00\x00"
        rdata_start = len(out)
        _encode_name(out, self.names[1], names, start)
        _encode_name(out, self.names[2], names, start)
        out += struct.pack("!IIIII", soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum)
        struct.pack_into("!H", out, rdata_start - 2, len(out) - rdata_start)
        return bytes(out)


def _encode_name(out: bytearray, labels: tuple, names: dict[tuple, int], start: int) -> None:
    """dnslib's DNSBuffer.encode_name: exact-case suffix compression, new suffixes remembered."""
    labels = list(labels)
    while labels:
        key = tuple(labels)
        if key in names:
            out += struct.pack("!H", 0xC000 | names[key])
            return
        names[key] = start + len(out)
        label = labels.pop(0)
        out.append(len(label))
        out += label
    out.append(0)


_PACKED: dict[str, bytes] = {}


def _packed_ipv4(text: str) -> bytes:
    packed = _PACKED.get(text)
    if packed is None:
        packed = _PACKED[text] = bytes(int(part) for part in text.split("."))
    return packed
