"""Who is never challenged: odd, VERP/tagged, role and bounce addresses, our own zone, SPF `fail`.

SPF is pyspf's evaluation.  pyspf asks dnspython's default resolver through
its module-level ``DNSLookup``; that function is wrapped once so that a check
made here uses this module's resolver (the configured nameservers and
timeout), while any other user of pyspf in the process keeps the default.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import dns.exception
import dns.resolver
import spf

from fswl.names import IPAddress, split_sender
from fswl.verify.settings import VerifySettings

log = logging.getLogger(__name__)

#: RFC 5322 dot-atom text: anything else (quoted strings, spaces, control or
#: non-ASCII characters) is not worth mailing unasked.
_PLAIN_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
MAX_LOCAL_OCTETS = 64

_local = threading.local()
_install_lock = threading.Lock()


def refusal(settings: VerifySettings, sender: str, zone: str) -> str | None:
    """Why ``sender`` (canonical) must not be challenged, or None. No I/O."""
    if not sender or sender in ("<>", "*") or sender.startswith("*@"):
        return "null or wildcard sender"
    local, domain = split_sender(sender)
    if len(local) > MAX_LOCAL_OCTETS or not _PLAIN_LOCAL.match(local):
        return "unusual local part"
    if local in settings.never_local_parts:
        return "role or bounce address"
    if any(c in local for c in settings.verp_separators) or len(local) >= settings.verp_min_length:
        return "VERP or tagged address"
    if zone and (domain == zone or domain.endswith("." + zone)):
        return "our own zone"
    return None


def spf_result(settings: VerifySettings, sender: str, address: IPAddress) -> str:
    """pyspf's result for (relay, sender's domain): pass, fail, softfail, neutral, none, temperror..."""
    _install()
    resolver = dns.resolver.Resolver(configure=not settings.spf_nameservers)
    if settings.spf_nameservers:
        resolver.nameservers, resolver.nameserver_ports = _nameservers(settings.spf_nameservers)
    resolver.lifetime = resolver.timeout = settings.spf_timeout
    _local.resolver = resolver
    try:
        result, _explanation = spf.check2(i=str(address), s=sender, h=split_sender(sender)[1],
                                          timeout=settings.spf_timeout, querytime=settings.spf_timeout)
    except Exception as exc:  # pyspf raises its own errors for broken records; treat as unknown
        log.info("spf check failed for %s via %s: %s", sender, address, exc)
        return "temperror"
    finally:
        _local.resolver = None
    return str(result)


def _nameservers(entries: tuple) -> tuple[list[str], dict[str, int]]:
    hosts, ports = [], {}
    for entry in entries:
        host, _, port = str(entry).rpartition(":") if str(entry).count(":") == 1 else (str(entry), "", "")
        host = host or str(entry)
        hosts.append(host)
        if port:
            ports[host] = int(port)
    return hosts, ports


def _install() -> None:
    with _install_lock:
        if getattr(spf.DNSLookup, "fswl_wrapped", False):
            return
        original = spf.DNSLookup

        def lookup(name: str, qtype: str, strict: bool = True, timeout: float = 30) -> list[Any]:
            resolver = getattr(_local, "resolver", None)
            if resolver is None:
                return original(name, qtype, strict, timeout)
            return _resolve(resolver, name, qtype, timeout)

        lookup.fswl_wrapped = True  # type: ignore[attr-defined]
        spf.DNSLookup = lookup


def _resolve(resolver: dns.resolver.Resolver, name: str, qtype: str, timeout: float) -> list[Any]:
    """pyspf's DNSLookup contract ([((name, type), value)]) answered by our resolver."""
    try:
        answers = resolver.resolve(name, qtype, lifetime=timeout, search=False)
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    found: list[Any] = []
    for rdata in answers:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found
