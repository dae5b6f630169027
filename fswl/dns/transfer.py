"""AXFR: the zone to configured secondaries, REFUSED to everyone else (mailbox names are private).

The records are exactly those of `fswl export --format zone` (fswl.export):
SOA, NS and TXT at the apex, then one A and one TXT per name fswl answers
positively, with wildcards where a prefix lists a relay for every sender.
A secondary (NSD, Knot, BIND) loaded this way answers as fswl does, except
for what a zone cannot say (docs/exports.md, "Differences"); the export's
differential test holds for the transfer too.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Callable, Iterator

from dnslib import A, NS, QTYPE, RCODE, RR, TXT, DNSLabel, DNSRecord

from fswl.dns import answers
from fswl.dns.settings import DnsSettings
from fswl.errors import BadInput
from fswl.export.names import ExportNames
from fswl.export.zone import TXT_CHUNK
from fswl.store.tree import Tree

log = logging.getLogger(__name__)

#: Records per AXFR message; keeps each well under the 64 KiB TCP limit.
RECORDS_PER_MESSAGE = 200


class ZoneTransfer:
    """Answers AXFR requests for one zone from one db/."""

    def __init__(self, tree: Tree, settings: DnsSettings, base_url: str, serial: Callable[[], int]) -> None:
        self.tree = tree
        self.settings = settings
        self.base_url = base_url
        self.serial = serial
        self.zone = DNSLabel(settings.zone)
        try:
            self.allowed = [ipaddress.ip_network(str(item), strict=False) for item in settings.axfr_allow]
        except ValueError as exc:
            raise BadInput(f"[dns] axfr_allow: {exc}; list addresses or networks, e.g. [\"192.0.2.53\"]") from exc

    def allows(self, host: str) -> bool:
        """Whether ``host`` (a peer address) may transfer the zone."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.allowed)

    def messages(self, request: DNSRecord, host: str) -> Iterator[bytes]:
        """The wire messages answering an AXFR ``request`` from ``host``: the zone, or one REFUSED."""
        if not self.allows(host) or request.q.qname != self.zone:
            log.warning("AXFR of %s refused to %s", request.q.qname, host)
            yield _rcode(request, RCODE.NOTAUTH if self.allows(host) else RCODE.REFUSED)
            return
        log.warning("AXFR of %s to %s", self.zone, host)
        soa = self._soa()
        batch: list[RR] = [soa]
        for record in self._records():
            batch.append(record)
            if len(batch) >= RECORDS_PER_MESSAGE:
                yield self._message(request, batch)
                batch = []
        batch.append(soa)
        yield self._message(request, batch)

    def _records(self) -> Iterator[RR]:
        ttl = self.settings.ttl
        for ns in self.settings.ns_names():
            yield RR(self.zone, QTYPE.NS, ttl=ttl, rdata=NS(ns))
        yield RR(self.zone, QTYPE.TXT, ttl=ttl, rdata=_txt(answers.info_text(self.base_url)))
        names = ExportNames(self.tree, self.settings)
        for line in names.skipped:
            log.warning("AXFR leaves out %s", line)
        for record in names.records():
            owner = DNSLabel(list(record.owner) + list(self.zone.label))
            yield RR(owner, QTYPE.A, ttl=ttl, rdata=A(record.value))
            yield RR(owner, QTYPE.TXT, ttl=ttl, rdata=_txt(record.text))

    def _soa(self) -> RR:
        from dnslib import SOA

        soa = answers.soa(self.settings, self.serial())
        rdata = SOA(soa.mname, soa.rname, (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum))
        return RR(self.zone, QTYPE.SOA, ttl=self.settings.ttl, rdata=rdata)

    def _message(self, request: DNSRecord, records: list[RR]) -> bytes:
        reply = request.reply(ra=0, aa=1)
        reply.rr = list(records)
        return reply.pack()


def _txt(text: str) -> TXT:
    data = text.encode("utf-8", "surrogateescape")
    return TXT([data[i:i + TXT_CHUNK] for i in range(0, len(data), TXT_CHUNK)] or [b""])


def _rcode(request: DNSRecord, rcode: int) -> bytes:
    reply = request.reply(ra=0, aa=0)
    reply.header.rcode = rcode
    return reply.pack()
