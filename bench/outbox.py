#!/usr/bin/env python3
"""Benchmark what deciding per write whether to journal for peers costs (fswl.sync.outbox).

Each variant adds the same N entries (distinct relays) to a fresh db/ and
reports microseconds per write, best of --repeat runs:

- bare:        Whitelist.add with no listener (the anchor)
- before/none: the change log only: what a node without peers did before
- now/none:    the change log and the outbox, no peer (marks digests, checks peers/)
- before/peer: the change log and the spool journal, as a node with peers did before
- now/peer:    the change log and the outbox with a peer (marks, checks, journals)

It also times Outbox.peered() alone: cached (nearly every write) and the
directory scan it does at most every PEERS_RECHECK_SECONDS.

Usage: bench/outbox.py [--writes 20000] [--repeat 3] [--dir /dev/shm/x]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fswl.app.home import Home  # noqa: E402
from fswl.store import Whitelist  # noqa: E402
from fswl.store.changelog import ChangeLog  # noqa: E402
from fswl.sync.node import Node  # noqa: E402
from fswl.sync.outbox import Outbox  # noqa: E402
from fswl.sync.peers import Peer  # noqa: E402

PEER = Peer("b", "ssh://fswl@b.example:22/var/spool/fswl")
CALLS = 200_000


def make_home(root: Path, peered: bool) -> Home:
    root.mkdir(parents=True)
    (root / "fswl.toml").write_text('[sync]\nnode = "a"\n')
    home = Home(root)
    if peered:
        Node(home).peers.add(PEER)
    return home


def listeners(variant: str, home: Home) -> list:
    if variant == "bare":
        return []
    if variant == "before/none":
        return [ChangeLog(home.changelog_path)]
    if variant == "before/peer":
        return [ChangeLog(home.changelog_path), Node(home).spool.listener]
    return [ChangeLog(home.changelog_path), Outbox(home)]


def run(variant: str, base: Path, writes: int) -> float:
    """Seconds for ``writes`` adds to a fresh home."""
    root = base / variant.replace("/", "-")
    shutil.rmtree(root, ignore_errors=True)
    home = make_home(root, peered=variant.endswith("peer"))
    wl = Whitelist(home.db, listeners(variant, home))
    relays = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(writes)]
    start = time.perf_counter()
    for relay in relays:
        wl.add("sender@example.org", relay)
    elapsed = time.perf_counter() - start
    shutil.rmtree(root)
    return elapsed


def per_call(func, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where the homes go (default: a temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fswl-outbox-", dir=args.dir))
    variants = ["bare", "before/none", "now/none", "before/peer", "now/peer"]
    best = {v: float("inf") for v in variants}
    try:
        for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits all alike
            for variant in variants:
                best[variant] = min(best[variant], run(variant, base, args.writes))
        home = make_home(base / "probe", peered=True)
        outbox = Outbox(home)
        cached = per_call(outbox.peered, CALLS)
        scan = per_call(lambda: outbox.peers.names(), CALLS // 20)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    us = {v: best[v] / args.writes * 1e6 for v in variants}
    print(f"{args.writes} writes, best of {args.repeat}, in {base.parent}")
    for variant in variants:
        print(f"  {variant:12s} {us[variant]:7.1f} us/write  ratio to bare {us[variant] / us['bare']:.2f}")
    print(f"  no peer:   outbox adds {us['now/none'] - us['before/none']:+.1f} us/write "
          f"({(us['now/none'] / us['before/none'] - 1) * 100:+.1f}%) to the change log alone")
    print(f"  with peer: outbox vs the old spool listener {us['now/peer'] - us['before/peer']:+.1f} us/write "
          f"({(us['now/peer'] / us['before/peer'] - 1) * 100:+.1f}%)")
    print(f"  Outbox.peered(): {cached:.3f} us cached; the peers/ scan it does at most every 0.5 s: {scan:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
