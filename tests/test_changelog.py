"""The change log: fswl's writes from any process reach the index, with or without inotify."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from fswl.app.home import Home
from fswl.index import Index
from fswl.store import changelog
from fswl.store.changelog import ChangeFollower, ChangeLog
from tests.harness.dnsd import fswl_serve
from tests.shell import ln_s, touch, wait_for

ZONE = "wl.example.org"



def _append_many(path: str, worker: int) -> None:
    log = ChangeLog(path)
    for i in range(500):
        log.append([f"ip4/10/{worker}/0/{i}/a@b.org"])


@pytest.mark.parametrize("rotate_seconds", [10.0, 0.0], ids=["paced", "unpaced"])
def test_concurrent_writers_and_rotation_lose_no_line(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                     rotate_seconds: float) -> None:
    """Every line is read, or (only when rotations outrun the reader) the follower says it lost some."""
    monkeypatch.setattr(changelog, "ROTATE_BYTES", 4096)  # rotate every ~150 lines
    monkeypatch.setattr(changelog, "ROTATE_SECONDS", rotate_seconds)
    path = str(tmp_path / "changes.log")
    follower = ChangeFollower(path)  # before the file exists, as on a fresh home
    seen: list[str] = []
    workers = [multiprocessing.get_context("fork").Process(target=_append_many, args=(path, w)) for w in range(4)]
    for process in workers:
        process.start()
    while any(p.is_alive() for p in workers):
        seen += follower.read()  # reading while they write and rotate
        time.sleep(0.001)
    seen += follower.read()
    follower.close()
    expected = {f"ip4/10/{w}/0/{i}/a@b.org" for w in range(4) for i in range(500)}
    if rotate_seconds or not follower.lost:
        assert not follower.lost
        assert set(seen) == expected and len(seen) == len(expected)
    else:
        assert set(seen) < expected


def test_a_partial_line_waits_for_its_end(tmp_path) -> None:
    path = tmp_path / "changes.log"
    path.write_bytes(b"old\n")
    follower = ChangeFollower(path)  # starts at the end: what came before is in db/ already
    with open(path, "ab") as handle:
        handle.write(b"ip4/1/2")
        handle.flush()
        assert follower.read() == []
        handle.write(b"/3/4/x@y.org\n")
    assert follower.read() == ["ip4/1/2/3/4/x@y.org"]
    follower.close()


def test_mtime_refreshes_are_not_logged(home: Home) -> None:
    [path] = home.whitelist.add("a@b.org", "192.0.2.1")
    before = home.changelog_path.read_text()
    home.whitelist.touch_seen([path], time.time())
    assert home.changelog_path.read_text() == before == "ip4/192/0/2/1/a@b.org\n"


@pytest.fixture
def unwatched_index(home: Home):
    index = Index(home.whitelist, home.changelog_path, watch=False, sweep_seconds=0)  # the change log alone
    index.start()
    yield index
    index.stop()


def test_without_inotify_writes_of_other_processes_show_within_a_second(home: Home, fswl, unwatched_index) -> None:
    assert not unwatched_index.watching
    fswl("add", "carol@example.org", "10.0.0.7", check=True)
    assert wait_for(lambda: unwatched_index.lookup("carol@example.org", "10.0.0.7") is not None)
    fswl("link", "10.0.0.8", "isp", check=True)
    fswl("add", "*@example.org", "10.0.0.8", check=True)
    assert wait_for(lambda: unwatched_index.lookup("dan@example.org", "10.0.0.8") is not None)
    fswl("rm", "carol@example.org", "10.0.0.7", check=True)
    assert wait_for(lambda: unwatched_index.lookup("carol@example.org", "10.0.0.7") is None)
    touch(home.db / "ip4/10/0/0/9/erin@example.org")  # by hand: needs inotify, or the sweep (off here)
    time.sleep(0.5)
    assert unwatched_index.lookup("erin@example.org", "10.0.0.9") is None


def test_without_inotify_hand_edits_show_within_a_sweep(tmp_path: Path) -> None:
    """`[store] watch_tree = false`: the running server sees touch, ln -s and rm by hand within sweep_seconds."""
    root = tmp_path / "home"
    wl = Home(root).whitelist
    wl.add("keep@example.org", "10.0.0.1")
    wl.add("*@isp.example", "10.0.0.2")
    wl.link("10.0.0.2", "isp")
    (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\n[store]\nwatch_tree = false\nsweep_seconds = 1\n')
    with fswl_serve(root, "dns") as port:
        def answer(name: str) -> list[str]:
            reply = dns.query.udp(dns.message.make_query(f"{name}.{ZONE}", "A"), "127.0.0.1", port=port, timeout=5)
            return [rr.to_text() for rrset in reply.answer for rr in rrset]

        assert answer("keep.example.org.1.0.0.10") == ["127.0.0.2"]
        touch(root / "db/ip4/10/0/0/9/erin@example.org")  # a new level and an entry, by hand
        assert wait_for(lambda: answer("erin.example.org.9.0.0.10") == ["127.0.0.2"], seconds=10)
        ln_s("../../../../groups/isp", root / "db/ip4/10/0/0/3")  # a relay joins the group by hand
        assert wait_for(lambda: answer("anyone.isp.example.3.0.0.10") == ["127.0.0.3"], seconds=10)
        os.unlink(root / "db/ip4/10/0/0/1/keep@example.org")  # and one goes
        assert wait_for(lambda: answer("keep.example.org.1.0.0.10") == [], seconds=10)


def test_a_tree_too_large_to_watch_is_served_with_a_warning(home: Home, fswl, monkeypatch, caplog) -> None:
    for i in range(5):
        home.whitelist.add("a@b.org", f"10.0.0.{i}")
    monkeypatch.setattr("fswl.index._watch_limit", lambda: 8)
    index = Index(home.whitelist, home.changelog_path)
    with caplog.at_level(logging.WARNING, logger="fswl.index"):
        index.start()
    try:
        assert not index.watching
        assert "fs.inotify.max_user_watches" in caplog.text
        assert index.lookup("a@b.org", "10.0.0.4") is not None
        fswl("add", "new@b.org", "10.0.0.4", check=True)
        assert wait_for(lambda: index.lookup("new@b.org", "10.0.0.4") is not None)
    finally:
        index.stop()


def test_writes_received_from_mirrors_are_logged_for_the_index(home: Home) -> None:
    from fswl.sync.node import Node

    Node(home).writer.add("a@b.org", "192.0.2.7")
    assert home.changelog_path.read_text().splitlines() == ["ip4/192/0/2/7/a@b.org"]
