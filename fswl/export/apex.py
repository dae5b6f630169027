"""What both export formats say at the zone's apex, computed once: SOA, NS, TTL, the info TXT, the notice.

The zone transfer (fswl.dns.transfer) says the same in dnslib records.
"""

from __future__ import annotations

from dataclasses import dataclass

from fswl.dns import answers
from fswl.dns.settings import DnsSettings

#: The first line of every export (after the format's comment sign).
NOTICE = "fswl export of the sender whitelist; mailbox names are private: serve to secondaries only"


@dataclass(frozen=True)
class Apex:
    """The zone's own records, as [dns] in fswl.toml and the serial make them."""

    zone: str
    ttl: int
    soa: answers.Soa
    ns: tuple[str, ...]
    #: TXT at the apex: what the zone is and where a sender asks to be listed.
    info: str

    @classmethod
    def of(cls, settings: DnsSettings, serial: int, base_url: str) -> Apex:
        return cls(settings.zone, settings.ttl, answers.soa(settings, serial), settings.ns_names(),
                   answers.info_text(base_url))
