"""Limits that protect fswl from bad input; not meant to be tuned."""

from __future__ import annotations

#: RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets.
MAX_ADDRESS_OCTETS = 254
#: RFC 1035: a domain name is at most 253 characters in text form, 63 a label.
MAX_DOMAIN_CHARS = 253
MAX_LABEL_CHARS = 63
#: Most file systems limit a name to 255 bytes.
MAX_FILENAME_BYTES = 255
#: A CIDR that is not on a tree boundary expands to at most this many directories.
MAX_EXPANSION = 4096
#: Symlink hops followed inside db/ before a chain is called a loop.
MAX_SYMLINK_HOPS = 16
#: The DNS A answer for each kind of match (DESIGN: "The DNS names"): exact sender, *@domain, *.
ANSWERS = {"exact": "127.0.0.2", "domain": "127.0.0.3", "relay": "127.0.0.4"}
