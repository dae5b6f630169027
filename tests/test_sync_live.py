"""Peers added to running nodes: no restart, no `--full`, and unreachable peers retried with backoff."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import dns.exception
import dns.message
import dns.query
import pytest

from fswl.errors import SyncError
from fswl.app.home import Home
from fswl.sync.node import Node
from fswl.sync.peers import Peer
from fswl.sync.rounds import Backoff, run_daemon
from tests.conftest import REPO, require, run_fswl
from tests.harness.sshd import Mesh, free_port

DAY = 86400
#: How long a test waits for a daemon to carry something over.
CARRY_SECONDS = 30


@pytest.fixture
def unpeered(tmp_path: Path) -> Iterator[Mesh]:
    """Mirrors a and b, each with its own sshd, that do not know of each other yet."""
    require("sshd", "mirrors sync over SSH")
    require("ssh-keygen")
    mesh = Mesh(tmp_path / "mesh", ["a", "b"])
    yield mesh
    mesh.stop()


def fswl(mesh: Mesh, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_fswl(mesh[node].home, *args, check=check)


def pair(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b"))
    fswl(mesh, "b", *mesh.peer_args("a"))


def listing(mesh: Mesh, node: str) -> list[str]:
    return sorted(" ".join(line.split()[:2]) for line in fswl(mesh, node, "ls").stdout.splitlines())


def start(mesh: Mesh, node: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fswl", *args], cwd=REPO,
                            env={**os.environ, "FSWL_HOME": str(mesh[node].home)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def eventually(what: str, condition, seconds: float = CARRY_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds:g} s")


def listed(mesh: Mesh, node: str, sender: str, relay: str) -> bool:
    return fswl(mesh, node, "check", sender, relay, check=False).returncode == 0


def ask(port: int, name: str) -> dns.message.Message | None:
    try:
        return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
    except (OSError, dns.exception.Timeout):
        return None


def test_running_serve_and_daemon_started_before_any_peer_carry_writes_without_a_restart(unpeered: Mesh) -> None:
    mesh = unpeered
    with open(mesh["a"].home / "fswl.toml", "a") as toml:
        toml.write("access_list_days = 0\n")  # the entries seen in use go out at every round
    fswl(mesh, "a", "add", "*", "192.0.2.77")  # before any peer: reaches b by reconciliation
    port = free_port()
    serve = start(mesh, "a", "serve", "dns", "--listen", f"127.0.0.1:{port}")
    daemon = start(mesh, "a", "sync", "--daemon")  # [sync] interval = 1 in the harness
    try:
        eventually("fswl serve answering", lambda: ask(port, "2.0.0.127.wl.example.org") is not None)
        pair(mesh)  # neither process restarts
        fswl(mesh, "a", "add", "daemon@example.org", "198.51.100.7")
        eventually("the CLI write reaching b", lambda: listed(mesh, "b", "daemon@example.org", "198.51.100.7"))
        # In the same first round, after the batches: the reconciliation.
        eventually("the write from before the peer reaching b",
                   lambda: listed(mesh, "b", "anyone@example.org", "192.0.2.77"))
        # A write of the serve itself (a hit refreshes last-seen), made after the peer came: journalled.
        entry = "db/ip4/192/0/2/77/*"
        old = time.time() - 100 * DAY
        for node in ("a", "b"):
            os.utime(mesh[node].home / entry, (old, old))
        answer = ask(port, "77.2.0.192.wl.example.org")
        assert answer is not None and "127.0.0.4" in answer.to_text()
        stop(serve)  # flushes the hits it recorded
        seen_on_b = Home(mesh["b"].home).whitelist.last_seen
        eventually("the access list reaching b", lambda: (seen_on_b.get("ip4/192/0/2/77/*") or 0) > old + DAY)
        assert (mesh["b"].home / entry).stat().st_mtime == old, "being seen never moves the add time"
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
        out_err = stop(daemon)
    assert "daemon of a" in out_err


def test_entries_from_before_the_first_peer_reach_it_after_one_plain_sync(unpeered: Mesh) -> None:
    mesh = unpeered
    (mesh.root / "relays.txt").write_text("".join(f"10.{i}.{i}.1\n2001:db8:{i:x}::/48\n" for i in range(20)))
    fswl(mesh, "a", "import", str(mesh.root / "relays.txt"), "--sender", "*@example.org")
    fswl(mesh, "a", "add", "*@aol.com", "192.0.2.0/24")
    fswl(mesh, "a", "link", "192.0.2.0/24", "aol-out")
    fswl(mesh, "a", "rm", "*@example.org", "10.3.3.1")  # a tombstone travels too
    fswl(mesh, "b", "add", "only@b.example", "172.16.0.1")
    assert not (mesh["a"].home / "spool" / ".open").exists(), "nothing is journalled without a peer"
    pair(mesh)
    result = fswl(mesh, "a", "sync")  # no --full
    assert "reconciled" in result.stdout, result.stdout
    assert listing(mesh, "a") == listing(mesh, "b") and len(listing(mesh, "a")) == 41
    assert (mesh["b"].home / "db/ip4/10/3/3/1/.tomb/*@example.org").exists()
    assert fswl(mesh, "b", "check", "x@aol.com", "192.0.2.9").returncode == 0
    # Paired now: the next rounds exchange batches only; journalled writes go as before.
    fswl(mesh, "a", "add", "later@a.example", "10.1.1.1")
    again = fswl(mesh, "a", "sync")
    assert "reconciled" not in again.stdout and "sent 1 batches" in again.stdout
    assert listed(mesh, "b", "later@a.example", "10.1.1.1")
    # b's own first round as the client reconciles once too, and finds nothing to move.
    assert "reconciled" not in fswl(mesh, "b", "sync").stdout
    assert (mesh["b"].home / "peers/.paired/a").exists()
    # A peer removed and added back is reconciled afresh.
    fswl(mesh, "a", "peers", "rm", "b")
    fswl(mesh, "a", "add", "while@gone.example", "10.2.2.1")
    fswl(mesh, "a", *mesh.peer_args("b"))
    fswl(mesh, "a", "sync")
    assert listing(mesh, "a") == listing(mesh, "b")


def test_a_peer_that_lost_drained_batches_is_reconciled_without_full(unpeered: Mesh) -> None:
    mesh = unpeered
    pair(mesh)
    fswl(mesh, "a", "add", "first@a.example", "10.9.9.1")
    fswl(mesh, "a", "sync")
    fswl(mesh, "a", "sync")  # a learns b holds its batch: drained from a's spool
    assert not list((mesh["a"].home / "spool/a").glob("*.batch"))
    for part in ("db", "spool"):  # b reinstalled: empty tree and spool, peers kept
        shutil.rmtree(mesh["b"].home / part)
    result = subprocess.run([sys.executable, "-m", "fswl", "-v", "sync"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "FSWL_HOME": str(mesh["a"].home)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "b lacks batches 1-1 of a, no longer spooled here" in result.stderr
    assert "reconciled 0 in / 1 out" in result.stdout, result.stdout
    assert listed(mesh, "b", "first@a.example", "10.9.9.1")
    # b now holds what a held: the gap is closed, and the next rounds exchange batches only.
    assert (mesh["b"].home / "spool/a/.seq").read_text() == "1"
    again = subprocess.run([sys.executable, "-m", "fswl", "-v", "sync"], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "FSWL_HOME": str(mesh["a"].home)}, timeout=60)
    assert "lacks" not in again.stderr and "reconciled" not in again.stdout, again.stderr


def test_an_unreachable_peer_is_retried_and_synced_when_it_comes_back(unpeered: Mesh) -> None:
    mesh = unpeered
    pair(mesh)
    fswl(mesh, "a", "sync")  # paired: the rounds below are plain batch exchanges
    mesh["b"].sshd.stop()
    daemon = start(mesh, "a", "sync", "--daemon")  # interval 1 s, max_backoff 2 s in the harness
    try:
        fswl(mesh, "a", "add", "retried@example.org", "198.51.100.8")
        time.sleep(3)
        assert not listed(mesh, "b", "retried@example.org", "198.51.100.8")
        mesh["b"].sshd.restart()
        eventually("the write reaching b once it is back",
                   lambda: listed(mesh, "b", "retried@example.org", "198.51.100.8"))
    finally:
        err = stop(daemon)
    assert "sync with b failed" in err and "cannot reach" in err


class FakeStop:
    """A stop event whose wait() moves a fake clock instead of sleeping."""

    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until
        self.waits = 0

    def clock(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return self.now >= self.until

    def wait(self, seconds: float) -> bool:
        self.waits += 1
        assert self.waits < 1000, "the daemon spins"
        self.now += seconds
        return self.is_set()


def test_each_peer_backs_off_on_its_own_with_growing_delays(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.root.mkdir()
    (home.root / "fswl.toml").write_text('[sync]\nnode = "a"\ninterval = 10\nmax_backoff = 80\n')
    node = Node(home)
    for name in ("good", "down"):
        node.peers.add(Peer(name, f"ssh://fswl@{name}.example:22/var/spool/fswl"))
    fake = FakeStop(until=245)
    tried: dict[str, list[float]] = {"good": [], "down": []}

    def sync(_node: Node, names: list[str]) -> list:
        results = []
        for name in names:
            tried[name].append(fake.now)
            back = name == "good" or fake.now >= 200  # down comes back at t=200
            results.append((name, "ok" if back else SyncError(f"cannot reach {name}")))
        return results

    run_daemon(node, fake, sync=sync, clock=fake.clock)  # type: ignore[arg-type]
    assert tried["down"] == [0, 20, 60, 140, 220, 230, 240]  # 20, 40, 80, capped at 80, then back to 10
    assert tried["good"] == [float(t) for t in range(0, 250, 10)], "a dead peer does not slow the others"


def test_backoff_schedule() -> None:
    schedule = Backoff(interval=60, max_backoff=3600)
    assert schedule.is_due("new", 0)
    assert [schedule.done("p", False, 0) for _ in range(8)] == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert not schedule.is_due("p", 3599) and schedule.is_due("p", 3600)
    assert schedule.done("p", True, 5000) == 5060
    assert Backoff(interval=120, max_backoff=30).done("q", False, 0) == 120, "max_backoff below interval"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_outbox_journals_once_a_peer_exists_and_always_marks_digests(tmp_path: Path) -> None:
    from fswl.store import Whitelist
    from fswl.store.changelog import ChangeLog
    from fswl.sync.outbox import PEERS_RECHECK_SECONDS, Outbox

    home = Home(tmp_path / "home")
    home.root.mkdir()
    (home.root / "fswl.toml").write_text('[sync]\nnode = "a"\n')
    clock = FakeClock()
    wl = Whitelist(home.db, [ChangeLog(home.changelog_path), Outbox(home, clock)])
    spool = home.spool
    wl.add("before@example.org", "192.0.2.1")
    assert not (spool / ".open").exists() and (spool / ".dirty").read_text() == "ip4/192/0\n"
    Node(home).peers.add(Peer("b", "ssh://fswl@b.example:22/var/spool/fswl"))
    wl.add("window@example.org", "192.0.2.2")  # within the recheck period: not yet seen
    assert not (spool / ".open").exists()
    clock.now += PEERS_RECHECK_SECONDS
    wl.add("after@example.org", "198.51.100.1")
    wl.touch_seen([str(home.db / "ip4/192/0/2/1/before@example.org")])
    assert "after@example.org" in (spool / ".open").read_text()
    assert "before@example.org" in (spool / ".seen").read_text()
    assert (spool / ".dirty").read_text().split() == ["ip4/192/0", "ip4/198/51"]
    Node(home).peers.remove("b")
    clock.now += PEERS_RECHECK_SECONDS
    wl.add("gone@example.org", "198.51.100.1")
    assert "gone@" not in (spool / ".open").read_text()


def test_a_dirty_log_past_its_bound_drops_the_digest_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fswl.sync import batches

    home = Home(tmp_path / "home")
    home.root.mkdir()
    monkeypatch.setattr(batches, "MAX_DIRTY_BYTES", 50)
    wl = home.whitelist
    wl.add("x@example.org", "10.0.0.1")
    (home.spool / ".digests").write_text("{}")  # an index, which the marks qualify
    for i in range(1, 12):
        wl.add("x@example.org", f"10.{i}.0.1")
    assert not (home.spool / ".digests").exists(), "dropped with the overgrown dirty log"
    assert len((home.spool / ".dirty").read_text().split()) < 12
    with batches.Spool(home.spool, "a").locked(home.spool / batches.DIGESTS_LOCK):  # a reconciliation builds
        assert not batches.Spool(home.spool, "a").drop_digests(wait=False), "a writer never waits for it"


def test_a_node_requiring_signatures_takes_unsigned_reconciled_records_only_when_its_admin_asks(unpeered: Mesh) -> None:
    mesh = unpeered
    with open(mesh["b"].home / "fswl.toml", "a") as toml:
        toml.write("require_signatures = true\n")
    fswl(mesh, "a", "add", "pre@a.example", "10.5.5.1")  # before any peer: only a reconciliation carries it
    pair(mesh)
    assert "reconciled 0 in / 1 out" in fswl(mesh, "a", "sync").stdout  # a pushes; b refuses
    assert not listed(mesh, "b", "pre@a.example", "10.5.5.1")
    own = fswl(mesh, "b", "-v", "sync")
    assert "not reconciling by digests, as [sync] require_signatures is set" in own.stderr
    assert not listed(mesh, "b", "pre@a.example", "10.5.5.1")
    fswl(mesh, "b", "sync", "--full")
    assert listed(mesh, "b", "pre@a.example", "10.5.5.1")
