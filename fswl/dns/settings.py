"""[dns] in fswl.toml: where the responder listens and what its zone says."""

from __future__ import annotations

from dataclasses import dataclass, field

from fswl import defaults
from fswl.dns.cache import CACHE_ENTRIES


@dataclass(frozen=True)
class DnsSettings:
    """[dns]: the responder and the zone it serves."""

    listen: str = defaults.DNS_LISTEN
    zone: str = defaults.ZONE
    #: TTL of A and TXT answers: short enough that a removal (a forgery
    #: report) is seen within the quarter hour.
    ttl: int = 900
    #: The SOA minimum: how long resolvers cache "not listed". Short, so a
    #: sender confirmed a minute ago passes on the sending MTA's retry.
    negative_ttl: int = 300
    #: NS names of the zone; default ns.<zone>.
    ns: tuple = field(default_factory=tuple)
    #: SOA RNAME as a mailbox; default hostmaster@<zone>.
    hostmaster: str = ""
    soa_refresh: int = 3600
    soa_retry: int = 600
    soa_expire: int = 604800
    #: Worker processes sharing the port with SO_REUSEPORT.
    workers: int = 1
    #: Answers per second per client /24 (/56 for IPv6); 0 switches limiting off.
    rrl_per_second: int = 0
    #: Addresses or networks allowed to transfer the zone (AXFR).
    axfr_allow: tuple = field(default_factory=tuple)
    #: Whether a miss on the mailbox form may start a verification. Off by
    #: default: a UDP query's source is trivially forged, so anyone could make
    #: fswl mail anyone; the policy service sees a real SMTP client instead.
    challenge_on_miss: bool = False
    #: UDP replies remembered for repeated questions (about 250 bytes each;
    #: emptied on any change to the list and every minute); 0 switches the
    #: cache off.
    reply_cache: int = CACHE_ENTRIES
    #: TCP connections held at once, in total and from one client address;
    #: over either, a new connection is closed at once. 0: no cap.
    tcp_connections: int = 1000
    tcp_connections_per_client: int = 50
    #: A TCP client that sends nothing for this long is dropped.
    tcp_idle_seconds: float = 10.0

    def ns_names(self) -> tuple[str, ...]:
        return tuple(self.ns) or (f"ns.{self.zone}",)

    def rname(self) -> str:
        return self.hostmaster or f"hostmaster@{self.zone}"
