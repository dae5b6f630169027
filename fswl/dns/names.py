"""Pure conversions between DNS query names and whitelist questions (RFC 5782 conventions).

Labels are bytes, as on the wire, relative to the zone apex and in DNS order
(leftmost first).  The responder and the exporters (rbldnsd, zone files) both
use these functions, so what fswl serves and what it exports cannot drift.

    <rev-ip>                       relay-wide: is ``*`` listed for the relay?
    <local>.<domain...>.<rev-ip>   mailbox form: ``local`` is ONE label
    <hash>.<rev-ip>                hashed form: one 52-character label
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from fswl.errors import BadSender
from fswl.names import ANY_SENDER, IPAddress, IPNetwork, parse_sender, split_sender

#: Length of the hashed-form label (base32 of SHA-256, unpadded).
HASH_LABEL_LENGTH = 52
_HEX_NIBBLES = frozenset(b"0123456789abcdefABCDEF")
_BASE32 = frozenset(b"abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: Reversed IPv4 labels as RFC 5782 writes them: "0" to "255", no leading zeros.
_OCTETS = {str(octet).encode(): octet for octet in range(256)}


@dataclass(frozen=True)
class Question:
    """What a query name under the zone asks."""

    address: IPAddress  #: the relay
    sender: str | None = None  #: canonical sender (mailbox form); None for relay-wide
    hashed: str | None = None  #: lowercase hash label (hashed form)

    @property
    def relay_only(self) -> bool:
        return self.sender is None and self.hashed is None

#: Labels written as they are: printable ASCII but for what RFC 1035 text escapes.
_PLAIN_LABEL = re.compile(rb'[!#%&\'*+,\-/0-:<-?A-Z\[\]^_`a-z{|}~]*')

def reverse_labels(address: IPAddress) -> list[bytes]:
    """The reversed-address labels of RFC 5782: 4 decimal labels, or 32 nibbles."""
    if address.version == 4:
        return [str(b).encode() for b in reversed(address.packed)]
    return [c.encode() for c in reversed(address.exploded.replace(":", ""))]


def parse_reverse(labels: list[bytes]) -> IPAddress | None:
    """Inverse of :func:`reverse_labels`; None if the labels are not exactly one address."""
    if len(labels) == 4:
        if not all(label.isdigit() and len(label) <= 3 for label in labels):
            return None
        if any(len(label) > 1 and label[0:1] == b"0" for label in labels):
            return None
        values = [int(label) for label in reversed(labels)]
        if max(values) > 255:
            return None
        return ipaddress.IPv4Address(bytes(values))
    if len(labels) == 32 and all(len(label) == 1 and label[0] in _HEX_NIBBLES for label in labels):
        return ipaddress.IPv6Address(int(b"".join(reversed(labels)).decode(), 16))
    return None


def split_reverse(labels: list[bytes]) -> tuple[list[bytes], IPAddress] | None:
    """Split labels into (question labels, relay address); IPv6 is tried first (32 nibbles)."""
    for width in (32, 4):
        if len(labels) >= width:
            address = parse_reverse(labels[-width:])
            if address is not None:
                return labels[:-width], address
    return None


def parse_question(labels: list[bytes]) -> Question | None:
    """The question a name (labels below the zone apex) asks, or None if it is not one.

    Labels compare case-insensitively; a name that is None here may still be
    an empty non-terminal (see :func:`is_reverse_prefix`, and labels below a relay that end listed names).
    """
    if 4 < len(labels) < 32 and all(len(label) == 1 and label[0] in _HEX_NIBBLES for label in labels):
        return None  # an IPv6 nibble prefix (8.b.d.0.1.0.0.2), not a mailbox under an IPv4 relay
    split = split_reverse(labels)
    if split is None:
        return None
    head, address = split
    if not head:
        return Question(address)
    if len(head) == 1:
        label = head[0]
        if len(label) == HASH_LABEL_LENGTH and all(c in _BASE32 for c in label):
            return Question(address, hashed=label.decode("ascii").lower())
        return None
    sender = mailbox_sender(head)
    return None if sender is None else Question(address, sender=sender)


def mailbox_sender(labels: tuple[bytes, ...] | list[bytes]) -> str | None:
    """The sender of a mailbox-form name's labels (``<local>.<domain...>``), or None if it is not one."""
    local = labels[0].decode("utf-8", "surrogateescape")
    domain = b".".join(labels[1:]).decode("ascii", "replace")
    try:
        return parse_sender(f"{local}@{domain}")
    except BadSender:
        return None


def is_reverse_prefix(labels: list[bytes]) -> bool:
    """True if labels are the leading (rightmost) part of some reversed address.

    ``57.$ZONE`` or ``134.129.57.$ZONE``: names that exist only as parents of
    listed names (empty non-terminals) have this shape.
    """
    return bool(reverse_prefix_networks(labels))


def reverse_prefix_networks(labels: list[bytes]) -> list[IPNetwork]:
    """The networks whose reversed addresses start with ``labels`` (``2.0`` is both 0.2/16 and 20::/8).

    A reversed IPv4 label is decimal as RFC 5782 writes it, without leading
    zeros (``057`` and ``01`` are no octets); an IPv6 one is a single hex digit.
    """
    networks: list[IPNetwork] = []
    if 0 < len(labels) < 4 and all(label in _OCTETS for label in labels):
        octets = [_OCTETS[label] for label in reversed(labels)]
        networks.append(ipaddress.IPv4Network((bytes(octets + [0] * (4 - len(octets))), 8 * len(octets))))
    if 0 < len(labels) < 32 and all(len(label) == 1 and label[0] in _HEX_NIBBLES for label in labels):
        nibbles = b"".join(reversed(labels)).decode()
        networks.append(ipaddress.IPv6Network((int(nibbles.ljust(32, "0"), 16), 4 * len(nibbles))))
    return networks


def mailbox_labels(sender: str) -> list[bytes]:
    """The labels a canonical sender takes in the mailbox form: ``[local, *domain labels]``.

    ``*@domain`` gives ``[b"*", ...]`` and ``*`` gives ``[]`` (the relay-wide name).
    A local part longer than 63 octets has no mailbox form; use the hashed form.
    """
    if sender == ANY_SENDER:
        return []
    local, domain = split_sender(sender)
    return [local.encode("utf-8", "surrogateescape")] + [label.encode("ascii") for label in domain.split(".")]


def escape_label(label: bytes) -> str:
    """A label in RFC 1035 presentation form: ``first\\.last``, ``\\ddd`` for odd bytes."""
    if _PLAIN_LABEL.fullmatch(label):
        return label.decode("ascii")
    out = []
    for byte in label:
        char = chr(byte)
        if char in '.\\"();@$ ' :
            out.append("\\" + char)
        elif 0x21 <= byte <= 0x7E:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)
