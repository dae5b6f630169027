"""Hand edits of db/ (touch, rm, ln -s) travel in plain rounds, with no `fswl serve` running.

Real mirrors over real OpenSSH sshd instances; the edits are made with the
real coreutils an admin would use, and every fswl step is the CLI.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from fswl.app.home import Home
from fswl.sync.handedits import journal_hand_edits
from tests.conftest import REPO, require
from tests.test_sync_mirrors import fswl, listing, mesh_of  # noqa: F401 (mesh_of is a fixture)

pytestmark = pytest.mark.integration
RELAY = "57.129.134.63"
RELAY_DIR = "db/ip4/57/129/134/63"


def sh(home: Path, *argv: str) -> None:
    """An admin's command, run in the node's home."""
    require(argv[0])
    subprocess.run(argv, cwd=home, check=True)


def listed(mesh, node: str, sender: str, relay: str) -> bool:
    return fswl(mesh, node, "check", sender, relay, check=False).returncode == 0


def own_batches(mesh, node: str) -> int:
    seq = mesh[node].home / "spool" / node / ".seq"
    return int(seq.read_text()) if seq.exists() else 0


def test_hand_touch_rm_and_links_on_b_reach_c_in_plain_rounds_and_a_hand_rm_stays(mesh_of) -> None:  # noqa: F811
    mesh = mesh_of("b", "c")
    b = mesh["b"].home
    fswl(mesh, "b", "add", "dave@umkc.edu", RELAY)
    fswl(mesh, "b", "add", "gone@umkc.edu", RELAY)
    fswl(mesh, "b", "add", "back@umkc.edu", RELAY)
    fswl(mesh, "b", "rm", "back@umkc.edu", RELAY)
    fswl(mesh, "b", "add", "*@aol.com", "192.0.2.0/24")
    fswl(mesh, "b", "link", "192.0.2.0/24", "aol-out")
    fswl(mesh, "b", "sync")
    fswl(mesh, "c", "sync")
    assert listing(mesh, "b") == listing(mesh, "c")
    assert fswl(mesh, "b", "fsck").stdout.strip() == "db/ is clean"

    time.sleep(0.05)  # the hand add of back@ is later than its removal
    sh(b, "touch", f"{RELAY_DIR}/hand@umkc.edu", f"{RELAY_DIR}/back@umkc.edu")
    sh(b, "rm", f"{RELAY_DIR}/gone@umkc.edu")
    sh(b, "mkdir", "-p", "db/ip4/64/12")
    sh(b, "ln", "-s", "../../../groups/aol-out", "db/ip4/64/12/88")
    check = fswl(mesh, "b", "fsck", check=False)
    assert check.returncode == 1, check.stdout
    for path, what in [("ip4/57/129/134/63/hand@umkc.edu", "added"), ("ip4/57/129/134/63/back@umkc.edu", "added"),
                       ("ip4/57/129/134/63/gone@umkc.edu", "removed"), ("ip4/64/12/88", "linked")]:
        assert f"{path}: {what} by hand; peers have not seen it yet: a plain `fswl sync`" in check.stdout, check.stdout
    # back@ has its old tombstone beside it until the round settles it (fsck says so as ever).
    assert len(check.stdout.splitlines()) == 5 and "back@umkc.edu: both listed and removed" in check.stdout
    documented = [line for line in (REPO / "docs/mirrors.md").read_text().splitlines() if line.startswith("ip4/")]
    assert documented and documented[0] in check.stdout.splitlines(), "docs/mirrors.md shows fsck's line as it is"

    result = fswl(mesh, "b", "sync")  # plain: no --full, no --rescan
    assert "c: sent 1 batches" in result.stdout and "reconciled" not in result.stdout, result.stdout
    assert fswl(mesh, "b", "fsck").stdout.strip() == "db/ is clean"
    assert listed(mesh, "c", "hand@umkc.edu", RELAY) and listed(mesh, "c", "back@umkc.edu", RELAY)
    assert not listed(mesh, "c", "gone@umkc.edu", RELAY)
    assert listed(mesh, "c", "anyone@aol.com", "64.12.88.9")
    assert (b / RELAY_DIR / ".tomb" / "gone@umkc.edu").exists(), "a hand rm leaves a tombstone, as `fswl rm` does"
    assert not (b / RELAY_DIR / ".tomb" / "back@umkc.edu").exists(), "the later hand add beats the removal"
    assert listing(mesh, "b") == listing(mesh, "c")

    # The hand rm is not undone: not by the next rounds either way, nor by a reconciliation.
    for node, args in [("b", ()), ("c", ()), ("c", ("--full",)), ("b", ("--full",))]:
        fswl(mesh, node, "sync", *args)
    for node in ("b", "c"):
        assert not listed(mesh, node, "gone@umkc.edu", RELAY), node
        assert listed(mesh, node, "hand@umkc.edu", RELAY), node

    # Edits on B reach C when C starts the round (B serves it), and a hand unlink travels too.
    time.sleep(1.1)  # the serving end looks when no round has for [sync] interval (1 s in the harness)
    sh(b, "rm", "db/ip4/64/12/88")
    sh(b, "rm", f"{RELAY_DIR}/hand@umkc.edu")
    sh(b, "mkdir", "-p", "db/ip4/10/9/8/7")
    sh(b, "touch", "db/ip4/10/9/8/7/*@new.example")
    assert "b: sent 0 batches, received 1 (3 writes" in fswl(mesh, "c", "sync").stdout
    assert not listed(mesh, "c", "anyone@aol.com", "64.12.88.9")
    assert not listed(mesh, "c", "hand@umkc.edu", RELAY)
    assert listed(mesh, "c", "x@new.example", "10.9.8.7")
    assert listing(mesh, "b") == listing(mesh, "c")
    assert fswl(mesh, "b", "fsck").stdout.strip() == "db/ is clean"


def test_fswls_own_writes_received_writes_links_and_expiry_are_not_taken_for_hand_edits(mesh_of) -> None:  # noqa: F811
    mesh = mesh_of("b", "c")
    fswl(mesh, "b", "add", "first@umkc.edu", RELAY)
    fswl(mesh, "b", "sync")
    before = own_batches(mesh, "b")
    # Writes through fswl on both nodes, and C's arriving at B.
    fswl(mesh, "b", "add", "*@lists.example", "198.51.100.0/24")
    fswl(mesh, "b", "link", "198.51.100.0/24", "lists")  # moves the relay's entry into the group
    fswl(mesh, "b", "add", "old@umkc.edu", RELAY)
    os.utime(mesh["b"].home / RELAY_DIR / "old@umkc.edu", (time.time() - 3 * 86400,) * 2)
    fswl(mesh, "c", "add", "from@c.example", "203.0.113.9")
    fswl(mesh, "c", "rm", "first@umkc.edu", RELAY)
    fswl(mesh, "c", "sync")  # B applies C's writes as the server
    assert listed(mesh, "b", "from@c.example", "203.0.113.9")
    fswl(mesh, "b", "expire", "--days", "2")  # each node's own business: no removal travels
    assert not listed(mesh, "b", "old@umkc.edu", RELAY)
    assert fswl(mesh, "b", "fsck").stdout.strip() == "db/ is clean"
    fswl(mesh, "b", "sync")
    assert own_batches(mesh, "b") == before + 1, "one batch of B's own writes, nothing journalled twice"
    fswl(mesh, "b", "sync")
    assert own_batches(mesh, "b") == before + 1
    assert listed(mesh, "c", "old@umkc.edu", RELAY), "expiry on B is not a removal"
    assert listed(mesh, "c", "x@lists.example", "198.51.100.7")


def test_a_round_on_an_unchanged_tree_stats_directories_and_reads_none(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    wl = home.whitelist
    for i in range(50):
        wl.add("*", f"10.{i}.{i}.1")
    old = time.time() - 60  # past the racy window: a directory read now is trusted next round
    directories = 1
    for top, dirs, _files in os.walk(home.db):
        for name in dirs:
            os.utime(os.path.join(top, name), (old, old))
            directories += 1
    os.utime(home.db, (old, old))
    seen: list = []

    def scan():
        return journal_hand_edits(str(home.db), str(home.spool), str(home.changelog_path), seen.append)

    assert scan().baseline
    unchanged = scan()
    assert unchanged.checked == directories == 3 + 50 * 3 and unchanged.read == 0 and not unchanged.edits
    (home.db / "ip4/10/7/7/1/hand@example.org").touch()
    found = scan()
    assert found.read == 1 and [(c.op, c.path) for c in found.edits] == [("add", "ip4/10/7/7/1/hand@example.org")]
    assert [c.op for c in seen] == ["add"]


def test_with_serve_watching_and_the_daemon_running_hand_edits_show_at_once_and_reach_c(mesh_of) -> None:  # noqa: F811
    from tests.test_sync_live import ask, eventually, start, stop
    from tests.harness.sshd import free_port

    mesh = mesh_of("b", "c")
    b = mesh["b"].home
    fswl(mesh, "b", "add", "gone@umkc.edu", RELAY)
    fswl(mesh, "b", "sync")
    port = free_port()
    serve = start(mesh, "b", "serve", "dns", "--listen", f"127.0.0.1:{port}")  # inotify on: a small tree
    daemon = start(mesh, "b", "sync", "--daemon")  # [sync] interval = 1 in the harness
    try:
        eventually("fswl serve answering", lambda: ask(port, "2.0.0.127.wl.example.org") is not None)

        def answers(sender: str) -> bool:
            local, domain = sender.split("@")
            reply = ask(port, f"{local}.{domain}.63.134.129.57.wl.example.org")
            return reply is not None and "127.0.0.2" in reply.to_text()

        assert answers("gone@umkc.edu")
        sh(b, "touch", f"{RELAY_DIR}/hand@umkc.edu")
        sh(b, "rm", f"{RELAY_DIR}/gone@umkc.edu")
        eventually("serve answering the hand edits", lambda: answers("hand@umkc.edu") and not answers("gone@umkc.edu"))
        eventually("the daemon's rounds carrying them to c", lambda: listed(mesh, "c", "hand@umkc.edu", RELAY)
                   and not listed(mesh, "c", "gone@umkc.edu", RELAY))
        time.sleep(3)  # more daemon rounds: the hand rm is not undone
        assert not listed(mesh, "b", "gone@umkc.edu", RELAY) and not listed(mesh, "c", "gone@umkc.edu", RELAY)
        assert not answers("gone@umkc.edu")
        assert fswl(mesh, "b", "fsck").stdout.strip() == "db/ is clean"
    finally:
        for process in (daemon, serve):
            if process.poll() is None:
                stop(process)


def test_rm_r_of_a_relay_odd_link_spellings_and_a_change_log_rotated_unread(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    wl = home.whitelist
    wl.add("a@x.example", "10.1.1.1")
    wl.add("b@x.example", "10.1.1.1")
    wl.add("*@g.example", "10.2.2.0/24")
    wl.link("10.2.2.0/24", "g")
    seen: list = []

    def scan():
        return journal_hand_edits(str(home.db), str(home.spool), str(home.changelog_path), seen.append)

    assert scan().baseline
    subprocess.run(["rm", "-r", str(home.db / "ip4/10/1/1/1")], check=True)
    (home.db / "ip4/10/3/3").mkdir(parents=True)
    os.symlink("../../../.././groups/g/", home.db / "ip4/10/3/3/3")  # lands on groups/g all the same
    os.symlink("/etc", home.db / "ip4/10/3/3/4")  # leaves db/: never sent
    found = scan()
    assert sorted((c.op, c.path, c.target) for c in found.edits) == [
        ("link", "ip4/10/3/3/3", "../../../../groups/g"),
        ("remove", "ip4/10/1/1/1/a@x.example", None), ("remove", "ip4/10/1/1/1/b@x.example", None)]
    assert (home.db / "ip4/10/1/1/1/.tomb/a@x.example").exists()
    assert sorted(c.op for c in seen) == ["link", "remove", "remove"]
    # Two rotations of the change log between rounds: fswl's writes cannot be told from hand edits.
    for _ in range(2):
        os.replace(home.changelog_path, str(home.changelog_path) + ".1")
        wl.add("c@x.example", "10.4.4.4")  # logged to a new file
    (home.db / "ip4/10/4/4/4/hand@x.example").touch()
    lost = scan()
    assert lost.lost and not lost.edits
    assert not scan().edits, "recorded: not taken for a hand edit later either"
