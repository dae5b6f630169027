"""Pure conversions: senders to entry file names, relays to tree directories.

Every function here is free of I/O so that the store, the DNS index, sync and
the tests agree on one mapping.  Conversions come in pairs and round-trip:
``name_to_sender(sender_to_name(s)) == s`` for every canonical sender, and
``network_from_parts(family, network_parts(n)) == n`` for every tree prefix.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from functools import lru_cache
from typing import Union

from fswl.constants import (
    MAX_ADDRESS_OCTETS,
    MAX_DOMAIN_CHARS,
    MAX_EXPANSION,
    MAX_FILENAME_BYTES,
    MAX_LABEL_CHARS,
)
from fswl.errors import BadGroup, BadName, BadRelay, BadSender

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: Parsed senders and addresses remembered: mail flows repeat them, and
#: parsing is most of a lookup's cost. Each of these caches holds up to
#: this many (about 200 bytes each): enough for the senders and relays of a
#: busy hour, without growing the DNS responder by tens of megabytes.
PARSE_CACHE_SIZE = 8192
#: The entry that lists a relay for every sender.
ANY_SENDER = "*"
#: Directory names of the two address families under db/.
FAMILIES = {4: "ip4", 6: "ip6"}
#: Bits per tree level: one octet for IPv4, one 16-bit group for IPv6.
LEVEL_BITS = {4: 8, 6: 16}

_DOMAIN_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\Z")
_GROUP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\Z")
_HEX = "0123456789ABCDEF"
#: Senders that are their own file name: printable lower-case ASCII, no ``/``, ``%`` or space, no leading dot.
_OWN_NAME = re.compile(r"[!-$&-\-0-@\[-~][!-$&-.0-@\[-~]*\Z")
# Surrogates that str.decode("utf-8", "surrogateescape") makes of bytes that
# are not UTF-8; they stand for one raw byte each.
_ESCAPED_BYTE = range(0xDC80, 0xDD00)


# -- senders ---------------------------------------------------------------


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_sender(text: str | bytes) -> str:
    """Return the canonical form of a sender: ``local@domain``, ``*@domain`` or ``*``.

    The address is lowercased; an internationalised domain becomes its
    A-label (``xn--``) form, as DNS carries it.  Bytes that are not UTF-8
    are kept, escaped, so that every byte string has a canonical form.

    :raises BadSender: with the reason, for anything else.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    stripped = text.strip()
    if stripped.startswith("<") and stripped.endswith(">"):
        stripped = stripped[1:-1]
    if stripped == ANY_SENDER:
        return ANY_SENDER
    if not stripped.isascii():
        if any(0xD800 <= ord(c) <= 0xDFFF and ord(c) not in _ESCAPED_BYTE for c in stripped):
            raise BadSender(_short(text), "not valid text")
        # Escaped bytes that together are valid UTF-8 become that text, so one
        # address has one canonical form (and one file name), however it came.
        stripped = stripped.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    local, at, domain = stripped.rpartition("@")
    if not at:
        raise BadSender(_short(text), "no @domain")
    if not local:
        raise BadSender(_short(text), "empty local part")
    sender = f"{local.lower()}@{parse_domain(domain, text)}"
    if len(sender.encode("utf-8", "surrogateescape")) > MAX_ADDRESS_OCTETS:
        raise BadSender(_short(text), f"longer than {MAX_ADDRESS_OCTETS} octets")
    if len(sender_to_name(sender).encode("utf-8", "surrogateescape")) > MAX_FILENAME_BYTES:
        raise BadSender(_short(text), "too long once encoded as a file name")
    return sender


def parse_domain(domain: str, original: str | None = None) -> str:
    """Return a domain lowercased and in A-label form, or raise BadSender."""
    shown = _short(original if original is not None else domain)
    name = domain.strip().rstrip(".").lower()
    if not name:
        raise BadSender(shown, "empty domain")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise BadSender(shown, "domain is not a valid internationalised name") from exc
    if len(name) > MAX_DOMAIN_CHARS:
        raise BadSender(shown, f"domain longer than {MAX_DOMAIN_CHARS} characters")
    for label in name.split("."):
        if len(label) > MAX_LABEL_CHARS or not _DOMAIN_LABEL.match(label):
            raise BadSender(shown, f"bad domain label {label!r}")
    return name


def split_sender(sender: str) -> tuple[str, str]:
    """Split a canonical ``local@domain`` or ``*@domain`` into its two parts."""
    local, _, domain = sender.rpartition("@")
    return local, domain


def domain_wildcard(sender: str) -> str | None:
    """Return the ``*@domain`` entry that covers a canonical sender, if any."""
    if sender == ANY_SENDER:
        return None
    return "*@" + split_sender(sender)[1]


def sender_kind(sender: str) -> str:
    """Classify a canonical sender: ``exact``, ``domain`` (``*@d``) or ``relay`` (``*``)."""
    if sender == ANY_SENDER:
        return "relay"
    if sender.startswith("*@"):
        return "domain"
    return "exact"


def sender_hash(sender: str) -> str:
    """The private DNS label of a sender: base32 (lowercase, unpadded) of its SHA-256."""
    digest = hashlib.sha256(sender.lower().encode("utf-8", "surrogateescape")).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def sender_to_name(sender: str) -> str:
    """Encode a sender as an entry file name.

    Lowercases, then percent-encodes (``%XX``, upper-case hex) ``/``, ``%``,
    space, control and other unprintable characters, escaped raw bytes, and a
    leading ``.``, so that the name is never ``.``, ``..``, hidden, or a path.
    """
    lowered = sender.lower()
    if _OWN_NAME.fullmatch(lowered):  # nearly every sender: the DNS and policy hot paths take this
        return lowered
    out = []
    for i, char in enumerate(lowered):
        code = ord(char)
        if code in _ESCAPED_BYTE:
            out.append(_percent(code - 0xDC00))
        elif char in "/% " or not char.isprintable() or (i == 0 and char == "."):
            out.extend(_percent(b) for b in char.encode("utf-8", "surrogatepass"))
        else:
            out.append(char)
    return "".join(out)


def name_to_sender(name: str) -> str:
    """Decode an entry file name made by :func:`sender_to_name`.

    :raises BadName: if the name is not exactly what sender_to_name makes.
    """
    if _OWN_NAME.fullmatch(name):
        return name
    raw = bytearray()
    i = 0
    while i < len(name):
        char = name[i]
        if char == "%":
            pair = name[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise BadName(name, "bad %-escape")
            raw.append(int(pair, 16))
            i += 3
        else:
            raw += char.encode("utf-8", "surrogateescape")
            i += 1
    sender = raw.decode("utf-8", "surrogateescape")
    if sender_to_name(sender) != name:
        raise BadName(name, "not in canonical form")
    return sender


def _percent(byte: int) -> str:
    return "%" + _HEX[byte >> 4] + _HEX[byte & 15]


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


# -- relays ----------------------------------------------------------------


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_relay(text: str) -> IPNetwork:
    """Parse an IP address or CIDR; host bits are cleared, IPv4-mapped IPv6 becomes IPv4.

    :raises BadRelay: if the text is not an address or network, or is /0.
    """
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise BadRelay(_short(text), exc) from exc
    if network.version == 6 and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    if network.prefixlen == 0:
        raise BadRelay(_short(text), "a /0 would list the whole Internet")
    return network


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_address(text: str) -> IPAddress:
    """Parse one IP address; IPv4-mapped IPv6 becomes IPv4."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise BadRelay(_short(text), exc) from exc
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_parts(address: IPAddress) -> tuple[str, ...]:
    """The directory names of an address, top-down: ``("57", "129", "134", "63")``."""
    if address.version == 4:
        return tuple(str(b) for b in address.packed)
    return tuple(address.exploded.split(":"))


def network_parts(network: IPNetwork) -> tuple[str, ...]:
    """The directory names of a network on a tree boundary (/8, /16.. or /16, /32..)."""
    bits = LEVEL_BITS[network.version]
    if network.prefixlen % bits:
        raise BadRelay(str(network), f"not on a /{bits} boundary")
    return address_parts(network.network_address)[: network.prefixlen // bits]


def network_from_parts(version: int, parts: tuple[str, ...] | list[str]) -> IPNetwork:
    """Inverse of :func:`network_parts`.

    :raises BadRelay: if the parts are not canonical directory names.
    """
    bits = LEVEL_BITS[version]
    width = 32 if version == 4 else 128
    if not 0 < len(parts) <= width // bits:
        raise BadRelay("/".join(parts), "wrong number of levels")
    if version == 4:
        values = [_parse_octet(p) for p in parts]
        text = ".".join(str(v) for v in values + [0] * (4 - len(values)))
    else:
        values = [_parse_group(p) for p in parts]
        text = ":".join(f"{v:x}" for v in values + [0] * (8 - len(values)))
    return ipaddress.ip_network(f"{text}/{len(parts) * bits}")


def boundary_networks(network: IPNetwork) -> list[IPNetwork]:
    """Split a network into the tree-boundary prefixes that cover exactly it.

    A /20 becomes sixteen /24s; a network already on a boundary is returned
    alone.

    :raises BadRelay: if that would take more than MAX_EXPANSION directories.
    """
    bits = LEVEL_BITS[network.version]
    boundary = -(-network.prefixlen // bits) * bits
    count = 1 << (boundary - network.prefixlen)
    if count > MAX_EXPANSION:
        raise BadRelay(str(network), f"expands to {count} directories; split it")
    if count == 1:
        return [network]
    return list(network.subnets(new_prefix=boundary))


def is_level_name(version: int, name: str) -> bool:
    """True if ``name`` is a canonical directory name for one tree level."""
    try:
        (_parse_octet if version == 4 else _parse_group)(name)
    except BadRelay:
        return False
    return True


def parse_group(name: str) -> str:
    """Validate a group name (a directory under db/groups/)."""
    if not _GROUP_NAME.match(name):
        raise BadGroup(_short(name))
    return name


def _parse_octet(part: str) -> int:
    if not (part.isdigit() and part.isascii()) or (len(part) > 1 and part[0] == "0") or int(part) > 255:
        raise BadRelay(part, "not an octet directory")
    return int(part)


def _parse_group(part: str) -> int:
    if len(part) != 4 or any(c not in "0123456789abcdef" for c in part):
        raise BadRelay(part, "not a 4-hex-digit group directory")
    return int(part, 16)
