#!/usr/bin/env python3
"""Benchmark populating: `fswl import --source` against a plain import, import-spf per domain, quota checks.

Each figure has an anchor measured in the same run:
- `fswl import --source` (first run, and a re-import that changes nothing)
  against plain `fswl import` of the same list into a fresh home;
- `fswl import-spf` of many domains (each: a record with an include and a
  mx) against a local dnslib server, per domain, against one bare dnspython
  TXT query to the same server;
- Reputation.admit() (the policy service's extra work for an unlisted pair)
  against MemoryIndex.lookup() of a miss (the work every request does anyway).

Usage: bench/populate.py [--lines 100000] [--domains 200] [--dir DIR]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dns.resolver  # noqa: E402

from fswl.index.memory import MemoryIndex  # noqa: E402
from fswl.names import parse_address  # noqa: E402
from fswl.reputation.model import Reputation, ReputationSettings  # noqa: E402
from fswl.index.loader import load_all  # noqa: E402
from fswl.store import Whitelist  # noqa: E402
from tests.harness.authdns import ZoneResolver, authoritative_dns  # noqa: E402

SEED = 8
ROUNDS = 3


def fswl(home: Path, *args: str, stdin: str | None = None) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fswl", *args], input=stdin, text=True, check=True, cwd=REPO,
                   env={**os.environ, "FSWL_HOME": str(home)}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def bench_import(base: Path, lines: int, rng: random.Random) -> None:
    networks = {f"{ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24))}" + ("/24" if rng.random() < 0.25 else "")
                for _ in range(lines)}
    text = "\n".join(sorted(networks)) + "\n"
    # alternated, best of ROUNDS: the shared machine's disk makes single runs vary by 3x
    plain = first = again = float("inf")
    for n in range(ROUNDS):
        plain = min(plain, fswl(base / f"plain{n}", "import", "-", stdin=text))
        first = min(first, fswl(base / f"source{n}", "import", "--source", "bench", "-", stdin=text))
        again = min(again, fswl(base / f"source{n}", "import", "--source", "bench", "-", stdin=text))
    print(f"import {lines} lines: plain {plain:.2f} s (anchor); --source first {first:.2f} s "
          f"(x{first / plain:.2f}); --source again, unchanged {again:.2f} s (x{again / plain:.2f})")


def bench_spf(base: Path, domains: int) -> None:
    zone = ["$TTL 300"]
    for n in range(domains):
        zone += [f'd{n}.example. TXT "v=spf1 include:_spf.d{n}.example mx -all"',
                 f'_spf.d{n}.example. TXT "v=spf1 ip4:10.{n // 256}.{n % 256}.0/24 ip6:2001:db8:{n:x}::/48 -all"',
                 f"d{n}.example. MX 10 mx.d{n}.example.", f"mx.d{n}.example. A 172.16.{n // 256}.{n % 256}",
                 f"mx.d{n}.example. AAAA 2001:db8:ffff::{n:x}"]
    with authoritative_dns(ZoneResolver("\n".join(zone) + "\n")) as port:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = ["127.0.0.1"], port
        count = 200
        started = time.perf_counter()
        for n in range(count):
            resolver.resolve(f"d{n % domains}.example", "TXT")
        anchor = (time.perf_counter() - started) / count
        (base / "spf").mkdir()
        (base / "spf" / "domains.txt").write_text("".join(f"d{n}.example\n" for n in range(domains)))
        took = fswl(base / "spf", "import-spf", "--from-file", str(base / "spf" / "domains.txt"),
                    "--nameserver", f"127.0.0.1:{port}")
    per = took / domains
    print(f"import-spf {domains} domains: {took:.2f} s, {per * 1000:.1f} ms/domain; one TXT query "
          f"{anchor * 1000:.2f} ms (anchor); x{per / anchor:.1f} (each domain: 2 families, ~9 queries, 5 entries)")


def bench_quota(rng: random.Random) -> None:
    db = Path(tempfile.mkdtemp()) / "db"
    wl = Whitelist(db)
    for n in range(0, 65536, 64):  # a non-empty index: one /48 in 64 is listed
        wl.add("listed@example.org", f"2001:db8:{n:x}::/48")
    index = MemoryIndex(wl.tree)
    load_all(index)
    table = Reputation(ReputationSettings(enabled=True, base_quota=1_000_000, max_quota=1_000_000))
    addresses = [parse_address(f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}") for _ in range(50_000)]
    started = time.perf_counter()
    for address in addresses:
        index.lookup("someone@example.org", address)
    lookup = (time.perf_counter() - started) / len(addresses)
    started = time.perf_counter()
    for address in addresses:
        table.admit(address, ())
    admit = (time.perf_counter() - started) / len(addresses)
    print(f"quota check {admit * 1e6:.1f} µs; index lookup of a miss {lookup * 1e6:.1f} µs (anchor); x{admit / lookup:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--domains", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(SEED)
    base = Path(tempfile.mkdtemp(dir=args.dir, prefix="fswl-bench-populate-"))
    try:
        bench_quota(rng)
        bench_spf(base, args.domains)
        bench_import(base, args.lines, rng)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
