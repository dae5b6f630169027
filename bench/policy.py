#!/usr/bin/env python3
"""Benchmark `fswl serve policy`: checks/s, p50/p99 latency and CPU per check on a large tree.

The anchor, measured in the same run with the same client: a bare asyncio
server that reads the same requests and answers DUNNO without a lookup. The
ratio says what fswl's lookup and rules cost on top of the protocol itself.

Usage: bench/policy.py [--entries 1000000] [--connections 50] [--requests 40000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fswl.store import Whitelist  # noqa: E402
from fswl.store.bulk import add_parallel  # noqa: E402

SEED = 10040


def build_tree(db: Path, entries: int, rng: random.Random) -> list[str]:
    relays = sorted({rng.randrange(1 << 24, 224 << 24) for _ in range(entries)})
    networks = [ipaddress.ip_network(ipaddress.IPv4Address(r)) for r in relays]
    add_parallel(Whitelist(db), "sender@example.org", networks)
    return [str(n.network_address) for n in networks]


def request(client: str, sender: str) -> bytes:
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={client}\n"
            f"client_name=mx.example\nsender={sender}\nrecipient=rcpt@receiver.example\n\n").encode()


async def drive(port: int, payloads: list[bytes], connections: int, rate: float = 0) -> tuple[float, list[float]]:
    """Send the payloads over ``connections``; ``rate`` > 0 paces the total to that many per second."""
    latencies: list[float] = []
    share = len(payloads) // connections
    interval = connections / rate if rate else 0.0

    async def client(chunk: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(random.random() * interval)
        next_at = time.perf_counter()
        for payload in chunk:
            if interval:
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            await reader.readuntil(b"\n\n")
            latencies.append(time.perf_counter() - started)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(payloads[i * share:(i + 1) * share]) for i in range(connections)))
    return time.perf_counter() - started, latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


ANCHOR = """
import asyncio, sys
async def serve(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\\n\\n")
            writer.write(b"action=DUNNO\\n\\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print("anchor: on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], file=sys.stderr, flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def start(command: list[str], env: dict[str, str], pattern: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    assert process.stderr is not None
    while True:
        line = process.stderr.readline()
        if not line:
            raise SystemExit(f"{command} did not start")
        found = re.search(pattern, line)
        if found:
            # Keep reading what it says, or a full pipe would stall the server mid-run.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, int(found.group(1))


def measure(label: str, process: subprocess.Popen[str], port: int, payloads: list[bytes], connections: int,
            rate: float = 0) -> dict:
    asyncio.run(drive(port, payloads[:2000], connections))  # warm up
    cpu_before = cpu_seconds(process.pid)
    elapsed, latencies = asyncio.run(drive(port, payloads, connections, rate))
    cpu = cpu_seconds(process.pid) - cpu_before
    latencies.sort()
    result = {
        "label": label, "checks": len(latencies), "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "cpu_us": cpu / len(latencies) * 1e6, "rss_mb": rss_mb(process.pid),
    }
    label = f"{label} @{rate:.0f}/s" if rate else f"{label} max"
    print(f"{label:13s} {result['per_second']:8.0f} checks/s  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
          f"  server CPU {result['cpu_us']:.0f} us/check ({1e6 / result['cpu_us']:.0f} checks/s per core)"
          f"  RSS {result['rss_mb']:.0f} MB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--dir", help="where to build the tree (a tmpfs is quickest)")
    parser.add_argument("--rate", type=float, default=2000, help="checks/s for the paced latency run")
    args = parser.parse_args()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="fswl-bench-policy-", dir=args.dir))
    rng = random.Random(SEED)
    try:
        started = time.perf_counter()
        relays = build_tree(base / "home" / "db", args.entries, rng)
        print(f"tree: {args.entries} entries built in {time.perf_counter() - started:.0f} s")
        payloads = []
        for i in range(args.requests):
            relay = rng.choice(relays)
            if i % 2:  # half listed, half not (unlisted sender on a listed relay: the costly miss)
                payloads.append(request(relay, "sender@example.org"))
            else:
                payloads.append(request(relay, f"stranger{i}@example.net"))
        env = {**os.environ, "FSWL_HOME": str(base / "home")}
        (base / "home" / "fswl.toml").write_text('[policy]\nexempt_clients = []\n')
        started = time.perf_counter()
        fswl, port = start([sys.executable, "-m", "fswl", "serve", "policy", "--listen", "127.0.0.1:0"], env,
                           r"policy: .* on 127\.0\.0\.1:(\d+)")
        print(f"fswl serve policy: ready in {time.perf_counter() - started:.1f} s (index load)")
        anchor, anchor_port = start([sys.executable, "-c", ANCHOR], env, r"anchor: on 127\.0\.0\.1:(\d+)")
        try:
            ours = measure("fswl", fswl, port, payloads, args.connections)
            base_run = measure("anchor", anchor, anchor_port, payloads, args.connections)
            paced = measure("fswl", fswl, port, payloads[: int(args.rate * 10)], args.connections, args.rate)
            paced_anchor = measure("anchor", anchor, anchor_port, payloads[: int(args.rate * 10)], args.connections, args.rate)
        finally:
            for process in (fswl, anchor):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        print(f"ratio fswl/anchor: CPU per check {ours['cpu_us'] / base_run['cpu_us']:.2f}, "
              f"p99 at {args.rate:.0f}/s {paced['p99_ms'] / paced_anchor['p99_ms']:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
