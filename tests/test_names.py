"""fswl.names: senders <-> file names, relays <-> tree directories."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fswl.errors import BadName, BadRelay, BadSender
from fswl.names import (
    address_parts,
    boundary_networks,
    name_to_sender,
    network_from_parts,
    network_parts,
    parse_relay,
    parse_sender,
    sender_hash,
    sender_to_name,
)


@pytest.mark.parametrize("text,canonical", [
    ("dave@umkc.edu", "dave@umkc.edu"),
    ("Dave@UMKC.Edu", "dave@umkc.edu"),
    ("<dave@umkc.edu>", "dave@umkc.edu"),
    ("  dave@umkc.edu.  ", "dave@umkc.edu"),
    ("*@Lists.UMKC.edu", "*@lists.umkc.edu"),
    ("*", "*"),
    ('"odd@local"@example.org', '"odd@local"@example.org'),
    ("josé@bücher.de", "josé@xn--bcher-kva.de"),
    ("list-bounces+u=example.com@lists.example.org", "list-bounces+u=example.com@lists.example.org"),
    ("a@b", "a@b"),
], ids=["plain", "case", "brackets", "spaces-dot", "domain-wildcard", "any", "quoted-at", "idn", "verp", "one-label"])
def test_parse_sender(text: str, canonical: str) -> None:
    assert parse_sender(text) == canonical


@pytest.mark.parametrize("text,reason", [
    ("../../etc/passwd", "no @domain"),
    ("dave", "no @domain"),
    ("@umkc.edu", "empty local part"),
    ("dave@", "empty domain"),
    ("dave@umkc..edu", "bad domain label"),
    ("dave@-umkc.edu", "bad domain label"),
    ("dave@umkc.edu/../x", "bad domain label"),
    ("a" * 250 + "@example.org", "longer than 254 octets"),
    ("x" * 10_000, "no @domain"),
    ("dave@" + "a" * 64 + ".org", "bad domain label"),
    ("da\ud800ve@x.org", "not valid text"),
], ids=["traversal", "no-at", "no-local", "no-domain", "empty-label", "hyphen", "slash-domain",
        "too-long", "10kB", "long-label", "lone-surrogate"])
def test_parse_sender_refuses(text: str, reason: str) -> None:
    with pytest.raises(BadSender, match=reason):
        parse_sender(text)


@pytest.mark.parametrize("sender,name", [
    ("dave@umkc.edu", "dave@umkc.edu"),
    ("*@lists.umkc.edu", "*@lists.umkc.edu"),
    ("a/b@x.org", "a%2Fb@x.org"),
    ("100%@x.org", "100%25@x.org"),
    ("a b@x.org", "a%20b@x.org"),
    ("a\x00b@x.org", "a%00b@x.org"),
    ("a\nb@x.org", "a%0Ab@x.org"),
    (".hidden@x.org", "%2Ehidden@x.org"),
    ("..@x.org", "%2E.@x.org"),
    ("josé@x.org", "josé@x.org"),
    ("a\u00a0b@x.org", "a%C2%A0b@x.org"),
    ("a\udcffb@x.org", "a%FFb@x.org"),
], ids=["plain", "wildcard", "slash", "percent", "space", "nul", "newline", "leading-dot", "dotdot",
        "unicode", "nbsp", "raw-byte"])
def test_sender_to_name(sender: str, name: str) -> None:
    assert sender_to_name(sender) == name
    assert name_to_sender(name) == sender


@pytest.mark.parametrize("name", ["Dave@x.org", "a%2fb@x.org", "a%41@x.org", "a%4@x.org", "a%@x.org", ".x@y"],
                         ids=["upper", "lower-hex", "needless-escape", "short-escape", "bare-percent", "dot"])
def test_name_to_sender_refuses_noncanonical(name: str) -> None:
    with pytest.raises(BadName):
        name_to_sender(name)


@given(st.binary(max_size=300))
def test_every_byte_string_round_trips(raw: bytes) -> None:
    text = raw.decode("utf-8", "surrogateescape").lower()
    name = sender_to_name(text)
    assert "/" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert name.isprintable()
    assert name_to_sender(name) == text
    assert sender_to_name(name_to_sender(name)) == name


@given(st.text(max_size=80))
def test_every_parsed_sender_has_a_safe_name(text: str) -> None:
    try:
        sender = parse_sender(text)
    except BadSender:
        return
    name = sender_to_name(sender)
    assert "/" not in name and not name.startswith(".")
    assert len(name.encode("utf-8", "surrogateescape")) <= 255
    assert parse_sender(name_to_sender(name)) == sender


def test_sender_hash_is_one_dns_label() -> None:
    label = sender_hash("Dave@UMKC.edu")
    assert label == sender_hash("dave@umkc.edu")
    assert len(label) == 52 and label.isalnum() and label == label.lower()


@pytest.mark.parametrize("text,network", [
    ("57.129.134.63", "57.129.134.63/32"),
    ("57.129.134.0/24", "57.129.134.0/24"),
    ("57.129.134.9/24", "57.129.134.0/24"),
    ("::ffff:57.129.134.63", "57.129.134.63/32"),
    ("2001:DB8::1", "2001:db8::1/128"),
    ("2001:db8:1:2::/64", "2001:db8:1:2::/64"),
], ids=["v4", "v4-24", "host-bits", "mapped", "v6-upper", "v6-64"])
def test_parse_relay(text: str, network: str) -> None:
    assert parse_relay(text) == ipaddress.ip_network(network)


@pytest.mark.parametrize("text", ["999.1.1.1", "1.2.3", "0.0.0.0/0", "::/0", "example.org", "1.2.3.4/33", ""],
                         ids=["octet", "short", "v4-zero", "v6-zero", "name", "prefix", "empty"])
def test_parse_relay_refuses(text: str) -> None:
    with pytest.raises(BadRelay):
        parse_relay(text)


@pytest.mark.parametrize("network,parts", [
    ("57.129.134.63/32", ("57", "129", "134", "63")),
    ("57.129.134.0/24", ("57", "129", "134")),
    ("10.0.0.0/8", ("10",)),
    ("2001:db8::1/128", ("2001", "0db8", "0000", "0000", "0000", "0000", "0000", "0001")),
    ("2001:db8:1:2::/64", ("2001", "0db8", "0001", "0002")),
], ids=["v4-32", "v4-24", "v4-8", "v6-128", "v6-64"])
def test_network_parts_round_trip(network: str, parts: tuple[str, ...]) -> None:
    net = ipaddress.ip_network(network)
    assert network_parts(net) == parts
    assert network_from_parts(net.version, parts) == net


@given(st.ip_addresses())
def test_address_parts_round_trip(address) -> None:
    parts = address_parts(address)
    full = ipaddress.ip_network(address)
    assert network_from_parts(address.version, parts) == full


@pytest.mark.parametrize("parts", [("057",), ("256",), ("1", "2", "3", "4", "5"), ("db8",), ("2001", "DB80")],
                         ids=["leading-zero", "big", "too-deep", "short-group", "upper-hex"])
def test_network_from_parts_refuses(parts: tuple[str, ...]) -> None:
    version = 6 if any(len(p) == 4 or not p.isdigit() for p in parts) else 4
    with pytest.raises(BadRelay):
        network_from_parts(version, parts)


@pytest.mark.parametrize("network,count,first", [
    ("10.0.0.0/20", 16, "10.0.0.0/24"),
    ("10.0.0.0/24", 1, "10.0.0.0/24"),
    ("10.0.0.128/25", 128, "10.0.0.128/32"),
    ("2001:db8::/62", 4, "2001:db8::/64"),
], ids=["v4-20", "v4-24", "v4-25", "v6-62"])
def test_boundary_networks_cover_exactly(network: str, count: int, first: str) -> None:
    net = ipaddress.ip_network(network)
    pieces = boundary_networks(net)
    assert len(pieces) == count and str(pieces[0]) == first
    assert sum(p.num_addresses for p in pieces) == net.num_addresses
    assert all(p.subnet_of(net) for p in pieces)


def test_boundary_expansion_is_bounded() -> None:
    with pytest.raises(BadRelay, match="split it"):
        boundary_networks(ipaddress.ip_network("2001:db8::/49"))


def test_escaped_bytes_that_are_utf8_are_that_text() -> None:
    # "\xad" (soft hyphen) is C2 AD in UTF-8: the same address whether it came as text or as raw bytes.
    assert parse_sender("\udcc2\udcad@ex.org") == parse_sender("\xad@ex.org") == "\xad@ex.org"
    assert parse_sender(b"\xc2\xad@ex.org") == "\xad@ex.org"
    assert parse_sender("\udcff@ex.org") == "\udcff@ex.org"  # a byte that is no UTF-8 stays escaped
