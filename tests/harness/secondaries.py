"""Real rbldnsd and NSD, started privately on loopback for a test, serving an fswl export."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dns.exception
import dns.message
import dns.query
import dns.rcode

#: How long a server may take to load its data and answer.
START_SECONDS = 60


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise AssertionError("no free port on 127.0.0.1")


@contextmanager
def rbldnsd(binary: str, data: Path, zone: str, workdir: Path) -> Iterator[int]:
    """``rbldnsd -n -b 127.0.0.1/PORT -r DIR ZONE:combined:FILE``; yields the port."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)  # as root, rbldnsd drops to its own user inside the chroot
    target = workdir / "combined"
    shutil.copyfile(data, target)
    os.chmod(target, 0o644)
    port = free_port()
    command = [binary, "-n", "-b", f"127.0.0.1/{port}", "-r", str(workdir), "-c", "0",
               f"{zone}:combined:combined"]
    with _running(command, workdir / "rbldnsd.log", port, zone):
        yield port


@contextmanager
def nsd(binary: str, zone_file: Path, zone: str, workdir: Path) -> Iterator[int]:
    """NSD with a private config, pid file and zones directory; yields the port."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(zone_file, workdir / "zone")
    port = free_port()
    config = workdir / "nsd.conf"
    config.write_text(f"""server:
  ip-address: 127.0.0.1
  port: {port}
  username: ""
  chroot: ""
  zonesdir: "{workdir}"
  pidfile: "{workdir}/nsd.pid"
  xfrdfile: "{workdir}/xfrd.state"
  zonelistfile: "{workdir}/zone.list"
  xfrdir: "{workdir}"
  database: ""
  logfile: "{workdir}/nsd.log"
  server-count: 1
  verbosity: 1
  zonefiles-check: no
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: {zone}
  zonefile: zone
""")
    with _running([binary, "-d", "-c", str(config)], workdir / "nsd.out", port, zone):
        yield port


@contextmanager
def _running(command: list[str], log: Path, port: int, zone: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, port, zone, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], port: int, zone: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            reply = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=port, timeout=0.5)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                return
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{process.args[0]} did not answer within {START_SECONDS} s: {log.read_text(errors='replace')[-2000:]}")
