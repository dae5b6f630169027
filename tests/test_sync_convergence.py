"""Randomized convergence: 3-5 mirrors over one real sshd, faults injected, then healed (issue 14).

A seeded random run of adds, removals, links, unlinks, hand-made entries,
DNS lookups that record last-seen times, expiry, partitions (a peer URL
pointed at a closed port) and kill -9s of sync rounds; then every link is
healed and rounds run until quiet.  Every node's tree must then equal the
model's: the last explicit write of each entry wins (a removal not followed
by an add stays removed, an add not followed by a removal stays), whatever
was seen in use; an entry that a node's expiry could age out may be absent,
but then on every node alike.  FSWL_SEED=N replays a run; FSWL_OPS sets its
length.  The figures are in docs/performance.md ("Convergence").
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from fswl.app.home import Home
from fswl.names import parse_relay
from fswl.store.tree import TOMB_DIR
from fswl.sync.node import Node
from fswl.sync.peers import Peer
from tests.conftest import REPO, require, run_fswl
from tests.harness.dnsd import serve
from tests.harness.sshd import REMOTE_COMMAND, Mesh, closed_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RELAYS = ["10.0.0.1", "10.0.0.2", "10.0.1.7", "10.0.2.0/24"]
SENDERS = ["a@x.example", "b@x.example", "*@y.example", "*"]
GROUPS = ["g0", "g1"]
LINKED = ["10.9.0.1", "10.9.1.0/24"]  #: relays only linked and unlinked, by any node
ASKED = ["a@x.example", "b@x.example", "q@y.example"]
#: Expiry window of the run, in seconds: entries added earlier than this may age out.
WINDOW = 20.0
WEIGHTS = {"add": 25, "remove": 20, "lookup": 14, "sync": 14, "kill": 5, "link": 5, "hand": 3,
           "expire": 4, "partition": 4, "heal": 3}


@dataclass
class Model:
    """The last explicit write of every entry and link, in the order the run made them."""

    entries: dict[str, tuple[str, float]] = field(default_factory=dict)  #: path -> (add|remove, when)
    expirable: set[str] = field(default_factory=set)  #: added entries some node's expiry may have aged out
    links: dict[str, str | None] = field(default_factory=dict)  #: link path -> target, None once unlinked

    def write(self, path: str, op: str) -> None:
        self.entries[path] = (op, time.time())
        self.expirable.discard(path)

    def expired(self, cutoff: float) -> None:
        self.expirable |= {p for p, (op, when) in self.entries.items() if op == "add" and when < cutoff}


def entry_path(home: Home, where: str, sender: str) -> str:
    """The entry file of (relay or ``groups/NAME``, sender), relative to db/."""
    tree = home.whitelist.tree
    directory = str(home.db / where) if where.startswith("groups/") else tree.relay_dir(parse_relay(where))
    return tree.relative(tree.entry_path(directory, sender))


def link_path(home: Home, relay: str) -> str:
    return home.whitelist.tree.relative(home.whitelist.tree.relay_dir(parse_relay(relay)))


def tree_of(home: Home) -> tuple[set[str], dict[str, str]]:
    """(entry files, links -> targets) under db/, relative to it, links not followed."""
    entries, links = set(), {}
    for top, dirs, files in os.walk(home.db):
        rel = os.path.relpath(top, home.db)
        for name in dirs:
            if not name.startswith(".") and os.path.islink(os.path.join(top, name)):
                links[os.path.normpath(os.path.join(rel, name))] = os.readlink(os.path.join(top, name))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if os.path.basename(top) != TOMB_DIR:
            entries |= {os.path.normpath(os.path.join(rel, f)) for f in files if not f.startswith(".")}
    return entries, links


def ask(port: int, sender: str, relay: str) -> None:
    address = relay.split("/")[0].rsplit(".", 1)[0] + ".5" if "/" in relay else relay
    local, domain = sender.split("@")
    name = f"{local}.{domain}.{'.'.join(reversed(address.split('.')))}.wl.example.org"
    try:
        dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2)
    except (OSError, dns.exception.Timeout):
        pass  # a lost datagram on a loaded machine: the hit is simply not recorded


def set_peer(mesh: Mesh, node: str, peer: str, url: str | None = None) -> None:
    """What `fswl peers add` does (test_sync_mirrors runs the command itself), without a process start."""
    Node(Home(mesh[node].home)).peers.add(Peer(peer, url or mesh[peer].url, str(mesh.key), str(mesh.known_hosts),
                                              REMOTE_COMMAND))


def start_dns(servers: ExitStack, home: Path) -> int:
    """`fswl serve dns` on a kernel-chosen port, left running in ``servers``; its port."""
    for attempt in range(3):
        try:
            return servers.enter_context(serve(home, "dns"))["dns"]
        except AssertionError as exc:
            # Port 0 picks the UDP port; TCP on the same number can be taken by another process.
            if "address already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def sync_pass(mesh: Mesh, names: list[str], *args: str) -> bool:
    """Every node syncs with all its peers once; True if nothing moved (no batch, nothing reconciled)."""
    quiet = True
    for name in names:
        result = run_fswl(mesh[name].home, "sync", *args, timeout=120)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        for line in result.stdout.splitlines():
            if "sent 0 batches, received 0 " not in line or "reconciled" in line:
                quiet = False
    return quiet


def test_random_writes_faults_and_lookups_converge_to_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("sshd", "mirrors sync over SSH")
    require("ssh-keygen")
    seed = int(os.environ.get("FSWL_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    with capsys.disabled():
        print(f"\nconvergence: FSWL_SEED={seed}")
    count = rng.randint(3, 5)
    names = [f"n{i}" for i in range(count)]
    mesh = Mesh(tmp_path / "mesh", names, one_sshd=True)
    homes = {n: Home(mesh[n].home) for n in names}
    ops_total = int(os.environ.get("FSWL_OPS") or 100)
    figures = {"nodes": count, "operations": 0, "faults": 0, "kills": 0, "partitions": 0, "rounds": 0}
    done: dict[str, int] = {}
    model = Model()
    cut: set[tuple[str, str]] = set()
    started = time.monotonic()
    try:
        for name in names:
            with open(mesh[name].home / "fswl.toml", "a") as toml:
                toml.write('access_list_days = 0\n[dns]\nlisten = "127.0.0.1:0"\n')
            for other in names:
                if other != name:
                    set_peer(mesh, name, other)
        sync_pass(mesh, names)  # the first rounds pair every node with every other
        with ExitStack() as servers:
            ports = {n: start_dns(servers, mesh[n].home) for n in names}
            for _ in range(ops_total):
                op = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
                node = rng.choice(names)
                home, wl = homes[node], homes[node].whitelist
                done[op] = done.get(op, 0) + 1
                if op in ("add", "remove", "hand"):
                    where = rng.choice(RELAYS + [f"groups/{g}" for g in GROUPS])
                    sender = rng.choice(SENDERS)
                    path = entry_path(home, where, sender)
                    if op == "hand":  # a hand-made entry, carried by a --rescan round from this node
                        # With any peer: links carry their time and unlinks leave tombstones, so a
                        # reconciliation brings back no link an unlink in transit removed.
                        peers = [p for p in names if p != node and (node, p) not in cut]
                        if not peers:
                            done["hand"] -= 1
                            continue
                        (home.db / path).parent.mkdir(parents=True, exist_ok=True)
                        (home.db / path).touch()
                        stamp = time.time()  # as `touch` would, on the clock the model and removals use
                        os.utime(home.db / path, (stamp, stamp))
                        model.write(path, "add")
                        run_fswl(home, "sync", "--rescan", rng.choice(peers), check=True, timeout=120)
                    elif where.startswith("groups/"):
                        getattr(wl, f"{op}_at")(str(home.db / where), sender)
                        model.write(path, op)
                    else:
                        getattr(wl, op)(sender, where)
                        model.write(path, op)
                elif op == "link":
                    # Any node links or unlinks any linked relay, whatever it has heard of the others'
                    # links: the latest explicit write wins everywhere (a link's time is its mtime).
                    relay = rng.choice(LINKED)
                    rel = link_path(home, relay)
                    if os.path.islink(home.db / rel):
                        wl.unlink(relay)
                        model.links[rel] = None
                        if rng.random() < 0.5:  # re-linked at once, to the same group or the other
                            wl.link(relay, rng.choice(GROUPS))
                            model.links[rel] = os.readlink(home.db / rel)
                    else:
                        wl.link(relay, rng.choice(GROUPS))
                        model.links[rel] = os.readlink(home.db / rel)
                elif op == "lookup":
                    ask(ports[node], rng.choice(ASKED), rng.choice(RELAYS + LINKED))
                elif op == "expire":
                    run_fswl(home, "expire", "--days", f"{WINDOW / 86400:.9f}", check=True)
                    model.expired(time.time() - WINDOW)
                elif op == "sync":
                    run_fswl(home, "sync", rng.choice([p for p in names if p != node]), timeout=120)
                elif op == "kill":
                    peer = rng.choice([p for p in names if p != node])
                    process = subprocess.Popen([sys.executable, "-m", "fswl", "sync", peer], cwd=REPO,
                                               env={**os.environ, "FSWL_HOME": str(home.root)}, start_new_session=True,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(rng.uniform(0.1, 1.5))
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    figures["kills"] += 1
                elif op == "partition":
                    peer = rng.choice([p for p in names if p != node])
                    for a, b in ((node, peer), (peer, node)):
                        set_peer(mesh, a, b, closed_url(mesh[b]))
                        cut.add((a, b))
                    figures["partitions"] += 1
                elif op == "heal" and cut:
                    a, b = sorted(cut)[rng.randrange(len(cut))]
                    set_peer(mesh, a, b)
                    cut.discard((a, b))
                figures["operations"] += 1
        # The servers stopped, flushing the hits they recorded: those go out with the next rounds.
        for a, b in sorted(cut):
            set_peer(mesh, a, b)
        figures["faults"] = figures["kills"] + figures["partitions"]
        for args in ((), ("--full",)):
            for _ in range(8):
                figures["rounds"] += 1
                if sync_pass(mesh, names, *args):
                    break
        trees = {n: tree_of(homes[n]) for n in names}
        divergences = []
        must = {p for p, (op, _) in model.entries.items() if op == "add" and p not in model.expirable}
        gone = {p for p, (op, _) in model.entries.items() if op == "remove"}
        links = {p: t for p, t in model.links.items() if t is not None}
        for name, (entries, node_links) in trees.items():
            divergences += [f"{name}: {p} missing (added last)" for p in sorted(must - entries)]
            divergences += [f"{name}: {p} present (removed last)" for p in sorted(entries & gone)]
            divergences += [f"{name}: {p} unknown" for p in sorted(entries - must - gone - model.expirable)]
            divergences += [f"{name}: links {node_links} != {links}"] if node_links != links else []
            divergences += [f"{name}: {p} differs from {names[0]}" for p in sorted(entries ^ trees[names[0]][0])]
    finally:
        mesh.stop()
    with capsys.disabled():
        print(f"convergence: {figures['nodes']} nodes, {figures['operations']} operations {dict(sorted(done.items()))}, "
              f"{figures['faults']} faults ({figures['kills']} kill -9 of a sync round, "
              f"{figures['partitions']} partitions), {figures['rounds']} rounds to converge, "
              f"{len(divergences)} divergences, {time.monotonic() - started:.0f} s, FSWL_SEED={seed}")
    assert not divergences, f"FSWL_SEED={seed} diverged:\n" + "\n".join(divergences[:40])
