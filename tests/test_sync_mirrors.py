"""Mirrors over real OpenSSH sshd instances on loopback: fswl homes syncing as operators run them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from fswl.app.home import Home
from tests.conftest import REPO, require, run_fswl
from tests.harness.sshd import Mesh, closed_url

pytestmark = pytest.mark.integration
DAY = 86400


@pytest.fixture
def mesh_of(tmp_path: Path) -> Iterator:
    require("sshd", "mirrors sync over SSH")
    require("ssh-keygen")
    meshes = []

    def make(*names: str) -> Mesh:
        """Mirrors NAMES, each peered with every other."""
        mesh = Mesh(tmp_path / f"mesh{len(meshes)}", list(names))
        meshes.append(mesh)
        for a in names:
            for b in names:
                if a != b:
                    fswl(mesh, a, *mesh.peer_args(b))
        return mesh

    yield make
    for mesh in meshes:
        mesh.stop()


def fswl(mesh: Mesh, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_fswl(mesh[node].home, *args, check=check)


def listing(mesh: Mesh, node: str) -> list[str]:
    """`fswl ls` without the dates (last-seen times differ legitimately)."""
    return sorted(" ".join(line.split()[:2]) for line in fswl(mesh, node, "ls").stdout.splitlines())


def spooled(mesh: Mesh, node: str) -> int:
    spool = mesh[node].home / "spool"
    return sum(name.endswith(".batch") for _top, _dirs, files in os.walk(spool) for name in files)


def test_updates_made_at_each_node_reach_all_others(mesh_of) -> None:
    mesh = mesh_of("a", "b", "c")
    fswl(mesh, "a", "add", "dave@umkc.edu", "57.129.134.63")
    fswl(mesh, "b", "add", "*@lists.example.org", "2001:db8::/32")
    fswl(mesh, "b", "add", "*", "64.12.0.0/16")
    fswl(mesh, "c", "add", "*@aol.com", "192.0.2.0/24")
    fswl(mesh, "c", "link", "192.0.2.0/24", "aol-out")
    fswl(mesh, "c", "add", "x@aol.com", "198.51.100.7")
    fswl(mesh, "c", "rm", "x@aol.com", "198.51.100.7")
    for node in ("a", "b", "c"):
        assert "sent" in fswl(mesh, node, "sync").stdout
    expected = listing(mesh, "a")
    assert len(expected) == 4 and "192.0.2.0/24 *@aol.com" in expected
    assert listing(mesh, "b") == listing(mesh, "c") == expected
    check = fswl(mesh, "a", "check", "anyone@aol.com", "192.0.2.9")
    assert "groups/aol-out" in check.stdout
    assert fswl(mesh, "a", "check", "x@aol.com", "198.51.100.7", check=False).returncode == 1
    fswl(mesh, "a", "sync")  # everyone now knows everyone holds everything
    assert [spooled(mesh, n) for n in ("a", "b", "c")] == [0, 0, 0]


def test_updates_go_around_a_broken_link_and_drain_only_when_everyone_has_them(mesh_of) -> None:
    mesh = mesh_of("b", "c", "f")
    fswl(mesh, "b", *mesh.peer_args("c", closed_url(mesh["c"])))  # B cannot reach C, nor C B
    fswl(mesh, "c", *mesh.peer_args("b", closed_url(mesh["b"])))
    fswl(mesh, "b", "add", "dave@umkc.edu", "57.129.134.63")
    first = fswl(mesh, "b", "sync", check=False)
    assert first.returncode == 1 and "sync with c failed" in first.stderr and "cannot reach" in first.stderr
    assert spooled(mesh, "b") == 1
    fswl(mesh, "b", "sync", "f")
    assert spooled(mesh, "b") == 1, "C has not got it yet: B must keep it"
    assert fswl(mesh, "c", "check", "dave@umkc.edu", "57.129.134.63", check=False).returncode == 1
    fswl(mesh, "f", "sync", "c")  # F passes B's batch on to C
    assert fswl(mesh, "c", "check", "dave@umkc.edu", "57.129.134.63").returncode == 0
    fswl(mesh, "b", "sync", "f")  # and B learns from F that C holds it
    assert spooled(mesh, "b") == 0
    fswl(mesh, "c", "sync", "f")
    assert spooled(mesh, "f") == 0 and spooled(mesh, "c") == 0


def test_a_tombstone_beats_a_lagging_peers_old_copy(mesh_of) -> None:
    mesh = mesh_of("a", "b")
    fswl(mesh, "b", "add", "old@forged.example", "203.0.113.5")  # B's write, not yet sent: it lags
    fswl(mesh, "a", "add", "spammer@forged.example", "203.0.113.5")
    fswl(mesh, "a", "sync")
    backup = mesh.root / "b-backup"
    shutil.copytree(mesh["b"].home / "db", backup, symlinks=True)  # a backup of B with both entries
    time.sleep(0.05)
    fswl(mesh, "a", "rm", "spammer@forged.example", "203.0.113.5")
    fswl(mesh, "a", "rm", "old@forged.example", "203.0.113.5")  # newer than B's lagging add
    fswl(mesh, "b", "sync")
    # B is restored from the backup: its old copies go back to A by reconciliation, and lose.
    shutil.rmtree(mesh["b"].home / "db")
    shutil.copytree(backup, mesh["b"].home / "db", symlinks=True)
    result = fswl(mesh, "b", "sync", "--full")
    assert "reconciled" in result.stdout
    for node in ("a", "b"):
        for sender in ("spammer@forged.example", "old@forged.example"):
            assert fswl(mesh, node, "check", sender, "203.0.113.5", check=False).returncode == 1, (node, sender)
    assert (mesh["b"].home / "db/ip4/203/0/113/5/.tomb/spammer@forged.example").exists()


def test_full_reconciliation_transfers_only_what_differs(mesh_of) -> None:
    mesh = mesh_of("a", "b")
    relays = "".join(f"10.{i // 250}.{i % 250}.1\n" for i in range(300))
    (mesh.root / "relays.txt").write_text(relays)
    for node in ("a", "b"):  # built apart (a restore), before sync: no batches to carry it
        (mesh[node].home / "peers").rename(mesh[node].home / "peers.off")
        fswl(mesh, node, "import", str(mesh.root / "relays.txt"), "--sender", "*")
        (mesh[node].home / "peers.off").rename(mesh[node].home / "peers")
    (mesh["b"].home / "db/ip4/10/0/7/1/*").unlink()
    fswl(mesh, "a", "add", "only@a.example", "10.1.2.1")
    fswl(mesh, "b", "add", "only@b.example", "172.16.0.1")
    for node in ("a", "b"):
        shutil.rmtree(mesh[node].home / "spool")  # no batches: only the digests can find the differences
    result = fswl(mesh, "a", "sync", "--full")
    assert "reconciled 1 in / 2 out" in result.stdout, result.stdout
    assert listing(mesh, "a") == listing(mesh, "b")
    # Both now keep a digest index; writes through fswl mark it, so the next round finds them.
    fswl(mesh, "b", "add", "later@b.example", "10.0.9.1")
    fswl(mesh, "b", "rm", "*", "10.0.8.1")
    shutil.rmtree(mesh["b"].home / "spool" / "b", ignore_errors=True)  # made only once b seals a batch
    (mesh["b"].home / "spool" / ".open").unlink()
    assert "reconciled 2 in / 1 out" in fswl(mesh, "a", "sync", "--full").stdout  # the entry B removed loses
    assert listing(mesh, "a") == listing(mesh, "b")
    # A write behind fswl's back goes in the round's batch (fswl.sync.handedits): nothing left to reconcile.
    (mesh["a"].home / "db/ip4/10/1/5/1/manual@a.example").touch()
    assert "sent 1 batches" in (full := fswl(mesh, "a", "sync", "--full").stdout) and "reconciled" not in full
    assert "reconciled" not in fswl(mesh, "a", "sync", "--rescan").stdout
    assert listing(mesh, "a") == listing(mesh, "b")


def test_an_entry_in_use_on_c_survives_expiry_on_b(mesh_of) -> None:
    mesh = mesh_of("b", "c")
    with open(mesh["c"].home / "fswl.toml", "a") as toml:
        toml.write("access_list_days = 0\n")  # send the access list at every round
    fswl(mesh, "b", "add", "used@example.org", "57.129.134.63")
    fswl(mesh, "b", "add", "idle@example.org", "57.129.134.63")
    fswl(mesh, "b", "sync")
    old = time.time() - 200 * DAY
    for node in ("b", "c"):
        for name in ("used@example.org", "idle@example.org"):
            os.utime(mesh[node].home / "db/ip4/57/129/134/63" / name, (old, old))
    c = Home(mesh["c"].home).whitelist  # what the DNS and policy hit recorder calls
    assert c.touch_seen([str(mesh["c"].home / "db/ip4/57/129/134/63/used@example.org")]) == 1
    fswl(mesh, "c", "sync")
    expired = fswl(mesh, "b", "expire", "--days", "180")
    assert "idle@example.org" in expired.stdout and "used@example.org" not in expired.stdout
    assert fswl(mesh, "b", "check", "used@example.org", "57.129.134.63").returncode == 0


def test_kill_9_in_the_middle_of_a_batch_loses_nothing(mesh_of) -> None:
    mesh = mesh_of("a", "b")
    count = 6000
    (mesh.root / "relays.txt").write_text("".join(f"10.{i // 200}.{i % 200}.9\n" for i in range(count)))
    fswl(mesh, "a", "import", str(mesh.root / "relays.txt"), "--sender", "*")
    db_b = mesh["b"].home / "db"
    process = subprocess.Popen([sys.executable, "-m", "fswl", "sync"], cwd=REPO,
                               env={**os.environ, "FSWL_HOME": str(mesh["b"].home)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (db_b / "ip4/10").exists():
        time.sleep(0.005)
    time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    got = sum(len(files) for _t, _d, files in os.walk(db_b))
    assert 0 < got < count, f"the kill came at {got} of {count}: not in the middle"
    fswl(mesh, "b", "sync")
    assert sum(len(files) for _t, _d, files in os.walk(db_b)) == count
    fswl(mesh, "a", "sync")
    assert spooled(mesh, "a") == 0


def test_an_unknown_or_changed_host_key_is_refused(mesh_of, tmp_path: Path) -> None:
    mesh = mesh_of("a", "b")
    host_pub = Path(f"{mesh['b'].sshd.host_key}.pub")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(host_pub)], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    fswl(mesh, "a", "peers", "add", "b", mesh["b"].url, "--key", str(mesh.key), "--known-hosts", str(empty))
    result = fswl(mesh, "a", "sync", check=False)
    assert result.returncode == 1 and "unknown host key" in result.stderr
    assert fingerprint in result.stderr and "ssh-keyscan -p" in result.stderr
    assert "Traceback" not in result.stderr
    changed = tmp_path / "changed_known_hosts"
    other = Path(f"{mesh['a'].sshd.host_key}.pub").read_text().split()
    changed.write_text(f"[127.0.0.1]:{mesh['b'].sshd.port} {other[0]} {other[1]}\n")
    fswl(mesh, "a", "peers", "add", "b", mesh["b"].url, "--key", str(mesh.key), "--known-hosts", str(changed))
    result = fswl(mesh, "a", "sync", check=False)
    assert result.returncode == 1 and "CHANGED" in result.stderr and fingerprint in result.stderr


def test_signed_batches_and_refusal_of_unsigned_ones(mesh_of) -> None:
    mesh = mesh_of("a", "b")
    key = mesh.root / "sign_a"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (mesh["b"].home / "peers/keys").mkdir(parents=True)
    (mesh["b"].home / "peers/keys/a.pub").write_text(Path(f"{key}.pub").read_text())
    with open(mesh["b"].home / "fswl.toml", "a") as toml:
        toml.write("require_signatures = true\n")
    fswl(mesh, "a", "add", "unsigned@example.org", "192.0.2.1")
    result = fswl(mesh, "b", "-v", "sync")
    assert "refused batch a/1" in result.stderr and "unsigned" in result.stderr
    assert fswl(mesh, "b", "check", "unsigned@example.org", "192.0.2.1", check=False).returncode == 1
    with open(mesh["a"].home / "fswl.toml", "a") as toml:
        toml.write(f'signing_key = "{key}"\n')
    for path in (mesh["a"].home / "spool/a").glob("*.batch"):
        path.unlink()  # the operator re-issues: drop the unsigned batch, add again
    fswl(mesh, "a", "add", "signed@example.org", "192.0.2.1")
    fswl(mesh, "b", "sync")
    assert fswl(mesh, "b", "check", "signed@example.org", "192.0.2.1").returncode == 0


def test_peers_add_ls_rm_and_bad_urls(mesh_of) -> None:
    mesh = mesh_of("a", "b")
    assert "b\tssh://root@127.0.0.1" in fswl(mesh, "a", "peers", "ls").stdout
    bad = fswl(mesh, "a", "peers", "add", "c", "http://example.org/", check=False)
    assert bad.returncode == 2 and "ssh://user@host:port/path" in bad.stderr
    fswl(mesh, "a", "peers", "rm", "b")
    assert fswl(mesh, "a", "peers", "ls").stdout == ""
    none = fswl(mesh, "a", "sync", check=False)
    assert none.returncode == 2 and "fswl peers add" in none.stderr


def test_the_daemon_keeps_peers_current_and_stops_on_sigterm(mesh_of) -> None:
    mesh = mesh_of("a", "b")  # [sync] interval = 1 in the harness
    daemon = subprocess.Popen([sys.executable, "-m", "fswl", "-v", "sync", "--daemon"], cwd=REPO,
                              env={**os.environ, "FSWL_HOME": str(mesh["a"].home)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fswl(mesh, "a", "add", "daemon@example.org", "192.0.2.77")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if fswl(mesh, "b", "check", "daemon@example.org", "192.0.2.77", check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the daemon did not carry the write to b within 30 s")
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "b: sent 1 batches" in err and "daemon of a" in err  # a round that carried something, at -v


def test_a_new_empty_node_gets_the_whole_tree_by_reconciliation(mesh_of) -> None:
    mesh = mesh_of("a", "new")
    (mesh.root / "relays.txt").write_text("".join(f"10.{i}.{i}.1\n2001:db8:{i:x}::/48\n" for i in range(40)))
    (mesh["a"].home / "peers").rename(mesh["a"].home / "peers.off")  # data from before any peer
    fswl(mesh, "a", "import", str(mesh.root / "relays.txt"), "--sender", "*@example.org")
    fswl(mesh, "a", "add", "*@aol.com", "192.0.2.0/24")
    fswl(mesh, "a", "link", "192.0.2.0/24", "aol-out")
    (mesh["a"].home / "peers.off").rename(mesh["a"].home / "peers")
    result = fswl(mesh, "new", "sync", "--full")
    assert "reconciled 82 in / 0 out" in result.stdout, result.stdout
    assert listing(mesh, "new") == listing(mesh, "a") and len(listing(mesh, "a")) == 81


@pytest.mark.slow
def test_three_daemons_and_concurrent_writers_converge(mesh_of) -> None:
    mesh = mesh_of("a", "b", "c")
    daemons = [subprocess.Popen([sys.executable, "-m", "fswl", "sync", "--daemon"], cwd=REPO,
                                env={**os.environ, "FSWL_HOME": str(mesh[n].home)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for n in "abc"]
    try:
        for i in range(15):
            for number, node in enumerate("abc"):
                fswl(mesh, node, "add", f"u{i}@{node}.example", f"198.51.{number}.{i}")
            fswl(mesh, "a", "rm", f"u{i}@a.example", f"198.51.0.{i}") if i % 5 == 0 else None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            views = [listing(mesh, n) for n in "abc"]
            if views[0] == views[1] == views[2] and len(views[0]) == 42:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no convergence: {[len(v) for v in views]}")
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        errors = [d.communicate(timeout=60)[1] for d in daemons]
    assert all(d.returncode == 0 for d in daemons), errors
    assert not any("internal error" in e or "Traceback" in e for e in errors), errors
