#!/usr/bin/env python3
"""Benchmark the tree store: create, walk, lookups, disk use, and a large CIDR import.

Every timing is printed beside an anchor measured in the same run on the same
files, so the ratios mean something on any machine:

- create: Whitelist.add_many vs bare os.makedirs + open(O_CREAT) of the same paths
- lookup: Whitelist.lookup vs one os.stat of the entry's path (the floor: one syscall)
- import: `fswl import` of N CIDR lines vs the bare creation anchor

Usage: bench/store.py [--relays 100000] [--import-lines 1000000] [--dir /tmp/x]
(0 skips a part; --dir chooses the file system, e.g. a tmpfs with enough inodes)
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fswl.store import Whitelist  # noqa: E402
from fswl.store.walk import walk  # noqa: E402

SEED = 5782
LOOKUPS = 20_000


def relays(count: int, rng: random.Random) -> list[ipaddress.IPv4Address]:
    seen: set[int] = set()
    while len(seen) < count:
        seen.add(rng.randrange(1 << 24, 224 << 24))
    return [ipaddress.IPv4Address(n) for n in sorted(seen)]


def timed(label: str, func, *args):
    start = time.perf_counter()
    result = func(*args)
    elapsed = time.perf_counter() - start
    return result, elapsed


def per_call_us(func, calls: list[tuple]) -> float:
    start = time.perf_counter()
    for args in calls:
        func(*args)
    return (time.perf_counter() - start) / len(calls) * 1e6


def disk_use(root: Path) -> tuple[int, int]:
    blocks = inodes = 0
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            blocks += os.lstat(os.path.join(top, name)).st_blocks
            inodes += 1
    return blocks * 512, inodes


def bench_tree(base: Path, count: int) -> None:
    rng = random.Random(SEED)
    addresses = relays(count, rng)
    wl = Whitelist(base / "fswl" / "db")

    def create() -> None:
        networks = [ipaddress.ip_network(a) for a in addresses]
        wl.add_many("alice@example.org", networks)
        wl.add_many("*@lists.example.org", networks)

    def anchor_create() -> None:
        root = base / "anchor"
        for address in addresses:
            directory = root.joinpath(*str(address).split("."))
            os.makedirs(directory, exist_ok=True)
            for name in ("alice@example.org", "*@lists.example.org"):
                os.close(os.open(directory / name, os.O_WRONLY | os.O_CREAT, 0o644))

    _, t_create = timed("create", create)
    _, t_anchor = timed("anchor", anchor_create)
    listings, t_walk = timed("walk", lambda: sum(1 for _ in walk(wl.tree)))
    _, t_oswalk = timed("os.walk", lambda: sum(len(f) for _, _, f in os.walk(wl.db)))

    group_members = addresses[: max(1, count // 100)]
    for address in group_members:
        wl.link(str(address), "isp")
    wl.add_at(wl.tree.group_dir("isp"), "bob@isp.example")

    sample = [str(rng.choice(addresses)) for _ in range(LOOKUPS)]
    hits = [("alice@example.org", a) for a in sample]
    domain_hits = [("carol@lists.example.org", a) for a in sample]
    misses = [("mallory@evil.example", a) for a in sample]
    unknown = [("alice@example.org", str(ipaddress.IPv4Address(rng.randrange(224 << 24, 240 << 24))))
               for _ in range(LOOKUPS)]
    grouped = [("bob@isp.example", str(rng.choice(group_members))) for _ in range(LOOKUPS)]
    stat_paths = [(str(Path(wl.db) / "ip4" / a.replace(".", "/") / "alice@example.org"),) for a in sample]

    per_call_us(wl.lookup, hits[:2000])  # warm the dentry cache and the interpreter
    t_stat = per_call_us(os.stat, stat_paths)
    rows = [
        ("hit (exact sender)", per_call_us(wl.lookup, hits)),
        ("hit (*@domain)", per_call_us(wl.lookup, domain_hits)),
        ("miss, relay listed", per_call_us(wl.lookup, misses)),
        ("miss, relay unknown", per_call_us(wl.lookup, unknown)),
        ("hit through a group", per_call_us(wl.lookup, grouped)),
    ]
    size, inodes = disk_use(Path(wl.db))

    print(f"tree: {count} relays, 2 entries each ({listings} listings walked)")
    print(f"create   {t_create:8.2f} s   anchor (bare makedirs+open) {t_anchor:6.2f} s   ratio {t_create / t_anchor:5.2f}")
    print(f"walk     {t_walk:8.2f} s   anchor (os.walk)            {t_walk and t_oswalk:6.2f} s   ratio {t_walk / t_oswalk:5.2f}")
    print(f"lookup anchor: one os.stat of the entry = {t_stat:.2f} us")
    for label, us in rows:
        print(f"lookup {label:22s} {us:7.2f} us   ratio to one stat {us / t_stat:5.2f}")
    print(f"disk: {size / count:.0f} bytes and {inodes / count:.2f} inodes per relay")


def bench_import(base: Path, lines: int) -> None:
    rng = random.Random(SEED + 1)
    data = base / "import.txt"
    nets = set()
    while len(nets) < lines:
        value = rng.randrange(1 << 24, 224 << 24)
        nets.add(f"{ipaddress.IPv4Address(value)}/32" if len(nets) % 4 else f"{ipaddress.IPv4Address(value & ~0xFF)}/24")
    data.write_text("\n".join(sorted(nets)) + "\n")
    home = base / "import-home"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fswl", "--home", str(home), "import", str(data)],
                   check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent)
    t_import = time.perf_counter() - start

    def anchor() -> None:
        root = base / "import-anchor"
        for line in sorted(nets):
            net = ipaddress.ip_network(line)
            parts = str(net.network_address).split(".")[: net.prefixlen // 8]
            directory = root.joinpath(*parts)
            os.makedirs(directory, exist_ok=True)
            os.close(os.open(directory / "*", os.O_WRONLY | os.O_CREAT, 0o644))

    _, t_anchor = timed("anchor", anchor)
    print(f"import   {lines} CIDR lines: {t_import:.1f} s ({lines / t_import:,.0f} lines/s)   "
          f"anchor (bare makedirs+open) {t_anchor:.1f} s   ratio {t_import / t_anchor:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=100_000)
    parser.add_argument("--import-lines", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to build the trees (default: a temp dir, removed after)")
    args = parser.parse_args()
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="fswl-bench-"))
    try:
        if args.relays:
            bench_tree(base, args.relays)
        if args.import_lines:
            bench_import(base, args.import_lines)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
