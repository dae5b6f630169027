"""fswl.store: the tree on disk, the lookup order, groups, tombstones, links that escape."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from fswl.errors import Conflict, UnsafePath
from fswl.store import Change, Whitelist
from tests.shell import files_under, ln_s, touch


def test_add_writes_one_empty_file_per_boundary_prefix(wl: Whitelist) -> None:
    wl.add("Dave@UMKC.edu", "57.129.134.63")
    wl.add("*@lists.umkc.edu", "57.129.134.0/23")
    wl.add("*", "2001:db8:1:2::/64")
    assert files_under(wl.db) == sorted([
        "ip4", "ip4/57", "ip4/57/129", "ip4/57/129/134", "ip4/57/129/135",
        "ip4/57/129/134/63", "ip4/57/129/134/63/dave@umkc.edu",
        "ip4/57/129/134/*@lists.umkc.edu", "ip4/57/129/135/*@lists.umkc.edu",
        "ip6", "ip6/2001", "ip6/2001/0db8", "ip6/2001/0db8/0001", "ip6/2001/0db8/0001/0002",
        "ip6/2001/0db8/0001/0002/*",
    ])
    assert os.path.getsize(Path(wl.db, "ip4/57/129/134/63/dave@umkc.edu")) == 0


# Each row: entries (sender, relay) in the tree; the question; the entry and level that answer.
LOOKUPS = [
    ([("dave@umkc.edu", "57.129.134.63")], ("dave@umkc.edu", "57.129.134.63"), ("dave@umkc.edu", "57.129.134.63/32")),
    ([("dave@umkc.edu", "57.129.134.63")], ("DAVE@umkc.EDU", "57.129.134.63"), ("dave@umkc.edu", "57.129.134.63/32")),
    ([("dave@umkc.edu", "57.129.134.63")], ("bob@umkc.edu", "57.129.134.63"), None),
    ([("dave@umkc.edu", "57.129.134.63")], ("dave@umkc.edu", "57.129.134.64"), None),
    ([("*@umkc.edu", "57.129.134.63")], ("bob@umkc.edu", "57.129.134.63"), ("*@umkc.edu", "57.129.134.63/32")),
    ([("*@umkc.edu", "57.129.134.63")], ("bob@lists.umkc.edu", "57.129.134.63"), None),
    ([("*", "57.129.134.63")], ("anyone@any.org", "57.129.134.63"), ("*", "57.129.134.63/32")),
    ([("*", "57.129.134.0/24")], ("anyone@any.org", "57.129.134.200"), ("*", "57.129.134.0/24")),
    ([("dave@umkc.edu", "57.0.0.0/8")], ("dave@umkc.edu", "57.1.2.3"), ("dave@umkc.edu", "57.0.0.0/8")),
    # kind first, then level: an exact entry at a /8 beats a domain entry at the /32
    ([("dave@umkc.edu", "57.0.0.0/8"), ("*@umkc.edu", "57.129.134.63"), ("*", "57.129.134.63")],
     ("dave@umkc.edu", "57.129.134.63"), ("dave@umkc.edu", "57.0.0.0/8")),
    ([("*@umkc.edu", "57.129.0.0/16"), ("*", "57.129.134.63")],
     ("dave@umkc.edu", "57.129.134.63"), ("*@umkc.edu", "57.129.0.0/16")),
    # the more specific level wins within one kind
    ([("*", "57.0.0.0/8"), ("*", "57.129.134.63")], ("x@y.org", "57.129.134.63"), ("*", "57.129.134.63/32")),
    ([("bob@example.net", "2001:db8::1")], ("bob@example.net", "2001:db8::1"), ("bob@example.net", "2001:db8::1/128")),
    ([("*@example.net", "2001:db8:1:2::/64")], ("ann@example.net", "2001:db8:1:2::99"), ("*@example.net", "2001:db8:1:2::/64")),
    ([("*@example.net", "2001:db8:1:2::/64")], ("ann@example.net", "2001:db8:1:3::99"), None),
    ([("bob@example.net", "57.129.134.63")], ("bob@example.net", "::ffff:57.129.134.63"), ("bob@example.net", "57.129.134.63/32")),
]


@pytest.mark.parametrize("entries,question,expected", LOOKUPS, ids=[
    "exact", "case", "other-sender", "other-relay", "domain", "subdomain-no", "relay-wide", "prefix-24",
    "prefix-8", "kind-before-level", "domain-before-relay", "specific-level", "v6-exact", "v6-64", "v6-miss",
    "mapped-v4",
])
def test_lookup_order(wl: Whitelist, entries, question, expected) -> None:
    for sender, relay in entries:
        wl.add(sender, relay)
    match = wl.lookup(*question)
    if expected is None:
        assert match is None
    else:
        assert match is not None and (match.sender, str(match.network)) == expected
        assert os.path.isfile(match.path)


def test_group_links_share_entries(wl: Whitelist) -> None:
    wl.add("*@aol.com", "64.12.88.7")
    wl.link("64.12.88.7", "aol-out")  # the relay's own entry moves into the group
    wl.link("152.163.0.0/16", "aol-out")
    wl.add("alice@example.com", "64.12.88.7")  # lands in the group, for every member
    assert os.readlink(Path(wl.db, "ip4/64/12/88/7")) == "../../../../groups/aol-out"
    assert sorted(os.listdir(Path(wl.db, "groups/aol-out"))) == ["*@aol.com", "alice@example.com"]
    match = wl.lookup("alice@example.com", "152.163.40.1")
    assert match is not None and match.via == "groups/aol-out" and str(match.network) == "152.163.0.0/16"
    assert wl.lookup("bob@aol.com", "64.12.88.7").kind == "domain"


def test_nothing_is_made_below_a_linked_directory(wl: Whitelist) -> None:
    wl.link("152.163.0.0/16", "aol-out")
    with pytest.raises(Conflict, match="linked directory holds entries only"):
        wl.add("x@y.org", "152.163.5.9")
    assert files_under(Path(wl.db, "groups")) == ["aol-out"]


def test_linking_a_prefix_with_relays_below_it_is_refused_and_changes_nothing(wl: Whitelist) -> None:
    wl.add("a@b.org", "152.163.0.0/16")
    wl.add("c@d.org", "152.163.5.9")
    before = files_under(wl.db)
    with pytest.raises(Conflict, match="link those relays one by one"):
        wl.link("152.163.0.0/16", "aol-out")
    assert files_under(wl.db) == before


def test_unlink_keep_entries_copies_the_group_back(wl: Whitelist) -> None:
    wl.add("a@b.org", "10.1.1.1")
    wl.link("10.1.1.1", "g")
    wl.unlink("10.1.1.1", keep_entries=True)
    assert not os.path.islink(Path(wl.db, "ip4/10/1/1/1"))
    assert wl.lookup("a@b.org", "10.1.1.1").via is None
    wl.link("10.1.1.2", "g")
    wl.unlink("10.1.1.2")
    assert wl.lookup("a@b.org", "10.1.1.2") is None


def test_remove_leaves_a_tombstone_and_add_clears_it(wl: Whitelist) -> None:
    wl.add("dave@umkc.edu", "57.129.134.63")
    [(path, existed)] = wl.remove("dave@umkc.edu", "57.129.134.63")
    assert existed and not os.path.exists(path)
    tomb = Path(wl.db, "ip4/57/129/134/63/.tomb/dave@umkc.edu")
    assert tomb.is_file()
    assert wl.lookup("dave@umkc.edu", "57.129.134.63") is None
    wl.add("dave@umkc.edu", "57.129.134.63")
    assert not tomb.exists() and wl.lookup("dave@umkc.edu", "57.129.134.63") is not None


def test_a_replayed_older_add_loses_to_a_newer_tombstone(wl: Whitelist) -> None:
    now = time.time()
    wl.remove("dave@umkc.edu", "57.129.134.63")
    assert wl.add("dave@umkc.edu", "57.129.134.63", when=now - 3600) == []
    assert wl.lookup("dave@umkc.edu", "57.129.134.63") is None
    assert len(wl.add("dave@umkc.edu", "57.129.134.63", when=now + 1)) == 1
    assert os.stat(wl.lookup("dave@umkc.edu", "57.129.134.63").path).st_mtime == pytest.approx(now + 1)


def test_add_refreshes_the_add_time_and_seen_never_does(wl: Whitelist) -> None:
    [path] = wl.add("dave@umkc.edu", "57.129.134.63")
    os.utime(path, (1000, 1000))
    wl.add("dave@umkc.edu", "57.129.134.63")  # an explicit re-add
    added = os.stat(path).st_mtime
    assert added > time.time() - 60
    assert wl.touch_seen([path], when=added + 5000) == 1 and os.stat(path).st_mtime == added
    assert wl.last_seen.get(wl.tree.relative(path)) == added + 5000


def test_changes_are_announced(wl: Whitelist) -> None:
    seen: list[Change] = []
    wl.listeners.append(seen.append)
    wl.add("a@b.org", "10.0.0.1")
    wl.link("10.0.0.2", "g")
    wl.remove("a@b.org", "10.0.0.1")
    assert [(c.op, c.path) for c in seen] == [
        ("add", "ip4/10/0/0/1/a@b.org"), ("link", "ip4/10/0/0/2"), ("remove", "ip4/10/0/0/1/a@b.org"),
    ]
    assert seen[1].target == "../../../../groups/g"


@pytest.mark.parametrize("target", ["/", "/etc", "../../../../..", "../../../../../outside"],
                         ids=["root", "etc", "climb", "climb-dir"])
def test_links_out_of_db_are_never_followed_or_written_through(wl: Whitelist, tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside"
    touch(outside / "a@b.org")
    os.makedirs(Path(wl.db, "ip4/10/0/0"), exist_ok=True)
    ln_s(target, Path(wl.db, "ip4/10/0/0/1"))
    ln_s(str(outside), Path(wl.db, "ip4/10/0/0/2"))
    assert wl.lookup("a@b.org", "10.0.0.2") is None  # the file exists out there, but is not ours
    before = files_under(tmp_path)
    for relay in ("10.0.0.1", "10.0.0.2"):
        with pytest.raises(UnsafePath, match="outside db/|climbs above db/|does not exist"):
            wl.add("x@y.org", relay)
    assert files_under(tmp_path) == before


def test_dangling_and_looping_links_are_misses_not_crashes(wl: Whitelist) -> None:
    os.makedirs(Path(wl.db, "ip4/10/0/0"), exist_ok=True)
    ln_s("../../../../groups/missing", Path(wl.db, "ip4/10/0/0/1"))
    ln_s("3", Path(wl.db, "ip4/10/0/0/4"))
    ln_s("4", Path(wl.db, "ip4/10/0/0/3"))
    for relay in ("10.0.0.1", "10.0.0.3"):
        assert wl.lookup("a@b.org", relay) is None
        with pytest.raises(UnsafePath):
            wl.add("a@b.org", relay)


def test_admin_touch_and_ln_s_are_seen(wl: Whitelist) -> None:
    touch(Path(wl.db, "ip4/192/0/2/*"))
    touch(Path(wl.db, "groups/isp/*@isp.example"))
    ln_s("../../../../groups/isp", Path(wl.db, "ip4/198/51/100/7"))
    assert wl.lookup("x@y.org", "192.0.2.77").kind == "relay"
    assert wl.lookup("joe@isp.example", "198.51.100.7").via == "groups/isp"


def _hammer(db: str, worker: int, rounds: int) -> None:
    wl = Whitelist(db)
    for i in range(rounds):
        sender = f"user{i % 7}@example.org"
        if (i + worker) % 3:
            wl.add(sender, "10.9.8.7")
        else:
            wl.remove(sender, "10.9.8.7")
        if i % 25 == 0:
            wl.add("*", "10.9.8.0/24")


def test_many_writer_processes_on_one_relay(wl: Whitelist) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(wl.db, n, 300)) for n in range(6)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    relay = Path(wl.db, "ip4/10/9/8/7")
    names = sorted(os.listdir(relay))
    assert set(names) <= {".tomb"} | {f"user{i}@example.org" for i in range(7)}
    assert all(os.path.getsize(relay / n) == 0 for n in names if n != ".tomb")
    assert not [n for n in files_under(wl.db) if "/.link-" in n or n.endswith(".tmp")]
    assert wl.lookup("nobody@x.org", "10.9.8.7").kind == "relay"
