"""The floor under any Python DNS answer: a UDP loop that answers every query with fixed bytes.

    .venv/bin/python bench/udp_floor.py

Runs fswl.dns.datagrams' two readers, one datagram per recvfrom/sendto and
a batch per recvmmsg/sendmmsg, each in a process that answers every query
with the same 70 bytes (no parsing, no lookup), under the same dnsperf
load, and prints the CPU µs per answered query of each and their ratio.
What fswl spends beyond this floor is its own work; what the floor costs
is the interpreter and the kernel.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns as dnsbench  # bench/dns.py, beside this file

REPLY = b"\x84\x03\x00\x01\x00\x00\x00\x01\x00\x00" + b"x" * 60
SECONDS = 8


def serve(port: int, batched: bool) -> None:
    """Answer forever (the parent kills this process)."""
    sys.path.insert(0, str(dnsbench.REPO))
    from fswl.dns.datagrams import open_datagrams

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    datagrams = open_datagrams(sock, batched)
    print(type(datagrams).__name__, flush=True)
    while True:
        datagrams.send([(i, data[:2] + REPLY) for i, data in enumerate(datagrams.receive())])


def measure(batched: bool, data: Path) -> tuple[str, float, float]:
    port = dnsbench.free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(int(batched))],
                               stdout=subprocess.PIPE, text=True)
    try:
        name = process.stdout.readline().strip()
        time.sleep(0.5)
        dnsbench.dnsperf(port, data, 2)  # warm up
        before = dnsbench.cpu_seconds([process.pid])
        stats, _ = dnsbench.dnsperf(port, data, SECONDS)
        used = dnsbench.cpu_seconds([process.pid]) - before
        return name, used / max(stats["completed"], 1) * 1e6, stats["qps"]
    finally:
        process.kill()
        process.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as base:
        data = Path(base) / "queries.txt"
        data.write_text("\n".join(dnsbench.queries(1000, 20_000)) + "\n")
        results = [measure(batched, data) for batched in (False, True)]
    for name, cpu_us, qps in results:
        print(f"{name:18} {cpu_us:5.2f} µs/query  {qps:9.0f} qps")
    print(f"ratio batched/plain: {results[1][1] / results[0][1]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3] == "1")
    else:
        main()
