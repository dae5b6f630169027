"""What each name answers, shared by the responder and the exporters so they never differ."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dnslib import DNSRecord

from fswl.dns.settings import DnsSettings
from fswl.names import IPAddress

#: RFC 5782 section 5: these test points answer as if listed (exact) or not.
TEST_LISTED = frozenset({ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("::ffff:7f00:2")})
TEST_UNLISTED = frozenset({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::ffff:7f00:1")})
TEST_ANSWER = "127.0.0.2"
#: RFC 1035: one TXT character-string holds at most 255 octets; longer text is several.
TXT_CHUNK = 255
KIND_TEXT = {
    "exact": "sender {sender} listed via {network}",
    "domain": "senders {sender} listed via {network}",
    "relay": "relay {network} listed for every sender",
}


@dataclass(frozen=True)
class Soa:
    mname: str
    rname: str  #: in DNS form: hostmaster.wl.example.org
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


def soa(settings: DnsSettings, serial: int) -> Soa:
    """The zone's SOA; ``serial`` comes from the index (time of the last change)."""
    local, _, domain = settings.rname().partition("@")
    rname = local.replace(".", "\\.") + "." + domain
    return Soa(settings.ns_names()[0], rname, serial, settings.soa_refresh, settings.soa_retry,
               settings.soa_expire, settings.negative_ttl)


def reply_to(request: DNSRecord, aa: int = 1) -> DNSRecord:
    """An empty reply to ``request``: its ID, opcode, RD and question; never AD, CD, TC or RA.

    dnslib's reply() copies every flag of the query. An authority for an
    unsigned zone must not set AD (RFC 4035 3.1.6, RFC 6840 5.8), and CD is
    a resolver's request to its own upstream, not something to echo.
    """
    reply = request.reply(ra=0, aa=aa)
    header = reply.header
    header.ad = header.cd = header.tc = 0
    return reply


def listed_text(kind: str, sender: str, network: str) -> str:
    """The TXT beside a listed A record."""
    return KIND_TEXT[kind].format(sender=sender, network=network)


def txt_chunks(text: str) -> list[bytes]:
    """TXT data as its character-strings: the text's octets, 255 at a time (one empty string for "").

    Every writer of a TXT record (the responder's two paths, AXFR, the zone
    export) splits here, so they cannot differ; a reader joins the strings.
    """
    data = text.encode("utf-8", "surrogateescape")
    return [data[i:i + TXT_CHUNK] for i in range(0, len(data), TXT_CHUNK)] or [b""]


def test_point(address: IPAddress) -> bool | None:
    """True/False for an RFC 5782 test point (listed or not), None for any other address.

    Checked before IPv4-mapped addresses are folded into IPv4, so
    ::FFFF:7F00:2 is the IPv6 test point, not 127.0.0.2.
    """
    if address in TEST_LISTED:
        return True
    if address in TEST_UNLISTED:
        return False
    return None


def info_text(base_url: str) -> str:
    """TXT at the apex: what the zone is and where a sender asks to be listed."""
    return f"fswl sender whitelist; not listed? see {base_url.rstrip('/')}/why"
