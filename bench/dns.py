"""fswl serve dns against rbldnsd on the same data, in one run: CPU per query, qps, p99, RSS, start times.

    .venv/bin/python bench/dns.py                       # 100,000 relays x 10 entries = 1M entries
    .venv/bin/python bench/dns.py --relays 10000        # 100k entries

The tree is written under --dir (default: a directory in /dev/shm, so that
building 1M entries takes a minute, not ten), rbldnsd's data comes from
`fswl export --format rbldnsd` of that tree, and dnsperf sends both servers
the same query file: exact-sender hits, `*@domain` hits, relay-wide hits,
and misses on listed and unlisted relays. CPU µs per answered query is the
server processes' utime+stime delta (/proc/PID/stat) over the saturated
run divided by the queries dnsperf saw answered. p99 latency comes from a
second, rate-limited run (dnsperf -v prints each answer's latency).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fswl.names import sender_to_name  # noqa: E402

ZONE = "wl.example.org"
ENTRIES_PER_RELAY = 10
#: After the first pass: fswl's hit recorder writes every SEEN_FLUSH_SECONDS (30).
SETTLE_SECONDS = 33
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def relay(i: int) -> tuple[int, int, int, int]:
    """Relay number i: 100 /8s, 250 relays per /24, so a 1M-entry tree has ~100k directories."""
    j = i // 100
    return 11 + i % 100, 1, j // 250, 1 + j % 250


def senders(i: int) -> list[str]:
    exact = [f"user{k}.{i}@example{i % 997}.com" for k in range(ENTRIES_PER_RELAY - 1)]
    return exact + (["*"] if i % 4 == 0 else [f"*@lists{i % 991}.example.net"])


def build_tree(db: Path, relays: int) -> float:
    started = time.monotonic()
    for i in range(relays):
        a, b, c, d = relay(i)
        directory = db / "ip4" / str(a) / str(b) / str(c) / str(d)
        directory.mkdir(parents=True, exist_ok=True)
        for sender in senders(i):
            os.close(os.open(directory / sender_to_name(sender), os.O_CREAT | os.O_WRONLY, 0o644))
    return time.monotonic() - started


def bench_home(where: Path | None, prefix: str, relays: int, config: str = "") -> Path:
    """A fresh base directory (under ``where``, else /dev/shm) holding home/ with a built tree and fswl.toml."""
    if where:
        os.makedirs(where, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=where or ("/dev/shm" if os.path.isdir("/dev/shm") else None)))
    home = base / "home"
    (home / "db").mkdir(parents=True)
    (home / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\n{config}')
    print(f"building {relays * ENTRIES_PER_RELAY:,} entries on {relays:,} relays in {base} ...", flush=True)
    print(f"  tree built in {build_tree(home / 'db', relays):.1f} s", flush=True)
    return base


def start_fswl(home: Path, port: int, *args: str) -> subprocess.Popen:
    """`fswl serve dns` on 127.0.0.1:PORT for ``home`` (not waited for: see wait_answering)."""
    return subprocess.Popen([sys.executable, "-m", "fswl", "serve", "dns", "--listen", f"127.0.0.1:{port}", *args],
                            env={**os.environ, "FSWL_HOME": str(home)}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def queries(relays: int, count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        i = rng.randrange(relays)
        a, b, c, d = relay(i)
        rev = f"{d}.{c}.{b}.{a}"
        kind = rng.random()
        if kind < 0.35:  # exact sender
            local, _, domain = senders(i)[rng.randrange(ENTRIES_PER_RELAY - 1)].partition("@")
            name = f"{local.replace('.', chr(92) + '.')}.{domain}.{rev}"
        elif kind < 0.5:  # another sender at a list domain (a hit for 3 of 4 relays)
            name = f"bounce{rng.randrange(10**6)}.lists{i % 991}.example.net.{rev}"
        elif kind < 0.65:  # relay-wide
            name = rev
        elif kind < 0.85:  # unknown sender on a listed relay
            name = f"nobody{rng.randrange(10**6)}.example{rng.randrange(997)}.com.{rev}"
        else:  # an unlisted relay
            name = f"someone.example.org.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(120, 220)}"
        out.append(f"{name}.{ZONE} A")
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int, name: str = f"1.0.1.11.{ZONE}") -> bool:
    """True once the server gives relay 0's listing (so its data is loaded, not just its socket)."""
    from dnslib import DNSRecord  # not dnspython: this file's name hides its package

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(DNSRecord.question(name).pack(), ("127.0.0.1", port))
            reply = DNSRecord.parse(sock.recv(4096))
            return reply.header.rcode == 0 and any(str(rr.rdata) == "127.0.0.4" for rr in reply.rr)
        except Exception:  # no answer yet, or not one to trust
            return False


def wait_answering(port: int, process: subprocess.Popen, limit: float = 900) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        if answers(port):
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit("server did not answer in time")


def family(pid: int) -> list[int]:
    """pid and its children (fswl's SO_REUSEPORT workers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(c) for c in children]
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_mb(pids: list[int]) -> float:
    return sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE for pid in pids) / 2**20


def dnsperf(port: int, data: Path, seconds: float, qps: int | None = None, verbose: bool = False) -> tuple[dict, list[float]]:
    command = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(seconds), "-c", "4", "-q", "64"]
    if qps:
        command += ["-Q", str(qps)]
    if verbose:
        command += ["-v"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    stats = {
        "completed": int(re.search(r"Queries completed:\s+(\d+)", out).group(1)),
        "lost": int(re.search(r"Queries lost:\s+(\d+)", out).group(1)),
        "qps": float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)),
        "avg_ms": float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000,
        "rcodes": re.sub(r"\s+", " ", re.search(r"Response codes:\s+(.*)", out).group(1)),
    }
    latencies = [float(m) * 1000 for m in re.findall(r"^> \S+ .* ([\d.]+)$", out, re.M)] if verbose else []
    return stats, latencies


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[int(len(values) * 0.99)] if values else float("nan")


def measure(name: str, pid: int, port: int, data: Path, seconds: float, rate: int, settle: float) -> dict:
    """A first saturated pass (fswl then records every hit), ``settle`` seconds, then the measured passes."""
    pids = family(pid)
    before = cpu_seconds(pids)
    first, _ = dnsperf(port, data, seconds)
    time.sleep(settle)  # fswl writes the recorded hits (mtime refreshes, at most once a day per entry)
    first_cpu = cpu_seconds(pids) - before  # answers, plus writing what they recorded
    before = cpu_seconds(pids)
    stats, _ = dnsperf(port, data, seconds)
    used = cpu_seconds(pids) - before
    _, latencies = dnsperf(port, data, min(seconds, 5), qps=rate, verbose=True)
    return {
        "name": name, "rcodes": stats["rcodes"], "qps": stats["qps"], "lost": stats["lost"], "completed": stats["completed"],
        "first_us": first_cpu / max(first["completed"], 1) * 1e6,
        "cpu_us": used / max(stats["completed"], 1) * 1e6, "p99_ms": p99(latencies),
        "rss_mb": rss_mb(pids), "latency_samples": len(latencies),
    }


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=100_000, help="relays, 10 entries each (default 100,000)")
    parser.add_argument("--queries", type=int, default=200_000, help="distinct names in the query file")
    parser.add_argument("--seconds", type=float, default=15, help="length of the saturated dnsperf run")
    parser.add_argument("--rate", type=int, default=5000, help="queries per second of the latency run")
    parser.add_argument("--workers", type=int, default=1, help="fswl serve dns --workers")
    parser.add_argument("--dir", type=Path, help="where to build the tree (default: under /dev/shm)")
    args = parser.parse_args()
    for tool in ("dnsperf", "rbldnsd"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    base = bench_home(args.dir, "fswl-bench-dns-", args.relays)
    processes: list[subprocess.Popen] = []
    try:
        home = base / "home"
        entries = args.relays * ENTRIES_PER_RELAY
        data = base / "queries.txt"
        data.write_text("\n".join(queries(args.relays, args.queries)) + "\n")
        env = {**os.environ, "FSWL_HOME": str(home)}
        started = time.monotonic()
        combined = base / "rbldnsd.combined"
        with open(combined, "w") as out:
            subprocess.run([sys.executable, "-m", "fswl", "export", "--format", "rbldnsd"], stdout=out, env=env,
                           cwd=REPO, check=True)
        print(f"  fswl export --format rbldnsd: {time.monotonic() - started:.1f} s, "
              f"{combined.stat().st_size / 2**20:.0f} MiB", flush=True)

        rbl_port = free_port()
        rbldnsd = shutil.which("rbldnsd") or "/usr/sbin/rbldnsd"
        os.chmod(base, 0o755)  # as root, rbldnsd drops to its own user inside the chroot
        os.chmod(combined, 0o644)
        rbl = subprocess.Popen([rbldnsd, "-n", "-b", f"127.0.0.1/{rbl_port}", "-r", str(base),
                                f"{ZONE}:combined:{combined.name}"], stdout=subprocess.DEVNULL,
                               stderr=open(base / "rbldnsd.log", "w"))
        processes.append(rbl)
        rbl_start = wait_answering(rbl_port, rbl)
        print(f"  rbldnsd answering after {rbl_start:.2f} s", flush=True)
        rbl_result = measure("rbldnsd", rbl.pid, rbl_port, data, args.seconds, args.rate, SETTLE_SECONDS)
        stop(rbl)
        processes.remove(rbl)

        port = free_port()
        snapshot = home / "cache" / "index.snapshot"
        starts = {}
        for start in ("cold", "snapshot"):
            if start == "cold" and snapshot.exists():
                snapshot.unlink()
            fswl = start_fswl(home, port, "--workers", str(args.workers))
            processes.append(fswl)
            starts[start] = wait_answering(port, fswl)
            print(f"  fswl ({start} start) answering after {starts[start]:.2f} s", flush=True)
            if start == "snapshot":
                break
            time.sleep(1)
            stop(fswl)
            processes.remove(fswl)
        time.sleep(1 + args.workers)  # workers load the snapshot too
        fswl_result = measure("fswl", fswl.pid, port, data, args.seconds, args.rate, SETTLE_SECONDS)

        print()
        print(f"{entries:,} entries, {args.queries:,} distinct names, dnsperf -c 4 -q 64, {args.seconds:.0f} s; "
              f"p99 at {args.rate} qps; fswl --workers {args.workers}")
        print(f"{'':10} {'CPU µs/query':>13} {'first pass':>11} {'qps':>9} {'lost':>6} {'p99 ms':>7} {'RSS MB':>7} "
              f"{'start s':>8}")
        for result, start in ((rbl_result, f"{rbl_start:.2f}"), (fswl_result, f"{starts['cold']:.2f}")):
            print(f"{result['name']:10} {result['cpu_us']:13.2f} {result['first_us']:11.2f} {result['qps']:9.0f} "
                  f"{result['lost']:6d} {result['p99_ms']:7.2f} {result['rss_mb']:7.0f} {start:>8}")
        for result in (rbl_result, fswl_result):
            print(f"{result['name']} answered: {result['rcodes']}")
        print(f"fswl snapshot start: {starts['snapshot']:.2f} s (cold {starts['cold']:.2f} s)")
        print(f"ratio fswl/rbldnsd CPU per query: {fswl_result['cpu_us'] / rbl_result['cpu_us']:.2f}")
        stop(fswl)
        processes.remove(fswl)
        return 0
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
