"""fswl export: golden text of both formats on a small tree, the mapping's rules, the CLI as a user runs it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fswl.dns.settings import DnsSettings
from fswl.dns.export_names import MAX_EXPANSION_ADDRESSES, ExportNames
from fswl.export.rbldnsd import dnset_name
from fswl.app.home import Home
from fswl.store import Whitelist

DATA = Path(__file__).parent / "data" / "export"
SERIAL = "2026112401"


def small_tree(wl: Whitelist) -> None:
    """The tree of tests/data/export/small.*: every kind of entry, a nested prefix, a group, IPv6."""
    wl.add("dave@umkc.edu", "57.129.134.63")
    wl.add("first.last@umkc.edu", "57.129.134.63")
    wl.add("*@lists.umkc.edu", "57.129.134.63")
    wl.add("*", "192.0.2.0/24")
    wl.add("bob@example.net", "192.0.2.7")
    wl.add("*@isp.example", "198.51.100.9")
    wl.link("198.51.100.9", "isp")
    wl.add("bob@example.net", "2001:db8::1")
    wl.add("*", "2001:db8:1::/48")


def names_of(wl: Whitelist, settings: DnsSettings | None = None) -> dict[str, tuple[str, str]]:
    export = ExportNames(wl.tree, settings or DnsSettings())
    return {".".join(label.decode("utf-8", "replace") for label in r.owner): (r.value, r.text) for r in export.records()}


@pytest.mark.parametrize("fmt,golden", [("zone", "small.zone"), ("rbldnsd", "small.rbldnsd")])
def test_golden_text(home: Home, wl: Whitelist, fswl, fmt: str, golden: str) -> None:
    small_tree(wl)
    result = fswl("export", "--format", fmt, "--serial", SERIAL, check=True)
    assert result.stdout == (DATA / golden).read_text()
    assert result.stderr == ""


def test_entries_at_a_prefix_are_written_for_each_address(wl: Whitelist) -> None:
    wl.add("*@lists.example", "203.0.113.0/24")
    wl.add("boss@lists.example", "203.0.113.0/24")
    names = names_of(wl)
    for last in (0, 77, 255):
        assert names[f"*.lists.example.{last}.113.0.203"] == ("127.0.0.3", "senders *@lists.example listed via 203.0.113.0/24")
        assert names[f"boss.lists.example.{last}.113.0.203"][0] == "127.0.0.2"
    assert "113.0.203" not in names and "*.113.0.203" not in names  # no relay-wide listing


def test_relay_wide_prefix_is_one_wildcard_and_stays_behind_names_below_it(wl: Whitelist) -> None:
    wl.add("*", "10.20.0.0/16")
    wl.add("carol@example.org", "10.20.5.9")
    names = names_of(wl)
    assert names["*.20.10"] == ("127.0.0.4", "relay 10.20.0.0/16 listed for every sender")
    # 5.20.10 exists (below it: 9.5.20.10), so RFC 4592 needs its own wildcard, and 9.5.20.10 its names.
    assert names["*.5.20.10"] == names["*.20.10"] == names["9.5.20.10"] == names["*.9.5.20.10"]
    assert names["*.example.org.9.5.20.10"][0] == "127.0.0.4"  # bob@example.org via the /16
    assert names["carol.example.org.9.5.20.10"] == ("127.0.0.2", "sender carol@example.org listed via 10.20.5.9/32")
    assert len([n for n in names if n.endswith(".20.10")]) == 10


def test_what_cannot_be_written_is_skipped_with_a_reason(wl: Whitelist) -> None:
    wl.add("*@example.net", "2001:db8:1:2::/64")
    wl.add("*", "2001:db8:1:2::/64")
    wl.add("dave@example.org", "127.0.0.2")
    export = ExportNames(wl.tree, DnsSettings())
    records = list(export.records())
    assert [r.text for r in records if r.value == "127.0.0.3"] == []
    assert any(r.owner[0] == b"*" and r.text.startswith("relay 2001:db8:1:2::/64") for r in records)
    assert len(export.skipped) == 2
    assert "*@example.net would take" in export.skipped[1] and str(MAX_EXPANSION_ADDRESSES) in export.skipped[1]
    assert "RFC 5782 test point" in export.skipped[0]


def test_a_long_local_part_has_only_the_hashed_name(wl: Whitelist) -> None:
    sender = "x" * 64 + "@example.org"
    wl.add(sender, "192.0.2.1")
    names = names_of(wl)
    assert [n for n in names if n.endswith("1.2.0.192")] == [
        next(n for n in names if n.endswith("1.2.0.192") and len(n.split(".")[0]) == 52)]


def test_settings_of_the_dns_table_are_used(home: Home, wl: Whitelist, fswl) -> None:
    home.config_path.write_text('[dns]\nzone = "wl.test"\nttl = 60\nnegative_ttl = 30\nns = ["a.ns.test", "b.ns.test"]\n'
                                'hostmaster = "first.last@wl.test"\n[web]\nbase_url = "https://wl.test/"\n')
    wl.add("dave@umkc.edu", "57.129.134.63")
    zone = fswl("export", "--format", "zone", "--serial", "7", check=True).stdout
    assert "$ORIGIN wl.test.\n$TTL 60\n" in zone
    assert "@ 60 IN SOA a.ns.test. first\\.last.wl.test. 7 3600 600 604800 30\n" in zone
    assert "@ 60 IN NS a.ns.test.\n@ 60 IN NS b.ns.test.\n" in zone and "https://wl.test/why" in zone
    rbl = fswl("export", "--format", "rbldnsd", "--serial", "7", check=True).stdout
    assert "$SOA 60 a.ns.test first\\.last.wl.test 7 3600 600 604800 30\n$NS 60 a.ns.test b.ns.test\n$TTL 60\n" in rbl


def test_rbldnsd_names_never_start_a_special_line() -> None:
    assert dnset_name((b"#x", b"example", b"org")) == "\\035x.example.org"
    assert dnset_name((b"!x",)) == "\\033x" and dnset_name((b"*", b"a")) == "*.a"
    assert dnset_name((b"a.b", b"c")) == "a\\.b.c" and dnset_name((b"$x",)) == "\\$x"


def test_output_file_is_replaced_whole(tmp_path: Path, wl: Whitelist, fswl) -> None:
    small_tree(wl)
    target = tmp_path / "out" / "wl.zone"
    target.parent.mkdir()
    target.write_text("old\n")
    result = fswl("export", "--format", "zone", "--serial", SERIAL, "--output", str(target))
    assert result.returncode == 0 and result.stdout == ""
    assert target.read_text() == (DATA / "small.zone").read_text()
    assert os.listdir(target.parent) == ["wl.zone"]  # no temporary file left behind


@pytest.mark.parametrize("args,message", [
    (["--format", "bind"], "'bind' is not one of 'rbldnsd', 'zone'"),
    ([], "Missing option '--format'"),
    (["--format", "zone", "--output", "/nonexistent/dir/wl.zone"], "no directory /nonexistent/dir"),
    (["--format", "zone", "--serial", "0"], "--serial"),
    (["--format", "zone", "--output", "db/ip4/wl.zone"], "inside db/"),
], ids=["bad-format", "no-format", "no-directory", "bad-serial", "inside-db"])
def test_bad_input_is_one_line_and_exit_2(home: Home, wl: Whitelist, fswl, args: list[str], message: str) -> None:
    wl.add("*", "192.0.2.1")
    args = [str(home.root / a) if a.startswith("db/") else a for a in args]
    result = fswl("export", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(os.listdir(home.db / "ip4")) == ["192"]  # nothing written into the tree


def test_skipped_entries_are_warned_about_and_the_rest_exported(wl: Whitelist, fswl) -> None:
    wl.add("*@example.net", "2001:db8:1:2::/64")
    wl.add("dave@umkc.edu", "57.129.134.63")
    result = fswl("export", "--format", "zone")
    assert result.returncode == 0 and "dave.umkc.edu.63.134.129.57 IN A 127.0.0.2" in result.stdout
    assert result.stderr.startswith("fswl: export: skipped 2001:db8:1:2::/64: *@example.net would take")


def test_every_name_is_written_once(wl: Whitelist) -> None:
    small_tree(wl)
    wl.add("*", "192.0.2.9")
    wl.add("*", "2001:db8::1")
    owners = [r.owner for r in ExportNames(wl.tree, DnsSettings()).records()]
    assert len(owners) == len(set(owners))
