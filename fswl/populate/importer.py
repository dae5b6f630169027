"""Reading third-party lists: rbldnsd ip4set / ip6trie data and plain CIDR-per-line files."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Iterator

from fswl.errors import BadInput, BadRelay
from fswl.names import IPNetwork, parse_relay


class BadListLine(BadInput):
    """line {}: {!r}: {}."""


@dataclass(frozen=True)
class ListItem:
    lineno: int
    network: IPNetwork


def parse_list(lines: Iterable[str]) -> Iterator[ListItem | BadListLine]:
    """Yield the networks a list holds, or a BadListLine for each line that is not one.

    Understands rbldnsd ip4set/ip4trie/ip6trie data (``1.2.3`` for a /24,
    ``a.b.c.d-e.f.g.h`` ranges, ``!`` exclusions, ``:value:text`` and
    ``$directives``, comments) and plain ``CIDR`` lines.  Exclusions are
    subtracted from the networks that contain them.
    """
    items: list[ListItem] = []
    excluded: list[IPNetwork] = []
    for lineno, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not text or text[0] in ":$":
            continue
        token = text.split()[0]
        colon = token.find(":")
        if colon > 0 and "." in token[:colon]:  # "1.2.3.4:127.0.0.2:text": value attached
            token = token[:colon]
        exclude = token.startswith("!")
        try:
            networks = _parse_token(token[1:] if exclude else token)
        except BadRelay as exc:
            yield BadListLine(lineno, raw.rstrip("\n")[:80], exc.args[1] if len(exc.args) > 1 else exc)
            continue
        if exclude:
            excluded.extend(networks)
        else:
            items.extend(ListItem(lineno, n) for n in networks)
    for item in items:
        yield from (ListItem(item.lineno, n) for n in _subtract(item.network, excluded))


def _parse_token(token: str) -> list[IPNetwork]:
    if "-" in token:
        first, last = token.split("-", 1)
        if "." in first and last.isdigit() and "." not in last:
            last = first.rsplit(".", 1)[0] + "." + last
        try:
            start, end = ipaddress.ip_address(first), ipaddress.ip_address(last)
            return list(ipaddress.summarize_address_range(start, end))
        except (ValueError, TypeError) as exc:
            raise BadRelay(token, f"bad range: {exc}") from exc
    if "." in token and ":" not in token and "/" not in token and token.count(".") < 3:
        octets = token.split(".")
        token = ".".join(octets + ["0"] * (4 - len(octets))) + f"/{8 * len(octets)}"
    elif token.isdigit():
        token = f"{token}.0.0.0/8"
    return [parse_relay(token)]


def _subtract(network: IPNetwork, excluded: list[IPNetwork]) -> list[IPNetwork]:
    remaining = [network]
    for hole in excluded:
        next_round: list[IPNetwork] = []
        for piece in remaining:
            if piece.version != hole.version or not piece.overlaps(hole):
                next_round.append(piece)
            elif hole.supernet_of(piece):  # type: ignore[arg-type]
                continue
            else:
                next_round.extend(piece.address_exclude(hole))  # type: ignore[arg-type]
        remaining = next_round
    return remaining
