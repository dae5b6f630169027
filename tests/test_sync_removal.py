"""A removal is beaten only by a later explicit add: three real mirrors over real sshds (issue 14).

Being seen in use (a DNS or policy hit, an access list) refreshes the age of
an entry that exists; it never creates, revives or outweighs a removal.
"""

from __future__ import annotations

import os
import time

import dns.message
import dns.query
import pytest

from fswl.app.home import Home
from tests.harness.dnsd import serve
from tests.harness.sshd import Mesh
from tests.test_policy import converse, request
from tests.test_sync_mirrors import fswl, listing, mesh_of  # noqa: F401  (mesh_of is a fixture)

pytestmark = pytest.mark.integration
DAY = 86400
NODES = ("b", "c", "f")
RELAY = "10.8.8.8"
SERVING = '\n[dns]\nlisten = "127.0.0.1:0"\n[policy]\nlisten = "127.0.0.1:0"\n'


def listed(mesh: Mesh, node: str, sender: str, relay: str = RELAY) -> bool:
    return fswl(mesh, node, "check", sender, relay, check=False).returncode == 0


def rounds(mesh: Mesh, *args: str, times: int = 2) -> None:
    """Every node syncs with every peer, ``times`` over (``--full``: each pair reconciles its trees)."""
    for _ in range(times):
        for node in NODES:
            fswl(mesh, node, "sync", *args)


def assert_clean(mesh: Mesh) -> None:
    for node in NODES:
        fsck = fswl(mesh, node, "fsck", check=False)
        assert fsck.returncode == 0 and "both listed and removed" not in fsck.stdout, (node, fsck.stdout)


def three_mirrors(mesh_of) -> Mesh:
    mesh = mesh_of(*NODES)
    for node in NODES:
        with open(mesh[node].home / "fswl.toml", "a") as toml:
            toml.write("access_list_days = 0\n")  # what a node saw goes out at every round
    fswl(mesh, "c", "add", "keep@x.example", RELAY)
    fswl(mesh, "c", "add", "r@x.example", RELAY)
    rounds(mesh)  # the first rounds pair the nodes (reconciling); everyone holds both
    assert all(listed(mesh, n, "r@x.example") for n in NODES)
    return mesh


def test_a_lookup_on_c_does_not_undo_a_removal_on_b(mesh_of) -> None:
    mesh = three_mirrors(mesh_of)
    with open(mesh["c"].home / "fswl.toml", "a") as toml:
        toml.write(SERVING)
    c_home = mesh["c"].home
    name = "r.x.example.8.8.8.10.wl.example.org"  # the mailbox form: r@x.example via 10.8.8.8
    with serve(c_home, "dns", "policy") as ports:
        answer = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=ports["dns"], timeout=5)
        assert "127.0.0.2" in answer.to_text()
        [action] = converse(ports["policy"], request(client=RELAY, sender="r@x.example"))
        assert not action.startswith(("451", "DEFER")), action
        time.sleep(0.05)
        fswl(mesh, "b", "rm", "r@x.example", RELAY)  # a second after C answered for it
        removed_at = (mesh["b"].home / "db/ip4/10/8/8/8/.tomb/r@x.example").stat().st_mtime
        time.sleep(0.05)
    # C's server stopped and flushed its hits: C saw r@ *after* B removed it (the old bug's setting).
    seen_on_c = Home(c_home).whitelist.last_seen.get("ip4/10/8/8/8/r@x.example")
    assert seen_on_c is not None and seen_on_c > removed_at
    added_on_c = (c_home / "db/ip4/10/8/8/8/r@x.example").stat().st_mtime
    assert added_on_c < removed_at, "the hit must not have moved the add time"
    rounds(mesh)
    for node in NODES:
        assert not listed(mesh, node, "r@x.example"), f"plain rounds: r@ back on {node}"
        assert listed(mesh, node, "keep@x.example")
    rounds(mesh, "--full")
    for node in NODES:
        assert not listed(mesh, node, "r@x.example"), f"--full rounds: r@ back on {node}"
        assert (mesh[node].home / "db/ip4/10/8/8/8/.tomb/r@x.example").is_file()
    assert listing(mesh, "b") == listing(mesh, "c") == listing(mesh, "f")
    assert_clean(mesh)


def test_a_removal_then_an_explicit_add_on_another_mirror_wins_everywhere(mesh_of) -> None:
    mesh = three_mirrors(mesh_of)
    fswl(mesh, "b", "rm", "r@x.example", RELAY)
    rounds(mesh, times=1)
    assert not any(listed(mesh, n, "r@x.example") for n in NODES)
    time.sleep(0.05)
    fswl(mesh, "f", "add", "r@x.example", RELAY)  # confirmed again, later: an explicit add
    rounds(mesh)
    assert all(listed(mesh, n, "r@x.example") for n in NODES)
    rounds(mesh, "--full")
    for node in NODES:
        assert listed(mesh, node, "r@x.example"), node
        assert not (mesh[node].home / "db/ip4/10/8/8/8/.tomb/r@x.example").exists()
    assert_clean(mesh)


def test_removed_on_one_mirror_and_expired_on_another_converge_to_removed(mesh_of) -> None:
    mesh = three_mirrors(mesh_of)
    # F still uses the entry (its access lists say so); C lets it age out; B removes it.
    assert Home(mesh["f"].home).whitelist.touch_seen([str(mesh["f"].home / "db/ip4/10/8/8/8/r@x.example")]) == 1
    old = time.time() - 200 * DAY
    os.utime(mesh["c"].home / "db/ip4/10/8/8/8/r@x.example", (old, old))
    assert "r@x.example" in fswl(mesh, "c", "expire").stdout
    fswl(mesh, "b", "rm", "r@x.example", RELAY)
    for args in ((), ("--full",)):
        rounds(mesh, *args)
        for node in NODES:
            assert not listed(mesh, node, "r@x.example"), (args, node)
            assert (mesh[node].home / "db/ip4/10/8/8/8/.tomb/r@x.example").is_file(), (args, node)
    assert_clean(mesh)
