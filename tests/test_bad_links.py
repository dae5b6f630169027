"""Loops, dangling links and links out of db/ are reported misses everywhere: serve, fsck, ls, export, digests.

One bad link must never stop a service or a command, nor hide the entries
beside it (issue 14: `ln -s 4 db/ip4/10/1/1/4` used to stop `fswl serve`).
"""

from __future__ import annotations

import os
from pathlib import Path

import dns.message
import dns.query
import pytest

from fswl.app.home import Home
from fswl.index import Index
from fswl.store.tree import LINK_DANGLING, LINK_ESCAPES, LINK_LOOP, LINK_OK
from fswl.sync.digests import LINK, Digests
from tests.conftest import REPO, run_fswl
from tests.harness.dnsd import serve
from tests.shell import ln_s, touch, wait_for

ZONE = "wl.example.org"
#: name in db/ -> (target, what check_link says)
BAD_LINKS = {
    "ip4/10/1/1/4": ("4", LINK_LOOP),  # the self-loop
    "ip4/10/1/1/5": ("6", LINK_LOOP),  # a two-link loop
    "ip4/10/1/1/6": ("5", LINK_LOOP),
    "ip4/10/1/1/7": ("../../../../groups/missing", LINK_DANGLING),
    "ip4/10/1/1/8": ("/", LINK_ESCAPES),
    "ip4/10/1/1/10": ("../../../../..", LINK_ESCAPES),  # climbs above db/
    "ip4/10/2": ("2", LINK_LOOP),  # a loop at a /16, above other relays' level
    "groups/isp/loop@isp.example": ("loop@isp.example", LINK_LOOP),  # an entry-named link in a group
    "groups/isp/sub": ("sub", LINK_LOOP),
    "groups/elsewhere": ("/etc", LINK_ESCAPES),  # a group that is a link out
    "ip6": ("ip6", LINK_LOOP),  # a whole family
}


def make_tree(root: Path) -> Home:
    """Good entries (a relay, its neighbours, a group) with every kind of bad link beside them."""
    home = Home(root)
    wl = home.whitelist
    for last in (3, 9):
        wl.add("*", f"10.1.1.{last}")
    wl.add("dave@umkc.edu", "10.1.1.9")
    wl.add("*@isp.example", "10.1.3.0/24")
    wl.link("10.1.3.0/24", "isp")
    (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\n')
    for name, (target, _state) in BAD_LINKS.items():
        ln_s(target, root / "db" / name)
    return home


def test_check_link_names_each_kind(tmp_path: Path) -> None:
    home = make_tree(tmp_path / "home")
    tree = home.whitelist.tree
    for name, (_target, state) in BAD_LINKS.items():
        check = tree.check_link(os.path.join(tree.db, name))
        assert (name, check.state) == (name, state)
        assert check.resolved is None and "a miss for every lookup" in check.problem
    good = tree.check_link(os.path.join(tree.db, "ip4/10/1/3"))
    assert good.state == LINK_OK and good.resolved == os.path.join(tree.db, "groups/isp") and not good.problem


def test_fsck_names_each_bad_link_and_ls_export_complete(tmp_path: Path) -> None:
    root = tmp_path / "home"
    make_tree(root)
    fsck = run_fswl(root, "fsck")
    assert fsck.returncode == 1, fsck.stderr
    report = fsck.stdout + fsck.stderr
    assert "Too many levels" not in report and "Traceback" not in report
    for name, (_target, state) in BAD_LINKS.items():
        line = next((x for x in report.splitlines() if x.startswith(name + ":")), None)
        assert line is not None, f"fsck does not name {name}: {report}"
        assert {"loop": "loop", "dangling": "dangling", "escapes": "outside db/"}[state] in line, line
    documented = (REPO / "docs/tree.md").read_text().split("`fswl fsck` names each one, e.g.", 1)[1]
    for line in documented.split("```")[1].strip().splitlines():  # docs/tree.md quotes fsck word for word
        assert line in report.splitlines(), line
    for relay, listed in (("10.1.1.3", 0), ("10.1.1.4", 1), ("10.1.1.8", 1), ("10.2.0.1", 1), ("2001:db8::1", 1)):
        check = run_fswl(root, "check", "x@y.org", relay)
        assert check.returncode == listed and "Traceback" not in check.stderr, (relay, check.stderr)
    listing = run_fswl(root, "ls")
    assert listing.returncode == 0, listing.stderr
    assert "10.1.1.3/32 *" in listing.stdout and "10.1.1.9/32 dave@umkc.edu" in listing.stdout
    assert "10.1.3.0/24 *@isp.example" in listing.stdout
    assert "ip4/10/1/1/4: a symlink loop" in listing.stderr
    for form in ("rbldnsd", "zone"):
        out = tmp_path / f"export.{form}"
        export = run_fswl(root, "export", "--format", form, "-o", str(out))
        assert export.returncode == 0, export.stderr
        text = out.read_text()
        assert "3.1.1.10" in text and "9.1.1.10" in text and "umkc" in text, text[:2000]
        assert "not followed; see `fswl fsck`" in export.stderr


def _answer(port: int, name: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(f"{name}.{ZONE}", "A"), "127.0.0.1", port=port, timeout=5)
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


@pytest.mark.parametrize("watch", [True, False], ids=["inotify", "sweep"])
def test_serve_starts_beside_bad_links_and_survives_new_ones(tmp_path: Path, watch: bool) -> None:
    root = tmp_path / "home"
    make_tree(root)
    if not watch:
        with open(root / "fswl.toml", "a") as config:
            config.write("[store]\nwatch_tree = false\nsweep_seconds = 1\n")
    with serve(root, "dns", args=("--listen", "127.0.0.1:0")) as ports:
        port = ports["dns"]
        assert _answer(port, "3.1.1.10") == ["127.0.0.4"]
        assert _answer(port, "dave.umkc.edu.9.1.1.10") == ["127.0.0.2"]
        assert _answer(port, "x.isp.example.7.3.1.10") == ["127.0.0.3"]  # through the good group link
        for last in (4, 5, 7, 8, 10):
            assert _answer(port, f"{last}.1.1.10") == []
        # Made while serving (the reload path): new bad links beside a new entry in the same directory.
        db = root / "db"
        ln_s("11", db / "ip4/10/1/1/11")
        ln_s("/", db / "ip4/10/1/1/12")
        ln_s("13", db / "ip4/10/1/1/9/13")  # inside a relay that holds entries
        touch(db / "ip4/10/1/1/9/erin@example.org")
        touch(db / "ip4/10/1/1/14/*")
        assert wait_for(lambda: _answer(port, "erin.example.org.9.1.1.10") == ["127.0.0.2"], seconds=10)
        assert wait_for(lambda: _answer(port, "14.1.1.10") == ["127.0.0.4"], seconds=10)
        assert _answer(port, "dave.umkc.edu.9.1.1.10") == ["127.0.0.2"]
        # A good level turned into a loop by hand: a miss, the rest answers.
        os.unlink(db / "ip4/10/1/1/3/*")
        os.rmdir(db / "ip4/10/1/1/3")
        ln_s("3", db / "ip4/10/1/1/3")
        assert wait_for(lambda: _answer(port, "3.1.1.10") == [], seconds=10)
        assert _answer(port, "14.1.1.10") == ["127.0.0.4"]


def test_index_reloads_through_every_bad_link(tmp_path: Path) -> None:
    """The index's own reload paths (change log and sweep) with a link made loopy under a level it knows."""
    home = make_tree(tmp_path / "home")
    index = Index(home.whitelist, home.changelog_path, watch=False, sweep_seconds=0)
    index.start()
    try:
        assert index.lookup("x@y.org", "10.1.1.3") is not None
        for rel in ("ip4/10/1/1/4/a@b.org", "ip4/10/2/5/5/x@y.org", "ip4/10/1/1/8/etc", "groups/isp/sub/x"):
            index.mark(rel)  # as inotify or the change log would name a path through the link
        home.whitelist.add("new@y.org", "10.1.1.9")
        assert wait_for(lambda: index.lookup("new@y.org", "10.1.1.9") is not None, seconds=5)
        assert index.lookup("a@b.org", "10.1.1.4") is None
        assert index.lookup("x@isp.example", "10.1.3.1") is not None
    finally:
        index.stop()


def test_digests_skip_bad_links_and_keep_the_rest(tmp_path: Path) -> None:
    home = make_tree(tmp_path / "home")
    digests = Digests(home.whitelist.db)
    level = digests.listings["ip4/10/1/1"]
    assert {"3", "9"} <= set(level)
    assert not {"4", "5", "6", "7", "8", "10"} & set(level)
    assert digests.listings["ip4/10/1"]["3"][0] == LINK  # the good group link is compared
    assert "2" not in digests.listings["ip4/10"]


def test_the_sweep_never_follows_a_level_replaced_by_a_link_out(tmp_path: Path) -> None:
    """A level read before is moved out of db/ and linked back by hand: its entries are then outside, and a miss."""
    from fswl.index.loader import changed_directories, refresh_directory

    home = make_tree(tmp_path / "home")
    index = Index(home.whitelist, watch=False, sweep_seconds=0)
    index.start()
    try:
        assert index.lookup("dave@umkc.edu", "10.1.1.9") is not None
        outside = tmp_path / "outside"
        os.rename(home.db / "ip4/10/1/1", outside)
        os.symlink(str(outside), home.db / "ip4/10/1/1")
        # The sweep checks a share of directories at a time: the relays' own may come up a pass before
        # their parent's, whose change (a link now) has not been read yet.
        deeper = [rel for rel in index.stamps if rel.startswith("ip4/10/1/1/")]
        with index.lock:
            for rel in changed_directories(index.tree.db, index.stamps, deeper):
                refresh_directory(index, rel)
        assert index.lookup("dave@umkc.edu", "10.1.1.9") is None
        assert index.lookup("x@y.org", "10.1.1.3") is None
        with index.lock:  # then the rest of the pass
            for rel in changed_directories(index.tree.db, index.stamps, list(index.stamps)):
                refresh_directory(index, rel)
        assert index.lookup("dave@umkc.edu", "10.1.1.9") is None
        assert index.lookup("x@y.org", "10.1.1.3") is None
        assert index.lookup("x@isp.example", "10.1.3.1") is not None
    finally:
        index.stop()
