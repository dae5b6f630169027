"""``fswl export --format rbldnsd``: one rbldnsd ``combined`` dataset for the whole zone.

Load it with ``rbldnsd ... ZONE:combined:FILE``.  Sections:

- ``ip4trie`` / ``ip6trie``: every level listed for every sender (``*``), as
  CIDR ranges; the longest match wins, like fswl's most specific level.
- ``dnset``: the mailbox and hashed names, ``*.`` wildcards (which in
  rbldnsd cover every depth below), and the relay-wide names the tries
  cannot give alone (those under a prefix's wildcard, the test points).
- ``generic``: the TXT at the apex.
"""

from __future__ import annotations

from typing import Callable, TextIO

from fswl.dns.export_names import ExportNames
from fswl.export.apex import NOTICE, Apex
from fswl.export.zone import label_text, txt_strings
from fswl.constants import ANSWERS

#: Characters that mean something at the start of an rbldnsd data line.
_LINE_SPECIALS = b"#;:!$*"

#: Control characters, each shown as "?" in a TXT template.
_CONTROLS = {code: "?" for code in (*range(0x20), 0x7F)}

def write_rbldnsd(out: TextIO, names: ExportNames, apex: Apex, tick: Callable[[int], None] = lambda n: None) -> int:
    """Write the combined dataset to ``out``; returns the number of names and ranges written."""
    soa, ttl = apex.soa, apex.ttl
    out.write(f"# {NOTICE}\n")
    out.write(f"$SOA {ttl} {soa.mname} {soa.rname} {soa.serial} {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}\n")
    out.write(f"$NS {ttl} {' '.join(apex.ns)}\n$TTL {ttl}\n")
    count = 0
    relays = names.relay_listings()
    for version, dataset in ((4, "ip4trie"), (6, "ip6trie")):
        out.write(f"$DATASET {dataset}:relays @\n")
        for relay in relays:
            if relay.network.version == version:
                out.write(f"{relay.network} :{ANSWERS['relay']}:{_template(relay.text)}\n")
                count += 1
    out.write("$DATASET dnset:names @\n")
    for record in names.records(tick):
        if record.in_trie:
            continue
        out.write(f"{dnset_name(record.owner)} :{record.value}:{_template(record.text)}\n")
        count += 1
    out.write(f"$DATASET generic:apex @\n@ TXT {txt_strings(apex.info)}\n")
    return count


def dnset_name(owner: tuple[bytes, ...]) -> str:
    """An owner as a dnset line's name: RFC 1035 escapes, and a safe first character."""
    labels = [label_text(label) for label in owner]
    first = owner[0]
    if first != b"*" and first[:1] and first[0] in _LINE_SPECIALS and not labels[0].startswith("\\"):
        labels[0] = f"\\{first[0]:03d}" + labels[0][1:]
    return ".".join(labels)


def _template(text: str) -> str:
    """A TXT template: ``$`` would be replaced by the name asked, and a line holds no control bytes."""
    return text.translate(_CONTROLS).replace("$", "$$")
