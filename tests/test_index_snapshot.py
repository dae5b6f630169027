"""The index snapshot: a restart reads it instead of db/, and never serves what db/ no longer says."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from fswl.app.home import Home
from fswl.index import Index
from fswl.index.loader import load_all
from fswl.index.memory import MemoryIndex
from tests.harness.dnsd import fswl_serve
from tests.shell import ln_s, touch

ZONE = "wl.example.org"
#: Directories are dated this far back, so their mtimes are not "racy" (see fswl.index.loader.stamp).
AGE_SECONDS = 3600


@pytest.fixture
def built(home: Home) -> Home:
    wl = home.whitelist
    for i in range(40):
        wl.add(f"user{i}@example.com", f"10.0.{i}.1")
    wl.add("*@lists.example.net", "10.0.5.0/24")
    wl.add("*", "192.0.2.0/24")
    wl.add("*@aol.com", "64.12.88.0/24")
    wl.link("64.12.88.0/24", "aol-out")
    wl.add("bob@example.net", "2001:db8::1")
    age(home.db)
    return home


def age(db: Path) -> None:
    """Date every directory back, as on a server where db/ was written long ago."""
    old = time.time() - AGE_SECONDS
    for directory, _dirs, _files in os.walk(db):
        os.utime(directory, (old, old))


def snapshot_path(home: Home) -> Path:
    return home.root / "cache" / "index.snapshot"


def started(home: Home) -> Index:
    index = Index(home.whitelist, snapshot_path=snapshot_path(home))
    index.start()
    index.stop()  # the watcher is not under test here; stop() saves again only if something changed
    return index


def fresh(home: Home) -> MemoryIndex:
    index = MemoryIndex(home.whitelist.tree)
    load_all(index)
    return index


def same_tables(one: MemoryIndex, two: MemoryIndex) -> None:
    assert one.entries == two.entries
    assert {k: v for k, v in one.levels.items() if v} == {k: v for k, v in two.levels.items() if v}
    assert one.linked == two.linked
    assert {v: list(s) for v, s in one.starts.items()} == {v: list(s) for v, s in two.starts.items()}


def test_a_restart_reads_the_snapshot(built: Home) -> None:
    first = started(built)
    assert first.loaded_from == "db" and snapshot_path(built).is_file()
    second = started(built)
    assert second.loaded_from == "snapshot"
    same_tables(second, fresh(built))
    assert second.lookup("x@aol.com", "64.12.88.7").via == "groups/aol-out"


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage", "other-format"])
def test_a_damaged_snapshot_is_rebuilt(built: Home, damage: str) -> None:
    started(built)
    path = snapshot_path(built)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[len(data) * 2 // 3:]
    elif damage == "empty":
        data = bytearray()
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:
        data[:10] = b"FSWL-OTHER"
    path.write_bytes(bytes(data))
    index = started(built)
    assert index.loaded_from == "db"
    same_tables(index, fresh(built))
    assert started(built).loaded_from == "snapshot"  # and a good one was written again


def test_a_snapshot_of_another_tree_is_not_used(built: Home, tmp_path: Path) -> None:
    started(built)
    other = Home(tmp_path / "other")
    other.whitelist.add("eve@evil.example", "198.51.100.1")
    shutil.copy(snapshot_path(built), tmp_path / "stolen")
    snapshot_path(other).parent.mkdir(parents=True)
    shutil.copy(tmp_path / "stolen", snapshot_path(other))
    index = started(other)
    assert index.loaded_from == "db" and index.lookup("user1@example.com", "10.0.1.1") is None


CHANGES = {
    "touch": lambda db: touch(db / "ip4/10/0/3/1/new@example.com"),
    "rm": lambda db: os.unlink(db / "ip4/10/0/4/1/user4@example.com"),
    "rm relay": lambda db: shutil.rmtree(db / "ip4/10/0/7"),
    "new relay": lambda db: touch(db / "ip4/172/16/0/9/carol@example.org"),
    "new family": lambda db: shutil.rmtree(db / "ip6"),
    "ln -s": lambda db: (touch(db / "groups/isp/*@example.org"), ln_s("../../../../groups/isp", db / "ip4/10/0/9/2")),
    "group entry": lambda db: touch(db / "groups/aol-out/dave@example.org"),
    "relink": lambda db: (os.unlink(db / "ip4/64/12/88"), touch(db / "groups/b/*"), ln_s("../../../groups/b", db / "ip4/64/12/88")),
    "unlink": lambda db: os.unlink(db / "ip4/64/12/88"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_changes_made_while_down_are_read_again(built: Home, change: str) -> None:
    started(built)
    CHANGES[change](built.db)
    index = started(built)
    assert index.loaded_from == "snapshot"
    same_tables(index, fresh(built))


def test_a_change_in_the_same_tick_as_the_read_is_not_missed(home: Home) -> None:
    # No aging: every directory was just written, so each is stamped "read again".
    home.whitelist.add("dave@umkc.edu", "57.129.134.63")
    started(home)
    touch(home.db / "ip4/57/129/134/63/eve@umkc.edu")
    index = started(home)
    assert index.lookup("eve@umkc.edu", "57.129.134.63") is not None
    same_tables(index, fresh(home))


def test_the_server_answers_what_changed_while_it_was_down(built: Home) -> None:
    name = f"user4.example.com.1.4.0.10.{ZONE}"
    new = f"carol.example.org.9.0.16.172.{ZONE}"

    def rcode(port: int, qname: str) -> int:
        return dns.query.udp(dns.message.make_query(qname, "A"), "127.0.0.1", port=port, timeout=5).rcode()

    with fswl_serve(built.root, "dns") as port:
        assert rcode(port, name) == dns.rcode.NOERROR and rcode(port, new) == dns.rcode.NXDOMAIN
    written = snapshot_path(built).stat().st_mtime_ns
    os.unlink(built.db / "ip4/10/0/4/1/user4@example.com")
    touch(built.db / "ip4/172/16/0/9/carol@example.org")
    with fswl_serve(built.root, "dns") as port:
        assert rcode(port, name) == dns.rcode.NXDOMAIN and rcode(port, new) == dns.rcode.NOERROR
    assert snapshot_path(built).stat().st_mtime_ns > written  # it was used, brought up to date and saved
