#!/usr/bin/env python3
"""What looking for hand edits costs a round (fswl.sync.handedits), on a tree of N relays.

Builds N relays (one ``*`` entry each, as bench/sync.py does), then times the
scan a round makes before it seals: the first one (nothing kept yet: every
directory is read and recorded), a round on the unchanged tree (one stat per
directory, no listing read), and a round after 100 hand edits (50 `touch`,
50 `rm`).

Usage: bench/handedits.py [--relays 100000] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync import SEED, relays  # noqa: E402
from fswl.app.home import Home  # noqa: E402
from fswl.sync.handedits import STATE, Scan, journal_hand_edits  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=100_000)
    parser.add_argument("--dir", help="where the tree goes (default: a temporary directory)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fswl-hand-bench-", dir=args.dir))
    try:
        return run(base, args.relays, random.Random(SEED))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(base: Path, count: int, rng: random.Random) -> int:
    home = Home(base)
    nets = relays(count, rng)
    home.whitelist.add_many("*", nets)
    time.sleep(2.1)  # past the racy window, as a tree in service is

    def scan() -> tuple[float, Scan]:
        start = time.perf_counter()
        found = journal_hand_edits(str(home.db), str(home.spool), str(home.changelog_path), lambda change: None)
        return time.perf_counter() - start, found

    first, found = scan()
    print(f"{count} relays, {found.read} directories: first round (records every listing) {first:.2f} s, "
          f"state {os.path.getsize(home.spool / STATE) / 1e6:.1f} MB", flush=True)
    idle = []
    for _ in range(3):
        seconds, found = scan()
        assert not found.edits and found.read == 0, found
        idle.append(seconds)
    print(f"unchanged tree: {statistics.median(idle):.3f} s (median of 3; {found.checked} directories stat'ed, "
          f"0 read)", flush=True)
    picked = rng.sample(nets, 100)
    for network in picked[:50]:
        (Path(home.whitelist.tree.relay_dir(network)) / "hand@example.org").touch()
    for network in picked[50:]:
        (Path(home.whitelist.tree.relay_dir(network)) / "*").unlink()
    seconds, found = scan()
    assert len(found.edits) == 100, len(found.edits)
    print(f"after 100 hand edits: {seconds:.3f} s ({found.read} directories read, {len(found.edits)} journalled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
