#!/usr/bin/env python3
"""Benchmark mirror sync against rsync, over a private sshd on loopback.

Two nodes hold the same tree of N relays (one ``*`` entry each); node A then
changes 1% of them (half removals, leaving tombstones, half new relays).
Timed in one run, each from the same starting state, each over the same sshd:

- fswl steady state: `fswl sync` on A (the batch of the changes goes to B)
- fswl full reconciliation: `fswl sync --full` on A with no batches (digests)
- rsync -a --ignore-existing A/db/ -> B   (the anchor of the steady state)
- rsync -a --delete A/db/ -> B            (the anchor of reconciliation)

Every fswl figure includes starting Python on both ends and the SSH handshake.

Usage: bench/sync.py [--relays 100000] [--dir /mnt/tmpfs]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fswl.app.home import Home  # noqa: E402
from fswl.store import Whitelist  # noqa: E402
from fswl.sync.digests import Digests  # noqa: E402
from tests.harness.sshd import REMOTE_COMMAND, Sshd, keygen  # noqa: E402

SEED = 5782
CHANGE = 0.01


def relays(count: int, rng: random.Random) -> list[ipaddress.IPv4Network]:
    seen: set[int] = set()
    while len(seen) < count:
        seen.add(rng.randrange(1 << 24, 224 << 24))
    return [ipaddress.IPv4Network(n) for n in sorted(seen)]


def fswl(home: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fswl", "--home", str(home), *args], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def copy(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    subprocess.run(["cp", "-a", str(source), str(destination)], check=True)


def same(a: Path, b: Path) -> bool:
    return Digests(str(a)).children("") == Digests(str(b)).children("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=100_000)
    parser.add_argument("--dir", help="where the trees go (default: a temporary directory)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fswl-sync-bench-", dir=args.dir))
    rng = random.Random(SEED)
    try:
        return run(base, args.relays, rng)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(base: Path, count: int, rng: random.Random) -> int:
    a, b = base / "a", base / "b"
    for home, name in ((a, "a"), (b, "b")):
        home.mkdir()
        (home / "fswl.toml").write_text(f'[sync]\nnode = "{name}"\n')
    nets = relays(count + int(count * CHANGE / 2), rng)
    kept, new = nets[:count], nets[count:]
    start = time.perf_counter()
    Whitelist(a / "db").add_many("*", kept)
    original = base / "original"
    copy(a / "db", original)
    copy(original, b / "db")
    print(f"built {count} relays in {time.perf_counter() - start:.1f} s under {base}", flush=True)

    key = keygen(base / "client_key")
    sshd = Sshd(base / "sshd", key)
    known_hosts = base / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line())
    ssh = f"ssh -p {sshd.port} -i {key} -o UserKnownHostsFile={known_hosts} -o BatchMode=yes -o StrictHostKeyChecking=yes"
    try:
        peer = ["--key", str(key), "--known-hosts", str(known_hosts), "--remote-command", REMOTE_COMMAND]
        fswl(a, "peers", "add", "b", f"ssh://root@127.0.0.1:{sshd.port}{b}", *peer)
        fswl(b, "peers", "add", "a", closed_url_for(a), *peer)

        times: dict[str, float] = {}
        # Nodes in service keep a digest index: the first reconciliation (both trees equal) builds it.
        times["fswl sync --full, cold"] = fswl(a, "sync", "--full")
        print(f"fswl sync --full, cold (no digest index yet, trees equal): {times['fswl sync --full, cold']:.2f} s",
              flush=True)
        b_spool = base / "b-spool"
        copy(b / "spool", b_spool)

        # 1% changes on A, through the store as `fswl add` / `fswl rm` make them (journalled).
        wl = Home(a).whitelist
        for network in rng.sample(kept, int(count * CHANGE / 2)):
            wl.remove("*", network)
        for network in new:
            wl.add("*", network)
        changed = len(new) * 2

        for label, flags in (("rsync --ignore-existing", ["--ignore-existing"]), ("rsync --delete", ["--delete"])):
            target = base / "rsync-target"
            copy(original, target)
            start = time.perf_counter()
            subprocess.run(["rsync", "-a", *flags, "-e", ssh, f"{a / 'db'}/", f"root@127.0.0.1:{target}/"],
                           check=True)
            times[label] = time.perf_counter() - start
            print(f"{label}: {times[label]:.2f} s", flush=True)

        journal, saved = a / "spool" / ".open", base / "journal-saved"
        shutil.copy2(journal, saved)  # the batch-to-be, kept for the steady-state run
        journal.unlink()  # no batches: only digests find the differences
        copy(original, b / "db")
        copy(b_spool, b / "spool")
        times["fswl sync --full"] = fswl(a, "sync", "--full")
        assert same(a / "db", b / "db"), "reconciliation left the trees different"
        print(f"fswl sync --full: {times['fswl sync --full']:.2f} s", flush=True)

        for home in (a, b):
            (home / "peers" / ".known.json").unlink(missing_ok=True)
        shutil.copy2(saved, journal)
        copy(original, b / "db")
        copy(b_spool, b / "spool")
        times["fswl sync"] = fswl(a, "sync")
        assert same(a / "db", b / "db"), "steady-state sync left the trees different"
        print(f"fswl sync: {times['fswl sync']:.2f} s", flush=True)
    finally:
        sshd.stop()

    print(f"\n{count} relays, {changed} changed (1%: {changed // 2} removed, {changed // 2} added)")
    print("| | time | anchor | ratio |\n|---|---|---|---|")
    print(f"| fswl steady-state sync | {times['fswl sync']:.2f} s | rsync -a --ignore-existing "
          f"{times['rsync --ignore-existing']:.2f} s | {times['rsync --ignore-existing'] / times['fswl sync']:.1f}x |")
    print(f"| fswl full reconciliation | {times['fswl sync --full']:.2f} s | rsync -a --delete "
          f"{times['rsync --delete']:.2f} s | {times['rsync --delete'] / times['fswl sync --full']:.1f}x |")
    cold = times["fswl sync --full, cold"]
    print(f"| fswl full reconciliation, no digest index | {cold:.2f} s | rsync -a --delete "
          f"{times['rsync --delete']:.2f} s | {times['rsync --delete'] / cold:.1f}x |")
    return 0


def closed_url_for(home: Path) -> str:
    """B never dials A in this benchmark; its peer entry only names A so that batches drain."""
    from tests.harness.sshd import free_port

    return f"ssh://root@127.0.0.1:{free_port()}{home}"


if __name__ == "__main__":
    sys.exit(main())
