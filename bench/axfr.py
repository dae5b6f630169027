"""What a zone transfer costs the answers: dnsperf's p99 at a steady rate, without and during AXFRs, in one run.

    .venv/bin/python bench/axfr.py                      # 20,000 relays x 10 entries = 200k entries
    .venv/bin/python bench/axfr.py --relays 100000      # 1M entries

The tree and queries are bench/dns.py's. `fswl serve dns` runs with
`axfr_allow` set; dnsperf sends --rate queries a second for --seconds, once
alone (the anchor) and once while dig transfers the zone again and again.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
from pathlib import Path

import dns as dnsbench  # bench/dns.py, beside this file

ZONE = dnsbench.ZONE


def transfer_loop(port: int, stop: threading.Event, seconds: list[float]) -> None:
    """AXFR after AXFR until told to stop; the duration of each that finished."""
    while not stop.is_set():
        started = time.monotonic()
        subprocess.run(["dig", "-p", str(port), "@127.0.0.1", ZONE, "AXFR", "+tries=1", "+time=120"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        if not stop.is_set():
            seconds.append(time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=20_000, help="relays, 10 entries each")
    parser.add_argument("--rate", type=int, default=5000, help="dnsperf queries per second")
    parser.add_argument("--seconds", type=float, default=20, help="length of each dnsperf run")
    parser.add_argument("--dir", type=Path, help="where to build the tree (default: under /dev/shm)")
    args = parser.parse_args()
    for tool in ("dnsperf", "dig"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install dnsperf bind9-dnsutils)")
    base = dnsbench.bench_home(args.dir, "fswl-bench-axfr-", args.relays, 'axfr_allow = ["127.0.0.1"]\n')
    server = None
    try:
        home = base / "home"
        data = base / "queries.txt"
        data.write_text("\n".join(dnsbench.queries(args.relays, 200_000)) + "\n")
        port = dnsbench.free_port()
        server = dnsbench.start_fswl(home, port)
        dnsbench.wait_answering(port, server)
        _, alone = dnsbench.dnsperf(port, data, args.seconds, qps=args.rate, verbose=True)
        stop, took = threading.Event(), []
        transfers = threading.Thread(target=transfer_loop, args=(port, stop, took))
        transfers.start()
        time.sleep(1)  # the first transfer under way
        _, during = dnsbench.dnsperf(port, data, args.seconds, qps=args.rate, verbose=True)
        stop.set()
        transfers.join()
        print(f"\n{args.relays * dnsbench.ENTRIES_PER_RELAY:,} entries, {args.rate} qps for {args.seconds:.0f} s")
        print(f"p99 alone:            {dnsbench.p99(alone):.2f} ms ({len(alone)} answers)")
        print(f"p99 during transfers: {dnsbench.p99(during):.2f} ms ({len(during)} answers, "
              f"{len(took)} whole transfers of {sum(took) / max(len(took), 1):.1f} s each)")
        print(f"ratio: {dnsbench.p99(during) / dnsbench.p99(alone):.2f}")
    finally:
        if server is not None:
            dnsbench.stop(server)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
