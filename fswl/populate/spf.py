"""Expanding a domain's SPF record to the networks it authorises, with pyspf doing the work.

pyspf (``spf.query``) parses and validates each term, expands macros, looks
names up (CNAMEs, MX hosts, void lookups) and counts lookups against RFC
7208's limits; its own evaluation answers "does this one IP pass", so the
walk over the terms is here: every ``include``, ``redirect``, ``a``, ``mx``,
``ip4`` and ``ip6`` in evaluation order, resolved first-match-wins, so a
``-ip4:`` before a wider ``ip4:`` is subtracted and ``?include:`` lists
nothing.  Each address family is walked on its own query, as a receiver
would evaluate an IPv4 or an IPv6 client.
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import dns.exception
import dns.rdatatype
import dns.resolver
import spf

from fswl.errors import BadInput, BadRelay
from fswl.names import LEVEL_BITS, IPNetwork, boundary_networks

log = logging.getLogger(__name__)

#: Mechanisms that cost one DNS lookup (RFC 7208 4.6.4).
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")
#: Macro letters that depend on the client, sender or time, not the domain: such a term cannot be listed.
CLIENT_MACROS = set("slihcprt")
FAMILIES = {4: "list", 6: "list6"}  #: pyspf's names for "collect, do not match" per family

Item = tuple[IPNetwork, bool]  #: a network and whether matching it means pass


@dataclass
class Expansion:
    """One domain's SPF record as networks, per address family."""

    domain: str
    networks: dict[int, list[IPNetwork]] = field(default_factory=dict)  #: families that expanded
    errors: dict[int, str] = field(default_factory=dict)  #: families that failed, and why
    notes: list[str] = field(default_factory=list)  #: terms that could not be listed
    lookups: int = 0  #: DNS-querying terms, counted as RFC 7208 counts them (most of the two families)

    @property
    def ok(self) -> bool:
        return not self.errors


class Resolver:
    """pyspf's DNS lookup function, on a chosen name server, remembering NXDOMAIN answers."""

    def __init__(self, nameserver: tuple[str, int] | None = None, timeout: float = 5.0) -> None:
        self.resolver = system_resolver() if nameserver is None else dns.resolver.Resolver(configure=False)
        if nameserver is not None:
            self.resolver.nameservers = [nameserver[0]]
            self.resolver.port = nameserver[1]
        self.resolver.lifetime = timeout
        self.timeout = timeout
        self.nxdomain: set[str] = set()

    def __call__(self, name: str, qtype: str, strict: bool = True, timeout: float = 0) -> list:
        """The (name, qtype) -> value pairs pyspf expects (see spf.DNSLookup_dnspython)."""
        try:
            answer = self.resolver.resolve(name, qtype, search=False, raise_on_no_answer=False,
                                           lifetime=min(timeout or self.timeout, self.timeout))
        except dns.resolver.NXDOMAIN:
            self.nxdomain.add(name.lower().rstrip("."))
            return []
        except dns.resolver.NoAnswer:
            return []
        except dns.exception.Timeout:
            raise spf.TempError(f"DNS timeout looking up {name} {qtype}") from None
        except dns.exception.DNSException as exc:
            raise spf.TempError(f"DNS failure looking up {name} {qtype}: {exc}") from None
        found = []
        for rdata in answer.rrset or ():
            if qtype in ("A", "AAAA"):
                found.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                found.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype in ("TXT", "SPF"):
                found.append(((name, qtype), rdata.strings))
            elif qtype == "PTR":
                found.append(((name, qtype), rdata.target.to_text(True)))
        return found


def system_resolver() -> dns.resolver.Resolver:
    """A resolver configured from /etc/resolv.conf.

    :raises BadInput: when the system has no name server configured.
    """
    try:
        return dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration as exc:
        raise BadInput(f"no name server configured on this system ({exc}); pass --nameserver IP[:PORT]") from None


def parse_nameserver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (host, port); port 53 by default."""
    from fswl.util.hostport import parse_listen

    if text.startswith("[") or text.count(":") == 1:
        return parse_listen(text)
    return parse_listen(f"[{text}]:53" if ":" in text else f"{text}:53")


@contextmanager
def using(resolver: Resolver) -> Iterator[None]:
    """Point pyspf at ``resolver``: spf.DNSLookup is the library's hook for its DNS client."""
    saved = spf.DNSLookup
    spf.DNSLookup = resolver
    try:
        yield
    finally:
        spf.DNSLookup = saved


def expand(domain: str, resolver: Resolver) -> Expansion:
    """Every network ``domain``'s SPF record passes, per family; errors per family, never raised."""
    result = Expansion(domain)
    cache: dict = {}
    with using(resolver):
        for version, mode in FAMILIES.items():
            query = spf.query(i=mode, s=f"postmaster@{domain}", h=domain, timeout=resolver.timeout)
            query.cache = cache  # keyed by (name, type): safe to share between the two families
            query.nxdomain = resolver.nxdomain
            notes: list[str] = []
            try:
                items = _walk(query, version, domain, True, (), notes)
                result.networks[version] = _first_match(items)
            except spf.TempError as exc:
                result.errors[version] = f"temperror: {exc}"
            except spf.PermError as exc:
                result.errors[version] = _permerror(exc)
            except _NoRecord as exc:
                result.errors[version] = str(exc)
            except Exception as exc:  # a record pyspf trips over must not stop the other domains
                log.debug("expanding %s failed", domain, exc_info=True)
                result.errors[version] = f"cannot expand: {type(exc).__name__}: {exc}"
            result.lookups = max(result.lookups, query.lookups)
            result.notes.extend(n for n in notes if n not in result.notes)
    return result


class _NoRecord(Exception):
    pass


def _permerror(exc: spf.PermError) -> str:
    message = str(exc)
    if "Too many DNS lookups" in message:
        return f"permerror: more than {spf.MAX_LOOKUP} DNS lookups (RFC 7208 4.6.4)"
    return f"permerror: {message}"


def _walk(query: spf.query, version: int, domain: str, passing: bool, path: tuple[str, ...],
          notes: list[str]) -> list[Item]:
    """The (network, pass?) items of ``domain``'s record, in evaluation order."""
    if domain in path:
        raise spf.PermError(f"include/redirect loop: {' -> '.join(path + (domain,))}")
    if len(path) > spf.MAX_RECURSION:
        raise spf.PermError("too many levels of include/redirect")
    record = query.dns_spf(domain)
    if record is None:
        if domain in query.nxdomain:
            raise _NoRecord(f"NXDOMAIN: {domain} does not exist" + (f" (named by {path[-1]})" if path else ""))
        if path:
            raise spf.PermError(f"{domain} (named by {path[-1]}) has no SPF record")
        raise _NoRecord(f"no SPF record at {domain}")
    saved, query.d = query.d, domain  # macros and bare a/mx refer to the current domain
    try:
        return _terms(query, version, domain, record, passing, path + (domain,), notes)
    finally:
        query.d = saved


def _terms(query: spf.query, version: int, domain: str, record: str, passing: bool, path: tuple[str, ...],
           notes: list[str]) -> list[Item]:
    items: list[Item] = []
    redirect = None
    mechanisms = []
    for term in (t for t in record.split(" ")[1:] if t):
        modifier = spf.RE_MODIFIER.split(term)[1:]
        if len(modifier) != 2:
            mechanisms.append(term)
        elif modifier[0] == "redirect":
            if redirect is not None:
                raise spf.PermError("redirect= MUST appear at most once", term)
            redirect = modifier[1]
    for term in mechanisms:
        if _client_dependent(term):
            if spf.parse_mechanism(term.lstrip("+-?~"), domain)[0] in LOOKUP_TERMS:
                query.check_lookups()
            _note(notes, f"{domain}: {term} depends on the client or sender; not listed")
            continue
        _mech, kind, arg, cidr, result = query.validate_mechanism(term)
        ok = passing and result == "pass"
        if kind == "all":
            return items  # nothing after all is evaluated, and redirect is ignored
        if kind == "include":
            query.check_lookups()
            inner = _first_match(_walk(query, version, arg, True, path, notes))
            items.extend((network, ok) for network in inner)
        elif kind == "a":
            query.check_lookups()
            items.extend((_network(a, cidr), ok) for a in query.dns_a(arg, query.A))
        elif kind == "mx":
            query.check_lookups()
            items.extend((_network(a, cidr), ok) for a in query.dns_mx(arg))
        elif kind in ("ip4", "ip6"):
            if (kind == "ip4") == (version == 4):
                items.append((_network(arg, cidr), ok))
        elif kind in ("ptr", "exists"):
            query.check_lookups()
            _note(notes, f"{domain}: {term} depends on the client's address; not listed")
    if redirect is not None:
        query.check_lookups()
        items.extend(_walk(query, version, query.expand_domain(redirect), passing, path, notes))
    return items


def _client_dependent(term: str) -> bool:
    return any(m.group(0)[2:3].lower() in CLIENT_MACROS for m in spf.RE_CHAR.finditer(term))


def _network(address, cidr: int) -> IPNetwork:
    return ipaddress.ip_network(f"{address}/{cidr}", strict=False)


def _first_match(items: list[Item]) -> list[IPNetwork]:
    """The networks whose first matching item passes (RFC 7208 4.6.2: the first match decides)."""
    covered: list[IPNetwork] = []
    passed: list[IPNetwork] = []
    for network, ok in items:
        if ok:
            passed.extend(_subtract(network, covered))
        covered.append(network)
    return list(ipaddress.collapse_addresses(passed))  # type: ignore[arg-type]


def _subtract(network: IPNetwork, holes: list[IPNetwork]) -> list[IPNetwork]:
    pieces = [network]
    for hole in holes:
        if hole.version != network.version:
            continue
        next_pieces = []
        for piece in pieces:
            if hole.supernet_of(piece):  # type: ignore[arg-type]
                continue
            if piece.supernet_of(hole):  # type: ignore[arg-type]
                next_pieces.extend(piece.address_exclude(hole))  # type: ignore[arg-type]
            else:
                next_pieces.append(piece)
        pieces = next_pieces
    return pieces


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def fit_to_tree(network: IPNetwork, widest: int) -> tuple[IPNetwork | None, str | None]:
    """The network to list for ``network``, and a note when it had to change.

    Narrower than a tree level is fine (the store splits a /20 into /24s);
    a split into more than MAX_EXPANSION directories is widened to the
    enclosing level instead (an IPv6 /33 becomes its /32); wider than
    ``widest`` bits is refused (None).
    """
    if network.prefixlen < widest:
        return None, f"{network} is wider than /{widest}; not listed"
    try:
        boundary_networks(network)
    except BadRelay:
        bits = LEVEL_BITS[network.version]
        wider = network.supernet(new_prefix=network.prefixlen // bits * bits)
        return wider, f"{network} widened to {wider} (the tree's levels are {bits} bits)"
    return network, None


@dataclass(frozen=True)
class SpfSettings:
    """[spf] in fswl.toml: how `fswl import-spf` looks records up and what it accepts."""

    #: IP or IP:PORT of the name server to ask; empty for the system's resolvers.
    nameserver: str = ""
    #: Seconds for each DNS lookup.
    timeout: float = 5.0
    #: Prefixes wider than these are not listed (a record with ip4:0.0.0.0/1 lists half the Internet).
    widest_ipv4: int = 8
    widest_ipv6: int = 32
