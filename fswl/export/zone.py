"""``fswl export --format zone``: an RFC 1035 master file for NSD, Knot or BIND secondaries."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable, TextIO

from fswl.dns.answers import TXT_CHUNK, txt_chunks
from fswl.dns.export_names import ExportNames, Record
from fswl.dns.names import escape_label
from fswl.export.apex import NOTICE, Apex

#: Labels repeat (address octets, domains): their escaped forms are remembered.
LABEL_CACHE_SIZE = 65536


def write_zone(out: TextIO, names: ExportNames, apex: Apex, tick: Callable[[int], None] = lambda n: None) -> int:
    """Write the zone to ``out``; returns the number of owner names written."""
    soa, ttl = apex.soa, apex.ttl
    out.write(f"; {NOTICE}\n$ORIGIN {_absolute(apex.zone)}\n$TTL {ttl}\n")
    out.write(f"@ {ttl} IN SOA {_absolute(soa.mname)} {_absolute(soa.rname)} "
              f"{soa.serial} {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}\n")
    for ns in apex.ns:
        out.write(f"@ {ttl} IN NS {_absolute(ns)}\n")
    out.write(f"@ {ttl} IN TXT {txt_strings(apex.info)}\n")
    return write_records(out, names.records(tick))


def write_records(out: TextIO, records: Iterable[Record]) -> int:
    """One A and one TXT line per name."""
    count = 0
    for record in records:
        owner = ".".join(map(label_text, record.owner))
        out.write(f"{owner} IN A {record.value}\n{owner} IN TXT {txt_strings(record.text)}\n")
        count += 1
    return count


@lru_cache(maxsize=LABEL_CACHE_SIZE)
def label_text(label: bytes) -> str:
    """A label in presentation form; ``*`` stays the wildcard."""
    return "*" if label == b"*" else escape_label(label)


def txt_strings(text: str) -> str:
    """TXT data in presentation form: quoted strings of at most 255 octets, odd bytes as \\ddd."""
    if len(text) <= TXT_CHUNK and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the common case, without a pass per byte
    return " ".join('"' + "".join(_txt_char(byte) for byte in chunk) + '"' for chunk in txt_chunks(text))


def _txt_char(byte: int) -> str:
    if byte in b'"\\':
        return "\\" + chr(byte)
    if 0x20 <= byte <= 0x7E:
        return chr(byte)
    return f"\\{byte:03d}"


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."
