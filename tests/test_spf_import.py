"""`fswl import-spf` against a real authoritative DNS server on a loopback port."""

from __future__ import annotations

import pytest

from tests.harness.authdns import ZoneResolver, authoritative_dns
from tests.shell import files_under

LISTS = "".join(f'l{n}.example. TXT "v=spf1 ip4:172.16.{n}.0/24 -all"\n' for n in range(1, 12))
INCLUDES = " ".join(f"include:l{n}.example" for n in range(1, 12))
ZONE = f"""
$TTL 300
main.example.       TXT "v=spf1 ip4:192.0.2.0/24 include:inc1.example a mx ip6:2001:db8:1::/48 -all"
main.example.       A 198.51.100.10
main.example.       MX 10 mx.main.example.
mx.main.example.    A 198.51.100.20
mx.main.example.    AAAA 2001:db8:2::25
inc1.example.       TXT "v=spf1 include:inc2.example ip4:203.0.113.0/28 ~all"
inc2.example.       TXT "v=spf1 ip4:100.64.0.0/16 a:host.inc2.example/24 -all"
host.inc2.example.  A 100.65.1.7
redir.example.      TXT "v=spf1 redirect=target.example"
target.example.     TXT "v=spf1 ip4:10.9.0.0/20 ip6:2001:db8:abcd::/33 -all"
qual.example.       TXT "v=spf1 -ip4:192.0.2.128/25 ip4:192.0.2.0/24 ?include:inc2.example exists:%{{i}}.x.example -all"
loop1.example.      TXT "v=spf1 include:loop2.example -all"
loop2.example.      TXT "v=spf1 include:loop1.example -all"
ten.example.        TXT "v=spf1 {' '.join(INCLUDES.split()[:10])} -all"
many.example.       TXT "v=spf1 {INCLUDES} -all"
bad.example.        TXT "v=spf1 ip4:300.1.2.3 -all"
slow.example.       TXT "v=spf1 include:sleepy.example -all"
sleepy.example.     TXT "v=spf1 ip4:10.1.1.1 -all"
{LISTS}"""

MAIN = [
    "ip4/100/64/*@main.example",
    "ip4/100/65/1/*@main.example",
    "ip4/192/0/2/*@main.example",
    "ip4/198/51/100/10/*@main.example",
    "ip4/198/51/100/20/*@main.example",
    *[f"ip4/203/0/113/{n}/*@main.example" for n in range(16)],
    "ip6/2001/0db8/0001/*@main.example",
    "ip6/2001/0db8/0002/0000/0000/0000/0000/0025/*@main.example",
]


def entries(home, domain: str) -> list[str]:
    return sorted(p for p in files_under(home.db) if p.endswith("/*@" + domain) and "/.tomb/" not in p)


@pytest.fixture
def dns_zone():
    resolver = ZoneResolver(ZONE, slow=("sleepy.example",), delay=3.0)
    with authoritative_dns(resolver) as port:
        yield resolver, f"127.0.0.1:{port}"


def test_nested_includes_a_mx_ip6_list_exactly_these_prefixes(home, fswl, dns_zone) -> None:
    _, server = dns_zone
    result = fswl("import-spf", "main.example", "--nameserver", server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert entries(home, "main.example") == sorted(MAIN)
    assert "203.0.113.0/28 (as 16 /32s)" in result.stdout


def test_redirect_and_widening_are_shown(home, fswl, dns_zone) -> None:
    _, server = dns_zone
    result = fswl("import-spf", "redir.example", "--nameserver", server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert entries(home, "redir.example") == sorted(
        [f"ip4/10/9/{n}/*@redir.example" for n in range(16)] + ["ip6/2001/0db8/*@redir.example"])
    assert "note: 2001:db8:8000::/33 widened to 2001:db8::/32" in result.stdout


def test_qualifiers_first_match_and_client_macros(home, fswl, dns_zone) -> None:
    _, server = dns_zone
    result = fswl("import-spf", "qual.example", "--nameserver", server)
    assert result.returncode == 0, result.stdout + result.stderr
    # -ip4:.../25 shadows half of the /24; ?include lists nothing; exists:%{i} cannot be listed
    assert entries(home, "qual.example") == sorted(f"ip4/192/0/2/{n}/*@qual.example" for n in range(128))
    assert "exists:%{i}.x.example depends on the client" in result.stdout


def test_ten_lookups_pass_eleven_fail(home, fswl, dns_zone) -> None:
    _, server = dns_zone
    result = fswl("import-spf", "ten.example", "many.example", "--nameserver", server)
    assert result.returncode == 1
    assert len(entries(home, "ten.example")) == 10
    assert entries(home, "many.example") == []
    assert "many.example: error: permerror: more than 10 DNS lookups" in result.stdout
    assert "ten.example: 5 network(s), 10 DNS lookup(s)" in result.stdout


def test_errors_are_per_domain_and_do_not_stop_the_others(home, fswl, dns_zone) -> None:
    _, server = dns_zone
    result = fswl("import-spf", "loop1.example", "missing.example", "bad.example", "slow.example", "not a domain",
                  "inc2.example", "--nameserver", server, "--timeout", "1")
    assert result.returncode == 1
    out = result.stdout
    assert "loop1.example: error: permerror: include/redirect loop: loop1.example -> loop2.example -> loop1.example" in out
    assert "missing.example: error: NXDOMAIN" in out
    assert "bad.example: error: permerror: Invalid IP4 address" in out
    assert "slow.example: error: temperror: DNS timeout looking up sleepy.example" in out
    assert "not a domain: error: not a domain" in out
    assert "1 of 6 domain(s) imported" in out
    assert entries(home, "inc2.example") == ["ip4/100/64/*@inc2.example", "ip4/100/65/1/*@inc2.example"]


def test_reimport_removes_exactly_the_dropped_prefixes(home, fswl, dns_zone) -> None:
    resolver, server = dns_zone
    fswl("add", "*@main.example", "198.51.100.20", check=True)  # listed by hand before the import
    fswl("add", "*@other.example", "198.51.100.10", check=True)
    assert fswl("import-spf", "main.example", "redir.example", "--nameserver", server).returncode == 0
    resolver.load(ZONE.replace(" a mx ", " ").replace(" ip4:203.0.113.0/28", "")
                  .replace('"v=spf1 redirect=target.example"', '"v=spf1 include:loop1.example"'))
    result = fswl("import-spf", "main.example", "redir.example", "--nameserver", server)
    assert result.returncode == 1  # redir.example now loops: its earlier import stays
    dropped = {"ip4/198/51/100/10/*@main.example", "ip6/2001/0db8/0002/0000/0000/0000/0000/0025/*@main.example",
               *[f"ip4/203/0/113/{n}/*@main.example" for n in range(16)]}
    assert entries(home, "main.example") == sorted(set(MAIN) - dropped)  # .../20 stays: it was there before
    assert entries(home, "other.example") == ["ip4/198/51/100/10/*@other.example"]
    assert len(entries(home, "redir.example")) == 17
    assert result.stdout.count("(left the record)") == 18
    assert fswl("check", "x@main.example", "198.51.100.10").returncode == 1


def test_import_source_replaces_only_its_own_entries(home, fswl) -> None:
    fswl("add", "*", "192.0.2.7", check=True)
    first = fswl("import", "--source", "dwl", "-", input="192.0.2.0/30\n198.51.100.0/24\n2001:db8::/48\n", check=True)
    assert "source dwl: 6 entries listed, 0 removed" in first.stdout
    fswl("import", "--source", "other", "-", input="198.51.100.0/24\n", check=True)
    again = fswl("import", "--source", "dwl", "-", input="192.0.2.1\n192.0.2.7\n", check=True)
    # 192.0.2.0, .2, .3 and 2001:db8::/48 left dwl; 198.51.100.0/24 stays for "other"; .7 was there first
    assert "source dwl: 2 entries listed, 4 removed" in again.stdout
    relays = sorted(p for p in files_under(home.db) if p.endswith("/*") and "/.tomb/" not in p)
    assert relays == ["ip4/192/0/2/1/*", "ip4/192/0/2/7/*", "ip4/198/51/100/*"]
    fswl("import", "--source", "dwl", "-", input="", check=True)
    fswl("import", "--source", "other", "-", input="", check=True)
    relays = sorted(p for p in files_under(home.db) if p.endswith("/*") and "/.tomb/" not in p)
    assert relays == ["ip4/192/0/2/7/*"]
    bad = fswl("import", "--source", "../x", "-", input="")
    assert bad.returncode == 2 and "Not a source name" in bad.stderr


@pytest.mark.parametrize("args,message", [
    (("import-spf",), "no domains given"),
    (("import-spf", "a.example", "--nameserver", "nonsense"), "not a listen address"),
    (("import-spf", "a.example", "--nameserver", "127.0.0.1:99999"), "not a listen address"),
])
def test_bad_input_is_one_line_and_exit_2(fswl, args, message: str) -> None:
    result = fswl(*args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


def test_nameservers_parse() -> None:
    from fswl.populate.spf import parse_nameserver

    assert parse_nameserver("192.0.2.1") == ("192.0.2.1", 53)
    assert parse_nameserver("192.0.2.1:5300") == ("192.0.2.1", 5300)
    assert parse_nameserver("2001:db8::1") == ("2001:db8::1", 53)
    assert parse_nameserver("[2001:db8::1]:5300") == ("2001:db8::1", 5300)


def test_dry_run_changes_nothing_and_domains_come_from_a_file(home, fswl, dns_zone) -> None:
    _, server = dns_zone
    result = fswl("import-spf", "--from-file", "-", "--nameserver", server, "--dry-run",
                  input="# the domains we trust\nmain.example\n\ninc2.example  # a partner\n")
    assert result.returncode == 0 and "*@main.example 192.0.2.0/24" in result.stdout
    assert "*@inc2.example 100.64.0.0/16" in result.stdout and "2 of 2 domain(s) imported (dry run)" in result.stdout
    assert entries(home, "main.example") == [] and not (home.root / "state").exists()


def test_a_family_that_fails_keeps_its_earlier_import(home, fswl, dns_zone) -> None:
    resolver, server = dns_zone
    hosts = "".join(f"h{n}.fam.example. A 198.18.0.{n}\n" for n in (1, 2, 3))
    resolver.load(ZONE + 'fam.example. TXT "v=spf1 ip4:198.19.3.0/24 ip6:2001:db8:77::/48 -all"\n' + hosts)
    assert fswl("import-spf", "fam.example", "--nameserver", server).returncode == 0
    # three a: terms without AAAA: three void lookups for an IPv6 client, a permerror for IPv6 only
    resolver.load(ZONE + 'fam.example. TXT "v=spf1 ip4:198.19.4.0/24 ip6:2001:db8:78::/48 '
                  'a:h1.fam.example a:h2.fam.example a:h3.fam.example -all"\n' + hosts)
    result = fswl("import-spf", "fam.example", "--nameserver", server)
    assert result.returncode == 1
    assert "fam.example: error (IPv6): permerror: Void lookup limit of 2 exceeded" in result.stdout
    assert entries(home, "fam.example") == sorted([
        "ip4/198/18/0/1/*@fam.example", "ip4/198/18/0/2/*@fam.example", "ip4/198/18/0/3/*@fam.example",
        "ip4/198/19/4/*@fam.example", "ip6/2001/0db8/0077/*@fam.example"])


@pytest.mark.parametrize("domain", ["main.example", "qual.example", "redir.example", "inc1.example"])
def test_expansion_agrees_with_pyspf_evaluating_each_address(dns_zone, domain: str) -> None:
    """pyspf's own check of an address passes exactly when the address is in the expansion."""
    import ipaddress

    import spf

    from fswl.populate.spf import Resolver, expand, parse_nameserver, using

    _, server = dns_zone
    resolver = Resolver(parse_nameserver(server), timeout=2)
    expansion = expand(domain, resolver)
    assert expansion.ok, expansion.errors
    networks = [n for family in expansion.networks.values() for n in family]
    probes = set()
    for network in networks + [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:2::/120")]:
        for offset in (-1, 0, 1):
            for edge in (network.network_address, network.broadcast_address):
                try:
                    probes.add(edge + offset)
                except ipaddress.AddressValueError:
                    continue
    with using(resolver):
        for address in sorted(probes, key=lambda a: (a.version, a)):
            result, _ = spf.query(i=str(address), s=f"x@{domain}", h=domain, timeout=2).check()[::2]
            assert (result == "pass") == any(address in n for n in networks), (address, result)
