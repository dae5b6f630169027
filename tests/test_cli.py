"""The `fswl` command as users type it: a real subprocess, checked against the files on disk."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fswl.app.home import Home
from tests.shell import files_under, ln_s, touch

DAY = 86400


def assert_one_line_error(result, code: int = 2) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fswl: "), result.stderr


def test_tour(fswl, home: Home) -> None:
    assert fswl("add", "Dave@UMKC.edu", "57.129.134.63").stdout == "added ip4/57/129/134/63/dave@umkc.edu\n"
    fswl("add", "*@lists.umkc.edu", "57.129.134.0/24", check=True)
    assert (home.db / "ip4/57/129/134/*@lists.umkc.edu").is_file()

    hit = fswl("check", "dave@umkc.edu", "57.129.134.63")
    assert hit.returncode == 0
    assert hit.stdout.startswith("listed: dave@umkc.edu at 57.129.134.63/32 (127.0.0.2)")
    listed = fswl("check", "bob@lists.umkc.edu", "57.129.134.9")
    assert listed.returncode == 0 and "*@lists.umkc.edu at 57.129.134.0/24 (127.0.0.3)" in listed.stdout
    miss = fswl("check", "bob@example.org", "57.129.134.63")
    assert miss.returncode == 1 and miss.stdout.startswith("not listed")

    fswl("link", "57.129.134.63", "umkc-out", check=True)
    assert os.readlink(home.db / "ip4/57/129/134/63") == "../../../../groups/umkc-out"
    fswl("link", "57.129.134.64", "umkc-out", check=True)
    via = fswl("check", "dave@umkc.edu", "57.129.134.64")
    assert via.returncode == 0 and "via groups/umkc-out" in via.stdout

    ls = fswl("ls", "57.129.134.64").stdout.splitlines()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert ls == [
        f"57.129.134.0/24 *@lists.umkc.edu {today}",
        f"57.129.134.64/32 dave@umkc.edu {today} via groups/umkc-out",
    ]

    rm = fswl("rm", "dave@umkc.edu", "57.129.134.64")
    assert rm.stdout == "removed groups/umkc-out/dave@umkc.edu\n"
    assert (home.db / "groups/umkc-out/.tomb/dave@umkc.edu").is_file()
    assert fswl("check", "dave@umkc.edu", "57.129.134.63").returncode == 1
    fswl("unlink", "57.129.134.64", check=True)
    assert not (home.db / "ip4/57/129/134/64").is_symlink()


def test_expire_removes_idle_entries_and_old_tombstones(fswl, home: Home) -> None:
    now = time.time()
    fresh = touch(home.db / "ip4/10/0/0/1/fresh@x.org", now - 10 * DAY)
    idle = touch(home.db / "ip4/10/0/0/2/idle@x.org", now - 200 * DAY)
    grouped = touch(home.db / "groups/g/idle@g.org", now - 181 * DAY)
    tomb = touch(home.db / "ip4/10/0/0/1/.tomb/old@x.org", now - 500 * DAY)
    young_tomb = touch(home.db / "ip4/10/0/0/1/.tomb/young@x.org", now - 200 * DAY)

    dry = fswl("expire", "--dry-run")
    assert dry.returncode == 0
    assert sorted(dry.stdout.splitlines()) == sorted([
        "would remove groups/g/idle@g.org", "would remove ip4/10/0/0/2/idle@x.org",
        "would remove tombstone ip4/10/0/0/1/.tomb/old@x.org",
    ])
    assert idle.exists() and tomb.exists()

    fswl("expire", check=True)
    assert fresh.exists() and young_tomb.exists()
    assert not idle.exists() and not grouped.exists() and not tomb.exists()
    assert not (home.db / "ip4/10/0/0/2").exists()  # emptied relay directory pruned
    assert (home.db / "groups/g").is_dir()  # groups stay for their links

    fswl("expire", "--days", "5", check=True)
    assert not fresh.exists()


def test_expire_counts_from_the_later_of_the_add_and_the_last_seen_time(fswl, home: Home) -> None:
    now = time.time()
    used = touch(home.db / "ip4/10/0/0/1/used@x.org", now - 300 * DAY)  # added long ago, in use
    stale = touch(home.db / "ip4/10/0/0/1/stale@x.org", now - 300 * DAY)  # last seen long ago too
    wl = home.whitelist
    assert wl.touch_seen([str(used)], now - 3 * DAY) == 1
    assert wl.touch_seen([str(stale)], now - 190 * DAY) == 1
    listed = fswl("ls", check=True).stdout
    assert time.strftime("%Y-%m-%d", time.gmtime(now - 3 * DAY)) in listed  # ls shows what expiry counts from
    out = fswl("expire", check=True).stdout
    assert out == "removed ip4/10/0/0/1/stale@x.org\n"
    assert used.exists() and used.stat().st_mtime == pytest.approx(now - 300 * DAY)
    assert wl.last_seen.get("ip4/10/0/0/1/stale@x.org") is None  # the expired entry's row is gone
    # Being seen never outweighs a removal: the removal compares with the add time.
    fswl("rm", "used@x.org", "10.0.0.1", check=True)
    assert fswl("check", "used@x.org", "10.0.0.1").returncode == 1
    assert wl.touch_seen([str(used)], now + 10) == 0


def test_expire_reads_its_window_from_fswl_toml(fswl, home: Home) -> None:
    home.config_path.write_text("[store]\nexpire_days = 30\ntombstone_days = 60\n")
    entry = touch(home.db / "ip4/10/0/0/1/a@x.org", time.time() - 31 * DAY)
    fswl("expire", check=True)
    assert not entry.exists()
    home.config_path.write_text("[store]\nexpire_dayz = 30\n")
    bad = fswl("expire")
    assert_one_line_error(bad)
    assert "unknown setting store.expire_dayz" in bad.stderr


IMPORT_LIST = """\
# an rbldnsd ip4set, with the usual decorations
$TTL 3600
:127.0.0.2:Listed
192.0.2.0/24
198.51.100.7 :127.0.0.2:a relay
203.0.113.10-203.0.113.13
10.1
!10.1.2.3
2001:db8::/64
"""


def test_import_rbldnsd_and_cidr_lists(fswl, home: Home, tmp_path: Path) -> None:
    data = tmp_path / "list.txt"
    data.write_text(IMPORT_LIST)
    result = fswl("import", str(data))
    assert result.returncode == 0, result.stderr
    assert fswl("check", "x@y.org", "192.0.2.55").returncode == 0
    assert fswl("check", "x@y.org", "198.51.100.7").returncode == 0
    assert fswl("check", "x@y.org", "198.51.100.8").returncode == 1
    assert [fswl("check", "x@y.org", f"203.0.113.{n}").returncode for n in (9, 10, 13, 14)] == [1, 0, 0, 1]
    assert fswl("check", "x@y.org", "10.1.200.1").returncode == 0
    assert fswl("check", "x@y.org", "10.1.2.3").returncode == 1  # the exclusion holds
    assert fswl("check", "x@y.org", "2001:db8::abcd").returncode == 0
    listed = fswl("import", "-", "--sender", "*@example.org", input="10.20.30.0/24\n")
    assert listed.returncode == 0 and (home.db / "ip4/10/20/30/*@example.org").is_file()


def test_import_with_a_bad_line_imports_nothing(fswl, home: Home) -> None:
    result = fswl("import", "-", input="192.0.2.0/24\n300.1.2.3\nbogus\x00line\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "line 2" in result.stderr and "2 bad line(s)" in result.stderr and "--skip-bad" in result.stderr
    assert not (home.db / "ip4").exists()
    skipped = fswl("import", "-", "--skip-bad", input="192.0.2.0/24\n300.1.2.3\n")
    assert skipped.returncode == 0 and (home.db / "ip4/192/0/2/*").is_file()


@pytest.mark.parametrize("args,message", [
    (("add", "../../etc/passwd", "1.2.3.4"), "Not a sender: '../../etc/passwd' (no @domain)"),
    (("add", "a@b", "999.1.1.1"), "Not a relay IP or CIDR: '999.1.1.1'"),
    (("add", "a" * 10_000 + "@x.org", "1.2.3.4"), "longer than 254 octets"),
    (("add", "x@y.org", "0.0.0.0/0"), "whole Internet"),
    (("add", "x@y.org", "2001:db8::/33"), "split it"),
    (("check", "x@y.org", "10.0.0.0/8"), "Not a relay IP or CIDR"),
    (("link", "10.0.0.0/20", "g"), "a link stands for one tree directory"),
    (("link", "10.0.0.1", "../etc"), "Not a group name"),
    (("add",), "Missing argument"),
    (("frobnicate",), "No such command"),
], ids=["traversal", "octet", "10kB", "slash-0", "v6-too-wide", "check-cidr", "link-cidr", "group-name",
        "missing-arg", "no-command"])
def test_bad_input_is_one_line_and_exit_2(fswl, home: Home, args, message: str) -> None:
    result = fswl(*args)
    assert_one_line_error(result)
    assert message in result.stderr
    assert not (home.db / "ip4").exists()


def test_a_relay_dir_linked_to_root_is_refused(fswl, home: Home, tmp_path: Path) -> None:
    os.makedirs(home.db / "ip4/1/2/3")
    ln_s("/", home.db / "ip4/1/2/3/4")
    before = files_under(tmp_path)
    result = fswl("add", "x@y.org", "1.2.3.4")
    assert_one_line_error(result)
    assert "leads outside db/" in result.stderr
    assert files_under(tmp_path) == before
    check = fswl("check", "x@y.org", "1.2.3.4")
    assert check.returncode == 1 and "Traceback" not in check.stderr
    fsck = fswl("fsck")
    assert fsck.returncode == 1 and "ip4/1/2/3/4" in fsck.stdout and "outside db/" in fsck.stdout


def test_fsck_reports_and_repairs(fswl, home: Home) -> None:
    now = time.time()
    touch(home.db / "ip4/10/0/0/1/a@x.org", now)
    touch(home.db / "ip4/10/0/0/1/.tomb/a@x.org", now - 100)  # older tombstone: the entry wins
    touch(home.db / "ip4/10/0/0/1/Upper@X.org", now)
    ln_s("../../../../groups/none", home.db / "ip4/10/0/0/2")
    touch(home.db / "ip4/10/0/0/.link-abc123")
    report = fswl("fsck")
    assert report.returncode == 1
    out = report.stdout
    assert "Upper@X.org" in out and "ip4/10/0/0/2" in out and ".link-abc123" in out and "both listed and removed" in out
    fswl("fsck", "--repair")
    assert (home.db / "ip4/10/0/0/1/a@x.org").exists()
    assert not (home.db / "ip4/10/0/0/1/.tomb/a@x.org").exists()
    assert not (home.db / "ip4/10/0/0/.link-abc123").exists()


def test_home_comes_from_the_environment_or_the_option(tmp_path: Path) -> None:
    from tests.conftest import run_fswl

    other = tmp_path / "other"
    result = run_fswl(tmp_path / "unused", "--home", str(other), "add", "a@b.org", "10.0.0.1")
    assert result.returncode == 0 and (other / "db/ip4/10/0/0/1/a@b.org").is_file()
    assert not (tmp_path / "unused").exists()


def test_bare_fswl_prints_help(fswl) -> None:
    result = fswl()
    assert result.returncode == 2 and "Commands:" in result.stdout


def test_a_large_import_uses_every_core_and_writes_every_entry(fswl, home: Home) -> None:
    lines = [f"10.{a}.{b}.0/24" for a in range(100) for b in range(250)]  # 25,000: above the threshold
    result = fswl("import", "-", "--workers", "2", input="\n".join(lines) + "\n", timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "imported 25000 entries for * from <stdin>\n"
    assert sum(1 for _ in (home.db / "ip4/10").glob("*/*/*")) == 25000
    assert fswl("check", "x@y.org", "10.99.249.7").returncode == 0


def test_ls_and_check_never_print_control_bytes(fswl, home: Home) -> None:
    """A sender with a control byte is shown in its file-name form, so no escape reaches a terminal."""
    fswl("add", "a\x1b[2Jb@example.org", "192.0.2.1", check=True)
    assert (home.db / "ip4/192/0/2/1/a%1B[2jb@example.org").is_file()
    listing = fswl("ls", check=True).stdout
    assert "\x1b" not in listing and "192.0.2.1/32 a%1B[2jb@example.org " in listing
    hit = fswl("check", "a\x1b[2Jb@example.org", "192.0.2.1")
    assert hit.returncode == 0 and "listed: a%1B[2jb@example.org at 192.0.2.1/32" in hit.stdout
