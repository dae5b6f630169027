#!/usr/bin/env python3
"""Benchmark `fswl export`: time and size of both formats, against a bare os.walk of the same tree.

The tree is tests/harness/exporttree.py's (relays with 1-4 entries, 5% in
groups, relay-wide and list-source prefixes, a /16, IPv6).  The anchor is
the least any export must do: os.walk over db/ following the group links,
measured in the same run on the same (warm) tree.

Usage: bench/export.py [--relays 10000 100000] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness.exporttree import build_tree  # noqa: E402


def anchor_walk(db: Path) -> float:
    """os.walk of db/, following symlinks (group links): every directory listed once per path."""
    start = time.perf_counter()
    count = 0
    for _top, _dirs, files in os.walk(db, followlinks=True):
        count += len(files)
    return time.perf_counter() - start


def export(home: Path, fmt: str, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fswl", "--home", str(home), "export", "--format", fmt,
                    "--output", str(out)], check=True, cwd=REPO, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench(base: Path, relays: int) -> None:
    home = base / f"home-{relays}"
    build_tree(home / "db", relays)
    anchor_walk(home / "db")  # warm the cache for both sides
    anchor = min(anchor_walk(home / "db") for _ in range(3))
    print(f"relays={relays}: anchor os.walk {anchor:.2f} s")
    for fmt in ("rbldnsd", "zone"):
        out = base / f"export-{relays}.{fmt}"
        seconds = export(home, fmt, out)
        lines = sum(1 for _ in open(out, "rb"))
        print(f"  {fmt:8} {seconds:6.2f} s  ratio {seconds / anchor:5.1f}x walk  "
              f"{out.stat().st_size / 1e6:7.1f} MB  {lines} lines")
    shutil.rmtree(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fswl-bench-export-", dir=args.dir))
    try:
        for relays in args.relays:
            bench(base, relays)
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
