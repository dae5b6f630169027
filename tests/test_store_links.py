"""Links carry their time (the symlink's mtime), an unlink leaves a tombstone; and a failed listener is seen."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fswl.errors import Conflict, ListenerFailed
from fswl.names import parse_relay
from fswl.store import Change, Whitelist
from fswl.store.maintenance import expire, fsck
from tests.shell import files_under

RELAY = "10.7.7.0/24"
NET = parse_relay(RELAY)
DAY = 86400


def link_of(wl: Whitelist) -> tuple[str | None, float | None, bool]:
    """(target, the link's own mtime, whether a link tombstone is there)."""
    path = Path(wl.db, "ip4/10/7/7")
    tomb = path / ".tomb/.link"
    if path.is_symlink():
        return os.readlink(path), path.lstat().st_mtime, False
    return None, None, tomb.is_file()


def test_link_is_dated_and_unlink_leaves_a_tombstone_a_later_link_removes(wl: Whitelist) -> None:
    before = time.time()
    wl.link(RELAY, "g")
    target, when, _ = link_of(wl)
    assert target == "../../../groups/g" and before <= when <= time.time()
    wl.unlink(RELAY)
    assert link_of(wl) == (None, None, True)
    assert sorted(files_under(wl.db)) == ["groups", "groups/g", "ip4", "ip4/10", "ip4/10/7", "ip4/10/7/7",
                                          "ip4/10/7/7/.tomb", "ip4/10/7/7/.tomb/.link"]
    wl.link(RELAY, "h")  # a later link, to any group, beats the tombstone and removes it
    assert link_of(wl)[0] == "../../../groups/h"
    with pytest.raises(Conflict, match="already linked"):
        wl.link(RELAY, "g")


def test_replayed_links_and_unlinks_settle_by_time_ties_to_the_unlink(wl: Whitelist) -> None:
    now = time.time()
    assert wl.link_at(NET, "g", now - 100)
    assert not wl.unlink_at(NET, now - 200)  # an older unlink loses to the link
    assert link_of(wl)[0] == "../../../groups/g"
    assert wl.unlink_at(NET, now - 100)  # a tie goes to the unlink
    assert link_of(wl) == (None, None, True)
    assert not wl.link_at(NET, "g", now - 150)  # an older link record loses to the newer tombstone
    assert not wl.link_at(NET, "g", now - 100)
    assert link_of(wl) == (None, None, True)
    assert wl.link_at(NET, "g", now - 50)
    assert link_of(wl) == ("../../../groups/g", pytest.approx(now - 50, abs=1e-5), False)
    # Two links of one relay to different groups: the newer wins, whatever the order they come in.
    assert not wl.link_at(NET, "h", now - 60)
    assert wl.link_at(NET, "h", now - 40)
    assert link_of(wl)[0] == "../../../groups/h"
    assert wl.link_at(NET, "h", now - 30)  # the same link, later: re-dated
    assert link_of(wl)[1] == pytest.approx(now - 30, abs=1e-5)
    # An unlink of a relay never linked here still leaves its tombstone, for the link still on its way.
    other = parse_relay("10.7.8.0/24")
    assert wl.unlink_at(other, now - 10)
    assert Path(wl.db, "ip4/10/7/8/.tomb/.link").is_file()
    assert not wl.link_at(other, "g", now - 20)


def test_a_link_moves_the_relays_entries_but_not_its_link_tombstone(wl: Whitelist) -> None:
    wl.link(RELAY, "g")
    wl.unlink(RELAY)
    wl.add("a@b.org", "10.7.7.0/24")
    wl.remove("gone@b.org", "10.7.7.0/24")
    wl.link(RELAY, "g")
    assert sorted(os.listdir(Path(wl.db, "groups/g/.tomb"))) == ["gone@b.org"]
    assert wl.lookup("a@b.org", "10.7.7.1") is not None


def test_unlink_keep_entries_leaves_the_tombstone_and_the_copies(wl: Whitelist) -> None:
    wl.add("a@b.org", "10.7.7.0/24")
    wl.link(RELAY, "g")
    wl.unlink(RELAY, keep_entries=True)
    assert link_of(wl) == (None, None, True)
    assert wl.lookup("a@b.org", "10.7.7.1").via is None


def test_link_tombstones_age_out_like_entry_tombstones_and_keep_their_directory_until_then(wl: Whitelist) -> None:
    wl.link(RELAY, "g")
    wl.unlink(RELAY)
    expire(wl, days=180, tomb_days=400)
    assert link_of(wl) == (None, None, True), "an empty relay holding a link tombstone is kept"
    old = time.time() - 401 * DAY
    os.utime(Path(wl.db, "ip4/10/7/7/.tomb/.link"), (old, old))
    report = expire(wl, days=180, tomb_days=400)
    assert report.tombstones == ["ip4/10/7/7/.tomb/.link"]
    assert not Path(wl.db, "ip4/10/7/7").exists()


def test_fsck_reports_and_repairs_a_link_tombstone_outside_a_relay(wl: Whitelist) -> None:
    wl.add("a@b.org", "10.7.7.0/24")
    wl.link(RELAY, "g")
    wl.unlink(RELAY)
    assert fsck(wl) == []  # a relay's link tombstone is in order
    stray = Path(wl.db, "groups/g/.tomb/.link")
    stray.parent.mkdir(exist_ok=True)
    stray.touch()
    [problem] = fsck(wl)
    assert problem.path == "groups/g/.tomb/.link" and "link tombstone outside a relay" in problem.message
    fsck(wl, repair=True)
    assert not stray.exists() and fsck(wl) == []


def test_a_failed_listener_is_raised_after_the_write_and_every_listener_still_hears(wl: Whitelist) -> None:
    heard: list[Change] = []

    def journal(change: Change) -> None:
        raise OSError(28, "No space left on device")

    store = Whitelist(wl.db, [journal, heard.append])
    with pytest.raises(ListenerFailed) as failed:
        store.add("a@b.org", "10.1.1.1")
    message = str(failed.value)
    assert "\n" not in message and "add ip4/10/1/1/1/a@b.org is written" in message
    assert "No space left on device" in message and "fswl sync --full" in message
    assert failed.value.exit_code == 1
    assert store.lookup("a@b.org", "10.1.1.1") is not None, "the write is done"
    assert [c.path for c in heard] == ["ip4/10/1/1/1/a@b.org"]
