"""Links carry their time and an unlink leaves a tombstone: three real mirrors over real sshds (issue 14).

The entry rule, for links: the newer of a link (the symlink's own mtime) and
an unlink (its link tombstone, RELAY/.tomb/.link) wins on every mirror, a tie
goes to the unlink; two links of one relay to different groups, the newer.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from fswl.app.home import Home
from fswl.sync.node import Node
from tests.conftest import require
from tests.harness.sshd import Mesh
from tests.test_sync_mirrors import fswl, listing, mesh_of  # noqa: F401  (mesh_of is a fixture)
from tests.test_sync_removal import NODES, rounds

pytestmark = pytest.mark.integration
RELAY = "10.7.7.0/24"
LINK = "db/ip4/10/7/7"
TOMB = LINK + "/.tomb/.link"


def state(mesh: Mesh, node: str) -> tuple[str | None, bool]:
    """(the relay's link target or None, whether it holds a link tombstone) on one mirror."""
    path = mesh[node].home / LINK
    return (os.readlink(path) if path.is_symlink() else None), (mesh[node].home / TOMB).is_file()


def linked_everywhere(mesh: Mesh) -> Mesh:
    mesh_ = mesh
    fswl(mesh_, "c", "add", "*@aol.com", "10.9.9.9")  # something to pair over
    fswl(mesh_, "c", "add", "x@g1.example", "10.7.7.0/24")  # moves into g1 with the link
    fswl(mesh_, "c", "link", RELAY, "g1")
    rounds(mesh_)  # the first rounds pair the nodes (reconciling)
    assert all(state(mesh_, n) == ("../../../groups/g1", False) for n in NODES)
    return mesh_


def assert_same_everywhere(mesh: Mesh, expected: tuple[str | None, bool]) -> None:
    for args in ((), ("--full",)):
        rounds(mesh, *args)
        for node in NODES:
            assert state(mesh, node) == expected, (args, node)
        assert listing(mesh, "b") == listing(mesh, "c") == listing(mesh, "f"), args
        for node in NODES:
            fsck = fswl(mesh, node, "fsck", check=False)
            assert fsck.returncode == 0, (node, fsck.stdout)


@pytest.mark.parametrize("newer", ["link", "unlink", "other group"])
def test_a_link_and_an_unlink_of_one_relay_on_two_mirrors_end_with_the_newer_on_all_three(mesh_of, newer) -> None:
    mesh = linked_everywhere(mesh_of(*NODES))
    # Neither B nor F hears of the other's write before both are made.
    if newer == "link":
        fswl(mesh, "b", "unlink", RELAY)
        time.sleep(0.05)
        fswl(mesh, "f", "link", RELAY, "g1")  # linked again, later: re-dated
        expected = ("../../../groups/g1", False)
    elif newer == "unlink":
        fswl(mesh, "f", "link", RELAY, "g1")
        time.sleep(0.05)
        fswl(mesh, "b", "unlink", RELAY)
        expected = (None, True)
    else:
        fswl(mesh, "b", "unlink", RELAY)
        fswl(mesh, "b", "link", RELAY, "g2")
        time.sleep(0.05)
        fswl(mesh, "f", "unlink", RELAY)
        fswl(mesh, "f", "link", RELAY, "g3")
        expected = ("../../../groups/g3", False)
    assert_same_everywhere(mesh, expected)
    if expected[0] is not None:
        assert fswl(mesh, "c", "check", "x@g1.example", "10.7.7.1", check=False).returncode == (
            0 if expected[0].endswith("g1") else 1)
    else:
        assert fswl(mesh, "c", "check", "x@g1.example", "10.7.7.1", check=False).returncode == 1


def test_an_unlink_in_transit_is_not_undone_by_a_full_reconciliation(mesh_of) -> None:
    mesh = linked_everywhere(mesh_of(*NODES))
    # B's unlink is journalled for no batch: made with the writer sync applies received records with
    # (it marks the digests and logs the change, so it is no hand edit either), the reconciliation is
    # all that can carry it, as for an unlink still on its way when a gap or a first round reconciles.
    Node(Home(mesh["b"].home)).writer.unlink(RELAY)
    assert state(mesh, "b") == (None, True)
    rounds(mesh, "--full", times=1)
    for node in NODES:
        assert state(mesh, node) == (None, True), node
    assert_same_everywhere(mesh, (None, True))


def test_a_hand_rm_of_a_link_replicates_as_an_unlink_and_stays(mesh_of) -> None:
    mesh = linked_everywhere(mesh_of(*NODES))
    require("rm")
    time.sleep(0.05)
    subprocess.run(["rm", LINK], cwd=mesh["f"].home, check=True)
    rounds(mesh, times=1)  # F journals it, with the tombstone `fswl unlink` leaves
    assert state(mesh, "f") == (None, True)
    assert_same_everywhere(mesh, (None, True))
    assert fswl(mesh, "b", "check", "x@g1.example", "10.7.7.1", check=False).returncode == 1
