"""What the sweep of an unwatched tree costs an idle `fswl serve dns`, and how soon it sees a hand edit.

    .venv/bin/python bench/sweep.py                     # 100,000 relays x 10 entries = 1M entries
    .venv/bin/python bench/sweep.py --relays 10000

The tree is bench/dns.py's, served with `[store] watch_tree = false`; the
anchor is the same server with the sweep off (`sweep_seconds = 0`), in the
same run. Then entries are made by hand (a plain file creation, as `touch`
does), at random moments and relays, and the time until DNS answers for
each is measured.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns as dnsbench  # bench/dns.py, beside this file

ZONE = dnsbench.ZONE
#: Hand edits timed, each at a random moment of a pass.
SAMPLES = 3


def idle_cpu(home: Path, sweep_seconds: float, seconds: float) -> tuple[float, subprocess.Popen, int]:
    """Start the server with this sweep; its CPU share of one core while idle; the server and its port."""
    (home / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\n[store]\nwatch_tree = false\n'
                                    f'sweep_seconds = {sweep_seconds}\n')
    port = dnsbench.free_port()
    server = dnsbench.start_fswl(home, port)
    dnsbench.wait_answering(port, server)
    time.sleep(2)  # the start's own work done
    before = dnsbench.cpu_seconds([server.pid])
    time.sleep(seconds)
    return (dnsbench.cpu_seconds([server.pid]) - before) / seconds, server, port


def listed(port: int, name: str) -> bool:
    from dnslib import DNSRecord  # not dnspython: this file's neighbour hides its package

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(DNSRecord.question(name).pack(), ("127.0.0.1", port))
        return bool(DNSRecord.parse(sock.recv(4096)).rr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=100_000, help="relays, 10 entries each")
    parser.add_argument("--seconds", type=float, default=60, help="idle time measured (one sweep period)")
    parser.add_argument("--dir", type=Path, help="where to build the tree (default: under /dev/shm)")
    args = parser.parse_args()
    base = dnsbench.bench_home(args.dir, "fswl-bench-sweep-", args.relays)
    try:
        home = base / "home"
        directories = sum(1 for _ in os.walk(home / "db"))
        anchor, server, _port = idle_cpu(home, 0, args.seconds)
        dnsbench.stop(server)
        share, server, port = idle_cpu(home, args.seconds, args.seconds)
        latencies = []
        try:
            rng = random.Random(7)
            for sample in range(SAMPLES):  # a hand edit lands anywhere in a pass: between 0 and a period
                time.sleep(rng.uniform(0, args.seconds / 2))
                a, b, c, d = dnsbench.relay(4 * rng.randrange(args.relays // 4) + 1)  # a relay without "*"
                (home / "db" / "ip4" / str(a) / str(b) / str(c) / str(d) / f"handmade{sample}@example.org").touch()
                made = time.monotonic()
                name = f"handmade{sample}.example.org.{d}.{c}.{b}.{a}.{ZONE}"
                while not listed(port, name) and time.monotonic() - made < 3 * args.seconds:
                    time.sleep(0.2)
                latencies.append(time.monotonic() - made)
        finally:
            dnsbench.stop(server)
        print(f"\n{directories:,} directories, idle CPU over {args.seconds:.0f} s")
        print(f"sweep off (anchor):               {anchor * 100:.2f}% of a core")
        print(f"sweep every {args.seconds:.0f} s:                {share * 100:.2f}% of a core")
        print(f"hand-made entries answered after: {', '.join(f'{t:.1f}' for t in latencies)} s "
              f"(sweep period {args.seconds:.0f} s)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
